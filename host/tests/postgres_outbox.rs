//! The outbox in PostgreSQL: the insert other writers call (inside their
//! transaction), the publisher's reads and deletes, one publisher per
//! database, and no rows at all without the outbox. Against the server of
//! `WEBCARE_TEST_POSTGRES_URL` (skipped when unreachable, except under CI).

#[allow(dead_code)]
#[path = "../../tests/src/postgres_db.rs"]
mod postgres_db;

use std::time::Duration;

use postgres_db::TestDatabase;
use tokio_postgres::NoTls;
use webcare::capabilities::ConnectorId;
use webcare::queue::outbox::{CaseChange, CaseRef, OutboxEntry};
use webcare::queue::postgres::{PostgresOptions, PostgresStorage};
use webcare::queue::{CaseStatus, IngestBatch, Storage, postgres_outbox};

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn try_publisher_lock(client: &tokio_postgres::Client) -> bool {
    client
        .query_one("SELECT pg_try_advisory_lock($1, 2)", &[&0x7765_6263_i32])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn events_written_in_a_transaction_are_read_and_removed_by_one_publisher() {
    let Some(db) = TestDatabase::create("postgres outbox").await else {
        return;
    };
    let storage = PostgresStorage::connect(
        &db.url,
        PostgresOptions {
            outbox: true,
            ..PostgresOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(storage.writes_outbox());
    let outbox = storage.outbox().unwrap();
    let entry = OutboxEntry::case(
        CaseRef {
            brand: "acme",
            connector: "x",
            channel: "twitter",
            case_id: 7,
        },
        CaseChange {
            change: "claimed",
            status: CaseStatus::Open,
            version: 3,
            assignee: Some("ann"),
            team: None,
            actor: "ann",
            at: 5,
        },
    )
    .unwrap();

    // A writer on a pool like the queue's own (the case store's).
    let manager = deadpool_postgres::Manager::new(db.url.parse().unwrap(), NoTls);
    let pool = deadpool_postgres::Pool::builder(manager).build().unwrap();
    let mut writer = pool.get().await.unwrap();
    let tx = writer.transaction().await.unwrap();
    postgres_outbox::insert(&tx, &entry, 5).await.unwrap();
    assert!(
        outbox.head(10).await.unwrap().is_empty(),
        "not before the commit"
    );
    tx.commit().await.unwrap();
    storage.outbox_written();
    let client = connect(&db.url).await;
    let rows = outbox.head(10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry, entry);
    assert_eq!(rows[0].created_at, 5);
    assert_eq!(outbox.backlog().await.unwrap(), 1);

    // One publisher per database: its session holds the lock.
    let lease = outbox.lead().await.unwrap();
    assert!(lease.is_held());
    assert!(!try_publisher_lock(&client).await, "taken by the lease");
    drop(lease);
    let mut released = false;
    for _ in 0..500 {
        if try_publisher_lock(&client).await {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(released, "the lock goes with the lease's session");

    outbox.remove(&[rows[0].seq]).await.unwrap();
    assert_eq!(outbox.backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn without_the_outbox_a_commit_writes_no_event() {
    let Some(db) = TestDatabase::create("postgres no outbox").await else {
        return;
    };
    let storage = PostgresStorage::connect(&db.url, PostgresOptions::default())
        .await
        .unwrap();
    assert!(!storage.writes_outbox() && storage.outbox().is_none());
    let message: webcare::model::Message = serde_json::from_value(serde_json::json!({
        "external_id": "1", "thread_id": "t1", "in_reply_to": null, "kind": "mention",
        "visibility": "public", "direction": "inbound", "addressed_to_brand": true,
        "author": {"id": "u1", "handle": "klant", "display_name": "Klant", "followers": null,
                   "verified": false, "profile_url": null, "email": null},
        "text": "hallo", "html": null, "subject": null, "language": null,
        "created_at": 1, "permalink": null, "attachments": [], "metrics": {}, "properties": []
    }))
    .unwrap();
    storage
        .commit(
            &ConnectorId {
                brand: "acme".into(),
                connector: "x".into(),
            },
            IngestBatch {
                channel: "twitter",
                messages: &[message],
                triage: &[],
                updates: &[],
                next_cursor: None,
            },
        )
        .await
        .unwrap();
    let client = connect(&db.url).await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}
