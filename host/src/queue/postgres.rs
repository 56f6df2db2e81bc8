//! The care queue in PostgreSQL: for several hosts sharing one queue, and
//! for installations that already run and back up a PostgreSQL server.
//!
//! Same contract and same behaviour as [`super::sqlite`]: the shared suite
//! ([`super::suite`]) runs against both. What differs is how it gets there:
//!
//! * **Connections.** A [`deadpool_postgres`] pool of `pool_size`
//!   connections over plain TCP (no TLS to the database yet: keep the server
//!   on the host, a private network or a tunnel).
//! * **Concurrency.** Several hosts may commit at once, the same messages
//!   and the same threads included. A commit first takes a
//!   transaction-scoped advisory lock on its (brand, connector): commits of
//!   one connector take turns, commits of different connectors (which share
//!   no message and no case) run in parallel. Under that lock the commit
//!   looks up which messages are stored and which cases exist, and inserts
//!   each new message with its case in one statement, opening cases with
//!   it. Deduplication stays with the unique index (`ON CONFLICT DO
//!   NOTHING`); case counters are updated relative to the locked row, so an
//!   agent changing a case's status meanwhile loses nothing. A deadlock,
//!   serialization failure or unique violation (only possible with a
//!   writer that skips the lock) makes the commit run again from the start.
//! * **Speed.** A commit is two round trips whatever the batch size: the
//!   statements are pipelined, and rows go in as arrays (`unnest`), not one
//!   statement per message. Lookups probe the unique indexes once per key
//!   (see [`FIND_MESSAGES`]), and every execution is planned for its
//!   arguments (`plan_cache_mode = force_custom_plan`).
//! * **Migrations.** Versioned like SQLite's (`schema_migrations`), applied
//!   under a transaction-scoped advisory lock so that hosts starting at once
//!   do not race; a schema newer than this build is refused.
//! * **Connector state.** [`StateStore`] is synchronous and called from
//!   inside plugin calls, on the async runtime's threads. Waiting there for
//!   a connection driven by that same runtime could deadlock (a
//!   current-thread runtime would wait for itself), so the state store has
//!   a thread of its own, with its own small runtime and its own
//!   connections: the caller only waits on a channel.
//!
//! PostgreSQL's `text` cannot hold the NUL character. The full message is
//! kept as JSON (where NUL is escaped), so it always comes back exactly as
//! delivered; only the filter and display columns (ids, author handle,
//! text, preview) have NUL replaced by U+FFFD. Cursors and connector state
//! keys are stored as bytes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{
    CaseFilter, CaseStatus, CaseSummary, ChannelCount, CommitOutcome, IngestBatch, Storage,
    StorageError, StoredMessage, case_preview,
};
use crate::capabilities::state::{MAX_TOTAL_BYTES, check_entry};
use crate::capabilities::{ConnectorId, StateError, StateStore};
use crate::model::{Direction, Message, MessageKind, MessageUpdate, TimestampMs};

/// Connections in the pool unless the config says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// How long opening a connection may take (unless the URL sets
/// `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call waits for a free connection of the pool.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// How long a state call waits for its answer.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections of the state store's own pool.
const STATE_POOL_SIZE: usize = 2;

/// Session option of every connection (see [`PostgresStorage::connect_with`]).
const CUSTOM_PLANS: &str = "-c plan_cache_mode=force_custom_plan";

/// Attempts at a commit that PostgreSQL aborted for a deadlock or a
/// serialization failure (both mean: run it again).
const COMMIT_ATTEMPTS: usize = 5;

/// Key of the advisory lock held while migrating (two-int form, so it
/// cannot collide with the one-bigint keys of the state store).
const MIGRATION_LOCK: (i32, i32) = (0x7765_6263, 1); // "webc", 1

/// The schema, one step per version: step `i` (0-based) brings a database
/// to version `i + 1`. Append-only, like SQLite's.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: cases, messages, cursors and connector state, as in SQLite.
    r#"
    CREATE TABLE cases (
        id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        brand            TEXT    NOT NULL,
        connector        TEXT    NOT NULL,
        channel          TEXT    NOT NULL,
        thread_id        TEXT    NOT NULL,
        status           TEXT    NOT NULL
                         CHECK (status IN ('new', 'open', 'pending', 'escalated', 'closed')),
        message_count    BIGINT  NOT NULL CHECK (message_count >= 0),
        first_message_at BIGINT  NOT NULL,
        last_message_at  BIGINT  NOT NULL,
        author           TEXT    NOT NULL,
        preview          TEXT    NOT NULL,
        UNIQUE (brand, connector, thread_id)
    );
    CREATE INDEX cases_by_brand_status
        ON cases (brand, status, last_message_at DESC, id DESC);
    CREATE INDEX cases_by_brand
        ON cases (brand, last_message_at DESC, id DESC);

    CREATE TABLE messages (
        id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        brand         TEXT    NOT NULL,
        connector     TEXT    NOT NULL,
        channel       TEXT    NOT NULL,
        external_id   TEXT    NOT NULL CHECK (length(external_id) > 0),
        thread_id     TEXT    NOT NULL,
        case_id       BIGINT  REFERENCES cases (id),
        direction     TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        kind          TEXT    NOT NULL,
        created_at    BIGINT  NOT NULL,
        received_at   BIGINT  NOT NULL,
        edited        BOOLEAN NOT NULL DEFAULT false,
        deleted       BOOLEAN NOT NULL DEFAULT false,
        hidden        BOOLEAN NOT NULL DEFAULT false,
        author_handle TEXT    NOT NULL,
        text          TEXT    NOT NULL,
        message_json  TEXT    NOT NULL,
        UNIQUE (brand, connector, external_id)
    );
    CREATE INDEX messages_by_brand ON messages (brand, created_at, id);
    CREATE INDEX messages_by_case ON messages (case_id) WHERE case_id IS NOT NULL;

    CREATE TABLE cursors (
        brand      TEXT   NOT NULL,
        connector  TEXT   NOT NULL,
        -- Bytes: a cursor is the connector's opaque string and must come
        -- back exactly, NUL included (which text cannot hold).
        cursor     BYTEA  NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (brand, connector)
    );

    CREATE TABLE connector_state (
        brand     TEXT  NOT NULL,
        connector TEXT  NOT NULL,
        key       BYTEA NOT NULL,
        value     BYTEA NOT NULL,
        PRIMARY KEY (brand, connector, key)
    );
    "#,
];

/// How the queue connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Connections the pool keeps at most (commits and queries; the state
    /// store has [`STATE_POOL_SIZE`] of its own).
    pub pool_size: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

