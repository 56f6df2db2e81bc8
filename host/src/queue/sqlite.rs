//! The embedded care queue: one SQLite file in the data directory.
//!
//! Zero set-up and durable, so the demo and single-host installations need
//! nothing else. Several hosts sharing one queue use the PostgreSQL backend
//! instead: SQLite allows one writer at a time, and a file on a network
//! share cannot use the WAL journal.
//!
//! rusqlite is blocking. Every [`Storage`] call runs on tokio's blocking
//! pool with the one connection behind a mutex: SQLite serialises writers
//! anyway, and a single connection keeps the prepared-statement cache warm.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Value, ValueRef};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, ToSql, Transaction, TransactionBehavior, params,
    params_from_iter,
};

use super::sqlite_checkpoint::Checkpointer;
use super::{
    CaseFilter, CaseStatus, CaseSummary, ChannelCount, CommitOutcome, IngestBatch, Lease,
    MessageTriage, Storage, StorageError, StoredMessage, case_preview,
};
use super::{direction_name, kind_name};
use crate::capabilities::state::{MAX_TOTAL_BYTES, check_entry};
use crate::capabilities::{ConnectorId, StateError, StateStore};
use crate::model::{Direction, Message, MessageUpdate, TimestampMs};

/// How long a statement waits for a lock held by another connection (a
/// second process reading the queue, say) before it fails as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache per connection, in KiB.
const CACHE_KIB: i64 = 64 * 1024;

/// Prepared statements kept per connection: every statement this module
/// runs fits, so the ingest path never re-parses SQL.
const STATEMENT_CACHE: usize = 64;

