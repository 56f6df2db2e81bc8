//! The case workflow's store on SQLite ([`CareStore`] for
//! [`SqliteStorage`]).
//!
//! One connection serialises every write, so a compare-and-swap is a plain
//! `UPDATE … WHERE version = ?` inside a transaction with its event.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};

use super::outbox::OutboxEntry;
use super::sqlite::{MessageRow, OrStorage, SqliteStorage, sql_limit, stored_message};
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

/// Default and largest page of the queue view.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

const CASE_COLUMNS: &str = "id, brand, connector, channel, thread_id, status, assignee, team,
     priority, bucket, reasons, sentiment, message_count, first_message_at, last_message_at,
     author, preview, waiting_since, first_response_at, closed_at, escalation, version";

fn json_column<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
    })
}

fn optional_json<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

fn conversion(index: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.into())
}

fn case_from_row(row: &Row<'_>) -> rusqlite::Result<Case> {
    let bucket: String = row.get(9)?;
    Ok(Case {
        id: row.get(0)?,
        brand: row.get(1)?,
        connector: row.get(2)?,
        channel: row.get(3)?,
        thread_id: row.get(4)?,
        status: row.get(5)?,
        assignee: row.get(6)?,
        team: row.get(7)?,
        priority: row.get(8)?,
        bucket: Bucket::parse(&bucket)
            .ok_or_else(|| conversion(9, format!("unknown bucket {bucket:?}")))?,
        reasons: json_column::<Vec<Reason>>(row, 10)?,
        sentiment: row.get(11)?,
        message_count: row.get(12)?,
        first_message_at: row.get(13)?,
        last_message_at: row.get(14)?,
        author: row.get(15)?,
        preview: row.get(16)?,
        waiting_since: row.get(17)?,
        first_response_at: row.get(18)?,
        closed_at: row.get(19)?,
        escalation: optional_json::<Escalation>(row, 20)?,
        version: row.get(21)?,
    })
}

const ACTION_COLUMNS: &str = "id, case_id, connector, target_external_id, idempotency_key,
     action, state, attempts, result, error, requested_by, created_at, updated_at";

fn action_from_row(row: &Row<'_>) -> rusqlite::Result<ActionRecord> {
    let state: String = row.get(6)?;
    Ok(ActionRecord {
        id: row.get(0)?,
        case_id: row.get(1)?,
        connector: row.get(2)?,
        target_external_id: row.get(3)?,
        idempotency_key: row.get(4)?,
        action: json_column(row, 5)?,
        state: action_state(&state).map_err(|e| conversion(6, e.to_string()))?,
        attempts: row.get(7)?,
        result: optional_json(row, 8)?,
        error: row.get(9)?,
        requested_by: row.get(10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
    })
}

const TOKEN_COLUMNS: &str = "id, name, brand, role, hash, created_at, revoked_at";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let role: String = row.get(3)?;
    Ok(TokenRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        brand: row.get(2)?,
        role: Role::parse(&role).ok_or_else(|| conversion(3, format!("unknown role {role:?}")))?,
        hash: row.get(4)?,
        created_at: row.get(5)?,
        revoked_at: row.get(6)?,
    })
}

fn read_case(conn: &Connection, brand: &str, id: i64) -> Result<Option<Case>, StorageError> {
    conn.prepare_cached(&format!(
        "SELECT {CASE_COLUMNS} FROM cases WHERE brand = ?1 AND id = ?2"
    ))
    .and_then(|mut s| s.query_row(params![brand, id], case_from_row).optional())
    .or_storage(format_args!("reading case {id} of brand {brand:?}"))
}