/// The care queue in a PostgreSQL database.
pub struct PostgresStorage {
    pool: Pool,
    /// `postgres://user@host:port/db`, never the password: for messages.
    location: Arc<str>,
    state: Arc<PostgresStateStore>,
}

impl fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// Parses a connection URL (`postgres://user:password@host:port/db?...`)
/// or key-value string (`host=... user=...`). The error never repeats the
/// string, which may hold a password.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, StorageError> {
    parse(url).map_err(StorageError::Unavailable)
}

/// What is wrong with a connection URL, if anything (without the URL).
pub fn url_problem(url: &str) -> Option<String> {
    parse(url).err()
}

fn parse(url: &str) -> Result<tokio_postgres::Config, String> {
    let config = url.parse::<tokio_postgres::Config>().map_err(|e| {
        format!(
            "the PostgreSQL URL is not valid ({}); write postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            describe(&e)
        )
    })?;
    if config.get_hosts().is_empty() {
        return Err(
            "the PostgreSQL URL names no host; write postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                .to_string(),
        );
    }
    Ok(config)
}

/// Where a config points, without its password: `postgres://user@host:port/db`.
pub fn location_of(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config
                .get_ports()
                .get(i)
                .or_else(|| config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) if name.contains(':') => {
                    format!("[{name}]:{port}")
                }
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => {
                    format!("{}:{port}", path.display())
                }
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "(no host)".to_string()
    } else {
        hosts.join(",")
    };
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("postgres://{user}{hosts}/{db}")
}

impl PostgresStorage {
    /// Connects to the database at `url`, checks that it can be reached and
    /// brings the schema up to date.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StorageError> {
        Self::connect_with(parse_url(url)?, options).await
    }

    /// [`PostgresStorage::connect`] with a parsed config.
    pub async fn connect_with(
        mut config: tokio_postgres::Config,
        options: PostgresOptions,
    ) -> Result<Self, StorageError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("webcare");
        }
        // Plan each execution for its arguments. A cached generic plan is
        // made once per connection, often while the tables are still small
        // and unanalysed, and then kept: for `external_id = ANY($3)` that
        // can be a sequential scan, 100 times slower once the queue grows.
        let session = match config.get_options() {
            Some(given) => format!("{given} {CUSTOM_PLANS}"),
            None => CUSTOM_PLANS.to_string(),
        };
        config.options(&session);
        let location: Arc<str> = location_of(&config).into();
        let pool = build_pool(config.clone(), options.pool_size.max(1), &location)?;
        {
            let mut client = get(&pool, &location).await?;
            migrate(&mut client, &location).await?;
        }
        let state = Arc::new(PostgresStateStore::start(config, Arc::clone(&location))?);
        Ok(PostgresStorage {
            pool,
            location,
            state,
        })
    }

    /// Where the queue is, without the password.
    pub fn location(&self) -> &str {
        &self.location
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        get(&self.pool, &self.location).await
    }
}

fn build_pool(
    config: tokio_postgres::Config,
    size: usize,
    location: &str,
) -> Result<Pool, StorageError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(1)))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| StorageError::Unavailable(format!("{location}: cannot set up the pool: {e}")))
}

/// A connection of `pool`, or an error that names the server and says
/// what to check.
async fn get(pool: &Pool, location: &str) -> Result<deadpool_postgres::Object, StorageError> {
    pool.get().await.map_err(|e| match e {
        PoolError::Backend(e) => {
            let hint = match e.code() {
                Some(code) if *code == SqlState::INVALID_PASSWORD => {
                    "; check the user and password in the storage URL"
                }
                Some(code) if *code == SqlState::INVALID_CATALOG_NAME => {
                    "; create the database or fix its name in the storage URL"
                }
                Some(_) => "",
                None => "; check that the server runs and accepts TCP connections there",
            };
            StorageError::Unavailable(format!(
                "cannot reach PostgreSQL at {location}: {}{hint}",
                describe(&e)
            ))
        }
        PoolError::Timeout(_) => StorageError::Unavailable(format!(
            "cannot reach PostgreSQL at {location}: timed out waiting for a connection \
             (server down or slow, or every pooled connection busy for {} s)",
            POOL_WAIT.as_secs()
        )),
        other => StorageError::Unavailable(format!("PostgreSQL at {location}: {other}")),
    })
}

/// An error and its causes on one line; a server error with its detail.
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Maps a PostgreSQL error to a [`StorageError`] that says what was being
/// done.
fn pg_error(what: impl fmt::Display, error: &tokio_postgres::Error) -> StorageError {
    let detail = format!("{what}: {}", describe(error));
    if error.as_db_error().is_some() {
        StorageError::Query(detail)
    } else {
        StorageError::Unavailable(detail)
    }
}

/// `.or_storage(what)`: [`pg_error`] in method position.
trait OrStorage<T> {
    fn or_storage(self, what: impl fmt::Display) -> Result<T, StorageError>;
}

impl<T> OrStorage<T> for Result<T, tokio_postgres::Error> {
    fn or_storage(self, what: impl fmt::Display) -> Result<T, StorageError> {
        self.map_err(|e| pg_error(what, &e))
    }
}

/// Brings the schema to the newest version this build knows, or refuses a
/// database written by a newer build. The advisory lock makes hosts that
/// start at once take turns: the first migrates, the others then find the
/// schema current.
async fn migrate(
    client: &mut deadpool_postgres::Object,
    location: &str,
) -> Result<(), StorageError> {
    let known = MIGRATIONS.len();
    let context = format!("migrating {location}");
    let tx = client.transaction().await.or_storage(&context)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1],
    )
    .await
    .or_storage(&context)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at BIGINT  NOT NULL
         )",
    )
    .await
    .or_storage(&context)?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .or_storage(format_args!("reading the schema version of {location}"))?
        .get(0);
    let current = usize::try_from(current).unwrap_or(0);
    if current > known {
        return Err(StorageError::Schema(format!(
            "{location} has schema version {current}, but this webcare knows versions up to \
             {known}: the queue was written by a newer webcare. Run that version (or newer), \
             or point the storage at another database"
        )));
    }
    if current == known {
        // Nothing to do; ending the transaction releases the lock.
        tx.commit().await.or_storage(&context)?;
        return Ok(());
    }
    for (version, step) in (1_i32..).zip(MIGRATIONS).skip(current) {
        tx.batch_execute(step).await.or_storage(format_args!(
            "applying schema version {version} to {location}"
        ))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &now_ms()],
        )
        .await
        .or_storage(format_args!(
            "recording schema version {version} in {location}"
        ))?;
    }
    tx.commit().await.or_storage(&context)?;
    tracing::info!(
        database = location,
        from = current,
        to = known,
        "queue schema migrated"
    );
    Ok(())
}

