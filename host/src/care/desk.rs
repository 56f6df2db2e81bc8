//! The case operations as agents call them: read, transition, answer
//! through the channel, retry, search. The API is a thin layer over this.

use std::sync::Arc;

use serde::Serialize;

use super::store::{ActionOutcome, CareStore};
use super::workflow::{self, Op, Refusal};
use super::{
    ActionRecord, ActionState, Actor, Case, CaseEvent, CaseQuery, CustomerProfile, Identity,
    LinkedIdentity, NewAction, SearchHit,
};
use crate::model::{
    Action, ActionKind, ActionResult, ActionTarget, Direction, Outgoing, TimestampMs,
};
use crate::queue::{Storage, StorageError, StoredMessage};

/// Sends actions out through the brand's connectors (the running service's
/// plugin instances, in production).
#[async_trait::async_trait]
pub trait Channels: Send + Sync {
    /// Performs `action` on `target` with connector `connector` of `brand`.
    /// The error is one line fit to show an agent (never a secret).
    async fn perform(
        &self,
        brand: &str,
        connector: &str,
        action: Action,
        target: ActionTarget,
    ) -> Result<ActionResult, String>;
}

#[derive(Debug, thiserror::Error)]
pub enum CareError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The channel refused or failed; the action is recorded as failed and
    /// can be retried.
    #[error("the channel call failed: {}", .0.error.as_deref().unwrap_or("unknown error"))]
    ChannelFailed(Box<ActionRecord>),
    /// The storage backend has no case workflow.
    #[error("the {0} storage backend does not support the case workflow yet")]
    Unsupported(&'static str),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A case with its conversation, audit trail and answers.
#[derive(Debug, Clone, Serialize)]
pub struct CaseDetail {
    pub case: Case,
    pub messages: Vec<StoredMessage>,
    pub events: Vec<CaseEvent>,
    pub actions: Vec<ActionRecord>,
}

/// What an agent sends out on a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRequest {
    pub action: ActionKind,
    /// The message to answer (its external id); `None`: the customer's
    /// latest message in the case.
    pub message: Option<String>,
    /// Makes a repeated request safe: the same key never sends twice.
    /// `None`: a fresh key (the request is then not safe to repeat).
    pub idempotency_key: Option<String>,
    /// Why a message is hidden or unhidden (required for those).
    pub reason: Option<String>,
}

/// How often a transition is retried when a colleague changed the case
/// between read and write.
const CAS_ATTEMPTS: usize = 8;

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

pub struct CareDesk {
    storage: Arc<dyn Storage>,
    channels: Arc<dyn Channels>,
}

impl CareDesk {
    pub fn new(storage: Arc<dyn Storage>, channels: Arc<dyn Channels>) -> Self {
        CareDesk { storage, channels }
    }

    fn store(&self) -> Result<&dyn CareStore, CareError> {
        self.storage
            .care()
            .ok_or(CareError::Unsupported(self.storage.backend_name()))
    }

    pub fn care_store(&self) -> Result<&dyn CareStore, CareError> {
        self.store()
    }

    pub async fn list(&self, query: &CaseQuery) -> Result<Vec<Case>, CareError> {
        Ok(self.store()?.case_list(query).await?)
    }

    pub async fn case(&self, brand: &str, id: i64) -> Result<Case, CareError> {
        self.store()?
            .case(brand, id)
            .await?
            .ok_or(CareError::NotFound)
    }

    pub async fn detail(&self, brand: &str, id: i64) -> Result<CaseDetail, CareError> {
        let store = self.store()?;
        let case = self.case(brand, id).await?;
        Ok(CaseDetail {
            messages: store.case_messages(brand, id).await?,
            events: store.case_events(brand, id).await?,
            actions: store.case_actions(brand, id).await?,
            case,
        })
    }