fn read_action(conn: &Connection, id: i64) -> Result<ActionRecord, StorageError> {
    conn.prepare_cached(&format!(
        "SELECT {ACTION_COLUMNS} FROM actions WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row(params![id], action_from_row))
    .or_storage(format_args!("reading action {id}"))
}

/// Turns what an agent typed into an FTS5 query that matches documents of
/// `brand` containing every word (a trailing `*` keeps a prefix search).
/// Words are quoted, so no input is ever read as query syntax.
fn fts_query(brand: &str, query: &str) -> Option<String> {
    let mut terms = Vec::new();
    for raw in query.split_whitespace() {
        let prefix = raw.ends_with('*');
        // Split the way the tokenizer does: anything not alphanumeric
        // separates words ("e-mail" → "e" "mail").
        for word in raw.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            terms.push(format!("body : \"{word}\""));
        }
        if prefix && let Some(last) = terms.last_mut() {
            last.push('*');
        }
    }
    if terms.is_empty() {
        return None;
    }
    Some(format!(
        "brand : \"{}\" AND {}",
        hex::encode_upper(brand.as_bytes()),
        terms.join(" AND ")
    ))
}

fn customer_of(
    conn: &Connection,
    brand: &str,
    identity: &Identity,
) -> Result<Option<i64>, StorageError> {
    conn.prepare_cached(
        "SELECT customer_id FROM customer_identities
         WHERE brand = ?1 AND connector = ?2 AND author_id = ?3",
    )
    .and_then(|mut s| {
        s.query_row(
            params![brand, identity.connector, identity.author_id],
            |r| r.get(0),
        )
        .optional()
    })
    .or_storage(format_args!(
        "finding the customer of {}",
        identity.author_id
    ))
}

/// The latest handle and display name of an identity in the brand's
/// messages.
fn identity_seen(
    conn: &Connection,
    brand: &str,
    identity: &Identity,
) -> Result<Option<(String, String)>, StorageError> {
    super::sqlite_indexes::catch_up(conn)?;
    conn.prepare_cached(
        "SELECT m.author_handle,
                COALESCE(NULLIF(json_extract(m.message_json, '$.author.display_name'), ''),
                         m.author_handle)
         FROM message_authors AS a JOIN messages AS m ON m.id = a.message_id
         WHERE a.brand = ?1 AND a.connector = ?2 AND a.author_id = ?3
         ORDER BY m.created_at DESC, m.id DESC LIMIT 1",
    )
    .and_then(|mut s| {
        s.query_row(
            params![brand, identity.connector, identity.author_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
    })
    .or_storage(format_args!("looking up {}", identity.author_id))
}

fn cases_of_identity(
    conn: &Connection,
    brand: &str,
    connector: &str,
    author_id: &str,
) -> Result<Vec<Case>, StorageError> {
    super::sqlite_indexes::catch_up(conn)?;
    conn.prepare_cached(&format!(
        "SELECT {CASE_COLUMNS} FROM cases WHERE brand = ?1 AND id IN (
             SELECT m.case_id
             FROM message_authors AS a JOIN messages AS m ON m.id = a.message_id
             WHERE a.brand = ?1 AND a.connector = ?2 AND a.author_id = ?3
               AND m.direction = 'inbound' AND m.case_id IS NOT NULL)
         ORDER BY last_message_at DESC, id DESC"
    ))
    .and_then(|mut s| {
        s.query_map(params![brand, connector, author_id], case_from_row)?
            .collect()
    })
    .or_storage(format_args!("listing the cases of {author_id}"))
}

fn customer_event(
    conn: &Connection,
    brand: &str,
    customer: i64,
    at: TimestampMs,
    actor: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO customer_events (brand, customer_id, at, actor, kind, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            brand,
            customer,
            at,
            actor,
            kind,
            detail.to_string()
        ])
    })
    .map(drop)
    .or_storage(format_args!("recording a change of customer {customer}"))
}

/// At ingest: links the author of an inbound message to the customer
/// profile with the address the channel gave (creating the profile), unless
/// the identity is linked already (also after a manual unlink, which the
/// next message must not undo).
pub(super) fn link_by_email(
    tx: &Connection,
    brand: &str,
    connector: &str,
    m: &MessageRow,
    email: &str,
    at: TimestampMs,
) -> rusqlite::Result<()> {
    let linked: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM customer_identities
                            WHERE brand = ?1 AND connector = ?2 AND author_id = ?3)",
        )?
        .query_row(params![brand, connector, m.author_id], |r| r.get(0))?;
    if linked {
        return Ok(());
    }
    let existing: Option<i64> = tx
        .prepare_cached("SELECT MIN(id) FROM customers WHERE brand = ?1 AND email = ?2")?
        .query_row(params![brand, email], |r| r.get(0))?;
    let customer = match existing {
        Some(id) => id,
        None => {
            tx.prepare_cached(
                "INSERT INTO customers (brand, display_name, email, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![brand, m.author_name, email, at])?;
            tx.last_insert_rowid()
        }
    };
    tx.prepare_cached(
        "INSERT INTO customer_identities
             (brand, connector, author_id, handle, customer_id, linked_by, linked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'webcare (e-mail)', ?6)",
    )?
    .execute(params![
        brand,
        connector,
        m.author_id,
        m.author_handle,
        customer,
        at
    ])?;
    let detail = serde_json::json!({
        "identities": [{"connector": connector, "author_id": m.author_id}],
        "by": "email",
        "email": email,
    });
    tx.prepare_cached(
        "INSERT INTO customer_events (brand, customer_id, at, actor, kind, detail)
         VALUES (?1, ?2, ?3, 'webcare (e-mail)', 'linked', ?4)",
    )?
    .execute(params![brand, customer, at, detail.to_string()])?;
    Ok(())
}