/// Milliseconds since the epoch, now.
fn now_ms() -> TimestampMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `text` without NUL, which PostgreSQL's `text` cannot hold.
fn pg_text(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_string()
    }
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

/// The kind as its JSON name, so the column and the stored JSON agree.
fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Mention => "mention",
        MessageKind::Comment => "comment",
        MessageKind::Reply => "reply",
        MessageKind::DirectMessage => "direct_message",
        MessageKind::Post => "post",
        MessageKind::Email => "email",
        MessageKind::Review => "review",
    }
}

/// `LIMIT` operand: NULL is "no limit".
fn sql_limit(limit: usize) -> Option<i64> {
    (limit != 0).then(|| i64::try_from(limit).unwrap_or(i64::MAX))
}

fn to_json(message: &Message) -> Result<String, StorageError> {
    serde_json::to_string(message).map_err(|e| {
        StorageError::Query(format!(
            "cannot serialise message {:?}: {e}",
            message.external_id
        ))
    })
}

/// The messages of a batch as columns, first copy of each external id
/// only, in batch order.
#[derive(Default)]
struct MessageColumns {
    external_id: Vec<String>,
    thread_id: Vec<String>,
    direction: Vec<&'static str>,
    kind: Vec<&'static str>,
    created_at: Vec<i64>,
    author_handle: Vec<String>,
    text: Vec<String>,
    json: Vec<String>,
    /// Per row: inbound?
    inbound: Vec<bool>,
    /// Per row: the preview it would give its case.
    preview: Vec<String>,
}

/// The updates of a batch folded per message, in order of first mention:
/// what applying them one by one would leave.
#[derive(Default)]
struct UpdateColumns {
    external_id: Vec<String>,
    text: Vec<Option<String>>,
    json: Vec<Option<String>>,
    edited: Vec<bool>,
    deleted: Vec<bool>,
    hidden: Vec<Option<bool>>,
    /// How many updates of the batch each row stands for.
    count: Vec<usize>,
}

impl UpdateColumns {
    fn new(updates: &[MessageUpdate]) -> Result<Self, StorageError> {
        let mut columns = UpdateColumns::default();
        let mut index: HashMap<String, usize> = HashMap::new();
        for update in updates {
            let external_id = pg_text(match update {
                MessageUpdate::Edited(m) => &m.external_id,
                MessageUpdate::Deleted(r)
                | MessageUpdate::Hidden(r)
                | MessageUpdate::Unhidden(r) => &r.external_id,
            });
            let i = *index.entry(external_id.clone()).or_insert_with(|| {
                columns.external_id.push(external_id);
                columns.text.push(None);
                columns.json.push(None);
                columns.edited.push(false);
                columns.deleted.push(false);
                columns.hidden.push(None);
                columns.count.push(0);
                columns.count.len() - 1
            });
            columns.count[i] += 1;
            match update {
                MessageUpdate::Edited(m) => {
                    columns.text[i] = Some(pg_text(&m.text));
                    columns.json[i] = Some(to_json(m)?);
                    columns.edited[i] = true;
                }
                MessageUpdate::Deleted(_) => columns.deleted[i] = true,
                MessageUpdate::Hidden(_) => columns.hidden[i] = Some(true),
                MessageUpdate::Unhidden(_) => columns.hidden[i] = Some(false),
            }
        }
        Ok(columns)
    }
}

/// What the inserted messages of one thread do to its case.
struct ThreadWork {
    thread_id: String,
    /// Rows (indexes into [`MessageColumns`]) inserted, in batch order.
    rows: Vec<usize>,
}

/// A case update: `n` more messages, activity up to `last_at`, and the
/// earliest inbound message (if any) with its author and preview.
struct CaseDelta {
    n: i64,
    last_at: i64,
    first_inbound: Option<(i64, String, String)>,
}

impl CaseDelta {
    /// Applying `rows` one by one to a case, as SQLite does: each inbound
    /// message older than the case's first takes its place (strictly
    /// older: the first of equals wins).
    fn of(columns: &MessageColumns, rows: &[usize]) -> CaseDelta {
        let mut delta = CaseDelta {
            n: 0,
            last_at: i64::MIN,
            first_inbound: None,
        };
        for &r in rows {
            delta.n += 1;
            delta.last_at = delta.last_at.max(columns.created_at[r]);
            if columns.inbound[r]
                && delta
                    .first_inbound
                    .as_ref()
                    .is_none_or(|(at, _, _)| columns.created_at[r] < *at)
            {
                delta.first_inbound = Some((
                    columns.created_at[r],
                    columns.author_handle[r].clone(),
                    columns.preview[r].clone(),
                ));
            }
        }
        delta
    }
}

/// Case updates as columns for `unnest`.
#[derive(Default)]
struct DeltaColumns {
    thread_id: Vec<String>,
    n: Vec<i64>,
    last_at: Vec<i64>,
    first_at: Vec<Option<i64>>,
    author: Vec<Option<String>>,
    preview: Vec<Option<String>>,
    has_inbound: Vec<bool>,
}

impl DeltaColumns {
    fn push(&mut self, thread_id: &str, delta: CaseDelta) {
        self.thread_id.push(thread_id.to_string());
        self.n.push(delta.n);
        self.last_at.push(delta.last_at);
        self.has_inbound.push(delta.first_inbound.is_some());
        match delta.first_inbound {
            Some((at, author, preview)) => {
                self.first_at.push(Some(at));
                self.author.push(Some(author));
                self.preview.push(Some(preview));
            }
            None => {
                self.first_at.push(None);
                self.author.push(None);
                self.preview.push(None);
            }
        }
    }
}

/// Serialises the commits of one connector, across hosts: see
/// [`CommitWork::apply`]. Two-int form, its own first key.
const LOCK_CONNECTOR: &str =
    "SELECT pg_advisory_xact_lock(2003723107, hashtext($1 || E'\\x1f' || $2))";

/// Which of a batch's messages are stored already. One index probe per id
/// on purpose: `external_id = ANY($3)` lets the planner scan all of the
/// connector's messages instead, which it does when its statistics are
/// older than the connector's growth (3 ms per 100 ids on a small queue,
/// and growing with it). A `LATERAL` subquery with `LIMIT` is planned on
/// its own, as a lookup on the full unique key.
const FIND_MESSAGES: &str = "
    SELECT found.external_id
    FROM unnest($3::text[]) AS wanted(external_id),
         LATERAL (SELECT m.external_id FROM messages AS m
                  WHERE m.brand = $1 AND m.connector = $2
                    AND m.external_id = wanted.external_id
                  LIMIT 1) AS found";

