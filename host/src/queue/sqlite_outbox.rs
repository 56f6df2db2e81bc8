//! The outbox in the SQLite queue (see [`super::outbox`]): the rows a
//! commit or a case change writes in its own transaction, and the
//! publisher's side (read the head, delete what JetStream acknowledged).
//!
//! One host owns an SQLite file, so the publisher's lease is trivial, and
//! `seq` (AUTOINCREMENT, assigned under SQLite's single write lock) is
//! commit order: deleting a published range of seqs can never touch a row
//! committed later.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::outbox::{
    CaseChange, CaseRef, MessageRef, Outbox, OutboxEntry, OutboxRow, PublisherLease, SoleHost,
};
use super::sqlite::{CaseState, OrStorage, SqliteStorage, lock};
use super::{IngestBatch, StorageError};
use crate::capabilities::ConnectorId;
use crate::model::{Message, MessageUpdate, TimestampMs};

/// Appends one event to the outbox, inside the caller's transaction. This
/// is the SQLite outbox insert every writer of events calls (the commit
/// path below, `write_case`).
pub fn insert(conn: &Connection, entry: &OutboxEntry, at: TimestampMs) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO outbox (subject, msg_id, case_id, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            entry.subject,
            entry.msg_id,
            entry.case_id,
            entry.payload,
            at
        ])
    })
    .or_storage(format_args!("writing outbox event {:?}", entry.msg_id))?;
    Ok(())
}

/// What a commit needs to write its events: the batch, owned (a commit
/// runs on the blocking pool). Only built when the outbox is on.
pub(super) struct CommitEvents {
    brand: String,
    connector: String,
    channel: String,
    messages: Vec<Message>,
    updates: Vec<MessageUpdate>,
}

impl CommitEvents {
    pub(super) fn of(owner: &ConnectorId, batch: IngestBatch<'_>) -> Self {
        CommitEvents {
            brand: owner.brand.clone(),
            connector: owner.connector.clone(),
            channel: batch.channel.to_string(),
            messages: batch.messages.to_vec(),
            updates: batch.updates.to_vec(),
        }
    }

    fn at(&self, case_id: Option<i64>) -> MessageRef<'_> {
        MessageRef {
            brand: &self.brand,
            connector: &self.connector,
            channel: &self.channel,
            case_id,
        }
    }

    /// Message `index` of the batch was stored (in `case`, as the message
    /// left it, which it `opened` or `reopened`): the case event first,
    /// then the message.
    pub(super) fn message_stored(
        &self,
        tx: &Connection,
        index: usize,
        case: Option<&CaseState>,
        opened: bool,
        reopened: bool,
        at: TimestampMs,
    ) -> Result<(), StorageError> {
        let Some(message) = self.messages.get(index) else {
            return Ok(());
        };
        if let (Some(case), true) = (case, opened || reopened) {
            let at_case = CaseRef {
                brand: &self.brand,
                connector: &self.connector,
                channel: &self.channel,
                case_id: case.id,
            };
            let change = CaseChange {
                change: if opened { "opened" } else { "reopened" },
                status: case.status,
                version: case.version,
                assignee: case.assignee.as_deref(),
                team: case.team.as_deref(),
                actor: &message.author.handle,
                at,
            };
            insert(tx, &OutboxEntry::case(at_case, change)?, at)?;
        }
        insert(
            tx,
            &OutboxEntry::message(self.at(case.map(|c| c.id)), message)?,
            at,
        )
    }

    /// Update `index` of the batch changed a stored message: edits and
    /// deletions are published (hiding is a moderation detail of the
    /// channel, not an event).
    pub(super) fn update_applied(
        &self,
        tx: &Connection,
        index: usize,
        at: TimestampMs,
    ) -> Result<(), StorageError> {
        let external_id = match self.updates.get(index) {
            Some(MessageUpdate::Edited(m)) => &m.external_id,
            Some(MessageUpdate::Deleted(r)) => &r.external_id,
            _ => return Ok(()),
        };
        let case_id: Option<i64> = tx
            .prepare_cached(
                "SELECT case_id FROM messages
                 WHERE brand = ?1 AND connector = ?2 AND external_id = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![self.brand, self.connector, external_id], |row| {
                    row.get(0)
                })
                .optional()
            })
            .or_storage(format_args!(
                "reading message {external_id:?} for its outbox event"
            ))?
            .flatten();
        let entry = match &self.updates[index] {
            MessageUpdate::Edited(m) => OutboxEntry::edited(self.at(case_id), m)?,
            _ => OutboxEntry::deleted(self.at(case_id), external_id)?,
        };
        insert(tx, &entry, at)
    }
}

