//! `webcare run` as a child process: two brands, real plugins, fake channel
//! APIs on loopback, the SQLite queue read back through the library.

#[allow(dead_code)]
#[path = "../../tests/src/fake_api.rs"]
mod fake_api;
#[path = "../../tests/src/host_process.rs"]
mod host_process;
#[allow(dead_code)]
#[path = "../../tests/src/plugins.rs"]
mod plugins;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fake_api::{FakeApi, free_port};
use host_process::KillOnDrop;
use plugins::plugin_path;
use serde_json::{Value, json};
use webcare::queue::sqlite::SqliteStorage;
use webcare::queue::{CaseFilter, Storage};

/// A feed of `total` items for `brand`, behind `token`, paged by `limit`.
#[derive(Clone)]
struct Backlog {
    brand: &'static str,
    token: &'static str,
    total: usize,
    served: Arc<AtomicUsize>,
}

async fn backlog_page(
    State(b): State<Backlog>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {}", b.token))
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad token"})),
        )
            .into_response();
    }
    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(50);
    let start: usize = q
        .get("after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(b.total);
    let end = (start + limit).min(b.total);
    let data: Vec<Value> = (start..end)
        .map(|i| {
            json!({
                "id": format!("{}-{i}", b.brand),
                "conversation_id": format!("{}-thread-{}", b.brand, i / 3),
                "type": "mention", "to_brand": true,
                "author": {"id": format!("u{i}"), "username": format!("klant{i}")},
                "text": format!("bericht {i} voor {} ✅", b.brand),
                "created_at": "2026-11-24T08:00:00Z"
            })
        })
        .collect();
    b.served.fetch_add(data.len(), Ordering::SeqCst);
    Json(json!({"data": data, "next": end.to_string(), "has_more": end < b.total})).into_response()
}

async fn backlog_api(
    brand: &'static str,
    token: &'static str,
    total: usize,
) -> (FakeApi, Arc<AtomicUsize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let state = Backlog {
        brand,
        token,
        total,
        served: served.clone(),
    };
    let api = FakeApi::start(
        Router::new()
            .route("/v1/messages", get(backlog_page))
            .with_state(state),
    )
    .await;
    (api, served)
}

struct Brand<'a> {
    id: &'a str,
    api: &'a FakeApi,
    token: &'a str,
    plugin: PathBuf,
    extra: &'a str,
}

/// Writes a config for `brands` into `dir`; secrets go to files.
fn write_config(dir: &Path, listen: &str, brands: &[Brand]) -> PathBuf {
    let mut toml =
        format!("[host]\ndata_dir = \"data\"\nlisten = \"{listen}\"\nshutdown_grace = \"5s\"\n\n");
    for b in brands {
        let secret = dir.join(format!("{}.token", b.id));
        std::fs::write(&secret, b.token).unwrap();
        toml.push_str(&format!(
            "[[brand]]\nid = \"{id}\"\nname = \"{id}\"\ntime_zone = \"Europe/Amsterdam\"\nworking_hours = \"mon-fri 09:00-17:00\"\nfirst_response_target = \"1h\"\n\n\
             [[brand.connector]]\nid = \"feed\"\nplugin = \"{plugin}\"\npoll_interval = \"1s\"\nallow_hosts = [\"{allow}\"]\n{extra}\n\
             [brand.connector.settings]\nbase_url = \"{base}\"\nbrand_handle = \"{id}_care\"\npage_size = 50\n\n\
             [brand.connector.secrets]\napi_token = {{ file = \"{secret}\" }}\n\n",
            id = b.id,
            plugin = b.plugin.display(),
            allow = b.api.allow_entry(),
            base = b.api.base_url(),
            secret = secret.display(),
            extra = b.extra,
        ));
    }
    let path = dir.join("webcare.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn spawn_run(config: &Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_webcare"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn webcare run"),
    )
}

