//! The `webcare plugin` commands, run as a real process against real
//! plugins and a fake feed API on loopback.

#[allow(dead_code)]
#[path = "../../tests/src/fake_api.rs"]
mod fake_api;
#[allow(dead_code)]
#[path = "../../tests/src/fake_feed.rs"]
mod fake_feed;
#[path = "../../tests/src/plugins.rs"]
mod plugins;

use std::path::PathBuf;
use std::process::Output;

use fake_api::FakeApi;
use fake_feed::{TOKEN, feed_router};
use plugins::plugin_path;
use serde_json::Value;

fn cache_dir() -> PathBuf {
    plugins::workspace_root()
        .join("target")
        .join("test-component-cache")
}

/// Runs `webcare` off the async runtime (the fake API needs it to serve).
async fn webcare(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_webcare"))
            .args(&args)
            .env("WEBCARE_CACHE_DIR", cache_dir())
            .env("RUST_LOG", "warn")
            .output()
            .expect("run webcare")
    })
    .await
    .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn stdout_json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn inspect_shows_describe_contract_and_capabilities() {
    let template = plugin_path("template_connector").display().to_string();
    let out = webcare(strings(&["plugin", "inspect", &template])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        text.contains("contract:     webcare:connector@0.1.0"),
        "{text}"
    );
    assert!(
        text.contains("capabilities:") && text.contains("http"),
        "{text}"
    );
    assert!(
        text.contains("api_token") && text.contains("secret"),
        "{text}"
    );

    let out = webcare(strings(&["plugin", "inspect", "--json", &template])).await;
    let json = &stdout_json_lines(&out)[0];
    assert_eq!(json["contract"], "webcare:connector@0.1.0");
    assert_eq!(json["plugin"]["name"], "template");
}

#[tokio::test]
async fn poll_prints_messages_as_json_lines_and_the_cursor_on_stderr() {
    let api = FakeApi::start(feed_router()).await;
    let template = plugin_path("template_connector").display().to_string();
    let base = format!("base_url={}", api.base_url());
    let secret = format!("api_token={TOKEN}");
    let allow = api.allow_entry();
    let args = |cursor: Option<&str>| {
        let mut a = strings(&[
            "plugin",
            "poll",
            &template,
            "--setting",
            &base,
            "--setting",
            "brand_handle=acme_care",
            "--setting",
            "page_size=2",
            "--secret",
            &secret,
            "--allow-host",
            &allow,
        ]);
        if let Some(c) = cursor {
            a.extend(strings(&["--cursor", c]));
        }
        a
    };
    let out = webcare(args(None)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["external_id"], "m1");
    assert_eq!(lines[0]["addressed_to_brand"], true);
    assert_eq!(lines[0]["author"]["display_name"], "JAN");
    assert_eq!(lines[1]["text"], "مرحبا، طلبي لم يصل بعد");
    assert!(stderr(&out).contains("next cursor: 2"), "{}", stderr(&out));

    let out = webcare(args(Some("2"))).await;
    let lines = stdout_json_lines(&out);
    assert_eq!(lines[0]["external_id"], "m3");
}

