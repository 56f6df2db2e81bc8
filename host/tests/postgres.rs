//! The PostgreSQL queue against a real server (see
//! `tests/src/postgres_db.rs`: skipped without one, failed under CI):
//! the shared storage suite and the case workflow's suite
//! (`webcare::care::suite`), e-mail links at ingest, migrations, two hosts committing the same
//! messages at once, the state store, `webcare run` with
//! `kind = "postgres"`, and the config and connection errors an operator
//! sees.

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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_api::{FakeApi, free_port};
use host_process::KillOnDrop;
use postgres_db::TestDatabase;
use webcare::capabilities::{ConnectorId, StateError, StateStore};
use webcare::care::suite as care_suite;
use webcare::model::{Author, Direction, Engagement, Message, MessageKind, Visibility};
use webcare::queue::postgres::{PostgresOptions, PostgresStorage};
use webcare::queue::{CaseFilter, IngestBatch, Storage, StorageError, suite};

async fn storage(db: &TestDatabase) -> PostgresStorage {
    PostgresStorage::connect(&db.url, PostgresOptions::default())
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", db.name))
}

/// One test per suite property, each on a database of its own.
macro_rules! suite_tests {
    ($($property:ident),* $(,)?) => {
        mod suite_properties {
            use super::*;
            $(
                #[tokio::test]
                async fn $property() {
                    let Some(db) = TestDatabase::create(stringify!($property)).await else {
                        return;
                    };
                    let storage = storage(&db).await;
                    suite::$property(&storage).await;
                }
            )*
        }
    };
}

suite_tests!(
    dedup_on_external_id,
    batch_and_cursor_commit_together,
    failed_commit_changes_nothing,
    cases_group_by_thread_and_reopen,
    outbound_never_opens_a_case,
    updates_edit_delete_hide,
    unknown_updates_are_counted,
    brands_are_isolated,
    cases_list_newest_first,
    messages_list_oldest_first,
    counts_per_connector_and_channel,
    state_is_per_connector,
    poll_leases_have_one_holder,
);

/// One test per case-workflow property (`webcare::care::suite`), each on
/// a database of its own.
macro_rules! care_suite_tests {
    ($($property:ident),* $(,)?) => {
        mod care_suite_properties {
            use super::*;
            $(
                #[tokio::test]
                async fn $property() {
                    let Some(db) = TestDatabase::create(stringify!($property)).await else {
                        return;
                    };
                    let storage = storage(&db).await;
                    care_suite::$property(&storage).await;
                }
            )*
        }
    };
}

care_suite_tests!(
    ignored_messages_open_no_case,
    mismatched_triage_is_refused,
    triage_sets_and_raises_priority,
    inbound_reopens_with_new_priority,
    waiting_since_keeps_the_oldest_unanswered,
    outbound_never_changes_priority,
    write_case_is_compare_and_swap,
    care_reads_are_isolated_per_brand,
    case_list_orders_filters_and_pages,
    actions_are_idempotent_and_retried,
    search_finds_messages_and_notes,
    search_input_is_never_syntax,
    tokens_create_list_revoke,
);

/// The care suite's outbox property, on a storage with the outbox on.
#[tokio::test]
async fn outbox_follows_every_case_change() {
    let Some(db) = TestDatabase::create("outbox_follows_every_case_change").await else {
        return;
    };
    let options = PostgresOptions {
        outbox: true,
        ..PostgresOptions::default()
    };
    let storage = PostgresStorage::connect(&db.url, options)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", db.name));
    care_suite::outbox_follows_every_case_change(&storage).await;
}

/// The care suite twice on one database, from two threads' worth of
/// runtime: its properties keep to brands of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_care_suite_twice_on_one_database() {
    let Some(db) = TestDatabase::create("whole_care_suite_twice_on_one_database").await else {
        return;
    };
    let storage = storage(&db).await;
    care_suite::run_all(&storage).await;
    care_suite::run_all(&storage).await;
}

/// The suite twice on one database on a multi-threaded runtime: every
/// property keeps to its own brands, so a database with data in it is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite_twice_on_one_database() {
    let Some(db) = TestDatabase::create("whole_suite_twice_on_one_database").await else {
        return;
    };
    let storage = storage(&db).await;
    suite::run_all(&storage).await;
    suite::run_all(&storage).await;
}

