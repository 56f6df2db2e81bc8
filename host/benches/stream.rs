//! NATS JetStream sink benchmarks (a bench binary: figures, not
//! assertions), against a `nats-server` of its own (`/usr/sbin/nats-server`,
//! JetStream on, a temporary store; skipped when the binary is missing).
//!
//! ```text
//! RUST_BACKTRACE=0 cargo bench -p webcare --bench stream
//! ```
//! 1. commit: what writing the events costs `Storage::commit` (SQLite,
//!    100 000 messages in batches of 1 000, outbox off and on);
//! 2. publish: outbox rows published per second, SQLite queue: 100 000
//!    message events (and their 25 000 case events) committed with NATS
//!    away, then the publisher started and timed until the outbox is empty;
//! 3. latency: webhook arrival → the event on the stream, p50/p99: the real
//!    host with the template plugin (`.wasm`), one-message webhook
//!    deliveries one after the other, each timed from just before the POST
//!    to its `message` event reaching a NATS subscriber of the stream's
//!    subjects (the server delivers to subscribers as it stores into the
//!    stream).

#[allow(dead_code)]
#[path = "../../tests/src/host_process.rs"]
mod host_process;
#[allow(dead_code)]
#[path = "../../tests/src/nats_server.rs"]
mod nats_server;
#[allow(dead_code)]
#[path = "../../tests/src/plugins.rs"]
mod plugins;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nats_server::NatsServer;
use serde_json::{Value, json};
use tokio::sync::watch;
use webcare::capabilities::{AllowList, ConnectorId, Secret};
use webcare::model::{Author, Direction, Engagement, Message, MessageKind, Visibility};
use webcare::queue::sqlite::{SqliteOptions, SqliteStorage};
use webcare::queue::{IngestBatch, Storage};
use webcare::runtime::{CallLimits, Runtime, RuntimeConfig};
use webcare::service::{ConnectorSpec, RunningService, ServiceSpec};
use webcare::stream::{StreamMonitor, StreamSpec, publisher};

fn stream_spec(nats: &NatsServer) -> StreamSpec {
    StreamSpec {
        url: Secret::new(nats.url()),
        stream: "WEBCARE".into(),
        subject_prefix: "webcare".into(),
        duplicate_window: Duration::from_secs(600),
    }
}

fn message(n: usize) -> Message {
    Message {
        external_id: format!("m{n}"),
        thread_id: format!("t{}", n / 4),
        in_reply_to: None,
        kind: MessageKind::Mention,
        visibility: Visibility::Public,
        direction: Direction::Inbound,
        addressed_to_brand: true,
        author: Author {
            id: format!("u{}", n % 997),
            handle: format!("klant{}", n % 997),
            display_name: "Klant".into(),
            followers: None,
            verified: false,
            profile_url: None,
            email: None,
        },
        text: format!("Mijn bestelling {n} is nog niet binnen, kunnen jullie helpen?"),
        html: None,
        subject: None,
        language: Some("nl".into()),
        created_at: 1_795_000_000_000,
        permalink: None,
        attachments: Vec::new(),
        metrics: Engagement::default(),
        properties: Vec::new(),
    }
}

const MESSAGES: usize = 100_000;
const COMMIT_BATCH: usize = 1000;