#[tokio::test]
async fn webhook_prints_the_response_then_the_messages() {
    let template = plugin_path("template_connector").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("push.json");
    std::fs::write(
        &body,
        serde_json::to_vec(&serde_json::json!({"data": fake_feed::feed_items()[..1]})).unwrap(),
    )
    .unwrap();
    let common = [
        "--setting",
        "base_url=https://feed.example",
        "--setting",
        "brand_handle=acme_care",
        "--secret",
        "api_token=x1234",
        "--secret",
        "webhook_token=hook-secret-1",
    ];
    let body = body.display().to_string();
    // `webcare plugin webhook` with the common settings plus `extra`.
    let webhook = async |extra: &[&str]| {
        let mut args = strings(&["plugin", "webhook", &template]);
        args.extend(strings(extra));
        args.extend(strings(&common));
        webcare(args).await
    };
    let out = webhook(&["--body", &body, "--header", "X-Feed-Token: hook-secret-1"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_json_lines(&out);
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[1]["external_id"], "m1");

    // Wrong token: the plugin answers 401 and lands nothing.
    let lines =
        stdout_json_lines(&webhook(&["--body", &body, "--header", "X-Feed-Token: wrong"]).await);
    assert_eq!(lines[0]["status"], 401);
    assert_eq!(lines.len(), 1);

    // Verification handshake.
    let handshake = [
        "--body",
        "/dev/null",
        "--method",
        "GET",
        "--query",
        "challenge=4711",
    ];
    let lines = stdout_json_lines(&webhook(&handshake).await);
    assert_eq!(lines[0]["body"], "4711");
}

/// Runs a failing command: non-zero exit, one `error:` line naming the problem.
async fn fails_with(args: Vec<String>, expected: &str) -> String {
    let out = webcare(args).await;
    assert!(!out.status.success(), "expected failure");
    let err = stderr(&out);
    let first = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{err}"));
    assert!(
        first.contains(expected),
        "{first:?} should contain {expected:?}"
    );
    err
}

#[tokio::test]
async fn errors_are_one_clear_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"definitely not wasm").unwrap();
    fails_with(
        strings(&["plugin", "inspect", &junk.display().to_string()]),
        "magic bytes",
    )
    .await;
    fails_with(
        strings(&["plugin", "inspect", "/nonexistent/x.wasm"]),
        "cannot read plugin",
    )
    .await;
    let skewed = plugin_path("skewed_plugin").display().to_string();
    fails_with(
        strings(&["plugin", "inspect", &skewed]),
        "webcare:connector@0.9.0, but this host supports webcare:connector@0.1.x",
    )
    .await;
    let other = plugin_path("not-a-connector").display().to_string();
    fails_with(
        strings(&["plugin", "poll", &other]),
        "is not a webcare channel connector",
    )
    .await;

    let hostile = plugin_path("hostile_plugin").display().to_string();
    fails_with(
        strings(&[
            "plugin",
            "poll",
            &hostile,
            "--setting",
            "mode=loop",
            "--cpu-ms",
            "200",
        ]),
        "cpu budget",
    )
    .await;
    fails_with(
        strings(&[
            "plugin",
            "poll",
            &hostile,
            "--setting",
            "mode=memory-bomb",
            "--memory-mib",
            "16",
        ]),
        "memory limit",
    )
    .await;
    fails_with(
        strings(&[
            "plugin",
            "poll",
            &hostile,
            "--setting",
            "mode=forbidden-host",
            "--setting",
            "target_url=https://api.x.com/2/tweets",
        ]),
        "allow-list",
    )
    .await;
    let err = fails_with(
        strings(&["plugin", "poll", &hostile, "--setting", "mode=panic"]),
        "plugin panicked: hostile plugin panicked on purpose",
    )
    .await;
    assert!(err.contains("guest backtrace"), "{err}");
    fails_with(
        strings(&["plugin", "poll", &hostile, "--setting", "colour=blue"]),
        "colour: unknown setting",
    )
    .await;
    let template = plugin_path("template_connector").display().to_string();
    fails_with(
        strings(&["plugin", "poll", &template]),
        "base_url: required setting is missing",
    )
    .await;
}

#[tokio::test]
async fn perform_answers_a_polled_message_through_the_plugin() {
    let api = FakeApi::start(feed_router()).await;
    let template = plugin_path("template_connector").display().to_string();
    let base = format!("base_url={}", api.base_url());
    let secret = format!("api_token={TOKEN}");
    let allow = api.allow_entry();
    let grants = [
        "--setting",
        &base,
        "--setting",
        "brand_handle=acme_care",
        "--secret",
        &secret,
        "--allow-host",
        &allow,
    ];
    let mut poll = strings(&["plugin", "poll", &template]);
    poll.extend(strings(&grants));
    let out = webcare(poll).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let first = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .next()
        .expect("a message")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("message.json");
    std::fs::write(&message, &first).unwrap();
    let message = message.display().to_string();

    let mut perform = strings(&[
        "plugin",
        "perform",
        &template,
        "--message",
        &message,
        "--private-reply",
        "Stuur ons je ordernummer via DM 🙏",
        "--idempotency-key",
        "case-1-action-1",
    ]);
    perform.extend(strings(&grants));
    let out = webcare(perform).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let result = &stdout_json_lines(&out)[0];
    assert!(result["external_id"].is_string(), "{result}");

    let sent = api
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("the reply reached the feed API");
    assert_eq!(sent.path, "/v1/messages/m1/replies");
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["text"], "Stuur ons je ordernummer via DM 🙏");
    assert_eq!(body["private"], true);
    assert_eq!(body["idempotency_key"], "case-1-action-1");

    // Exactly one action is required.
    let mut neither = strings(&["plugin", "perform", &template, "--message", &message]);
    neither.extend(strings(&grants));
    let out = webcare(neither).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("required"), "{}", stderr(&out));
}
