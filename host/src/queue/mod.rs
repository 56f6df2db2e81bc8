//! The care queue: where every normalised message lands, exactly once.
//!
//! Storage sits behind the [`Storage`] trait so the embedded default
//! ([`sqlite::SqliteStorage`]) and the PostgreSQL backend
//! ([`postgres::PostgresStorage`]) pass one shared test suite ([`suite`]);
//! [`open`] opens the one a config's `[storage]` names. The contract every backend keeps:
//!
//! * a poll's messages, its updates and its next cursor are committed in
//!   **one transaction** ([`Storage::commit`]): a crash at any point neither
//!   loses nor duplicates a message;
//! * messages are deduplicated on (brand, connector, external id); a message
//!   with an empty external id cannot be deduplicated, so it is refused and
//!   the whole commit with it;
//! * messages are grouped into cases per (brand, connector, thread id); a
//!   new inbound message reopens a pending or closed case (to `open` when
//!   an agent owns it, else `new`) and may raise its priority; outbound
//!   messages (the brand's own) and messages triage ignored join their
//!   thread's case but never open or reopen one;
//! * nothing of one brand is visible through a query for another.
//! * opened with the outbox on ([`OpenOptions::outbox`], a config with a
//!   `[stream]`), a commit and a case change write their events for the
//!   NATS JetStream sink into the [`outbox`] in the same transaction;
//!   without it, no event is written at all.
//!
//! The case workflow (claims, answers, audit trail, search, tokens) is the
//! [`crate::care::CareStore`] a backend offers through [`Storage::care`].

pub mod outbox;
pub mod postgres;
mod postgres_care;
pub mod postgres_outbox;
mod postgres_peers;
mod postgres_search;
pub mod postgres_tls;
pub mod sqlite;
mod sqlite_care;
mod sqlite_checkpoint;
mod sqlite_indexes;
pub mod sqlite_outbox;
pub mod suite;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::capabilities::{ConnectorId, StateStore};
use crate::care::CareStore;
use crate::config::StorageConfig;
use crate::model::{Message, MessageUpdate, TimestampMs};
use crate::triage::{Bucket, Reason, TriageDecision};

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage schema: {0}")]
    Schema(String),
    #[error("storage query failed: {0}")]
    Query(String),
}

/// What one poll or webhook delivery hands to the queue.
#[derive(Debug, Clone, Copy)]
pub struct IngestBatch<'a> {
    /// The channel family of the connector's plugin (`twitter`, `feed`, ...).
    pub channel: &'a str,
    pub messages: &'a [Message],
    /// The triage of each message, in the order of `messages`; empty: none
    /// (every message counts as untriaged: priority 0, not ignored).
    pub triage: &'a [MessageTriage],
    pub updates: &'a [MessageUpdate],
    /// Stored with the messages; `None` keeps the stored cursor.
    pub next_cursor: Option<&'a str>,
}

impl IngestBatch<'_> {
    /// The triage of message `index`.
    pub fn triage_of(&self, index: usize) -> Option<&MessageTriage> {
        self.triage.get(index)
    }

    /// Refuses a batch whose triage does not match its messages.
    pub fn check(&self) -> Result<(), StorageError> {
        if self.triage.is_empty() || self.triage.len() == self.messages.len() {
            Ok(())
        } else {
            Err(StorageError::Query(format!(
                "a batch of {} messages came with {} triage decisions",
                self.messages.len(),
                self.triage.len()
            )))
        }
    }
}

/// A batch made ready for its commit ahead of time ([`Storage::prepare`]):
/// checked, and turned into the backend's rows. Opaque; commit it with the
/// storage that prepared it.
pub struct PreparedBatch {
    owner: ConnectorId,
    work: Box<dyn std::any::Any + Send>,
}

