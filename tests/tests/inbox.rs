//! The web inbox in a real browser: the real host (service, agent API,
//! inbox, SQLite queue) with the real Facebook plugin in front of the fake
//! Graph API, and headless Chromium driven by `tests/browser/inbox.mjs`
//! (Playwright). A comment arrives while the inbox is open; the agent sees
//! it appear live, opens it with the keyboard, claims it and answers in
//! private; the fake Graph must get exactly that Private Reply.
//!
//! Needs `node`, Chromium (`/usr/bin/chromium`, or `CHROMIUM`) and
//! `npm ci --prefix tests/browser`. Without them the test is skipped with a
//! note, except under CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use webcare::care::Role;
use webcare::queue::Storage;
use webcare::queue::sqlite::SqliteStorage;
use webcare::service::{RunningService, ServiceSpec};
use webcare_tests::care_api::{create_token, facebook_spec};
use webcare_tests::fake_api::FakeApi;
use webcare_tests::fake_facebook::{APP_SECRET, FakeGraph, PAGE_ID, graph_router, sign};
use webcare_tests::plugins::workspace_root;

/// The post the customer comments on.
const POST: &str = "1234567890321_901097836652708";
const COMMENT_ID: &str = "901097836652708_4242";
const REPLY: &str = "Hoi Sanne, wat vervelend! Stuur je ons je ordernummer in een DM?";

/// What the browser test needs, or why it cannot run here.
struct Browser {
    node: PathBuf,
    chromium: PathBuf,
    script: PathBuf,
}

fn find_browser() -> Result<Browser, String> {
    let root = workspace_root();
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        return Err(format!(
            "no Chromium at {} (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    let node = PathBuf::from("node");
    let version = std::process::Command::new(&node)
        .arg("--version")
        .output()
        .map_err(|e| format!("no node on PATH ({e})"))?;
    if !version.status.success() {
        return Err("node --version failed".into());
    }
    let modules = root.join("tests/browser/node_modules/playwright-core");
    if !modules.is_dir() {
        return Err(format!(
            "{} is missing (npm ci --prefix tests/browser)",
            modules.display()
        ));
    }
    Ok(Browser {
        node,
        chromium,
        script: root.join("tests/browser/inbox.mjs"),
    })
}

/// A token for `name` in `brand` (`None`: an agency admin).
async fn agent_token(storage: &Arc<dyn Storage>, name: &str, brand: Option<&str>) -> String {
    let role = if brand.is_some() {
        Role::Agent
    } else {
        Role::Admin
    };
    create_token(storage, name, brand, role).await
}

struct Host {
    service: RunningService,
    storage: Arc<dyn Storage>,
    graph: FakeGraph,
    graph_api: FakeApi,
    _dir: tempfile::TempDir,
}

/// Brands acme and globex, each with a Facebook page connector.
async fn start_host() -> Host {
    let graph = FakeGraph::default();
    let graph_api = FakeApi::start(graph_router(graph.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> =
        Arc::new(SqliteStorage::open(&dir.path().join("queue.db")).unwrap());
    let spec = ServiceSpec {
        listen: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        max_webhook_body: 1 << 20,
        connectors: vec![
            facebook_spec("acme", &graph_api),
            facebook_spec("globex", &graph_api),
        ],
        service_levels: Default::default(),
        // A hair trigger, so one comment is a "spike" the banner shows.
        crisis: std::collections::HashMap::from([(
            "acme".to_string(),
            webcare::care::crisis::CrisisPolicy {
                factor: 1.0,
                min_messages: 1,
                ..Default::default()
            },
        )]),
        replies: Default::default(),
        cluster: Default::default(),
        stream: None,
    };
    let service = RunningService::start(&spec, &webcare_tests::runtime(), storage.clone())
        .await
        .expect("the host starts");
    Host {
        service,
        storage,
        graph,
        graph_api,
        _dir: dir,
    }
}

/// A customer's comment on the page's post, signed as Meta sends it.
async fn deliver_comment(http: &reqwest::Client, base: &str) {
    deliver(http, base, "acme", COMMENT_ID).await;
}

async fn deliver(http: &reqwest::Client, base: &str, brand: &str, comment_id: &str) {
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
                    "from": {"id": "7042", "name": "Sanne Bakker"},
                    "created_time": now,
                    "message": "Mijn bestelling is al twee weken onderweg en niemand reageert. Help!"
                }
            }]
        }]
    })
    .to_string();
    let response = http
        .post(format!("{base}/webhooks/{brand}/facebook"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(body.as_bytes(), APP_SECRET))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

/// Waits for `word` alone on a line of the script's stdout.
async fn expect_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    word: &str,
    within: Duration,
) {
    let wait = async {
        while let Some(line) = lines.next_line().await.expect("read the script's stdout") {
            if line.trim() == word {
                return true;
            }
            eprintln!("inbox.mjs: {line}");
        }
        false
    };
    match tokio::time::timeout(within, wait).await {
        Ok(true) => {}
        Ok(false) => panic!("the browser script ended before {word} (its log is above)"),
        Err(_) => panic!("no {word} from the browser script within {within:?}"),
    }
}

