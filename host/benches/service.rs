//! Service benchmarks (a bench binary: figures, not assertions).
//!
//! ```text
//! RUST_BACKTRACE=0 cargo bench -p webcare --bench service
//! ```
//! PostgreSQL parts use a fresh database on the server
//! `WEBCARE_TEST_POSTGRES_URL` names (default: the local one as `postgres`)
//! and are skipped when it cannot be reached.
//! 1. ingest: messages/s through the real path (template plugin polling a
//!    fast loopback feed → host → queue), in process: SQLite with pages of
//!    1 000, PostgreSQL with pages of 100 and of 1 000;
//! 2. commit: messages/s of `Storage::commit` alone, 100-message batches
//!    (new threads of four, so cases are opened too), one connector
//!    committing after the other and four at once, SQLite and PostgreSQL;
//! 3. search: the first search after the largest index backlog a commit
//!    leaves (SQLite), and the next;
//! 4. startup: `webcare run` with four connectors, component cache warm, from
//!    spawn to the first completed poll of all four;
//! 5. memory: resident set of `webcare run` with 1 000 enabled, idle
//!    connectors (250 brands × 4).

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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_api::{FakeApi, free_port};
use host_process::KillOnDrop;
use postgres_db::TestDatabase;

use webcare::capabilities::{AllowList, ConnectorId, Secret};
use webcare::model::{Author, Direction, Engagement, Message, MessageKind, Visibility};
use webcare::queue::postgres::{PostgresOptions, PostgresStorage};
use webcare::queue::sqlite::SqliteStorage;
use webcare::queue::{IngestBatch, Storage};
use webcare::runtime::{CallLimits, Runtime, RuntimeConfig};
use webcare::service::{ConnectorSpec, RunningService, ServiceSpec};

/// The allocator the `webcare` binary runs with (host/src/main.rs), so the
/// figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench-token-0123";

/// `pages` pages of `page` messages, in threads of four, then empty.
async fn feed(pages: usize, page: usize) -> FakeApi {
    FakeApi::start(fake_feed::backlog_router(
        "",
        pages * page,
        4,
        Duration::ZERO,
    ))
    .await
}

fn connector(
    brand: &str,
    id: &str,
    plugin: &Path,
    api: &FakeApi,
    interval: Duration,
    page: usize,
) -> ConnectorSpec {
    ConnectorSpec {
        id: ConnectorId {
            brand: brand.into(),
            connector: id.into(),
        },
        plugin: plugin.to_path_buf(),
        poll: true,
        poll_interval: interval,
        allow_list: AllowList::parse(&[api.allow_entry()]).unwrap(),
        limits: CallLimits::default(),
        settings: BTreeMap::from([
            ("base_url".to_string(), api.base_url()),
            ("brand_handle".to_string(), "acme_care".to_string()),
            ("page_size".to_string(), page.to_string()),
        ]),
        triage: Default::default(),
        secrets: BTreeMap::from([("api_token".to_string(), Secret::new(TOKEN))]),
    }
}