/// The schema, one step per version: step `i` (0-based) brings a database
/// to version `i + 1`. Steps are append-only: a released step is never
/// edited, a change is a new step.
const MIGRATIONS: &[&str] = &[
    // 1: cases, messages, cursors and connector state.
    //
    // Tables are STRICT so a wrongly typed value is an error, not silently
    // stored. `messages` keeps the filter and sort columns next to the
    // full message as JSON: the columns serve queries, the JSON gives back
    // exactly what the connector delivered.
    r#"
    CREATE TABLE cases (
        id               INTEGER PRIMARY KEY,
        brand            TEXT    NOT NULL,
        connector        TEXT    NOT NULL,
        channel          TEXT    NOT NULL,
        thread_id        TEXT    NOT NULL,
        status           TEXT    NOT NULL
                         CHECK (status IN ('new', 'open', 'pending', 'escalated', 'closed')),
        message_count    INTEGER NOT NULL CHECK (message_count >= 0),
        first_message_at INTEGER NOT NULL,
        last_message_at  INTEGER NOT NULL,
        author           TEXT    NOT NULL,
        preview          TEXT    NOT NULL,
        UNIQUE (brand, connector, thread_id)
    ) STRICT;

    -- The queue view: one brand, one status, newest activity first.
    CREATE INDEX cases_by_brand_status
        ON cases (brand, status, last_message_at DESC, id DESC);
    -- One brand whatever the status.
    CREATE INDEX cases_by_brand
        ON cases (brand, last_message_at DESC, id DESC);

    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY,
        brand         TEXT    NOT NULL,
        connector     TEXT    NOT NULL,
        channel       TEXT    NOT NULL,
        -- The deduplication key: an empty id would make every message of a
        -- buggy connector a duplicate of the first, so it is refused.
        external_id   TEXT    NOT NULL CHECK (length(external_id) > 0),
        thread_id     TEXT    NOT NULL,
        -- NULL for outbound messages of a thread without a case.
        case_id       INTEGER REFERENCES cases (id),
        direction     TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        kind          TEXT    NOT NULL,
        created_at    INTEGER NOT NULL,
        received_at   INTEGER NOT NULL,
        edited        INTEGER NOT NULL DEFAULT 0 CHECK (edited IN (0, 1)),
        deleted       INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
        hidden        INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1)),
        author_handle TEXT    NOT NULL,
        text          TEXT    NOT NULL,
        message_json  TEXT    NOT NULL,
        UNIQUE (brand, connector, external_id)
    ) STRICT;

    -- A brand's messages in conversation order.
    CREATE INDEX messages_by_brand ON messages (brand, created_at, id);
    -- A case's messages (and the foreign key's lookups).
    CREATE INDEX messages_by_case ON messages (case_id) WHERE case_id IS NOT NULL;

    CREATE TABLE cursors (
        brand      TEXT    NOT NULL,
        connector  TEXT    NOT NULL,
        cursor     TEXT    NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (brand, connector)
    ) STRICT;

    CREATE TABLE connector_state (
        brand     TEXT NOT NULL,
        connector TEXT NOT NULL,
        key       TEXT NOT NULL,
        value     BLOB NOT NULL,
        PRIMARY KEY (brand, connector, key)
    ) STRICT;
    "#,
    // 2: the case workflow: ownership, triage and service times on cases,
    // triage on messages, the audit trail, outgoing actions, API tokens
    // and the full-text index.
    r#"
    ALTER TABLE cases ADD COLUMN assignee TEXT;
    ALTER TABLE cases ADD COLUMN team TEXT;
    ALTER TABLE cases ADD COLUMN priority INTEGER NOT NULL DEFAULT 0
        CHECK (priority BETWEEN 0 AND 100);
    ALTER TABLE cases ADD COLUMN bucket TEXT NOT NULL DEFAULT 'low'
        CHECK (bucket IN ('low', 'normal', 'high', 'urgent'));
    ALTER TABLE cases ADD COLUMN reasons TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE cases ADD COLUMN sentiment REAL NOT NULL DEFAULT 0;
    ALTER TABLE cases ADD COLUMN waiting_since INTEGER;
    ALTER TABLE cases ADD COLUMN first_response_at INTEGER;
    ALTER TABLE cases ADD COLUMN closed_at INTEGER;
    ALTER TABLE cases ADD COLUMN escalation TEXT;
    ALTER TABLE cases ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    UPDATE cases SET waiting_since = first_message_at WHERE status IN ('new', 'open');

    -- The queue view: a brand's cases most urgent first, then the longest
    -- waiting.
    CREATE INDEX cases_queue ON cases (brand, priority DESC, waiting_since, id);
    CREATE INDEX cases_queue_by_status
        ON cases (brand, status, priority DESC, waiting_since, id);

    ALTER TABLE messages ADD COLUMN priority INTEGER;
    ALTER TABLE messages ADD COLUMN triage TEXT;
    ALTER TABLE messages ADD COLUMN ignored INTEGER NOT NULL DEFAULT 0
        CHECK (ignored IN (0, 1));

    CREATE TABLE case_events (
        id      INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases (id),
        brand   TEXT    NOT NULL,
        at      INTEGER NOT NULL,
        actor   TEXT    NOT NULL,
        kind    TEXT    NOT NULL,
        channel TEXT,
        detail  TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX case_events_by_case ON case_events (case_id, id);

    CREATE TABLE actions (
        id                 INTEGER PRIMARY KEY,
        brand              TEXT    NOT NULL,
        case_id            INTEGER NOT NULL REFERENCES cases (id),
        connector          TEXT    NOT NULL,
        target_external_id TEXT    NOT NULL,
        idempotency_key    TEXT    NOT NULL,
        action             TEXT    NOT NULL,
        state              TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
        attempts           INTEGER NOT NULL,
        result             TEXT,
        error              TEXT,
        requested_by       TEXT    NOT NULL,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL,
        UNIQUE (brand, idempotency_key)
    ) STRICT;
    CREATE INDEX actions_by_case ON actions (case_id, id);

    CREATE TABLE api_tokens (
        id         INTEGER PRIMARY KEY,
        name       TEXT    NOT NULL,
        brand      TEXT,
        role       TEXT    NOT NULL CHECK (role IN ('agent', 'second_line', 'admin')),
        hash       TEXT    NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    ) STRICT;

    -- Messages (rowid = message id) and notes (rowid = minus the event id).
    -- `brand` is indexed (as a hex key, one token) so a brand's search
    -- intersects posting lists instead of filtering every brand's hits.
    CREATE VIRTUAL TABLE search_index USING fts5 (
        body, brand, case_id UNINDEXED, source UNINDEXED, at UNINDEXED,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO search_index (rowid, body, brand, case_id, source, at)
        SELECT id, text, hex(brand), case_id, 'message', created_at
        FROM messages WHERE case_id IS NOT NULL;

    -- One customer across channels: an identity is (connector, the
    -- channel's author id); identities linked to one customer profile
    -- automatically by an e-mail address the channel gives, or by hand.
    ALTER TABLE messages ADD COLUMN author_id TEXT;
    UPDATE messages SET author_id = json_extract(message_json, '$.author.id');
    CREATE INDEX messages_by_author ON messages (brand, connector, author_id);

    CREATE TABLE customers (
        id           INTEGER PRIMARY KEY,
        brand        TEXT    NOT NULL,
        display_name TEXT    NOT NULL,
        email        TEXT,
        created_at   INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX customers_by_email ON customers (brand, email) WHERE email IS NOT NULL;

    CREATE TABLE customer_identities (
        brand        TEXT    NOT NULL,
        connector    TEXT    NOT NULL,
        author_id    TEXT    NOT NULL,
        handle       TEXT    NOT NULL,
        customer_id  INTEGER NOT NULL REFERENCES customers (id),
        linked_by    TEXT    NOT NULL,
        linked_at    INTEGER NOT NULL,
        PRIMARY KEY (brand, connector, author_id)
    ) STRICT;
    CREATE INDEX customer_identities_by_customer ON customer_identities (customer_id);

    CREATE TABLE customer_events (
        id          INTEGER PRIMARY KEY,
        brand       TEXT    NOT NULL,
        customer_id INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        actor       TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        detail      TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX customer_events_by_customer ON customer_events (customer_id, id);

    -- Crisis alerts, with the messages behind them (JSON).
    CREATE TABLE alerts (
        id          INTEGER PRIMARY KEY,
        brand       TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        raised_at   INTEGER NOT NULL,
        window_from INTEGER NOT NULL,
        window_to   INTEGER NOT NULL,
        observed    INTEGER NOT NULL,
        expected    REAL    NOT NULL,
        team        TEXT,
        messages    TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX alerts_by_brand ON alerts (brand, kind, window_to);
    "#,
    // 3: poll leases, so that two hosts (or two `webcare run` by mistake)
    // on one queue never poll the same connector at once.
    r#"
    CREATE TABLE leases (
        brand      TEXT    NOT NULL,
        connector  TEXT    NOT NULL,
        holder     TEXT    NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (brand, connector)
    ) STRICT;
    -- The hosts alive on this queue, for sharing the connectors out.
    CREATE TABLE hosts (
        id         TEXT    PRIMARY KEY,
        seen_until INTEGER NOT NULL
    ) STRICT;
    "#,
    // 4: NATS JetStream sink: events waiting to be published (written only when
    // the storage was opened with the outbox on; see `queue::outbox`).
    // AUTOINCREMENT: a seq is never reused after its row was published and
    // deleted, so seq order stays commit order.
    r#"
    CREATE TABLE outbox (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        subject    TEXT    NOT NULL,
        msg_id     TEXT    NOT NULL,
        case_id    INTEGER,
        payload    TEXT    NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;
    "#,
    // 5: the search and author indexes follow in bulk (see
    // `queue::sqlite_indexes`).
    super::sqlite_indexes::MIGRATION,
    // 6: one index fewer for every case a commit writes. Cases of one
    // status by recent activity (`webcare queue cases --status`, a
    // command-line listing) are found through `cases_queue_by_status`
    // and sorted; the agents' queue never used this index.
    "DROP INDEX cases_by_brand_status;",
];

/// How the database file is opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous = FULL`: fsync the journal on every commit, so that not
    /// even an OS crash or power loss can undo a committed batch. Off by
    /// default (`synchronous = NORMAL`): in WAL mode a commit has reached
    /// the OS before it returns, so a crashed or SIGKILLed process loses
    /// nothing it committed; only an OS crash or power loss can undo the
    /// last commits (never corrupt the file), and since each cursor commits
    /// with its messages, the connector then polls those messages again.
    /// What stays at risk are webhook deliveries already answered with 2xx:
    /// turn this on when the channel does not redeliver them, and pay an
    /// fsync per commit.
    pub durable_fsync: bool,
    /// Write an outbox row for every event the NATS JetStream sink
    /// publishes, in the transaction of the change (`[stream]` configured).
    pub outbox: bool,
}

/// The embedded care queue.
pub struct SqliteStorage {
    pub(super) conn: Arc<Mutex<Connection>>,
    /// The file (or `:memory:`), for error messages.
    location: Arc<str>,
    /// Set when opened with the outbox on: woken after commits that wrote
    /// outbox rows.
    pub(super) outbox: Option<Arc<tokio::sync::Notify>>,
    /// Checkpoints the WAL off the writer's thread (file databases only;
    /// see `queue::sqlite_checkpoint`).
    checkpointer: Option<Arc<Checkpointer>>,
}

impl fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SqliteStorage {
    /// Opens (or creates) the queue at `path` with the default options,
    /// creating missing parent directories and bringing the schema up to
    /// date.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// [`SqliteStorage::open`] with explicit options.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, StorageError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StorageError::Unavailable(format!(
                    "cannot create the data directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let location = path.display().to_string();
        let conn = Connection::open(path).or_storage(format_args!("opening {location}"))?;
        Self::setup(conn, location, options, Some(path))
    }

    /// A private, empty queue that vanishes when dropped: for tests.
    pub fn in_memory() -> Result<Self, StorageError> {
        let conn = Connection::open_in_memory().or_storage("opening an in-memory database")?;
        Self::setup(conn, ":memory:".to_string(), SqliteOptions::default(), None)
    }

    fn setup(
        mut conn: Connection,
        location: String,
        options: SqliteOptions,
        file: Option<&Path>,
    ) -> Result<Self, StorageError> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .or_storage(format_args!("configuring {location}"))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if file.is_some() {
            // WAL lets readers (`webcare queue list` next to a running
            // host) work while the host writes, and makes NORMAL
            // synchronisation crash-safe (see `SqliteOptions`).
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .or_storage(format_args!("configuring {location}"))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StorageError::Unavailable(format!(
                    "{location}: SQLite cannot use WAL journaling here (journal mode stays \
                     {mode:?}); put the data directory on a local file system"
                )));
            }
        }
        let synchronous = if options.durable_fsync {
            "FULL"
        } else {
            "NORMAL"
        };
        conn.pragma_update(None, "synchronous", synchronous)
            .or_storage(format_args!("configuring {location}"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .or_storage(format_args!("configuring {location}"))?;
        // The hot pages of the queue (the indexes ingest touches, the
        // search index's segments) fit in 64 MiB; SQLite's default of
        // 2 MiB makes every commit re-read them from the OS.
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .or_storage(format_args!("configuring {location}"))?;
        // Sorts and temporary b-trees (the bulk index catch-up sorts 16 384
        // rows) stay in memory instead of temporary files.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .or_storage(format_args!("configuring {location}"))?;
        migrate(&mut conn, &location)?;
        let checkpointer = match file {
            Some(path) => {
                let checkpointer = Checkpointer::start(path, &location).map_err(|e| {
                    StorageError::Unavailable(format!(
                        "cannot start the WAL checkpointer for {location}: {e}"
                    ))
                })?;
                // Only now: without a checkpointer the WAL would grow forever.
                conn.pragma_update(None, "wal_autocheckpoint", 0)
                    .and_then(|()| {
                        conn.pragma_update(
                            None,
                            "journal_size_limit",
                            super::sqlite_checkpoint::RESTART_PAGES * 4096,
                        )
                    })
                    .or_storage(format_args!("configuring {location}"))?;
                Some(checkpointer)
            }
            None => None,
        };
        Ok(SqliteStorage {
            conn: Arc::new(Mutex::new(conn)),
            location: location.into(),
            outbox: options.outbox.then(|| Arc::new(tokio::sync::Notify::new())),
            checkpointer: checkpointer.map(Arc::new),
        })
    }

    /// Runs `op` with the connection on tokio's blocking pool, so that a
    /// slow disk stalls this call, not the executor.
    pub(super) async fn run<T, F>(&self, op: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let checkpointer = self.checkpointer.clone();
        tokio::task::spawn_blocking(move || {
            let result = op(&mut lock(&conn));
            if let Some(checkpointer) = checkpointer {
                checkpointer.written();
            }
            result
        })
        .await
        .map_err(|e| StorageError::Unavailable(format!("storage task failed: {e}")))?
    }
}

/// Locks the connection. A panic while it was held cannot have left a
/// transaction half-applied (rusqlite rolls a dropped transaction back,
/// also while unwinding), so a poisoned lock is safe to take over.
pub(super) fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Brings the schema to the newest version this build knows, or refuses a
/// database written by a newer build.
fn migrate(conn: &mut Connection, location: &str) -> Result<(), StorageError> {
    let known = MIGRATIONS.len();
    // Check before taking the write lock: opening an up-to-date database
    // (the common case, and what `webcare queue list` does next to a
    // running host) stays a read.
    if schema_version(conn, location)? == known {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .or_storage(format_args!("migrating {location}"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         ) STRICT",
    )
    .or_storage(format_args!("migrating {location}"))?;
    // Another process may have migrated while we waited for the lock.
    let current = schema_version(&tx, location)?;
    for (version, step) in (1_i64..).zip(MIGRATIONS).skip(current) {
        tx.execute_batch(step).or_storage(format_args!(
            "applying schema version {version} to {location}"
        ))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, now_ms()],
        )
        .or_storage(format_args!(
            "recording schema version {version} in {location}"
        ))?;
    }
    tx.commit()
        .or_storage(format_args!("migrating {location}"))?;
    tracing::info!(
        database = location,
        from = current,
        to = known,
        "queue schema migrated"
    );
    Ok(())
}

/// The schema version of the database (0 when new); an error when newer
/// than this build knows.
fn schema_version(conn: &Connection, location: &str) -> Result<usize, StorageError> {
    let context = format_args!("reading the schema version of {location}");
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master
                             WHERE type = 'table' AND name = 'schema_migrations')",
            [],
            |row| row.get(0),
        )
        .or_storage(context)?;
    if !has_table {
        return Ok(0);
    }
    let version: usize = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .or_storage(context)?;
    let known = MIGRATIONS.len();
    if version > known {
        return Err(StorageError::Schema(format!(
            "{location} has schema version {version}, but this webcare knows versions up to \
             {known}: the queue was written by a newer webcare. Run that version (or newer), \
             or point the storage at another file"
        )));
    }
    Ok(version)
}

