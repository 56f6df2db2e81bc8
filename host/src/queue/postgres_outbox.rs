//! The outbox in the PostgreSQL queue (see [`super::outbox`]): the events a
//! commit writes in its own transaction, the insert other writers call, and
//! the publisher's side.
//!
//! **One publisher per database.** Several hosts may share the queue; only
//! the one holding a session-level advisory lock (on a dedicated
//! connection, kept for as long as it publishes) reads the outbox. The lock
//! goes with the session, so a host that dies or loses its connection
//! hands over without any lease expiry to wait for, and the next host
//! resumes from the first row not yet acknowledged.
//!
//! **Order.** `seq` comes from an identity column, assigned at insert time;
//! transactions may commit out of `seq` order, so the publisher always
//! re-reads from the head (never from "after the last seq") and deletes
//! exactly the rows it published. Events of one case still leave in order:
//! every writer of a case's events locks the case's row (`UPDATE cases`)
//! before inserting them, so a later event of the case waits for the
//! earlier one's commit and gets a higher `seq`.

use std::sync::Arc;

use deadpool_postgres::GenericClient;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use super::outbox::{Outbox, OutboxEntry, OutboxRow, PublisherLease, subject};
use super::{StorageError, postgres::OrStorage};
use crate::model::TimestampMs;

/// The migration that adds the outbox (appended to
/// [`super::postgres::MIGRATIONS`]).
pub(super) const MIGRATION: &str = r#"
    -- NATS JetStream sink: events waiting to be published (written only
    -- when the storage was opened with the outbox on; see queue::outbox).
    CREATE TABLE outbox (
        seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        subject    TEXT   NOT NULL,
        msg_id     TEXT   NOT NULL,
        case_id    BIGINT,
        payload    TEXT   NOT NULL,
        created_at BIGINT NOT NULL
    );
    "#;

/// The publisher's advisory lock (two-int form; see `MIGRATION_LOCK`).
const PUBLISHER_LOCK: (i32, i32) = (0x7765_6263, 2); // "webc", 2

/// How often a host that does not publish asks for the lock again.
const LEAD_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

const INSERT: &str = "
    INSERT INTO outbox (subject, msg_id, case_id, payload, created_at)
    VALUES ($1, $2, $3, $4, $5)";

/// Appends one event to the outbox, in the caller's transaction. Callers
/// that write case events must have locked the case's row first (the
/// `UPDATE cases` of the change), so that events of one case keep their
/// order (see the module docs).
pub async fn insert<C: GenericClient>(
    client: &C,
    entry: &OutboxEntry,
    at: TimestampMs,
) -> Result<(), StorageError> {
    let what = format!("writing outbox event {:?}", entry.msg_id);
    let statement = client.prepare_cached(INSERT).await.or_storage(&what)?;
    client
        .execute(
            &statement,
            &[
                &entry.subject,
                &entry.msg_id,
                &entry.case_id,
                &entry.payload,
                &at,
            ],
        )
        .await
        .or_storage(&what)?;
    Ok(())
}

/// Case events of the cases a commit reopened ($6: their ids, $7: the
/// actors, in order) and opened ($4: their threads, in order), as
/// [`OutboxEntry::case`] writes them. It runs after the commit's case
/// statements, so it reads each case as the commit leaves it: its status,
/// assignee and team, and for a reopen its version (which names the event).
/// A new case's event has version 0, the version it was opened with, as on
/// SQLite; further messages of the batch bump the version without events.
const CASES: &str = "
    WITH changed AS (
        SELECT r.case_id AS id, 'reopened' AS change, r.actor, NULL::int8 AS version,
               r.ord AS ord
        FROM unnest($6::int8[], $7::text[]) WITH ORDINALITY AS r(case_id, actor, ord)
        UNION ALL
        SELECT c.id, 'opened', c.author, 0, cardinality($6::int8[]) + t.ord
        FROM unnest($4::text[]) WITH ORDINALITY AS t(thread_id, ord)
        JOIN cases AS c ON c.brand = $1 AND c.connector = $2 AND c.thread_id = t.thread_id
    )
    INSERT INTO outbox (subject, msg_id, case_id, payload, created_at)
    SELECT $3, 'case:' || c.id || ':v' || COALESCE(w.version, c.version), c.id,
           jsonb_build_object('event', 'case', 'brand', c.brand, 'connector', c.connector,
                              'channel', c.channel, 'case_id', c.id, 'change', w.change,
                              'status', c.status, 'version', COALESCE(w.version, c.version),
                              'assignee', c.assignee, 'team', c.team, 'actor', w.actor,
                              'at', $5::int8)::text,
           $5
    FROM changed AS w
    JOIN cases AS c ON c.id = w.id AND c.brand = $1
    ORDER BY w.ord";