async fn ingest(plugin: &Path, storage: Arc<dyn Storage>, what: &str, page: usize, pages: usize) {
    let api = feed(pages, page).await;
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(plugins::workspace_root().join("target/test-component-cache")),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let spec = ServiceSpec {
        listen: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        max_webhook_body: 1 << 20,
        connectors: vec![connector(
            "acme",
            "feed",
            plugin,
            &api,
            Duration::from_secs(3600),
            page,
        )],
        service_levels: Default::default(),
        crisis: Default::default(),
        replies: Default::default(),
        cluster: Default::default(),
        stream: None,
    };
    let start = Instant::now();
    let service = RunningService::start(&spec, &runtime, storage.clone())
        .await
        .unwrap();
    let total = (page * pages) as u64;
    // The cursor is committed with the last page: a one-row read, so the
    // measuring does not compete with the ingest for the database.
    let id = ConnectorId {
        brand: "acme".into(),
        connector: "feed".into(),
    };
    let done = Some(total.to_string());
    while storage.cursor(&id).await.unwrap() != done {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = start.elapsed();
    let landed: u64 = storage
        .counts()
        .await
        .unwrap()
        .iter()
        .map(|c| c.messages)
        .sum();
    assert_eq!(landed, total, "every message landed once");
    service.stop().await;
    println!(
        "ingest: {total} messages (pages of {page}) in {:.2} s = {:.0} messages/s (plugin → host → {what})",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
}

/// A fresh PostgreSQL queue, or `None` (said why) without a server.
async fn postgres(test: &str) -> Option<(TestDatabase, Arc<dyn Storage>)> {
    let db = TestDatabase::create(test).await?;
    let storage = PostgresStorage::connect(&db.url, PostgresOptions::default())
        .await
        .unwrap();
    Some((db, Arc::new(storage)))
}

/// Messages in new threads of four, like a busy channel.
fn bench_messages(connector: usize, total: usize) -> Vec<Message> {
    (0..total)
        .map(|n| Message {
            external_id: format!("{connector}-{n}"),
            thread_id: format!("{connector}-t{}", n / 4),
            in_reply_to: None,
            kind: MessageKind::Mention,
            visibility: Visibility::Public,
            direction: Direction::Inbound,
            addressed_to_brand: true,
            author: Author {
                id: format!("u{}", n % 997),
                handle: format!("klant{}", n % 997),
                display_name: "Klant".to_string(),
                followers: Some((n % 5000) as u64),
                verified: false,
                profile_url: None,
                email: None,
            },
            text: format!("Mijn bestelling {n} is nog niet binnen 📦 kunnen jullie helpen?"),
            html: None,
            subject: None,
            language: Some("nl".to_string()),
            created_at: 1_764_000_000_000 + n as i64,
            permalink: Some(format!("https://feed.example/m/{n}")),
            attachments: Vec::new(),
            metrics: Engagement::default(),
            properties: Vec::new(),
        })
        .collect()
}

/// `Storage::commit` alone: `connectors` connectors at once, each
/// committing `per_connector` messages in batches of `batch`.
async fn commit(storage: Arc<dyn Storage>, what: &str, connectors: usize) {
    const BATCH: usize = 100;
    const PER_CONNECTOR: usize = 20_000;
    let data: Vec<Arc<Vec<Message>>> = (0..connectors)
        .map(|c| Arc::new(bench_messages(c, PER_CONNECTOR)))
        .collect();
    let start = Instant::now();
    let tasks: Vec<_> = data
        .into_iter()
        .enumerate()
        .map(|(c, messages)| {
            let storage = Arc::clone(&storage);
            tokio::spawn(async move {
                let owner = ConnectorId {
                    brand: "acme".into(),
                    connector: format!("feed-{c}"),
                };
                for (i, chunk) in messages.chunks(BATCH).enumerate() {
                    let cursor = i.to_string();
                    let batch = IngestBatch {
                        channel: "feed",
                        messages: chunk,
                        triage: &[],
                        updates: &[],
                        next_cursor: Some(&cursor),
                    };
                    let out = storage.commit(&owner, batch).await.unwrap();
                    assert_eq!(out.inserted, chunk.len());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let took = start.elapsed();
    let total = connectors * PER_CONNECTOR;
    println!(
        "commit: {total} messages in batches of {BATCH}, {connectors} connector(s) at once, in {:.2} s = {:.0} messages/s ({what})",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
}

fn write_config(
    dir: &Path,
    plugin: &Path,
    api: &FakeApi,
    brands: usize,
    per_brand: usize,
    interval: &str,
) -> PathBuf {
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    // One component cache for every round: the figure is "from the cache".
    let cache = plugins::workspace_root().join("target/bench-component-cache");
    let mut toml = format!(
        "[host]\ndata_dir = \"data\"\nlisten = \"127.0.0.1:0\"\ncomponent_cache = \"{}\"\n\n",
        cache.display()
    );
    for b in 0..brands {
        toml.push_str(&format!("[[brand]]\nid = \"brand-{b}\"\n\n"));
        for c in 0..per_brand {
            toml.push_str(&format!(
                "[[brand.connector]]\nid = \"feed-{c}\"\nplugin = \"{}\"\npoll_interval = \"{interval}\"\nallow_hosts = [\"{}\"]\n\
                 [brand.connector.settings]\nbase_url = \"{}\"\nbrand_handle = \"b{b}\"\n\
                 [brand.connector.secrets]\napi_token = {{ file = \"token\" }}\n\n",
                plugin.display(),
                api.allow_entry(),
                api.base_url()
            ));
        }
    }
    let path = dir.join("webcare.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn spawn(config: &Path, listen_port: u16) -> KillOnDrop {
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{listen_port}"));
    std::fs::write(config, text).unwrap();
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_webcare"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Connectors that completed at least one poll, per `/metrics`.
async fn polled(client: &reqwest::Client, port: u16) -> usize {
    let Ok(r) = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("webcare_polls_total{"))
        .filter(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                >= 1.0
        })
        .count()
}

async fn startup(plugin: &Path) {
    let api = feed(0, 1).await;
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), plugin, &api, 1, 4, "1h");
        let port = free_port();
        let start = Instant::now();
        let child = spawn(&config, port);
        while polled(&client, port).await < 4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let took = start.elapsed();
        drop(child);
        if round > 0 {
            samples.push(took); // round 0 fills the component cache
        }
    }
    samples.sort();
    println!(
        "startup: `webcare run`, 4 connectors, spawn → all first polls done: median {} ms (min {} ms, max {} ms)",
        samples[samples.len() / 2].as_millis(),
        samples[0].as_millis(),
        samples[samples.len() - 1].as_millis()
    );
}

async fn memory(plugin: &Path) {
    let api = feed(0, 1).await;
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), plugin, &api, 250, 4, "1h");
    let port = free_port();
    let child = spawn(&config, port);
    let start = Instant::now();
    while polled(&client, port).await < 1000 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "1 000 connectors did not all poll"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?")
        .to_string();
    drop(child);
    println!("memory: 1 000 enabled idle connectors (250 brands × 4), all polled once: {rss}");
}

/// What a search pays for the indexes' lag (SQLite: they follow in bulk,
/// and a read brings them up to date first): the first search after the
/// largest backlog a commit leaves (one message short of the catch-up
/// mark), then the next one.
async fn search_after_backlog() {
    const BACKLOG: usize = 16_383;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStorage::open(&dir.path().join("q.db")).unwrap();
    let owner = ConnectorId {
        brand: "acme".into(),
        connector: "feed-0".into(),
    };
    let messages = bench_messages(0, BACKLOG);
    for chunk in messages.chunks(1000) {
        let batch = IngestBatch {
            channel: "feed",
            messages: chunk,
            triage: &[],
            updates: &[],
            next_cursor: None,
        };
        sqlite.commit(&owner, batch).await.unwrap();
    }
    let care = sqlite.care().unwrap();
    for what in [
        "first search (indexes 16 383 waiting messages)",
        "next search",
    ] {
        let start = Instant::now();
        let hits = care.search("acme", "bestelling", 20).await.unwrap();
        assert_eq!(hits.len(), 20);
        println!(
            "search: {what}: {:.1} ms (SQLite)",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}

fn main() {
    let plugin = plugins::plugin_path("template_connector");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // `cargo bench -p webcare --bench service -- ingest` runs one part.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    rt.block_on(async {
        if wanted("ingest") {
            let dir = tempfile::tempdir().unwrap();
            let sqlite = Arc::new(SqliteStorage::open(&dir.path().join("q.db")).unwrap());
            ingest(&plugin, sqlite, "SQLite, WAL", 1000, 100).await;
            if let Some((_db, pg)) = postgres("bench ingest").await {
                ingest(&plugin, pg, "PostgreSQL", 100, 500).await;
            }
            if let Some((_db, pg)) = postgres("bench ingest").await {
                ingest(&plugin, pg, "PostgreSQL", 1000, 100).await;
            }
        }
        if wanted("commit") {
            for connectors in [1, 4] {
                let dir = tempfile::tempdir().unwrap();
                let sqlite = Arc::new(SqliteStorage::open(&dir.path().join("q.db")).unwrap());
                commit(sqlite, "SQLite, WAL", connectors).await;
                if let Some((_db, pg)) = postgres("bench commit").await {
                    commit(pg, "PostgreSQL, pool of 8", connectors).await;
                }
            }
        }
        if wanted("search") {
            search_after_backlog().await;
        }
        if wanted("startup") {
            startup(&plugin).await;
        }
        if wanted("memory") {
            memory(&plugin).await;
        }
    });
}