/// Milliseconds since the epoch, now.
pub(super) fn now_ms() -> TimestampMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Maps a SQLite error to a [`StorageError`] that says what was being done
/// and, where the cause is outside webcare, what to do about it.
fn sql_error(what: impl fmt::Display, error: rusqlite::Error) -> StorageError {
    let detail = format!("{what}: {error}");
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StorageError::Unavailable(format!(
                "{detail} (another process held the database for over {} s; is a second \
                 webcare running on the same data directory?)",
                BUSY_TIMEOUT.as_secs()
            ))
        }
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure,
        ) => StorageError::Unavailable(format!(
            "{detail} (check that the data directory is writable and has free space)"
        )),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StorageError::Unavailable(format!(
                "{detail} (not an intact SQLite database: restore it from a backup or point \
                 the storage at another file)"
            ))
        }
        _ => StorageError::Query(detail),
    }
}

/// `.or_storage(what)`: [`sql_error`] in method position.
pub(super) trait OrStorage<T> {
    fn or_storage(self, what: impl fmt::Display) -> Result<T, StorageError>;
}

impl<T> OrStorage<T> for rusqlite::Result<T> {
    fn or_storage(self, what: impl fmt::Display) -> Result<T, StorageError> {
        self.map_err(|e| sql_error(what, e))
    }
}

impl ToSql for CaseStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for CaseStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        CaseStatus::parse(text)
            .ok_or_else(|| FromSqlError::Other(format!("unknown case status {text:?}").into()))
    }
}

/// `LIMIT` operand: SQLite reads a negative limit as "no limit".
pub(super) fn sql_limit(limit: usize) -> i64 {
    if limit == 0 {
        -1
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX)
    }
}

/// A message ready to insert: serialised before the blocking call, because
/// the batch borrows from the caller and cannot move to another thread.
pub(super) struct MessageRow {
    external_id: String,
    thread_id: String,
    direction: Direction,
    kind: &'static str,
    created_at: TimestampMs,
    pub(super) author_handle: String,
    pub(super) author_id: String,
    /// An address the channel gives for the author: links the author's
    /// identity to the customer profile with that address.
    pub(super) author_email: Option<String>,
    pub(super) author_name: String,
    text: String,
    json: String,
    triage: TriageRow,
}

/// A message's triage as the columns want it.
struct TriageRow {
    ignore: bool,
    /// `None` for untriaged messages.
    priority: Option<u8>,
    bucket: &'static str,
    reasons: String,
    team: Option<String>,
    sentiment: f64,
    json: Option<String>,
}

impl TriageRow {
    fn new(triage: Option<&MessageTriage>) -> Result<Self, StorageError> {
        let untriaged = MessageTriage::untriaged();
        let t = triage.unwrap_or(&untriaged);
        Ok(TriageRow {
            ignore: t.ignore,
            priority: triage.map(|t| t.score),
            bucket: t.bucket.as_str(),
            reasons: json(&t.reasons)?,
            team: t.team.clone(),
            sentiment: t.sentiment,
            json: triage.map(json).transpose()?,
        })
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value)
        .map_err(|e| StorageError::Query(format!("cannot serialise a triage: {e}")))
}

impl MessageRow {
    fn new(message: &Message, triage: Option<&MessageTriage>) -> Result<Self, StorageError> {
        Ok(MessageRow {
            external_id: message.external_id.clone(),
            thread_id: message.thread_id.clone(),
            direction: message.direction,
            kind: kind_name(message.kind),
            created_at: message.created_at,
            author_handle: message.author.handle.clone(),
            author_id: message.author.id.clone(),
            author_email: message
                .author
                .email
                .as_deref()
                .map(str::trim)
                .filter(|e| e.contains('@'))
                .map(str::to_lowercase),
            author_name: if message.author.display_name.is_empty() {
                message.author.handle.clone()
            } else {
                message.author.display_name.clone()
            },
            text: message.text.clone(),
            json: to_json(message)?,
            triage: TriageRow::new(triage)?,
        })
    }
}

fn to_json(message: &Message) -> Result<String, StorageError> {
    serde_json::to_string(message).map_err(|e| {
        StorageError::Query(format!(
            "cannot serialise message {:?}: {e}",
            message.external_id
        ))
    })
}

enum UpdateRow {
    Edited {
        external_id: String,
        text: String,
        json: String,
    },
    Deleted(String),
    Hidden(String),
    Unhidden(String),
}

impl UpdateRow {
    fn new(update: &MessageUpdate) -> Result<Self, StorageError> {
        Ok(match update {
            MessageUpdate::Edited(m) => UpdateRow::Edited {
                external_id: m.external_id.clone(),
                text: m.text.clone(),
                json: to_json(m)?,
            },
            MessageUpdate::Deleted(r) => UpdateRow::Deleted(r.external_id.clone()),
            MessageUpdate::Hidden(r) => UpdateRow::Hidden(r.external_id.clone()),
            MessageUpdate::Unhidden(r) => UpdateRow::Unhidden(r.external_id.clone()),
        })
    }
}

/// The columns [`CaseState::from_row`] reads.
const CASE_STATE_COLUMNS: &str = "id, status, version, assignee, team, message_count, \
     first_message_at, last_message_at, author, preview, priority, bucket, reasons, sentiment, \
     closed_at, waiting_since";

/// A case as a commit's messages leave it (see `CommitWork::write`).
#[derive(Debug, Clone)]
pub(super) struct CaseState {
    pub(super) id: i64,
    pub(super) status: CaseStatus,
    pub(super) version: i64,
    pub(super) assignee: Option<String>,
    pub(super) team: Option<String>,
    message_count: i64,
    first_message_at: TimestampMs,
    last_message_at: TimestampMs,
    author: String,
    preview: String,
    priority: i64,
    bucket: String,
    reasons: String,
    sentiment: f64,
    closed_at: Option<TimestampMs>,
    waiting_since: Option<TimestampMs>,
    /// Changed since read (or opened): written at the end of the commit.
    changed: bool,
    /// Which of the queue indexes' columns changed (each group is SET only
    /// when it did: SQLite rewrites an index whenever a column of it is SET).
    raised: bool,
    waits: bool,
}