/// The cases of a batch's threads, one probe per thread (see
/// [`FIND_MESSAGES`]).
const FIND_CASES: &str = "
    SELECT found.id, found.thread_id
    FROM unnest($3::text[]) AS wanted(thread_id),
         LATERAL (SELECT c.id, c.thread_id FROM cases AS c
                  WHERE c.brand = $1 AND c.connector = $2 AND c.thread_id = wanted.thread_id
                  LIMIT 1) AS found";

/// Adds messages to existing cases, relative to the row as locked (an
/// agent may change the status meanwhile).
const TOUCH_CASES: &str = "
    UPDATE cases AS c SET
        message_count    = c.message_count + u.n,
        last_message_at  = GREATEST(c.last_message_at, u.last_at),
        author           = CASE WHEN u.first_at < c.first_message_at THEN u.author
                                ELSE c.author END,
        preview          = CASE WHEN u.first_at < c.first_message_at THEN u.preview
                                ELSE c.preview END,
        first_message_at = LEAST(c.first_message_at, COALESCE(u.first_at, c.first_message_at)),
        status           = CASE WHEN u.has_inbound AND c.status IN ('pending', 'closed')
                                THEN 'new' ELSE c.status END
    FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::text[], $7::text[],
                $8::bool[])
         AS u(id, n, last_at, first_at, author, preview, has_inbound)
    WHERE c.id = u.id AND c.brand = $1";

/// Inserts messages, ids in batch order, each with its case: `case_id`
/// for an existing case.
const INSERT_MESSAGES: &str = "
    INSERT INTO messages (brand, connector, channel, external_id, thread_id, case_id,
                          direction, kind, created_at, received_at, author_handle, text,
                          message_json)
    SELECT $1, $2, $3, u.external_id, u.thread_id, u.case_id, u.direction, u.kind,
           u.created_at, $4, u.author_handle, u.text, u.message_json
    FROM unnest($5::text[], $6::text[], $7::int8[], $8::text[], $9::text[], $10::int8[],
                $11::text[], $12::text[], $13::text[])
         WITH ORDINALITY AS u(external_id, thread_id, case_id, direction, kind, created_at,
                              author_handle, text, message_json, ord)
    ORDER BY u.ord
    ON CONFLICT (brand, connector, external_id) DO NOTHING";

/// [`INSERT_MESSAGES`] that first opens cases (ids in the given order;
/// plain `INSERT`: under the connector's lock a case cannot appear
/// meanwhile, and if one did the commit would fail and be retried), and
/// links the rows whose `open_thread` names one of them.
const OPEN_CASES_AND_INSERT_MESSAGES: &str = "
    WITH opened AS (
        INSERT INTO cases (brand, connector, channel, thread_id, status, message_count,
                           first_message_at, last_message_at, author, preview)
        SELECT $1, $2, $3, c.thread_id, 'new', c.n, c.first_at, c.last_at, c.author, c.preview
        FROM unnest($15::text[], $16::int8[], $17::int8[], $18::int8[], $19::text[],
                    $20::text[])
             WITH ORDINALITY AS c(thread_id, n, last_at, first_at, author, preview, ord)
        ORDER BY c.ord
        RETURNING id, thread_id
    )
    INSERT INTO messages (brand, connector, channel, external_id, thread_id, case_id,
                          direction, kind, created_at, received_at, author_handle, text,
                          message_json)
    SELECT $1, $2, $3, u.external_id, u.thread_id, COALESCE(u.case_id, o.id), u.direction,
           u.kind, u.created_at, $4, u.author_handle, u.text, u.message_json
    FROM unnest($5::text[], $6::text[], $7::int8[], $8::text[], $9::text[], $10::int8[],
                $11::text[], $12::text[], $13::text[], $14::text[])
         WITH ORDINALITY AS u(external_id, thread_id, case_id, direction, kind, created_at,
                              author_handle, text, message_json, open_thread, ord)
         LEFT JOIN opened AS o ON o.thread_id = u.open_thread
    ORDER BY u.ord
    ON CONFLICT (brand, connector, external_id) DO NOTHING";

const APPLY_UPDATES: &str = "
    UPDATE messages AS m SET
        text         = COALESCE(u.text, m.text),
        message_json = COALESCE(u.message_json, m.message_json),
        edited       = m.edited OR u.edited,
        deleted      = m.deleted OR u.deleted,
        hidden       = COALESCE(u.hidden, m.hidden)
    FROM unnest($3::text[], $4::text[], $5::text[], $6::bool[], $7::bool[], $8::bool[])
         AS u(external_id, text, message_json, edited, deleted, hidden)
    WHERE m.brand = $1 AND m.connector = $2 AND m.external_id = u.external_id
    RETURNING m.external_id";

