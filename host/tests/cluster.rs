//! Three `webcare run` processes on one PostgreSQL queue (see
//! `tests/src/postgres_db.rs`: skipped without a server, failed under CI).
//!
//! Each connector is polled by one host at a time through poll leases, and
//! the hosts share them out (two each); when one host is SIGKILLed
//! mid-ingest, the survivors
//! take them over once the lease expires and resume from the committed
//! cursor, and every message lands exactly once. Webhooks sent round-robin
//! to all three hosts (each delivered twice, to two different hosts) land
//! once too.

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

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_api::{FakeApi, free_port};
use host_process::KillOnDrop;
use postgres_db::TestDatabase;
use serde_json::{Value, json};
use webcare::capabilities::ConnectorId;
use webcare::queue::Storage;
use webcare::queue::postgres::{PostgresOptions, PostgresStorage};

const CONNECTORS: usize = 6;
/// Per connector: 60 pages of 50, each page served after a short delay, so
/// the backlog takes a few seconds to drain and the kill lands mid-ingest.
const BACKLOG: usize = 3_000;
const PAGE: usize = 50;
const PAGE_DELAY: Duration = Duration::from_millis(60);
const HOSTS: usize = 3;
const WEBHOOKS: usize = 90;

/// A channel with `BACKLOG` messages for connector `c`, in threads of five.
async fn backlog(c: usize) -> FakeApi {
    FakeApi::start(fake_feed::backlog_router(
        &format!("c{c}-"),
        BACKLOG,
        5,
        PAGE_DELAY,
    ))
    .await
}

/// The config of host `h`: every connector (each host could poll any),
/// plus a webhook-only connector.
fn write_config(dir: &Path, h: usize, listen: u16, apis: &[FakeApi]) -> PathBuf {
    let token = dir.join("token");
    std::fs::write(&token, "cluster-token").unwrap();
    let plugin = plugins::plugin_path("template_connector");
    let mut toml = format!(
        "[host]\nid = \"host-{h}\"\nlease_time = \"2s\"\ndata_dir = \"data-{h}\"\n\
         listen = \"127.0.0.1:{listen}\"\nshutdown_grace = \"5s\"\n\n\
         [storage]\nkind = \"postgres\"\nurl = {{ env = \"WEBCARE_DATABASE_URL\" }}\npool_size = 4\n\n\
         [[brand]]\nid = \"acme\"\n"
    );
    for (c, api) in apis.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[brand.connector]]\nid = \"feed-{c}\"\nplugin = \"{plugin}\"\npoll_interval = \"1s\"\n\
             allow_hosts = [\"{allow}\"]\n\
             [brand.connector.settings]\nbase_url = \"{base}\"\nbrand_handle = \"acme_care\"\npage_size = {PAGE}\n\
             [brand.connector.secrets]\napi_token = {{ file = \"{token}\" }}\n",
            plugin = plugin.display(),
            allow = api.allow_entry(),
            base = api.base_url(),
            token = token.display(),
        ));
    }
    toml.push_str(&format!(
        "\n[[brand.connector]]\nid = \"shop\"\nplugin = \"{plugin}\"\npoll = false\n\
         [brand.connector.settings]\nbase_url = \"http://127.0.0.1:9\"\nbrand_handle = \"acme_care\"\n\
         [brand.connector.secrets]\napi_token = {{ file = \"{token}\" }}\n",
        plugin = plugin.display(),
        token = token.display(),
    ));
    let path = dir.join(format!("host-{h}.toml"));
    std::fs::write(&path, toml).unwrap();
    path
}

fn spawn(config: &Path, url: &str) -> KillOnDrop {
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_webcare"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .env("WEBCARE_DATABASE_URL", url)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn webcare run"),
    )
}

async fn wait_ready(http: &reqwest::Client, port: u16) {
    let start = Instant::now();
    loop {
        let up = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "host on port {port} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stored(reader: &PostgresStorage, connector: &str) -> u64 {
    reader
        .counts()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.connector.starts_with(connector))
        .map(|c| c.messages)
        .sum()
}

