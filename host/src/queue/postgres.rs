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
//! * **Triage and the case workflow.** A commit stores triage on messages
//!   and cases exactly as SQLite's does (decided per thread in Rust from
//!   the locked cases, see [`CaseDelta`]), and writes the `opened` and
//!   `reopened` events and the search entries in the same statements as
//!   the cases and messages (CTEs), so they cost no round trip. The
//!   workflow itself ([`crate::care::CareStore`]) is in
//!   [`super::postgres_care`], search in [`super::postgres_search`].
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

use deadpool_postgres::{ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::postgres_search::{brand_lexeme, document_text};
use super::postgres_tls::PgTls;
use super::{
    CaseFilter, CaseStatus, CaseSummary, ChannelCount, CommitOutcome, IngestBatch, Lease,
    MessageTriage, Storage, StorageError, StoredMessage, case_preview,
};
use super::{direction_name, kind_name};
use crate::capabilities::state::{MAX_TOTAL_BYTES, check_entry};
use crate::capabilities::{ConnectorId, StateError, StateStore};
use crate::model::{Direction, Message, MessageUpdate, TimestampMs};

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
    // 2: the case workflow, as SQLite's step 2: ownership, triage and
    // service times on cases, triage on messages, the audit trail,
    // outgoing actions, API tokens, customers, alerts and the full-text
    // index.
    r#"
    ALTER TABLE cases
        ADD COLUMN assignee          TEXT,
        ADD COLUMN team              TEXT,
        ADD COLUMN priority          SMALLINT NOT NULL DEFAULT 0
                                     CHECK (priority BETWEEN 0 AND 100),
        ADD COLUMN bucket            TEXT     NOT NULL DEFAULT 'low'
                                     CHECK (bucket IN ('low', 'normal', 'high', 'urgent')),
        ADD COLUMN reasons           JSONB    NOT NULL DEFAULT '[]',
        ADD COLUMN sentiment         DOUBLE PRECISION NOT NULL DEFAULT 0,
        ADD COLUMN waiting_since     BIGINT,
        ADD COLUMN first_response_at BIGINT,
        ADD COLUMN closed_at         BIGINT,
        ADD COLUMN escalation        JSONB,
        ADD COLUMN version           BIGINT   NOT NULL DEFAULT 0;
    UPDATE cases SET waiting_since = first_message_at WHERE status IN ('new', 'open');

    -- The queue view: a brand's cases most urgent first, then the longest
    -- waiting (an ascending column sorts NULL, nothing waiting, last).
    CREATE INDEX cases_queue ON cases (brand, priority DESC, waiting_since, id);
    CREATE INDEX cases_queue_by_status
        ON cases (brand, status, priority DESC, waiting_since, id);

    -- `priority` is NULL for untriaged messages; `triage` is the whole
    -- decision. `author_id` finds a customer's messages across cases.
    ALTER TABLE messages
        ADD COLUMN priority  SMALLINT,
        ADD COLUMN triage    JSONB,
        ADD COLUMN ignored   BOOLEAN NOT NULL DEFAULT false,
        ADD COLUMN author_id TEXT;
    UPDATE messages SET author_id = message_json::jsonb -> 'author' ->> 'id';
    -- (brand, author_id, connector), not SQLite's order: an index that
    -- starts with (brand, connector) looks as good to the planner as the
    -- unique (brand, connector, external_id) while the statistics are
    -- young, and it then probes a batch's external ids through it,
    -- scanning the connector's messages (measured: 100 times slower).
    CREATE INDEX messages_by_author ON messages (brand, author_id, connector);

    CREATE TABLE case_events (
        id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases (id),
        brand   TEXT   NOT NULL,
        at      BIGINT NOT NULL,
        actor   TEXT   NOT NULL,
        kind    TEXT   NOT NULL,
        channel TEXT,
        detail  JSONB  NOT NULL
    );
    CREATE INDEX case_events_by_case ON case_events (case_id, id);

    CREATE TABLE actions (
        id                 BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        brand              TEXT    NOT NULL,
        case_id            BIGINT  NOT NULL REFERENCES cases (id),
        connector          TEXT    NOT NULL,
        target_external_id TEXT    NOT NULL,
        idempotency_key    TEXT    NOT NULL,
        action             JSONB   NOT NULL,
        state              TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
        attempts           INTEGER NOT NULL,
        result             JSONB,
        error              TEXT,
        requested_by       TEXT    NOT NULL,
        created_at         BIGINT  NOT NULL,
        updated_at         BIGINT  NOT NULL,
        UNIQUE (brand, idempotency_key)
    );
    CREATE INDEX actions_by_case ON actions (case_id, id);

    CREATE TABLE api_tokens (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name       TEXT   NOT NULL,
        brand      TEXT,
        role       TEXT   NOT NULL CHECK (role IN ('agent', 'second_line', 'admin')),
        hash       TEXT   NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
    );

    -- The full-text index (see queue::postgres_search): one entry per
    -- message in a case (id: the message's id) and per note (id: minus
    -- the event's id). `document` holds the folded words and one lexeme
    -- naming the brand, so the GIN index narrows a search to the brand.
    -- No foreign keys: entries are written by the statements that write
    -- their message or note, and ingest pays for every check.
    CREATE TABLE search_entries (
        id       BIGINT   PRIMARY KEY,
        brand    TEXT     NOT NULL,
        case_id  BIGINT   NOT NULL,
        source   TEXT     NOT NULL CHECK (source IN ('message', 'note')),
        at       BIGINT   NOT NULL,
        document TSVECTOR NOT NULL
    );
    CREATE INDEX search_entries_document ON search_entries USING GIN (document);
    -- Messages stored before this step are indexed with their diacritics
    -- taken off in SQL (decomposed, combining marks removed), which is
    -- what webcare does for new ones.
    INSERT INTO search_entries (id, brand, case_id, source, at, document)
        SELECT id, brand, case_id, 'message', created_at,
               to_tsvector('simple', regexp_replace(normalize(lower(text), NFD),
                                                    '[\u0300-\u036f]', '', 'g'))
               || array_to_tsvector(ARRAY['brand:' || encode(convert_to(brand, 'UTF8'), 'hex')])
        FROM messages WHERE case_id IS NOT NULL;

    -- One customer across channels: an identity is (connector, the
    -- channel's author id); identities are linked to one customer profile
    -- automatically by an e-mail address the channel gives, or by hand.
    CREATE TABLE customers (
        id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        brand        TEXT   NOT NULL,
        display_name TEXT   NOT NULL,
        email        TEXT,
        created_at   BIGINT NOT NULL
    );
    CREATE INDEX customers_by_email ON customers (brand, email) WHERE email IS NOT NULL;

    CREATE TABLE customer_identities (
        brand       TEXT   NOT NULL,
        connector   TEXT   NOT NULL,
        author_id   TEXT   NOT NULL,
        handle      TEXT   NOT NULL,
        customer_id BIGINT NOT NULL REFERENCES customers (id),
        linked_by   TEXT   NOT NULL,
        linked_at   BIGINT NOT NULL,
        PRIMARY KEY (brand, connector, author_id)
    );
    CREATE INDEX customer_identities_by_customer ON customer_identities (customer_id);

    CREATE TABLE customer_events (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        brand       TEXT   NOT NULL,
        customer_id BIGINT NOT NULL,
        at          BIGINT NOT NULL,
        actor       TEXT   NOT NULL,
        kind        TEXT   NOT NULL,
        detail      JSONB  NOT NULL
    );
    CREATE INDEX customer_events_by_customer ON customer_events (customer_id, id);

    -- Links the authors of new inbound messages to the customer profile
    -- with the address their channel gave (creating it), in order, unless
    -- an identity is linked already (also after a manual unlink, which
    -- the next message must not undo). One call per commit, so a batch
    -- needs no round trip per author; the address's advisory lock keeps
    -- two hosts from creating two profiles for one address.
    CREATE FUNCTION link_authors_by_email(
        p_brand text, p_connector text, p_author_ids text[], p_handles text[],
        p_names text[], p_emails text[], p_at bigint
    ) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        customer bigint;
    BEGIN
        FOR i IN 1 .. coalesce(array_length(p_author_ids, 1), 0) LOOP
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM customer_identities
                WHERE brand = p_brand AND connector = p_connector
                  AND author_id = p_author_ids[i]);
            PERFORM pg_advisory_xact_lock(2003723108,
                                          hashtext(p_brand || E'\x1f' || p_emails[i]));
            SELECT min(id) INTO customer FROM customers
            WHERE brand = p_brand AND email = p_emails[i];
            IF customer IS NULL THEN
                INSERT INTO customers (brand, display_name, email, created_at)
                VALUES (p_brand, p_names[i], p_emails[i], p_at)
                RETURNING id INTO customer;
            END IF;
            INSERT INTO customer_identities
                (brand, connector, author_id, handle, customer_id, linked_by, linked_at)
            VALUES (p_brand, p_connector, p_author_ids[i], p_handles[i], customer,
                    'webcare (e-mail)', p_at);
            INSERT INTO customer_events (brand, customer_id, at, actor, kind, detail)
            VALUES (p_brand, customer, p_at, 'webcare (e-mail)', 'linked',
                    jsonb_build_object(
                        'identities', jsonb_build_array(jsonb_build_object(
                            'connector', p_connector, 'author_id', p_author_ids[i])),
                        'by', 'email',
                        'email', p_emails[i]));
        END LOOP;
    END
    $$;

    -- Crisis alerts, with the messages behind them.
    CREATE TABLE alerts (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        brand       TEXT   NOT NULL,
        kind        TEXT   NOT NULL,
        raised_at   BIGINT NOT NULL,
        window_from BIGINT NOT NULL,
        window_to   BIGINT NOT NULL,
        observed    BIGINT NOT NULL,
        expected    DOUBLE PRECISION NOT NULL,
        team        TEXT,
        messages    JSONB  NOT NULL
    );
    CREATE INDEX alerts_by_brand ON alerts (brand, kind, window_to);
    "#,
    // 3: poll leases: each connector is polled by one host at a time.
    r#"
    CREATE TABLE leases (
        brand      TEXT   NOT NULL,
        connector  TEXT   NOT NULL,
        holder     TEXT   NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (brand, connector)
    );
    -- The hosts alive on this queue, for sharing the connectors out.
    CREATE TABLE hosts (
        id         TEXT   PRIMARY KEY,
        seen_until BIGINT NOT NULL
    );
    "#,
    // 4: NATS JetStream sink: the outbox (see queue::postgres_outbox).
    super::postgres_outbox::MIGRATION,
];

/// How the queue connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Connections the pool keeps at most (commits and queries; the state
    /// store has [`STATE_POOL_SIZE`] of its own).
    pub pool_size: usize,
    /// Write an outbox row for every event the NATS JetStream sink
    /// publishes, in the transaction of the change (`[stream]` configured).
    pub outbox: bool,
    /// PEM roots that verify the server's certificate when the URL says
    /// `sslmode=require` (see [`super::postgres_tls`]).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: DEFAULT_POOL_SIZE,
            outbox: false,
            ca_file: None,
        }
    }
}

