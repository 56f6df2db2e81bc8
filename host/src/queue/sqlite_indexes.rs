//! The SQLite queue's deferred indexes: the full-text index of messages
//! (`search_index`) and the author index (`message_authors`), brought up to
//! date in bulk instead of inside every commit.
//!
//! **Why.** Both are keyed by what a message says or who wrote it, not by
//! when it came, so every commit of a page dirtied most of their leaf pages
//! and wrote them to the WAL again: together they cost the ingest path
//! about 40 % (docs/service.md, "Ingest regression"). Written in bulk, in
//! key order, each leaf page is written once per catch-up instead of once
//! per commit.
//!
//! **How.** `index_marks` holds, per index, the id of the last message it
//! covers (message ids only grow). [`catch_up`] indexes every message
//! above the marks and moves them, in one savepoint, so the rows and the
//! marks never disagree. It runs after a commit once [`CATCH_UP_EVERY`]
//! messages wait, and **before every read that uses the indexes** (search,
//! customer profiles), which therefore always see every committed message:
//! deferring costs readers at most one catch-up, never a stale answer.
//!
//! Edits need nothing special: an edit of a message already indexed
//! updates its row (the commit does that), and one not indexed yet is
//! indexed with its edited text. Notes are indexed when written (rare, and
//! keyed by negative ids, outside the marks).

use rusqlite::{Connection, params};

use super::StorageError;
use super::sqlite::OrStorage;

/// Messages waiting before a commit brings the indexes up to date.
#[cfg(not(test))]
pub const CATCH_UP_EVERY: i64 = 16_384;
/// Small in unit tests, so that they reach it.
#[cfg(test)]
pub const CATCH_UP_EVERY: i64 = 64;

/// Messages indexed per statement, so a large backlog (a queue migrated
/// from an older schema) does not build one huge sort in memory.
const CHUNK: i64 = 65_536;