async fn message_count(db: &Path, brand: &str) -> usize {
    if !db.exists() {
        return 0;
    }
    match SqliteStorage::open(db) {
        Ok(s) => s.messages(brand, 0).await.map(|m| m.len()).unwrap_or(0),
        Err(_) => 0,
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "webcare did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brands_land_in_the_queue_isolated_and_stop_cleanly() {
    let (api_a, _) = backlog_api("acme", "token-acme-111", 120).await;
    let (api_b, _) = backlog_api("globex", "token-globex-222", 45).await;
    let dir = tempfile::tempdir().unwrap();
    let template = plugin_path("template_connector");
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &[
            Brand {
                id: "acme",
                api: &api_a,
                token: "token-acme-111",
                plugin: template.clone(),
                extra: "",
            },
            Brand {
                id: "globex",
                api: &api_b,
                token: "token-globex-222",
                plugin: template,
                extra: "",
            },
        ],
    );
    let db = dir.path().join("data").join("webcare.db");
    let mut child = spawn_run(&config);
    wait_for("both backlogs", Duration::from_secs(60), async || {
        message_count(&db, "acme").await == 120 && message_count(&db, "globex").await == 45
    })
    .await;

    let storage = SqliteStorage::open(&db).unwrap();
    let acme = storage.messages("acme", 0).await.unwrap();
    assert!(
        acme.iter()
            .all(|m| m.brand == "acme" && m.message.external_id.starts_with("acme-"))
    );
    let ids: BTreeSet<_> = acme.iter().map(|m| m.message.external_id.clone()).collect();
    assert_eq!(ids.len(), 120, "every message exactly once");
    let globex_cases = storage
        .cases(&CaseFilter {
            brand: Some("globex".into()),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(globex_cases.len(), 15, "45 messages in threads of 3");
    assert!(
        globex_cases.iter().all(|c| c.brand == "globex"),
        "nothing of acme under globex"
    );
    assert_eq!(acme[0].message.text, "bericht 0 voor acme ✅");

    // Health and metrics answer while running.
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("webcare_messages_ingested_total{brand=\"acme\",connector=\"feed\"} 120"),
        "{metrics}"
    );
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let status = terminate(&mut child);
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_ingest_then_restart_loses_and_duplicates_nothing() {
    const TOTAL: usize = 6_000;
    let (api, served) = backlog_api("acme", "token-acme-111", TOTAL).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("127.0.0.1:{}", free_port()),
        &[Brand {
            id: "acme",
            api: &api,
            token: "token-acme-111",
            plugin: plugin_path("template_connector"),
            extra: "",
        }],
    );
    let db = dir.path().join("data").join("webcare.db");
    let mut child = spawn_run(&config);
    wait_for(
        "ingest to be under way",
        Duration::from_secs(60),
        async || {
            let n = message_count(&db, "acme").await;
            (300..TOTAL).contains(&n)
        },
    )
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after_kill = message_count(&db, "acme").await;
    assert!(
        after_kill < TOTAL,
        "the kill happened mid-ingest ({after_kill})"
    );

    let mut child = spawn_run(&config);
    wait_for(
        "the rest of the backlog",
        Duration::from_secs(120),
        async || message_count(&db, "acme").await >= TOTAL,
    )
    .await;
    // Give it a moment to (wrongly) add anything more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let storage = SqliteStorage::open(&db).unwrap();
    let messages = storage.messages("acme", 0).await.unwrap();
    let ids: BTreeSet<_> = messages
        .iter()
        .map(|m| m.message.external_id.clone())
        .collect();
    assert_eq!(messages.len(), TOTAL, "exactly once");
    assert_eq!(ids.len(), TOTAL);
    assert!(served.load(Ordering::SeqCst) >= TOTAL);
    assert!(terminate(&mut child).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_land_and_failures_leave_the_queue_unchanged() {
    let (api, _) = backlog_api("acme", "token-acme-111", 0).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The hostile plugin panics in handle-webhook; the template takes pushes.
    let hostile = plugin_path("hostile_plugin");
    let mut toml_dir_config = write_config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &[Brand {
            id: "acme",
            api: &api,
            token: "token-acme-111",
            plugin: plugin_path("template_connector"),
            extra: "",
        }],
    );
    let mut text = std::fs::read_to_string(&toml_dir_config).unwrap();
    text.push_str(&format!(
        "[[brand]]\nid = \"chaos\"\nname = \"Chaos\"\ntime_zone = \"UTC\"\nworking_hours = \"mon-sun 00:00-24:00\"\nfirst_response_target = \"1h\"\n\n\
         [[brand.connector]]\nid = \"hostile\"\nplugin = \"{}\"\npoll_interval = \"1h\"\n\n[brand.connector.settings]\nmode = \"panic\"\n",
        hostile.display()
    ));
    toml_dir_config = dir.path().join("with-chaos.toml");
    std::fs::write(&toml_dir_config, text).unwrap();
    let db = dir.path().join("data").join("webcare.db");
    let mut child = spawn_run(&toml_dir_config);
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the server", Duration::from_secs(60), async || {
        reqwest::get(format!("{base}/healthz")).await.is_ok()
    })
    .await;
    let client = reqwest::Client::new();
    let post = async |path: &str, body: Vec<u8>| {
        client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    };

    let push = serde_json::to_vec(&json!({"data": [{"id": "w1", "type": "mention", "to_brand": true,
        "author": {"id": "u1", "username": "anna"}, "text": "webhook 👋", "created_at": "2026-11-24T09:00:00Z"}]}))
    .unwrap();
    assert_eq!(post("/webhooks/acme/feed", push.clone()).await, 200);
    assert_eq!(message_count(&db, "acme").await, 1);
    // The same delivery again (channels retry): still one message.
    assert_eq!(post("/webhooks/acme/feed", push.clone()).await, 200);
    assert_eq!(message_count(&db, "acme").await, 1);

    assert_eq!(post("/webhooks/acme/nope", push.clone()).await, 404);
    assert_eq!(
        post("/webhooks/acme/feed", vec![b'x'; 3 * 1024 * 1024]).await,
        413
    );
    assert_eq!(
        post("/webhooks/acme/feed", b"{not json".to_vec()).await,
        400
    );
    assert_eq!(post("/webhooks/chaos/hostile", push).await, 500);
    assert_eq!(message_count(&db, "acme").await, 1);
    assert_eq!(message_count(&db, "chaos").await, 0);
    assert!(terminate(&mut child).success());
}