    pub async fn search(
        &self,
        brand: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, CareError> {
        Ok(self.store()?.search(brand, query, limit).await?)
    }

    /// Applies `op` to case `id` of `brand`, re-reading and re-checking when
    /// someone else changed the case in between (so of two agents claiming
    /// at once, the second is told who won).
    pub async fn transition(
        &self,
        brand: &str,
        id: i64,
        actor: &Actor,
        op: Op,
    ) -> Result<Case, CareError> {
        let store = self.store()?;
        for _ in 0..CAS_ATTEMPTS {
            let case = store.case(brand, id).await?.ok_or(CareError::NotFound)?;
            let (next, event) = workflow::apply(&case, &op, actor, now_ms())?;
            if store.write_case(&next, case.version, &event).await? {
                return Ok(next);
            }
        }
        Err(Refusal::Conflict(format!("case {id} is changing too fast; try again")).into())
    }

    /// Sends an answer, reaction or moderation action on case `id`: recorded
    /// first, then performed by the case's connector, then the outcome and
    /// the case transition are written. A failure leaves the action
    /// `failed` (see [`CareDesk::retry`]) and the case as it was.
    pub async fn answer(
        &self,
        brand: &str,
        id: i64,
        actor: &Actor,
        request: AnswerRequest,
    ) -> Result<ActionRecord, CareError> {
        let store = self.store()?;
        let case = self.case(brand, id).await?;
        check_request(&case, actor, &request)?;
        let messages = store.case_messages(brand, id).await?;
        let target = pick_target(&case, &messages, request.message.as_deref())?;
        let key = match request.idempotency_key {
            Some(key) => {
                if key.is_empty()
                    || key.len() > MAX_IDEMPOTENCY_KEY
                    || key.chars().any(char::is_control)
                {
                    return Err(Refusal::Invalid(format!(
                        "idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} printable bytes"
                    ))
                    .into());
                }
                key
            }
            None => format!("{brand}-{id}-{}", super::tokens::generate()),
        };
        let (record, created) = store
            .begin_action(&NewAction {
                brand: brand.to_string(),
                case_id: id,
                connector: case.connector.clone(),
                target_external_id: target.external_id.clone(),
                idempotency_key: key,
                action: request.action,
                requested_by: actor.name.clone(),
                at: now_ms(),
            })
            .await?;
        if !created {
            if record.case_id != id {
                return Err(Refusal::Conflict(
                    "this idempotency key was used for another case".into(),
                )
                .into());
            }
            // A repeated request: report what the first one did.
            return Ok(record);
        }
        self.send(&case, record, target, actor, request.reason)
            .await
    }

    /// Sends a `failed` action again, under its original idempotency key.
    /// A `sent` action is never sent again; a `pending` one is in flight.
    pub async fn retry(
        &self,
        brand: &str,
        action_id: i64,
        actor: &Actor,
    ) -> Result<ActionRecord, CareError> {
        let store = self.store()?;
        if !matches!(actor.role, super::Role::Agent | super::Role::Admin) {
            return Err(Refusal::Forbidden(format!(
                "role {} may not send answers",
                actor.role.as_str()
            ))
            .into());
        }
        let Some((record, reopened)) = store.retry_action(brand, action_id, now_ms()).await? else {
            return Err(CareError::NotFound);
        };
        if !reopened {
            return match record.state {
                ActionState::Sent => Ok(record),
                _ => Err(Refusal::Conflict(format!(
                    "action {action_id} is {}; only failed actions are retried",
                    record.state.as_str()
                ))
                .into()),
            };
        }
        let case = self.case(brand, record.case_id).await?;
        let messages = store.case_messages(brand, record.case_id).await?;
        // The same rules as a new answer: not on a closed case, not on a
        // colleague's.
        let target = match workflow::may_answer(&case, actor)
            .and_then(|()| pick_target(&case, &messages, Some(&record.target_external_id)))
        {
            Ok(target) => target,
            Err(refusal) => {
                // The action is `pending` again: end this attempt, or it
                // would look in flight forever and never be retried.
                store
                    .finish_action(
                        record.id,
                        &ActionOutcome::Failed(refusal.to_string()),
                        now_ms(),
                    )
                    .await?;
                return Err(refusal.into());
            }
        };
        self.send(&case, record, target, actor, None).await
    }

    /// Acknowledges the customer's message `external_id` in the case of
    /// `thread_id` with `text`, once per case and only while the brand has
    /// not answered it: sent by the host (`webcare`), in private when the
    /// message was private. The case's status and first-response time do
    /// not change; an acknowledgement is not an answer.
    pub async fn acknowledge(
        &self,
        brand: &str,
        connector: &str,
        thread_id: &str,
        external_id: &str,
        text: String,
    ) -> Result<Option<ActionRecord>, CareError> {
        let store = self.store()?;
        let Some(case) = store.case_by_thread(brand, connector, thread_id).await? else {
            return Ok(None);
        };
        if case.first_response_at.is_some() || case.status == crate::queue::CaseStatus::Closed {
            return Ok(None);
        }
        let messages = store.case_messages(brand, case.id).await?;
        let target = pick_target(&case, &messages, Some(external_id))?;
        let outgoing = Outgoing {
            text,
            attachments: Vec::new(),
        };
        let action = if target.visibility == crate::model::Visibility::Private {
            ActionKind::PrivateReply(outgoing)
        } else {
            ActionKind::Reply(outgoing)
        };
        let host = Actor::host();
        let (record, created) = store
            .begin_action(&NewAction {
                brand: brand.to_string(),
                case_id: case.id,
                connector: connector.to_string(),
                target_external_id: external_id.to_string(),
                idempotency_key: format!("ack-{}", case.id),
                action,
                requested_by: host.name.clone(),
                at: now_ms(),
            })
            .await?;
        if !created {
            return Ok(None);
        }
        let sent = self
            .channels
            .perform(
                brand,
                connector,
                Action {
                    idempotency_key: record.idempotency_key.clone(),
                    kind: record.action.clone(),
                },
                target,
            )
            .await;
        let outcome = match sent {
            Ok(result) => ActionOutcome::Sent(result),
            Err(error) => ActionOutcome::Failed(error),
        };
        let record = store.finish_action(record.id, &outcome, now_ms()).await?;
        let op = match &outcome {
            ActionOutcome::Sent(_) => Op::Acted {
                kind: "acknowledged",
                action_id: record.id,
                reason: None,
            },
            ActionOutcome::Failed(error) => Op::ActionFailed {
                action_id: record.id,
                error: error.clone(),
            },
        };
        self.transition(brand, case.id, &host, op).await?;
        Ok(Some(record))
    }

    /// Customer profile `id` of `brand`.
    pub async fn customer(&self, brand: &str, id: i64) -> Result<CustomerProfile, CareError> {
        self.store()?
            .customer(brand, id)
            .await?
            .ok_or(CareError::NotFound)
    }

    /// The profile of the customer who opened case `case_id`: their linked
    /// profile, or a profile of this one identity when none links it.
    pub async fn customer_of_case(
        &self,
        brand: &str,
        case_id: i64,
    ) -> Result<CustomerProfile, CareError> {
        let store = self.store()?;
        let case = self.case(brand, case_id).await?;
        let messages = store.case_messages(brand, case_id).await?;
        let Some(first) = messages
            .iter()
            .find(|m| m.message.direction == Direction::Inbound)
        else {
            return Err(
                Refusal::Conflict(format!("case {} has no customer message", case.id)).into(),
            );
        };
        let identity = Identity {
            connector: first.connector.clone(),
            author_id: first.message.author.id.clone(),
        };
        if let Some(id) = store.customer_of(brand, &identity).await? {
            return self.customer(brand, id).await;
        }
        let author = &first.message.author;
        Ok(CustomerProfile {
            id: None,
            display_name: if author.display_name.is_empty() {
                author.handle.clone()
            } else {
                author.display_name.clone()
            },
            email: None,
            identities: vec![LinkedIdentity {
                connector: identity.connector.clone(),
                author_id: identity.author_id.clone(),
                handle: author.handle.clone(),
                linked_by: String::new(),
                linked_at: first.received_at,
            }],
            cases: store.identity_cases(brand, &identity).await?,
            events: Vec::new(),
        })
    }

    /// Links identities into one customer profile (by hand; audited).
    pub async fn link(
        &self,
        brand: &str,
        actor: &Actor,
        identities: &[Identity],
    ) -> Result<CustomerProfile, CareError> {
        let store = self.store()?;
        require_worker(actor, "link customer identities")?;
        let mut unique = identities.to_vec();
        unique.sort();
        unique.dedup();
        if unique.len() < 2 {
            return Err(
                Refusal::Invalid("give at least two different identities to link".into()).into(),
            );
        }
        for identity in &unique {
            if store.identity_seen(brand, identity).await?.is_none() {
                return Err(Refusal::Invalid(format!(
                    "no message of {:?} on {:?} in this brand",
                    identity.author_id, identity.connector
                ))
                .into());
            }
        }
        let id = store
            .link_identities(brand, &unique, &actor.name, now_ms())
            .await?;
        self.customer(brand, id).await
    }

    /// Takes an identity out of its profile (audited). Returns the profile
    /// it now has alone.
    pub async fn unlink(
        &self,
        brand: &str,
        actor: &Actor,
        identity: &Identity,
    ) -> Result<CustomerProfile, CareError> {
        let store = self.store()?;
        require_worker(actor, "unlink customer identities")?;
        match store
            .unlink_identity(brand, identity, &actor.name, now_ms())
            .await?
        {
            Some(id) => self.customer(brand, id).await,
            None => Err(Refusal::Conflict(format!(
                "{:?} on {:?} is not linked to other identities",
                identity.author_id, identity.connector
            ))
            .into()),
        }
    }

    async fn send(
        &self,
        case: &Case,
        record: ActionRecord,
        target: ActionTarget,
        actor: &Actor,
        reason: Option<String>,
    ) -> Result<ActionRecord, CareError> {
        let store = self.store()?;
        let action = Action {
            idempotency_key: record.idempotency_key.clone(),
            kind: record.action.clone(),
        };
        let outcome = match self
            .channels
            .perform(&case.brand, &case.connector, action, target)
            .await
        {
            Ok(result) => ActionOutcome::Sent(result),
            Err(error) => ActionOutcome::Failed(error),
        };
        let record = store.finish_action(record.id, &outcome, now_ms()).await?;
        let op = match &outcome {
            ActionOutcome::Sent(_) => match &record.action {
                ActionKind::Reply(_) => Op::Answered {
                    kind: "replied",
                    action_id: record.id,
                },
                ActionKind::PrivateReply(_) => Op::Answered {
                    kind: "private_replied",
                    action_id: record.id,
                },
                ActionKind::React(_) => Op::Acted {
                    kind: "reacted",
                    action_id: record.id,
                    reason: None,
                },
                ActionKind::Hide => Op::Acted {
                    kind: "hidden",
                    action_id: record.id,
                    reason,
                },
                ActionKind::Unhide => Op::Acted {
                    kind: "unhidden",
                    action_id: record.id,
                    reason,
                },
            },
            ActionOutcome::Failed(error) => Op::ActionFailed {
                action_id: record.id,
                error: error.clone(),
            },
        };
        self.transition(&case.brand, case.id, actor, op).await?;
        match outcome {
            ActionOutcome::Sent(_) => Ok(record),
            ActionOutcome::Failed(_) => Err(CareError::ChannelFailed(Box::new(record))),
        }
    }
}

fn require_worker(actor: &Actor, what: &str) -> Result<(), Refusal> {
    if matches!(actor.role, super::Role::Agent | super::Role::Admin) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(format!(
            "role {} may not {what}",
            actor.role.as_str()
        )))
    }
}