/// A webhook delivery of one new message.
fn delivery(i: usize) -> Value {
    json!({"data": [{
        "id": format!("hook-{i}"), "conversation_id": format!("hook-t{i}"),
        "type": "direct_message", "to_brand": true,
        "author": {"id": format!("w{i}"), "username": format!("webklant{i}")},
        "text": format!("webhook {i}"), "created_at": "2026-11-24T09:00:00Z"
    }], "next": null, "has_more": false})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_hands_its_connectors_over_and_nothing_lands_twice() {
    let Some(db) = TestDatabase::create("cluster_failover").await else {
        return;
    };
    let mut apis = Vec::new();
    for c in 0..CONNECTORS {
        apis.push(backlog(c).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..HOSTS).map(|_| free_port()).collect();
    let configs: Vec<PathBuf> = (0..HOSTS)
        .map(|h| write_config(dir.path(), h, ports[h], &apis))
        .collect();
    // The schema first, so three hosts do not all wait on the migration.
    let reader = PostgresStorage::connect(&db.url, PostgresOptions::default())
        .await
        .unwrap();
    let mut hosts: Vec<Option<KillOnDrop>> = configs
        .iter()
        .map(|config| Some(spawn(config, &db.url)))
        .collect();
    let http = reqwest::Client::new();
    for port in &ports {
        wait_ready(&http, *port).await;
    }

    // The first host up took every lease; as the others join, it gives up
    // its surplus and they take their share: two connectors each.
    let start = Instant::now();
    loop {
        let leases = reader.leases().await.unwrap();
        let per_host: Vec<usize> = (0..HOSTS)
            .map(|h| {
                leases
                    .iter()
                    .filter(|l| l.connector.starts_with("feed") && l.holder == format!("host-{h}"))
                    .count()
            })
            .collect();
        if per_host.iter().all(|n| *n == CONNECTORS / HOSTS) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the connectors were not shared out: {per_host:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Webhooks round-robin over the three hosts, each delivered a second
    // time to the next host (a channel retrying after a timeout).
    for i in 0..WEBHOOKS {
        for attempt in 0..2 {
            let port = ports[(i + attempt) % HOSTS];
            let r = http
                .post(format!("http://127.0.0.1:{port}/webhooks/acme/shop"))
                .json(&delivery(i))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{:?}", r.text().await);
        }
    }
    assert_eq!(
        stored(&reader, "shop").await,
        WEBHOOKS as u64,
        "every webhook message once"
    );

    // Mid-ingest: kill (SIGKILL) the host that holds the most connectors.
    let total = (CONNECTORS * BACKLOG) as u64;
    let start = Instant::now();
    while stored(&reader, "feed").await < total / 10 {
        assert!(start.elapsed() < Duration::from_secs(60), "ingest stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leases = reader.leases().await.unwrap();
    let victim = (0..HOSTS)
        .max_by_key(|h| {
            leases
                .iter()
                .filter(|l| l.holder == format!("host-{h}"))
                .count()
        })
        .unwrap();
    let victim_id = format!("host-{victim}");
    let moved: HashSet<String> = leases
        .iter()
        .filter(|l| l.holder == victim_id)
        .map(|l| l.connector.clone())
        .collect();
    assert!(!moved.is_empty(), "someone holds leases: {leases:?}");
    let mut child = hosts[victim].take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = stored(&reader, "feed").await;
    assert!(
        at_kill < total,
        "the kill came too late to be mid-ingest ({at_kill} of {total})"
    );

    // The survivors finish the backlog: every message exactly once.
    let start = Instant::now();
    loop {
        let now = stored(&reader, "feed").await;
        assert!(now <= total, "no message twice: {now} of {total}");
        if now == total {
            break;
        }
        for (h, host) in hosts.iter_mut().enumerate() {
            if let Some(host) = host {
                assert!(host.try_wait().unwrap().is_none(), "host-{h} exited early");
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out: {now} of {total} after the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in 0..CONNECTORS {
        let id = ConnectorId {
            brand: "acme".into(),
            connector: format!("feed-{c}"),
        };
        assert_eq!(
            reader.cursor(&id).await.unwrap().as_deref(),
            Some(BACKLOG.to_string().as_str()),
            "feed-{c}'s cursor is at the end of its backlog"
        );
    }
    // Distinct external ids: counts equal rows, and rows are unique by
    // (brand, connector, external id), so equal counts mean once each.
    let messages = reader.messages("acme", 0).await.unwrap();
    let distinct: HashSet<(&str, &str)> = messages
        .iter()
        .map(|m| (m.connector.as_str(), m.message.external_id.as_str()))
        .collect();
    assert_eq!(distinct.len(), messages.len());
    assert_eq!(messages.len(), CONNECTORS * BACKLOG + WEBHOOKS);

    // The dead host's connectors move to the survivors once its leases
    // expire (2 s), even those whose backlog it had finished (the backlog
    // can be done before then).
    let start = Instant::now();
    let leases = loop {
        let leases = reader.leases().await.unwrap();
        let stuck: Vec<&str> = leases
            .iter()
            .filter(|l| moved.contains(&l.connector) && l.holder == victim_id)
            .map(|l| l.connector.as_str())
            .collect();
        if stuck.is_empty() {
            break leases;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{stuck:?} never moved off the killed host"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // `webcare status` shows who holds what.
    let status = Command::new(env!("CARGO_BIN_EXE_webcare"))
        .args(["status", "--config"])
        .arg(&configs[0])
        .env("WEBCARE_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let shown = String::from_utf8(status.stdout).unwrap();
    for connector in &moved {
        assert!(shown.contains(connector.as_str()), "{shown}");
    }
    for lease in leases.iter().filter(|l| moved.contains(&l.connector)) {
        let line = shown
            .lines()
            .find(|line| line.contains(&format!(" {} ", lease.connector)))
            .unwrap_or_else(|| panic!("{} is listed: {shown}", lease.connector));
        assert!(line.contains(&lease.holder), "{line}");
    }
    assert!(!shown.contains(&victim_id), "{shown}");
}

async fn readiness(http: &reqwest::Client, port: u16) -> (u16, Value) {
    let r = http
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn eventually_ready(http: &reqwest::Client, port: u16, want: u16) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = readiness(http, port).await;
        if status == want {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "/readyz stayed {status}, not {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/readyz` follows the database: 503 (with the reason) while the host
/// cannot reach its queue, 200 again when it can — so a load balancer
/// stops sending webhooks to a host that could not store them. `/healthz`
/// (the process is alive) stays 200 throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() {
    let Some(db) = TestDatabase::create("cluster_readiness").await else {
        return;
    };
    let api = backlog(0).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), 0, port, std::slice::from_ref(&api));
    let _host = spawn(&config, &db.url);
    let http = reqwest::Client::new();
    wait_ready(&http, port).await;
    let body = eventually_ready(&http, port, 200).await;
    assert_eq!(body["database"]["backend"], "postgres", "{body}");

    let (admin, connection) =
        tokio_postgres::connect(&postgres_db::server_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';",
            name = db.name
        ))
        .await
        .unwrap();
    let body = eventually_ready(&http, port, 503).await;
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["database"]["ok"], false, "{body}");
    let healthz = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200, "alive, only not ready");

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            db.name
        ))
        .await
        .unwrap();
    eventually_ready(&http, port, 200).await;
}

/// Reads the event stream until `done` holds for what came so far.
async fn read_until(stream: &mut reqwest::Response, done: impl Fn(&str) -> bool) -> bool {
    let mut text = String::new();
    let read = async {
        while !done(&text) {
            match stream.chunk().await {
                Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return false,
            }
        }
        true
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .unwrap_or(false)
}

/// An agent's inbox is served by whichever host the load balancer picked;
/// what another host stores or changes reaches it live all the same
/// (PostgreSQL `LISTEN`/`NOTIFY` between the hosts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_on_one_host_sees_what_another_host_stores_and_changes() {
    use webcare::care::store::NewToken;
    use webcare::care::{Role, tokens};

    let Some(db) = TestDatabase::create("cluster_live_events").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let reader = PostgresStorage::connect(&db.url, PostgresOptions::default())
        .await
        .unwrap();
    let _hosts: Vec<KillOnDrop> = (0..2)
        .map(|h| spawn(&write_config(dir.path(), h, ports[h], &[]), &db.url))
        .collect();
    let http = reqwest::Client::new();
    for port in ports {
        wait_ready(&http, port).await;
    }
    let secret = tokens::generate();
    reader
        .care()
        .unwrap()
        .create_token(&NewToken {
            name: "ann".into(),
            brand: Some("acme".into()),
            role: Role::Agent,
            hash: tokens::hash(&secret),
            at: 0,
        })
        .await
        .unwrap();
    let (stores, shows) = (ports[0], ports[1]);
    let mut stream = http
        .get(format!(
            "http://127.0.0.1:{shows}/api/v1/brands/acme/events"
        ))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    // A webhook stored by one host shows on the other's stream. The
    // receiving host listens from its start; a new message every round
    // covers the moment before it does.
    let start = Instant::now();
    let mut i = 0;
    loop {
        let r = http
            .post(format!("http://127.0.0.1:{stores}/webhooks/acme/shop"))
            .json(&delivery(i))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        i += 1;
        if read_until(&mut stream, |t| t.contains("event: messages")).await {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the other host's message never showed on this host's event stream"
        );
    }

    // A claim on the storing host reaches the other host's stream as the
    // case's event.
    let case_id = reader
        .cases(&webcare::queue::CaseFilter {
            brand: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .id;
    let claimed = http
        .post(format!(
            "http://127.0.0.1:{stores}/api/v1/brands/acme/cases/{case_id}/claim"
        ))
        .bearer_auth(&secret)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), 200, "{:?}", claimed.text().await);
    let wanted = format!("\"kind\":\"case\",\"case_id\":{case_id}");
    let mut seen = false;
    for _ in 0..5 {
        if read_until(&mut stream, |t| t.contains(&wanted)).await {
            seen = true;
            break;
        }
    }
    assert!(
        seen,
        "the claim on another host showed on this host's stream"
    );
}
