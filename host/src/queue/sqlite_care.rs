//! The case workflow's store on SQLite ([`CareStore`] for
//! [`SqliteStorage`]).
//!
//! One connection serialises every write, so a compare-and-swap is a plain
//! `UPDATE … WHERE version = ?` inside a transaction with its event.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};

use super::sqlite::{JsonMessage, OrStorage, SqliteStorage, sql_limit};
use super::{CaseStatus, StorageError, StoredMessage};
use crate::care::store::{ActionOutcome, CareStore, NewToken, TokenRecord, action_state};
use crate::care::{
    ActionRecord, Case, CaseEvent, CaseQuery, Escalation, NewAction, NewEvent, Role, SearchHit,
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

fn stored_message(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
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

#[async_trait::async_trait]
impl CareStore for SqliteStorage {
    async fn case(&self, brand: &str, id: i64) -> Result<Option<Case>, StorageError> {
        let brand = brand.to_string();
        self.run(move |conn| read_case(conn, &brand, id)).await
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
        self.run(move |conn| {
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
            tx.commit().or_storage(what)?;
            Ok(true)
        })
        .await
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