/// Message events of the messages a commit stored ($4: external ids, in
/// batch order). Payloads match [`OutboxEntry::message`].
const STORED: &str = "
    INSERT INTO outbox (subject, msg_id, case_id, payload, created_at)
    SELECT $3, 'msg:' || $1 || ':' || $2 || ':' || m.external_id, m.case_id,
           jsonb_build_object('event', 'message', 'brand', m.brand, 'connector', m.connector,
                              'channel', m.channel, 'case_id', m.case_id,
                              'message', m.message_json::jsonb)::text,
           $5
    FROM unnest($4::text[]) WITH ORDINALITY AS u(external_id, ord)
    JOIN messages AS m ON m.brand = $1 AND m.connector = $2 AND m.external_id = u.external_id
    ORDER BY u.ord";

/// Edit events ($4: edited external ids); the id names the edit by its
/// content, as [`OutboxEntry::edited`] does.
const EDITED: &str = "
    INSERT INTO outbox (subject, msg_id, case_id, payload, created_at)
    SELECT $3, 'upd:' || $1 || ':' || $2 || ':' || m.external_id || ':'
               || left(encode(sha256(convert_to(m.message_json, 'UTF8')), 'hex'), 16),
           m.case_id,
           jsonb_build_object('event', 'edited', 'brand', m.brand, 'connector', m.connector,
                              'channel', m.channel, 'case_id', m.case_id,
                              'message', m.message_json::jsonb)::text,
           $5
    FROM unnest($4::text[]) WITH ORDINALITY AS u(external_id, ord)
    JOIN messages AS m ON m.brand = $1 AND m.connector = $2 AND m.external_id = u.external_id
    ORDER BY u.ord";

/// Delete events ($4: deleted external ids), as [`OutboxEntry::deleted`].
const DELETED: &str = "
    INSERT INTO outbox (subject, msg_id, case_id, payload, created_at)
    SELECT $3, 'del:' || $1 || ':' || $2 || ':' || m.external_id, m.case_id,
           jsonb_build_object('event', 'deleted', 'brand', m.brand, 'connector', m.connector,
                              'channel', m.channel, 'case_id', m.case_id,
                              'external_id', m.external_id)::text,
           $5
    FROM unnest($4::text[]) WITH ORDINALITY AS u(external_id, ord)
    JOIN messages AS m ON m.brand = $1 AND m.connector = $2 AND m.external_id = u.external_id
    ORDER BY u.ord";

/// The commit path's statements, prepared before the commit's pipeline
/// starts (a `Parse` inside the pipeline would let `COMMIT` overtake them).
pub(super) struct CommitStatements {
    cases: Statement,
    stored: Statement,
    edited: Statement,
    deleted: Statement,
}

impl CommitStatements {
    pub(super) async fn prepare(
        client: &deadpool_postgres::Object,
    ) -> Result<Self, tokio_postgres::Error> {
        let (cases, stored, edited, deleted) = tokio::try_join!(
            client.prepare_cached(CASES),
            client.prepare_cached(STORED),
            client.prepare_cached(EDITED),
            client.prepare_cached(DELETED),
        )?;
        Ok(CommitStatements {
            cases,
            stored,
            edited,
            deleted,
        })
    }
}

/// What one commit's events are about, by column.
pub(super) struct CommitEvents<'a> {
    pub brand: &'a String,
    pub connector: &'a String,
    pub channel: &'a str,
    /// Threads of the cases the commit opens, in order.
    pub opened_threads: &'a [String],
    /// Cases the commit reopens, in order, with the authors of the
    /// messages that reopen them.
    pub reopened: &'a [i64],
    pub reopened_by: &'a [String],
    /// External ids of the messages it stores, in batch order.
    pub stored: &'a [String],
    pub edited: Vec<&'a str>,
    pub deleted: Vec<&'a str>,
    pub at: TimestampMs,
}

