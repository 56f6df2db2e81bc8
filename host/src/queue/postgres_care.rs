//! The case workflow's store on PostgreSQL ([`CareStore`] for
//! [`PostgresStorage`]).
//!
//! Several hosts may work one queue, so nothing here relies on being the
//! only writer:
//!
//! * **Claims and every other case change** are one statement: an
//!   `UPDATE … WHERE version = $expected` with the event (and, for a note,
//!   its search entry) written by the same statement's CTEs. Under READ
//!   COMMITTED an `UPDATE` that waited for a concurrent one re-checks its
//!   `WHERE` on the row that one committed, so of two writes from the same
//!   read exactly one matches: the compare-and-swap the workflow relies on.
//! * **Idempotent actions** rest on the unique (brand, idempotency key):
//!   `INSERT … ON CONFLICT DO NOTHING`, then the stored row.
//! * **Customer links** run in a transaction; the automatic links ingest
//!   makes are in the commit (see `link_authors_by_email` in the schema).
//!
//! JSON columns are `jsonb` (triage, reasons, escalation, event details,
//! actions, alerts); they go in and come out as text, parsed here with
//! serde, so their shape is the Rust types' and nobody else's.
//! Search: see [`super::postgres_search`].

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::outbox::OutboxEntry;
use super::postgres::{
    OrStorage, PostgresStorage, STORED_MESSAGE_COLUMNS, jsonb_text, sql_limit, stored_message,
};
use super::postgres_search::{
    Term, brand_lexeme, brand_tsquery, document_text, snippet, terms, tsquery,
};
use super::{CaseStatus, StorageError, StoredMessage};
use crate::care::crisis::{Alert, AlertMessage, Counts};
use crate::care::report::{ReportCase, ReportMessage, ReportRows};
use crate::care::store::{ActionOutcome, CareStore, NewToken, TokenRecord, action_state};
use crate::care::{
    ActionRecord, Case, CaseEvent, CaseQuery, CustomerEvent, CustomerProfile, Escalation, Identity,
    LinkedIdentity, NewAction, NewEvent, Role, SearchHit,
};
use crate::model::TimestampMs;
use crate::triage::{Bucket, Reason};

/// Default and largest page of the queue view and of search.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

const CASE_COLUMNS: &str = "id, brand, connector, channel, thread_id, status, assignee, team,
     priority, bucket, reasons::text, sentiment, message_count, first_message_at,
     last_message_at, author, preview, waiting_since, first_response_at, closed_at,
     escalation::text, version";

const ACTION_COLUMNS: &str = "id, case_id, connector, target_external_id, idempotency_key,
     action::text, state, attempts, result::text, error, requested_by, created_at, updated_at";

const TOKEN_COLUMNS: &str = "id, name, brand, role, hash, created_at, revoked_at";

