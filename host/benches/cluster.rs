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
#[path = "../../tests/src/host_process.rs"]
mod host_process;
#[allow(dead_code)]
#[path = "../../tests/src/plugins.rs"]
mod plugins;
#[allow(dead_code)]
#[path = "../../tests/src/postgres_db.rs"]
mod postgres_db;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::get;
use fake_api::FakeApi;
use host_process::KillOnDrop;
use postgres_db::TestDatabase;
use serde_json::json;
use webcare::queue::Storage;
use webcare::queue::postgres::{PostgresOptions, PostgresStorage};

const CONNECTORS: usize = 6;
const PAGE: usize = 1_000;
const PAGES: usize = 10;

/// Connector `c`'s backlog, rendered before the clock starts.
async fn backlog(c: usize) -> FakeApi {
    let pages: Vec<Bytes> = (0..PAGES)
        .map(|p| {
            let data: Vec<_> = (0..PAGE)
                .map(|i| {
                    let n = p * PAGE + i;
                    json!({"id": format!("c{c}-{n}"), "conversation_id": format!("c{c}-t{}", n / 4),
                           "type": "mention", "to_brand": true,
                           "author": {"id": format!("u{}", n % 997), "username": format!("klant{}", n % 997)},
                           "text": format!("Mijn bestelling {n} is nog niet binnen, kunnen jullie helpen?"),
                           "lang": "nl", "created_at": "2026-11-24T08:00:00Z"})
                })
                .collect();
            let next = ((p + 1) * PAGE).to_string();
            Bytes::from(
                serde_json::to_vec(&json!({"data": data, "next": next, "has_more": p + 1 < PAGES}))
                    .unwrap(),
            )
        })
        .collect();
    let empty = Bytes::from_static(br#"{"data":[],"next":null,"has_more":false}"#);
    let state = Arc::new((pages, empty));
    async fn serve(
        State(s): State<Arc<(Vec<Bytes>, Bytes)>>,
        Query(q): Query<BTreeMap<String, String>>,
    ) -> ([(&'static str, &'static str); 1], Bytes) {
        let after: usize = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let body =
            s.0.get(after / PAGE)
                .cloned()
                .unwrap_or_else(|| s.1.clone());
        ([("content-type", "application/json")], body)
    }
    FakeApi::start(
        Router::new()
            .route("/v1/messages", get(serve))
            .with_state(state),
    )
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