/// The care queue in a PostgreSQL database.
pub struct PostgresStorage {
    pool: Pool,
    /// `postgres://user@host:port/db`, never the password: for messages.
    location: Arc<str>,
    state: Arc<PostgresStateStore>,
    /// Set when connected with the outbox on.
    outbox: Option<Arc<super::postgres_outbox::PostgresOutbox>>,
    peers: Arc<super::postgres_peers::PostgresPeers>,
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
        let tls = PgTls::for_config(&config, options.ca_file.as_deref())?;
        let pool = build_pool(config.clone(), &tls, options.pool_size.max(1), &location)?;
        {
            let mut client = get(&pool, &location).await?;
            migrate(&mut client, &location).await?;
        }
        let outbox = options.outbox.then(|| {
            Arc::new(super::postgres_outbox::PostgresOutbox {
                pool: pool.clone(),
                config: config.clone(),
                tls: tls.clone(),
                location: Arc::clone(&location),
                written: Arc::new(tokio::sync::Notify::new()),
            })
        });
        let peers = Arc::new(super::postgres_peers::PostgresPeers {
            pool: pool.clone(),
            config: config.clone(),
            tls: tls.clone(),
            location: Arc::clone(&location),
        });
        let state = Arc::new(PostgresStateStore::start(
            config,
            &tls,
            Arc::clone(&location),
        )?);
        Ok(PostgresStorage {
            pool,
            location,
            state,
            outbox,
            peers,
        })
    }

    /// Where the queue is, without the password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The publisher's wake-up, when the outbox is on.
    pub(super) fn outbox_signal(&self) -> Option<&tokio::sync::Notify> {
        self.outbox.as_ref().map(|outbox| &*outbox.written)
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        get(&self.pool, &self.location).await
    }
}