fn check_request(case: &Case, actor: &Actor, request: &AnswerRequest) -> Result<(), Refusal> {
    workflow::may_answer(case, actor)?;
    match &request.action {
        ActionKind::Reply(Outgoing { text, .. })
        | ActionKind::PrivateReply(Outgoing { text, .. }) => {
            if text.trim().is_empty() {
                return Err(Refusal::Invalid("the answer text is empty".into()));
            }
        }
        ActionKind::React(reaction) => {
            if reaction.trim().is_empty() {
                return Err(Refusal::Invalid("the reaction is empty".into()));
            }
        }
        // Hiding a customer's words without saying why is how care teams
        // make crises worse: the reason is required and audited.
        ActionKind::Hide | ActionKind::Unhide => {
            if request
                .reason
                .as_deref()
                .is_none_or(|r| r.trim().is_empty())
            {
                return Err(Refusal::Invalid(
                    "hiding or unhiding a message needs a reason".into(),
                ));
            }
        }
    }
    Ok(())
}

/// The message an action goes to: the one named, or the customer's latest
/// message in the case that is still there.
fn pick_target(
    case: &Case,
    messages: &[StoredMessage],
    external_id: Option<&str>,
) -> Result<ActionTarget, Refusal> {
    let last_inbound_at = messages
        .iter()
        .filter(|m| m.message.direction == Direction::Inbound)
        .map(|m| m.message.created_at)
        .max();
    let chosen = match external_id {
        Some(wanted) => messages
            .iter()
            .find(|m| m.message.external_id == wanted)
            .ok_or_else(|| {
                Refusal::Invalid(format!("case {} has no message {wanted:?}", case.id))
            })?,
        None => messages
            .iter()
            .rev()
            .find(|m| m.message.direction == Direction::Inbound && !m.deleted)
            .ok_or_else(|| {
                Refusal::Conflict(format!(
                    "case {} has no customer message left to answer",
                    case.id
                ))
            })?,
    };
    if chosen.deleted {
        return Err(Refusal::Conflict(format!(
            "message {:?} was deleted on the channel",
            chosen.message.external_id
        )));
    }
    Ok(ActionTarget::of_message(&chosen.message, last_inbound_at))
}

pub(crate) fn now_ms() -> TimestampMs {
    jiff::Timestamp::now().as_millisecond()
}