/// The browser script, started on a scenario and waiting for a comment.
struct Session {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    screenshot: PathBuf,
}

/// The browser or, when it is missing, `None` after saying why (a failure
/// under CI).
fn browser_or_skip(test: &str) -> Option<Browser> {
    match find_browser() {
        Ok(browser) => Some(browser),
        Err(missing) if std::env::var_os("CI").is_some() => {
            panic!("the browser test cannot run under CI: {missing}")
        }
        Err(missing) => {
            eprintln!("SKIPPED {test}: {missing}");
            None
        }
    }
}

/// Starts the script on `scenario`, logged in as a new agent of acme, and
/// waits until it is READY.
async fn start_session(browser: &Browser, host: &Host, scenario: &str, reply: &str) -> Session {
    let base = format!("http://{}", host.service.addr);
    let token = agent_token(&host.storage, "ann", Some("acme")).await;
    let screenshot = workspace_root().join(format!("target/test-artifacts/inbox-{scenario}.png"));
    let _ = std::fs::remove_file(&screenshot);
    let mut child = Command::new(&browser.node)
        .arg(&browser.script)
        .current_dir(browser.script.parent().unwrap())
        .env("INBOX_URL", &base)
        .env("INBOX_TOKEN", &token)
        .env("INBOX_REPLY", reply)
        .env("INBOX_SCENARIO", scenario)
        .env("CHROMIUM", &browser.chromium)
        .env("SCREENSHOT", &screenshot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    expect_line(&mut lines, "READY", Duration::from_secs(60)).await;
    Session {
        child,
        lines,
        screenshot,
    }
}

impl Session {
    /// Waits for DONE and a clean exit, and checks the screenshot.
    async fn finish(mut self) -> PathBuf {
        expect_line(&mut self.lines, "DONE", Duration::from_secs(90)).await;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the browser script exits")
            .unwrap();
        assert!(status.success(), "the browser script failed: {status}");
        assert!(
            is_png(&self.screenshot),
            "screenshot at {}",
            self.screenshot.display()
        );
        eprintln!("screenshot: {}", self.screenshot.display());
        self.screenshot
    }
}

/// Bodies of the POSTs the fake Graph got on `path`.
fn posts_to(api: &FakeApi, path: &str) -> Vec<Value> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answers_a_live_comment_in_the_browser() {
    let Some(browser) = browser_or_skip("an_agent_answers_a_live_comment_in_the_browser") else {
        return;
    };
    let host = start_host().await;
    let session = start_session(&browser, &host, "private-reply", REPLY).await;
    // The inbox is open and shows an empty queue; now the comment comes.
    let http = reqwest::Client::new();
    deliver_comment(&http, &format!("http://{}", host.service.addr)).await;
    // The comment makes a (hair-trigger) crisis: the page shows its banner.
    let now = jiff::Timestamp::now().as_millisecond();
    let alerts = host.service.shared.check_crisis("acme", now).await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, "volume");
    session.finish().await;

    // The fake Graph got exactly one Private Reply, to the comment, with
    // the text the agent typed (a double click on Send sent it once).
    let sends = posts_to(&host.graph_api, &format!("/v21.0/{PAGE_ID}/messages"));
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["recipient"]["comment_id"], COMMENT_ID);
    assert_eq!(sends[0]["message"]["text"], REPLY);
    assert!(host.service.stop().await, "the host stops in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_answer_shows_its_error_and_retry_sends_it() {
    let Some(browser) = browser_or_skip("a_failed_answer_shows_its_error_and_retry_sends_it")
    else {
        return;
    };
    let host = start_host().await;
    let text = "Dank je, we zoeken het voor je uit!";
    let session = start_session(&browser, &host, "retry", text).await;
    host.graph.fail_next_sends(1);
    let http = reqwest::Client::new();
    deliver_comment(&http, &format!("http://{}", host.service.addr)).await;
    session.finish().await;

    // One refused attempt and one delivered: both the same public reply
    // to the comment.
    let replies: Vec<String> = host
        .graph_api
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == format!("/v21.0/{COMMENT_ID}/comments"))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(replies.len(), 2, "{replies:#?}");
    assert!(replies.iter().all(|r| r.contains("zoeken")), "{replies:#?}");
    assert!(host.service.stop().await, "the host stops in time");
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
}

