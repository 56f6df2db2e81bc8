//! The transactional outbox: events for the NATS JetStream sink
//! ([`crate::stream`]), written in the same transaction as the change they
//! report.
//!
//! Publishing straight from a commit would lose the event when NATS is down
//! at that moment (or when the host dies between the commit and the
//! publish). Writing the event into the queue's own database instead makes
//! it exactly as durable as the change; the publisher then reads the
//! outbox in `seq` order and deletes each row only once JetStream acknowledged
//! it, so every event is published at least once. Each event carries a
//! deterministic message id (`Nats-Msg-Id`), so a re-publish after a lost
//! acknowledgement is dropped by JetStream's de-duplication.
//!
//! A storage opened without the outbox (no `[stream]` in the config) writes
//! no rows at all: the default ingest path pays nothing for the sink.
//!
//! Subjects are stored without the configured prefix
//! (`<brand>.<channel>.<event>`); the publisher prepends it, so a changed
//! prefix applies to rows still waiting.

use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{CaseStatus, StorageError};
use crate::model::{Message, TimestampMs};

/// One event, as a backend writes it into its `outbox` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// `<brand>.<channel>.<event>`, each token sanitised ([`subject_token`]).
    pub subject: String,
    /// The `Nats-Msg-Id`: the same for every publication of one event.
    pub msg_id: String,
    /// The case the event belongs to, when there is one (ordering is per
    /// case; kept as a column for operators looking at the backlog).
    pub case_id: Option<i64>,
    /// The event as JSON (see `docs/stream.md`).
    pub payload: String,
}

/// An outbox row waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub entry: OutboxEntry,
    pub created_at: TimestampMs,
}

/// Where the publisher reads pending events from; offered by a storage
/// opened with the outbox on ([`super::Storage::outbox`]).
#[async_trait::async_trait]
pub trait Outbox: Send + Sync + std::fmt::Debug + 'static {
    /// The oldest `limit` rows, in `seq` order.
    async fn head(&self, limit: usize) -> Result<Vec<OutboxRow>, StorageError>;

    /// Deletes published rows (seqs as returned by [`Outbox::head`]).
    async fn remove(&self, seqs: &[i64]) -> Result<(), StorageError>;

    /// Rows waiting to be published.
    async fn backlog(&self) -> Result<u64, StorageError>;

    /// Waits until this host may publish: only one publisher per database,
    /// so that events leave in `seq` order. Held as long as the returned
    /// lease is.
    async fn lead(&self) -> Result<Box<dyn PublisherLease>, StorageError>;

    /// Woken after each commit that wrote outbox rows in this process.
    fn written(&self) -> Arc<tokio::sync::Notify>;
}

/// The right to publish, held by one host at a time.
pub trait PublisherLease: Send + Sync {
    /// False once the lease was lost (its database session ended): the
    /// publisher must stop and lead again.
    fn is_held(&self) -> bool;
}

/// The lease of a backend only one host uses at a time (SQLite).
pub struct SoleHost;

impl PublisherLease for SoleHost {
    fn is_held(&self) -> bool {
        true
    }
}

/// A subject token: NATS tokens cannot hold `.` (the separator), the
/// wildcards `*` and `>`, whitespace or control characters, and cannot be
/// empty. Such characters become `_`; the payload keeps the exact values.
pub fn subject_token(text: &str) -> String {
    if text.is_empty() {
        return "_".to_string();
    }
    text.chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// `<brand>.<channel>.<event>`.
pub fn subject(brand: &str, channel: &str, event: &str) -> String {
    format!(
        "{}.{}.{event}",
        subject_token(brand),
        subject_token(channel)
    )
}

/// What a case event is about.
#[derive(Debug, Clone, Copy)]
pub struct CaseRef<'a> {
    pub brand: &'a str,
    pub connector: &'a str,
    pub channel: &'a str,
    pub case_id: i64,
}

/// A case's state after a change.
#[derive(Debug, Clone, Copy)]
pub struct CaseChange<'a> {
    /// `opened`, `reopened`, or the workflow's event kind (`claimed`,
    /// `answered`, `closed`, ...).
    pub change: &'a str,
    pub status: CaseStatus,
    /// The case's version after the change: unique per change of a case.
    pub version: i64,
    pub assignee: Option<&'a str>,
    pub team: Option<&'a str>,
    pub actor: &'a str,
    pub at: TimestampMs,
}

#[derive(Serialize)]
struct CasePayload<'a> {
    event: &'static str,
    brand: &'a str,
    connector: &'a str,
    channel: &'a str,
    case_id: i64,
    change: &'a str,
    status: CaseStatus,
    version: i64,
    assignee: Option<&'a str>,
    team: Option<&'a str>,
    actor: &'a str,
    at: TimestampMs,
}

#[derive(Serialize)]
struct MessagePayload<'a> {
    event: &'static str,
    brand: &'a str,
    connector: &'a str,
    channel: &'a str,
    case_id: Option<i64>,
    message: &'a Message,
}

#[derive(Serialize)]
struct DeletedPayload<'a> {
    event: &'static str,
    brand: &'a str,
    connector: &'a str,
    channel: &'a str,
    case_id: Option<i64>,
    external_id: &'a str,
}

fn to_json(value: &impl Serialize) -> Result<String, StorageError> {
    serde_json::to_string(value)
        .map_err(|e| StorageError::Query(format!("cannot serialise an outbox event: {e}")))
}

/// Where a message lives.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    pub brand: &'a str,
    pub connector: &'a str,
    pub channel: &'a str,
    pub case_id: Option<i64>,
}