impl CaseState {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(CaseState {
            id: row.get(0)?,
            status: row.get(1)?,
            version: row.get(2)?,
            assignee: row.get(3)?,
            team: row.get(4)?,
            message_count: row.get(5)?,
            first_message_at: row.get(6)?,
            last_message_at: row.get(7)?,
            author: row.get(8)?,
            preview: row.get(9)?,
            priority: row.get(10)?,
            bucket: row.get(11)?,
            reasons: row.get(12)?,
            sentiment: row.get(13)?,
            closed_at: row.get(14)?,
            waiting_since: row.get(15)?,
            changed: false,
            raised: false,
            waits: false,
        })
    }

    /// The case `m` just opened (as `open_case` wrote it).
    fn opened(id: i64, m: &MessageRow, preview: String) -> Self {
        let t = &m.triage;
        CaseState {
            id,
            status: CaseStatus::New,
            version: 0,
            assignee: None,
            team: t.team.clone(),
            message_count: 1,
            first_message_at: m.created_at,
            last_message_at: m.created_at,
            author: m.author_handle.clone(),
            preview,
            priority: i64::from(t.priority.unwrap_or(0)),
            bucket: t.bucket.to_string(),
            reasons: t.reasons.clone(),
            sentiment: t.sentiment,
            closed_at: None,
            waiting_since: Some(m.created_at),
            changed: false,
            raised: false,
            waits: false,
        }
    }

    /// The brand's own answer, or a message triage ignored: part of the
    /// case, but it reopens nothing.
    fn add_quietly(&mut self, m: &MessageRow) {
        self.message_count += 1;
        self.last_message_at = self.last_message_at.max(m.created_at);
        self.changed = true;
    }

    /// A customer's message: the case's first message may turn out to be
    /// an older one that arrived late; a case the team had put aside
    /// reopens (to `open` when someone owns it) with the new message's
    /// priority, an active case takes the higher of both; the customer
    /// waits from their oldest unanswered message. Returns the status it
    /// reopened from, if it did.
    fn add_loudly(&mut self, m: &MessageRow) -> Option<CaseStatus> {
        let t = &m.triage;
        self.message_count += 1;
        self.last_message_at = self.last_message_at.max(m.created_at);
        if m.created_at < self.first_message_at {
            self.author = m.author_handle.clone();
            self.preview = case_preview(&m.text);
        }
        self.first_message_at = self.first_message_at.min(m.created_at);
        if self.team.is_none() {
            self.team = t.team.clone();
        }
        self.version += 1;
        self.changed = true;
        let priority = i64::from(t.priority.unwrap_or(0));
        let put_aside = matches!(self.status, CaseStatus::Pending | CaseStatus::Closed);
        let reopened_from = put_aside.then_some(self.status);
        if put_aside || priority > self.priority {
            self.priority = priority;
            self.bucket = t.bucket.to_string();
            self.reasons = t.reasons.clone();
            self.sentiment = t.sentiment;
            if self.status == CaseStatus::Closed {
                self.closed_at = None;
            }
            if put_aside {
                self.status = if self.assignee.is_none() {
                    CaseStatus::New
                } else {
                    CaseStatus::Open
                };
            }
            self.raised = true;
        }
        if self.waiting_since.is_none_or(|w| w > m.created_at) {
            self.waiting_since = Some(m.created_at);
            self.waits = true;
        }
        reopened_from
    }

    /// Writes what changed, in one statement.
    fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<usize> {
        let mut sql = String::from(
            "UPDATE cases SET message_count = ?2, last_message_at = ?3, author = ?4,
                 preview = ?5, first_message_at = ?6, team = ?7, version = ?8",
        );
        if self.raised {
            sql.push_str(
                ", priority = ?9, bucket = ?10, reasons = ?11, sentiment = ?12,
                 closed_at = ?13, status = ?14",
            );
        }
        if self.waits {
            sql.push_str(", waiting_since = ?15");
        }
        sql.push_str(" WHERE id = ?1");
        let mut statement = tx.prepare_cached(&sql)?;
        // Numbered parameters: a statement takes as many as its highest
        // number, those it does not use included.
        let count = statement.parameter_count();
        let values: [&dyn rusqlite::ToSql; 15] = [
            &self.id,
            &self.message_count,
            &self.last_message_at,
            &self.author,
            &self.preview,
            &self.first_message_at,
            &self.team,
            &self.version,
            &self.priority,
            &self.bucket,
            &self.reasons,
            &self.sentiment,
            &self.closed_at,
            &self.status,
            &self.waiting_since,
        ];
        for (i, value) in values.iter().enumerate().take(count) {
            statement.raw_bind_parameter(i + 1, value)?;
        }
        statement.raw_execute()
    }
}

/// One [`Storage::commit`], owned so it can run on the blocking pool.
struct CommitWork {
    owner: ConnectorId,
    channel: String,
    messages: Vec<MessageRow>,
    updates: Vec<UpdateRow>,
    next_cursor: Option<String>,
    /// Outbox on: the batch as given, for the events' payloads.
    outbox: Option<super::sqlite_outbox::CommitEvents>,
}