/// The publisher's view of the SQLite outbox: shares the queue's one
/// connection (SQLite has one writer anyway).
#[derive(Debug)]
struct SqliteOutbox {
    conn: Arc<Mutex<Connection>>,
    written: Arc<tokio::sync::Notify>,
}

impl SqliteStorage {
    /// The outbox, when the queue was opened with it on.
    pub(super) fn sqlite_outbox(&self) -> Option<Arc<dyn Outbox>> {
        let written = self.outbox.clone()?;
        Some(Arc::new(SqliteOutbox {
            conn: Arc::clone(&self.conn),
            written,
        }))
    }

    /// Wakes the publisher after a write outside [`super::Storage::commit`].
    pub(super) fn outbox_written(&self) {
        if let Some(written) = &self.outbox {
            written.notify_one();
        }
    }
}

impl SqliteOutbox {
    async fn run<T, F>(&self, op: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || op(&mut lock(&conn)))
            .await
            .map_err(|e| StorageError::Unavailable(format!("storage task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl Outbox for SqliteOutbox {
    async fn head(&self, limit: usize) -> Result<Vec<OutboxRow>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT seq, subject, msg_id, case_id, payload, created_at
                     FROM outbox ORDER BY seq LIMIT ?1",
                )
                .or_storage("reading the outbox")?;
            let rows = statement
                .query_map(params![limit], |row| {
                    Ok(OutboxRow {
                        seq: row.get(0)?,
                        entry: OutboxEntry {
                            subject: row.get(1)?,
                            msg_id: row.get(2)?,
                            case_id: row.get(3)?,
                            payload: row.get(4)?,
                        },
                        created_at: row.get(5)?,
                    })
                })
                .and_then(Iterator::collect)
                .or_storage("reading the outbox")?;
            Ok(rows)
        })
        .await
    }

    async fn remove(&self, seqs: &[i64]) -> Result<(), StorageError> {
        let (Some(&first), Some(&last)) = (seqs.iter().min(), seqs.iter().max()) else {
            return Ok(());
        };
        // Seqs are commit order here (see the module docs): the range holds
        // exactly the published rows.
        self.run(move |conn| {
            conn.prepare_cached("DELETE FROM outbox WHERE seq BETWEEN ?1 AND ?2")
                .and_then(|mut s| s.execute(params![first, last]))
                .or_storage("deleting published outbox rows")?;
            Ok(())
        })
        .await
    }

    async fn backlog(&self) -> Result<u64, StorageError> {
        self.run(|conn| {
            let count: i64 = conn
                .prepare_cached("SELECT count(*) FROM outbox")
                .and_then(|mut s| s.query_row([], |row| row.get(0)))
                .or_storage("counting the outbox")?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    async fn lead(&self) -> Result<Box<dyn PublisherLease>, StorageError> {
        Ok(Box::new(SoleHost))
    }

    fn written(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::care::{CareStore, NewEvent};
    use crate::model::{
        Attachment, Author, Direction, Engagement, MessageKind, Removal, Visibility,
    };
    use crate::queue::sqlite::SqliteOptions;
    use crate::queue::{CaseStatus, Storage};

    fn owner() -> ConnectorId {
        ConnectorId {
            brand: "acme".to_string(),
            connector: "x".to_string(),
        }
    }

    fn message(external_id: &str, direction: Direction) -> Message {
        Message {
            external_id: external_id.to_string(),
            thread_id: "thread.1".to_string(),
            in_reply_to: None,
            kind: MessageKind::DirectMessage,
            visibility: Visibility::Private,
            direction,
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
            text: "Mijn pakket is zoek".to_string(),
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

    fn storage(outbox: bool) -> (tempfile::TempDir, SqliteStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open_with(
            &dir.path().join("q.db"),
            SqliteOptions {
                outbox,
                ..SqliteOptions::default()
            },
        )
        .unwrap();
        (dir, storage)
    }

    async fn commit(storage: &SqliteStorage, messages: &[Message], updates: &[MessageUpdate]) {
        storage
            .commit(
                &owner(),
                IngestBatch {
                    channel: "x twitter",
                    messages,
                    triage: &[],
                    updates,
                    next_cursor: None,
                },
            )
            .await
            .unwrap();
    }

    fn rows_in(storage: &SqliteStorage) -> i64 {
        lock(&storage.conn)
            .query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn without_the_outbox_no_row_is_written() {
        let (_dir, storage) = storage(false);
        commit(&storage, &[message("1", Direction::Inbound)], &[]).await;
        assert_eq!(rows_in(&storage), 0);
        assert!(storage.outbox().is_none());
    }

    #[tokio::test]
    async fn commits_and_case_changes_write_their_events_in_order() {
        let (_dir, storage) = storage(true);
        let outbox = storage.outbox().unwrap();
        commit(
            &storage,
            &[
                message("1", Direction::Inbound),
                message("2", Direction::Outbound),
            ],
            &[],
        )
        .await;
        // A duplicate is no event.
        commit(&storage, &[message("1", Direction::Inbound)], &[]).await;
        let mut edit = message("1", Direction::Inbound);
        edit.text = "Gevonden!".to_string();
        let removal = Removal {
            external_id: "2".to_string(),
            thread_id: None,
            at: None,
            by: None,
        };
        let updates = [
            MessageUpdate::Edited(Box::new(edit)),
            MessageUpdate::Deleted(removal),
        ];
        commit(&storage, &[], &updates).await;
        let case = storage
            .case_by_thread("acme", "x", "thread.1")
            .await
            .unwrap()
            .unwrap();
        let mut closed = case.clone();
        closed.status = CaseStatus::Closed;
        closed.version = case.version + 1;
        let event = NewEvent {
            at: 7,
            actor: "ann".to_string(),
            kind: "closed",
            channel: None,
            detail: serde_json::json!({}),
        };
        assert!(
            storage
                .write_case(&closed, case.version, &event)
                .await
                .unwrap()
        );

        let rows = outbox.head(100).await.unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.entry.msg_id.as_str()).collect();
        let edit_id = ids[3];
        assert_eq!(
            ids,
            [
                format!("case:{}:v0", case.id).as_str(),
                "msg:acme:x:1",
                "msg:acme:x:2",
                edit_id,
                "del:acme:x:2",
                format!("case:{}:v{}", case.id, closed.version).as_str(),
            ]
        );
        assert!(edit_id.starts_with("upd:acme:x:1:"), "{edit_id}");
        let subjects: Vec<&str> = rows.iter().map(|r| r.entry.subject.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "acme.x_twitter.case",
                "acme.x_twitter.message",
                "acme.x_twitter.message",
                "acme.x_twitter.edited",
                "acme.x_twitter.deleted",
                "acme.x_twitter.case",
            ]
        );
        assert!(rows.iter().all(|r| r.entry.case_id == Some(case.id)));
        assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
        let edited: serde_json::Value = serde_json::from_str(&rows[3].entry.payload).unwrap();
        assert_eq!(edited["message"]["text"], "Gevonden!");
        let last: serde_json::Value = serde_json::from_str(&rows[5].entry.payload).unwrap();
        assert_eq!(
            (&last["change"], &last["status"]),
            (&"closed".into(), &"closed".into())
        );

        assert_eq!(outbox.backlog().await.unwrap(), 6);
        let seqs: Vec<i64> = rows[..2].iter().map(|r| r.seq).collect();
        outbox.remove(&seqs).await.unwrap();
        assert_eq!(outbox.backlog().await.unwrap(), 4);
        assert_eq!(outbox.head(1).await.unwrap()[0].seq, rows[2].seq);
    }
}