impl std::fmt::Debug for PreparedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedBatch")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl PreparedBatch {
    /// Wraps a backend's own prepared form of a batch of `owner`.
    pub fn new<T: Send + 'static>(owner: &ConnectorId, work: T) -> Self {
        PreparedBatch {
            owner: owner.clone(),
            work: Box::new(work),
        }
    }

    /// The connector whose batch it is.
    pub fn owner(&self) -> &ConnectorId {
        &self.owner
    }

    /// The backend's prepared form back; an error when another backend
    /// prepared it.
    pub fn into_work<T: 'static>(self) -> Result<(ConnectorId, T), StorageError> {
        match self.work.downcast::<T>() {
            Ok(work) => Ok((self.owner, *work)),
            Err(_) => Err(StorageError::Query(
                "a batch prepared by another storage cannot be committed here".to_string(),
            )),
        }
    }
}

/// What the queue keeps of a message's triage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageTriage {
    /// Stored, but opens or reopens no case.
    pub ignore: bool,
    /// 0..=100.
    pub score: u8,
    pub bucket: Bucket,
    pub reasons: Vec<Reason>,
    /// The team a case it opens goes to.
    pub team: Option<String>,
    /// -1.0..=1.0.
    pub sentiment: f64,
}

impl MessageTriage {
    pub fn from_decision(decision: &TriageDecision) -> Self {
        MessageTriage {
            ignore: decision.ignore,
            score: decision.priority.score,
            bucket: decision.priority.bucket,
            reasons: decision.reasons.clone(),
            team: decision.team.clone(),
            sentiment: decision.sentiment.score,
        }
    }

    /// A message nobody triaged.
    pub fn untriaged() -> Self {
        MessageTriage {
            ignore: false,
            score: 0,
            bucket: Bucket::Low,
            reasons: Vec::new(),
            team: None,
            sentiment: 0.0,
        }
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CommitOutcome {
    /// New messages stored.
    pub inserted: usize,
    /// Messages already stored (same brand, connector, external id): dropped.
    pub duplicates: usize,
    /// New messages triage ignored (stored, no case opened or reopened).
    pub ignored: usize,
    /// Updates applied to stored messages.
    pub updates_applied: usize,
    /// Updates about messages the queue never saw (kept as nothing).
    pub updates_unknown: usize,
    /// Cases opened by this commit.
    pub cases_opened: usize,
}

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    New,
    Open,
    Pending,
    Escalated,
    Closed,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::New => "new",
            CaseStatus::Open => "open",
            CaseStatus::Pending => "pending",
            CaseStatus::Escalated => "escalated",
            CaseStatus::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<CaseStatus> {
        Some(match text {
            "new" => CaseStatus::New,
            "open" => CaseStatus::Open,
            "pending" => CaseStatus::Pending,
            "escalated" => CaseStatus::Escalated,
            "closed" => CaseStatus::Closed,
            _ => return None,
        })
    }
}

/// Which cases to list.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only this brand's cases. `None` lists all brands (operator tools only).
    pub brand: Option<String>,
    pub status: Option<CaseStatus>,
    /// At most this many, newest activity first; 0 means no limit.
    pub limit: usize,
}

/// One case as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseSummary {
    pub id: i64,
    pub brand: String,
    pub connector: String,
    pub channel: String,
    pub thread_id: String,
    pub status: CaseStatus,
    /// Inbound and outbound messages in the case.
    pub message_count: u64,
    pub first_message_at: TimestampMs,
    pub last_message_at: TimestampMs,
    /// Handle of the author of the case's first message.
    pub author: String,
    /// The first message's text (cut to [`PREVIEW_CHARS`] characters, see
    /// [`case_preview`]).
    pub preview: String,
}

/// Longest case preview, in characters (not bytes: a preview never splits a
/// character).
pub const PREVIEW_CHARS: usize = 200;

/// The preview a case shows for its first message. Shared by the backends
/// so that every one of them cuts the same text at the same place.
pub fn case_preview(text: &str) -> String {
    text.chars().take(PREVIEW_CHARS).collect()
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredMessage {
    pub brand: String,
    pub connector: String,
    pub channel: String,
    /// The case it belongs to; `None` for outbound messages in a thread
    /// without a case.
    pub case_id: Option<i64>,
    pub message: Message,
    /// When the host stored it (ms since the epoch).
    pub received_at: TimestampMs,
    pub edited: bool,
    pub deleted: bool,
    pub hidden: bool,
}

/// Messages and cases per brand and channel, for summaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelCount {
    pub brand: String,
    pub connector: String,
    pub channel: String,
    pub messages: u64,
    pub cases: u64,
}