impl CommitWork {
    fn new(
        owner: &ConnectorId,
        batch: IngestBatch<'_>,
        outbox: bool,
    ) -> Result<Self, StorageError> {
        batch.check()?;
        Ok(CommitWork {
            outbox: outbox.then(|| super::sqlite_outbox::CommitEvents::of(owner, batch)),
            owner: owner.clone(),
            channel: batch.channel.to_string(),
            messages: batch
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| MessageRow::new(m, batch.triage_of(i)))
                .collect::<Result<_, _>>()?,
            updates: batch
                .updates
                .iter()
                .map(UpdateRow::new)
                .collect::<Result<_, _>>()?,
            next_cursor: batch.next_cursor.map(str::to_string),
        })
    }

    /// Applies the batch in one `BEGIN IMMEDIATE` transaction: taking the
    /// write lock up front means the transaction never has to upgrade from
    /// read to write halfway, which is where SQLite fails with "busy"
    /// without waiting. Any error returns before `commit`, and dropping the
    /// transaction rolls everything back.
    fn apply(self, conn: &mut Connection) -> Result<CommitOutcome, StorageError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_storage(format_args!("starting a commit for {}", self.owner))?;
        let outcome = self.write(&tx)?;
        tx.commit()
            .or_storage(format_args!("committing a batch of {}", self.owner))?;
        if outcome.inserted > 0 {
            // The batch is stored whatever happens here; a catch-up that
            // fails is done by the next one, or by the next search.
            let caught_up = super::sqlite_indexes::backlog(conn).and_then(|waiting| {
                if waiting < super::sqlite_indexes::CATCH_UP_EVERY {
                    return Ok(());
                }
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .or_storage("starting to bring the indexes up to date")?;
                super::sqlite_indexes::catch_up(&tx)?;
                tx.commit().or_storage("bringing the indexes up to date")
            });
            if let Err(e) = caught_up {
                tracing::warn!(owner = %self.owner, "the search and author indexes are behind: {e}");
            }
        }
        Ok(outcome)
    }

    fn write(&self, tx: &Transaction<'_>) -> Result<CommitOutcome, StorageError> {
        let owner = &self.owner;
        let (brand, connector) = (owner.brand.as_str(), owner.connector.as_str());
        let prepare = |sql: &str| tx.prepare_cached(sql).or_storage("preparing a commit");
        let mut find_case = prepare(&format!(
            "SELECT {CASE_STATE_COLUMNS} FROM cases
             WHERE brand = ?1 AND connector = ?2 AND thread_id = ?3"
        ))?;
        // The audit trail records what ingest does to cases too: who
        // opened one (the customer) and who reopened it by writing again.
        let mut case_event = prepare(
            "INSERT INTO case_events (case_id, brand, at, actor, kind, channel, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut insert_message = prepare(
            "INSERT INTO messages (brand, connector, channel, external_id, thread_id, case_id,
                                   direction, kind, created_at, received_at, author_handle,
                                   text, message_json, priority, triage, ignored, author_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17)
             ON CONFLICT (brand, connector, external_id) DO NOTHING",
        )?;
        let mut open_case = prepare(
            "INSERT INTO cases (brand, connector, channel, thread_id, status, message_count,
                                first_message_at, last_message_at, author, preview,
                                priority, bucket, reasons, sentiment, team, waiting_since)
             VALUES (?1, ?2, ?3, ?4, 'new', 1, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?5)",
        )?;
        // Only asked when the thread has no case yet: a message stored
        // before must not open one (the case is opened before the message
        // is inserted, so that the row is written once, with its case).
        let mut is_stored = prepare(
            "SELECT 1 FROM messages WHERE brand = ?1 AND connector = ?2 AND external_id = ?3",
        )?;

        let mut outcome = CommitOutcome::default();
        let received_at = now_ms();
        // The batch's cases, as its messages leave them: read once, changed
        // in memory message by message exactly as one UPDATE per message
        // would, written once at the end (a case's row and its queue
        // indexes are rewritten once per commit, not once per message).
        let mut cases: HashMap<String, CaseState> = HashMap::new();
        let total = self.messages.len();
        for (index, m) in self.messages.iter().enumerate() {
            let what = format_args!(
                "storing message {:?} ({} of {total}) of {owner}",
                m.external_id,
                index + 1
            );
            let t = &m.triage;
            if !cases.contains_key(&m.thread_id)
                && let Some(found) = find_case
                    .query_row(params![brand, connector, m.thread_id], CaseState::from_row)
                    .optional()
                    .or_storage(what)?
            {
                cases.insert(m.thread_id.clone(), found);
            }
            let quiet = m.direction == Direction::Outbound || t.ignore;
            // A thread's first message that counts opens its case, unless
            // it was stored before.
            let opened = if !cases.contains_key(&m.thread_id) && !quiet {
                if is_stored
                    .exists(params![brand, connector, m.external_id])
                    .or_storage(what)?
                {
                    outcome.duplicates += 1;
                    continue;
                }
                let preview = case_preview(&m.text);
                open_case
                    .execute(params![
                        brand,
                        connector,
                        self.channel,
                        m.thread_id,
                        m.created_at,
                        m.author_handle,
                        preview,
                        t.priority.unwrap_or(0),
                        t.bucket,
                        t.reasons,
                        t.sentiment,
                        t.team,
                    ])
                    .or_storage(what)?;
                outcome.cases_opened += 1;
                let case_id = tx.last_insert_rowid();
                let detail = serde_json::json!({
                    "message": m.external_id,
                    "priority": t.priority,
                    "bucket": t.bucket,
                    "team": t.team,
                });
                case_event
                    .execute(params![
                        case_id,
                        brand,
                        received_at,
                        m.author_handle,
                        "opened",
                        connector,
                        detail.to_string(),
                    ])
                    .or_storage(what)?;
                cases.insert(m.thread_id.clone(), CaseState::opened(case_id, m, preview));
                Some(case_id)
            } else {
                None
            };
            let case_id = cases.get(&m.thread_id).map(|c| c.id);
            let inserted = insert_message
                .execute(params![
                    brand,
                    connector,
                    self.channel,
                    m.external_id,
                    m.thread_id,
                    case_id,
                    direction_name(m.direction),
                    m.kind,
                    m.created_at,
                    received_at,
                    m.author_handle,
                    m.text,
                    m.json,
                    t.priority,
                    t.json,
                    t.ignore,
                    m.author_id,
                ])
                .or_storage(what)?;
            if inserted == 0 {
                outcome.duplicates += 1;
                continue;
            }
            outcome.inserted += 1;
            if m.direction == Direction::Inbound
                && let Some(email) = &m.author_email
            {
                super::sqlite_care::link_by_email(tx, brand, connector, m, email, received_at)
                    .or_storage(what)?;
            }
            if t.ignore {
                outcome.ignored += 1;
            }
            let mut reopened = false;
            if opened.is_none()
                && let Some(case) = cases.get_mut(&m.thread_id)
            {
                if quiet {
                    case.add_quietly(m);
                } else {
                    if let Some(from) = case.add_loudly(m) {
                        reopened = true;
                        let detail = serde_json::json!({
                            "from": from,
                            "message": m.external_id,
                        });
                        case_event
                            .execute(params![
                                case.id,
                                brand,
                                received_at,
                                m.author_handle,
                                "reopened",
                                connector,
                                detail.to_string(),
                            ])
                            .or_storage(what)?;
                    }
                }
            }
            // --- NATS outbox (queue::outbox): only when it is on. ---
            if let Some(events) = &self.outbox {
                let case = cases.get(&m.thread_id);
                events.message_stored(tx, index, case, opened.is_some(), reopened, received_at)?;
            }
        }
        for case in cases.values().filter(|c| c.changed) {
            case.write(tx)
                .or_storage(format_args!("updating case {} of {owner}", case.id))?;
        }
        // The search and author indexes follow in bulk (sqlite_indexes).

        for (update_index, update) in self.updates.iter().enumerate() {
            let (sql, external_id, edit) = match update {
                UpdateRow::Edited {
                    external_id,
                    text,
                    json,
                } => (
                    "UPDATE messages SET text = ?4, message_json = ?5, edited = 1
                     WHERE brand = ?1 AND connector = ?2 AND external_id = ?3",
                    external_id,
                    Some((text, json)),
                ),
                UpdateRow::Deleted(external_id) => (
                    "UPDATE messages SET deleted = 1
                     WHERE brand = ?1 AND connector = ?2 AND external_id = ?3",
                    external_id,
                    None,
                ),
                UpdateRow::Hidden(external_id) => (
                    "UPDATE messages SET hidden = 1
                     WHERE brand = ?1 AND connector = ?2 AND external_id = ?3",
                    external_id,
                    None,
                ),
                UpdateRow::Unhidden(external_id) => (
                    "UPDATE messages SET hidden = 0
                     WHERE brand = ?1 AND connector = ?2 AND external_id = ?3",
                    external_id,
                    None,
                ),
            };
            let what = format_args!("applying an update to message {external_id:?} of {owner}");
            let mut statement = prepare(sql)?;
            let changed = match edit {
                Some((text, json)) => {
                    statement.execute(params![brand, connector, external_id, text, json])
                }
                None => statement.execute(params![brand, connector, external_id]),
            }
            .or_storage(what)?;
            if let (Some((text, _)), true) = (edit, changed > 0) {
                // The index row has the message's id, if the message is in a case.
                prepare(
                    "UPDATE search_index SET body = ?4 WHERE rowid =
                         (SELECT id FROM messages
                          WHERE brand = ?1 AND connector = ?2 AND external_id = ?3)",
                )?
                .execute(params![brand, connector, external_id, text])
                .or_storage(what)?;
            }
            if changed == 0 {
                outcome.updates_unknown += 1;
            } else {
                outcome.updates_applied += 1;
                // --- NATS outbox (queue::outbox): only when it is on. ---
                if let Some(events) = &self.outbox {
                    events.update_applied(tx, update_index, received_at)?;
                }
            }
        }

        if let Some(cursor) = &self.next_cursor {
            prepare(
                "INSERT INTO cursors (brand, connector, cursor, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (brand, connector)
                 DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )?
            .execute(params![brand, connector, cursor, received_at])
            .or_storage(format_args!("storing the cursor of {owner}"))?;
        }

        Ok(outcome)
    }
}

/// A `StoredMessage` from the columns `brand, connector, channel, case_id,
/// received_at, edited, deleted, hidden, message_json`, in that order.
pub(super) fn stored_message(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        brand: row.get(0)?,
        connector: row.get(1)?,
        channel: row.get(2)?,
        case_id: row.get(3)?,
        received_at: row.get(4)?,
        edited: row.get(5)?,
        deleted: row.get(6)?,
        hidden: row.get(7)?,
        message: row.get::<_, JsonMessage>(8)?.0,
    })
}

/// A message read back from its JSON column.
struct JsonMessage(Message);

impl FromSql for JsonMessage {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        serde_json::from_str(value.as_str()?)
            .map(JsonMessage)
            .map_err(|e| FromSqlError::Other(format!("unreadable message JSON: {e}").into()))
    }
}

fn case_from_row(row: &Row<'_>) -> rusqlite::Result<CaseSummary> {
    Ok(CaseSummary {
        id: row.get(0)?,
        brand: row.get(1)?,
        connector: row.get(2)?,
        channel: row.get(3)?,
        thread_id: row.get(4)?,
        status: row.get(5)?,
        message_count: row.get(6)?,
        first_message_at: row.get(7)?,
        last_message_at: row.get(8)?,
        author: row.get(9)?,
        preview: row.get(10)?,
    })
}

#[async_trait::async_trait]
impl Storage for SqliteStorage {
    fn prepare(
        &self,
        owner: &ConnectorId,
        batch: IngestBatch<'_>,
    ) -> Result<super::PreparedBatch, StorageError> {
        let work = CommitWork::new(owner, batch, self.outbox.is_some())?;
        Ok(super::PreparedBatch::new(owner, work))
    }

    async fn commit_prepared(
        &self,
        prepared: super::PreparedBatch,
    ) -> Result<CommitOutcome, StorageError> {
        let (_, work) = prepared.into_work::<CommitWork>()?;
        let outcome = self.run(move |conn| work.apply(conn)).await?;
        if let Some(written) = &self.outbox {
            written.notify_one();
        }
        Ok(outcome)
    }

    async fn cursor(&self, owner: &ConnectorId) -> Result<Option<String>, StorageError> {
        let owner = owner.clone();
        self.run(move |conn| {
            conn.prepare_cached("SELECT cursor FROM cursors WHERE brand = ?1 AND connector = ?2")
                .and_then(|mut s| {
                    s.query_row(params![owner.brand, owner.connector], |row| row.get(0))
                        .optional()
                })
                .or_storage(format_args!("reading the cursor of {owner}"))
        })
        .await
    }