const STORE_CURSOR: &str = "
    INSERT INTO cursors (brand, connector, cursor, updated_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (brand, connector)
    DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at";

/// One [`Storage::commit`], owned.
struct CommitWork {
    owner: ConnectorId,
    brand: String,
    connector: String,
    channel: String,
    messages: MessageColumns,
    /// Copies of an external id already in the batch.
    batch_duplicates: usize,
    updates: UpdateColumns,
    next_cursor: Option<String>,
}

impl CommitWork {
    fn new(owner: &ConnectorId, batch: IngestBatch<'_>) -> Result<Self, StorageError> {
        batch.check()?;
        let total = batch.messages.len();
        let mut messages = MessageColumns::default();
        let mut seen = std::collections::HashSet::new();
        let mut batch_duplicates = 0;
        for (index, m) in batch.messages.iter().enumerate() {
            if m.external_id.is_empty() {
                return Err(StorageError::Query(format!(
                    "storing message {:?} ({} of {total}) of {owner}: the external id is empty, \
                     so the message cannot be deduplicated (a bug in the connector's plugin)",
                    m.external_id,
                    index + 1
                )));
            }
            let external_id = pg_text(&m.external_id);
            if !seen.insert(external_id.clone()) {
                batch_duplicates += 1;
                continue;
            }
            messages.external_id.push(external_id);
            messages.thread_id.push(pg_text(&m.thread_id));
            messages.direction.push(direction_name(m.direction));
            messages.kind.push(kind_name(m.kind));
            messages.created_at.push(m.created_at);
            messages.author_handle.push(pg_text(&m.author.handle));
            messages.text.push(pg_text(&m.text));
            messages.json.push(to_json(m)?);
            messages.inbound.push(m.direction == Direction::Inbound);
            messages.preview.push(pg_text(&case_preview(&m.text)));
        }
        Ok(CommitWork {
            owner: owner.clone(),
            brand: owner.brand.clone(),
            connector: owner.connector.clone(),
            channel: batch.channel.to_string(),
            messages,
            batch_duplicates,
            updates: UpdateColumns::new(batch.updates)?,
            next_cursor: batch.next_cursor.map(str::to_string),
        })
    }

    /// Runs the commit, again when PostgreSQL aborted it for a deadlock
    /// with another commit (or a serialization failure).
    async fn run(&self, pool: &Pool, location: &str) -> Result<CommitOutcome, StorageError> {
        let mut attempt = 1;
        loop {
            // Back to the pool only after a finished commit: a commit that
            // failed or was cancelled halfway may leave its transaction
            // open, so that connection is closed instead.
            let mut client = Unfinished(Some(get(pool, location).await?));
            let result = match client.0.as_mut() {
                Some(object) => self.apply(object).await,
                None => unreachable!("the connection is taken only below"),
            };
            if result.is_ok() {
                client.0.take();
            }
            match result {
                Err(Retry::Again(e)) if attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(owner = %self.owner, attempt, error = %e, "commit retried");
                    attempt += 1;
                    // A little jitter so the two sides do not meet again.
                    let pause = fastrand::u64(1..=10 * attempt as u64);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(Retry::Again(e)) => {
                    return Err(pg_error(
                        format_args!(
                            "committing a batch of {} ({COMMIT_ATTEMPTS} attempts)",
                            self.owner
                        ),
                        &e,
                    ));
                }
                Err(Retry::Fail(e)) => return Err(e),
                Ok(outcome) => return Ok(outcome),
            }
        }
    }

    /// One transaction. The connector's advisory lock comes first: commits
    /// of one connector (two hosts polling it, a webhook next to a poll)
    /// take turns, so what the lookups find (messages stored, cases open)
    /// stays true until the commit ends, and each message is inserted with
    /// its case in one go. Other connectors commit in parallel.
    ///
    /// Two round trips, each a pipeline of statements executed in order:
    /// `BEGIN`, the lock and the lookups; then the case updates, the new
    /// cases with the messages, the updates, the cursor and `COMMIT` (which
    /// PostgreSQL turns into a rollback if anything before it failed).
    /// Every statement is prepared before the first is sent, so that none
    /// waits for a `Parse` while the next ones go ahead of it.
    async fn apply(&self, client: &mut Object) -> Result<CommitOutcome, Retry> {
        let owner = &self.owner;
        let (brand, connector) = (&self.brand, &self.connector);
        let m = &self.messages;
        let u = &self.updates;
        let what = &format!("committing a batch of {owner}");
        let (lock, find_messages, find_cases, touch_cases, insert, open_and_insert, apply, cursor) =
            tokio::try_join!(
                client.prepare_cached(LOCK_CONNECTOR),
                client.prepare_cached(FIND_MESSAGES),
                client.prepare_cached(FIND_CASES),
                client.prepare_cached(TOUCH_CASES),
                client.prepare_cached(INSERT_MESSAGES),
                client.prepare_cached(OPEN_CASES_AND_INSERT_MESSAGES),
                client.prepare_cached(APPLY_UPDATES),
                client.prepare_cached(STORE_CURSOR),
            )
            .or_retry(what)?;
        let received_at = now_ms();
        let mut outcome = CommitOutcome {
            duplicates: self.batch_duplicates,
            ..CommitOutcome::default()
        };

        // Round trip 1: which messages are new, which cases exist.
        let mut plan = CasePlan::default();
        let began = !m.external_id.is_empty();
        if began {
            let mut threads: Vec<&str> = m.thread_id.iter().map(String::as_str).collect();
            threads.sort_unstable();
            threads.dedup();
            let lock_args: [&(dyn ToSql + Sync); 2] = [brand, connector];
            let messages_args: [&(dyn ToSql + Sync); 3] = [brand, connector, &m.external_id];
            let cases_args: [&(dyn ToSql + Sync); 3] = [brand, connector, &threads];
            let (_, _, stored, cases) = tokio::try_join!(
                client.batch_execute("BEGIN"),
                client.execute(&lock, &lock_args),
                client.query(&find_messages, &messages_args),
                client.query(&find_cases, &cases_args),
            )
            .or_retry(what)?;
            let stored: std::collections::HashSet<&str> =
                stored.iter().map(|row| row.get(0)).collect();
            let existing: HashMap<String, i64> = cases
                .iter()
                .map(|row| (row.get::<_, String>(1), row.get::<_, i64>(0)))
                .collect();
            let new_rows: Vec<usize> = (0..m.external_id.len())
                .filter(|&r| !stored.contains(m.external_id[r].as_str()))
                .collect();
            outcome.duplicates += m.external_id.len() - new_rows.len();
            plan = CasePlan::new(m, new_rows, &existing);
            outcome.cases_opened = plan.open.thread_id.len();
        }

        // Round trip 2: write and commit.
        let rows = &plan.rows;
        let pick = |column: &[String]| -> Vec<String> {
            rows.iter().map(|&r| column[r].clone()).collect()
        };
        let (external_id, thread_id, author_handle, text, json) = (
            pick(&m.external_id),
            pick(&m.thread_id),
            pick(&m.author_handle),
            pick(&m.text),
            pick(&m.json),
        );
        let direction: Vec<&str> = rows.iter().map(|&r| m.direction[r]).collect();
        let kind: Vec<&str> = rows.iter().map(|&r| m.kind[r]).collect();
        let created_at: Vec<i64> = rows.iter().map(|&r| m.created_at[r]).collect();
        let (t, o) = (&plan.touch, &plan.open);
        let mut insert_args: Vec<&(dyn ToSql + Sync)> = vec![
            brand,
            connector,
            &self.channel,
            &received_at,
            &external_id,
            &thread_id,
            &plan.case_id,
            &direction,
            &kind,
            &created_at,
            &author_handle,
            &text,
            &json,
        ];
        let opens = !o.thread_id.is_empty();
        if opens {
            insert_args.extend_from_slice(&[
                &plan.open_thread,
                &o.thread_id,
                &o.n,
                &o.last_at,
                &o.first_at,
                &o.author,
                &o.preview,
            ]);
        }
        let touch_args: [&(dyn ToSql + Sync); 8] = [
            brand,
            &plan.touch_ids,
            &t.n,
            &t.last_at,
            &t.first_at,
            &t.author,
            &t.preview,
            &t.has_inbound,
        ];
        let apply_args: [&(dyn ToSql + Sync); 8] = [
            brand,
            connector,
            &u.external_id,
            &u.text,
            &u.json,
            &u.edited,
            &u.deleted,
            &u.hidden,
        ];
        let (_, touched, inserted, updated, _, _) = tokio::try_join!(
            async {
                match began {
                    true => Ok(()),
                    false => client.batch_execute("BEGIN").await,
                }
            },
            async {
                match t.thread_id.is_empty() {
                    true => Ok(0),
                    false => client.execute(&touch_cases, &touch_args).await,
                }
            },
            async {
                match (rows.is_empty(), opens) {
                    (true, _) => Ok(0),
                    (false, true) => client.execute(&open_and_insert, &insert_args).await,
                    (false, false) => client.execute(&insert, &insert_args).await,
                }
            },
            async {
                match u.external_id.is_empty() {
                    true => Ok(Vec::new()),
                    false => client.query(&apply, &apply_args).await,
                }
            },
            async {
                match &self.next_cursor {
                    None => Ok(0),
                    Some(next) => {
                        client
                            .execute(&cursor, &[brand, connector, &next.as_bytes(), &received_at])
                            .await
                    }
                }
            },
            client.batch_execute("COMMIT"),
        )
        .or_retry(what)?;

        if touched != plan.touch_ids.len() as u64 {
            tracing::error!(owner = %owner, "a case of the batch vanished during its commit");
        }
        outcome.inserted = usize::try_from(inserted).unwrap_or(usize::MAX);
        if outcome.inserted != rows.len() {
            // Only a writer that skips the connector's lock can do this;
            // the unique index kept the queue free of duplicates.
            tracing::error!(
                owner = %owner,
                "{} messages of the batch were stored meanwhile by a writer that does not \
                 take the connector's lock (an older webcare on the same database?)",
                rows.len() - outcome.inserted
            );
            outcome.duplicates += rows.len() - outcome.inserted;
        }
        let found: std::collections::HashSet<String> =
            updated.iter().map(|row| row.get(0)).collect();
        for (external_id, count) in u.external_id.iter().zip(&u.count) {
            if found.contains(external_id) {
                outcome.updates_applied += count;
            } else {
                outcome.updates_unknown += count;
            }
        }
        Ok(outcome)
    }
}

/// What the new messages of a batch do to cases, decided from what the
/// lookups found, exactly as applying the messages one by one would.
#[derive(Default)]
struct CasePlan {
    /// The new rows (indexes into [`MessageColumns`]), in batch order.
    rows: Vec<usize>,
    /// Per new row: its existing case.
    case_id: Vec<Option<i64>>,
    /// Per new row: the thread of the case it opens or joins in this batch.
    open_thread: Vec<Option<String>>,
    /// Existing cases the batch adds to.
    touch_ids: Vec<i64>,
    touch: DeltaColumns,
    /// Cases to open, in order of their first inbound message.
    open: DeltaColumns,
}

impl CasePlan {
    fn new(m: &MessageColumns, rows: Vec<usize>, existing: &HashMap<String, i64>) -> Self {
        // Threads in order of their first new message.
        let mut threads: Vec<ThreadWork> = Vec::new();
        let mut by_thread: HashMap<&str, usize> = HashMap::new();
        for &r in &rows {
            let t = *by_thread.entry(&m.thread_id[r]).or_insert_with(|| {
                threads.push(ThreadWork {
                    thread_id: m.thread_id[r].clone(),
                    rows: Vec::new(),
                });
                threads.len() - 1
            });
            threads[t].rows.push(r);
        }
        let mut case_id: HashMap<usize, i64> = HashMap::new();
        let mut open_thread: HashMap<usize, &str> = HashMap::new();
        let mut plan = CasePlan::default();
        // Cases open in the order their first inbound message comes.
        let mut opening: Vec<(usize, &ThreadWork, usize)> = Vec::new();
        for t in &threads {
            if let Some(&id) = existing.get(&t.thread_id) {
                plan.touch_ids.push(id);
                plan.touch.push(&t.thread_id, CaseDelta::of(m, &t.rows));
                for &r in &t.rows {
                    case_id.insert(r, id);
                }
            } else if let Some(k) = t.rows.iter().position(|&r| m.inbound[r]) {
                // Outbound messages before it stay without a case.
                opening.push((t.rows[k], t, k));
                for &r in &t.rows[k..] {
                    open_thread.insert(r, &t.thread_id);
                }
            }
        }
        opening.sort_by_key(|(first, _, _)| *first);
        for (_, t, k) in opening {
            plan.open.push(&t.thread_id, CaseDelta::of(m, &t.rows[k..]));
        }
        plan.case_id = rows.iter().map(|r| case_id.get(r).copied()).collect();
        plan.open_thread = rows
            .iter()
            .map(|r| open_thread.get(r).map(|t| t.to_string()))
            .collect();
        plan.rows = rows;
        plan
    }
}

/// A pooled connection in the middle of a commit: dropped with its
/// connection (so PostgreSQL rolls back whatever is open) unless taken out.
struct Unfinished(Option<Object>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

/// A failed commit: run again (deadlock, serialization failure) or give up.
enum Retry {
    Again(tokio_postgres::Error),
    Fail(StorageError),
}

trait OrRetry<T> {
    fn or_retry(self, what: impl fmt::Display) -> Result<T, Retry>;
}

impl<T> OrRetry<T> for Result<T, tokio_postgres::Error> {
    fn or_retry(self, what: impl fmt::Display) -> Result<T, Retry> {
        self.map_err(|e| match e.code() {
            Some(code)
                if *code == SqlState::T_R_DEADLOCK_DETECTED
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == SqlState::UNIQUE_VIOLATION =>
            {
                Retry::Again(e)
            }
            _ => Retry::Fail(pg_error(what, &e)),
        })
    }
}

fn status_of(row: &Row, column: usize) -> Result<CaseStatus, StorageError> {
    let text: &str = row.get(column);
    CaseStatus::parse(text)
        .ok_or_else(|| StorageError::Query(format!("unknown case status {text:?} in the queue")))
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[async_trait::async_trait]
impl Storage for PostgresStorage {
    async fn commit(
        &self,
        owner: &ConnectorId,
        batch: IngestBatch<'_>,
    ) -> Result<CommitOutcome, StorageError> {
        let work = CommitWork::new(owner, batch)?;
        work.run(&self.pool, &self.location).await
    }

    async fn cursor(&self, owner: &ConnectorId) -> Result<Option<String>, StorageError> {
        let what = &format!("reading the cursor of {owner}");
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT cursor FROM cursors WHERE brand = $1 AND connector = $2")
            .await
            .or_storage(what)?;
        let row = client
            .query_opt(&statement, &[&owner.brand, &owner.connector])
            .await
            .or_storage(what)?;
        row.map(|row| {
            String::from_utf8(row.get(0))
                .map_err(|_| StorageError::Query(format!("{what}: the stored cursor is not UTF-8")))
        })
        .transpose()
    }

    async fn cases(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>, StorageError> {
        let mut sql = String::from(
            "SELECT id, brand, connector, channel, thread_id, status, message_count,
                    first_message_at, last_message_at, author, preview
             FROM cases",
        );
        let status = filter.status.map(CaseStatus::as_str);
        let limit = sql_limit(filter.limit);
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let mut conditions = Vec::new();
        if let Some(brand) = &filter.brand {
            args.push(brand);
            conditions.push(format!("brand = ${}", args.len()));
        }
        if let Some(status) = &status {
            args.push(status);
            conditions.push(format!("status = ${}", args.len()));
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        args.push(&limit);
        sql.push_str(&format!(
            " ORDER BY last_message_at DESC, id DESC LIMIT ${}::int8",
            args.len()
        ));
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&sql)
            .await
            .or_storage("listing cases")?;
        let rows = client
            .query(&statement, &args)
            .await
            .or_storage("listing cases")?;
        rows.iter()
            .map(|row| {
                Ok(CaseSummary {
                    id: row.get(0),
                    brand: row.get(1),
                    connector: row.get(2),
                    channel: row.get(3),
                    thread_id: row.get(4),
                    status: status_of(row, 5)?,
                    message_count: unsigned(row.get(6)),
                    first_message_at: row.get(7),
                    last_message_at: row.get(8),
                    author: row.get(9),
                    preview: row.get(10),
                })
            })
            .collect()
    }

    async fn messages(
        &self,
        brand: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let what = &format!("reading the messages of brand {brand:?}");
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT brand, connector, channel, case_id, received_at,
                        edited, deleted, hidden, message_json
                 FROM messages WHERE brand = $1
                 ORDER BY created_at, id LIMIT $2::int8",
            )
            .await
            .or_storage(what)?;
        let rows = client
            .query(&statement, &[&brand, &sql_limit(limit)])
            .await
            .or_storage(what)?;
        rows.iter()
            .map(|row| {
                let json: &str = row.get(8);
                let message: Message = serde_json::from_str(json).map_err(|e| {
                    StorageError::Query(format!("{what}: unreadable message JSON: {e}"))
                })?;
                Ok(StoredMessage {
                    brand: row.get(0),
                    connector: row.get(1),
                    channel: row.get(2),
                    case_id: row.get(3),
                    received_at: row.get(4),
                    edited: row.get(5),
                    deleted: row.get(6),
                    hidden: row.get(7),
                    message,
                })
            })
            .collect()
    }

    async fn counts(&self) -> Result<Vec<ChannelCount>, StorageError> {
        let what = "counting messages and cases";
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT brand, connector, channel, SUM(messages)::int8, SUM(cases)::int8
                 FROM (SELECT brand, connector, channel, COUNT(*) AS messages, 0 AS cases
                       FROM messages GROUP BY brand, connector, channel
                       UNION ALL
                       SELECT brand, connector, channel, 0, COUNT(*)
                       FROM cases GROUP BY brand, connector, channel) AS both_tables
                 GROUP BY brand, connector, channel
                 ORDER BY brand, connector, channel",
            )
            .await
            .or_storage(what)?;
        let rows = client.query(&statement, &[]).await.or_storage(what)?;
        Ok(rows
            .iter()
            .map(|row| ChannelCount {
                brand: row.get(0),
                connector: row.get(1),
                channel: row.get(2),
                messages: unsigned(row.get(3)),
                cases: unsigned(row.get(4)),
            })
            .collect())
    }

    async fn set_case_status(
        &self,
        brand: &str,
        case_id: i64,
        status: CaseStatus,
    ) -> Result<bool, StorageError> {
        let what = &format!(
            "setting case {case_id} of brand {brand:?} to {}",
            status.as_str()
        );
        let client = self.client().await?;
        let statement = client
            .prepare_cached("UPDATE cases SET status = $3 WHERE brand = $1 AND id = $2")
            .await
            .or_storage(what)?;
        let changed = client
            .execute(&statement, &[&brand, &case_id, &status.as_str()])
            .await
            .or_storage(what)?;
        Ok(changed == 1)
    }

    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn state_store(&self) -> Arc<dyn StateStore> {
        Arc::clone(&self.state) as Arc<dyn StateStore>
    }
}

/// What the state store's thread is asked to do.
enum StateRequest {
    Get {
        owner: ConnectorId,
        key: Vec<u8>,
        reply: std_mpsc::SyncSender<Result<Option<Vec<u8>>, StateError>>,
    },
    Set {
        owner: ConnectorId,
        key: Vec<u8>,
        value: Vec<u8>,
        reply: std_mpsc::SyncSender<Result<(), StateError>>,
    },
    Delete {
        owner: ConnectorId,
        key: Vec<u8>,
        reply: std_mpsc::SyncSender<Result<(), StateError>>,
    },
}

/// The `state` capability kept in the queue's database.
///
/// A synchronous front for a thread with its own current-thread runtime
/// and its own pool: a call sends its request and blocks on the answer,
/// so it never needs the caller's runtime to make progress (see the
/// module docs). The thread ends when the last handle is dropped.
struct PostgresStateStore {
    requests: tokio::sync::mpsc::UnboundedSender<StateRequest>,
    location: Arc<str>,
}

impl fmt::Debug for PostgresStateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStateStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl PostgresStateStore {
    fn start(config: tokio_postgres::Config, location: Arc<str>) -> Result<Self, StorageError> {
        let (requests, mut receiver) = tokio::sync::mpsc::unbounded_channel::<StateRequest>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                StorageError::Unavailable(format!("cannot start the state store's runtime: {e}"))
            })?;
        // The pool's connections are spawned on the runtime that opens
        // them: this one, inside `block_on` below.
        let pool = build_pool(config, STATE_POOL_SIZE, &location)?;
        let thread_location = Arc::clone(&location);
        std::thread::Builder::new()
            .name("webcare-pg-state".to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    let location = thread_location;
                    while let Some(request) = receiver.recv().await {
                        let pool = pool.clone();
                        let location = Arc::clone(&location);
                        tokio::spawn(async move { serve_state(&pool, &location, request).await });
                    }
                    pool.close();
                });
            })
            .map_err(|e| {
                StorageError::Unavailable(format!("cannot start the state store's thread: {e}"))
            })?;
        Ok(PostgresStateStore { requests, location })
    }

    /// Sends a request and waits for its answer.
    fn call<T>(
        &self,
        owner: &ConnectorId,
        request: impl FnOnce(std_mpsc::SyncSender<Result<T, StateError>>) -> StateRequest,
    ) -> Result<T, StateError> {
        let (reply, answer) = std_mpsc::sync_channel(1);
        let gone = || {
            StateError::Unavailable(format!(
                "connector state of {owner} in {}: the state store has stopped",
                self.location
            ))
        };
        self.requests.send(request(reply)).map_err(|_| gone())?;
        match answer.recv_timeout(STATE_TIMEOUT) {
            Ok(result) => result,
            Err(std_mpsc::RecvTimeoutError::Timeout) => Err(StateError::Unavailable(format!(
                "connector state of {owner} in {}: no answer within {} s",
                self.location,
                STATE_TIMEOUT.as_secs()
            ))),
            Err(std_mpsc::RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }
}

impl StateStore for PostgresStateStore {
    fn get(&self, owner: &ConnectorId, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.call(owner, |reply| StateRequest::Get {
            owner: owner.clone(),
            key: key.as_bytes().to_vec(),
            reply,
        })
    }

    fn set(&self, owner: &ConnectorId, key: &str, value: &[u8]) -> Result<(), StateError> {
        check_entry(key, value)?;
        self.call(owner, |reply| StateRequest::Set {
            owner: owner.clone(),
            key: key.as_bytes().to_vec(),
            value: value.to_vec(),
            reply,
        })
    }

    fn delete(&self, owner: &ConnectorId, key: &str) -> Result<(), StateError> {
        self.call(owner, |reply| StateRequest::Delete {
            owner: owner.clone(),
            key: key.as_bytes().to_vec(),
            reply,
        })
    }
}

/// Answers one state request (on the state store's thread). A caller that
/// gave up waiting has dropped its receiver; the answer is then dropped.
async fn serve_state(pool: &Pool, location: &str, request: StateRequest) {
    let unavailable = |owner: &ConnectorId, e: StorageError| {
        StateError::Unavailable(format!("connector state of {owner}: {e}"))
    };
    match request {
        StateRequest::Get { owner, key, reply } => {
            let result = state_get(pool, location, &owner, &key)
                .await
                .map_err(|e| unavailable(&owner, e));
            let _ = reply.send(result);
        }
        StateRequest::Set {
            owner,
            key,
            value,
            reply,
        } => {
            let result = match state_set(pool, location, &owner, &key, &value).await {
                Ok(result) => result,
                Err(e) => Err(unavailable(&owner, e)),
            };
            let _ = reply.send(result);
        }
        StateRequest::Delete { owner, key, reply } => {
            let result = state_delete(pool, location, &owner, &key)
                .await
                .map_err(|e| unavailable(&owner, e));
            let _ = reply.send(result);
        }
    }
}

async fn state_get(
    pool: &Pool,
    location: &str,
    owner: &ConnectorId,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StorageError> {
    let what = &format!("reading from {location}");
    let client = get(pool, location).await?;
    let statement = client
        .prepare_cached(
            "SELECT value FROM connector_state WHERE brand = $1 AND connector = $2 AND key = $3",
        )
        .await
        .or_storage(what)?;
    let row = client
        .query_opt(&statement, &[&owner.brand, &owner.connector, &key])
        .await
        .or_storage(what)?;
    Ok(row.map(|row| row.get(0)))
}

/// The size check and the write in one transaction, with the connector's
/// advisory lock held so that two writers (two hosts, say) cannot both pass
/// the check and together exceed the cap.
async fn state_set(
    pool: &Pool,
    location: &str,
    owner: &ConnectorId,
    key: &[u8],
    value: &[u8],
) -> Result<Result<(), StateError>, StorageError> {
    let what = &format!("writing to {location}");
    let mut client = get(pool, location).await?;
    let tx = client.transaction().await.or_storage(what)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || E'\\x1f' || $2, 0))",
        &[&owner.brand, &owner.connector],
    )
    .await
    .or_storage(what)?;
    let others: i64 = tx
        .query_one(
            "SELECT COALESCE(SUM(length(key) + length(value)), 0)::int8
             FROM connector_state WHERE brand = $1 AND connector = $2 AND key <> $3",
            &[&owner.brand, &owner.connector, &key],
        )
        .await
        .or_storage(what)?
        .get(0);
    let total = usize::try_from(others).unwrap_or(usize::MAX) + key.len() + value.len();
    if total > MAX_TOTAL_BYTES {
        return Ok(Err(StateError::TooLarge(format!(
            "state of {owner} would grow to {total} bytes, limit {MAX_TOTAL_BYTES}; \
             the connector must delete keys it no longer needs"
        ))));
    }
    tx.execute(
        "INSERT INTO connector_state (brand, connector, key, value) VALUES ($1, $2, $3, $4)
         ON CONFLICT (brand, connector, key) DO UPDATE SET value = excluded.value",
        &[&owner.brand, &owner.connector, &key, &value],
    )
    .await
    .or_storage(what)?;
    tx.commit().await.or_storage(what)?;
    Ok(Ok(()))
}