const ALERT_COLUMNS: &str = "id, brand, kind, raised_at, window_from, window_to, observed,
     expected, team, messages::text";

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StorageError> {
    serde_json::from_str(text)
        .map_err(|e| StorageError::Query(format!("unreadable {what} in the queue: {e}")))
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn status_of(text: &str) -> Result<CaseStatus, StorageError> {
    CaseStatus::parse(text)
        .ok_or_else(|| StorageError::Query(format!("unknown case status {text:?} in the queue")))
}

fn case_from_row(row: &Row) -> Result<Case, StorageError> {
    let bucket: &str = row.get(9);
    let escalation: Option<&str> = row.get(20);
    Ok(Case {
        id: row.get(0),
        brand: row.get(1),
        connector: row.get(2),
        channel: row.get(3),
        thread_id: row.get(4),
        status: status_of(row.get(5))?,
        assignee: row.get(6),
        team: row.get(7),
        priority: u8::try_from(row.get::<_, i16>(8)).unwrap_or(0),
        bucket: Bucket::parse(bucket).ok_or_else(|| {
            StorageError::Query(format!("unknown bucket {bucket:?} in the queue"))
        })?,
        reasons: parse_json::<Vec<Reason>>(row.get(10), "triage reasons")?,
        sentiment: row.get(11),
        message_count: unsigned(row.get(12)),
        first_message_at: row.get(13),
        last_message_at: row.get(14),
        author: row.get(15),
        preview: row.get(16),
        waiting_since: row.get(17),
        first_response_at: row.get(18),
        closed_at: row.get(19),
        escalation: escalation
            .map(|e| parse_json::<Escalation>(e, "escalation"))
            .transpose()?,
        version: row.get(21),
    })
}

fn action_from_row(row: &Row) -> Result<ActionRecord, StorageError> {
    let result: Option<&str> = row.get(8);
    Ok(ActionRecord {
        id: row.get(0),
        case_id: row.get(1),
        connector: row.get(2),
        target_external_id: row.get(3),
        idempotency_key: row.get(4),
        action: parse_json(row.get(5), "action")?,
        state: action_state(row.get(6))?,
        attempts: u32::try_from(row.get::<_, i32>(7)).unwrap_or(0),
        result: result.map(|r| parse_json(r, "action result")).transpose()?,
        error: row.get(9),
        requested_by: row.get(10),
        created_at: row.get(11),
        updated_at: row.get(12),
    })
}

fn token_from_row(row: &Row) -> Result<TokenRecord, StorageError> {
    let role: &str = row.get(3);
    Ok(TokenRecord {
        id: row.get(0),
        name: row.get(1),
        brand: row.get(2),
        role: Role::parse(role)
            .ok_or_else(|| StorageError::Query(format!("unknown role {role:?} in the queue")))?,
        hash: row.get(4),
        created_at: row.get(5),
        revoked_at: row.get(6),
    })
}

fn alert_from_row(row: &Row) -> Result<Alert, StorageError> {
    Ok(Alert {
        id: row.get(0),
        brand: row.get(1),
        kind: row.get(2),
        raised_at: row.get(3),
        window_from: row.get(4),
        window_to: row.get(5),
        observed: unsigned(row.get(6)),
        expected: row.get(7),
        team: row.get(8),
        messages: parse_json(row.get(9), "alert messages")?,
    })
}

fn rows_to<T>(
    rows: &[Row],
    map: impl Fn(&Row) -> Result<T, StorageError>,
) -> Result<Vec<T>, StorageError> {
    rows.iter().map(map).collect()
}

/// A page size: 0 is the default page, and no page exceeds the largest.
fn page(limit: usize) -> i64 {
    let limit = match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Runs one statement and returns its rows (prepared once per
/// connection).
async fn fetch_all(
    client: &impl GenericClient,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
    what: &str,
) -> Result<Vec<Row>, StorageError> {
    let statement = client.prepare_cached(sql).await.or_storage(what)?;
    client.query(&statement, args).await.or_storage(what)
}

async fn fetch_opt(
    client: &impl GenericClient,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
    what: &str,
) -> Result<Option<Row>, StorageError> {
    let statement = client.prepare_cached(sql).await.or_storage(what)?;
    client.query_opt(&statement, args).await.or_storage(what)
}

async fn fetch_one(
    client: &impl GenericClient,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
    what: &str,
) -> Result<Row, StorageError> {
    let statement = client.prepare_cached(sql).await.or_storage(what)?;
    client.query_one(&statement, args).await.or_storage(what)
}

async fn customer_of(
    client: &impl GenericClient,
    brand: &str,
    identity: &Identity,
) -> Result<Option<i64>, StorageError> {
    let row = fetch_opt(
        client,
        "SELECT customer_id FROM customer_identities
         WHERE brand = $1 AND connector = $2 AND author_id = $3",
        &[&brand, &identity.connector, &identity.author_id],
        &format!("finding the customer of {}", identity.author_id),
    )
    .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The latest handle and display name of an identity in the brand's
/// messages.
async fn identity_seen(
    client: &impl GenericClient,
    brand: &str,
    identity: &Identity,
) -> Result<Option<(String, String)>, StorageError> {
    let row = fetch_opt(
        client,
        "SELECT author_handle,
                COALESCE(NULLIF(message_json::jsonb -> 'author' ->> 'display_name', ''),
                         author_handle)
         FROM messages WHERE brand = $1 AND connector = $2 AND author_id = $3
         ORDER BY created_at DESC, id DESC LIMIT 1",
        &[&brand, &identity.connector, &identity.author_id],
        &format!("looking up {}", identity.author_id),
    )
    .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

async fn cases_of_identity(
    client: &impl GenericClient,
    brand: &str,
    connector: &str,
    author_id: &str,
) -> Result<Vec<Case>, StorageError> {
    let rows = fetch_all(
        client,
        &format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE brand = $1 AND id IN (
                 SELECT case_id FROM messages
                 WHERE brand = $1 AND connector = $2 AND author_id = $3
                   AND direction = 'inbound' AND case_id IS NOT NULL)
             ORDER BY last_message_at DESC, id DESC"
        ),
        &[&brand, &connector, &author_id],
        &format!("listing the cases of {author_id}"),
    )
    .await?;
    rows_to(&rows, case_from_row)
}

async fn customer_event(
    client: &impl GenericClient,
    brand: &str,
    customer: i64,
    at: TimestampMs,
    actor: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), StorageError> {
    fetch_all(
        client,
        "INSERT INTO customer_events (brand, customer_id, at, actor, kind, detail)
         VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)",
        &[
            &brand,
            &customer,
            &at,
            &actor,
            &kind,
            &jsonb_text(detail, "an event")?,
        ],
        &format!("recording a change of customer {customer}"),
    )
    .await
    .map(drop)
}

async fn new_customer(
    client: &impl GenericClient,
    brand: &str,
    display_name: &str,
    at: TimestampMs,
) -> Result<i64, StorageError> {
    let row = fetch_one(
        client,
        "INSERT INTO customers (brand, display_name, created_at) VALUES ($1, $2, $3)
         RETURNING id",
        &[&brand, &display_name, &at],
        &format!("creating a customer of brand {brand:?}"),
    )
    .await?;
    Ok(row.get(0))
}

/// One case change, its event and (for a note) the note's search entry,
/// written only if the case is still at the expected version (see the
/// module docs).
const WRITE_CASE: &str = "
    WITH changed AS (
        UPDATE cases SET status = $4, assignee = $5, team = $6, waiting_since = $7,
            first_response_at = $8, closed_at = $9, escalation = $10::text::jsonb,
            version = $11
        WHERE brand = $1 AND id = $2 AND version = $3
        RETURNING id
    ), event AS (
        INSERT INTO case_events (case_id, brand, at, actor, kind, channel, detail)
        SELECT id, $1, $12, $13, $14, $15, $16::text::jsonb FROM changed
        RETURNING id
    ), note AS (
        INSERT INTO search_entries (id, brand, case_id, source, at, document)
        SELECT -event.id, $1, $2, 'note', $12,
               to_tsvector('simple', $17::text) || array_to_tsvector(ARRAY[$18::text])
        FROM event WHERE $17::text IS NOT NULL
    )
    SELECT count(*) FROM changed";

/// The best entry per case (ties: the newest), then the cases best first;
/// the text comes from the message or the note's event. `$2` is the
/// words (an empty query would leave only the brand's lexeme and match
/// everything, hence `numnode`), `$3` the brand's lexeme.
const SEARCH: &str = "
    SELECT c.id, c.status, best.source, best.at,
           COALESCE(m.text, e.detail ->> 'text', '')
    FROM (
        SELECT DISTINCT ON (s.case_id) s.id, s.case_id, s.source, s.at,
               ts_rank(s.document, to_tsquery('simple', $2), 1) AS rank
        FROM search_entries AS s
        WHERE s.brand = $1
          AND numnode(to_tsquery('simple', $2)) > 0
          AND s.document @@ (to_tsquery('simple', $2) && $3::text::tsquery)
        ORDER BY s.case_id, rank DESC, s.at DESC, s.id DESC
    ) AS best
    JOIN cases AS c ON c.id = best.case_id AND c.brand = $1
    LEFT JOIN messages AS m ON best.source = 'message' AND m.id = best.id
    LEFT JOIN case_events AS e ON best.source = 'note' AND e.id = -best.id
    ORDER BY best.rank DESC, best.at DESC, best.case_id DESC
    LIMIT $4";

#[async_trait::async_trait]
impl CareStore for PostgresStorage {
    async fn case(&self, brand: &str, id: i64) -> Result<Option<Case>, StorageError> {
        let client = self.client().await?;
        fetch_opt(
            &client,
            &format!("SELECT {CASE_COLUMNS} FROM cases WHERE brand = $1 AND id = $2"),
            &[&brand, &id],
            &format!("reading case {id} of brand {brand:?}"),
        )
        .await?
        .map(|row| case_from_row(&row))
        .transpose()
    }

    async fn case_by_thread(
        &self,
        brand: &str,
        connector: &str,
        thread_id: &str,
    ) -> Result<Option<Case>, StorageError> {
        let client = self.client().await?;
        fetch_opt(
            &client,
            &format!(
                "SELECT {CASE_COLUMNS} FROM cases
                 WHERE brand = $1 AND connector = $2 AND thread_id = $3"
            ),
            &[&brand, &connector, &thread_id],
            &format!("finding the case of thread {thread_id:?}"),
        )
        .await?
        .map(|row| case_from_row(&row))
        .transpose()
    }

    async fn case_list(&self, query: &CaseQuery) -> Result<Vec<Case>, StorageError> {
        let status = query.status.map(CaseStatus::as_str);
        let limit = page(query.limit);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let mut sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE brand = $1");
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&query.brand];
        if let Some(status) = &status {
            args.push(status);
            sql.push_str(&format!(" AND status = ${}", args.len()));
        }
        if let Some(assignee) = &query.assignee {
            args.push(assignee);
            sql.push_str(&format!(" AND assignee = ${}", args.len()));
        }
        if query.unassigned {
            sql.push_str(" AND assignee IS NULL");
        }
        if let Some(team) = &query.team {
            args.push(team);
            sql.push_str(&format!(" AND team = ${}", args.len()));
        }
        args.push(&limit);
        args.push(&offset);
        // The order of the `cases_queue` indexes: an ascending
        // `waiting_since` puts NULL (nothing waits) last.
        sql.push_str(&format!(
            " ORDER BY priority DESC, waiting_since, id LIMIT ${} OFFSET ${}",
            args.len() - 1,
            args.len()
        ));
        let client = self.client().await?;
        let rows = fetch_all(
            &client,
            &sql,
            &args,
            &format!("listing the cases of brand {:?}", query.brand),
        )
        .await?;
        rows_to(&rows, case_from_row)
    }

    async fn write_case(
        &self,
        case: &Case,
        expected_version: i64,
        event: &NewEvent,
    ) -> Result<bool, StorageError> {
        let escalation = case
            .escalation
            .as_ref()
            .map(|e| jsonb_text(e, "an escalation"))
            .transpose()?;
        let detail = jsonb_text(&event.detail, "an event")?;
        let note = (event.kind == "noted")
            .then(|| event.detail.get("text").and_then(|t| t.as_str()))
            .flatten()
            .map(document_text);
        let brand_key = brand_lexeme(&case.brand);
        let what = format!("updating case {} of brand {:?}", case.id, case.brand);
        let mut client = self.client().await?;
        // With the NATS outbox on, the change and its outbox event commit
        // together; the case's row, locked by the update, keeps a case's
        // events in order.
        let tx = client.transaction().await.or_storage(&what)?;
        let row = fetch_one(
            &tx,
            WRITE_CASE,
            &[
                &case.brand,
                &case.id,
                &expected_version,
                &case.status.as_str(),
                &case.assignee,
                &case.team,
                &case.waiting_since,
                &case.first_response_at,
                &case.closed_at,
                &escalation,
                &case.version,
                &event.at,
                &event.actor,
                &event.kind,
                &event.channel,
                &detail,
                &note,
                &brand_key,
            ],
            &what,
        )
        .await?;
        let written = row.get::<_, i64>(0) == 1;
        // --- NATS outbox (queue::postgres_outbox): only when it is on. ---
        if written && self.writes_outbox() {
            let entry = OutboxEntry::case_written(case, event)?;
            super::postgres_outbox::insert(&tx, &entry, event.at).await?;
        }
        tx.commit().await.or_storage(&what)?;
        if written && self.writes_outbox() {
            self.outbox_written();
        }
        Ok(written)
    }

    async fn case_messages(
        &self,
        brand: &str,
        case_id: i64,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let what = format!("reading the messages of case {case_id}");
        let client = self.client().await?;
        let rows = fetch_all(
            &client,
            &format!(
                "SELECT {STORED_MESSAGE_COLUMNS} FROM messages
                 WHERE case_id = $2 AND brand = $1 ORDER BY created_at, id"
            ),
            &[&brand, &case_id],
            &what,
        )
        .await?;
        rows.iter().map(|row| stored_message(row, &what)).collect()
    }

    async fn case_events(&self, brand: &str, case_id: i64) -> Result<Vec<CaseEvent>, StorageError> {
        let client = self.client().await?;
        let rows = fetch_all(
            &client,
            "SELECT id, case_id, at, actor, kind, channel, detail::text FROM case_events
             WHERE case_id = $2 AND brand = $1 ORDER BY id",
            &[&brand, &case_id],
            &format!("reading the audit trail of case {case_id}"),
        )
        .await?;
        rows_to(&rows, |row| {
            Ok(CaseEvent {
                id: row.get(0),
                case_id: row.get(1),
                at: row.get(2),
                actor: row.get(3),
                kind: row.get(4),
                channel: row.get(5),
                detail: parse_json(row.get(6), "event detail")?,
            })
        })
    }

    async fn begin_action(&self, action: &NewAction) -> Result<(ActionRecord, bool), StorageError> {
        let a = action;
        let body = jsonb_text(&a.action, "an action")?;
        let what = format!("recording an action on case {}", a.case_id);
        let client = self.client().await?;
        let inserted = fetch_opt(
            &client,
            &format!(
                "INSERT INTO actions (brand, case_id, connector, target_external_id,
                     idempotency_key, action, state, attempts, requested_by, created_at,
                     updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, 'pending', 1, $7, $8, $8)
                 ON CONFLICT (brand, idempotency_key) DO NOTHING
                 RETURNING {ACTION_COLUMNS}"
            ),
            &[
                &a.brand,
                &a.case_id,
                &a.connector,
                &a.target_external_id,
                &a.idempotency_key,
                &body,
                &a.requested_by,
                &a.at,
            ],
            &what,
        )
        .await?;
        if let Some(row) = inserted {
            return Ok((action_from_row(&row)?, true));
        }
        // The key is taken (perhaps by another host a moment ago: this
        // statement's snapshot is newer than the conflict).
        let row = fetch_one(
            &client,
            &format!(
                "SELECT {ACTION_COLUMNS} FROM actions WHERE brand = $1 AND idempotency_key = $2"
            ),
            &[&a.brand, &a.idempotency_key],
            &what,
        )
        .await?;
        Ok((action_from_row(&row)?, false))
    }

    async fn retry_action(
        &self,
        brand: &str,
        action_id: i64,
        at: TimestampMs,
    ) -> Result<Option<(ActionRecord, bool)>, StorageError> {
        let client = self.client().await?;
        let row = fetch_opt(
            &client,
            &format!(
                "WITH retried AS (
                     UPDATE actions SET state = 'pending', attempts = attempts + 1,
                         error = NULL, updated_at = $3
                     WHERE brand = $1 AND id = $2 AND state = 'failed'
                     RETURNING {ACTION_COLUMNS}
                 )
                 SELECT *, true FROM retried
                 UNION ALL
                 SELECT {ACTION_COLUMNS}, false FROM actions
                 WHERE brand = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM retried)"
            ),
            &[&brand, &action_id, &at],
            &format!("retrying action {action_id}"),
        )
        .await?;
        row.map(|row| Ok((action_from_row(&row)?, row.get::<_, bool>(13))))
            .transpose()
    }

    async fn finish_action(
        &self,
        action_id: i64,
        outcome: &ActionOutcome,
        at: TimestampMs,
    ) -> Result<ActionRecord, StorageError> {
        let (state, result, error) = match outcome {
            ActionOutcome::Sent(result) => {
                ("sent", Some(jsonb_text(result, "an action result")?), None)
            }
            ActionOutcome::Failed(error) => ("failed", None, Some(error.clone())),
        };
        let client = self.client().await?;
        let row = fetch_opt(
            &client,
            &format!(
                "WITH finished AS (
                     UPDATE actions SET state = $2, result = $3::text::jsonb, error = $4,
                         updated_at = $5
                     WHERE id = $1 AND state = 'pending'
                     RETURNING {ACTION_COLUMNS}
                 )
                 SELECT * FROM finished
                 UNION ALL
                 SELECT {ACTION_COLUMNS} FROM actions
                 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM finished)"
            ),
            &[&action_id, &state, &result, &error, &at],
            &format!("recording the outcome of action {action_id}"),
        )
        .await?;
        match row {
            Some(row) => action_from_row(&row),
            None => Err(StorageError::Query(format!(
                "recording the outcome of action {action_id}: there is no such action"
            ))),
        }
    }

    async fn case_actions(
        &self,
        brand: &str,
        case_id: i64,
    ) -> Result<Vec<ActionRecord>, StorageError> {
        let client = self.client().await?;
        let rows = fetch_all(
            &client,
            &format!(
                "SELECT {ACTION_COLUMNS} FROM actions WHERE case_id = $2 AND brand = $1 ORDER BY id"
            ),
            &[&brand, &case_id],
            &format!("reading the actions of case {case_id}"),
        )
        .await?;
        rows_to(&rows, action_from_row)
    }

    async fn search(
        &self,
        brand: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StorageError> {
        let words: Vec<Term> = terms(query);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let rows = fetch_all(
            &client,
            SEARCH,
            &[
                &brand,
                &tsquery(&words),
                &brand_tsquery(brand),
                &page(limit),
            ],
            &format!("searching the cases of brand {brand:?}"),
        )
        .await?;
        rows_to(&rows, |row| {
            Ok(SearchHit {
                case_id: row.get(0),
                status: status_of(row.get(1))?,
                source: row.get(2),
                at: row.get(3),
                snippet: snippet(row.get(4), &words),
            })
        })
    }

    async fn report_rows(
        &self,
        brand: &str,
        from: TimestampMs,
        to: TimestampMs,
        connector: Option<&str>,
    ) -> Result<ReportRows, StorageError> {
        let what = format!("reading the report rows of brand {brand:?}");
        let client = self.client().await?;
        let args: [&(dyn ToSql + Sync); 4] = [&brand, &from, &to, &connector];
        let cases = fetch_all(
            &client,
            "SELECT connector, channel, first_message_at, first_response_at, closed_at
             FROM cases
             WHERE brand = $1 AND first_message_at >= $2 AND first_message_at < $3
               AND ($4::text IS NULL OR connector = $4)",
            &args,
            &what,
        )
        .await?;
        let messages = fetch_all(
            &client,
            "SELECT connector, created_at, text, (triage ->> 'sentiment')::float8
             FROM messages
             WHERE brand = $1 AND created_at >= $2 AND created_at < $3
               AND direction = 'inbound' AND NOT ignored
               AND ($4::text IS NULL OR connector = $4)",
            &args,
            &what,
        )
        .await?;
        Ok(ReportRows {
            cases: cases
                .iter()
                .map(|row| ReportCase {
                    connector: row.get(0),
                    channel: row.get(1),
                    first_message_at: row.get(2),
                    first_response_at: row.get(3),
                    closed_at: row.get(4),
                })
                .collect(),
            messages: messages
                .iter()
                .map(|row| ReportMessage {
                    connector: row.get(0),
                    created_at: row.get(1),
                    text: row.get(2),
                    sentiment: row.get(3),
                })
                .collect(),
        })
    }

    async fn customer(
        &self,
        brand: &str,
        id: i64,
    ) -> Result<Option<CustomerProfile>, StorageError> {
        let what = format!("reading customer {id} of brand {brand:?}");
        let client = self.client().await?;
        let Some(head) = fetch_opt(
            &client,
            "SELECT display_name, email FROM customers WHERE brand = $1 AND id = $2",
            &[&brand, &id],
            &what,
        )
        .await?
        else {
            return Ok(None);
        };
        let identities: Vec<LinkedIdentity> = fetch_all(
            &client,
            "SELECT connector, author_id, handle, linked_by, linked_at
             FROM customer_identities WHERE brand = $1 AND customer_id = $2
             ORDER BY linked_at, connector, author_id",
            &[&brand, &id],
            &what,
        )
        .await?
        .iter()
        .map(|r| LinkedIdentity {
            connector: r.get(0),
            author_id: r.get(1),
            handle: r.get(2),
            linked_by: r.get(3),
            linked_at: r.get(4),
        })
        .collect();
        let mut cases = Vec::new();
        for identity in &identities {
            cases.extend(
                cases_of_identity(&client, brand, &identity.connector, &identity.author_id).await?,
            );
        }
        cases.sort_by(|a: &Case, b: &Case| {
            b.last_message_at
                .cmp(&a.last_message_at)
                .then(b.id.cmp(&a.id))
        });
        cases.dedup_by_key(|c| c.id);
        let events = fetch_all(
            &client,
            "SELECT at, actor, kind, detail::text FROM customer_events
             WHERE brand = $1 AND customer_id = $2 ORDER BY id",
            &[&brand, &id],
            &what,
        )
        .await?;
        let events = rows_to(&events, |r| {
            Ok(CustomerEvent {
                at: r.get(0),
                actor: r.get(1),
                kind: r.get(2),
                detail: parse_json(r.get(3), "customer event detail")?,
            })
        })?;
        Ok(Some(CustomerProfile {
            id: Some(id),
            display_name: head.get(0),
            email: head.get(1),
            identities,
            cases,
            events,
        }))
    }

    async fn customer_of(
        &self,
        brand: &str,
        identity: &Identity,
    ) -> Result<Option<i64>, StorageError> {
        let client = self.client().await?;
        customer_of(&client, brand, identity).await
    }

    async fn identity_cases(
        &self,
        brand: &str,
        identity: &Identity,
    ) -> Result<Vec<Case>, StorageError> {
        let client = self.client().await?;
        cases_of_identity(&client, brand, &identity.connector, &identity.author_id).await
    }

    async fn identity_seen(
        &self,
        brand: &str,
        identity: &Identity,
    ) -> Result<Option<(String, String)>, StorageError> {
        let client = self.client().await?;
        identity_seen(&client, brand, identity).await
    }

    async fn link_identities(
        &self,
        brand: &str,
        identities: &[Identity],
        actor: &str,
        at: TimestampMs,
    ) -> Result<i64, StorageError> {
        let what = format!("linking identities of brand {brand:?}");
        let mut client = self.client().await?;
        let tx = client.transaction().await.or_storage(&what)?;
        let mut existing = Vec::new();
        let mut seen = Vec::new();
        for identity in identities {
            let Some(names) = identity_seen(&tx, brand, identity).await? else {
                return Err(StorageError::Query(format!(
                    "brand {brand:?} never had a message of {} on {}",
                    identity.author_id, identity.connector
                )));
            };
            if let Some(customer) = customer_of(&tx, brand, identity).await? {
                existing.push(customer);
            }
            seen.push((identity, names));
        }
        let Some((_, (_, first_name))) = seen.first() else {
            return Err(StorageError::Query(format!(
                "{what}: no identities to link"
            )));
        };
        existing.sort_unstable();
        existing.dedup();
        let survivor = match existing.first() {
            Some(&id) => id,
            None => new_customer(&tx, brand, first_name, at).await?,
        };
        let merged: Vec<i64> = existing
            .iter()
            .copied()
            .filter(|&c| c != survivor)
            .collect();
        for other in &merged {
            fetch_all(
                &tx,
                "UPDATE customer_identities SET customer_id = $3
                 WHERE brand = $1 AND customer_id = $2",
                &[&brand, other, &survivor],
                &what,
            )
            .await?;
            // The merged profile's address carries over if the survivor has none.
            fetch_all(
                &tx,
                "UPDATE customers SET email = COALESCE(email,
                     (SELECT email FROM customers WHERE brand = $1 AND id = $2))
                 WHERE brand = $1 AND id = $3",
                &[&brand, other, &survivor],
                &what,
            )
            .await?;
            customer_event(
                &tx,
                brand,
                *other,
                at,
                actor,
                "merged_into",
                &serde_json::json!({ "customer": survivor }),
            )
            .await?;
        }
        for (identity, (handle, _)) in &seen {
            fetch_all(
                &tx,
                "INSERT INTO customer_identities
                     (brand, connector, author_id, handle, customer_id, linked_by, linked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (brand, connector, author_id) DO NOTHING",
                &[
                    &brand,
                    &identity.connector,
                    &identity.author_id,
                    handle,
                    &survivor,
                    &actor,
                    &at,
                ],
                &what,
            )
            .await?;
        }
        customer_event(
            &tx,
            brand,
            survivor,
            at,
            actor,
            "linked",
            &serde_json::json!({ "identities": identities, "merged": merged }),
        )
        .await?;
        tx.commit().await.or_storage(&what)?;
        Ok(survivor)
    }

    async fn unlink_identity(
        &self,
        brand: &str,
        identity: &Identity,
        actor: &str,
        at: TimestampMs,
    ) -> Result<Option<i64>, StorageError> {
        let what = format!("unlinking an identity of brand {brand:?}");
        let mut client = self.client().await?;
        let tx = client.transaction().await.or_storage(&what)?;
        let Some(old) = customer_of(&tx, brand, identity).await? else {
            return Ok(None);
        };
        let others: i64 = fetch_one(
            &tx,
            "SELECT count(*) FROM customer_identities WHERE brand = $1 AND customer_id = $2",
            &[&brand, &old],
            &what,
        )
        .await?
        .get(0);
        if others <= 1 {
            // Alone in its profile already: nothing to take it out of.
            return Ok(None);
        }
        let (_, name) = identity_seen(&tx, brand, identity)
            .await?
            .unwrap_or_default();
        let new = new_customer(&tx, brand, &name, at).await?;
        fetch_all(
            &tx,
            "UPDATE customer_identities SET customer_id = $4, linked_by = $5, linked_at = $6
             WHERE brand = $1 AND connector = $2 AND author_id = $3",
            &[
                &brand,
                &identity.connector,
                &identity.author_id,
                &new,
                &actor,
                &at,
            ],
            &what,
        )
        .await?;
        let detail = serde_json::json!({ "identity": identity, "from": old, "to": new });
        customer_event(&tx, brand, old, at, actor, "unlinked", &detail).await?;
        customer_event(&tx, brand, new, at, actor, "unlinked", &detail).await?;
        tx.commit().await.or_storage(&what)?;
        Ok(Some(new))
    }

    async fn crisis_counts(
        &self,
        brand: &str,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Counts, StorageError> {
        let client = self.client().await?;
        let row = fetch_one(
            &client,
            "SELECT count(*),
                    count(*) FILTER (WHERE (triage ->> 'sentiment')::float8 < 0)
             FROM messages
             WHERE brand = $1 AND created_at >= $2 AND created_at < $3
               AND direction = 'inbound' AND NOT ignored",
            &[&brand, &from, &to],
            &format!("counting the messages of brand {brand:?}"),
        )
        .await?;
        Ok(Counts {
            messages: unsigned(row.get(0)),
            negative: unsigned(row.get(1)),
        })
    }

    async fn crisis_messages(
        &self,
        brand: &str,
        from: TimestampMs,
        to: TimestampMs,
        negative_first: bool,
        limit: usize,
    ) -> Result<Vec<AlertMessage>, StorageError> {
        let order = if negative_first {
            "COALESCE((triage ->> 'sentiment')::float8, 0), created_at DESC, id DESC"
        } else {
            "created_at DESC, id DESC"
        };
        let client = self.client().await?;
        let rows = fetch_all(
            &client,
            &format!(
                "SELECT case_id, connector, external_id, author_handle, text, created_at,
                        (triage ->> 'sentiment')::float8
                 FROM messages
                 WHERE brand = $1 AND created_at >= $2 AND created_at < $3
                   AND direction = 'inbound' AND NOT ignored
                 ORDER BY {order} LIMIT $4"
            ),
            &[&brand, &from, &to, &sql_limit(limit)],
            &format!("reading the messages behind an alert of {brand:?}"),
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| AlertMessage {
                case_id: r.get(0),
                connector: r.get(1),
                external_id: r.get(2),
                author: r.get(3),
                text: r.get(4),
                created_at: r.get(5),
                sentiment: r.get(6),
            })
            .collect())
    }

    async fn last_alert_end(
        &self,
        brand: &str,
        kind: &str,
    ) -> Result<Option<TimestampMs>, StorageError> {
        let client = self.client().await?;
        let row = fetch_one(
            &client,
            "SELECT max(window_to) FROM alerts WHERE brand = $1 AND kind = $2",
            &[&brand, &kind],
            &format!("reading the alerts of {brand:?}"),
        )
        .await?;
        Ok(row.get(0))
    }

    async fn record_alert(&self, alert: &Alert) -> Result<Alert, StorageError> {
        let messages = jsonb_text(&alert.messages, "an alert")?;
        let observed = i64::try_from(alert.observed).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let row = fetch_one(
            &client,
            "INSERT INTO alerts (brand, kind, raised_at, window_from, window_to, observed,
                                 expected, team, messages)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb)
             RETURNING id",
            &[
                &alert.brand,
                &alert.kind,
                &alert.raised_at,
                &alert.window_from,
                &alert.window_to,
                &observed,
                &alert.expected,
                &alert.team,
                &messages,
            ],
            &format!("recording an alert of {:?}", alert.brand),
        )
        .await?;
        Ok(Alert {
            id: row.get(0),
            ..alert.clone()
        })
    }

    async fn alerts(&self, brand: &str, since: TimestampMs) -> Result<Vec<Alert>, StorageError> {
        let client = self.client().await?;
        let rows = fetch_all(
            &client,
            &format!(
                "SELECT {ALERT_COLUMNS} FROM alerts
                 WHERE brand = $1 AND raised_at >= $2 ORDER BY id DESC"
            ),
            &[&brand, &since],
            &format!("reading the alerts of {brand:?}"),
        )
        .await?;
        rows_to(&rows, alert_from_row)
    }

    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, StorageError> {
        let t = token;
        let client = self.client().await?;
        let row = fetch_one(
            &client,
            &format!(
                "INSERT INTO api_tokens (name, brand, role, hash, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 RETURNING {TOKEN_COLUMNS}"
            ),
            &[&t.name, &t.brand, &t.role.as_str(), &t.hash, &t.at],
            &format!("creating a token for {:?}", t.name),
        )
        .await?;
        token_from_row(&row)
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StorageError> {
        let client = self.client().await?;
        fetch_opt(
            &client,
            &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = $1"),
            &[&hash],
            "looking up an API token",
        )
        .await?
        .map(|row| token_from_row(&row))
        .transpose()
    }

    async fn tokens(&self, brand: Option<&str>) -> Result<Vec<TokenRecord>, StorageError> {
        let client = self.client().await?;
        let rows = fetch_all(
            &client,
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens
                 WHERE $1::text IS NULL OR brand = $1 ORDER BY id DESC"
            ),
            &[&brand],
            "listing API tokens",
        )
        .await?;
        rows_to(&rows, token_from_row)
    }

    async fn revoke_token(&self, id: i64, at: TimestampMs) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let revoked = fetch_opt(
            &client,
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL
             RETURNING id",
            &[&id, &at],
            &format!("revoking token {id}"),
        )
        .await?;
        Ok(revoked.is_some())
    }
}