    async fn cases(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>, StorageError> {
        let mut sql = String::from(
            "SELECT id, brand, connector, channel, thread_id, status, message_count,
                    first_message_at, last_message_at, author, preview
             FROM cases",
        );
        let mut conditions = Vec::new();
        let mut args = Vec::new();
        if let Some(brand) = &filter.brand {
            args.push(Value::Text(brand.clone()));
            conditions.push(format!("brand = ?{}", args.len()));
        }
        if let Some(status) = filter.status {
            args.push(Value::Text(status.as_str().to_string()));
            conditions.push(format!("status = ?{}", args.len()));
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        args.push(Value::Integer(sql_limit(filter.limit)));
        sql.push_str(&format!(
            " ORDER BY last_message_at DESC, id DESC LIMIT ?{}",
            args.len()
        ));
        self.run(move |conn| {
            conn.prepare_cached(&sql)
                .and_then(|mut statement| {
                    statement
                        .query_map(params_from_iter(args), case_from_row)?
                        .collect()
                })
                .or_storage("listing cases")
        })
        .await
    }

    async fn messages(
        &self,
        brand: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let brand = brand.to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "SELECT brand, connector, channel, case_id, received_at,
                        edited, deleted, hidden, message_json
                 FROM messages WHERE brand = ?1
                 ORDER BY created_at, id LIMIT ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_map(params![brand, sql_limit(limit)], stored_message)?
                    .collect()
            })
            .or_storage(format_args!("reading the messages of brand {brand:?}"))
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<ChannelCount>, StorageError> {
        self.run(|conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT brand, connector, channel, SUM(messages), SUM(cases)
                 FROM (SELECT brand, connector, channel, COUNT(*) AS messages, 0 AS cases
                       FROM messages GROUP BY brand, connector, channel
                       UNION ALL
                       SELECT brand, connector, channel, 0, COUNT(*)
                       FROM cases GROUP BY brand, connector, channel)
                 GROUP BY brand, connector, channel
                 ORDER BY brand, connector, channel",
                )
                .or_storage("counting messages and cases")?;
            statement
                .query_map([], |row| {
                    Ok(ChannelCount {
                        brand: row.get(0)?,
                        connector: row.get(1)?,
                        channel: row.get(2)?,
                        messages: row.get(3)?,
                        cases: row.get(4)?,
                    })
                })
                .and_then(Iterator::collect)
                .or_storage("counting messages and cases")
        })
        .await
    }

    async fn claim_leases(
        &self,
        holder: &str,
        wanted: &[ConnectorId],
        ttl: std::time::Duration,
    ) -> Result<Vec<ConnectorId>, StorageError> {
        let holder = holder.to_string();
        let wanted = wanted.to_vec();
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let what = format_args!("claiming the poll leases of {holder}");
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_storage(what)?;
            let now = now_ms();
            let mut held = Vec::new();
            {
                let mut claim = tx
                    .prepare_cached(
                        "INSERT INTO leases (brand, connector, holder, expires_at)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (brand, connector) DO UPDATE
                         SET holder = excluded.holder, expires_at = excluded.expires_at
                         WHERE leases.holder = excluded.holder OR leases.expires_at <= ?5",
                    )
                    .or_storage(what)?;
                for id in wanted {
                    let taken = claim
                        .execute(params![id.brand, id.connector, holder, now + ttl, now])
                        .or_storage(what)?;
                    if taken > 0 {
                        held.push(id);
                    }
                }
            }
            tx.commit().or_storage(what)?;
            Ok(held)
        })
        .await
    }

    async fn release_leases(&self, holder: &str) -> Result<(), StorageError> {
        let holder = holder.to_string();
        self.run(move |conn| {
            let what = format_args!("releasing the poll leases of {holder}");
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_storage(what)?;
            tx.execute("DELETE FROM leases WHERE holder = ?1", params![holder])
                .or_storage(what)?;
            tx.execute("DELETE FROM hosts WHERE id = ?1", params![holder])
                .or_storage(what)?;
            tx.commit().or_storage(what)
        })
        .await
    }

    async fn give_up_leases(
        &self,
        holder: &str,
        connectors: &[ConnectorId],
    ) -> Result<(), StorageError> {
        let holder = holder.to_string();
        let connectors = connectors.to_vec();
        self.run(move |conn| {
            let what = format_args!("giving up poll leases of {holder}");
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_storage(what)?;
            for id in &connectors {
                tx.execute(
                    "DELETE FROM leases WHERE brand = ?1 AND connector = ?2 AND holder = ?3",
                    params![id.brand, id.connector, holder],
                )
                .or_storage(what)?;
            }
            tx.commit().or_storage(what)
        })
        .await
    }

    async fn heartbeat(&self, host: &str, ttl: std::time::Duration) -> Result<usize, StorageError> {
        let host = host.to_string();
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let what = format_args!("recording that host {host} is alive");
            let now = now_ms();
            conn.execute(
                "INSERT INTO hosts (id, seen_until) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET seen_until = excluded.seen_until",
                params![host, now + ttl],
            )
            .or_storage(what)?;
            let live: i64 = conn
                .query_row(
                    "SELECT count(*) FROM hosts WHERE seen_until > ?1",
                    params![now],
                    |row| row.get(0),
                )
                .or_storage(what)?;
            Ok(usize::try_from(live).unwrap_or(1).max(1))
        })
        .await
    }

    async fn leases(&self) -> Result<Vec<Lease>, StorageError> {
        self.run(move |conn| {
            conn.prepare_cached(
                "SELECT brand, connector, holder, expires_at FROM leases ORDER BY brand, connector",
            )
            .and_then(|mut s| {
                s.query_map([], |row| {
                    Ok(Lease {
                        brand: row.get(0)?,
                        connector: row.get(1)?,
                        holder: row.get(2)?,
                        expires_at: row.get(3)?,
                    })
                })?
                .collect()
            })
            .or_storage("listing the poll leases")
        })
        .await
    }

    fn care(&self) -> Option<&dyn crate::care::CareStore> {
        Some(self)
    }

    fn outbox(&self) -> Option<Arc<dyn super::outbox::Outbox>> {
        self.sqlite_outbox()
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn state_store(&self) -> Arc<dyn StateStore> {
        Arc::new(SqliteStateStore {
            conn: Arc::clone(&self.conn),
            location: Arc::clone(&self.location),
        })
    }
}

/// The `state` capability kept in the queue's database, so a connector's
/// state survives restarts and is backed up with the queue.
///
/// [`StateStore`] is synchronous (plugins call it from inside a guest call),
/// so these methods take the shared connection directly instead of going
/// through the blocking pool. Each is one short query on a primary key, but
/// it waits for a commit in progress: a plugin call may block for as long
/// as one batch takes to commit.
struct SqliteStateStore {
    conn: Arc<Mutex<Connection>>,
    location: Arc<str>,
}

impl fmt::Debug for SqliteStateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStateStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SqliteStateStore {
    fn unavailable(&self, owner: &ConnectorId, error: rusqlite::Error) -> StateError {
        StateError::Unavailable(
            sql_error(
                format_args!("connector state of {owner} in {}", self.location),
                error,
            )
            .to_string(),
        )
    }
}

impl StateStore for SqliteStateStore {
    fn get(&self, owner: &ConnectorId, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        lock(&self.conn)
            .prepare_cached(
                "SELECT value FROM connector_state
                 WHERE brand = ?1 AND connector = ?2 AND key = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![owner.brand, owner.connector, key], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| self.unavailable(owner, e))
    }