fn build_pool(
    config: tokio_postgres::Config,
    tls: &PgTls,
    size: usize,
    location: &str,
) -> Result<Pool, StorageError> {
    let manager = tls.manager(
        config,
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
pub(super) async fn get(
    pool: &Pool,
    location: &str,
) -> Result<deadpool_postgres::Object, StorageError> {
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
                None if describe(&e).contains("certificate") => {
                    "; the server's certificate must be signed by a CA of storage.ca_file \
                     (or a public CA without it) and name the host of the URL"
                }
                None if describe(&e).contains("does not support TLS") => {
                    "; turn on ssl in the server's postgresql.conf, or drop sslmode=require \
                     from the URL on a trusted network"
                }
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
pub(super) trait OrStorage<T> {
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

/// `LIMIT` operand: NULL is "no limit".
pub(super) fn sql_limit(limit: usize) -> Option<i64> {
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
    author_id: Vec<String>,
    text: Vec<String>,
    json: Vec<String>,
    /// The folded words the search index gets.
    document: Vec<String>,
    /// Per row: inbound?
    inbound: Vec<bool>,
    /// Per row: inbound and not ignored, so it opens, reopens and raises
    /// its case ("loud"); the others join a case quietly.
    loud: Vec<bool>,
    /// Per row: the preview it would give its case.
    preview: Vec<String>,
    /// Triage: the score as stored on the message (`None`: untriaged),
    /// the score a case takes from it (untriaged: 0), and the rest.
    priority: Vec<Option<i16>>,
    score: Vec<i16>,
    bucket: Vec<&'static str>,
    reasons: Vec<String>,
    team: Vec<Option<String>>,
    sentiment: Vec<f64>,
    triage: Vec<Option<String>>,
    ignored: Vec<bool>,
    /// An address the channel gives for the author (lower-cased), and the
    /// name a customer profile made from it gets.
    author_email: Vec<Option<String>>,
    author_name: Vec<String>,
}

impl MessageColumns {
    fn push(&mut self, m: &Message, triage: Option<&MessageTriage>) -> Result<(), StorageError> {
        let untriaged = MessageTriage::untriaged();
        let t = triage.unwrap_or(&untriaged);
        let inbound = m.direction == Direction::Inbound;
        self.external_id.push(pg_text(&m.external_id));
        self.thread_id.push(pg_text(&m.thread_id));
        self.direction.push(direction_name(m.direction));
        self.kind.push(kind_name(m.kind));
        self.created_at.push(m.created_at);
        self.author_handle.push(pg_text(&m.author.handle));
        self.author_id.push(pg_text(&m.author.id));
        self.text.push(pg_text(&m.text));
        self.json.push(to_json(m)?);
        self.document.push(document_text(&m.text));
        self.inbound.push(inbound);
        self.loud.push(inbound && !t.ignore);
        self.preview.push(pg_text(&case_preview(&m.text)));
        self.priority.push(triage.map(|t| i16::from(t.score)));
        self.score.push(i16::from(t.score));
        self.bucket.push(t.bucket.as_str());
        self.reasons.push(jsonb_text(&t.reasons, "a triage")?);
        self.team.push(t.team.as_deref().map(pg_text));
        self.sentiment.push(t.sentiment);
        self.triage
            .push(triage.map(|t| jsonb_text(t, "a triage")).transpose()?);
        self.ignored.push(t.ignore);
        self.author_email.push(
            m.author
                .email
                .as_deref()
                .map(str::trim)
                .filter(|e| e.contains('@'))
                .map(|e| pg_text(&e.to_lowercase())),
        );
        self.author_name
            .push(pg_text(if m.author.display_name.is_empty() {
                &m.author.handle
            } else {
                &m.author.display_name
            }));
        Ok(())
    }
}

/// `value` as JSON for a `jsonb` column, which cannot hold NUL
/// (`\u0000`): NUL in its strings becomes U+FFFD, as in the text columns.
pub(super) fn jsonb_text<T: serde::Serialize>(
    value: &T,
    what: &str,
) -> Result<String, StorageError> {
    let failed =
        |e: serde_json::Error| StorageError::Query(format!("cannot serialise {what}: {e}"));
    let text = serde_json::to_string(value).map_err(failed)?;
    if !text.contains("\\u0000") {
        return Ok(text);
    }
    let mut value = serde_json::to_value(value).map_err(failed)?;
    replace_nul(&mut value);
    Ok(value.to_string())
}

fn replace_nul(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => *text = pg_text(text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(replace_nul),
        serde_json::Value::Object(map) => {
            for (key, mut item) in std::mem::take(map) {
                replace_nul(&mut item);
                map.insert(pg_text(&key), item);
            }
        }
        _ => {}
    }
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
    /// The folded words of an edit's new text, for the search index.
    document: Vec<Option<String>>,
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
                columns.document.push(None);
                columns.count.push(0);
                columns.count.len() - 1
            });
            columns.count[i] += 1;
            match update {
                MessageUpdate::Edited(m) => {
                    columns.text[i] = Some(pg_text(&m.text));
                    columns.json[i] = Some(to_json(m)?);
                    columns.document[i] = Some(document_text(&m.text));
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

/// What applying some rows one by one to a case does, as SQLite's commit
/// does it: every row counts and moves the last activity; only loud rows
/// (see [`MessageColumns::loud`]) move the first message, set a team the
/// case lacks, raise the priority, start the wait and bump the version.
struct CaseDelta {
    n: i64,
    last_at: i64,
    loud: i64,
    /// The first loud row: the one that opens or reopens the case.
    first_loud: Option<usize>,
    /// The oldest loud row (strictly older: the first of equals wins).
    earliest: Option<usize>,
    /// The first loud row of the highest score: where raising one by one
    /// ends (a raise needs a strictly higher score).
    top: Option<usize>,
    /// The first team a loud row names.
    team: Option<String>,
    /// The oldest loud message's time: the customer waits since then.
    waiting_from: Option<i64>,
}

impl CaseDelta {
    fn of(m: &MessageColumns, rows: &[usize]) -> CaseDelta {
        let mut d = CaseDelta {
            n: 0,
            last_at: i64::MIN,
            loud: 0,
            first_loud: None,
            earliest: None,
            top: None,
            team: None,
            waiting_from: None,
        };
        for &r in rows {
            d.n += 1;
            d.last_at = d.last_at.max(m.created_at[r]);
            if !m.loud[r] {
                continue;
            }
            d.loud += 1;
            d.first_loud.get_or_insert(r);
            if d.earliest.is_none_or(|e| m.created_at[r] < m.created_at[e]) {
                d.earliest = Some(r);
            }
            if d.top.is_none_or(|t| m.score[r] > m.score[t]) {
                d.top = Some(r);
            }
            if d.team.is_none() {
                d.team.clone_from(&m.team[r]);
            }
            d.waiting_from = Some(
                d.waiting_from
                    .map_or(m.created_at[r], |w| w.min(m.created_at[r])),
            );
        }
        d
    }
}

/// Case changes as columns for `unnest`. The triage columns are those of
/// the delta's top row (unused when it has no loud row).
#[derive(Default)]
struct DeltaColumns {
    thread_id: Vec<String>,
    n: Vec<i64>,
    last_at: Vec<i64>,
    loud: Vec<i64>,
    first_at: Vec<Option<i64>>,
    author: Vec<Option<String>>,
    preview: Vec<Option<String>>,
    priority: Vec<i16>,
    bucket: Vec<&'static str>,
    reasons: Vec<String>,
    sentiment: Vec<f64>,
    team: Vec<Option<String>>,
    waiting_from: Vec<Option<i64>>,
}

impl DeltaColumns {
    fn push(&mut self, m: &MessageColumns, thread_id: &str, delta: &CaseDelta) {
        self.thread_id.push(thread_id.to_string());
        self.n.push(delta.n);
        self.last_at.push(delta.last_at);
        self.loud.push(delta.loud);
        self.first_at.push(delta.earliest.map(|r| m.created_at[r]));
        self.author
            .push(delta.earliest.map(|r| m.author_handle[r].clone()));
        self.preview
            .push(delta.earliest.map(|r| m.preview[r].clone()));
        match delta.top {
            Some(r) => {
                self.priority.push(m.score[r]);
                self.bucket.push(m.bucket[r]);
                self.reasons.push(m.reasons[r].clone());
                self.sentiment.push(m.sentiment[r]);
            }
            None => {
                self.priority.push(0);
                self.bucket.push("low");
                self.reasons.push("[]".to_string());
                self.sentiment.push(0.0);
            }
        }
        self.team.push(delta.team.clone());
        self.waiting_from.push(delta.waiting_from);
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
/// [`FIND_MESSAGES`]), locked: their status decides what the batch does to
/// them (a reopen, and its event), so no agent may change it before the
/// commit ends. Only this connector's commits, which take turns, lock more
/// than one case, so this cannot deadlock.
const FIND_CASES: &str = "
    SELECT found.id, found.thread_id, found.status
    FROM unnest($3::text[]) AS wanted(thread_id),
         LATERAL (SELECT c.id, c.thread_id, c.status FROM cases AS c
                  WHERE c.brand = $1 AND c.connector = $2 AND c.thread_id = wanted.thread_id
                  LIMIT 1 FOR UPDATE) AS found";

/// Adds messages to existing cases (see [`CaseDelta`]), relative to the
/// row as stored, and records the reopens. A customer writing again
/// reopens a case the team had put aside (to `open` when someone owns it)
/// with the new message's priority; an active case takes the higher of
/// both (SET expressions all see the row as it was, so each compares with
/// the old values). `LEAST` skips NULL: a case nothing waited on starts
/// waiting.
const TOUCH_CASES: &str = "
    WITH reopened AS (
        INSERT INTO case_events (case_id, brand, at, actor, kind, channel, detail)
        SELECT r.case_id, $1, $2, r.actor, 'reopened', $3, r.detail::jsonb
        FROM unnest($17::int8[], $18::text[], $19::text[]) WITH ORDINALITY
             AS r(case_id, actor, detail, ord)
        ORDER BY r.ord
    )
    UPDATE cases AS c SET
        message_count    = c.message_count + u.n,
        last_message_at  = GREATEST(c.last_message_at, u.last_at),
        author           = CASE WHEN u.first_at < c.first_message_at THEN u.author
                                ELSE c.author END,
        preview          = CASE WHEN u.first_at < c.first_message_at THEN u.preview
                                ELSE c.preview END,
        first_message_at = LEAST(c.first_message_at, u.first_at),
        team             = COALESCE(c.team, u.team),
        version          = c.version + u.loud,
        priority         = CASE WHEN u.loud > 0 AND (c.status IN ('pending', 'closed')
                                                    OR u.priority > c.priority)
                                THEN u.priority ELSE c.priority END,
        bucket           = CASE WHEN u.loud > 0 AND (c.status IN ('pending', 'closed')
                                                    OR u.priority > c.priority)
                                THEN u.bucket ELSE c.bucket END,
        reasons          = CASE WHEN u.loud > 0 AND (c.status IN ('pending', 'closed')
                                                    OR u.priority > c.priority)
                                THEN u.reasons::jsonb ELSE c.reasons END,
        sentiment        = CASE WHEN u.loud > 0 AND (c.status IN ('pending', 'closed')
                                                    OR u.priority > c.priority)
                                THEN u.sentiment ELSE c.sentiment END,
        closed_at        = CASE WHEN u.loud > 0 AND c.status = 'closed' THEN NULL
                                ELSE c.closed_at END,
        status           = CASE WHEN u.loud > 0 AND c.status IN ('pending', 'closed')
                                THEN CASE WHEN c.assignee IS NULL THEN 'new' ELSE 'open' END
                                ELSE c.status END,
        waiting_since    = CASE WHEN u.loud > 0 THEN LEAST(c.waiting_since, u.waiting_from)
                                ELSE c.waiting_since END
    FROM unnest($4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::text[],
                $10::text[], $11::int2[], $12::text[], $13::text[], $14::float8[],
                $15::text[], $16::int8[])
         AS u(id, n, last_at, loud, first_at, author, preview, priority, bucket, reasons,
              sentiment, team, waiting_from)
    WHERE c.id = u.id AND c.brand = $1";

/// The message columns of [`INSERT_MESSAGES`] and
/// [`OPEN_CASES_AND_INSERT_MESSAGES`], `$5` to `$19`.
macro_rules! message_rows {
    ($case_id:literal) => {
        concat!(
            "INSERT INTO messages (brand, connector, channel, external_id, thread_id, case_id,
                                   direction, kind, created_at, received_at, author_handle,
                                   text, message_json, priority, triage, ignored, author_id)
             SELECT $1, $2, $3, u.external_id, u.thread_id, ",
            $case_id,
            ", u.direction, u.kind, u.created_at, $4, u.author_handle, u.text, u.message_json,
                    u.priority, u.triage::jsonb, u.ignored, u.author_id
             FROM unnest($5::text[], $6::text[], $7::int8[], $8::text[], $9::text[],
                         $10::int8[], $11::text[], $12::text[], $13::text[], $14::int2[],
                         $15::text[], $16::bool[], $17::text[], $18::text[])
                  WITH ORDINALITY AS u(external_id, thread_id, case_id, direction, kind,
                                       created_at, author_handle, text, message_json,
                                       priority, triage, ignored, author_id, open_thread,
                                       ord)"
        )
    };
}

/// Indexes the messages `inserted` returns that are in a case: their
/// folded words (`$19`, by external id) and the brand's lexeme (`$20`).
macro_rules! index_inserted {
    () => {
        "indexed AS (
             INSERT INTO search_entries (id, brand, case_id, source, at, document)
             SELECT i.id, $1, i.case_id, 'message', i.created_at,
                    to_tsvector('simple', d.document) || array_to_tsvector(ARRAY[$20::text])
             FROM inserted AS i
             JOIN unnest($5::text[], $19::text[]) AS d(external_id, document)
               ON d.external_id = i.external_id
             WHERE i.case_id IS NOT NULL
         )
         SELECT count(*) FROM inserted"
    };
}

/// Inserts messages, ids in batch order, each with its case: `case_id`
/// for an existing case; indexes those in a case. Returns how many were
/// inserted.
const INSERT_MESSAGES: &str = concat!(
    "WITH inserted AS (",
    message_rows!("u.case_id"),
    " ORDER BY u.ord
      ON CONFLICT (brand, connector, external_id) DO NOTHING
      RETURNING id, external_id, case_id, created_at
    ), ",
    index_inserted!()
);

/// [`INSERT_MESSAGES`] that first opens cases (ids in the given order;
/// plain `INSERT`: under the connector's lock a case cannot appear
/// meanwhile, and if one did the commit would fail and be retried) with
/// their `opened` events, and links the rows whose `open_thread` names
/// one of them.
const OPEN_CASES_AND_INSERT_MESSAGES: &str = concat!(
    "WITH to_open AS (
        SELECT * FROM unnest($21::text[], $22::int8[], $23::int8[], $24::int8[], $25::text[],
                             $26::text[], $27::int2[], $28::text[], $29::text[],
                             $30::float8[], $31::text[], $32::int8[], $33::int8[],
                             $34::text[], $35::text[])
             WITH ORDINALITY AS o(thread_id, n, last_at, first_at, author, preview, priority,
                                  bucket, reasons, sentiment, team, waiting_since, version,
                                  actor, detail, ord)
    ), opened AS (
        INSERT INTO cases (brand, connector, channel, thread_id, status, message_count,
                           first_message_at, last_message_at, author, preview, priority,
                           bucket, reasons, sentiment, team, waiting_since, version)
        SELECT $1, $2, $3, o.thread_id, 'new', o.n, o.first_at, o.last_at, o.author,
               o.preview, o.priority, o.bucket, o.reasons::jsonb, o.sentiment, o.team,
               o.waiting_since, o.version
        FROM to_open AS o
        ORDER BY o.ord
        RETURNING id, thread_id
    ), opened_events AS (
        INSERT INTO case_events (case_id, brand, at, actor, kind, channel, detail)
        SELECT c.id, $1, $4, o.actor, 'opened', $2, o.detail::jsonb
        FROM opened AS c JOIN to_open AS o ON o.thread_id = c.thread_id
        ORDER BY c.id
    ), inserted AS (",
    message_rows!("COALESCE(u.case_id, o.id)"),
    " LEFT JOIN opened AS o ON o.thread_id = u.open_thread
      ORDER BY u.ord
      ON CONFLICT (brand, connector, external_id) DO NOTHING
      RETURNING id, external_id, case_id, created_at
    ), ",
    index_inserted!()
);

/// Links the authors of new inbound messages by the address their
/// channel gave (see `link_authors_by_email` in the schema).
const LINK_BY_EMAIL: &str = "
    SELECT link_authors_by_email($1, $2, $3::text[], $4::text[], $5::text[], $6::text[], $7)";

/// Applies the batch's updates; edits are indexed anew (`$9`: the folded
/// words of the new text, `$10`: the brand's lexeme).
const APPLY_UPDATES: &str = "
    WITH applied AS (
        UPDATE messages AS m SET
            text         = COALESCE(u.text, m.text),
            message_json = COALESCE(u.message_json, m.message_json),
            edited       = m.edited OR u.edited,
            deleted      = m.deleted OR u.deleted,
            hidden       = COALESCE(u.hidden, m.hidden)
        FROM unnest($3::text[], $4::text[], $5::text[], $6::bool[], $7::bool[], $8::bool[],
                    $9::text[])
             AS u(external_id, text, message_json, edited, deleted, hidden, document)
        WHERE m.brand = $1 AND m.connector = $2 AND m.external_id = u.external_id
        RETURNING m.id, m.external_id, u.document
    ), reindexed AS (
        UPDATE search_entries AS s
        SET document = to_tsvector('simple', a.document) || array_to_tsvector(ARRAY[$10::text])
        FROM applied AS a
        WHERE s.id = a.id AND a.document IS NOT NULL
    )
    SELECT external_id FROM applied";

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
    /// Write the commit's outbox events (the outbox is on).
    outbox: bool,
}

impl CommitWork {
    fn new(
        owner: &ConnectorId,
        batch: IngestBatch<'_>,
        outbox: bool,
    ) -> Result<Self, StorageError> {
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
            if !seen.insert(pg_text(&m.external_id)) {
                batch_duplicates += 1;
                continue;
            }
            messages.push(m, batch.triage_of(index))?;
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
            outbox,
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
    /// take turns, so what the lookups find (messages stored, cases open
    /// and their status) stays true until the commit ends, and each
    /// message is inserted with its case in one go. Other connectors
    /// commit in parallel.
    ///
    /// Two round trips, each a pipeline of statements executed in order:
    /// `BEGIN`, the lock and the lookups; then the case updates with their
    /// reopen events, the new cases with their events and the messages
    /// (indexed for search), the e-mail links, the updates, the cursor and
    /// `COMMIT` (which PostgreSQL turns into a rollback if anything before
    /// it failed). Every statement is prepared before the first is sent,
    /// so that none waits for a `Parse` while the next ones go ahead of it.
    async fn apply(&self, client: &mut Object) -> Result<CommitOutcome, Retry> {
        let owner = &self.owner;
        let (brand, connector) = (&self.brand, &self.connector);
        let m = &self.messages;
        let u = &self.updates;
        let what = &format!("committing a batch of {owner}");
        let (
            lock,
            find_messages,
            find_cases,
            touch_cases,
            insert,
            open_and_insert,
            link_by_email,
            apply,
            cursor,
        ) = tokio::try_join!(
            client.prepare_cached(LOCK_CONNECTOR),
            client.prepare_cached(FIND_MESSAGES),
            client.prepare_cached(FIND_CASES),
            client.prepare_cached(TOUCH_CASES),
            client.prepare_cached(INSERT_MESSAGES),
            client.prepare_cached(OPEN_CASES_AND_INSERT_MESSAGES),
            client.prepare_cached(LINK_BY_EMAIL),
            client.prepare_cached(APPLY_UPDATES),
            client.prepare_cached(STORE_CURSOR),
        )
        .or_retry(what)?;
        // --- NATS outbox (queue::postgres_outbox): only when it is on. ---
        let outbox_statements = match self.outbox {
            true => Some(
                super::postgres_outbox::CommitStatements::prepare(client)
                    .await
                    .or_retry(what)?,
            ),
            false => None,
        };
        let received_at = now_ms();
        let brand_key = brand_lexeme(brand);
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
            let existing = cases
                .iter()
                .map(|row| {
                    let status = status_of(row, 2).map_err(Retry::Fail)?;
                    Ok((row.get::<_, String>(1), (row.get::<_, i64>(0), status)))
                })
                .collect::<Result<HashMap<String, (i64, CaseStatus)>, Retry>>()?;
            let new_rows: Vec<usize> = (0..m.external_id.len())
                .filter(|&r| !stored.contains(m.external_id[r].as_str()))
                .collect();
            outcome.duplicates += m.external_id.len() - new_rows.len();
            outcome.ignored = new_rows.iter().filter(|&&r| m.ignored[r]).count();
            plan = CasePlan::new(m, new_rows, &existing);
            outcome.cases_opened = plan.open.thread_id.len();
        }

        // Round trip 2: write and commit.
        let rows = &plan.rows;
        let pick = |column: &[String]| -> Vec<String> {
            rows.iter().map(|&r| column[r].clone()).collect()
        };
        let (external_id, thread_id, author_handle, author_id, text, json, document) = (
            pick(&m.external_id),
            pick(&m.thread_id),
            pick(&m.author_handle),
            pick(&m.author_id),
            pick(&m.text),
            pick(&m.json),
            pick(&m.document),
        );
        let direction: Vec<&str> = rows.iter().map(|&r| m.direction[r]).collect();
        let kind: Vec<&str> = rows.iter().map(|&r| m.kind[r]).collect();
        let created_at: Vec<i64> = rows.iter().map(|&r| m.created_at[r]).collect();
        let priority: Vec<Option<i16>> = rows.iter().map(|&r| m.priority[r]).collect();
        let triage: Vec<Option<&str>> = rows.iter().map(|&r| m.triage[r].as_deref()).collect();
        let ignored: Vec<bool> = rows.iter().map(|&r| m.ignored[r]).collect();
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
            &priority,
            &triage,
            &ignored,
            &author_id,
            &plan.open_thread,
            &document,
            &brand_key,
        ];
        let opens = !o.thread_id.is_empty();
        if opens {
            insert_args.extend_from_slice(&[
                &o.thread_id,
                &o.n,
                &o.last_at,
                &o.first_at,
                &o.author,
                &o.preview,
                &o.priority,
                &o.bucket,
                &o.reasons,
                &o.sentiment,
                &o.team,
                &o.waiting_from,
                &plan.open_version,
                &plan.open_actor,
                &plan.open_detail,
            ]);
        }
        let touch_args: [&(dyn ToSql + Sync); 19] = [
            brand,
            &received_at,
            connector,
            &plan.touch_ids,
            &t.n,
            &t.last_at,
            &t.loud,
            &t.first_at,
            &t.author,
            &t.preview,
            &t.priority,
            &t.bucket,
            &t.reasons,
            &t.sentiment,
            &t.team,
            &t.waiting_from,
            &plan.reopen_ids,
            &plan.reopen_actor,
            &plan.reopen_detail,
        ];
        let links = EmailLinks::new(m, rows);
        let link_args: [&(dyn ToSql + Sync); 7] = [
            brand,
            connector,
            &links.author_id,
            &links.handle,
            &links.name,
            &links.email,
            &received_at,
        ];
        let apply_args: [&(dyn ToSql + Sync); 10] = [
            brand,
            connector,
            &u.external_id,
            &u.text,
            &u.json,
            &u.edited,
            &u.deleted,
            &u.hidden,
            &u.document,
            &brand_key,
        ];
        // --- NATS outbox (queue::postgres_outbox): only when it is on. ---
        let outbox_events = outbox_statements.as_ref().map(|statements| {
            let pick_updates = |flags: &[bool]| -> Vec<&str> {
                u.external_id
                    .iter()
                    .zip(flags)
                    .filter(|(_, set)| **set)
                    .map(|(id, _)| id.as_str())
                    .collect()
            };
            let events = super::postgres_outbox::CommitEvents {
                brand,
                connector,
                channel: &self.channel,
                opened_threads: &o.thread_id,
                reopened: &plan.reopen_ids,
                reopened_by: &plan.reopen_actor,
                stored: &external_id,
                edited: pick_updates(&u.edited),
                deleted: pick_updates(&u.deleted),
                at: received_at,
            };
            (events, statements)
        });
        let (_, touched, inserted, _, updated, _, _, _) = tokio::try_join!(
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
                let statement = match (rows.is_empty(), opens) {
                    (true, _) => return Ok(0),
                    (false, true) => &open_and_insert,
                    (false, false) => &insert,
                };
                let row = client.query_one(statement, &insert_args).await?;
                Ok(row.get::<_, i64>(0))
            },
            async {
                match links.author_id.is_empty() {
                    true => Ok(Vec::new()),
                    false => client.query(&link_by_email, &link_args).await,
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
            async {
                match &outbox_events {
                    None => Ok(()),
                    Some((events, statements)) => events.write(client, statements).await,
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

/// The authors of a batch's new inbound messages that came with an
/// e-mail address, in batch order, for [`LINK_BY_EMAIL`].
#[derive(Default)]
struct EmailLinks {
    author_id: Vec<String>,
    handle: Vec<String>,
    name: Vec<String>,
    email: Vec<String>,
}

impl EmailLinks {
    fn new(m: &MessageColumns, rows: &[usize]) -> Self {
        let mut links = EmailLinks::default();
        for &r in rows {
            if let (true, Some(email)) = (m.inbound[r], &m.author_email[r]) {
                links.author_id.push(m.author_id[r].clone());
                links.handle.push(m.author_handle[r].clone());
                links.name.push(m.author_name[r].clone());
                links.email.push(email.clone());
            }
        }
        links
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
    /// Existing cases a loud message reopens (pending or closed), with
    /// the `reopened` event's actor and detail.
    reopen_ids: Vec<i64>,
    reopen_actor: Vec<String>,
    reopen_detail: Vec<String>,
    /// Cases to open, in order of their first loud message, with their
    /// version (one per loud message after the first) and the `opened`
    /// event's actor and detail.
    open: DeltaColumns,
    open_version: Vec<i64>,
    open_actor: Vec<String>,
    open_detail: Vec<String>,
}

impl CasePlan {
    fn new(
        m: &MessageColumns,
        rows: Vec<usize>,
        existing: &HashMap<String, (i64, CaseStatus)>,
    ) -> Self {
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
        // Cases open in the order their first loud message comes.
        let mut opening: Vec<(usize, &ThreadWork, usize)> = Vec::new();
        for t in &threads {
            if let Some(&(id, status)) = existing.get(&t.thread_id) {
                let delta = CaseDelta::of(m, &t.rows);
                if let (Some(r), CaseStatus::Pending | CaseStatus::Closed) =
                    (delta.first_loud, status)
                {
                    plan.reopen_ids.push(id);
                    plan.reopen_actor.push(m.author_handle[r].clone());
                    plan.reopen_detail.push(
                        serde_json::json!({ "from": status, "message": m.external_id[r] })
                            .to_string(),
                    );
                }
                plan.touch_ids.push(id);
                plan.touch.push(m, &t.thread_id, &delta);
                for &r in &t.rows {
                    case_id.insert(r, id);
                }
            } else if let Some(k) = t.rows.iter().position(|&r| m.loud[r]) {
                // Quiet messages before it stay without a case.
                opening.push((t.rows[k], t, k));
                for &r in &t.rows[k..] {
                    open_thread.insert(r, &t.thread_id);
                }
            }
        }
        opening.sort_by_key(|(first, _, _)| *first);
        for (first, t, k) in opening {
            let delta = CaseDelta::of(m, &t.rows[k..]);
            plan.open.push(m, &t.thread_id, &delta);
            plan.open_version.push(delta.loud - 1);
            plan.open_actor.push(m.author_handle[first].clone());
            plan.open_detail.push(
                serde_json::json!({
                    "message": m.external_id[first],
                    "priority": m.priority[first],
                    "bucket": m.bucket[first],
                    "team": m.team[first],
                })
                .to_string(),
            );
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

/// The columns [`stored_message`] reads, in its order.
pub(super) const STORED_MESSAGE_COLUMNS: &str =
    "brand, connector, channel, case_id, received_at, edited, deleted, hidden, message_json";

/// A message as stored, from [`STORED_MESSAGE_COLUMNS`]; `what` says what
/// was being read when its JSON cannot be.
pub(super) fn stored_message(row: &Row, what: &str) -> Result<StoredMessage, StorageError> {
    let json: &str = row.get(8);
    let message: Message = serde_json::from_str(json)
        .map_err(|e| StorageError::Query(format!("{what}: unreadable message JSON: {e}")))?;
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
}

#[async_trait::async_trait]
impl Storage for PostgresStorage {
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
        let outcome = work.run(&self.pool, &self.location).await?;
        self.outbox_written();
        Ok(outcome)
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
            .prepare_cached(&format!(
                "SELECT {STORED_MESSAGE_COLUMNS} FROM messages WHERE brand = $1
                 ORDER BY created_at, id LIMIT $2::int8"
            ))
            .await
            .or_storage(what)?;
        let rows = client
            .query(&statement, &[&brand, &sql_limit(limit)])
            .await
            .or_storage(what)?;
        rows.iter().map(|row| stored_message(row, what)).collect()
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

    /// One statement for all of them. Time is the database's: the hosts'
    /// clocks may disagree, the server's is the one they share.
    async fn claim_leases(
        &self,
        holder: &str,
        wanted: &[ConnectorId],
        ttl: std::time::Duration,
    ) -> Result<Vec<ConnectorId>, StorageError> {
        let what = &format!("claiming the poll leases of {holder}");
        let brands: Vec<&str> = wanted.iter().map(|id| id.brand.as_str()).collect();
        let connectors: Vec<&str> = wanted.iter().map(|id| id.connector.as_str()).collect();
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "WITH clock AS (
                     SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS now
                 )
                 INSERT INTO leases AS l (brand, connector, holder, expires_at)
                 SELECT w.brand, w.connector, $3, clock.now + $4
                 FROM unnest($1::text[], $2::text[]) AS w (brand, connector), clock
                 ON CONFLICT (brand, connector) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE l.holder = excluded.holder
                    OR l.expires_at <= (extract(epoch FROM clock_timestamp()) * 1000)::int8
                 RETURNING brand, connector",
            )
            .await
            .or_storage(what)?;
        let rows = client
            .query(&statement, &[&brands, &connectors, &holder, &ttl])
            .await
            .or_storage(what)?;
        Ok(rows
            .iter()
            .map(|row| ConnectorId {
                brand: row.get(0),
                connector: row.get(1),
            })
            .collect())
    }

    async fn release_leases(&self, holder: &str) -> Result<(), StorageError> {
        let what = &format!("releasing the poll leases of {holder}");
        let client = self.client().await?;
        client
            .execute(
                "WITH gone AS (DELETE FROM hosts WHERE id = $1)
                 DELETE FROM leases WHERE holder = $1",
                &[&holder],
            )
            .await
            .or_storage(what)?;
        Ok(())
    }

    async fn give_up_leases(
        &self,
        holder: &str,
        connectors: &[ConnectorId],
    ) -> Result<(), StorageError> {
        let what = &format!("giving up poll leases of {holder}");
        let brands: Vec<&str> = connectors.iter().map(|id| id.brand.as_str()).collect();
        let ids: Vec<&str> = connectors.iter().map(|id| id.connector.as_str()).collect();
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM leases AS l
                 USING unnest($1::text[], $2::text[]) AS g (brand, connector)
                 WHERE l.brand = g.brand AND l.connector = g.connector AND l.holder = $3",
                &[&brands, &ids, &holder],
            )
            .await
            .or_storage(what)?;
        Ok(())
    }

    async fn heartbeat(&self, host: &str, ttl: std::time::Duration) -> Result<usize, StorageError> {
        let what = &format!("recording that host {host} is alive");
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let client = self.client().await?;
        // The statement's own row is not visible to its count: the others
        // alive, plus this one.
        let row = client
            .query_one(
                "WITH clock AS (
                     SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS now
                 ), seen AS (
                     INSERT INTO hosts (id, seen_until) SELECT $1, now + $2 FROM clock
                     ON CONFLICT (id) DO UPDATE SET seen_until = excluded.seen_until
                 )
                 SELECT count(*) + 1 FROM hosts, clock WHERE seen_until > clock.now AND id <> $1",
                &[&host, &ttl],
            )
            .await
            .or_storage(what)?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(1).max(1))
    }

    async fn leases(&self) -> Result<Vec<Lease>, StorageError> {
        let what = "listing the poll leases";
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT brand, connector, holder, expires_at FROM leases ORDER BY brand, connector",
                &[],
            )
            .await
            .or_storage(what)?;
        Ok(rows
            .iter()
            .map(|row| Lease {
                brand: row.get(0),
                connector: row.get(1),
                holder: row.get(2),
                expires_at: row.get(3),
            })
            .collect())
    }

    fn care(&self) -> Option<&dyn crate::care::CareStore> {
        Some(self)
    }

    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn peers(&self) -> Option<Arc<dyn super::PeerSignal>> {
        Some(self.peers.clone())
    }

    fn outbox(&self) -> Option<Arc<dyn super::outbox::Outbox>> {
        self.outbox
            .clone()
            .map(|outbox| outbox as Arc<dyn super::outbox::Outbox>)
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
    fn start(
        config: tokio_postgres::Config,
        tls: &PgTls,
        location: Arc<str>,
    ) -> Result<Self, StorageError> {
        let (requests, mut receiver) = tokio::sync::mpsc::unbounded_channel::<StateRequest>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                StorageError::Unavailable(format!("cannot start the state store's runtime: {e}"))
            })?;
        // The pool's connections are spawned on the runtime that opens
        // them: this one, inside `block_on` below.
        let pool = build_pool(config, tls, STATE_POOL_SIZE, &location)?;
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

/// Throwaway databases, for the tests below (the test kit's helper).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../tests/src/postgres_db.rs"]
mod test_database;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::care::CaseQuery;
    use crate::care::Identity;

    /// A queue written before the case workflow (schema version 1) opens
    /// with its cases workable (waiting since their first message when
    /// active, nothing waiting when answered), its old messages searchable
    /// (diacritics folded by the migration as webcare folds new ones) and
    /// their authors known.
    #[tokio::test]
    async fn cases_from_schema_1_are_workable_after_migration() {
        let Some(db) = super::test_database::TestDatabase::create("schema_1_migrates").await else {
            return;
        };
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute(MIGRATIONS[0]).await.unwrap();
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (
                     version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 0);",
            )
            .await
            .unwrap();
        for (thread, status, at) in [("t1", "new", 1_000_i64), ("t2", "pending", 2_000)] {
            let text = format!("Oude klacht over het CAFÉ, nummer{thread}");
            client
                .execute(
                    "WITH c AS (
                         INSERT INTO cases (brand, connector, channel, thread_id, status,
                             message_count, first_message_at, last_message_at, author, preview)
                         VALUES ('acme', 'x', 'twitter', $1, $2, 1, $3, $3, 'sanne', $4)
                         RETURNING id)
                     INSERT INTO messages (brand, connector, channel, external_id, thread_id,
                         case_id, direction, kind, created_at, received_at, author_handle,
                         text, message_json)
                     SELECT 'acme', 'x', 'twitter', $1, $1, id, 'inbound', 'mention', $3, $3,
                            'sanne', $4, '{\"author\": {\"id\": \"42\"}}' FROM c",
                    &[&thread, &status, &at, &text],
                )
                .await
                .unwrap();
        }
        let storage = PostgresStorage::connect(&db.url, PostgresOptions::default())
            .await
            .unwrap();
        let care = storage.care().unwrap();
        let cases = care
            .case_list(&CaseQuery {
                brand: "acme".to_string(),
                ..CaseQuery::default()
            })
            .await
            .unwrap();
        let waiting: Vec<(&str, Option<i64>, i64)> = cases
            .iter()
            .map(|c| (c.thread_id.as_str(), c.waiting_since, c.version))
            .collect();
        assert_eq!(waiting, [("t1", Some(1_000), 0), ("t2", None, 0)]);
        let hits = care.search("acme", "cafe", 10).await.unwrap();
        assert_eq!(hits.len(), 2, "old messages are indexed: {hits:#?}");
        let hits = care.search("acme", "nummert2", 10).await.unwrap();
        assert_eq!(
            hits.iter().map(|h| h.case_id).collect::<Vec<_>>(),
            [cases[1].id]
        );
        assert!(care.search("other", "cafe", 10).await.unwrap().is_empty());
        let identity = Identity {
            connector: "x".to_string(),
            author_id: "42".to_string(),
        };
        assert_eq!(
            care.identity_cases("acme", &identity).await.unwrap().len(),
            2
        );
    }

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
        use crate::model::MessageKind::*;
        for kind in [Mention, Comment, Reply, DirectMessage, Post, Email, Review] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind_name(kind));
        }
    }
}