/// Which host polls a connector. Hosts on one database take turns through
/// leases: a host polls a connector only while it holds its lease, renews
/// it well before it expires, and a lease whose host stopped renewing it
/// (killed, cut off) is free for another host once it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub brand: String,
    pub connector: String,
    /// The `[host] id` of the host that holds it.
    pub holder: String,
    /// Until when (ms since the epoch, by the database's clock where it has
    /// one): the holder renews it before, or loses it then.
    pub expires_at: TimestampMs,
}

/// The direction as the backends store it.
fn direction_name(direction: crate::model::Direction) -> &'static str {
    match direction {
        crate::model::Direction::Inbound => "inbound",
        crate::model::Direction::Outbound => "outbound",
    }
}

/// The kind as its JSON name, so the column and the stored JSON agree.
fn kind_name(kind: crate::model::MessageKind) -> &'static str {
    use crate::model::MessageKind;
    match kind {
        MessageKind::Mention => "mention",
        MessageKind::Comment => "comment",
        MessageKind::Reply => "reply",
        MessageKind::DirectMessage => "direct_message",
        MessageKind::Post => "post",
        MessageKind::Email => "email",
        MessageKind::Review => "review",
    }
}

/// A care-queue backend.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a batch and its cursor in one transaction (see module docs):
    /// [`Storage::prepare`], then [`Storage::commit_prepared`].
    async fn commit(
        &self,
        owner: &ConnectorId,
        batch: IngestBatch<'_>,
    ) -> Result<CommitOutcome, StorageError> {
        let prepared = self.prepare(owner, batch)?;
        self.commit_prepared(prepared).await
    }

    /// [`Storage::commit`] in two steps: this one does the work that needs
    /// no database (checking the batch, building and serialising its rows),
    /// so that a scheduler can do it while the previous batch is being
    /// written; [`Storage::commit_prepared`] writes. Errors are those
    /// `commit` would give for the batch.
    fn prepare(
        &self,
        owner: &ConnectorId,
        batch: IngestBatch<'_>,
    ) -> Result<PreparedBatch, StorageError>;

    /// Writes a batch [`Storage::prepare`] made ready, exactly as
    /// [`Storage::commit`] would have written it.
    async fn commit_prepared(&self, prepared: PreparedBatch)
    -> Result<CommitOutcome, StorageError>;

    /// The committed cursor of a connector; `None` before its first commit.
    async fn cursor(&self, owner: &ConnectorId) -> Result<Option<String>, StorageError>;

    /// Cases matching `filter`, newest `last_message_at` first (ties: newest
    /// case first).
    async fn cases(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>, StorageError>;

    /// A brand's messages, oldest first by `created_at`, then in the order
    /// they were stored (all of them when `limit` is 0).
    async fn messages(&self, brand: &str, limit: usize)
    -> Result<Vec<StoredMessage>, StorageError>;

    /// Messages and cases per brand, connector and channel, ordered by
    /// those three.
    async fn counts(&self) -> Result<Vec<ChannelCount>, StorageError>;

    /// Takes or renews `holder`'s poll leases on the `wanted` connectors,
    /// each until `ttl` from now: a lease is taken when nobody holds it,
    /// when it expired, or when `holder` holds it already. Returns the
    /// connectors of `wanted` that `holder` holds after the call.
    async fn claim_leases(
        &self,
        holder: &str,
        wanted: &[ConnectorId],
        ttl: std::time::Duration,
    ) -> Result<Vec<ConnectorId>, StorageError>;

    /// Gives up every lease `holder` holds and forgets the host (a clean
    /// stop), so that other hosts take its connectors over at once instead
    /// of after the expiry.
    async fn release_leases(&self, holder: &str) -> Result<(), StorageError>;

    /// Gives up `holder`'s leases on `connectors` (its share shrank because
    /// another host joined); other hosts' leases are left alone.
    async fn give_up_leases(
        &self,
        holder: &str,
        connectors: &[ConnectorId],
    ) -> Result<(), StorageError>;

    /// Records that `host` is alive for `ttl` from now and returns how many
    /// hosts are alive (itself included): the hosts share the connectors.
    async fn heartbeat(&self, host: &str, ttl: std::time::Duration) -> Result<usize, StorageError>;

    /// Every lease, held or expired, by brand and connector.
    async fn leases(&self) -> Result<Vec<Lease>, StorageError>;

    /// Connector state (`state` capability) kept in the same database.
    fn state_store(&self) -> Arc<dyn StateStore>;

    /// The case workflow's store, where this backend has one.
    fn care(&self) -> Option<&dyn CareStore> {
        None
    }

    /// The outbox of the NATS JetStream sink, when the storage was opened
    /// with it on ([`OpenOptions::outbox`]).
    fn outbox(&self) -> Option<Arc<dyn outbox::Outbox>> {
        None
    }

    /// How hosts sharing this storage signal each other, where several
    /// can (PostgreSQL: `LISTEN`/`NOTIFY`); `None` for a backend one host
    /// owns.
    fn peers(&self) -> Option<Arc<dyn PeerSignal>> {
        None
    }

    /// The backend's name for messages (`sqlite`, `postgres`).
    fn backend_name(&self) -> &'static str;
}