    fn set(&self, owner: &ConnectorId, key: &str, value: &[u8]) -> Result<(), StateError> {
        check_entry(key, value)?;
        let mut conn = lock(&self.conn);
        // The size check and the write form one transaction, so two
        // writers cannot both pass the check and together exceed the cap.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.unavailable(owner, e))?;
        // Bytes, not characters: `length` of a TEXT counts characters.
        let others: usize = tx
            .prepare_cached(
                "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0)
                 FROM connector_state
                 WHERE brand = ?1 AND connector = ?2 AND key <> ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![owner.brand, owner.connector, key], |row| row.get(0))
            })
            .map_err(|e| self.unavailable(owner, e))?;
        let total = others + key.len() + value.len();
        if total > MAX_TOTAL_BYTES {
            return Err(StateError::TooLarge(format!(
                "state of {owner} would grow to {total} bytes, limit {MAX_TOTAL_BYTES}; \
                 the connector must delete keys it no longer needs"
            )));
        }
        tx.prepare_cached(
            "INSERT INTO connector_state (brand, connector, key, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (brand, connector, key) DO UPDATE SET value = excluded.value",
        )
        .and_then(|mut s| s.execute(params![owner.brand, owner.connector, key, value]))
        .map_err(|e| self.unavailable(owner, e))?;
        tx.commit().map_err(|e| self.unavailable(owner, e))
    }

    fn delete(&self, owner: &ConnectorId, key: &str) -> Result<(), StateError> {
        lock(&self.conn)
            .prepare_cached(
                "DELETE FROM connector_state WHERE brand = ?1 AND connector = ?2 AND key = ?3",
            )
            .and_then(|mut s| s.execute(params![owner.brand, owner.connector, key]))
            .map(drop)
            .map_err(|e| self.unavailable(owner, e))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{Attachment, Author, Engagement, Visibility};
    use crate::queue::suite;

    /// One test per suite property, each on a fresh database.
    macro_rules! suite_tests {
        ($($property:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $property() {
                let storage = SqliteStorage::in_memory().expect("in-memory database");
                suite::$property(&storage).await;
            }
        )*};
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

    #[tokio::test]
    async fn whole_suite_shares_one_database() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("queue.db")).unwrap();
        suite::run_all(&storage).await;
    }

    /// One test per case-workflow property, each on a fresh database.
    macro_rules! care_suite_tests {
        ($($property:ident),* $(,)?) => {
            mod care_suite {
                use super::*;
                $(
                    #[tokio::test]
                    async fn $property() {
                        let storage = SqliteStorage::in_memory().expect("in-memory database");
                        crate::care::suite::$property(&storage).await;
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

    /// A batch with several messages per case leaves every case exactly
    /// as committing its messages one by one does (the commit folds a
    /// batch's messages into each case in memory and writes it once).
    #[tokio::test]
    async fn one_batch_and_message_by_message_leave_the_same_cases() {
        use crate::care::{Case, NewEvent};
        use crate::queue::MessageTriage;
        use crate::triage::{Bucket, Reason};

        fn triage(score: u8, bucket: Bucket, team: Option<&str>, ignore: bool) -> MessageTriage {
            MessageTriage {
                ignore,
                score,
                bucket,
                reasons: vec![Reason {
                    points: i32::from(score),
                    text: format!("scored {score}"),
                }],
                team: team.map(str::to_string),
                sentiment: -f64::from(score) / 100.0,
            }
        }
        fn msg(id: &str, thread: &str, at: i64, outbound: bool) -> Message {
            let mut m = message(id);
            m.thread_id = thread.to_string();
            m.text = format!("bericht {id}");
            m.author.handle = format!("klant_{id}");
            m.created_at = 1_736_154_000_000 + at;
            if outbound {
                m.direction = Direction::Outbound;
            }
            m
        }
        async fn ingest(storage: &SqliteStorage, messages: &[Message], triage: &[MessageTriage]) {
            let batch = IngestBatch {
                channel: "twitter",
                messages,
                triage,
                updates: &[],
                next_cursor: None,
            };
            storage.commit(&owner(), batch).await.unwrap();
        }
        async fn put_aside(
            storage: &SqliteStorage,
            id: i64,
            status: CaseStatus,
            who: Option<&str>,
        ) {
            let care = storage.care().unwrap();
            let case = care.case("acme", id).await.unwrap().unwrap();
            let mut next = case.clone();
            next.status = status;
            next.assignee = who.map(str::to_string);
            next.waiting_since = None;
            next.closed_at = (status == CaseStatus::Closed).then_some(case.last_message_at);
            next.version += 1;
            let event = NewEvent {
                at: 0,
                actor: "suite".to_string(),
                kind: "set",
                channel: None,
                detail: serde_json::json!({}),
            };
            assert!(care.write_case(&next, case.version, &event).await.unwrap());
        }

        let first = [msg("a1", "a", 0, false), msg("b1", "b", 10, false)];
        let first_triage = [
            triage(30, Bucket::Normal, None, false),
            triage(20, Bucket::Low, None, false),
        ];
        let then = [
            msg("a2", "a", 100, false),
            msg("b2", "b", 5, false),
            msg("a3", "a", 110, true),
            msg("b3", "b", 120, false),
            msg("a4", "a", 130, false),
            msg("c1", "c", 140, false),
            msg("c0", "c", 1, false),
            msg("c2", "c", 150, true),
            msg("b4", "b", 160, false),
        ];
        let then_triage = [
            triage(10, Bucket::Low, Some("care"), false),
            triage(80, Bucket::Urgent, Some("billing"), false),
            MessageTriage::untriaged(),
            triage(95, Bucket::Urgent, None, true),
            triage(60, Bucket::High, None, false),
            triage(40, Bucket::Normal, Some("care"), false),
            triage(70, Bucket::High, None, false),
            MessageTriage::untriaged(),
            triage(85, Bucket::Urgent, None, false),
        ];
        /// Per case: its events' actor, kind and detail.
        type Events = Vec<Vec<(String, String, serde_json::Value)>>;
        let mut results: Vec<(Vec<Case>, Events)> = Vec::new();
        for one_by_one in [false, true] {
            let storage = SqliteStorage::in_memory().unwrap();
            ingest(&storage, &first, &first_triage).await;
            put_aside(&storage, 1, CaseStatus::Pending, Some("anna")).await;
            put_aside(&storage, 2, CaseStatus::Closed, None).await;
            if one_by_one {
                for (m, t) in then.iter().zip(&then_triage) {
                    ingest(&storage, std::slice::from_ref(m), std::slice::from_ref(t)).await;
                }
            } else {
                ingest(&storage, &then, &then_triage).await;
            }
            let care = storage.care().unwrap();
            let mut cases = Vec::new();
            let mut events = Vec::new();
            for id in 1..=3 {
                cases.push(care.case("acme", id).await.unwrap().unwrap());
                events.push(
                    care.case_events("acme", id)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|e| (e.actor, e.kind, e.detail))
                        .collect(),
                );
            }
            results.push((cases, events));
        }
        let (batch, single) = (&results[0], &results[1]);
        assert_eq!(batch.0, single.0, "the cases");
        assert_eq!(batch.1, single.1, "the cases' events");
        // And what that is: a reopened, raised by a4, waiting since a2;
        // b reopened by b2 (older than b1: it becomes the first message),
        // b3 ignored, b4 raises; c opened by c1, then c0 is its first.
        let [a, b, c] = [&batch.0[0], &batch.0[1], &batch.0[2]];
        assert_eq!(
            (a.status, a.priority, a.message_count, a.team.as_deref()),
            (CaseStatus::Open, 60, 4, Some("care"))
        );
        assert_eq!(a.waiting_since, Some(1_736_154_000_100));
        assert_eq!(
            (b.status, b.priority, b.message_count, b.author.as_str()),
            (CaseStatus::New, 85, 4, "klant_b2")
        );
        assert_eq!(b.closed_at, None);
        assert_eq!(
            (c.status, c.priority, c.message_count, c.author.as_str()),
            (CaseStatus::New, 70, 3, "klant_c0")
        );
        assert_eq!(c.version, 1, "two loud messages: opened, then one more");
    }

    #[tokio::test]
    async fn outbox_follows_every_case_change() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            outbox: true,
            ..SqliteOptions::default()
        };
        let storage = SqliteStorage::open_with(&dir.path().join("queue.db"), options).unwrap();
        crate::care::suite::outbox_follows_every_case_change(&storage).await;
    }

    #[tokio::test]
    async fn whole_care_suite_shares_one_database() {
        let storage = SqliteStorage::in_memory().expect("in-memory database");
        crate::care::suite::run_all(&storage).await;
    }

    fn owner() -> ConnectorId {
        ConnectorId {
            brand: "acme".to_string(),
            connector: "twitter".to_string(),
        }
    }

    /// A customer's direct message in `thread-1`, every field set.
    pub(in crate::queue) fn message(external_id: &str) -> Message {
        Message {
            external_id: external_id.to_string(),
            thread_id: "thread-1".to_string(),
            in_reply_to: None,
            kind: crate::model::MessageKind::DirectMessage,
            visibility: Visibility::Private,
            direction: Direction::Inbound,
            addressed_to_brand: true,
            author: Author {
                id: "42".to_string(),
                handle: "sanne_dv".to_string(),
                display_name: "Sanne".to_string(),
                followers: None,
                verified: false,
                profile_url: None,
                email: None,
            },
            text: "Mijn pakket is zoek 📦".to_string(),
            html: None,
            subject: None,
            language: None,
            created_at: 1_736_154_000_000,
            permalink: None,
            attachments: Vec::<Attachment>::new(),
            metrics: Engagement::default(),
            properties: Vec::new(),
        }
    }

    fn batch<'a>(messages: &'a [Message], cursor: Option<&'a str>) -> IngestBatch<'a> {
        IngestBatch {
            channel: "twitter",
            messages,
            triage: &[],
            updates: &[],
            next_cursor: cursor,
        }
    }

    fn pragma(storage: &SqliteStorage, name: &str) -> String {
        let value: Value = lock(&storage.conn)
            .pragma_query_value(None, name, |row| row.get(0))
            .unwrap();
        match value {
            Value::Integer(n) => n.to_string(),
            Value::Text(text) => text,
            other => panic!("pragma {name} is {other:?}"),
        }
    }

    fn applied_versions(path: &Path) -> Vec<(i64, i64)> {
        let conn = Connection::open(path).unwrap();
        let mut statement = conn
            .prepare("SELECT version, applied_at FROM schema_migrations ORDER BY version")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn open_creates_the_data_directory_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("queue").join("webcare.db");
        let storage = SqliteStorage::open(&path).unwrap();
        assert!(
            path.exists(),
            "the database file is created with its directories"
        );
        assert_eq!(pragma(&storage, "journal_mode"), "wal");
        assert_eq!(pragma(&storage, "synchronous"), "1", "NORMAL by default");
        assert_eq!(pragma(&storage, "foreign_keys"), "1");
        assert_eq!(pragma(&storage, "busy_timeout"), "5000");
        // The checkpointer thread checkpoints, never the writer's commits.
        assert_eq!(pragma(&storage, "wal_autocheckpoint"), "0");
        assert_eq!(pragma(&storage, "journal_size_limit"), "67108864");

        let durable = SqliteStorage::open_with(
            &dir.path().join("durable.db"),
            SqliteOptions {
                durable_fsync: true,
                ..SqliteOptions::default()
            },
        )
        .unwrap();
        assert_eq!(pragma(&durable, "synchronous"), "2", "FULL when asked for");
    }

    #[test]
    fn migrations_are_idempotent_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        drop(SqliteStorage::open(&path).unwrap());
        let first = applied_versions(&path);
        let expected: Vec<i64> = (1..=MIGRATIONS.len() as i64).collect();
        assert_eq!(
            first.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            expected,
            "every migration is recorded once"
        );
        drop(SqliteStorage::open(&path).unwrap());
        drop(SqliteStorage::open(&path).unwrap());
        assert_eq!(
            applied_versions(&path),
            first,
            "reopening applies nothing again"
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        drop(SqliteStorage::open(&path).unwrap());
        let newer = MIGRATIONS.len() + 1;
        Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)",
                [newer],
            )
            .unwrap();
        let error = SqliteStorage::open(&path).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, StorageError::Schema(_)), "{error:?}");
        assert!(
            text.contains(&format!("schema version {newer}"))
                && text.contains(&format!("up to {}", MIGRATIONS.len())),
            "the error names both versions: {text}"
        );
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        {
            let storage = SqliteStorage::open(&path).unwrap();
            let out = storage
                .commit(&owner(), batch(&[message("1"), message("2")], Some("c-2")))
                .await
                .unwrap();
            assert_eq!(out.inserted, 2);
            storage
                .state_store()
                .set(&owner(), "token_expiry", b"1736157600")
                .unwrap();
        }
        let storage = SqliteStorage::open(&path).unwrap();
        let messages = storage.messages("acme", 0).await.unwrap();
        assert_eq!(messages.len(), 2, "messages survive");
        assert_eq!(messages[0].message, message("1"));
        assert_eq!(
            storage.cursor(&owner()).await.unwrap().as_deref(),
            Some("c-2")
        );
        assert_eq!(
            storage.cases(&CaseFilter::default()).await.unwrap().len(),
            1
        );
        assert_eq!(
            storage
                .state_store()
                .get(&owner(), "token_expiry")
                .unwrap()
                .as_deref(),
            Some(&b"1736157600"[..]),
            "connector state survives"
        );
        let out = storage
            .commit(&owner(), batch(&[message("2")], None))
            .await
            .unwrap();
        assert_eq!(out.duplicates, 1, "deduplication spans restarts");
    }

    /// A queue written before the case workflow (schema version 1) opens
    /// with its cases workable: waiting since their first message when
    /// active, nothing waiting when answered, old messages searchable.
    #[tokio::test]
    async fn cases_from_schema_1_are_workable_after_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (
                     version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT;
                 INSERT INTO schema_migrations VALUES (1, 0);",
            )
            .unwrap();
            for (id, thread, status) in [(1, "thread-1", "new"), (2, "thread-2", "pending")] {
                conn.execute(
                    "INSERT INTO cases (id, brand, connector, channel, thread_id, status,
                         message_count, first_message_at, last_message_at, author, preview)
                     VALUES (?1, 'acme', 'twitter', 'twitter', ?2, ?3, 1, ?4, ?4, 'sanne_dv',
                             'Mijn pakket is zoek')",
                    params![id, thread, status, 1_736_154_000_000_i64 + id],
                )
                .unwrap();
                let mut m = message(&format!("old-{id}"));
                m.thread_id = thread.to_string();
                m.text = format!("oude klacht nummer{id}");
                conn.execute(
                    "INSERT INTO messages (brand, connector, channel, external_id, thread_id,
                         case_id, direction, kind, created_at, received_at, author_handle,
                         text, message_json)
                     VALUES ('acme', 'twitter', 'twitter', ?1, ?2, ?3, 'inbound',
                             'direct_message', ?4, ?4, 'sanne_dv', ?5, ?6)",
                    params![
                        m.external_id,
                        thread,
                        id,
                        m.created_at,
                        m.text,
                        serde_json::to_string(&m).unwrap()
                    ],
                )
                .unwrap();
            }
        }
        let storage = SqliteStorage::open(&path).unwrap();
        let care = storage.care().unwrap();
        let new = care.case("acme", 1).await.unwrap().unwrap();
        assert_eq!(new.waiting_since, Some(new.first_message_at));
        assert_eq!(
            (new.priority, new.version, new.assignee.as_deref()),
            (0, 0, None)
        );
        let pending = care.case("acme", 2).await.unwrap().unwrap();
        assert_eq!(pending.waiting_since, None, "answered: nothing waits");
        let hits = care.search("acme", "klacht", 10).await.unwrap();
        assert_eq!(hits.len(), 2, "old messages are indexed: {hits:#?}");
        let hits = care.search("acme", "nummer2", 10).await.unwrap();
        assert_eq!(hits.iter().map(|h| h.case_id).collect::<Vec<_>>(), [2]);
        assert_eq!(care.case_messages("acme", 1).await.unwrap().len(), 1);

        // New messages join the old cases.
        let mut again = message("new-1");
        again.thread_id = "thread-2".to_string();
        let out = storage
            .commit(&owner(), batch(&[again], None))
            .await
            .unwrap();
        assert_eq!((out.inserted, out.cases_opened), (1, 0));
        let reopened = care.case("acme", 2).await.unwrap().unwrap();
        assert_eq!(reopened.status, CaseStatus::New);
        assert_eq!(reopened.version, 1);
    }

    /// A failure after the messages and cases were written (at the cursor,
    /// the last step) still leaves nothing of the batch behind.
    #[tokio::test]
    async fn a_failure_at_the_cursor_rolls_back_the_messages() {
        let storage = SqliteStorage::in_memory().unwrap();
        storage
            .commit(&owner(), batch(&[message("1")], Some("c-1")))
            .await
            .unwrap();
        lock(&storage.conn)
            .execute_batch(
                "CREATE TEMP TRIGGER fail_cursor BEFORE UPDATE ON main.cursors
                 BEGIN SELECT RAISE(ABORT, 'injected cursor failure'); END",
            )
            .unwrap();
        let mut other_thread = message("3");
        other_thread.thread_id = "thread-2".to_string();
        let error = storage
            .commit(&owner(), batch(&[message("2"), other_thread], Some("c-2")))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("injected cursor failure")
                && error.to_string().contains("acme/twitter"),
            "the error says what failed and for whom: {error}"
        );
        let messages = storage.messages("acme", 0).await.unwrap();
        assert_eq!(messages.len(), 1, "the batch's messages were rolled back");
        let cases = storage.cases(&CaseFilter::default()).await.unwrap();
        assert_eq!(cases.len(), 1, "the batch's new case was rolled back");
        assert_eq!(cases[0].message_count, 1, "the case update was rolled back");
        assert_eq!(
            storage.cursor(&owner()).await.unwrap().as_deref(),
            Some("c-1")
        );

        lock(&storage.conn)
            .execute_batch("DROP TRIGGER fail_cursor")
            .unwrap();
        let out = storage
            .commit(&owner(), batch(&[message("2")], Some("c-2")))
            .await
            .unwrap();
        assert_eq!(
            out.inserted, 1,
            "the connection is usable after the rollback"
        );
    }

    #[tokio::test]
    async fn an_empty_external_id_is_refused_with_context() {
        let storage = SqliteStorage::in_memory().unwrap();
        let error = storage
            .commit(&owner(), batch(&[message("1"), message("")], None))
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("(2 of 2)") && text.contains("acme/twitter"),
            "the error names the message and the connector: {text}"
        );
    }

    #[test]
    fn enum_columns_use_the_json_names() {
        use crate::model::MessageKind::*;
        for kind in [Mention, Comment, Reply, DirectMessage, Post, Email, Review] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind_name(kind));
        }
        for direction in [Direction::Inbound, Direction::Outbound] {
            assert_eq!(
                serde_json::to_value(direction).unwrap(),
                direction_name(direction)
            );
        }
    }
}
