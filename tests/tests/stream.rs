//! The NATS JetStream sink end to end: the real host (service, queue with
//! the outbox on) with the real template plugin (`.wasm`) polling a gated
//! fake feed, publishing to a real `nats-server` of the test's own, which
//! the test kills in the middle of the ingest and starts again (same store
//! and port). Asserted on the stream itself: every event exactly once
//! (after JetStream's de-duplication), in order per case.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use webcare::capabilities::{AllowList, ConnectorId, Secret};
use webcare::care::workflow::Op;
use webcare::care::{Actor, Role};
use webcare::model::{Author, Direction, Engagement, Message, MessageKind, Visibility};
use webcare::queue::outbox::{Outbox, OutboxRow, PublisherLease};
use webcare::queue::postgres::{PostgresOptions, PostgresStorage};
use webcare::queue::sqlite::{SqliteOptions, SqliteStorage};
use webcare::queue::{CaseFilter, Storage, StorageError};
use webcare::runtime::CallLimits;
use webcare::service::{ConnectorSpec, RunningService, ServiceSpec};
use webcare::stream::{StreamMonitor, StreamSpec, publisher};
use webcare_tests::fake_api::FakeApi;
use webcare_tests::nats_server::NatsServer;
use webcare_tests::plugins::plugin_path;
use webcare_tests::postgres_db::TestDatabase;

const PAGE: usize = 20;
const PAGES: usize = 30;
/// Messages per thread (so per case).
const PER_CASE: usize = 4;
const STREAM: &str = "WEBCARE";

/// A feed that serves its pages only up to a gate the test moves.
#[derive(Default)]
struct Gate {
    open_pages: AtomicUsize,
}

async fn gated_feed(gate: Arc<Gate>) -> FakeApi {
    async fn serve(
        State(gate): State<Arc<Gate>>,
        Query(q): Query<BTreeMap<String, String>>,
    ) -> ([(&'static str, &'static str); 1], Bytes) {
        let after: usize = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let page = after / PAGE;
        let body = if page < gate.open_pages.load(Ordering::SeqCst) && page < PAGES {
            let data: Vec<Value> = (after..after + PAGE)
                .map(|n| {
                    json!({"id": format!("m{n}"), "conversation_id": format!("t{}", n / PER_CASE),
                           "type": "mention", "to_brand": true,
                           "author": {"id": format!("u{n}"), "username": format!("klant{n}"), "name": "Klant"},
                           "text": format!("Bestelling {n} is nog niet binnen"), "lang": "nl",
                           "created_at": "2026-11-24T08:00:00Z", "url": format!("https://feed.example/m/{n}")})
                })
                .collect();
            json!({"data": data, "next": (after + PAGE).to_string(), "has_more": true})
        } else {
            json!({"data": [], "next": null, "has_more": false})
        };
        (
            [("content-type", "application/json")],
            Bytes::from(body.to_string()),
        )
    }
    FakeApi::start(
        Router::new()
            .route("/v1/messages", get(serve))
            .with_state(gate),
    )
    .await
}

fn spec(api: &FakeApi, nats: &NatsServer) -> ServiceSpec {
    ServiceSpec {
        listen: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        max_webhook_body: 1 << 20,
        connectors: vec![ConnectorSpec {
            id: ConnectorId {
                brand: "acme".into(),
                connector: "feed".into(),
            },
            plugin: plugin_path("template_connector"),
            poll: true,
            poll_interval: Duration::from_millis(20),
            allow_list: AllowList::parse(&[api.allow_entry()]).unwrap(),
            limits: CallLimits::default(),
            settings: BTreeMap::from([
                ("base_url".to_string(), api.base_url()),
                ("brand_handle".to_string(), "acme_care".to_string()),
                ("page_size".to_string(), PAGE.to_string()),
            ]),
            secrets: BTreeMap::from([("api_token".to_string(), Secret::new("feed-token-0123"))]),
            triage: Default::default(),
        }],
        service_levels: Default::default(),
        crisis: Default::default(),
        replies: Default::default(),
        cluster: Default::default(),
        stream: Some(StreamSpec {
            url: Secret::new(nats.url()),
            stream: STREAM.into(),
            subject_prefix: "webcare".into(),
            duplicate_window: Duration::from_secs(600),
        }),
    }
}

