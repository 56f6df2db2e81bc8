//! Unit tests of the desk logic on an in-memory SQLite store, with a
//! recording [`Channels`] in place of the connectors (end-to-end tests with
//! real plugins live elsewhere).

use std::sync::{Arc, Mutex};

use super::desk::{AnswerRequest, CareDesk, CareError, Channels};
use super::workflow::{Op, Refusal};
use super::{ActionState, Actor, Case, CaseQuery, Role};
use crate::capabilities::ConnectorId;
use crate::model::{
    Action, ActionKind, ActionResult, ActionTarget, Author, Direction, Engagement, Message,
    MessageKind, MessageUpdate, Outgoing, Removal, TimestampMs, Visibility,
};
use crate::queue::sqlite::SqliteStorage;
use crate::queue::{CaseStatus, IngestBatch, Storage};

const BRAND: &str = "acme";
const CONNECTOR: &str = "x";
const T0: TimestampMs = 1_736_154_000_000;
const MINUTE: TimestampMs = 60_000;

/// One `perform` call as the channel saw it.
#[derive(Debug, Clone)]
struct Call {
    brand: String,
    connector: String,
    action: Action,
    target: ActionTarget,
}

/// Records every call; fails the first `failures` of them.
#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<Call>>,
    failures: Mutex<usize>,
}

impl Recording {
    fn failing(failures: usize) -> Arc<Self> {
        Arc::new(Recording {
            calls: Mutex::default(),
            failures: Mutex::new(failures),
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Channels for Recording {
    async fn perform(
        &self,
        brand: &str,
        connector: &str,
        action: Action,
        target: ActionTarget,
    ) -> Result<ActionResult, String> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                brand: brand.to_string(),
                connector: connector.to_string(),
                action,
                target,
            });
            calls.len()
        };
        let mut failures = self.failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err("the channel answered 503".to_string());
        }
        Ok(ActionResult {
            external_id: Some(format!("out-{n}")),
            permalink: Some(format!("https://x.example/AcmeNL/status/out-{n}")),
        })
    }
}

fn message(external_id: &str, direction: Direction, created_at: TimestampMs) -> Message {
    Message {
        external_id: external_id.to_string(),
        thread_id: "t1".to_string(),
        in_reply_to: None,
        kind: MessageKind::Mention,
        visibility: Visibility::Public,
        direction,
        addressed_to_brand: direction == Direction::Inbound,
        author: Author {
            id: "uid-sanne".to_string(),
            handle: "sanne_dv".to_string(),
            display_name: "Sanne".to_string(),
            followers: None,
            verified: false,
            profile_url: None,
            email: None,
        },
        text: format!("bericht {external_id}"),
        html: None,
        subject: None,
        language: None,
        created_at,
        permalink: None,
        attachments: Vec::new(),
        metrics: Engagement::default(),
        properties: Vec::new(),
    }
}

async fn commit(storage: &dyn Storage, messages: &[Message], updates: &[MessageUpdate]) {
    let owner = ConnectorId {
        brand: BRAND.to_string(),
        connector: CONNECTOR.to_string(),
    };
    storage
        .commit(
            &owner,
            IngestBatch {
                channel: "twitter",
                messages,
                triage: &[],
                updates,
                next_cursor: None,
            },
        )
        .await
        .expect("commit");
}

