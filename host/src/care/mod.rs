//! The case workflow: what agents do with cases, and the records it keeps.
//!
//! - [`workflow`]: every case transition as a pure function of the stored
//!   case, the operation and the actor (claim, hand-over, answer, escalate,
//!   note, close, reopen).
//! - [`store`]: what the workflow needs from a backend ([`CareStore`]):
//!   read a case, write it back only if nobody changed it meanwhile, and
//!   keep actions, events, tokens and the search index.
//! - [`desk`]: the operations as agents call them, on top of both, including
//!   answers that go out through a connector's `perform`.
//! - [`tokens`]: API tokens (random, stored hashed, scoped to a brand).
//! - [`sla`]: service-level clocks of cases in the brand's working hours.
//! - [`report`]: a brand's figures for a period.
//! - [`replies`]: saved replies and acknowledgement templates.
//! - [`crisis`]: crisis early warning.
//! - [`suite`]: the conformance suite every backend's [`CareStore`] passes.
//!
//! See `docs/care.md`.

pub mod crisis;
pub mod desk;
#[cfg(test)]
mod desk_tests;
pub mod replies;
pub mod report;
pub mod sla;
pub mod store;
pub mod suite;
pub mod tokens;
pub mod workflow;

use serde::{Deserialize, Serialize};

use crate::model::{ActionKind, ActionResult, TimestampMs};
use crate::queue::CaseStatus;
use crate::triage::{Bucket, Reason};

pub use desk::{CareDesk, CareError};
pub use store::CareStore;

/// What an API token lets its holder do within its brand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Works cases: claim, answer, escalate, note, close.
    Agent,
    /// A second-line team: reads cases, answers escalations, writes notes.
    SecondLine,
    /// Everything an agent and the second line can, and takes cases from
    /// others.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::SecondLine => "second_line",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "agent" => Role::Agent,
            "second_line" | "second-line" => Role::SecondLine,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// Who does something: a token's name and role, or the host itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

impl Actor {
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        Actor {
            name: name.into(),
            role,
        }
    }

    /// The host acting on its own (ingest, automatic acknowledgements).
    pub fn host() -> Self {
        Actor::new("webcare", Role::Admin)
    }
}

/// A question to a second-line team, and its answer once given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub team: String,
    pub question: String,
    pub asked_by: String,
    pub asked_at: TimestampMs,
    pub answer: Option<String>,
    pub answered_by: Option<String>,
    pub answered_at: Option<TimestampMs>,
}

impl Escalation {
    pub fn is_open(&self) -> bool {
        self.answer.is_none()
    }
}

/// A case with everything the workflow keeps on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    pub id: i64,
    pub brand: String,
    pub connector: String,
    pub channel: String,
    pub thread_id: String,
    pub status: CaseStatus,
    /// The agent who owns the case; `None`: nobody.
    pub assignee: Option<String>,
    /// The team whose queue the case is in; `None`: the brand's shared queue.
    pub team: Option<String>,
    /// Triage score 0..=100 of its most urgent inbound message since it was
    /// (re)opened.
    pub priority: u8,
    pub bucket: Bucket,
    /// Why it got its priority.
    pub reasons: Vec<Reason>,
    /// Sentiment (-1.0..=1.0) of the message that set the priority.
    pub sentiment: f64,
    pub message_count: u64,
    pub first_message_at: TimestampMs,
    pub last_message_at: TimestampMs,
    pub author: String,
    pub preview: String,
    /// When the customer's oldest unanswered message was written; `None`:
    /// nothing waits for an answer.
    pub waiting_since: Option<TimestampMs>,
    /// When the brand first answered.
    pub first_response_at: Option<TimestampMs>,
    pub closed_at: Option<TimestampMs>,
    pub escalation: Option<Escalation>,
    /// Bumped by every change; a write must name the version it read.
    pub version: i64,
}

/// Which cases to list, for the queue view.
#[derive(Debug, Clone, Default)]
pub struct CaseQuery {
    pub brand: String,
    pub status: Option<CaseStatus>,
    /// Only cases owned by this agent.
    pub assignee: Option<String>,
    /// Only cases nobody owns.
    pub unassigned: bool,
    pub team: Option<String>,
    /// At most this many (1..=500; 0 means the default of 50).
    pub limit: usize,
    /// Skip this many (paging).
    pub offset: usize,
}

/// What happened to a case, for the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseEvent {
    pub id: i64,
    pub case_id: i64,
    pub at: TimestampMs,
    pub actor: String,
    /// `claimed`, `released`, `assigned`, `replied`, `private_replied`,
    /// `reacted`, `action_failed`, `escalated`, `escalation_answered`,
    /// `noted`, `closed`, `reopened`, `hidden`, `unhidden`.
    pub kind: String,
    /// The connector an answer went out through, for answers.
    pub channel: Option<String>,
    /// What else there is to know (note text, team, question, action id).
    pub detail: serde_json::Value,
}

/// An event about to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub at: TimestampMs,
    pub actor: String,
    pub kind: &'static str,
    pub channel: Option<String>,
    pub detail: serde_json::Value,
}

/// Where an outgoing action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Recorded; the channel call is under way (or the host stopped during
    /// it).
    Pending,
    /// The channel accepted it.
    Sent,
    /// The channel call failed; `retry` sends it again under the same key.
    Failed,
}

impl ActionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Pending => "pending",
            ActionState::Sent => "sent",
            ActionState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<ActionState> {
        Some(match text {
            "pending" => ActionState::Pending,
            "sent" => ActionState::Sent,
            "failed" => ActionState::Failed,
            _ => return None,
        })
    }
}

/// An answer or reaction sent (or to be sent) on a case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    pub id: i64,
    pub case_id: i64,
    pub connector: String,
    /// The message it answers.
    pub target_external_id: String,
    pub idempotency_key: String,
    pub action: ActionKind,
    pub state: ActionState,
    pub attempts: u32,
    pub result: Option<ActionResult>,
    pub error: Option<String>,
    pub requested_by: String,
    pub created_at: TimestampMs,
    pub updated_at: TimestampMs,
}

/// An action about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub brand: String,
    pub case_id: i64,
    pub connector: String,
    pub target_external_id: String,
    pub idempotency_key: String,
    pub action: ActionKind,
    pub requested_by: String,
    pub at: TimestampMs,
}

/// One full-text search hit: a case and the best matching text in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub case_id: i64,
    pub status: CaseStatus,
    /// `message` or `note`.
    pub source: String,
    /// The matching text with the hits marked `[…]`.
    pub snippet: String,
    pub at: TimestampMs,
}

/// One identity of a customer on one channel: the connector and the
/// channel's id for the author.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    pub connector: String,
    pub author_id: String,
}

/// An identity as linked to a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkedIdentity {
    pub connector: String,
    pub author_id: String,
    /// The author's handle when the identity was linked.
    pub handle: String,
    /// Who linked it: an agent, or `webcare (e-mail)` for automatic links.
    pub linked_by: String,
    pub linked_at: TimestampMs,
}

/// What happened to a customer profile (links, unlinks, merges).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerEvent {
    pub at: TimestampMs,
    pub actor: String,
    pub kind: String,
    pub detail: serde_json::Value,
}

/// One customer across channels: their identities, and every case they
/// wrote in, side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerProfile {
    /// `None` for an identity no profile links yet (a profile of one).
    pub id: Option<i64>,
    pub display_name: String,
    pub email: Option<String>,
    pub identities: Vec<LinkedIdentity>,
    /// Cases with an inbound message of any of the identities, newest
    /// activity first.
    pub cases: Vec<Case>,
    pub events: Vec<CustomerEvent>,
}