/// The migration that defers the indexes (appended to the SQLite
/// migrations): the author index becomes a table of its own, filled from
/// the messages there are; both marks start at the newest message, which
/// the existing full-text rows already cover.
pub(super) const MIGRATION: &str = r#"
    CREATE TABLE index_marks (
        name TEXT    PRIMARY KEY,
        upto INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE message_authors (
        brand      TEXT    NOT NULL,
        connector  TEXT    NOT NULL,
        author_id  TEXT    NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (brand, connector, author_id, message_id)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO message_authors (brand, connector, author_id, message_id)
        SELECT brand, connector, author_id, id FROM messages
        WHERE author_id IS NOT NULL
        ORDER BY brand, connector, author_id, id;
    DROP INDEX messages_by_author;
    INSERT INTO index_marks (name, upto)
        SELECT 'search', COALESCE(max(id), 0) FROM messages
        UNION ALL
        SELECT 'authors', COALESCE(max(id), 0) FROM messages;
    "#;

/// Messages not yet in the indexes (the larger of the two backlogs).
pub fn backlog(conn: &Connection) -> Result<i64, StorageError> {
    conn.prepare_cached(
        "SELECT COALESCE((SELECT max(id) FROM messages), 0)
                - (SELECT min(upto) FROM index_marks)",
    )
    .and_then(|mut s| s.query_row([], |r| r.get(0)))
    .or_storage("reading how far the search and author indexes are behind")
}

/// Indexes every message above the marks and moves them, atomically (a
/// savepoint: inside the caller's transaction if there is one).
pub fn catch_up(conn: &Connection) -> Result<(), StorageError> {
    let what = "bringing the search and author indexes up to date";
    conn.execute_batch("SAVEPOINT catch_up").or_storage(what)?;
    let done = index(conn);
    let end = match &done {
        Ok(()) => "RELEASE catch_up",
        Err(_) => "ROLLBACK TO catch_up; RELEASE catch_up",
    };
    conn.execute_batch(end).or_storage(what)?;
    done
}

fn index(conn: &Connection) -> Result<(), StorageError> {
    let what = "bringing the search and author indexes up to date";
    let newest: i64 = conn
        .prepare_cached("SELECT COALESCE(max(id), 0) FROM messages")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .or_storage(what)?;
    let mark = |name: &str| -> Result<i64, StorageError> {
        conn.prepare_cached("SELECT upto FROM index_marks WHERE name = ?1")
            .and_then(|mut s| s.query_row(params![name], |r| r.get(0)))
            .or_storage(what)
    };
    let mut search = mark("search")?;
    while search < newest {
        let upto = newest.min(search.saturating_add(CHUNK));
        conn.prepare_cached(
            "INSERT INTO search_index (rowid, body, brand, case_id, source, at)
             SELECT id, text, hex(brand), case_id, 'message', created_at
             FROM messages WHERE id > ?1 AND id <= ?2 AND case_id IS NOT NULL",
        )
        .and_then(|mut s| s.execute(params![search, upto]))
        .or_storage("indexing messages for search")?;
        search = upto;
    }
    let mut authors = mark("authors")?;
    while authors < newest {
        let upto = newest.min(authors.saturating_add(CHUNK));
        // In key order: each leaf page of the index is written once.
        conn.prepare_cached(
            "INSERT OR IGNORE INTO message_authors (brand, connector, author_id, message_id)
             SELECT brand, connector, author_id, id FROM messages
             WHERE id > ?1 AND id <= ?2 AND author_id IS NOT NULL
             ORDER BY brand, connector, author_id, id",
        )
        .and_then(|mut s| s.execute(params![authors, upto]))
        .or_storage("indexing messages by author")?;
        authors = upto;
    }
    conn.prepare_cached("UPDATE index_marks SET upto = ?1 WHERE upto < ?1")
        .and_then(|mut s| s.execute(params![newest]))
        .or_storage(what)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::ConnectorId;
    use crate::care::Identity;
    use crate::model::Message;
    use crate::queue::sqlite::{SqliteStorage, lock};
    use crate::queue::{IngestBatch, Storage};

    fn owner() -> ConnectorId {
        ConnectorId {
            brand: "acme".to_string(),
            connector: "x".to_string(),
        }
    }

    /// Message `n`: threads of two, three authors taking turns.
    fn message(n: usize) -> Message {
        let mut m = crate::queue::sqlite::tests::message(&format!("m{n}"));
        m.thread_id = format!("t{}", n / 2);
        m.author.id = format!("u{}", n % 3);
        m.author.handle = format!("klant{}", n % 3);
        m.author.display_name = format!("Klant {}", n % 3);
        m.text = format!("pakket {n} is zoek");
        m.created_at += n as i64;
        m
    }

    async fn commit(storage: &SqliteStorage, messages: &[Message]) {
        let batch = IngestBatch {
            channel: "twitter",
            messages,
            triage: &[],
            updates: &[],
            next_cursor: None,
        };
        storage.commit(&owner(), batch).await.unwrap();
    }

    fn rows(storage: &SqliteStorage, table: &str) -> i64 {
        lock(&storage.conn)
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    fn behind(storage: &SqliteStorage) -> i64 {
        backlog(&lock(&storage.conn)).unwrap()
    }

    #[tokio::test]
    async fn commits_leave_the_indexes_behind_and_readers_catch_them_up() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("queue.db")).unwrap();
        let first: Vec<Message> = (0..10).map(message).collect();
        commit(&storage, &first).await;
        assert_eq!(behind(&storage), 10, "ten messages wait");
        assert_eq!(rows(&storage, "search_index"), 0);
        assert_eq!(rows(&storage, "message_authors"), 0);

        // A search sees every committed message all the same.
        let care = storage.care().unwrap();
        let hits = care.search("acme", "pakket", 100).await.unwrap();
        assert_eq!(hits.len(), 5, "one hit per case (threads of two)");
        assert_eq!(behind(&storage), 0);
        assert_eq!(rows(&storage, "search_index"), 10);
        assert_eq!(rows(&storage, "message_authors"), 10);

        // So does a customer profile's lookup, after more came in.
        let mut later = message(10);
        later.author.handle = "klant1_nieuw".to_string();
        later.author.display_name = "Klant Eén".to_string();
        later.author.id = "u1".to_string();
        commit(&storage, &[later]).await;
        let identity = Identity {
            connector: "x".to_string(),
            author_id: "u1".to_string(),
        };
        let seen = care.identity_seen("acme", &identity).await.unwrap();
        assert_eq!(
            seen,
            Some(("klant1_nieuw".to_string(), "Klant Eén".to_string())),
            "the newest message of the identity, not yet indexed when asked"
        );
        assert_eq!(behind(&storage), 0);
    }

    #[tokio::test]
    async fn a_commit_catches_up_once_enough_messages_wait() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("queue.db")).unwrap();
        let all: Vec<Message> = (0..CATCH_UP_EVERY as usize + 10).map(message).collect();
        let (before, after) = all.split_at(CATCH_UP_EVERY as usize - 1);
        commit(&storage, before).await;
        assert_eq!(behind(&storage), CATCH_UP_EVERY - 1);
        commit(&storage, &after[..1]).await;
        assert_eq!(
            behind(&storage),
            0,
            "the commit that reached the mark caught up"
        );
        commit(&storage, &after[1..]).await;
        assert_eq!(behind(&storage), 10);
        // Edits of messages indexed or not yet indexed both end up searchable.
        let mut edited_old = message(0);
        edited_old.text = "bestelling aangekomen".to_string();
        let mut edited_new = message(CATCH_UP_EVERY as usize + 5);
        edited_new.text = "bestelling kapot".to_string();
        let updates = [
            crate::model::MessageUpdate::Edited(Box::new(edited_old)),
            crate::model::MessageUpdate::Edited(Box::new(edited_new)),
        ];
        let batch = IngestBatch {
            channel: "twitter",
            messages: &[],
            triage: &[],
            updates: &updates,
            next_cursor: None,
        };
        storage.commit(&owner(), batch).await.unwrap();
        let care = storage.care().unwrap();
        let hits = care.search("acme", "bestelling", 100).await.unwrap();
        assert_eq!(hits.len(), 2, "{hits:#?}");
        let hits = care.search("acme", "pakket", 1_000).await.unwrap();
        assert_eq!(
            hits.len(),
            all.len() / 2,
            "every case still found by its other message"
        );
    }
}