async fn applied_versions(url: &str) -> Vec<(i32, i64)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query(
            "SELECT version, applied_at FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_race_free() {
    let Some(db) = TestDatabase::create("migrations_are_idempotent_and_race_free").await else {
        return;
    };
    // Four hosts starting at once on an empty database.
    let opened = futures_join_all(
        (0..4)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move {
                    PostgresStorage::connect(&url, PostgresOptions::default()).await
                })
            })
            .collect(),
    )
    .await;
    for result in opened {
        result.expect("every host starts");
    }
    let first = applied_versions(&db.url).await;
    let versions: Vec<i32> = first.iter().map(|(v, _)| *v).collect();
    assert!(
        versions.len() >= 2 && versions.iter().copied().eq(1..=versions.len() as i32),
        "every migration is recorded once: {versions:?}"
    );
    drop(storage(&db).await);
    drop(storage(&db).await);
    assert_eq!(
        applied_versions(&db.url).await,
        first,
        "reopening applies nothing again"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(db) = TestDatabase::create("a_newer_schema_is_refused").await else {
        return;
    };
    drop(storage(&db).await);
    let known = applied_versions(&db.url).await.len();
    let newer = known + 1;
    execute(
        &db.url,
        &format!("INSERT INTO schema_migrations (version, applied_at) VALUES ({newer}, 0)"),
    )
    .await;
    let error = PostgresStorage::connect(&db.url, PostgresOptions::default())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StorageError::Schema(_)), "{error:?}");
    assert!(
        text.contains(&format!("schema version {newer}"))
            && text.contains(&format!("up to {known}"))
            && text.contains(&db.name),
        "the error names both versions and the database: {text}"
    );
}

async fn futures_join_all<T: Send + 'static>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task panicked"));
    }
    out
}

fn owner(brand: &str, connector: &str) -> ConnectorId {
    ConnectorId {
        brand: brand.to_string(),
        connector: connector.to_string(),
    }
}

fn message(n: usize, thread: usize, direction: Direction) -> Message {
    Message {
        external_id: format!("m{n}"),
        thread_id: format!("t{thread}"),
        in_reply_to: None,
        kind: MessageKind::Mention,
        visibility: Visibility::Public,
        direction,
        addressed_to_brand: direction == Direction::Inbound,
        author: Author {
            id: format!("u{n}"),
            handle: format!("klant{n}"),
            display_name: "Klant".to_string(),
            followers: Some(10),
            verified: false,
            profile_url: None,
            email: None,
        },
        text: format!("bericht {n} 📦"),
        html: None,
        subject: None,
        language: Some("nl".to_string()),
        created_at: 1_736_154_000_000 + (n as i64) * 1000,
        permalink: None,
        attachments: Vec::new(),
        metrics: Engagement::default(),
        properties: Vec::new(),
    }
}