async fn state_delete(
    pool: &Pool,
    location: &str,
    owner: &ConnectorId,
    key: &[u8],
) -> Result<(), StorageError> {
    let what = &format!("deleting from {location}");
    let client = get(pool, location).await?;
    client
        .execute(
            "DELETE FROM connector_state WHERE brand = $1 AND connector = $2 AND key = $3",
            &[&owner.brand, &owner.connector, &key],
        )
        .await
        .or_storage(what)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_never_show_the_password() {
        let config = parse_url("postgres://care:hunter2@db.internal:6543/queue").unwrap();
        assert_eq!(
            location_of(&config),
            "postgres://care@db.internal:6543/queue"
        );
        let config = parse_url("host=10.0.0.5 user=care password=hunter2").unwrap();
        assert_eq!(location_of(&config), "postgres://care@10.0.0.5:5432/care");
        let error = parse_url("postgres://care:hunter2@db:notaport/queue").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn updates_fold_to_what_applying_them_in_order_leaves() {
        use crate::model::Removal;
        let removal = |id: &str| Removal {
            external_id: id.to_string(),
            thread_id: None,
            at: None,
            by: None,
        };
        let columns = UpdateColumns::new(&[
            MessageUpdate::Hidden(removal("a")),
            MessageUpdate::Deleted(removal("b")),
            MessageUpdate::Unhidden(removal("a")),
            MessageUpdate::Hidden(removal("c")),
        ])
        .unwrap();
        assert_eq!(columns.external_id, ["a", "b", "c"]);
        assert_eq!(columns.hidden, [Some(false), None, Some(true)]);
        assert_eq!(columns.deleted, [false, true, false]);
        assert_eq!(columns.count, [2, 1, 1]);
    }

    #[test]
    fn enum_columns_use_the_json_names() {
        use MessageKind::*;
        for kind in [Mention, Comment, Reply, DirectMessage, Post, Email, Review] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind_name(kind));
        }
    }
}