/// Short notes between the hosts of one storage: what changed, so each
/// host can tell its own live subscribers. Best effort, by design: a note
/// is a hint to re-read, never data, and one lost while a host reconnects
/// is made up for by the host telling its subscribers to re-read.
#[async_trait::async_trait]
pub trait PeerSignal: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `payload` (at most [`PEER_PAYLOAD_MAX`] bytes) to every host
    /// listening, this one included.
    async fn signal(&self, payload: &str) -> Result<(), StorageError>;

    /// Starts listening: every payload signalled from now on arrives on
    /// the receiver, which closes when the listening session ends (the
    /// caller then listens again).
    async fn listen(&self) -> Result<tokio::sync::mpsc::Receiver<String>, StorageError>;
}

/// The largest payload [`PeerSignal::signal`] takes (PostgreSQL's
/// `NOTIFY` limit is 8000 bytes).
pub const PEER_PAYLOAD_MAX: usize = 7_900;

/// Opens the queue a config's `[storage]` names: the SQLite file (created
/// if missing), or the PostgreSQL database (its URL read from the
/// environment or file it is referenced by, now). Either way the schema is
/// brought up to date. Errors are one line and never show a password.
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Storage>, StorageError> {
    open_with(config, OpenOptions::default()).await
}

/// How [`open_with`] opens a queue, beyond its `[storage]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Write the NATS JetStream sink's events into the outbox
    /// ([`outbox`]), in the transaction of each change: on exactly when the
    /// config has a `[stream]`.
    pub outbox: bool,
}

/// [`open`] with options.
pub async fn open_with(
    config: &StorageConfig,
    options: OpenOptions,
) -> Result<Arc<dyn Storage>, StorageError> {
    match config {
        StorageConfig::Sqlite { path } => Ok(Arc::new(sqlite::SqliteStorage::open_with(
            path,
            sqlite::SqliteOptions {
                outbox: options.outbox,
                ..sqlite::SqliteOptions::default()
            },
        )?)),
        StorageConfig::Postgres {
            url,
            pool_size,
            ca_file,
        } => {
            let url = url
                .resolve()
                .map_err(|e| StorageError::Unavailable(format!("storage.url: {e}")))?;
            let storage = postgres::PostgresStorage::connect(
                url.expose(),
                postgres::PostgresOptions {
                    pool_size: *pool_size,
                    outbox: options.outbox,
                    ca_file: ca_file.clone(),
                },
            )
            .await?;
            Ok(Arc::new(storage))
        }
    }
}