#[async_trait::async_trait]
impl CareStore for SqliteStorage {
    async fn case(&self, brand: &str, id: i64) -> Result<Option<Case>, StorageError> {
        let brand = brand.to_string();
        self.run(move |conn| read_case(conn, &brand, id)).await
    }

    async fn case_by_thread(
        &self,
        brand: &str,
        connector: &str,
        thread_id: &str,
    ) -> Result<Option<Case>, StorageError> {
        let (brand, connector, thread) = (
            brand.to_string(),
            connector.to_string(),
            thread_id.to_string(),
        );
        self.run(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {CASE_COLUMNS} FROM cases
                 WHERE brand = ?1 AND connector = ?2 AND thread_id = ?3"
            ))
            .and_then(|mut s| {
                s.query_row(params![brand, connector, thread], case_from_row)
                    .optional()
            })
            .or_storage(format_args!("finding the case of thread {thread:?}"))
        })
        .await
    }

    async fn case_list(&self, query: &CaseQuery) -> Result<Vec<Case>, StorageError> {
        let mut sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE brand = ?1");
        let mut args = vec![Value::Text(query.brand.clone())];
        if let Some(status) = query.status {
            args.push(Value::Text(status.as_str().to_string()));
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(assignee) = &query.assignee {
            args.push(Value::Text(assignee.clone()));
            sql.push_str(&format!(" AND assignee = ?{}", args.len()));
        }
        if query.unassigned {
            sql.push_str(" AND assignee IS NULL");
        }
        if let Some(team) = &query.team {
            args.push(Value::Text(team.clone()));
            sql.push_str(&format!(" AND team = ?{}", args.len()));
        }
        let limit = match query.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        args.push(Value::Integer(sql_limit(limit)));
        args.push(Value::Integer(sql_limit(query.offset)));
        // NULL waiting_since (nothing waits) sorts after every waiting case.
        sql.push_str(&format!(
            " ORDER BY priority DESC, waiting_since IS NULL, waiting_since, id
              LIMIT ?{} OFFSET ?{}",
            args.len() - 1,
            args.len()
        ));
        let brand = query.brand.clone();
        self.run(move |conn| {
            conn.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(params_from_iter(args), case_from_row)?
                        .collect()
                })
                .or_storage(format_args!("listing the cases of brand {brand:?}"))
        })
        .await
    }

    async fn write_case(
        &self,
        case: &Case,
        expected_version: i64,
        event: &NewEvent,
    ) -> Result<bool, StorageError> {
        let case = case.clone();
        let event = event.clone();
        let escalation = case
            .escalation
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StorageError::Query(format!("cannot serialise an escalation: {e}")))?;
        let detail = event.detail.to_string();
        let outbox = self.outbox.is_some();
        let written = self
            .run(move |conn| {
                let what = format_args!("updating case {} of brand {:?}", case.id, case.brand);
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .or_storage(what)?;
                let changed = tx
                .prepare_cached(
                    "UPDATE cases SET status = ?4, assignee = ?5, team = ?6, waiting_since = ?7,
                         first_response_at = ?8, closed_at = ?9, escalation = ?10, version = ?11
                     WHERE brand = ?1 AND id = ?2 AND version = ?3",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        case.brand,
                        case.id,
                        expected_version,
                        case.status,
                        case.assignee,
                        case.team,
                        case.waiting_since,
                        case.first_response_at,
                        case.closed_at,
                        escalation,
                        case.version,
                    ])
                })
                .or_storage(what)?;
                if changed == 0 {
                    return Ok(false);
                }
                tx.prepare_cached(
                    "INSERT INTO case_events (case_id, brand, at, actor, kind, channel, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        case.id,
                        case.brand,
                        event.at,
                        event.actor,
                        event.kind,
                        event.channel,
                        detail,
                    ])
                })
                .or_storage(what)?;
                // Notes are searchable with the messages (rowid: minus the
                // event id, so they never collide with a message's id).
                if event.kind == "noted"
                    && let Some(text) = event.detail.get("text").and_then(|t| t.as_str())
                {
                    let event_id = tx.last_insert_rowid();
                    tx.prepare_cached(
                        "INSERT INTO search_index (rowid, body, brand, case_id, source, at)
                     VALUES (?1, ?2, hex(?3), ?4, 'note', ?5)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![-event_id, text, case.brand, case.id, event.at])
                    })
                    .or_storage(what)?;
                }
                // --- NATS outbox (queue::outbox): only when it is on. ---
                if outbox {
                    let entry = OutboxEntry::case_written(&case, &event)?;
                    super::sqlite_outbox::insert(&tx, &entry, event.at)?;
                }
                tx.commit().or_storage(what)?;
                Ok(true)
            })
            .await?;
        if written {
            self.outbox_written();
        }
        Ok(written)
    }

    async fn case_messages(
        &self,
        brand: &str,
        case_id: i64,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let brand = brand.to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "SELECT brand, connector, channel, case_id, received_at,
                        edited, deleted, hidden, message_json
                 FROM messages WHERE case_id = ?2 AND brand = ?1
                 ORDER BY created_at, id",
            )
            .and_then(|mut s| {
                s.query_map(params![brand, case_id], stored_message)?
                    .collect()
            })
            .or_storage(format_args!("reading the messages of case {case_id}"))
        })
        .await
    }

    async fn case_events(&self, brand: &str, case_id: i64) -> Result<Vec<CaseEvent>, StorageError> {
        let brand = brand.to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "SELECT id, case_id, at, actor, kind, channel, detail FROM case_events
                 WHERE case_id = ?2 AND brand = ?1 ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map(params![brand, case_id], |row| {
                    Ok(CaseEvent {
                        id: row.get(0)?,
                        case_id: row.get(1)?,
                        at: row.get(2)?,
                        actor: row.get(3)?,
                        kind: row.get(4)?,
                        channel: row.get(5)?,
                        detail: json_column(row, 6)?,
                    })
                })?
                .collect()
            })
            .or_storage(format_args!("reading the audit trail of case {case_id}"))
        })
        .await
    }

    async fn begin_action(&self, action: &NewAction) -> Result<(ActionRecord, bool), StorageError> {
        let a = action.clone();
        let body = serde_json::to_string(&a.action)
            .map_err(|e| StorageError::Query(format!("cannot serialise an action: {e}")))?;
        self.run(move |conn| {
            let what = format_args!("recording an action on case {}", a.case_id);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_storage(what)?;
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO actions (brand, case_id, connector, target_external_id,
                         idempotency_key, action, state, attempts, requested_by, created_at,
                         updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 1, ?7, ?8, ?8)
                     ON CONFLICT (brand, idempotency_key) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        a.brand,
                        a.case_id,
                        a.connector,
                        a.target_external_id,
                        a.idempotency_key,
                        body,
                        a.requested_by,
                        a.at,
                    ])
                })
                .or_storage(what)?;
            let record = tx
                .prepare_cached(&format!(
                    "SELECT {ACTION_COLUMNS} FROM actions WHERE brand = ?1 AND idempotency_key = ?2"
                ))
                .and_then(|mut s| s.query_row(params![a.brand, a.idempotency_key], action_from_row))
                .or_storage(what)?;
            tx.commit().or_storage(what)?;
            Ok((record, inserted == 1))
        })
        .await
    }

    async fn retry_action(
        &self,
        brand: &str,
        action_id: i64,
        at: TimestampMs,
    ) -> Result<Option<(ActionRecord, bool)>, StorageError> {
        let brand = brand.to_string();
        self.run(move |conn| {
            let what = format_args!("retrying action {action_id}");
            let changed = conn
                .prepare_cached(
                    "UPDATE actions SET state = 'pending', attempts = attempts + 1,
                         error = NULL, updated_at = ?3
                     WHERE brand = ?1 AND id = ?2 AND state = 'failed'",
                )
                .and_then(|mut s| s.execute(params![brand, action_id, at]))
                .or_storage(what)?;
            let record = conn
                .prepare_cached(&format!(
                    "SELECT {ACTION_COLUMNS} FROM actions WHERE brand = ?1 AND id = ?2"
                ))
                .and_then(|mut s| {
                    s.query_row(params![brand, action_id], action_from_row)
                        .optional()
                })
                .or_storage(what)?;
            Ok(record.map(|r| (r, changed == 1)))
        })
        .await
    }

    async fn finish_action(
        &self,
        action_id: i64,
        outcome: &ActionOutcome,
        at: TimestampMs,
    ) -> Result<ActionRecord, StorageError> {
        let (state, result, error) = match outcome {
            ActionOutcome::Sent(result) => (
                "sent",
                Some(serde_json::to_string(result).map_err(|e| {
                    StorageError::Query(format!("cannot serialise an action result: {e}"))
                })?),
                None,
            ),
            ActionOutcome::Failed(error) => ("failed", None, Some(error.clone())),
        };
        self.run(move |conn| {
            conn.prepare_cached(
                "UPDATE actions SET state = ?2, result = ?3, error = ?4, updated_at = ?5
                 WHERE id = ?1 AND state = 'pending'",
            )
            .and_then(|mut s| s.execute(params![action_id, state, result, error, at]))
            .or_storage(format_args!("recording the outcome of action {action_id}"))?;
            read_action(conn, action_id)
        })
        .await
    }

    async fn case_actions(
        &self,
        brand: &str,
        case_id: i64,
    ) -> Result<Vec<ActionRecord>, StorageError> {
        let brand = brand.to_string();
        self.run(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ACTION_COLUMNS} FROM actions WHERE case_id = ?2 AND brand = ?1 ORDER BY id"
            ))
            .and_then(|mut s| {
                s.query_map(params![brand, case_id], action_from_row)?
                    .collect()
            })
            .or_storage(format_args!("reading the actions of case {case_id}"))
        })
        .await
    }

    async fn search(
        &self,
        brand: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StorageError> {
        let Some(fts) = fts_query(brand, query) else {
            return Ok(Vec::new());
        };
        let limit = match limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let brand = brand.to_string();
        self.run(move |conn| {
            // Every committed message is searchable (see sqlite_indexes).
            super::sqlite_indexes::catch_up(conn)?;
            // Best hit per case: every matching row best first, keeping each
            // case's first until `limit` cases are found. (FTS5's snippet()
            // cannot run under a window function, so the per-case pick is
            // done here rather than with row_number() in SQL.) The brand
            // term in the query already restricts the match to this brand;
            // the join re-checks it.
            let what = format_args!("searching the cases of brand {brand:?}");
            let mut statement = conn
                .prepare_cached(
                    "SELECT c.id, c.status, search_index.source,
                            snippet(search_index, 0, '[', ']', '…', 16), search_index.at
                     FROM search_index
                     JOIN cases AS c ON c.id = search_index.case_id AND c.brand = ?2
                     WHERE search_index MATCH ?1
                     ORDER BY rank",
                )
                .or_storage(what)?;
            let mut rows = statement.query(params![fts, brand]).or_storage(what)?;
            let mut seen = std::collections::HashSet::new();
            let mut hits = Vec::new();
            while hits.len() < limit
                && let Some(row) = rows.next().or_storage(what)?
            {
                let case_id: i64 = row.get(0).or_storage(what)?;
                if !seen.insert(case_id) {
                    continue;
                }
                hits.push(SearchHit {
                    case_id,
                    status: row.get::<_, CaseStatus>(1).or_storage(what)?,
                    source: row.get(2).or_storage(what)?,
                    snippet: row.get(3).or_storage(what)?,
                    at: row.get(4).or_storage(what)?,
                });
            }
            Ok(hits)
        })
        .await
    }

    async fn report_rows(
        &self,
        brand: &str,
        from: TimestampMs,
        to: TimestampMs,
        connector: Option<&str>,
    ) -> Result<ReportRows, StorageError> {
        let brand = brand.to_string();
        let connector = connector.map(str::to_string);
        self.run(move |conn| {
            let what = format_args!("reading the report rows of brand {brand:?}");
            let cases = conn
                .prepare_cached(
                    "SELECT connector, channel, first_message_at, first_response_at, closed_at
                     FROM cases
                     WHERE brand = ?1 AND first_message_at >= ?2 AND first_message_at < ?3
                       AND (?4 IS NULL OR connector = ?4)",
                )
                .and_then(|mut s| {
                    s.query_map(params![brand, from, to, connector], |row| {
                        Ok(ReportCase {
                            connector: row.get(0)?,
                            channel: row.get(1)?,
                            first_message_at: row.get(2)?,
                            first_response_at: row.get(3)?,
                            closed_at: row.get(4)?,
                        })
                    })?
                    .collect()
                })
                .or_storage(what)?;
            let messages = conn
                .prepare_cached(
                    "SELECT connector, created_at, text, json_extract(triage, '$.sentiment')
                     FROM messages
                     WHERE brand = ?1 AND created_at >= ?2 AND created_at < ?3
                       AND direction = 'inbound' AND ignored = 0
                       AND (?4 IS NULL OR connector = ?4)",
                )
                .and_then(|mut s| {
                    s.query_map(params![brand, from, to, connector], |row| {
                        Ok(ReportMessage {
                            connector: row.get(0)?,
                            created_at: row.get(1)?,
                            text: row.get(2)?,
                            sentiment: row.get(3)?,
                        })
                    })?
                    .collect()
                })
                .or_storage(what)?;
            Ok(ReportRows { cases, messages })
        })
        .await
    }

    async fn customer(
        &self,
        brand: &str,
        id: i64,
    ) -> Result<Option<CustomerProfile>, StorageError> {
        let brand = brand.to_string();
        self.run(move |conn| {
            let what = format_args!("reading customer {id} of brand {brand:?}");
            let head: Option<(String, Option<String>)> = conn
                .prepare_cached(
                    "SELECT display_name, email FROM customers WHERE brand = ?1 AND id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![brand, id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .or_storage(what)?;
            let Some((display_name, email)) = head else {
                return Ok(None);
            };
            let identities: Vec<LinkedIdentity> = conn
                .prepare_cached(
                    "SELECT connector, author_id, handle, linked_by, linked_at
                     FROM customer_identities WHERE brand = ?1 AND customer_id = ?2
                     ORDER BY linked_at, connector, author_id",
                )
                .and_then(|mut s| {
                    s.query_map(params![brand, id], |r| {
                        Ok(LinkedIdentity {
                            connector: r.get(0)?,
                            author_id: r.get(1)?,
                            handle: r.get(2)?,
                            linked_by: r.get(3)?,
                            linked_at: r.get(4)?,
                        })
                    })?
                    .collect()
                })
                .or_storage(what)?;
            let mut cases = Vec::new();
            for identity in &identities {
                cases.extend(cases_of_identity(
                    conn,
                    &brand,
                    &identity.connector,
                    &identity.author_id,
                )?);
            }
            cases.sort_by(|a: &Case, b: &Case| {
                b.last_message_at
                    .cmp(&a.last_message_at)
                    .then(b.id.cmp(&a.id))
            });
            cases.dedup_by_key(|c| c.id);
            let events = conn
                .prepare_cached(
                    "SELECT at, actor, kind, detail FROM customer_events
                     WHERE brand = ?1 AND customer_id = ?2 ORDER BY id",
                )
                .and_then(|mut s| {
                    s.query_map(params![brand, id], |r| {
                        Ok(CustomerEvent {
                            at: r.get(0)?,
                            actor: r.get(1)?,
                            kind: r.get(2)?,
                            detail: json_column(r, 3)?,
                        })
                    })?
                    .collect()
                })
                .or_storage(what)?;
            Ok(Some(CustomerProfile {
                id: Some(id),
                display_name,
                email,
                identities,
                cases,
                events,
            }))
        })
        .await
    }

    async fn customer_of(
        &self,
        brand: &str,
        identity: &Identity,
    ) -> Result<Option<i64>, StorageError> {
        let (brand, identity) = (brand.to_string(), identity.clone());
        self.run(move |conn| customer_of(conn, &brand, &identity))
            .await
    }

    async fn identity_cases(
        &self,
        brand: &str,
        identity: &Identity,
    ) -> Result<Vec<Case>, StorageError> {
        let (brand, identity) = (brand.to_string(), identity.clone());
        self.run(move |conn| {
            cases_of_identity(conn, &brand, &identity.connector, &identity.author_id)
        })
        .await
    }

    async fn identity_seen(
        &self,
        brand: &str,
        identity: &Identity,
    ) -> Result<Option<(String, String)>, StorageError> {
        let (brand, identity) = (brand.to_string(), identity.clone());
        self.run(move |conn| identity_seen(conn, &brand, &identity))
            .await
    }

    async fn link_identities(
        &self,
        brand: &str,
        identities: &[Identity],
        actor: &str,
        at: TimestampMs,
    ) -> Result<i64, StorageError> {
        let (brand, identities, actor) =
            (brand.to_string(), identities.to_vec(), actor.to_string());
        self.run(move |conn| {
            let what = format_args!("linking identities of brand {brand:?}");
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_storage(what)?;
            let mut existing = Vec::new();
            let mut seen = Vec::new();
            for identity in &identities {
                let Some(names) = identity_seen(&tx, &brand, identity)? else {
                    return Err(StorageError::Query(format!(
                        "brand {brand:?} never had a message of {} on {}",
                        identity.author_id, identity.connector
                    )));
                };
                if let Some(customer) = customer_of(&tx, &brand, identity)? {
                    existing.push(customer);
                }
                seen.push((identity, names));
            }
            existing.sort_unstable();
            existing.dedup();
            let survivor = match existing.first() {
                Some(&id) => id,
                None => {
                    tx.prepare_cached(
                        "INSERT INTO customers (brand, display_name, created_at) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![brand, seen[0].1.1, at]))
                    .or_storage(what)?;
                    tx.last_insert_rowid()
                }
            };
            let merged: Vec<i64> = existing.iter().copied().filter(|&c| c != survivor).collect();
            for other in &merged {
                tx.prepare_cached(
                    "UPDATE customer_identities SET customer_id = ?3
                     WHERE brand = ?1 AND customer_id = ?2",
                )
                .and_then(|mut s| s.execute(params![brand, other, survivor]))
                .or_storage(what)?;
                // The merged profile's address carries over if the survivor has none.
                tx.prepare_cached(
                    "UPDATE customers SET email = COALESCE(email,
                         (SELECT email FROM customers WHERE brand = ?1 AND id = ?2))
                     WHERE brand = ?1 AND id = ?3",
                )
                .and_then(|mut s| s.execute(params![brand, other, survivor]))
                .or_storage(what)?;
                customer_event(&tx, &brand, *other, at, &actor, "merged_into", &serde_json::json!({ "customer": survivor }))?;
            }
            for (identity, (handle, _)) in &seen {
                tx.prepare_cached(
                    "INSERT INTO customer_identities
                         (brand, connector, author_id, handle, customer_id, linked_by, linked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (brand, connector, author_id) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        brand,
                        identity.connector,
                        identity.author_id,
                        handle,
                        survivor,
                        actor,
                        at
                    ])
                })
                .or_storage(what)?;
            }
            customer_event(
                &tx,
                &brand,
                survivor,
                at,
                &actor,
                "linked",
                &serde_json::json!({ "identities": identities, "merged": merged }),
            )?;
            tx.commit().or_storage(what)?;
            Ok(survivor)
        })
        .await
    }

    async fn unlink_identity(
        &self,
        brand: &str,
        identity: &Identity,
        actor: &str,
        at: TimestampMs,
    ) -> Result<Option<i64>, StorageError> {
        let (brand, identity, actor) = (brand.to_string(), identity.clone(), actor.to_string());
        self.run(move |conn| {
            let what = format_args!("unlinking an identity of brand {brand:?}");
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_storage(what)?;
            let Some(old) = customer_of(&tx, &brand, &identity)? else {
                return Ok(None);
            };
            let others: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM customer_identities WHERE brand = ?1 AND customer_id = ?2",
                )
                .and_then(|mut s| s.query_row(params![brand, old], |r| r.get(0)))
                .or_storage(what)?;
            if others <= 1 {
                // Alone in its profile already: nothing to take it out of.
                return Ok(None);
            }
            let (_, name) = identity_seen(&tx, &brand, &identity)?.unwrap_or_default();
            tx.prepare_cached(
                "INSERT INTO customers (brand, display_name, created_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![brand, name, at]))
            .or_storage(what)?;
            let new = tx.last_insert_rowid();
            tx.prepare_cached(
                "UPDATE customer_identities SET customer_id = ?4, linked_by = ?5, linked_at = ?6
                 WHERE brand = ?1 AND connector = ?2 AND author_id = ?3",
            )
            .and_then(|mut s| {
                s.execute(params![brand, identity.connector, identity.author_id, new, actor, at])
            })
            .or_storage(what)?;
            let detail = serde_json::json!({ "identity": identity, "from": old, "to": new });
            customer_event(&tx, &brand, old, at, &actor, "unlinked", &detail)?;
            customer_event(&tx, &brand, new, at, &actor, "unlinked", &detail)?;
            tx.commit().or_storage(what)?;
            Ok(Some(new))
        })
        .await
    }

    async fn crisis_counts(
        &self,
        brand: &str,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Counts, StorageError> {
        let brand = brand.to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "SELECT COUNT(*),
                        COALESCE(SUM(json_extract(triage, '$.sentiment') < 0), 0)
                 FROM messages
                 WHERE brand = ?1 AND created_at >= ?2 AND created_at < ?3
                   AND direction = 'inbound' AND ignored = 0",
            )
            .and_then(|mut s| {
                s.query_row(params![brand, from, to], |r| {
                    Ok(Counts {
                        messages: r.get(0)?,
                        negative: r.get(1)?,
                    })
                })
            })
            .or_storage(format_args!("counting the messages of brand {brand:?}"))
        })
        .await
    }

    async fn crisis_messages(
        &self,
        brand: &str,
        from: TimestampMs,
        to: TimestampMs,
        negative_first: bool,
        limit: usize,
    ) -> Result<Vec<AlertMessage>, StorageError> {
        let brand = brand.to_string();
        let order = if negative_first {
            "COALESCE(json_extract(triage, '$.sentiment'), 0), created_at DESC"
        } else {
            "created_at DESC, id DESC"
        };
        self.run(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT case_id, connector, external_id, author_handle, text, created_at,
                        json_extract(triage, '$.sentiment')
                 FROM messages
                 WHERE brand = ?1 AND created_at >= ?2 AND created_at < ?3
                   AND direction = 'inbound' AND ignored = 0
                 ORDER BY {order} LIMIT ?4"
            ))
            .and_then(|mut s| {
                s.query_map(params![brand, from, to, sql_limit(limit)], |r| {
                    Ok(AlertMessage {
                        case_id: r.get(0)?,
                        connector: r.get(1)?,
                        external_id: r.get(2)?,
                        author: r.get(3)?,
                        text: r.get(4)?,
                        created_at: r.get(5)?,
                        sentiment: r.get(6)?,
                    })
                })?
                .collect()
            })
            .or_storage(format_args!(
                "reading the messages behind an alert of {brand:?}"
            ))
        })
        .await
    }

    async fn last_alert_end(
        &self,
        brand: &str,
        kind: &str,
    ) -> Result<Option<TimestampMs>, StorageError> {
        let (brand, kind) = (brand.to_string(), kind.to_string());
        self.run(move |conn| {
            conn.prepare_cached("SELECT MAX(window_to) FROM alerts WHERE brand = ?1 AND kind = ?2")
                .and_then(|mut s| s.query_row(params![brand, kind], |r| r.get(0)))
                .or_storage(format_args!("reading the alerts of {brand:?}"))
        })
        .await
    }

    async fn record_alert(&self, alert: &Alert) -> Result<Alert, StorageError> {
        let mut alert = alert.clone();
        let messages = serde_json::to_string(&alert.messages)
            .map_err(|e| StorageError::Query(format!("cannot serialise an alert: {e}")))?;
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO alerts (brand, kind, raised_at, window_from, window_to, observed,
                                     expected, team, messages)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    alert.brand,
                    alert.kind,
                    alert.raised_at,
                    alert.window_from,
                    alert.window_to,
                    alert.observed,
                    alert.expected,
                    alert.team,
                    messages
                ])
            })
            .or_storage(format_args!("recording an alert of {:?}", alert.brand))?;
            alert.id = conn.last_insert_rowid();
            Ok(alert)
        })
        .await
    }

    async fn alerts(&self, brand: &str, since: TimestampMs) -> Result<Vec<Alert>, StorageError> {
        let brand = brand.to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "SELECT id, brand, kind, raised_at, window_from, window_to, observed, expected,
                        team, messages
                 FROM alerts WHERE brand = ?1 AND raised_at >= ?2 ORDER BY id DESC",
            )
            .and_then(|mut s| {
                s.query_map(params![brand, since], |r| {
                    Ok(Alert {
                        id: r.get(0)?,
                        brand: r.get(1)?,
                        kind: r.get(2)?,
                        raised_at: r.get(3)?,
                        window_from: r.get(4)?,
                        window_to: r.get(5)?,
                        observed: r.get(6)?,
                        expected: r.get(7)?,
                        team: r.get(8)?,
                        messages: json_column(r, 9)?,
                    })
                })?
                .collect()
            })
            .or_storage(format_args!("reading the alerts of {brand:?}"))
        })
        .await
    }

    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, StorageError> {
        let t = token.clone();
        self.run(move |conn| {
            let what = format_args!("creating a token for {:?}", t.name);
            conn.prepare_cached(
                "INSERT INTO api_tokens (name, brand, role, hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![t.name, t.brand, t.role.as_str(), t.hash, t.at]))
            .or_storage(what)?;
            let id = conn.last_insert_rowid();
            conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row(params![id], token_from_row))
            .or_storage(what)
        })
        .await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StorageError> {
        let hash = hash.to_string();
        self.run(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1"
            ))
            .and_then(|mut s| s.query_row(params![hash], token_from_row).optional())
            .or_storage("looking up an API token")
        })
        .await
    }

    async fn tokens(&self, brand: Option<&str>) -> Result<Vec<TokenRecord>, StorageError> {
        let brand = brand.map(str::to_string);
        self.run(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens
                 WHERE ?1 IS NULL OR brand = ?1 ORDER BY id DESC"
            ))
            .and_then(|mut s| s.query_map(params![brand], token_from_row)?.collect())
            .or_storage("listing API tokens")
        })
        .await
    }

    async fn revoke_token(&self, id: i64, at: TimestampMs) -> Result<bool, StorageError> {
        self.run(move |conn| {
            conn.prepare_cached(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![id, at]))
            .map(|n| n == 1)
            .or_storage(format_args!("revoking token {id}"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::sqlite::now_ms;
    use super::*;

    #[test]
    fn search_input_is_quoted_never_syntax() {
        let q = fts_query("acme", "refund NEAR(\"x\") e-mail fact*").unwrap();
        assert_eq!(
            q,
            "brand : \"61636D65\" AND body : \"refund\" AND body : \"NEAR\" AND body : \"x\" \
             AND body : \"e\" AND body : \"mail\" AND body : \"fact\"*"
        );
        assert_eq!(fts_query("acme", "  \"* -- "), None);
    }

    #[test]
    fn now_is_milliseconds() {
        assert!(now_ms() > 1_600_000_000_000);
    }
}