#[test]
fn check_names_the_broken_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[host]\nlisten = \"127.0.0.1:0\"\n\n[[brand]]\nid = \"acme\"\nname = \"ACME\"\ntime_zone = \"UTC\"\nworking_hours = \"mon-fri 09:00-17:00\"\nfirst_response_target = \"1h\"\n\n[[brand.connector]]\nid = \"feed\"\nplugin = \"missing.wasm\"\npol_interval = \"60s\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_webcare"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pol_interval"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_connector_is_unhealthy_and_the_others_carry_on() {
    let (good_api, _) = backlog_api("acme", "token-acme-111", 30).await;
    let (bad_api, _) = backlog_api("globex", "token-globex-222", 30).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let template = plugin_path("template_connector");
    let config = write_config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &[
            Brand {
                id: "acme",
                api: &good_api,
                token: "token-acme-111",
                plugin: template.clone(),
                extra: "",
            },
            // Revoked credentials: the API answers 401.
            Brand {
                id: "globex",
                api: &bad_api,
                token: "revoked-token-999",
                plugin: template,
                extra: "",
            },
        ],
    );
    let db = dir.path().join("data").join("webcare.db");
    let mut child = spawn_run(&config);
    wait_for("the healthy brand", Duration::from_secs(60), async || {
        message_count(&db, "acme").await == 30
    })
    .await;
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    wait_for("the unhealthy mark", Duration::from_secs(30), async || {
        let text = reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.contains("webcare_connector_healthy{brand=\"globex\",connector=\"feed\"} 0")
            && text.contains(
                "webcare_errors_total{brand=\"globex\",connector=\"feed\",kind=\"unauthorized\"} 1",
            )
            && text.contains("webcare_connector_healthy{brand=\"acme\",connector=\"feed\"} 1")
    })
    .await;
    assert_eq!(message_count(&db, "globex").await, 0);

    // `/status` tells the operator which connector needs a person, and why.
    let status: Value = reqwest::get(format!("http://127.0.0.1:{port}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connectors = status["connectors"].as_array().expect("connectors");
    assert_eq!(connectors.len(), 2, "{status}");
    let (acme, globex) = (&connectors[0], &connectors[1]);
    assert_eq!(acme["brand"], "acme");
    assert_eq!(acme["healthy"], true);
    assert_eq!(acme["needs_attention"], false);
    assert!(acme["last_success_at"].as_i64().is_some(), "{acme}");
    assert_eq!(globex["brand"], "globex");
    assert_eq!(globex["channel"], "feed");
    assert_eq!(globex["healthy"], false);
    assert_eq!(globex["needs_attention"], true, "{globex}");
    assert_eq!(globex["last_success_at"], Value::Null);
    assert_eq!(globex["last_error"]["kind"], "unauthorized", "{globex}");
    assert!(
        !globex["last_error"]["detail"]
            .as_str()
            .unwrap()
            .contains("revoked-token-999"),
        "secrets never appear: {globex}"
    );

    // `webcare queue list` shows only the asked brand, as a table or JSON lines.
    let out = Command::new(env!("CARGO_BIN_EXE_webcare"))
        .args(["queue", "list", "--brand", "acme", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10, "30 messages in threads of 3");
    assert!(
        lines
            .iter()
            .all(|c| c["brand"] == "acme" && c["status"] == "new")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_webcare"))
        .args(["queue", "list", "--status", "open", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("(no cases)"));
    assert!(terminate(&mut child).success());
}

#[test]
fn the_example_configs_pass_check() {
    plugin_path("template_connector"); // builds the plugins the examples name
    let root = plugins::workspace_root();
    for example in ["examples/single-brand.toml", "examples/agency.toml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_webcare"))
            .args(["check", "--config"])
            .arg(root.join(example))
            .env("ACME_FEED_TOKEN", "example-token-acme")
            .env("ACME_X_REFRESH_TOKEN", "example-x-refresh-token")
            .env("ACME_X_CLIENT_SECRET", "example-x-client-secret")
            .env("ACME_FB_PAGE_TOKEN", "example-page-token")
            .env("ACME_FB_APP_SECRET", "example-app-secret")
            .env("ACME_FB_VERIFY_TOKEN", "example-verify-token")
            .env("ACME_MAIL_PASSWORD", "example-mail-password")
            .env("GLOBEX_DISCOURSE_API_KEY", "example-discourse-key")
            .env("INITECH_FEED_TOKEN", "example-token-initech")
            .env(
                "WEBCARE_CACHE_DIR",
                root.join("target/test-component-cache"),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