impl OutboxEntry {
    /// A new message (inbound or outbound) was stored. Its id
    /// `msg:<brand>:<connector>:<external id>` is the queue's own
    /// de-duplication key.
    pub fn message(at: MessageRef<'_>, message: &Message) -> Result<Self, StorageError> {
        Ok(OutboxEntry {
            subject: subject(at.brand, at.channel, "message"),
            msg_id: format!("msg:{}:{}:{}", at.brand, at.connector, message.external_id),
            case_id: at.case_id,
            payload: to_json(&MessagePayload {
                event: "message",
                brand: at.brand,
                connector: at.connector,
                channel: at.channel,
                case_id: at.case_id,
                message,
            })?,
        })
    }

    /// A stored message was edited; `message` is the new version. The id
    /// names the edit by its content, so one edit delivered twice is one
    /// event.
    pub fn edited(at: MessageRef<'_>, message: &Message) -> Result<Self, StorageError> {
        let payload = to_json(&MessagePayload {
            event: "edited",
            brand: at.brand,
            connector: at.connector,
            channel: at.channel,
            case_id: at.case_id,
            message,
        })?;
        Ok(OutboxEntry {
            subject: subject(at.brand, at.channel, "edited"),
            msg_id: format!(
                "upd:{}:{}:{}:{}",
                at.brand,
                at.connector,
                message.external_id,
                short_digest(&payload)
            ),
            case_id: at.case_id,
            payload,
        })
    }

    /// A stored message was deleted on its channel (once per message).
    pub fn deleted(at: MessageRef<'_>, external_id: &str) -> Result<Self, StorageError> {
        Ok(OutboxEntry {
            subject: subject(at.brand, at.channel, "deleted"),
            msg_id: format!("del:{}:{}:{external_id}", at.brand, at.connector),
            case_id: at.case_id,
            payload: to_json(&DeletedPayload {
                event: "deleted",
                brand: at.brand,
                connector: at.connector,
                channel: at.channel,
                case_id: at.case_id,
                external_id,
            })?,
        })
    }

    /// The event of a workflow change just written to `case` (the case as
    /// stored, its version already bumped).
    pub fn case_written(
        case: &crate::care::Case,
        event: &crate::care::NewEvent,
    ) -> Result<Self, StorageError> {
        Self::case(
            CaseRef {
                brand: &case.brand,
                connector: &case.connector,
                channel: &case.channel,
                case_id: case.id,
            },
            CaseChange {
                change: event.kind,
                status: case.status,
                version: case.version,
                assignee: case.assignee.as_deref(),
                team: case.team.as_deref(),
                actor: &event.actor,
                at: event.at,
            },
        )
    }

    /// A case was opened, reopened or changed by the workflow. Every change
    /// bumps the case's version, so `case:<id>:v<version>` names it.
    pub fn case(case: CaseRef<'_>, change: CaseChange<'_>) -> Result<Self, StorageError> {
        Ok(OutboxEntry {
            subject: subject(case.brand, case.channel, "case"),
            msg_id: format!("case:{}:v{}", case.case_id, change.version),
            case_id: Some(case.case_id),
            payload: to_json(&CasePayload {
                event: "case",
                brand: case.brand,
                connector: case.connector,
                channel: case.channel,
                case_id: case.case_id,
                change: change.change,
                status: change.status,
                version: change.version,
                assignee: change.assignee,
                team: change.team,
                actor: change.actor,
                at: change.at,
            })?,
        })
    }
}

/// 16 hex digits of SHA-256: enough to tell the edits of one message apart.
fn short_digest(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// A `Nats-Msg-Id` header value: a header value cannot hold line breaks or
/// other control characters (external ids come from the channels), so an id
/// with any is replaced by its digest, the same every time.
pub fn header_safe_msg_id(msg_id: &str) -> std::borrow::Cow<'_, str> {
    if msg_id.chars().any(char::is_control) {
        std::borrow::Cow::Owned(format!("sha256:{}", hex::encode(Sha256::digest(msg_id))))
    } else {
        std::borrow::Cow::Borrowed(msg_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tokens_lose_separators_wildcards_and_whitespace() {
        assert_eq!(subject_token("acme"), "acme");
        assert_eq!(subject_token("acme.eu"), "acme_eu");
        assert_eq!(subject_token("a*b>c"), "a_b_c");
        assert_eq!(
            subject_token("two words\tand\nlines"),
            "two_words_and_lines"
        );
        assert_eq!(subject_token(""), "_");
        assert_eq!(subject_token("café-ü_1"), "café-ü_1");
        assert_eq!(
            subject("acme.eu", "x twitter", "message"),
            "acme_eu.x_twitter.message"
        );
    }

    #[test]
    fn msg_ids_are_header_safe_and_stable() {
        assert_eq!(header_safe_msg_id("msg:acme:x:1"), "msg:acme:x:1");
        let odd = header_safe_msg_id("msg:acme:x:a\r\nb");
        assert!(odd.starts_with("sha256:") && !odd.contains('\n'));
        assert_eq!(odd, header_safe_msg_id("msg:acme:x:a\r\nb"));
    }

    #[test]
    fn case_ids_name_the_version() {
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
                at: 1,
            },
        )
        .unwrap();
        assert_eq!(entry.msg_id, "case:7:v3");
        assert_eq!(entry.subject, "acme.twitter.case");
        let payload: serde_json::Value = serde_json::from_str(&entry.payload).unwrap();
        assert_eq!(payload["status"], "open");
        assert_eq!(payload["change"], "claimed");
    }
}
