//! Ingest on PostgreSQL by one `webcare run` and by three sharing the
//! connectors through poll leases: six connectors, each with a backlog of
//! pre-rendered pages on a fake channel API, timed from the hosts' start
//! until every message is in the database (`Storage::counts`).
//!
//! `cargo bench -p webcare --bench cluster` (needs PostgreSQL; see
//! `tests/src/postgres_db.rs`).

#[allow(dead_code)]
#[path = "../../tests/src/fake_api.rs"]
mod fake_api;
#[allow(dead_code)]
#[path = "../../tests/src/fake_feed.rs"]
mod fake_feed;
#[path = "../../tests/src/host_process.rs"]
mod host_process;
#[allow(dead_code)]
#[path = "../../tests/src/plugins.rs"]
mod plugins;
#[allow(dead_code)]
#[path = "../../tests/src/postgres_db.rs"]
mod postgres_db;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_api::FakeApi;
use host_process::KillOnDrop;
use postgres_db::TestDatabase;
use webcare::queue::Storage;
use webcare::queue::postgres::{PostgresOptions, PostgresStorage};

const CONNECTORS: usize = 6;
const PAGE: usize = 1_000;
const PAGES: usize = 10;

/// Connector `c`'s backlog, rendered before the clock starts.
async fn backlog(c: usize) -> FakeApi {
    FakeApi::start(fake_feed::backlog_router(
        &format!("c{c}-"),
        PAGES * PAGE,
        4,
        Duration::ZERO,
    ))
    .await
}

fn write_config(dir: &Path, h: usize, apis: &[FakeApi]) -> PathBuf {
    let token = dir.join("token");
    std::fs::write(&token, "bench-token").unwrap();
    let plugin = plugins::plugin_path("template_connector");
    let cache = plugins::workspace_root().join("target/bench-component-cache");
    let mut toml = format!(
        "[host]\nid = \"bench-{h}\"\nlease_time = \"3s\"\ndata_dir = \"data-{h}\"\n\
         listen = \"127.0.0.1:0\"\ncomponent_cache = \"{}\"\n\n\
         [storage]\nkind = \"postgres\"\nurl = {{ env = \"WEBCARE_DATABASE_URL\" }}\npool_size = 4\n\n\
         [[brand]]\nid = \"acme\"\n",
        cache.display()
    );
    for (c, api) in apis.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[brand.connector]]\nid = \"feed-{c}\"\nplugin = \"{plugin}\"\npoll_interval = \"1h\"\n\
             allow_hosts = [\"{allow}\"]\n\
             [brand.connector.settings]\nbase_url = \"{base}\"\nbrand_handle = \"acme_care\"\npage_size = {PAGE}\n\
             [brand.connector.secrets]\napi_token = {{ file = \"{token}\" }}\n",
            plugin = plugin.display(),
            allow = api.allow_entry(),
            base = api.base_url(),
            token = token.display(),
        ));
    }
    let path = dir.join(format!("bench-{h}.toml"));
    std::fs::write(&path, toml).unwrap();
    path
}

async fn run(hosts: usize) {
    let Some(db) = TestDatabase::create("bench cluster").await else {
        return;
    };
    let reader = PostgresStorage::connect(&db.url, PostgresOptions::default())
        .await
        .unwrap();
    let mut apis = Vec::new();
    for c in 0..CONNECTORS {
        apis.push(backlog(c).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let configs: Vec<PathBuf> = (0..hosts)
        .map(|h| write_config(dir.path(), h, &apis))
        .collect();
    let total = (CONNECTORS * PAGE * PAGES) as u64;
    let start = Instant::now();
    let _children: Vec<KillOnDrop> = configs
        .iter()
        .map(|config| {
            KillOnDrop(
                Command::new(env!("CARGO_BIN_EXE_webcare"))
                    .args(["run", "--config"])
                    .arg(config)
                    .env("RUST_LOG", "error")
                    .env("WEBCARE_DATABASE_URL", &db.url)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    loop {
        let stored: u64 = reader
            .counts()
            .await
            .unwrap()
            .iter()
            .map(|c| c.messages)
            .sum();
        if stored >= total {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "stalled at {stored}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    let holders: std::collections::BTreeSet<String> = reader
        .leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.holder)
        .collect();
    println!(
        "cluster: {total} messages from {CONNECTORS} connectors by {hosts} host(s) ({} polling) \
         in {:.2} s = {:.0} messages/s (PostgreSQL, start-up included)",
        holders.len(),
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for hosts in [1, 3] {
            run(hosts).await;
        }
    });
}