/// A desk over a fresh database holding one case (thread `t1`) with
/// `messages`, and the channel it answers through.
async fn desk_with(messages: &[Message], channel: Arc<Recording>) -> (CareDesk, Case) {
    let storage: Arc<dyn Storage> =
        Arc::new(SqliteStorage::in_memory().expect("in-memory database"));
    commit(storage.as_ref(), messages, &[]).await;
    let desk = CareDesk::new(Arc::clone(&storage), channel);
    let cases = desk
        .list(&CaseQuery {
            brand: BRAND.to_string(),
            ..CaseQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(cases.len(), 1, "{cases:#?}");
    (desk, cases[0].clone())
}

fn agent(name: &str) -> Actor {
    Actor::new(name, Role::Agent)
}

fn reply(text: &str, key: Option<&str>) -> AnswerRequest {
    AnswerRequest {
        action: ActionKind::Reply(Outgoing {
            text: text.to_string(),
            attachments: Vec::new(),
        }),
        message: None,
        idempotency_key: key.map(str::to_string),
        reason: None,
    }
}

fn conflict(result: Result<impl std::fmt::Debug, CareError>) -> String {
    match result {
        Err(CareError::Refused(Refusal::Conflict(message))) => message,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn invalid(result: Result<impl std::fmt::Debug, CareError>) -> String {
    match result {
        Err(CareError::Refused(Refusal::Invalid(message))) => message,
        other => panic!("expected an invalid request, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_claims_have_exactly_one_winner() {
    let (desk, case) = desk_with(
        &[message("m1", Direction::Inbound, T0)],
        Recording::failing(0),
    )
    .await;
    let desk = Arc::new(desk);
    let start = Arc::new(tokio::sync::Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let desk = Arc::clone(&desk);
            let start = Arc::clone(&start);
            let name = format!("agent-{i:02}");
            tokio::spawn(async move {
                start.wait().await;
                let result = desk
                    .transition(BRAND, case.id, &agent(&name), Op::Claim)
                    .await;
                (name, result)
            })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("the claim task"));
    }

    let winners: Vec<&(String, Result<Case, CareError>)> =
        results.iter().filter(|(_, r)| r.is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins: {results:#?}");
    let (winner, won) = winners[0];
    let won = won.as_ref().unwrap();
    assert_eq!(won.assignee.as_deref(), Some(winner.as_str()));
    assert_eq!(won.status, CaseStatus::Open);
    let mut refused = 0;
    for (name, result) in &results {
        if name == winner {
            continue;
        }
        match result {
            Err(CareError::Refused(Refusal::Conflict(message))) => {
                assert!(
                    message.contains(&format!("owned by {winner}")),
                    "{name} is told who won: {message:?}"
                );
                refused += 1;
            }
            other => panic!("{name} expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(refused, 49);

    let stored = desk.case(BRAND, case.id).await.unwrap();
    assert_eq!(stored.assignee.as_deref(), Some(winner.as_str()));
    assert_eq!(stored.version, case.version + 1, "one write only");
    let detail = workflow_only(desk.detail(BRAND, case.id).await.unwrap());
    assert_eq!(detail.events.len(), 1, "{:#?}", detail.events);
    assert_eq!(
        (
            detail.events[0].kind.as_str(),
            detail.events[0].actor.as_str()
        ),
        ("claimed", winner.as_str())
    );
}

#[tokio::test]
async fn a_failed_answer_is_recorded_retried_and_never_sent_twice() {
    let channel = Recording::failing(1);
    let (desk, case) = desk_with(
        &[message("m1", Direction::Inbound, T0)],
        Arc::clone(&channel),
    )
    .await;
    assert_eq!(case.waiting_since, Some(T0));
    let anna = agent("anna");

    let failed = match desk
        .answer(BRAND, case.id, &anna, reply("Sorry! 📦", Some("req-1")))
        .await
    {
        Err(CareError::ChannelFailed(record)) => *record,
        other => panic!("expected ChannelFailed, got {other:?}"),
    };
    assert_eq!(failed.state, ActionState::Failed);
    assert_eq!(failed.error.as_deref(), Some("the channel answered 503"));
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.idempotency_key, "req-1");
    assert_eq!(failed.result, None);

    let after = desk.case(BRAND, case.id).await.unwrap();
    assert_eq!(
        after.status,
        CaseStatus::New,
        "a failed answer is no answer"
    );
    assert_eq!(after.assignee, None);
    assert_eq!(after.waiting_since, Some(T0), "the customer still waits");
    assert_eq!(after.first_response_at, None);
    let detail = workflow_only(desk.detail(BRAND, case.id).await.unwrap());
    assert_eq!(detail.events.len(), 1);
    let e = &detail.events[0];
    assert_eq!(
        (e.kind.as_str(), e.actor.as_str()),
        ("action_failed", "anna")
    );
    assert_eq!(e.channel.as_deref(), Some(CONNECTOR));
    assert_eq!(e.detail["action_id"], failed.id);
    assert_eq!(e.detail["error"], "the channel answered 503");
    assert_eq!(detail.actions, std::slice::from_ref(&failed));

    let sent = desk.retry(BRAND, failed.id, &anna).await.unwrap();
    assert_eq!(sent.id, failed.id, "a retry is the same action");
    assert_eq!(sent.state, ActionState::Sent);
    assert_eq!(sent.attempts, 2);
    assert_eq!(sent.error, None);
    assert_eq!(
        sent.result.as_ref().and_then(|r| r.external_id.as_deref()),
        Some("out-2")
    );
    let calls = channel.calls();
    assert_eq!(calls.len(), 2, "one failed call, one retry: {calls:#?}");
    for call in &calls {
        assert_eq!(call.action.idempotency_key, "req-1", "the same key");
        assert_eq!(
            (call.brand.as_str(), call.connector.as_str()),
            (BRAND, CONNECTOR)
        );
        assert_eq!(call.target.external_id, "m1");
        assert_eq!(
            call.action.kind,
            ActionKind::Reply(Outgoing {
                text: "Sorry! 📦".to_string(),
                attachments: Vec::new()
            })
        );
    }
    let answered = desk.case(BRAND, case.id).await.unwrap();
    assert_eq!(answered.status, CaseStatus::Pending);
    assert_eq!(
        answered.assignee.as_deref(),
        Some("anna"),
        "answering claims"
    );
    assert_eq!(answered.waiting_since, None);
    assert!(answered.first_response_at.is_some());

    // The same request again: the stored record, no call.
    let repeat = desk
        .answer(BRAND, case.id, &anna, reply("Sorry! 📦", Some("req-1")))
        .await
        .unwrap();
    assert_eq!(repeat, sent);
    // A retry of a sent action sends nothing either.
    let again = desk.retry(BRAND, failed.id, &anna).await.unwrap();
    assert_eq!(again, sent);
    assert_eq!(channel.calls().len(), 2, "never sent twice");
    let detail = workflow_only(desk.detail(BRAND, case.id).await.unwrap());
    assert_eq!(detail.actions, [sent]);
    assert_eq!(
        detail
            .events
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>(),
        ["action_failed", "replied"]
    );
    assert!(matches!(
        desk.retry(BRAND, failed.id + 1000, &anna).await,
        Err(CareError::NotFound)
    ));
}

#[tokio::test]
async fn hiding_needs_a_reason() {
    let channel = Recording::failing(0);
    let (desk, case) = desk_with(
        &[message("m1", Direction::Inbound, T0)],
        Arc::clone(&channel),
    )
    .await;
    let anna = agent("anna");
    let hide = |reason: Option<&str>| AnswerRequest {
        action: ActionKind::Hide,
        message: None,
        idempotency_key: None,
        reason: reason.map(str::to_string),
    };
    invalid(desk.answer(BRAND, case.id, &anna, hide(None)).await);
    invalid(desk.answer(BRAND, case.id, &anna, hide(Some(" \t "))).await);
    assert!(channel.calls().is_empty(), "nothing goes out");
    let detail = workflow_only(desk.detail(BRAND, case.id).await.unwrap());
    assert!(detail.actions.is_empty() && detail.events.is_empty());

    let hidden = desk
        .answer(BRAND, case.id, &anna, hide(Some("doxxing")))
        .await
        .unwrap();
    assert_eq!(hidden.state, ActionState::Sent);
    assert_eq!(channel.calls().len(), 1);
    let detail = workflow_only(desk.detail(BRAND, case.id).await.unwrap());
    assert_eq!(detail.events.len(), 1);
    assert_eq!(detail.events[0].kind, "hidden");
    assert_eq!(detail.events[0].detail["reason"], "doxxing");
    assert_eq!(detail.case.status, CaseStatus::New, "hiding is no answer");
}

#[tokio::test]
async fn answering_a_case_someone_else_owns_conflicts() {
    let channel = Recording::failing(0);
    let (desk, case) = desk_with(
        &[message("m1", Direction::Inbound, T0)],
        Arc::clone(&channel),
    )
    .await;
    desk.transition(BRAND, case.id, &agent("bram"), Op::Claim)
        .await
        .unwrap();
    let message = conflict(
        desk.answer(BRAND, case.id, &agent("anna"), reply("Hoi", Some("k")))
            .await,
    );
    assert!(message.contains("bram"), "names the owner: {message:?}");
    assert!(channel.calls().is_empty());
    assert!(
        desk.detail(BRAND, case.id)
            .await
            .unwrap()
            .actions
            .is_empty()
    );
    // Not a second-line role either.
    assert!(matches!(
        desk.answer(
            BRAND,
            case.id,
            &Actor::new("finn", Role::SecondLine),
            reply("Hoi", None)
        )
        .await,
        Err(CareError::Refused(Refusal::Forbidden(_)))
    ));
    // The owner may, and so may an admin.
    desk.answer(BRAND, case.id, &agent("bram"), reply("Hoi", None))
        .await
        .unwrap();
    desk.answer(
        BRAND,
        case.id,
        &Actor::new("lead", Role::Admin),
        reply("Hoi", None),
    )
    .await
    .unwrap();
    assert_eq!(channel.calls().len(), 2);
    assert!(matches!(
        desk.answer(BRAND, case.id + 1000, &agent("bram"), reply("Hoi", None))
            .await,
        Err(CareError::NotFound)
    ));
}

#[tokio::test]
async fn answers_go_to_the_latest_inbound_message_still_there() {
    let channel = Recording::failing(0);
    let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
    commit(
        storage.as_ref(),
        &[
            message("m1", Direction::Inbound, T0),
            message("m2", Direction::Inbound, T0 + MINUTE),
            message("m3", Direction::Inbound, T0 + 2 * MINUTE),
            message("o1", Direction::Outbound, T0 + 3 * MINUTE),
        ],
        &[],
    )
    .await;
    commit(
        storage.as_ref(),
        &[],
        &[MessageUpdate::Deleted(Removal {
            external_id: "m3".to_string(),
            thread_id: None,
            at: None,
            by: None,
        })],
    )
    .await;
    let desk = CareDesk::new(Arc::clone(&storage), channel.clone());
    let case = desk
        .list(&CaseQuery {
            brand: BRAND.to_string(),
            ..CaseQuery::default()
        })
        .await
        .unwrap()
        .remove(0);
    let anna = agent("anna");

    let record = desk
        .answer(BRAND, case.id, &anna, reply("Hoi", None))
        .await
        .unwrap();
    assert_eq!(
        record.target_external_id, "m2",
        "not the outbound o1, not the deleted m3"
    );
    assert_eq!(channel.calls()[0].target.external_id, "m2");
    assert_eq!(channel.calls()[0].target.thread_id, "t1");

    // A named message is answered as named.
    let named = AnswerRequest {
        message: Some("m1".to_string()),
        ..reply("Hoi", None)
    };
    let record = desk.answer(BRAND, case.id, &anna, named).await.unwrap();
    assert_eq!(record.target_external_id, "m1");
    assert_eq!(channel.calls()[1].target.external_id, "m1");
    // But not a deleted or an unknown one.
    let deleted = AnswerRequest {
        message: Some("m3".to_string()),
        ..reply("Hoi", None)
    };
    conflict(desk.answer(BRAND, case.id, &anna, deleted).await);
    let unknown = AnswerRequest {
        message: Some("nope".to_string()),
        ..reply("Hoi", None)
    };
    invalid(desk.answer(BRAND, case.id, &anna, unknown).await);
    assert_eq!(channel.calls().len(), 2);
}

#[tokio::test]
async fn the_audit_trail_lists_every_step_in_order() {
    let channel = Recording::failing(0);
    let (desk, case) = desk_with(
        &[message("m1", Direction::Inbound, T0)],
        Arc::clone(&channel),
    )
    .await;
    let anna = agent("anna");
    let finn = Actor::new("finn", Role::SecondLine);
    let lead = Actor::new("lead", Role::Admin);
    let id = case.id;
    let opened_at = case.version;

    desk.transition(BRAND, id, &anna, Op::Claim).await.unwrap();
    desk.transition(BRAND, id, &anna, Op::Note("Klant is VIP".into()))
        .await
        .unwrap();
    desk.transition(
        BRAND,
        id,
        &anna,
        Op::Escalate {
            team: "finance".into(),
            question: "Terugbetalen?".into(),
        },
    )
    .await
    .unwrap();
    desk.transition(
        BRAND,
        id,
        &finn,
        Op::AnswerEscalation {
            answer: "Ja".into(),
        },
    )
    .await
    .unwrap();
    let reply = desk
        .answer(BRAND, id, &anna, reply("Geregeld!", Some("r-1")))
        .await
        .unwrap();
    desk.transition(BRAND, id, &anna, Op::Close).await.unwrap();
    desk.transition(BRAND, id, &anna, Op::Reopen).await.unwrap();
    desk.transition(BRAND, id, &lead, Op::AssignTeam("tier-2".into()))
        .await
        .unwrap();
    // Refused steps leave no trace.
    assert!(
        desk.transition(BRAND, id, &anna, Op::Release)
            .await
            .is_err()
    );

    let detail = workflow_only(desk.detail(BRAND, id).await.unwrap());
    let steps: Vec<(&str, &str)> = detail
        .events
        .iter()
        .map(|e| (e.kind.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("claimed", "anna"),
            ("noted", "anna"),
            ("escalated", "anna"),
            ("escalation_answered", "finn"),
            ("replied", "anna"),
            ("closed", "anna"),
            ("reopened", "anna"),
            ("assigned", "lead"),
        ]
    );
    assert!(detail.events.windows(2).all(|w| w[0].id < w[1].id));
    assert!(detail.events.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(detail.events.iter().all(|e| e.case_id == id));
    let e = |kind: &str| {
        detail
            .events
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} event"))
    };
    assert_eq!(e("noted").detail["text"], "Klant is VIP");
    assert_eq!(e("escalated").detail["team"], "finance");
    assert_eq!(e("escalated").detail["question"], "Terugbetalen?");
    assert_eq!(e("escalation_answered").detail["answer"], "Ja");
    assert_eq!(e("replied").detail["action_id"], reply.id);
    assert_eq!(e("replied").channel.as_deref(), Some(CONNECTOR));
    assert_eq!(e("closed").channel, None);
    assert_eq!(e("assigned").detail["to_team"], "tier-2");

    let case = detail.case;
    assert_eq!(case.version, opened_at + 8, "one version per write");
    assert_eq!(case.status, CaseStatus::New, "handed to a team: unassigned");
    assert_eq!(
        (case.assignee, case.team.as_deref()),
        (None, Some("tier-2"))
    );
    assert_eq!(case.escalation.unwrap().answer.as_deref(), Some("Ja"));
    assert!(case.first_response_at.is_some());
    assert_eq!(case.closed_at, None);
    assert_eq!(detail.actions.len(), 1);
    assert_eq!(channel.calls().len(), 1);
}

#[tokio::test]
async fn a_retry_whose_message_is_gone_leaves_the_action_failed() {
    let channel = Recording::failing(1);
    let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
    commit(
        storage.as_ref(),
        &[message("m1", Direction::Inbound, T0)],
        &[],
    )
    .await;
    let desk = CareDesk::new(Arc::clone(&storage), channel.clone());
    let case = desk
        .list(&CaseQuery {
            brand: BRAND.to_string(),
            ..CaseQuery::default()
        })
        .await
        .unwrap()
        .remove(0);
    let anna = agent("anna");
    let failed = match desk
        .answer(BRAND, case.id, &anna, reply("Hoi", Some("gone-1")))
        .await
    {
        Err(CareError::ChannelFailed(record)) => *record,
        other => panic!("expected ChannelFailed, got {other:?}"),
    };
    // The customer deletes the message before the retry.
    commit(
        storage.as_ref(),
        &[],
        &[MessageUpdate::Deleted(Removal {
            external_id: "m1".to_string(),
            thread_id: None,
            at: None,
            by: None,
        })],
    )
    .await;
    let message = conflict(desk.retry(BRAND, failed.id, &anna).await);
    assert!(message.contains("deleted"), "{message:?}");
    assert_eq!(
        channel.calls().len(),
        1,
        "nothing is sent to a deleted message"
    );
    let actions = workflow_only(desk.detail(BRAND, case.id).await.unwrap()).actions;
    assert_eq!(
        actions[0].state,
        ActionState::Failed,
        "the action is not left pending (in flight) forever: {actions:#?}"
    );
    assert!(
        actions[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("deleted")
    );
    // And a later retry is answered the same way, not "it is pending".
    let again = conflict(desk.retry(BRAND, failed.id, &anna).await);
    assert!(again.contains("deleted"), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_repeats_and_retries_send_once() {
    let channel = Recording::failing(1);
    let (desk, case) = desk_with(
        &[message("m1", Direction::Inbound, T0)],
        Arc::clone(&channel),
    )
    .await;
    let desk = Arc::new(desk);

    // Ten clients repeat one request at once: one action, one call.
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let desk = Arc::clone(&desk);
            tokio::spawn(async move {
                desk.answer(BRAND, case.id, &agent("anna"), reply("Hoi", Some("same")))
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for handle in handles {
        match handle.await.unwrap() {
            Ok(record) => ids.push(record.id),
            Err(CareError::ChannelFailed(record)) => ids.push(record.id),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one action for one key: {ids:?}");
    assert_eq!(channel.calls().len(), 1, "the channel is called once");

    // The call failed; ten retries at once send it once more.
    let action = ids[0];
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let desk = Arc::clone(&desk);
            tokio::spawn(async move { desk.retry(BRAND, action, &agent("anna")).await })
        })
        .collect();
    let mut sent = 0;
    for handle in handles {
        match handle.await.unwrap() {
            Ok(record) if record.state == ActionState::Sent => sent += 1,
            // Another retry is in flight.
            Err(CareError::Refused(Refusal::Conflict(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(sent >= 1);
    assert_eq!(channel.calls().len(), 2, "one retry reached the channel");
    let detail = workflow_only(desk.detail(BRAND, case.id).await.unwrap());
    assert_eq!(detail.actions.len(), 1);
    assert_eq!(
        (detail.actions[0].state, detail.actions[0].attempts),
        (ActionState::Sent, 2)
    );
}

/// The detail without the events ingest writes (`opened`, and `reopened`
/// by a customer writing again), which these tests do not look at.
fn workflow_only(mut detail: super::desk::CaseDetail) -> super::desk::CaseDetail {
    detail.events.retain(|e| !super::suite::is_ingest_event(e));
    detail
}
