//! The case workflow end to end over HTTP: the real host (service, agent
//! API, SQLite queue) with the real Facebook plugin (`.wasm`) in front of
//! the fake Graph API on loopback. Webhooks come in signed as Meta sends
//! them; answers are asserted on what the fake Graph received. One test
//! runs the workflow with the queue in PostgreSQL (a database of its own,
//! see `tests/src/postgres_db.rs`: skipped without a server, failed under
//! CI).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use webcare::care::Role;
use webcare::config::{DatabaseUrl, StorageConfig};
use webcare::queue::Storage;
use webcare::queue::sqlite::SqliteStorage;
use webcare::service::{RunningService, ServiceSpec};
use webcare_tests::care_api::{ApiClient, create_token, facebook_spec};
use webcare_tests::fake_api::FakeApi;
use webcare_tests::fake_facebook::{APP_SECRET, FakeGraph, PAGE_ID, graph_router, sign};
use webcare_tests::postgres_db::TestDatabase;

/// The post the customers comment on.
const POST: &str = "1234567890321_901097836652708";

struct Host {
    service: RunningService,
    storage: Arc<dyn Storage>,
    graph_api: FakeApi,
    graph: FakeGraph,
    api: ApiClient,
    /// Where a PostgreSQL queue lives, dropped (with the database) last.
    _db: Option<TestDatabase>,
    _dir: Option<tempfile::TempDir>,
}

/// Two brands, each with a Facebook page connector, on one host with its
/// queue in SQLite.
async fn start_host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> =
        Arc::new(SqliteStorage::open(&dir.path().join("queue.db")).unwrap());
    let mut host = start_host_on(storage).await;
    host._dir = Some(dir);
    host
}

/// [`start_host`] on the queue `storage`.
async fn start_host_on(storage: Arc<dyn Storage>) -> Host {
    let graph = FakeGraph::default();
    let graph_api = FakeApi::start(graph_router(graph.clone())).await;
    let spec = ServiceSpec {
        listen: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        max_webhook_body: 1 << 20,
        connectors: vec![
            facebook_spec("acme", &graph_api),
            facebook_spec("globex", &graph_api),
        ],
        service_levels: Default::default(),
        crisis: Default::default(),
        replies: Default::default(),
        cluster: Default::default(),
        stream: None,
    };
    let service = RunningService::start(&spec, &webcare_tests::runtime(), storage.clone())
        .await
        .expect("the host starts");
    Host {
        api: ApiClient::new(service.addr),
        service,
        storage,
        graph_api,
        graph,
        _db: None,
        _dir: None,
    }
}

impl Host {
    fn url(&self, path: &str) -> String {
        self.api.url(path)
    }

    /// A token for `name` with `role` in `brand` (`None`: agency admin).
    async fn token(&self, name: &str, brand: Option<&str>, role: Role) -> String {
        create_token(&self.storage, name, brand, role).await
    }

