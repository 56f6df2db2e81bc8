//! What the case workflow needs from a storage backend.
//!
//! The rules live in [`super::workflow`]; a store only reads and writes.
//! Every write of a case names the version it read, and a store writes the
//! case and its event together only if the stored version still matches:
//! that one compare-and-swap is what makes claims atomic, on one host or
//! many.

use super::crisis::{Alert, AlertMessage, Counts};
use super::report::ReportRows;
use super::{
    ActionRecord, ActionState, Case, CaseEvent, CaseQuery, CustomerProfile, Identity, NewAction,
    NewEvent, Role, SearchHit,
};
use crate::model::{ActionResult, TimestampMs};
use crate::queue::{StorageError, StoredMessage};

/// An API token as stored: only the SHA-256 of the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    pub id: i64,
    /// Who holds it; what the audit trail shows as the actor.
    pub name: String,
    /// The brand it is scoped to; `None`: an agency token (admin of every
    /// brand).
    pub brand: Option<String>,
    pub role: Role,
    #[serde(skip)]
    pub hash: String,
    pub created_at: TimestampMs,
    pub revoked_at: Option<TimestampMs>,
}

/// A token about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    pub brand: Option<String>,
    pub role: Role,
    pub hash: String,
    pub at: TimestampMs,
}

/// How a finished channel call ends an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    Sent(ActionResult),
    Failed(String),
}

#[async_trait::async_trait]
pub trait CareStore: Send + Sync {
    /// Case `id` of `brand`; `None` when `brand` has no such case.
    async fn case(&self, brand: &str, id: i64) -> Result<Option<Case>, StorageError>;

    /// The case of a thread.
    async fn case_by_thread(
        &self,
        brand: &str,
        connector: &str,
        thread_id: &str,
    ) -> Result<Option<Case>, StorageError>;

    /// Cases for the queue view: most urgent first (priority, then the
    /// longest waiting, then the oldest).
    async fn case_list(&self, query: &CaseQuery) -> Result<Vec<Case>, StorageError>;

    /// Writes `case` (its workflow fields: status, assignee, team,
    /// escalation, waiting and response times, version) and `event`, only
    /// if the stored case still has `expected_version`. `Ok(false)`: it
    /// changed meanwhile (or is gone); nothing was written.
    async fn write_case(
        &self,
        case: &Case,
        expected_version: i64,
        event: &NewEvent,
    ) -> Result<bool, StorageError>;

    /// A case's messages, in conversation order.
    async fn case_messages(
        &self,
        brand: &str,
        case_id: i64,
    ) -> Result<Vec<StoredMessage>, StorageError>;

    /// A case's audit trail, oldest first.
    async fn case_events(&self, brand: &str, case_id: i64) -> Result<Vec<CaseEvent>, StorageError>;

    /// Records an action as `pending` unless its idempotency key exists in
    /// the brand already. Returns the stored action and whether it was
    /// created now.
    async fn begin_action(&self, action: &NewAction) -> Result<(ActionRecord, bool), StorageError>;

    /// Moves a `failed` action back to `pending` for another attempt.
    /// `Ok(None)`: no such action; `Ok(Some(false))`: it is not failed.
    async fn retry_action(
        &self,
        brand: &str,
        action_id: i64,
        at: TimestampMs,
    ) -> Result<Option<(ActionRecord, bool)>, StorageError>;

    /// Ends a `pending` action's attempt.
    async fn finish_action(
        &self,
        action_id: i64,
        outcome: &ActionOutcome,
        at: TimestampMs,
    ) -> Result<ActionRecord, StorageError>;

    /// A case's actions, oldest first.
    async fn case_actions(
        &self,
        brand: &str,
        case_id: i64,
    ) -> Result<Vec<ActionRecord>, StorageError>;

    /// Full-text search over a brand's messages and notes; cases best match
    /// first. `query` is plain words (all must occur; a trailing `*` is a
    /// prefix), never query syntax.
    async fn search(
        &self,
        brand: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StorageError>;

    /// The raw rows of a report: cases of `brand` opened in `[from, to)`
    /// and inbound messages written then (not those triage ignored), of
    /// one connector or all.
    async fn report_rows(
        &self,
        brand: &str,
        from: TimestampMs,
        to: TimestampMs,
        connector: Option<&str>,
    ) -> Result<ReportRows, StorageError>;

    /// The customer profile `id` of `brand` with its identities, cases and
    /// events.
    async fn customer(&self, brand: &str, id: i64)
    -> Result<Option<CustomerProfile>, StorageError>;

    /// The customer an identity is linked to.
    async fn customer_of(
        &self,
        brand: &str,
        identity: &Identity,
    ) -> Result<Option<i64>, StorageError>;

    /// Cases in which `identity` wrote, newest activity first.
    async fn identity_cases(
        &self,
        brand: &str,
        identity: &Identity,
    ) -> Result<Vec<Case>, StorageError>;

    /// The author's latest handle and display name on a channel; `None`
    /// when the brand never had a message of this identity.
    async fn identity_seen(
        &self,
        brand: &str,
        identity: &Identity,
    ) -> Result<Option<(String, String)>, StorageError>;

    /// Links `identities` (all seen in `brand`, at least two) into one
    /// customer: the oldest of their profiles, into which the others are
    /// merged, or a new one. Audited as `actor`. Returns the customer id.
    async fn link_identities(
        &self,
        brand: &str,
        identities: &[Identity],
        actor: &str,
        at: TimestampMs,
    ) -> Result<i64, StorageError>;

    /// Takes `identity` out of its customer profile into a profile of its
    /// own (audited on both). `Ok(None)`: it was not linked.
    async fn unlink_identity(
        &self,
        brand: &str,
        identity: &Identity,
        actor: &str,
        at: TimestampMs,
    ) -> Result<Option<i64>, StorageError>;

    /// Inbound messages of `brand` written in `[from, to)` (not those
    /// triage ignored), and how many of them were negative.
    async fn crisis_counts(
        &self,
        brand: &str,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Counts, StorageError>;

    /// Those messages themselves, the most negative first when
    /// `negative_first`, else the newest first; at most `limit`.
    async fn crisis_messages(
        &self,
        brand: &str,
        from: TimestampMs,
        to: TimestampMs,
        negative_first: bool,
        limit: usize,
    ) -> Result<Vec<AlertMessage>, StorageError>;

    /// The end of the window of the latest alert of this kind.
    async fn last_alert_end(
        &self,
        brand: &str,
        kind: &str,
    ) -> Result<Option<TimestampMs>, StorageError>;

    /// Stores an alert (its `id` is ignored) and returns it with its id.
    async fn record_alert(&self, alert: &Alert) -> Result<Alert, StorageError>;

    /// A brand's alerts raised at or after `since`, newest first.
    async fn alerts(&self, brand: &str, since: TimestampMs) -> Result<Vec<Alert>, StorageError>;

    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, StorageError>;

    /// The token with this hash, revoked or not.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StorageError>;

    /// Tokens of `brand` (`None`: every token), newest first.
    async fn tokens(&self, brand: Option<&str>) -> Result<Vec<TokenRecord>, StorageError>;

    /// Revokes a token; `false` when there is none with this id or it was
    /// revoked already.
    async fn revoke_token(&self, id: i64, at: TimestampMs) -> Result<bool, StorageError>;
}

/// Parses a stored action state, for backends.
pub fn action_state(text: &str) -> Result<ActionState, StorageError> {
    ActionState::parse(text)
        .ok_or_else(|| StorageError::Schema(format!("unknown action state {text:?}")))
}