/// Waits (polling) until `check` holds; fails after a minute.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..3000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn stored(storage: &Arc<dyn Storage>) -> u64 {
    storage
        .counts()
        .await
        .unwrap()
        .iter()
        .map(|c| c.messages)
        .sum()
}

async fn backlog(storage: &Arc<dyn Storage>) -> u64 {
    storage.outbox().unwrap().backlog().await.unwrap()
}

async fn readyz(http: &reqwest::Client, service: &RunningService) -> StatusCode {
    http.get(format!("http://{}/readyz", service.addr))
        .send()
        .await
        .unwrap()
        .status()
}

/// One event as it sits on the stream.
#[derive(Debug)]
struct Event {
    subject: String,
    msg_id: String,
    payload: Value,
}

async fn read_stream(url: &str) -> Vec<Event> {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(STREAM).await.unwrap();
    let info = stream.info().await.unwrap();
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut events = Vec::new();
    for seq in first..=last {
        let message = stream.get_raw_message(seq).await.unwrap();
        events.push(Event {
            subject: message.subject.to_string(),
            msg_id: message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            payload: serde_json::from_slice(&message.payload).unwrap(),
        });
    }
    events
}

/// Ingests the feed with NATS killed after a third of it and started again
/// after two thirds, then checks the stream. `workflow`: also claim and
/// close cases (the SQLite case store), with NATS down and up.
async fn ingest_through_an_outage(storage: Arc<dyn Storage>, mut nats: NatsServer, workflow: bool) {
    let gate = Arc::new(Gate::default());
    let api = gated_feed(gate.clone()).await;
    let service = RunningService::start(
        &spec(&api, &nats),
        &webcare_tests::runtime(),
        storage.clone(),
    )
    .await
    .expect("the host starts");
    let http = reqwest::Client::new();
    let total = (PAGE * PAGES) as u64;

    // A third of the feed; NATS dies while it is still being ingested and
    // published.
    gate.open_pages.store(PAGES / 3, Ordering::SeqCst);
    eventually("the first pages are stored", || async {
        stored(&storage).await >= (PAGE * PAGES / 6) as u64
    })
    .await;
    nats.kill();
    gate.open_pages.store(2 * PAGES / 3, Ordering::SeqCst);
    eventually("two thirds are stored with NATS down", || async {
        stored(&storage).await == (2 * PAGES / 3 * PAGE) as u64
    })
    .await;
    eventually("/readyz reports NATS down", || async {
        readyz(&http, &service).await == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(backlog(&storage).await > 0, "events wait in the outbox");
    // Down for longer than a PubAck may take: the publisher gives up on
    // what it sent, and must resend it after the restart.
    let monitor = service.shared.stream.clone().expect("the stream's monitor");
    eventually("the publisher notices the outage", || async {
        monitor.status().errors > 0
    })
    .await;

    let agent = Actor::new("ann", Role::Agent);
    let desk = &service.shared.desk;
    let mut worked = Vec::new();
    if workflow {
        let cases = storage
            .cases(&CaseFilter {
                brand: Some("acme".into()),
                ..CaseFilter::default()
            })
            .await
            .unwrap();
        worked = cases.iter().take(3).map(|c| c.id).collect();
        for &id in &worked {
            desk.transition("acme", id, &agent, Op::Claim)
                .await
                .unwrap();
        }
    }

    nats.restart();
    gate.open_pages.store(PAGES, Ordering::SeqCst);
    eventually("the whole feed is stored", || async {
        stored(&storage).await == total
    })
    .await;
    for &id in &worked {
        desk.transition("acme", id, &agent, Op::Close)
            .await
            .unwrap();
    }
    eventually("the outbox is drained", || async {
        backlog(&storage).await == 0
    })
    .await;
    eventually("/readyz reports NATS up", || async {
        readyz(&http, &service).await == StatusCode::OK
    })
    .await;
    let status: Value = http
        .get(format!("http://{}/status", service.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(status["stream"]["errors"].as_u64().unwrap() > 0, "{status}");
    assert_eq!(status["stream"]["backlog"], 0, "{status}");
    eprintln!("stream after the outage: {}", status["stream"]);
    let metrics = http
        .get(format!("http://{}/metrics", service.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("webcare_outbox_backlog 0"), "{metrics}");
    assert!(service.stop().await);

    let events = read_stream(&nats.url()).await;

    // Exactly once: no id twice, and every expected id there.
    let mut seen = HashSet::new();
    for event in &events {
        assert!(seen.insert(event.msg_id.clone()), "{} twice", event.msg_id);
    }
    let cases = storage
        .cases(&CaseFilter {
            brand: Some("acme".into()),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(cases.len(), PAGE * PAGES / PER_CASE);
    let mut expected: HashSet<String> = (0..PAGE * PAGES)
        .map(|n| format!("msg:acme:feed:m{n}"))
        .collect();
    expected.extend(cases.iter().map(|c| format!("case:{}:v0", c.id)));
    for id in &expected {
        assert!(seen.contains(id), "{id} is missing from the stream");
    }
    // Claim and close: two more events per worked case.
    assert_eq!(events.len(), expected.len() + 2 * worked.len());

    // In order per case: opened first, then its messages in feed order,
    // case versions rising.
    let mut per_case: HashMap<i64, Vec<&Event>> = HashMap::new();
    for event in &events {
        let case_id = event.payload["case_id"]
            .as_i64()
            .expect("every event has a case");
        per_case.entry(case_id).or_default().push(event);
    }
    for (case_id, events) in &per_case {
        assert_eq!(events[0].payload["change"], "opened", "case {case_id}");
        assert_eq!(events[0].subject, "webcare.acme.feed.case");
        let numbers: Vec<usize> = events
            .iter()
            .filter(|e| e.payload["event"] == "message")
            .map(|e| {
                assert_eq!(e.subject, "webcare.acme.feed.message");
                let id = e.payload["message"]["external_id"].as_str().unwrap();
                id.trim_start_matches('m').parse().unwrap()
            })
            .collect();
        assert_eq!(numbers.len(), PER_CASE, "case {case_id}");
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "case {case_id}: {numbers:?}"
        );
        let versions: Vec<i64> = events
            .iter()
            .filter(|e| e.payload["event"] == "case")
            .map(|e| e.payload["version"].as_i64().unwrap())
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "case {case_id}: {versions:?}"
        );
    }
    for id in &worked {
        let changes: Vec<&str> = per_case[id]
            .iter()
            .filter_map(|e| e.payload["change"].as_str())
            .collect();
        assert_eq!(changes, ["opened", "claimed", "closed"], "case {id}");
        // The workflow's events come after the case's messages.
        assert_eq!(per_case[id].last().unwrap().payload["status"], "closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_event_reaches_the_stream_once_in_order_despite_an_outage() {
    let Some(nats) = NatsServer::start("stream sqlite") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(
        SqliteStorage::open_with(
            &dir.path().join("queue.db"),
            SqliteOptions {
                outbox: true,
                ..SqliteOptions::default()
            },
        )
        .unwrap(),
    );
    ingest_through_an_outage(storage, nats, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_event_reaches_the_stream_once_in_order_despite_an_outage() {
    let Some(db) = TestDatabase::create("stream postgres").await else {
        return;
    };
    let Some(nats) = NatsServer::start("stream postgres") else {
        return;
    };
    let storage: Arc<dyn Storage> = Arc::new(
        PostgresStorage::connect(
            &db.url,
            PostgresOptions {
                outbox: true,
                ..PostgresOptions::default()
            },
        )
        .await
        .unwrap(),
    );
    // The PostgreSQL case store is not in this build: ingest events only.
    ingest_through_an_outage(storage, nats, false).await;
}

#[tokio::test]
async fn a_stream_over_a_storage_without_outbox_is_refused() {
    let Some(nats) = NatsServer::start("stream refused") else {
        return;
    };
    let api = gated_feed(Arc::default()).await;
    let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
    let error = RunningService::start(&spec(&api, &nats), &webcare_tests::runtime(), storage)
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("without the outbox"), "{error}");
}

fn message(n: usize) -> Message {
    Message {
        external_id: format!("m{n}"),
        thread_id: format!("t{}", n / PER_CASE),
        in_reply_to: None,
        kind: MessageKind::Mention,
        visibility: Visibility::Public,
        direction: Direction::Inbound,
        addressed_to_brand: true,
        author: Author {
            id: format!("u{n}"),
            handle: format!("klant{n}"),
            display_name: "Klant".into(),
            followers: None,
            verified: false,
            profile_url: None,
            email: None,
        },
        text: "Waar blijft mijn pakket?".into(),
        html: None,
        subject: None,
        language: None,
        created_at: 1_795_000_000_000,
        permalink: None,
        attachments: Vec::new(),
        metrics: Engagement::default(),
        properties: Vec::new(),
    }
}

/// An outbox whose first deletions fail, as when a host dies after
/// JetStream acknowledged a batch but before the rows were deleted.
#[derive(Debug)]
struct LostDeletions {
    inner: Arc<dyn Outbox>,
    failures_left: AtomicUsize,
}

#[async_trait::async_trait]
impl Outbox for LostDeletions {
    async fn head(&self, limit: usize) -> Result<Vec<OutboxRow>, StorageError> {
        self.inner.head(limit).await
    }

    async fn remove(&self, seqs: &[i64]) -> Result<(), StorageError> {
        let fail = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail && !seqs.is_empty() {
            return Err(StorageError::Unavailable("the host died".into()));
        }
        self.inner.remove(seqs).await
    }

    async fn backlog(&self) -> Result<u64, StorageError> {
        self.inner.backlog().await
    }

    async fn lead(&self) -> Result<Box<dyn PublisherLease>, StorageError> {
        self.inner.lead().await
    }

    fn written(&self) -> Arc<tokio::sync::Notify> {
        self.inner.written()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_again_after_a_lost_deletion_are_stored_once() {
    let Some(nats) = NatsServer::start("stream lost deletions") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open_with(
        &dir.path().join("queue.db"),
        SqliteOptions {
            outbox: true,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    let owner = ConnectorId {
        brand: "acme".into(),
        connector: "feed".into(),
    };
    let messages: Vec<Message> = (0..PAGE).map(message).collect();
    storage
        .commit(
            &owner,
            webcare::queue::IngestBatch {
                channel: "feed",
                messages: &messages,
                triage: &[],
                updates: &[],
                next_cursor: None,
            },
        )
        .await
        .unwrap();
    let events = PAGE + PAGE / PER_CASE;
    let outbox = Arc::new(LostDeletions {
        inner: storage.outbox().unwrap(),
        failures_left: AtomicUsize::new(2),
    });
    let monitor = StreamMonitor::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let spec = StreamSpec {
        url: Secret::new(nats.url()),
        stream: STREAM.into(),
        subject_prefix: "webcare".into(),
        duplicate_window: Duration::from_secs(600),
    };
    let task = tokio::spawn(publisher::run(outbox, spec, monitor.clone(), stopped));
    eventually("the outbox is drained", || async {
        storage.outbox().unwrap().backlog().await.unwrap() == 0
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();

    let status = monitor.status();
    assert_eq!(status.errors, 2, "{status:?}");
    // Sent three times (the first two rounds' deletions lost), stored once.
    assert_eq!(status.published, events as u64, "{status:?}");
    assert_eq!(status.duplicates, 2 * events as u64, "{status:?}");
    let stream = read_stream(&nats.url()).await;
    assert_eq!(stream.len(), events);
    let ids: HashSet<&str> = stream.iter().map(|e| e.msg_id.as_str()).collect();
    assert_eq!(ids.len(), events);
}
