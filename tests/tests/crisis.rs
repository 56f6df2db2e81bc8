//! Crisis early warning end to end: a week of a brand's normal traffic is
//! replayed through the real host and the real template plugin (webhook
//! pushes with the messages' original times), then a spike of angry
//! messages. The check raises nothing on normal traffic and one alert per
//! kind on the spike, stored, shown by the API and POSTed to the brand's
//! alert webhook with the messages behind it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use webcare::capabilities::{AllowList, ConnectorId, Secret};
use webcare::care::crisis::CrisisPolicy;
use webcare::care::store::NewToken;
use webcare::care::{Role, tokens};
use webcare::queue::Storage;
use webcare::queue::sqlite::SqliteStorage;
use webcare::runtime::CallLimits;
use webcare::service::{ConnectorSpec, RunningService, ServiceSpec};
use webcare::triage::TriagePolicy;
use webcare_tests::fake_api::FakeApi;
use webcare_tests::plugins::plugin_path;

const HOUR: i64 = 3_600_000;

fn shop(brand: &str) -> ConnectorSpec {
    ConnectorSpec {
        id: ConnectorId {
            brand: brand.into(),
            connector: "shop".into(),
        },
        plugin: plugin_path("template_connector"),
        poll: false,
        poll_interval: Duration::from_secs(3600),
        allow_list: AllowList::parse::<String>(&[]).unwrap(),
        limits: CallLimits::default(),
        settings: BTreeMap::from([
            ("base_url".into(), "http://127.0.0.1:9".into()),
            ("brand_handle".into(), "acme_shop".into()),
        ]),
        secrets: BTreeMap::from([("api_token".into(), Secret::new("unused"))]),
        triage: TriagePolicy::default(),
    }
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

struct Replay {
    http: reqwest::Client,
    url: String,
    next: usize,
}

impl Replay {
    /// Pushes messages written at `times` with `text`, in pages of 100.
    async fn push(&mut self, times: &[i64], text: &str) {
        for chunk in times.chunks(100) {
            let data: Vec<Value> = chunk
                .iter()
                .map(|&at| {
                    self.next += 1;
                    json!({"id": format!("r{}", self.next), "type": "mention", "to_brand": true,
                           "author": {"id": format!("u{}", self.next % 37), "username": format!("klant{}", self.next % 37)},
                           "text": text, "lang": "nl", "created_at": rfc3339(at)})
                })
                .collect();
            let r = self
                .http
                .post(&self.url)
                .json(&json!({"data": data, "next": null, "has_more": false}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{:?}", r.text().await);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_spike_raises_one_alert_per_kind_and_normal_traffic_none() {
    let receiver = FakeApi::start(Router::new().route("/alerts", post(|| async { "ok" }))).await;
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> =
        Arc::new(SqliteStorage::open(&dir.path().join("queue.db")).unwrap());
    let policy = CrisisPolicy {
        team: Some("crisis-team".into()),
        webhook_url: Some(format!("{}/alerts", receiver.base_url())),
        ..CrisisPolicy::default() // 15 min against the week before, ×3, ≥ 10
    };
    let spec = ServiceSpec {
        listen: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        max_webhook_body: 1 << 20,
        connectors: vec![shop("acme"), shop("globex")],
        service_levels: Default::default(),
        crisis: HashMap::from([
            ("acme".to_string(), policy.clone()),
            ("globex".to_string(), policy),
        ]),
        replies: Default::default(),
        cluster: Default::default(),
        stream: None,
    };
    let host = RunningService::start(&spec, &webcare_tests::runtime(), storage.clone())
        .await
        .unwrap();
    let mut replay = Replay {
        http: reqwest::Client::new(),
        url: format!("http://{}/webhooks/acme/shop", host.addr),
        next: 0,
    };
    let now = jiff::Timestamp::now().as_millisecond();

    // A week of normal traffic: four messages an hour (one every 15 min).
    let week: Vec<i64> = (1..=7 * 24 * 4)
        .map(|i| now - 20 * 60_000 - i * 15 * 60_000)
        .collect();
    replay.push(&week, "Wanneer komt mijn bestelling?").await;
    // A busy quarter of an hour: 3 messages where 1 is normal. Below
    // `min_messages`, so no alert.
    replay
        .push(
            &[now - 10 * 60_000, now - 5 * 60_000, now - 60_000],
            "Hoi, vraagje",
        )
        .await;
    let shared = &host.shared;
    assert!(shared.check_crisis("acme", now).await.unwrap().is_empty());

    // The same traffic one hour later (the window moved) still is normal.
    assert!(
        shared
            .check_crisis("acme", now - HOUR)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(receiver.request_count(), 0, "no alert was posted");

    // A spike: 30 angry messages in the last ten minutes.
    let spike: Vec<i64> = (0..30).map(|i| now - 10 * 60_000 + i * 20_000).collect();
    replay
        .push(
            &spike,
            "Schandalig! Jullie oplader is gevaarlijk en smelt, ik ben woedend",
        )
        .await;
    let alerts = shared.check_crisis("acme", now + 1).await.unwrap();
    let mut kinds: Vec<&str> = alerts.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["negative", "volume"], "{alerts:#?}");
    let volume = alerts.iter().find(|a| a.kind == "volume").unwrap();
    assert_eq!(volume.observed, 33);
    assert!((volume.expected - 1.0).abs() < 0.1, "{}", volume.expected);
    assert_eq!(volume.team.as_deref(), Some("crisis-team"));
    let negative = alerts.iter().find(|a| a.kind == "negative").unwrap();
    assert!(negative.observed >= 30);
    assert!(
        negative.messages[0].text.contains("gevaarlijk"),
        "the messages behind it, most negative first"
    );
    assert!(negative.messages.iter().all(|m| m.case_id.is_some()));

    // Posted to the brand's alert webhook, with the messages.
    let posted = receiver.requests();
    assert_eq!(posted.len(), 2);
    let body: Value = serde_json::from_slice(&posted[0].body).unwrap();
    assert_eq!(body["alert"]["brand"], "acme");
    assert!(body["alert"]["messages"].as_array().unwrap().len() >= 30);

    // While the spike lasts, no second alert; the other brand saw nothing.
    assert!(
        shared
            .check_crisis("acme", now + 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        shared
            .check_crisis("globex", now + 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(receiver.request_count(), 2);

    // The inbox reads them through the API (brand-scoped).
    let token = tokens::generate();
    storage
        .care()
        .unwrap()
        .create_token(&NewToken {
            name: "ann".into(),
            brand: Some("acme".into()),
            role: Role::Agent,
            hash: tokens::hash(&token),
            at: 0,
        })
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let listed: Value = http
        .get(format!("http://{}/api/v1/brands/acme/alerts", host.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 2, "{listed:#}");
    let other = http
        .get(format!("http://{}/api/v1/brands/globex/alerts", host.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert!(host.stop().await);
}
