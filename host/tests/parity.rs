//! The same input gives the same messages whichever way it comes in: through
//! the integrator's tools (`webcare plugin poll` / `webcare plugin webhook`)
//! and through the service (`webcare run`, its scheduler and webhook routes,
//! the SQLite queue, read back with `webcare queue messages --json`). Every
//! channel connector, real `.wasm` plugins, fake channel APIs on loopback.

#[allow(dead_code)]
#[path = "../../tests/src/fake_api.rs"]
mod fake_api;
#[allow(dead_code)]
#[path = "../../tests/src/fake_discourse.rs"]
mod fake_discourse;
#[allow(dead_code)]
#[path = "../../tests/src/fake_facebook.rs"]
mod fake_facebook;
#[allow(dead_code)]
#[path = "../../tests/src/fake_rss.rs"]
mod fake_rss;
#[allow(dead_code)]
#[path = "../../tests/src/fake_twitter.rs"]
mod fake_twitter;
#[path = "../../tests/src/host_process.rs"]
mod host_process;
#[path = "../../tests/src/plugins.rs"]
mod plugins;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_api::{FakeApi, free_port};
use hmac::{Hmac, Mac};
use host_process::KillOnDrop;
use serde_json::Value;
use sha2::Sha256;

const BRAND: &str = "acme";
const DISCOURSE_WEBHOOK_SECRET: &str = "whsec-parity-discourse";
const MAIL_WEBHOOK_TOKEN: &str = "whk-parity-mail";