/// A SQLite queue holding [`MESSAGES`] messages, committed in batches of
/// [`COMMIT_BATCH`]; and how long the commits took.
async fn filled(dir: &std::path::Path, outbox: bool) -> (SqliteStorage, Duration) {
    let storage = SqliteStorage::open_with(
        &dir.join("q.db"),
        SqliteOptions {
            outbox,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    let owner = ConnectorId {
        brand: "acme".into(),
        connector: "feed".into(),
    };
    let started = Instant::now();
    for start in (0..MESSAGES).step_by(COMMIT_BATCH) {
        let messages: Vec<Message> = (start..start + COMMIT_BATCH).map(message).collect();
        storage
            .commit(
                &owner,
                IngestBatch {
                    channel: "feed",
                    messages: &messages,
                    triage: &[],
                    updates: &[],
                    next_cursor: None,
                },
            )
            .await
            .unwrap();
    }
    (storage, started.elapsed())
}

/// What writing the events costs a commit: `Storage::commit` alone,
/// outbox off and on.
async fn commit_cost() {
    for outbox in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (_, took) = filled(dir.path(), outbox).await;
        println!(
            "commit: {MESSAGES} messages (batches of {COMMIT_BATCH}, SQLite) with the outbox {}: \
             {:.0} messages/s",
            if outbox { "on" } else { "off" },
            MESSAGES as f64 / took.as_secs_f64()
        );
    }
}

async fn publish_rate() {
    let Some(nats) = NatsServer::start("bench stream publish") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = filled(dir.path(), true).await;
    let outbox = storage.outbox().unwrap();
    let rows = outbox.backlog().await.unwrap();
    let monitor = StreamMonitor::default();
    let (stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(publisher::run(
        outbox,
        stream_spec(&nats),
        monitor.clone(),
        stopped,
    ));
    while monitor.published.get() < rows {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let _ = stop.send(true);
    let _ = task.await;
    println!(
        "publish: {rows} outbox rows to JetStream in {:.2} s: {:.0} events/s \
         (batches of {}, {} PubAcks in flight; connect and stream set-up included)",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64(),
        publisher::BATCH,
        publisher::WINDOW,
    );
}

async fn latency() {
    const DELIVERIES: usize = 2000;
    let Some(nats) = NatsServer::start("bench stream latency") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(
        SqliteStorage::open_with(
            &dir.path().join("q.db"),
            SqliteOptions {
                outbox: true,
                ..SqliteOptions::default()
            },
        )
        .unwrap(),
    );
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(plugins::workspace_root().join("target/test-component-cache")),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let spec = ServiceSpec {
        listen: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        max_webhook_body: 1 << 20,
        connectors: vec![ConnectorSpec {
            id: ConnectorId {
                brand: "acme".into(),
                connector: "feed".into(),
            },
            plugin: plugins::plugin_path("template_connector"),
            poll: false,
            poll_interval: Duration::from_secs(3600),
            allow_list: AllowList::parse(&["http://127.0.0.1:9"]).unwrap(),
            limits: CallLimits::default(),
            settings: BTreeMap::from([
                ("base_url".to_string(), "http://127.0.0.1:9".to_string()),
                ("brand_handle".to_string(), "acme_care".to_string()),
            ]),
            secrets: BTreeMap::from([("api_token".to_string(), Secret::new("bench-token-0123"))]),
            triage: Default::default(),
        }],
        service_levels: Default::default(),
        crisis: Default::default(),
        replies: Default::default(),
        cluster: Default::default(),
        stream: Some(stream_spec(&nats)),
    };
    let service = RunningService::start(&spec, &runtime, storage)
        .await
        .unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut events = client.subscribe("webcare.acme.feed.message").await.unwrap();
    client.flush().await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://{}/webhooks/acme/feed", service.addr);
    let mut took = Vec::with_capacity(DELIVERIES);
    for n in 0..DELIVERIES {
        let body = json!({"data": [{
            "id": format!("w{n}"), "conversation_id": format!("wt{n}"), "type": "mention",
            "to_brand": true, "author": {"id": "u1", "username": "klant", "name": "Klant"},
            "text": "Waar blijft mijn pakket?", "lang": "nl",
            "created_at": "2026-11-24T08:00:00Z", "url": format!("https://feed.example/m/w{n}")
        }], "next": null, "has_more": false});
        let started = Instant::now();
        let response = http.post(&url).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let wanted = format!("w{n}");
        loop {
            let event = events.next().await.expect("the subscription ends");
            let event: Value = serde_json::from_slice(&event.payload).unwrap();
            if event["message"]["external_id"] == wanted.as_str() {
                break;
            }
        }
        took.push(started.elapsed());
    }
    service.stop().await;
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!(
        "latency: webhook arrival -> event on the stream, {DELIVERIES} deliveries one at a time: \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        took.last().unwrap().as_secs_f64() * 1e3,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // `cargo bench -p webcare --bench stream -- latency` runs one part.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    rt.block_on(async {
        if wanted("commit") {
            commit_cost().await;
        }
        if wanted("publish") {
            publish_rate().await;
        }
        if wanted("latency") {
            latency().await;
        }
    });
}