    /// A customer's comment on the page's post, delivered as Meta does.
    async fn comment(&self, brand: &str, comment_id: &str, from: (&str, &str), text: &str) {
        let now = webcare_tests::fake_twitter::unix_now();
        let body = json!({
            "object": "page",
            "entry": [{
                "id": PAGE_ID,
                "time": now,
                "changes": [{
                    "field": "feed",
                    "value": {
                        "item": "comment",
                        "verb": "add",
                        "comment_id": comment_id,
                        "post_id": POST,
                        "parent_id": POST,
                        "from": {"id": from.0, "name": from.1},
                        "created_time": now,
                        "message": text
                    }
                }]
            }]
        })
        .to_string();
        let response = self
            .api
            .http
            .post(self.url(&format!("/webhooks/{brand}/facebook")))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sign(body.as_bytes(), APP_SECRET))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.api.get(token, path).await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.api.post(token, path, body).await
    }

    /// The one case of `brand` (asserts there is exactly one).
    async fn only_case(&self, token: &str, brand: &str) -> Value {
        let (status, body) = self
            .get(token, &format!("/api/v1/brands/{brand}/cases"))
            .await;
        assert_eq!(status, 200, "{body}");
        let cases = body["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 1, "{body:#}");
        cases[0].clone()
    }

    /// Requests the fake Graph got for sends to the page's Messenger.
    fn private_sends(&self) -> Vec<Value> {
        self.graph_api
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == format!("/v21.0/{PAGE_ID}/messages"))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_from_landing_to_closing_with_its_audit_trail() {
    let host = start_host().await;
    let ann = host.token("ann", Some("acme"), Role::Agent).await;
    let billing = host
        .token("billing-desk", Some("acme"), Role::SecondLine)
        .await;

    // A complaint lands: a case with a priority and the reasons for it.
    host.comment(
        "acme",
        "901097836652708_5001",
        ("7001", "Jan de Vries"),
        "Dit is schandalig, mijn pakket is kapot en niemand helpt me. Urgent!",
    )
    .await;
    let case = host.only_case(&ann, "acme").await;
    let id = case["id"].as_i64().unwrap();
    assert_eq!(case["status"], "new");
    assert!(case["priority"].as_u64().unwrap() > 10, "{case:#}");
    let reasons: Vec<&str> = case["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("urgen")),
        "the urgency keyword is a reason: {reasons:?}"
    );
    assert!(case["waiting_since"].is_i64());
    // The service-level clock runs (defaults: around the clock, 1 h).
    assert_eq!(case["sla"]["target_ms"], 3_600_000);
    assert_eq!(
        case["sla"]["due_at"].as_i64().unwrap(),
        case["waiting_since"].as_i64().unwrap() + 3_600_000
    );
    assert_eq!(case["sla"]["overdue"], false);
    let base = format!("/api/v1/brands/acme/cases/{id}");

    // Claim.
    let (status, claimed) = host.post(&ann, &format!("{base}/claim"), json!({})).await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["status"], "open");
    assert_eq!(claimed["assignee"], "ann");

    // Answer in private: the fake Graph gets a Private Reply to the comment.
    let (status, action) = host
        .post(
            &ann,
            &format!("{base}/reply"),
            json!({"text": "Wat vervelend, Jan! Mag ik je ordernummer?", "private": true,
                   "idempotency_key": "ann-reply-1"}),
        )
        .await;
    assert_eq!(status, 200, "{action}");
    assert_eq!(action["state"], "sent");
    assert_eq!(action["result"]["external_id"], "m_sent_9f8e7d6c");
    let sends = host.private_sends();
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["recipient"]["comment_id"], "901097836652708_5001");
    assert_eq!(
        sends[0]["message"]["text"],
        "Wat vervelend, Jan! Mag ik je ordernummer?"
    );
    let case = host.only_case(&ann, "acme").await;
    assert_eq!(case["status"], "pending");
    assert!(case["first_response_at"].is_i64());
    assert!(case["waiting_since"].is_null());

    // The same request again (a client retrying) sends nothing new.
    let (status, again) = host
        .post(
            &ann,
            &format!("{base}/reply"),
            json!({"text": "Wat vervelend, Jan! Mag ik je ordernummer?", "private": true,
                   "idempotency_key": "ann-reply-1"}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], action["id"]);
    assert_eq!(host.private_sends().len(), 1);

    // The customer answers on the same post: the case reopens to its agent.
    host.comment(
        "acme",
        "901097836652708_5002",
        ("7001", "Jan de Vries"),
        "Ordernummer 4711-NL, factuur klopt ook niet",
    )
    .await;
    let case = host.only_case(&ann, "acme").await;
    assert_eq!(case["status"], "open", "{case:#}");
    assert_eq!(case["assignee"], "ann");
    assert_eq!(case["message_count"], 2);

    // Second line: billing is asked, answers, and the case comes back.
    let (status, escalated) = host
        .post(
            &ann,
            &format!("{base}/escalate"),
            json!({"team": "billing", "question": "Klopt factuur 4711-NL?"}),
        )
        .await;
    assert_eq!(status, 200, "{escalated}");
    assert_eq!(escalated["status"], "escalated");
    let (status, refused) = host
        .post(
            &ann,
            &format!("{base}/escalation/answer"),
            json!({"answer": "agents cannot answer escalations"}),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    let (status, answered) = host
        .post(
            &billing,
            &format!("{base}/escalation/answer"),
            json!({"answer": "Nee, er is dubbel gefactureerd; creditnota volgt."}),
        )
        .await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["status"], "open");
    assert_eq!(answered["assignee"], "ann");
    assert_eq!(
        answered["escalation"]["answer"],
        "Nee, er is dubbel gefactureerd; creditnota volgt."
    );

    // Document and close.
    let (status, _) = host
        .post(
            &ann,
            &format!("{base}/notes"),
            json!({"text": "Creditnota toegezegd via DM"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, closed) = host.post(&ann, &format!("{base}/close"), json!({})).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["status"], "closed");

    // The audit trail lists every step, in order, with who did it.
    let (status, detail) = host.get(&ann, &base).await;
    assert_eq!(status, 200);
    let steps: Vec<(String, String)> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        // Facebook identifies people by their app-scoped id.
        ("opened", "7001"),
        ("claimed", "ann"),
        ("private_replied", "ann"),
        ("reopened", "7001"),
        ("escalated", "ann"),
        ("escalation_answered", "billing-desk"),
        ("noted", "ann"),
        ("closed", "ann"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, a)| (k.to_string(), a.to_string()))
        .collect();
    assert_eq!(steps, expected, "{:#}", detail["events"]);
    let replied = &detail["events"][2];
    assert_eq!(replied["channel"], "facebook");
    assert_eq!(replied["detail"]["action_id"], action["id"]);
    assert_eq!(detail["messages"].as_array().unwrap().len(), 2);
    assert_eq!(detail["actions"][0]["state"], "sent");

    // The note and the customer's words are searchable.
    let (status, found) = host
        .get(&ann, "/api/v1/brands/acme/search?q=creditnota")
        .await;
    assert_eq!(status, 200);
    assert_eq!(found["hits"][0]["case_id"], id, "{found:#}");
    let (_, found) = host
        .get(&ann, "/api/v1/brands/acme/search?q=ordernummer%204711")
        .await;
    assert_eq!(found["hits"].as_array().unwrap().len(), 1, "{found:#}");

    // The brand's report covers the case.
    let (status, report) = host.get(&ann, "/api/v1/brands/acme/report").await;
    assert_eq!(status, 200, "{report}");
    let totals = &report["totals"];
    assert_eq!(
        (
            &totals["cases"],
            &totals["answered"],
            &totals["inbound_messages"]
        ),
        (&json!(1), &json!(1), &json!(2)),
        "{report:#}"
    );
    assert_eq!(totals["response_rate"], 1.0);
    assert_eq!(totals["within_target"], 1);
    assert!(totals["first_response"]["median_ms"].is_u64());
    assert!(totals["resolution"]["median_ms"].is_u64());
    assert_eq!(report["channels"][0]["connector"], "facebook");
    assert_eq!(
        report["sentiment"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );
    assert!(
        report["sentiment"][0]["mean"].as_f64().unwrap() < 0.0,
        "a complaint is negative: {report:#}"
    );
    let words: Vec<&str> = report["top_keywords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["word"].as_str().unwrap())
        .collect();
    assert!(
        words.contains(&"ordernummer") && words.contains(&"pakket"),
        "{words:?}"
    );
    let (status, bad) = host
        .get(&ann, "/api/v1/brands/acme/report?from=2026-13-01")
        .await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("YYYY-MM-DD"));
    let (status, _) = host
        .get(
            &ann,
            "/api/v1/brands/acme/report?from=2026-11-20&to=2026-11-19",
        )
        .await;
    assert_eq!(status, 400);

    assert!(host.service.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_simultaneous_claims_have_exactly_one_winner() {
    let host = Arc::new(start_host().await);
    host.comment("acme", "901097836652708_6001", ("7002", "Eva"), "Help?")
        .await;
    let admin = host.token("lead", Some("acme"), Role::Admin).await;
    let id = host.only_case(&admin, "acme").await["id"].as_i64().unwrap();
    let mut agents = Vec::new();
    for n in 0..50 {
        agents.push(
            host.token(&format!("agent-{n}"), Some("acme"), Role::Agent)
                .await,
        );
    }
    let mut claims = Vec::new();
    for token in agents {
        let host = host.clone();
        claims.push(tokio::spawn(async move {
            host.post(
                &token,
                &format!("/api/v1/brands/acme/cases/{id}/claim"),
                json!({}),
            )
            .await
        }));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    for claim in claims {
        let (status, body) = claim.await.unwrap();
        match status {
            StatusCode::OK => winners.push(body["assignee"].as_str().unwrap().to_string()),
            StatusCode::CONFLICT => {
                assert!(
                    body["error"]
                        .as_str()
                        .unwrap()
                        .contains("is owned by agent-"),
                    "{body}"
                );
                losers += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(losers, 49);
    let case = host.only_case(&admin, "acme").await;
    assert_eq!(case["assignee"], winners[0].as_str());
    let (_, detail) = host
        .get(&admin, &format!("/api/v1/brands/acme/cases/{id}"))
        .await;
    let claims = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "claimed")
        .count();
    assert_eq!(claims, 1, "one claim in the audit trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_is_visible_and_its_retry_posts_once() {
    let host = start_host().await;
    host.comment(
        "acme",
        "901097836652708_7001",
        ("7003", "Noor"),
        "Waar blijft mijn bestelling?",
    )
    .await;
    let ann = host.token("ann", Some("acme"), Role::Agent).await;
    let id = host.only_case(&ann, "acme").await["id"].as_i64().unwrap();
    let base = format!("/api/v1/brands/acme/cases/{id}");

    host.graph.fail_next_sends(1);
    let (status, failed) = host
        .post(
            &ann,
            &format!("{base}/reply"),
            json!({"text": "We kijken het na!", "private": true, "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!(status, 502, "{failed}");
    assert_eq!(failed["action"]["state"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("retry"),
        "{failed}"
    );
    let action_id = failed["action"]["id"].as_i64().unwrap();
    let case = host.only_case(&ann, "acme").await;
    assert_eq!(
        case["status"], "new",
        "a failed send changes nothing: {case:#}"
    );
    assert!(case["first_response_at"].is_null());

    // The same request again does not send a second copy: the action is
    // the failed one, retried only on purpose.
    let (status, same) = host
        .post(
            &ann,
            &format!("{base}/reply"),
            json!({"text": "We kijken het na!", "private": true, "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(same["id"], action_id);
    assert_eq!(same["state"], "failed");

    let (status, retried) = host
        .post(
            &ann,
            &format!("/api/v1/brands/acme/actions/{action_id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["state"], "sent");
    assert_eq!(retried["attempts"], 2);
    // Retrying a sent action is a no-op.
    let (status, again) = host
        .post(
            &ann,
            &format!("/api/v1/brands/acme/actions/{action_id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["attempts"], 2);

    let sends = host.private_sends();
    assert_eq!(
        sends.len(),
        2,
        "one failed attempt, one delivered: {sends:#?}"
    );
    assert_eq!(host.only_case(&ann, "acme").await["status"], "pending");
    let (_, detail) = host.get(&ann, &base).await;
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "action_failed", "private_replied"]);
    let case = host.only_case(&ann, "acme").await;
    assert_eq!(
        case["assignee"], "ann",
        "replying to an unowned case claims it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brand_token_never_reaches_another_brands_cases() {
    let host = start_host().await;
    host.comment(
        "acme",
        "901097836652708_8001",
        ("7004", "Piet"),
        "Acme: mijn lamp flikkert",
    )
    .await;
    host.comment(
        "globex",
        "901097836652708_8002",
        ("7005", "Kees"),
        "Globex: mijn lamp flikkert ook",
    )
    .await;
    let acme = host.token("ann", Some("acme"), Role::Admin).await;
    let globex = host.token("gus", Some("globex"), Role::Admin).await;
    let agency = host.token("agency", None, Role::Admin).await;
    let acme_case = host.only_case(&acme, "acme").await["id"].as_i64().unwrap();
    let globex_case = host.only_case(&globex, "globex").await["id"]
        .as_i64()
        .unwrap();

    // Every route of brand globex, called with acme's token: 404, and
    // nothing changes.
    let g = format!("/api/v1/brands/globex/cases/{globex_case}");
    let gets = [
        "/api/v1/brands/globex/cases".to_string(),
        g.clone(),
        "/api/v1/brands/globex/search?q=lamp".to_string(),
        "/api/v1/brands/globex/report".to_string(),
    ];
    for path in &gets {
        let (status, body) = host.get(&acme, path).await;
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    let posts = [
        ("claim", json!({})),
        ("release", json!({})),
        ("assign", json!({"agent": "ann"})),
        ("reply", json!({"text": "hi"})),
        ("react", json!({"reaction": "like"})),
        ("hide", json!({"reason": "spam"})),
        ("unhide", json!({"reason": "not spam"})),
        ("escalate", json!({"team": "x", "question": "?"})),
        ("escalation/answer", json!({"answer": "!"})),
        ("notes", json!({"text": "n"})),
        ("close", json!({})),
        ("reopen", json!({})),
    ];
    for (route, body) in &posts {
        let (status, answer) = host
            .post(&acme, &format!("{g}/{route}"), body.clone())
            .await;
        assert_eq!(status, 404, "POST {route}: {answer}");
        // Through acme's own path with globex's case id: also not found.
        let (status, answer) = host
            .post(
                &acme,
                &format!("/api/v1/brands/acme/cases/{globex_case}/{route}"),
                body.clone(),
            )
            .await;
        assert_eq!(status, 404, "POST acme/{route} on a globex case: {answer}");
    }
    let (status, _) = host
        .post(&acme, "/api/v1/brands/globex/actions/1/retry", json!({}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = host
        .get(&acme, &format!("/api/v1/brands/acme/cases/{globex_case}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        host.private_sends().len() + host.graph_api.request_count(),
        0,
        "nothing reached the channel"
    );
    let untouched = host.only_case(&globex, "globex").await;
    assert_eq!(untouched["status"], "new");
    assert_eq!(untouched["version"], 0);

    // Search only ever returns the brand's own messages.
    let (_, hits) = host.get(&acme, "/api/v1/brands/acme/search?q=lamp").await;
    let hits = hits["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["case_id"], acme_case);
    assert!(hits[0]["snippet"].as_str().unwrap().contains("Acme"));

    // The agency token sees both; no token, a bad one or a revoked one: 401.
    assert_eq!(host.only_case(&agency, "globex").await["id"], globex_case);
    assert_eq!(host.only_case(&agency, "acme").await["id"], acme_case);
    let response = host
        .api
        .http
        .get(host.url("/api/v1/brands/acme/cases"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, _) = host
        .get("wct_not-a-token", "/api/v1/brands/acme/cases")
        .await;
    assert_eq!(status, 401);
    let (status, me) = host.get(&acme, "/api/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("ann"), Some("admin"))
    );
    let store = host.storage.care().unwrap();
    assert!(
        store
            .revoke_token(me["id"].as_i64().unwrap(), 1)
            .await
            .unwrap()
    );
    let (status, body) = host.get(&acme, "/api/v1/brands/acme/cases").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let host = start_host().await;
    host.comment("acme", "901097836652708_9001", ("7006", "Lot"), "Hallo?")
        .await;
    let ann = host.token("ann", Some("acme"), Role::Agent).await;
    let id = host.only_case(&ann, "acme").await["id"].as_i64().unwrap();
    let base = format!("/api/v1/brands/acme/cases/{id}");
    let cases = [
        ("reply", json!({}), "text"),
        ("reply", json!({"text": "  "}), "empty"),
        ("reply", json!({"text": "x", "colour": "red"}), "colour"),
        ("hide", json!({"reason": " "}), "reason"),
        ("assign", json!({"agent": "a", "team": "b"}), "exactly one"),
        ("notes", json!({"text": ""}), "empty"),
        (
            "reply",
            json!({"text": "x", "message": "nope"}),
            "no message",
        ),
    ];
    for (route, body, needle) in cases {
        let (status, answer) = host
            .post(&ann, &format!("{base}/{route}"), body.clone())
            .await;
        assert_eq!(status, 400, "{route} {body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{route} {body}: {answer}"
        );
    }
    let (status, answer) = host
        .get(&ann, "/api/v1/brands/acme/cases?status=later")
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = host.post(&ann, &format!("{base}/reopen"), json!({})).await;
    assert_eq!(status, 409, "an open case cannot be reopened");
    assert_eq!(host.graph_api.request_count(), 0);
    let case = host.only_case(&ann, "acme").await;
    assert_eq!(
        (case["status"].as_str(), case["version"].as_i64()),
        (Some("new"), Some(0))
    );

    // The OpenAPI document is served and names every route.
    let doc: Value = host
        .api
        .http
        .get(host.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/brands/{brand}/cases",
        "/api/v1/brands/{brand}/cases/{id}/claim",
        "/api/v1/brands/{brand}/cases/{id}/escalation/answer",
        "/api/v1/brands/{brand}/actions/{id}/retry",
        "/api/v1/brands/{brand}/search",
        "/api/v1/brands/{brand}/report",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_case_is_acknowledged_once_from_the_brands_template() {
    let graph = FakeGraph::default();
    let graph_api = FakeApi::start(graph_router(graph.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> =
        Arc::new(SqliteStorage::open(&dir.path().join("queue.db")).unwrap());
    let mut acme = facebook_spec("acme", &graph_api);
    acme.triage
        .acknowledge
        .push(webcare::triage::policy::AcknowledgeRule {
            kinds: Vec::new(),
            channels: Vec::new(),
            template: "ack".into(),
        });
    let spec = ServiceSpec {
        listen: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        max_webhook_body: 1 << 20,
        connectors: vec![acme],
        service_levels: Default::default(),
        crisis: Default::default(),
        cluster: Default::default(),
        replies: std::collections::HashMap::from([(
            "acme".to_string(),
            webcare::care::replies::BrandReplies {
                brand_name: "ACME".into(),
                replies: BTreeMap::from([(
                    "ack".to_string(),
                    "Thanks {name}, we are on it and answer within {sla}. – {brand}".to_string(),
                )]),
            },
        )]),
        stream: None,
    };
    let service = RunningService::start(&spec, &webcare_tests::runtime(), storage.clone())
        .await
        .unwrap();
    let host = Host {
        api: ApiClient::new(service.addr),
        service,
        storage,
        graph_api,
        graph,
        _db: None,
        _dir: Some(dir),
    };
    let ann = host.token("ann", Some("acme"), Role::Agent).await;
    host.comment(
        "acme",
        "901097836652708_9101",
        ("7101", "Fleur"),
        "Mijn bestelling is kwijt",
    )
    .await;
    // The acknowledgement goes out in the background: wait for it.
    let reply_path = "/v21.0/901097836652708_9101/comments";
    for _ in 0..200 {
        if host
            .graph_api
            .requests()
            .iter()
            .any(|r| r.path == reply_path)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sent: Vec<_> = host
        .graph_api
        .requests()
        .into_iter()
        .filter(|r| r.path == reply_path)
        .collect();
    assert_eq!(sent.len(), 1, "one public acknowledgement");
    let form = String::from_utf8(sent[0].body.to_vec()).unwrap();
    let text = form_urlencoded_message(&form);
    assert_eq!(
        text,
        "Thanks Fleur, we are on it and answer within 1 hour. – ACME"
    );

    // It is in the audit trail, by webcare; the case still waits for a
    // real answer.
    let case = host.only_case(&ann, "acme").await;
    assert_eq!(case["status"], "new");
    assert!(case["first_response_at"].is_null());
    assert!(case["waiting_since"].is_i64());
    // The event is written once the channel answered the send, just after
    // the request the fake API recorded: wait for it too.
    let mut acked: Vec<Value> = Vec::new();
    for _ in 0..200 {
        let (_, detail) = host
            .get(&ann, &format!("/api/v1/brands/acme/cases/{}", case["id"]))
            .await;
        acked = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "acknowledged")
            .cloned()
            .collect();
        if !acked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0]["actor"], "webcare");

    // A second message in the same case is not acknowledged again.
    host.comment("acme", "901097836652708_9102", ("7101", "Fleur"), "Hallo?")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let comments = host
        .graph_api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/comments") && r.method == "POST")
        .count();
    assert_eq!(comments, 1, "acknowledged once per case");

    // The saved replies are served with {brand} and {sla} filled in.
    let (status, replies) = host.get(&ann, "/api/v1/brands/acme/replies").await;
    assert_eq!(status, 200);
    assert_eq!(
        replies["replies"][0]["text"],
        "Thanks {name}, we are on it and answer within 1 hour. – ACME"
    );
}

/// The `message` field of a form-encoded Graph call.
fn form_urlencoded_message(form: &str) -> String {
    form_urlencoded::parse(form.as_bytes())
        .find(|(key, _)| key == "message")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// The workflow with `[storage] kind = "postgres"`: twenty agents claiming
/// one case at once (the compare-and-swap holds across the pool's
/// connections, as it would across hosts), the winner answering, and
/// PostgreSQL's full-text search finding the message and the note, per
/// brand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_one_claim_wins_and_search_stays_within_its_brand() {
    let Some(db) = TestDatabase::create("workflow_on_postgres").await else {
        return;
    };
    let storage = webcare::queue::open(&StorageConfig::Postgres {
        url: DatabaseUrl::Plain(db.url.clone()),
        pool_size: 8,
        ca_file: None,
    })
    .await
    .unwrap_or_else(|e| panic!("the queue opens in {}: {e}", db.name));
    assert_eq!(storage.backend_name(), "postgres");
    let mut host = start_host_on(storage).await;
    host._db = Some(db);
    let host = Arc::new(host);

    host.comment(
        "acme",
        "901097836652708_7001",
        ("7003", "Ruud"),
        "Mijn zeppelinmodel is kapot aangekomen, ordernummer 5512",
    )
    .await;
    host.comment(
        "globex",
        "901097836652708_7002",
        ("7004", "Mila"),
        "Mijn zeppelinmodel van Globex is ook kapot",
    )
    .await;
    let lead = host.token("lead", Some("acme"), Role::Admin).await;
    let their_lead = host.token("their-lead", Some("globex"), Role::Admin).await;
    let id = host.only_case(&lead, "acme").await["id"].as_i64().unwrap();
    let their_id = host.only_case(&their_lead, "globex").await["id"]
        .as_i64()
        .unwrap();
    assert_ne!(id, their_id);

    let mut agents = Vec::new();
    for n in 0..20 {
        let name = format!("agent-{n}");
        let token = host.token(&name, Some("acme"), Role::Agent).await;
        agents.push((name, token));
    }
    let mut claims = Vec::new();
    for (_, token) in &agents {
        let (host, token) = (host.clone(), token.clone());
        claims.push(tokio::spawn(async move {
            host.post(
                &token,
                &format!("/api/v1/brands/acme/cases/{id}/claim"),
                json!({}),
            )
            .await
        }));
    }
    let mut winners = Vec::new();
    for claim in claims {
        let (status, body) = claim.await.unwrap();
        match status {
            StatusCode::OK => winners.push(body["assignee"].as_str().unwrap().to_string()),
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    let (_, winner) = agents
        .iter()
        .find(|(name, _)| *name == winners[0])
        .expect("the winner is one of the agents");
    let base = format!("/api/v1/brands/acme/cases/{id}");
    let (_, detail) = host.get(&lead, &base).await;
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "claimed"], "one claim in the audit trail");

    // The winner answers; the case waits for the customer.
    let (status, action) = host
        .post(
            winner,
            &format!("{base}/reply"),
            json!({"text": "Wat vervelend! We sturen een nieuwe.", "private": true,
                   "idempotency_key": "pg-reply-1"}),
        )
        .await;
    assert_eq!(status, 200, "{action}");
    assert_eq!(action["state"], "sent");
    assert_eq!(host.private_sends().len(), 1);
    let case = host.only_case(&lead, "acme").await;
    assert_eq!(
        (&case["status"], &case["assignee"]),
        (&json!("pending"), &json!(winners[0]))
    );
    let (status, noted) = host
        .post(
            winner,
            &format!("{base}/notes"),
            json!({"text": "Vervangend exemplaar besteld bij het magazijn"}),
        )
        .await;
    assert_eq!(status, 200, "{noted}");

    // Search: the message and the note, each in this brand only.
    let search = |token: &str, brand: &str, q: &str| {
        let (host, token, path) = (
            host.clone(),
            token.to_string(),
            format!("/api/v1/brands/{brand}/search?q={q}"),
        );
        async move {
            let (status, body) = host.get(&token, &path).await;
            assert_eq!(status, 200, "{path}: {body}");
            body["hits"].as_array().unwrap().clone()
        }
    };
    let hits = search(&lead, "acme", "zeppelinmodel").await;
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0]["case_id"], id);
    assert_eq!(hits[0]["source"], "message");
    assert!(
        hits[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("[zeppelinmodel]"),
        "{hits:#?}"
    );
    let hits = search(&lead, "acme", "magazijn").await;
    assert_eq!(
        (&hits[0]["case_id"], &hits[0]["source"]),
        (&json!(id), &json!("note")),
        "{hits:#?}"
    );
    let hits = search(&their_lead, "globex", "zeppelin*").await;
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(
        hits[0]["case_id"], their_id,
        "their search finds their case only"
    );
    assert!(search(&their_lead, "globex", "magazijn").await.is_empty());
    assert!(search(&their_lead, "globex", "5512").await.is_empty());
    assert!(search(&lead, "acme", "globex").await.is_empty());
    let (status, _) = host
        .get(&lead, "/api/v1/brands/globex/search?q=zeppelinmodel")
        .await;
    assert_eq!(status, 404, "an acme token does not search globex");
}