/// Two hosts (two storages, two pools) commit the same 1 000 messages in
/// 100-message batches at once, one front to back, the other back to front,
/// several batches in flight each: every message is stored once, every
/// thread has one case, and each case counts each of its messages once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_committing_the_same_messages_store_each_once() {
    let Some(db) = TestDatabase::create("two_hosts_same_messages").await else {
        return;
    };
    const TOTAL: usize = 1000;
    const THREADS: usize = 70;
    // Threads spread over the batches, so that both hosts touch the same
    // cases in every batch; every seventh message is the brand's answer.
    let messages: Vec<Message> = (0..TOTAL)
        .map(|n| {
            let direction = if n % 7 == 3 {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            message(n, (n * 31) % THREADS, direction)
        })
        .collect();
    // Threads with an inbound message have a case (those with only the
    // brand's answers, threads 2, 9, 16, ..., have none).
    let with_case = messages
        .iter()
        .filter(|m| m.direction == Direction::Inbound)
        .map(|m| m.thread_id.clone())
        .collect::<std::collections::HashSet<_>>()
        .len();
    assert!(with_case > 0 && with_case < THREADS);
    let messages = Arc::new(messages);
    let hosts = [Arc::new(storage(&db).await), Arc::new(storage(&db).await)];
    let feed = owner("acme", "feed");
    let mut tasks = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        for lane in 0..3 {
            let (host, messages, feed) = (Arc::clone(host), Arc::clone(&messages), feed.clone());
            tasks.push(tokio::spawn(async move {
                let mut batches: Vec<usize> = (0..TOTAL / 100).filter(|b| b % 3 == lane).collect();
                if h == 1 {
                    batches.reverse();
                }
                let mut outcomes = Vec::new();
                for b in batches {
                    let batch = IngestBatch {
                        channel: "feed",
                        messages: &messages[b * 100..(b + 1) * 100],
                        triage: &[],
                        updates: &[],
                        next_cursor: None,
                    };
                    outcomes.push(host.commit(&feed, batch).await.expect("commit"));
                }
                outcomes
            }));
        }
    }
    let outcomes: Vec<_> = futures_join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect();
    let inserted: usize = outcomes.iter().map(|o| o.inserted).sum();
    let duplicates: usize = outcomes.iter().map(|o| o.duplicates).sum();
    let opened: usize = outcomes.iter().map(|o| o.cases_opened).sum();
    assert_eq!(inserted, TOTAL, "each message inserted by exactly one host");
    assert_eq!(duplicates, TOTAL, "and found a duplicate by the other");

    let stored = hosts[0].messages("acme", 0).await.unwrap();
    assert_eq!(stored.len(), TOTAL, "one copy of each message");
    let cases = hosts[1]
        .cases(&CaseFilter {
            brand: Some("acme".into()),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(cases.len(), with_case, "one case per thread");
    assert_eq!(opened, with_case, "each case opened by exactly one commit");
    // What one host alone would have built: per thread, the messages from
    // the first inbound one on (in id order) belong to the case.
    let mut per_case: HashMap<i64, u64> = HashMap::new();
    for m in &stored {
        if let Some(case) = m.case_id {
            *per_case.entry(case).or_default() += 1;
        }
    }
    for case in &cases {
        assert_eq!(
            case.message_count, per_case[&case.id],
            "case {} ({}) counts each of its messages once",
            case.id, case.thread_id
        );
        let first_inbound = stored
            .iter()
            .filter(|m| {
                m.message.thread_id == case.thread_id && m.message.direction == Direction::Inbound
            })
            .map(|m| m.message.created_at)
            .min()
            .unwrap();
        assert_eq!(case.first_message_at, first_inbound, "{case:?}");
    }
    let linked: u64 = per_case.values().sum();
    let unlinked = stored.iter().filter(|m| m.case_id.is_none()).count() as u64;
    assert_eq!(linked + unlinked, TOTAL as u64);
    assert!(
        stored
            .iter()
            .filter(|m| m.case_id.is_none())
            .all(|m| m.message.direction == Direction::Outbound),
        "only answers before a thread's first inbound message are without a case"
    );
}

/// The state store is synchronous and called from plugin calls on the
/// runtime's threads. It must work on a current-thread runtime while the
/// same runtime has commits in flight (it must not need that runtime to
/// make progress), on a multi-threaded runtime, and outside any runtime.
#[tokio::test(flavor = "current_thread")]
async fn state_store_works_on_a_current_thread_runtime_during_commits() {
    let Some(db) = TestDatabase::create("state_store_current_thread").await else {
        return;
    };
    let storage = Arc::new(storage(&db).await);
    let feed = owner("acme", "feed");
    let messages: Vec<Message> = (0..300)
        .map(|n| message(n, n % 10, Direction::Inbound))
        .collect();
    let committing = {
        let (storage, feed) = (Arc::clone(&storage), feed.clone());
        tokio::spawn(async move {
            for chunk in messages.chunks(100) {
                let batch = IngestBatch {
                    channel: "feed",
                    messages: chunk,
                    triage: &[],
                    updates: &[],
                    next_cursor: Some("c"),
                };
                storage.commit(&feed, batch).await.unwrap();
            }
        })
    };
    let store = storage.state_store();
    for i in 0..50 {
        // Blocks this runtime's only thread, with the commit task parked on it.
        store
            .set(&feed, "since_id", format!("{i}").as_bytes())
            .unwrap();
        tokio::task::yield_now().await;
    }
    committing.await.unwrap();
    assert_eq!(
        store.get(&feed, "since_id").unwrap().as_deref(),
        Some(&b"49"[..])
    );

    // Outside any runtime, and from another thread.
    let other = Arc::clone(&store);
    let feed2 = feed.clone();
    std::thread::spawn(move || {
        other.set(&feed2, "from-thread", b"ok").unwrap();
        assert_eq!(
            other.get(&feed2, "from-thread").unwrap().as_deref(),
            Some(&b"ok"[..])
        );
    })
    .join()
    .unwrap();
    store.delete(&feed, "from-thread").unwrap();
    assert_eq!(store.get(&feed, "from-thread").unwrap(), None);
}

/// Two hosts filling the same connector's state at once never exceed the
/// limit together: the size check and the write are serialised per
/// connector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_limit_holds_across_two_hosts() {
    use webcare::capabilities::state::{MAX_TOTAL_BYTES, MAX_VALUE_BYTES};
    let Some(db) = TestDatabase::create("state_limit_two_hosts").await else {
        return;
    };
    let stores: Vec<Arc<dyn StateStore>> = vec![
        storage(&db).await.state_store(),
        storage(&db).await.state_store(),
    ];
    let feed = owner("acme", "feed");
    let chunk = vec![7_u8; MAX_VALUE_BYTES];
    let threads: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(h, store)| {
            let (store, feed, chunk) = (Arc::clone(store), feed.clone(), chunk.clone());
            std::thread::spawn(move || {
                let mut stored = 0;
                for i in 0..20 {
                    match store.set(&feed, &format!("h{h}-{i:02}"), &chunk) {
                        Ok(()) => stored += 1,
                        Err(StateError::TooLarge(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                stored
            })
        })
        .collect();
    let stored: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let fits = MAX_TOTAL_BYTES / (MAX_VALUE_BYTES + 5);
    assert_eq!(stored, fits, "exactly as many values as fit, not more");
}

/// The data outlives the storage, and a second storage sees the first's
/// messages, cursor and state.
#[tokio::test]
async fn data_survives_reconnect() {
    let Some(db) = TestDatabase::create("data_survives_reconnect").await else {
        return;
    };
    let feed = owner("acme", "feed");
    {
        let storage = storage(&db).await;
        let messages = [message(1, 1, Direction::Inbound)];
        let batch = IngestBatch {
            channel: "feed",
            messages: &messages,
            triage: &[],
            updates: &[],
            next_cursor: Some("c-1"),
        };
        storage.commit(&feed, batch).await.unwrap();
        storage
            .state_store()
            .set(&feed, "token_expiry", b"1736157600")
            .unwrap();
    }
    let storage = storage(&db).await;
    assert_eq!(storage.messages("acme", 0).await.unwrap().len(), 1);
    assert_eq!(storage.cursor(&feed).await.unwrap().as_deref(), Some("c-1"));
    assert_eq!(
        storage
            .state_store()
            .get(&feed, "token_expiry")
            .unwrap()
            .as_deref(),
        Some(&b"1736157600"[..])
    );
}

/// A NUL in a message (PostgreSQL's text cannot hold one) is stored; the
/// message comes back exactly as delivered.
#[tokio::test]
async fn nul_characters_round_trip() {
    let Some(db) = TestDatabase::create("nul_characters_round_trip").await else {
        return;
    };
    let storage = storage(&db).await;
    let feed = owner("acme", "feed");
    let mut m = message(1, 1, Direction::Inbound);
    m.text = "voor\0na".to_string();
    m.external_id = "id\0x".to_string();
    m.author.handle = "nul\0handle".to_string();
    let batch = IngestBatch {
        channel: "feed",
        messages: std::slice::from_ref(&m),
        triage: &[],
        updates: &[],
        next_cursor: Some("page\0two"),
    };
    assert_eq!(storage.commit(&feed, batch).await.unwrap().inserted, 1);
    assert_eq!(
        storage.cursor(&feed).await.unwrap().as_deref(),
        Some("page\0two"),
        "a cursor comes back exactly"
    );
    let back = storage.messages("acme", 0).await.unwrap();
    assert_eq!(back[0].message, m);
    storage.state_store().set(&feed, "k\0ey", b"\0").unwrap();
    assert_eq!(
        storage.state_store().get(&feed, "k\0ey").unwrap(),
        Some(vec![0])
    );
}

// ---------------------------------------------------------------- the binary

/// A feed of `total` messages in threads of three.
async fn backlog(total: usize) -> FakeApi {
    FakeApi::start(fake_feed::backlog_router("pg-", total, 3, Duration::ZERO)).await
}

fn write_config(dir: &Path, storage: &str, api: Option<&FakeApi>, listen: u16) -> PathBuf {
    let mut toml = format!(
        "[host]\ndata_dir = \"data\"\nlisten = \"127.0.0.1:{listen}\"\nshutdown_grace = \"5s\"\n\n\
         {storage}\n\n[[brand]]\nid = \"acme\"\n"
    );
    if let Some(api) = api {
        let token = dir.join("token");
        std::fs::write(&token, "pg-token").unwrap();
        toml.push_str(&format!(
            "\n[[brand.connector]]\nid = \"feed\"\nplugin = \"{plugin}\"\npoll_interval = \"1s\"\n\
             allow_hosts = [\"{allow}\"]\n\
             [brand.connector.settings]\nbase_url = \"{base}\"\nbrand_handle = \"acme_care\"\npage_size = 50\n\
             [brand.connector.secrets]\napi_token = {{ file = \"{token}\" }}\n",
            plugin = plugins::plugin_path("template_connector").display(),
            allow = api.allow_entry(),
            base = api.base_url(),
            token = token.display(),
        ));
    }
    let path = dir.join("webcare.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn webcare(args: &[&str], config: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_webcare"));
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .env_remove("WEBCARE_DATABASE_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// `webcare run` with the queue in PostgreSQL: a connector's backlog lands
/// there once, and `webcare queue list` reads it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webcare_run_ingests_into_postgres() {
    let Some(db) = TestDatabase::create("webcare_run_ingests_into_postgres").await else {
        return;
    };
    let api = backlog(120).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[storage]\nkind = \"postgres\"\nurl = { env = \"WEBCARE_DATABASE_URL\" }\npool_size = 4",
        Some(&api),
        free_port(),
    );
    let mut child = KillOnDrop(
        webcare(&["run"], &config, &[("WEBCARE_DATABASE_URL", &db.url)])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn webcare run"),
    );
    let reader = storage(&db).await;
    let start = Instant::now();
    loop {
        let stored = reader.messages("acme", 0).await.unwrap().len();
        if stored == 120 {
            break;
        }
        assert!(stored <= 120, "no message twice: {stored}");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("webcare run exited early: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "timed out: {stored} of 120 messages in PostgreSQL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let feed = owner("acme", "feed");
    assert_eq!(
        reader.cursor(&feed).await.unwrap().as_deref(),
        Some("120"),
        "the cursor is committed with the last page"
    );
    assert!(
        !dir.path().join("data/webcare.db").exists(),
        "no SQLite file is created"
    );

    let listed = webcare(
        &["queue", "list", "--json"],
        &config,
        &[("WEBCARE_DATABASE_URL", &db.url)],
    )
    .output()
    .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let cases = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(cases.lines().count(), 40, "120 messages in threads of 3");
    assert!(cases.contains(&fake_feed::backlog_text(0)), "{cases}");

    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no clean stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

/// What an operator sees for a wrong `[storage]`: one line per problem,
/// naming the key, never a password.
#[test]
fn storage_config_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    // (the [storage] table, the environment, what the error must say)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            "[storage]\nkind = \"postgres\"\nurl = { env = \"WEBCARE_DATABASE_URL\" }\ncolour = \"blue\"",
            &[("WEBCARE_DATABASE_URL", "postgres://postgres@127.0.0.1/x")],
            &["storage.colour", "unknown key", "pool_size"],
        ),
        (
            "[storage]\nkind = \"postgres\"\nurl = { env = \"WEBCARE_DATABASE_URL\" }",
            &[],
            &[
                "storage.url",
                "environment variable WEBCARE_DATABASE_URL is not set",
            ],
        ),
        (
            "[storage]\nkind = \"postgres\"\nurl = \"postgres://care:hunter2@db.internal/queue\"",
            &[],
            &[
                "storage.url",
                "a password may not be written into the config file",
            ],
        ),
        (
            "[storage]\nkind = \"postgres\"\npath = \"queue.db\"",
            &[],
            &[
                "storage.path",
                "only for kind = \"sqlite\"",
                "storage.url",
                "missing",
            ],
        ),
        (
            "[storage]\npool_size = 4",
            &[],
            &["storage.pool_size", "only for kind = \"postgres\""],
        ),
        (
            "[storage]\nkind = \"postgres\"\nurl = { env = \"WEBCARE_DATABASE_URL\" }\npool_size = 0",
            &[("WEBCARE_DATABASE_URL", "postgres://postgres@127.0.0.1/x")],
            &["storage.pool_size", "must be 1 to"],
        ),
    ];
    for (storage, env, says) in cases {
        let config = write_config(dir.path(), storage, None, free_port());
        let out = webcare(&["check"], &config, env).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{storage}: accepted");
        for word in *says {
            assert!(
                stderr.contains(word),
                "{storage}: {word:?} not in\n{stderr}"
            );
        }
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// A server that cannot be reached: one error line that names the host,
/// never the password.
#[test]
fn an_unreachable_server_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens there
    let url = format!("postgres://care:hunter2@127.0.0.1:{port}/queue");
    let config = write_config(
        dir.path(),
        "[storage]\nkind = \"postgres\"\nurl = { env = \"WEBCARE_DATABASE_URL\" }",
        None,
        free_port(),
    );
    let out = webcare(
        &["queue", "list"],
        &config,
        &[("WEBCARE_DATABASE_URL", &url)],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains(&format!(
            "cannot reach PostgreSQL at postgres://care@127.0.0.1:{port}/queue"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// A statement failing in the middle of the pipelined commit (here the
/// cursor, the last write, failed by a trigger the test adds) takes the
/// whole batch with it, although `COMMIT` was already on its way; the
/// storage stays usable.
#[tokio::test]
async fn a_failure_late_in_the_commit_rolls_everything_back() {
    let Some(db) = TestDatabase::create("late_failure_rolls_back").await else {
        return;
    };
    let storage = storage(&db).await;
    let feed = owner("acme", "feed");
    let first = [message(1, 1, Direction::Inbound)];
    let ok = IngestBatch {
        channel: "feed",
        messages: &first,
        triage: &[],
        updates: &[],
        next_cursor: Some("c-1"),
    };
    storage.commit(&feed, ok).await.unwrap();

    let second = [
        message(2, 1, Direction::Inbound),
        message(3, 2, Direction::Inbound),
    ];
    let hide = [webcare::model::MessageUpdate::Hidden(
        webcare::model::Removal {
            external_id: "m1".to_string(),
            thread_id: None,
            at: None,
            by: None,
        },
    )];
    let bad = IngestBatch {
        channel: "feed",
        messages: &second,
        triage: &[],
        updates: &hide,
        next_cursor: Some("c-2"),
    };
    execute(
        &db.url,
        "CREATE FUNCTION fail_cursor() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'injected cursor failure'; END $$;
         CREATE TRIGGER fail_cursor BEFORE UPDATE ON cursors
             FOR EACH ROW EXECUTE FUNCTION fail_cursor();",
    )
    .await;
    let error = storage.commit(&feed, bad).await.unwrap_err();
    assert!(
        error.to_string().contains("injected cursor failure")
            && error.to_string().contains("acme/feed"),
        "the error says what failed and whose commit it was: {error}"
    );
    execute(&db.url, "DROP TRIGGER fail_cursor ON cursors").await;
    let messages = storage.messages("acme", 0).await.unwrap();
    assert_eq!(messages.len(), 1, "the batch's messages were rolled back");
    assert!(!messages[0].hidden, "the batch's update was rolled back");
    let cases = storage.cases(&CaseFilter::default()).await.unwrap();
    assert_eq!(cases.len(), 1, "the batch's new case was rolled back");
    assert_eq!(cases[0].message_count, 1, "the case update was rolled back");
    assert_eq!(storage.cursor(&feed).await.unwrap().as_deref(), Some("c-1"));

    for _ in 0..10 {
        // More commits than the pool has connections: none is left in a
        // half-finished transaction.
        let again = IngestBatch {
            channel: "feed",
            messages: &second,
            triage: &[],
            updates: &[],
            next_cursor: None,
        };
        storage.commit(&feed, again).await.unwrap();
    }
    assert_eq!(storage.messages("acme", 0).await.unwrap().len(), 3);
    assert_eq!(storage.cursor(&feed).await.unwrap().as_deref(), Some("c-1"));
}

/// A database that does not exist: one line naming it, with what to do.
#[tokio::test]
async fn a_missing_database_is_named() {
    let Some(db) = TestDatabase::create("a_missing_database_is_named").await else {
        return;
    };
    let (base, _) = db.url.rsplit_once('/').unwrap();
    let url = format!("{base}/webcare_no_such_database");
    let error = PostgresStorage::connect(&url, PostgresOptions::default())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("webcare_no_such_database")
            && text.contains("does not exist")
            && text.contains("create the database"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
}

fn email_batch(messages: &[Message]) -> IngestBatch<'_> {
    IngestBatch {
        channel: "email",
        messages,
        triage: &[],
        updates: &[],
        next_cursor: None,
    }
}

/// Ingest links authors by the e-mail address their channel gives, in
/// batch order (in `link_authors_by_email`): one profile per address
/// across connectors, once per identity, and a manual unlink is not undone
/// by the author's next message.
#[tokio::test]
async fn ingest_links_authors_by_email_once() {
    let Some(db) = TestDatabase::create("ingest_links_authors_by_email_once").await else {
        return;
    };
    let storage = storage(&db).await;
    let care = storage.care().expect("the case workflow on PostgreSQL");
    let with_email = |n: usize, email: &str| {
        let mut m = message(n, n, Direction::Inbound);
        m.author.email = Some(email.to_string());
        m
    };
    // Two identities with one address (in other letter case) in one batch,
    // a third with another address, and the first one again.
    let mut first = vec![
        with_email(1, " Sanne@Example.NL"),
        with_email(2, "sanne@example.nl"),
        with_email(3, "bram@example.nl"),
        with_email(1, "sanne@example.nl"),
    ];
    first[3].external_id = "m1-again".to_string();
    storage
        .commit(&owner("acme", "mail"), email_batch(&first))
        .await
        .unwrap();
    let identity = |connector: &str, n: usize| webcare::care::Identity {
        connector: connector.to_string(),
        author_id: format!("u{n}"),
    };
    let sanne = care
        .customer_of("acme", &identity("mail", 1))
        .await
        .unwrap()
        .expect("linked by address");
    assert_eq!(
        care.customer_of("acme", &identity("mail", 2))
            .await
            .unwrap(),
        Some(sanne),
        "one profile per address"
    );
    let bram = care
        .customer_of("acme", &identity("mail", 3))
        .await
        .unwrap();
    assert!(bram.is_some() && bram != Some(sanne));
    // The same address through another connector joins the profile.
    storage
        .commit(
            &owner("acme", "webform"),
            email_batch(&[with_email(4, "sanne@example.nl")]),
        )
        .await
        .unwrap();
    let profile = care.customer("acme", sanne).await.unwrap().unwrap();
    assert_eq!(profile.email.as_deref(), Some("sanne@example.nl"));
    assert_eq!(profile.identities.len(), 3, "{profile:#?}");
    assert_eq!(
        profile.events.iter().filter(|e| e.kind == "linked").count(),
        3,
        "one link event per identity"
    );
    assert_eq!(profile.cases.len(), 3, "their cases, side by side");
    // Unlinked by hand, a new message does not link it back; another
    // brand never sees the profile.
    let own = care
        .unlink_identity("acme", &identity("mail", 2), "anna", 1)
        .await
        .unwrap()
        .expect("it was linked");
    let mut again = with_email(2, "sanne@example.nl");
    again.external_id = "m2-again".to_string();
    storage
        .commit(&owner("acme", "mail"), email_batch(&[again]))
        .await
        .unwrap();
    assert_eq!(
        care.customer_of("acme", &identity("mail", 2))
            .await
            .unwrap(),
        Some(own)
    );
    assert_eq!(care.customer("other", sanne).await.unwrap(), None);
}