/// One connector as both the CLI flags and the config file give it.
struct Connector {
    id: &'static str,
    plugin: &'static str,
    /// false: webhook-only in the service.
    poll: bool,
    settings: Vec<(&'static str, String)>,
    secrets: Vec<(&'static str, String)>,
    allow: String,
}

impl Connector {
    fn wasm(&self) -> String {
        plugins::plugin_path(self.plugin).display().to_string()
    }

    /// `--setting`, `--secret`, `--allow-host`, `--brand`, `--connector`.
    fn grant_args(&self) -> Vec<String> {
        let mut args = vec![
            "--brand".into(),
            BRAND.into(),
            "--connector".into(),
            self.id.into(),
            "--allow-host".into(),
            self.allow.clone(),
        ];
        for (k, v) in &self.settings {
            args.extend(["--setting".into(), format!("{k}={v}")]);
        }
        for (k, v) in &self.secrets {
            args.extend(["--secret".into(), format!("{k}={v}")]);
        }
        args
    }

    fn toml(&self) -> String {
        let mut out = format!(
            "[[brand.connector]]\nid = \"{}\"\nplugin = \"{}\"\npoll = {}\npoll_interval = \"1h\"\n\
             allow_hosts = [\"{}\"]\n[brand.connector.settings]\n",
            self.id,
            self.wasm(),
            self.poll,
            self.allow
        );
        for (k, v) in &self.settings {
            out.push_str(&format!("{k} = {}\n", toml_string(v)));
        }
        out.push_str("[brand.connector.secrets]\n");
        for (k, v) in &self.secrets {
            out.push_str(&format!(
                "{k} = {{ env = \"{}\" }}\n",
                secret_env(self.id, k)
            ));
            let _ = v;
        }
        out
    }
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a JSON string is a TOML basic string")
}

fn secret_env(connector: &str, name: &str) -> String {
    format!("PARITY_{connector}_{name}").to_uppercase()
}

/// One webhook delivery: the CLI reads the body from a file, the service
/// gets it on `/webhooks/{brand}/{connector}`.
struct Delivery {
    connector: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(plugins::workspace_root().join("tests/fixtures").join(path))
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// `webcare ...` off the async runtime (the fakes need it to serve).
async fn webcare(args: Vec<String>, envs: Vec<(String, String)>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_webcare"))
            .args(&args)
            .envs(envs)
            .env("RUST_LOG", "warn")
            .env(
                "WEBCARE_CACHE_DIR",
                plugins::workspace_root().join("target/test-component-cache"),
            )
            .output()
            .expect("run webcare")
    })
    .await
    .unwrap()
}

fn json_lines(output: &std::process::Output, what: &str) -> Vec<Value> {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: not JSON: {l}: {e}")))
        .collect()
}

/// Messages only (updates are objects with a single variant key).
fn messages(lines: Vec<Value>) -> Vec<Value> {
    lines
        .into_iter()
        .filter(|l| l.get("external_id").is_some())
        .collect()
}

fn write_config(dir: &Path, port: u16, connectors: &[Connector]) -> PathBuf {
    let mut toml = format!(
        "[host]\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n\n[[brand]]\nid = \"{BRAND}\"\n\n",
        dir.join("data").display()
    );
    for c in connectors {
        toml.push_str(&c.toml());
        toml.push('\n');
    }
    let path = dir.join("webcare.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_and_service_give_the_same_messages_for_every_connector() {
    // The channels, on loopback.
    let x = FakeApi::start(fake_twitter::FakeX::new().router()).await;
    let forum = fake_discourse::Forum::new(
        fake_discourse::fixture_posts(fake_discourse::FORUM_POSTS),
        fake_discourse::fixture_posts(fake_discourse::PRIVATE_POSTS),
        50,
    );
    let discourse = FakeApi::start(fake_discourse::router(forum)).await;
    let site = fake_rss::FeedSite::new(
        fake_rss::FORUM_RSS,
        "application/rss+xml",
        Some("\"v1\""),
        None,
    );
    let rss = FakeApi::start(fake_rss::router(site)).await;
    let graph = FakeApi::start(fake_facebook::graph_router(
        fake_facebook::FakeGraph::default(),
    ))
    .await;

    let connectors = vec![
        Connector {
            id: "x",
            poll: true,
            plugin: "twitter_connector",
            settings: vec![
                ("api_base_url", x.base_url()),
                ("brand_user_id", fake_twitter::BRAND_ID.into()),
                ("brand_username", fake_twitter::BRAND_USERNAME.into()),
                ("search_query", fake_twitter::SEARCH_QUERY.into()),
            ],
            secrets: vec![("bearer_token", fake_twitter::TOKEN.into())],
            allow: x.allow_entry(),
        },
        Connector {
            id: "forum",
            poll: true,
            plugin: "discourse_connector",
            settings: vec![
                ("base_url", discourse.base_url()),
                ("api_username", fake_discourse::API_USERNAME.into()),
                ("support_category_ids", "7, 12".into()),
                ("keywords", "Acme Router, pakket".into()),
            ],
            secrets: vec![
                ("api_key", fake_discourse::API_KEY.into()),
                ("webhook_secret", DISCOURSE_WEBHOOK_SECRET.into()),
            ],
            allow: discourse.allow_entry(),
        },
        Connector {
            id: "community",
            poll: true,
            plugin: "rss_connector",
            settings: vec![("feed_url", format!("{}/feed", rss.base_url()))],
            secrets: vec![],
            allow: rss.allow_entry(),
        },
        Connector {
            id: "facebook",
            poll: true,
            plugin: "facebook_connector",
            settings: vec![
                ("graph_base_url", graph.base_url()),
                ("page_id", fake_facebook::PAGE_ID.into()),
                // Webhooks only here: the poll fallback looks back from "now".
                ("poll_feed", "false".into()),
            ],
            secrets: vec![
                ("page_access_token", fake_facebook::TOKEN.into()),
                ("app_secret", fake_facebook::APP_SECRET.into()),
                ("verify_token", fake_facebook::VERIFY_TOKEN.into()),
            ],
            allow: graph.allow_entry(),
        },
        Connector {
            id: "email",
            // Mail arrives by webhook here (no IMAP server in this test).
            poll: false,
            plugin: "email_connector",
            settings: vec![("brand_address", "support@acme.example".into())],
            secrets: vec![("webhook_token", MAIL_WEBHOOK_TOKEN.into())],
            // Mail arrives by webhook; nothing to reach.
            allow: "http://127.0.0.1:9".into(),
        },
    ];
    let facebook_body = fixture("facebook/webhook-batched.json");
    let discourse_body = fake_discourse::WEBHOOK_POST_CREATED.as_bytes().to_vec();
    let deliveries = vec![
        Delivery {
            connector: "facebook",
            headers: vec![(
                "x-hub-signature-256",
                fake_facebook::sign(&facebook_body, fake_facebook::APP_SECRET),
            )],
            body: facebook_body,
        },
        Delivery {
            connector: "forum",
            headers: vec![
                ("x-discourse-event-type", "post".into()),
                ("x-discourse-event", "post_created".into()),
                (
                    "x-discourse-event-signature",
                    format!(
                        "sha256={}",
                        hmac_hex(DISCOURSE_WEBHOOK_SECRET, &discourse_body)
                    ),
                ),
            ],
            body: discourse_body,
        },
        Delivery {
            connector: "email",
            headers: vec![("x-webhook-token", MAIL_WEBHOOK_TOKEN.into())],
            body: fixture("email/multipart_attachment.eml"),
        },
        Delivery {
            connector: "email",
            headers: vec![("x-webhook-token", MAIL_WEBHOOK_TOKEN.into())],
            body: fixture("email/windows1252_dutch.eml"),
        },
    ];

    // 1. The integrator's tools: one poll per polling connector, one
    //    webhook call per delivery.
    let dir = tempfile::tempdir().unwrap();
    let mut expected: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for c in connectors
        .iter()
        .filter(|c| ["x", "forum", "community"].contains(&c.id))
    {
        let mut args = vec!["plugin".into(), "poll".into(), c.wasm()];
        args.extend(c.grant_args());
        let out = webcare(args, vec![]).await;
        let polled = messages(json_lines(&out, &format!("plugin poll ({})", c.id)));
        assert!(!polled.is_empty(), "{}: the first poll found nothing", c.id);
        expected.entry(c.id).or_default().extend(polled);
    }
    for (i, d) in deliveries.iter().enumerate() {
        let c = connectors.iter().find(|c| c.id == d.connector).unwrap();
        let body = dir.path().join(format!("delivery-{i}"));
        std::fs::write(&body, &d.body).unwrap();
        let mut args = vec![
            "plugin".into(),
            "webhook".into(),
            c.wasm(),
            "--body".into(),
            body.display().to_string(),
        ];
        for (name, value) in &d.headers {
            args.extend(["--header".into(), format!("{name}: {value}")]);
        }
        args.extend(c.grant_args());
        let mut lines = json_lines(&webcare(args, vec![]).await, "plugin webhook").into_iter();
        let response = lines.next().expect("the webhook response");
        assert_eq!(response["status"], 200, "{}: {response}", d.connector);
        let delivered = messages(lines.collect());
        assert!(
            !delivered.is_empty(),
            "{}: delivery gave nothing",
            d.connector
        );
        expected.entry(d.connector).or_default().extend(delivered);
    }

    // 2. The service: the same connectors from a config file, polled by the
    //    scheduler, the same deliveries on its webhook routes.
    let port = free_port();
    let config = write_config(dir.path(), port, &connectors);
    let envs: Vec<(String, String)> = connectors
        .iter()
        .flat_map(|c| {
            c.secrets
                .iter()
                .map(|(k, v)| (secret_env(c.id, k), v.clone()))
        })
        .collect();
    let _service = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_webcare"))
            .args(["run", "--config"])
            .arg(&config)
            .envs(envs.clone())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn webcare run"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "service did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for d in &deliveries {
        let mut request = client
            .post(format!("{base}/webhooks/{BRAND}/{}", d.connector))
            .body(d.body.clone());
        for (name, value) in &d.headers {
            request = request.header(*name, value);
        }
        let status = request.send().await.unwrap().status();
        assert_eq!(status, 200, "service webhook for {}", d.connector);
    }

    // 3. What the queue holds for each connector includes, field for field,
    //    what the tools printed.
    let config_arg = config.display().to_string();
    for (connector, wanted) in &expected {
        let args = |json: bool| {
            let mut a = vec![
                "queue".to_string(),
                "messages".into(),
                "--config".into(),
                config_arg.clone(),
                "--brand".into(),
                BRAND.into(),
                "--connector".into(),
                connector.to_string(),
            ];
            if json {
                a.push("--json".into());
            }
            a
        };
        let started = Instant::now();
        let stored = loop {
            let stored = json_lines(&webcare(args(true), vec![]).await, "queue messages");
            let have = |id: &Value| stored.iter().any(|s| &s["external_id"] == id);
            if wanted.iter().all(|w| have(&w["external_id"])) {
                break stored;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{connector}: the queue lacks some messages the tools printed\nqueue: {stored:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for w in wanted {
            let s = stored
                .iter()
                .find(|s| s["external_id"] == w["external_id"])
                .unwrap();
            assert_eq!(s, w, "{connector}: the service stored another message");
        }
        // And the table for people lists them too.
        let table = webcare(args(false), vec![]).await;
        assert!(table.status.success());
        assert!(
            String::from_utf8_lossy(&table.stdout).lines().count() > wanted.len(),
            "{connector}: table too short"
        );
    }
}