impl CommitEvents<'_> {
    /// Sends the event inserts; all four go into the commit's pipeline
    /// when this future is first polled (before `COMMIT`), in this order:
    /// a case's event comes before its messages'.
    pub(super) async fn write(
        &self,
        client: &deadpool_postgres::Object,
        statements: &CommitStatements,
    ) -> Result<(), tokio_postgres::Error> {
        let (case_subject, stored_subject, edited_subject, deleted_subject) = (
            subject(self.brand, self.channel, "case"),
            subject(self.brand, self.channel, "message"),
            subject(self.brand, self.channel, "edited"),
            subject(self.brand, self.channel, "deleted"),
        );
        let (brand, connector, at) = (self.brand, self.connector, &self.at);
        let cases: [&(dyn ToSql + Sync); 7] = [
            brand,
            connector,
            &case_subject,
            &self.opened_threads,
            at,
            &self.reopened,
            &self.reopened_by,
        ];
        let stored: [&(dyn ToSql + Sync); 5] =
            [brand, connector, &stored_subject, &self.stored, at];
        let edited: [&(dyn ToSql + Sync); 5] =
            [brand, connector, &edited_subject, &self.edited, at];
        let deleted: [&(dyn ToSql + Sync); 5] =
            [brand, connector, &deleted_subject, &self.deleted, at];
        tokio::try_join!(
            client.execute(&statements.cases, &cases),
            client.execute(&statements.stored, &stored),
            client.execute(&statements.edited, &edited),
            client.execute(&statements.deleted, &deleted),
        )?;
        Ok(())
    }
}

/// The publisher's view of the PostgreSQL outbox.
#[derive(Debug)]
pub(super) struct PostgresOutbox {
    pub(super) pool: deadpool_postgres::Pool,
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: super::postgres_tls::PgTls,
    pub(super) location: Arc<str>,
    pub(super) written: Arc<tokio::sync::Notify>,
}

/// The advisory lock's session: the lease is held while it is open.
struct LockSession(tokio_postgres::Client);

impl PublisherLease for LockSession {
    fn is_held(&self) -> bool {
        !self.0.is_closed()
    }
}

#[async_trait::async_trait]
impl Outbox for PostgresOutbox {
    async fn head(&self, limit: usize) -> Result<Vec<OutboxRow>, StorageError> {
        let what = "reading the outbox";
        let client = super::postgres::get(&self.pool, &self.location).await?;
        let statement = client
            .prepare_cached(
                "SELECT seq, subject, msg_id, case_id, payload, created_at
                 FROM outbox ORDER BY seq LIMIT $1",
            )
            .await
            .or_storage(what)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client.query(&statement, &[&limit]).await.or_storage(what)?;
        Ok(rows
            .iter()
            .map(|row| OutboxRow {
                seq: row.get(0),
                entry: OutboxEntry {
                    subject: row.get(1),
                    msg_id: row.get(2),
                    case_id: row.get(3),
                    payload: row.get(4),
                },
                created_at: row.get(5),
            })
            .collect())
    }

    async fn remove(&self, seqs: &[i64]) -> Result<(), StorageError> {
        let what = "deleting published outbox rows";
        let client = super::postgres::get(&self.pool, &self.location).await?;
        // By seq, not by range: a row with a seq in between may have been
        // committed after the head was read (see the module docs).
        let statement = client
            .prepare_cached("DELETE FROM outbox WHERE seq = ANY($1)")
            .await
            .or_storage(what)?;
        client
            .execute(&statement, &[&seqs])
            .await
            .or_storage(what)?;
        Ok(())
    }

    async fn backlog(&self) -> Result<u64, StorageError> {
        let what = "counting the outbox";
        let client = super::postgres::get(&self.pool, &self.location).await?;
        let row = client
            .query_one("SELECT count(*) FROM outbox", &[])
            .await
            .or_storage(what)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn lead(&self) -> Result<Box<dyn PublisherLease>, StorageError> {
        let what = "taking the outbox publisher's lock";
        let client = self
            .tls
            .connect(&self.config, "the outbox publisher's lock session")
            .await
            .or_storage(what)?;
        loop {
            let row = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    &[&PUBLISHER_LOCK.0, &PUBLISHER_LOCK.1],
                )
                .await
                .or_storage(what)?;
            if row.get::<_, bool>(0) {
                return Ok(Box::new(LockSession(client)));
            }
            tokio::time::sleep(LEAD_RETRY).await;
        }
    }

    fn written(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.written)
    }
}

impl super::postgres::PostgresStorage {
    /// Whether this queue writes outbox events (opened with the outbox on):
    /// writers outside the commit path (the case store's `write_case`) ask
    /// before calling [`insert`].
    pub fn writes_outbox(&self) -> bool {
        self.outbox_signal().is_some()
    }

    /// Wakes this host's publisher after a transaction that called
    /// [`insert`] committed (else it finds the rows within a second).
    pub fn outbox_written(&self) {
        if let Some(written) = self.outbox_signal() {
            written.notify_one();
        }
    }
}