/// Reads the event stream until `done` says the text so far is enough.
async fn read_events(response: &mut reqwest::Response, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let read = async {
        while !done(&text) {
            let chunk = response.chunk().await.expect("read the stream");
            let chunk = chunk.expect("the stream stays open");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .is_err()
    {
        panic!("the expected events did not come");
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_follows_one_brand_and_ends_when_the_host_stops() {
    let host = start_host().await;
    let base = format!("http://{}", host.service.addr);
    let http = reqwest::Client::new();
    let ann = agent_token(&host.storage, "ann", Some("acme")).await;
    let gus = agent_token(&host.storage, "gus", Some("globex")).await;
    let agency = agent_token(&host.storage, "agency", None).await;
    let events = format!("{base}/api/v1/brands/acme/events");

    // Same auth and brand scope as every other route.
    let response = http.get(&events).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = http.get(&events).bearer_auth(&gus).send().await.unwrap();
    assert_eq!(response.status(), 404, "another brand's token");
    let response = http
        .get(format!("{base}/api/v1/brands/nope/events"))
        .bearer_auth(&agency)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "agency tokens see any brand name");
    drop(response);

    let mut stream = http.get(&events).bearer_auth(&ann).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");

    // Another brand's comment, then acme's: only acme's comes through.
    deliver(&http, &base, "globex", "901097836652708_9101").await;
    deliver(&http, &base, "acme", "901097836652708_9102").await;
    let text = read_events(&mut stream, |t| t.contains("event: messages")).await;
    assert!(
        text.contains("data: {\"brand\":\"acme\",\"kind\":\"messages\"}"),
        "{text}"
    );
    assert!(!text.contains("globex"), "{text}");

    // A claim through the API: a case event naming the case.
    let cases: Value = http
        .get(format!("{base}/api/v1/brands/acme/cases"))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = cases["cases"][0]["id"].as_i64().unwrap();
    let claimed = http
        .post(format!("{base}/api/v1/brands/acme/cases/{id}/claim"))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), 200);
    let expected = format!("data: {{\"brand\":\"acme\",\"kind\":\"case\",\"case_id\":{id}}}");
    let text = read_events(&mut stream, |t| t.contains(&expected)).await;
    assert!(text.contains("event: case\n"), "{text}");

    // The page and its files: typed, locked down, revalidated.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(format!("{base}/inbox"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()["location"], "/inbox/");
    for (path, kind) in [
        ("/inbox/", "text/html; charset=utf-8"),
        ("/inbox/app.js", "text/javascript; charset=utf-8"),
        ("/inbox/inbox.css", "text/css; charset=utf-8"),
    ] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], kind, "{path}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("default-src 'self';"),
            "{path}"
        );
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(headers.contains_key("etag"), "{path}");
    }
    let response = http
        .get(format!("{base}/inbox/secrets.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // The route is documented.
    let doc: Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["paths"]["/api/v1/brands/{brand}/events"]["get"]["operationId"],
        "events"
    );
    assert!(doc["components"]["schemas"]["LiveEvent"].is_object());

    // An open stream does not hold up shutdown.
    assert!(host.service.stop().await, "the host stops in time");
    let rest = tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await;
    assert!(
        matches!(rest, Ok(Ok(None)) | Ok(Err(_))),
        "the stream ended: {rest:?}"
    );
}
