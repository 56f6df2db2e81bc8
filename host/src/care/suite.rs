//! The conformance suite every backend's [`CareStore`] must pass.
//!
//! Like [`crate::queue::suite`], each property is its own function, so a
//! backend's tests can run one per test and a failure names the broken
//! property; [`run_all`] runs them all against one storage. Every function
//! works in brands of its own (random suffix), so the properties share a
//! database without seeing each other's data. Only the [`Storage`] and
//! [`CareStore`] traits are used, nothing of a particular backend: cases
//! are opened by ingesting messages, exactly as in production.

use serde_json::json;

use super::store::{ActionOutcome, CareStore, NewToken};
use super::{ActionState, Case, CaseEvent, CaseQuery, Escalation, NewAction, NewEvent, Role};
use crate::capabilities::ConnectorId;
use crate::model::{
    ActionKind, ActionResult, Author, Direction, Engagement, Message, MessageKind, MessageUpdate,
    Outgoing, TimestampMs, Visibility,
};
use crate::queue::{CaseStatus, CommitOutcome, IngestBatch, MessageTriage, Storage};
use crate::triage::{Bucket, Reason};

/// Runs every property against `storage`.
pub async fn run_all(storage: &dyn Storage) {
    ignored_messages_open_no_case(storage).await;
    mismatched_triage_is_refused(storage).await;
    triage_sets_and_raises_priority(storage).await;
    inbound_reopens_with_new_priority(storage).await;
    waiting_since_keeps_the_oldest_unanswered(storage).await;
    outbound_never_changes_priority(storage).await;
    write_case_is_compare_and_swap(storage).await;
    care_reads_are_isolated_per_brand(storage).await;
    case_list_orders_filters_and_pages(storage).await;
    actions_are_idempotent_and_retried(storage).await;
    search_finds_messages_and_notes(storage).await;
    search_input_is_never_syntax(storage).await;
    tokens_create_list_revoke(storage).await;
}

/// 2025-01-06 09:00 UTC, a Monday morning.
const T0: TimestampMs = 1_736_154_000_000;
const MINUTE: TimestampMs = 60_000;

/// A brand name no other run or property uses.
fn unique_brand(name: &str) -> String {
    format!("care-{name}-{:016x}", fastrand::u64(..))
}

fn owner(brand: &str, connector: &str) -> ConnectorId {
    ConnectorId {
        brand: brand.to_string(),
        connector: connector.to_string(),
    }
}

fn store(storage: &dyn Storage) -> &dyn CareStore {
    storage
        .care()
        .expect("this backend must offer the case workflow (Storage::care)")
}

/// A customer's message in thread `thread_id`.
fn inbound(external_id: &str, thread_id: &str, text: &str, created_at: TimestampMs) -> Message {
    Message {
        external_id: external_id.to_string(),
        thread_id: thread_id.to_string(),
        in_reply_to: (external_id != thread_id).then(|| thread_id.to_string()),
        kind: MessageKind::Mention,
        visibility: Visibility::Public,
        direction: Direction::Inbound,
        addressed_to_brand: true,
        author: Author {
            id: "uid-sanne".to_string(),
            handle: "sanne_dv".to_string(),
            display_name: "Sanne 🌷".to_string(),
            followers: Some(1_234),
            verified: false,
            profile_url: None,
            email: None,
        },
        text: text.to_string(),
        html: None,
        subject: None,
        language: Some("nl".to_string()),
        created_at,
        permalink: None,
        attachments: Vec::new(),
        metrics: Engagement::default(),
        properties: Vec::new(),
    }
}

/// The brand's own message in a thread.
fn outbound(external_id: &str, thread_id: &str, text: &str, created_at: TimestampMs) -> Message {
    Message {
        kind: MessageKind::Reply,
        direction: Direction::Outbound,
        addressed_to_brand: false,
        author: Author {
            id: "uid-acme".to_string(),
            handle: "AcmeNL".to_string(),
            display_name: "Acme Nederland".to_string(),
            followers: None,
            verified: true,
            profile_url: None,
            email: None,
        },
        ..inbound(external_id, thread_id, text, created_at)
    }
}

/// A triage decision with one reason.
fn triage(score: u8, bucket: Bucket, team: Option<&str>, sentiment: f64) -> MessageTriage {
    MessageTriage {
        ignore: false,
        score,
        bucket,
        reasons: vec![Reason {
            points: i32::from(score),
            text: format!("scored {score} ✓"),
        }],
        team: team.map(str::to_string),
        sentiment,
    }
}

/// What triage says about spam.
fn ignored() -> MessageTriage {
    MessageTriage {
        ignore: true,
        score: 95,
        bucket: Bucket::Urgent,
        reasons: vec![Reason {
            points: 0,
            text: "ignored: spam".to_string(),
        }],
        team: Some("spam-team".to_string()),
        sentiment: -1.0,
    }
}

/// Commits `messages` with their triage (`triage` empty: untriaged) and
/// `updates`.
async fn ingest(
    storage: &dyn Storage,
    owner: &ConnectorId,
    messages: &[Message],
    triage: &[MessageTriage],
    updates: &[MessageUpdate],
) -> CommitOutcome {
    let batch = IngestBatch {
        channel: "twitter",
        messages,
        triage,
        updates,
        next_cursor: None,
    };
    storage
        .commit(owner, batch)
        .await
        .unwrap_or_else(|e| panic!("commit for {owner} should succeed, got: {e}"))
}

/// Every case of `brand` (the queue view's largest page).
async fn all_cases(storage: &dyn Storage, brand: &str) -> Vec<Case> {
    list(
        storage,
        CaseQuery {
            brand: brand.to_string(),
            limit: 500,
            ..CaseQuery::default()
        },
    )
    .await
}

async fn list(storage: &dyn Storage, query: CaseQuery) -> Vec<Case> {
    store(storage)
        .case_list(&query)
        .await
        .unwrap_or_else(|e| panic!("listing cases with {query:?} should succeed, got: {e}"))
}

/// The case of thread `thread_id` of `brand`.
async fn case_of_thread(storage: &dyn Storage, brand: &str, thread_id: &str) -> Case {
    let cases = all_cases(storage, brand).await;
    cases
        .iter()
        .find(|c| c.thread_id == thread_id)
        .cloned()
        .unwrap_or_else(|| panic!("expected a case for thread {thread_id:?}, got {cases:#?}"))
}

/// Case `id` as stored; it must exist.
async fn reread(storage: &dyn Storage, case: &Case) -> Case {
    store(storage)
        .case(&case.brand, case.id)
        .await
        .unwrap_or_else(|e| panic!("reading case {} should succeed, got: {e}", case.id))
        .unwrap_or_else(|| panic!("case {} of {} should exist", case.id, case.brand))
}

fn event(kind: &'static str, actor: &str, detail: serde_json::Value) -> NewEvent {
    NewEvent {
        at: T0 + 60 * MINUTE,
        actor: actor.to_string(),
        kind,
        channel: None,
        detail,
    }
}

/// Writes `case` changed by `edit` (as the workflow would) and returns it.
async fn change(storage: &dyn Storage, case: &Case, edit: impl FnOnce(&mut Case)) -> Case {
    let mut next = case.clone();
    edit(&mut next);
    next.version = case.version + 1;
    let written = store(storage)
        .write_case(&next, case.version, &event("assigned", "suite", json!({})))
        .await
        .unwrap_or_else(|e| panic!("writing case {} should succeed, got: {e}", case.id));
    assert!(
        written,
        "case {} at version {} is current",
        case.id, case.version
    );
    next
}

fn ids(cases: &[Case]) -> Vec<i64> {
    cases.iter().map(|c| c.id).collect()
}

/// A message triage ignores is stored (nothing is lost) but opens no case
/// and reopens none; one in a thread with a case joins it quietly.
pub async fn ignored_messages_open_no_case(storage: &dyn Storage) {
    let brand = unique_brand("ignored");
    let x = owner(&brand, "x");

    let out = ingest(
        storage,
        &x,
        &[inbound(
            "i1",
            "spam-thread",
            "Koop nu goedkope volgers!!!",
            T0,
        )],
        &[ignored()],
        &[],
    )
    .await;
    assert_eq!(
        (out.inserted, out.ignored, out.cases_opened),
        (1, 1, 0),
        "an ignored message is stored and opens no case: {out:?}"
    );
    let messages = storage.messages(&brand, 0).await.unwrap();
    assert_eq!(messages.len(), 1, "the ignored message is stored");
    assert_eq!(messages[0].message.external_id, "i1");
    assert_eq!(messages[0].case_id, None, "it belongs to no case");
    assert!(
        all_cases(storage, &brand).await.is_empty(),
        "no case is opened"
    );

    // A real case, closed; an ignored message in its thread does not reopen
    // it, nor change its triage.
    ingest(
        storage,
        &x,
        &[inbound("r1", "real", "Mijn pakket is zoek", T0 + MINUTE)],
        &[triage(40, Bucket::Normal, None, -0.2)],
        &[],
    )
    .await;
    let case = case_of_thread(storage, &brand, "real").await;
    let closed = change(storage, &case, |c| {
        c.status = CaseStatus::Closed;
        c.waiting_since = None;
        c.closed_at = Some(T0 + 2 * MINUTE);
    })
    .await;
    let out = ingest(
        storage,
        &x,
        &[inbound(
            "r2",
            "real",
            "Koop nu goedkope volgers!!!",
            T0 + 3 * MINUTE,
        )],
        &[ignored()],
        &[],
    )
    .await;
    assert_eq!((out.inserted, out.ignored, out.cases_opened), (1, 1, 0));
    let after = reread(storage, &case).await;
    assert_eq!(after.status, CaseStatus::Closed, "ignored: no reopen");
    assert_eq!(after.closed_at, closed.closed_at);
    assert_eq!(after.waiting_since, None, "ignored: nothing waits");
    assert_eq!(
        (
            after.priority,
            after.bucket,
            &after.reasons,
            after.team.as_deref()
        ),
        (40, Bucket::Normal, &case.reasons, None),
        "ignored: the case keeps its triage"
    );
    let messages = storage.messages(&brand, 0).await.unwrap();
    let joined = messages
        .iter()
        .find(|m| m.message.external_id == "r2")
        .expect("the ignored message is stored");
    assert_eq!(joined.case_id, Some(case.id), "it joins its thread's case");

    // Nor does it reopen a pending case.
    let reopened = change(storage, &after, |c| {
        c.status = CaseStatus::Pending;
        c.closed_at = None;
    })
    .await;
    ingest(
        storage,
        &x,
        &[inbound("r3", "real", "spam again", T0 + 4 * MINUTE)],
        &[ignored()],
        &[],
    )
    .await;
    let after = reread(storage, &case).await;
    assert_eq!(after.status, CaseStatus::Pending);
    assert_eq!(after.waiting_since, None);
    assert_eq!(after.priority, reopened.priority);
}

/// A batch whose triage does not match its messages one to one is refused
/// as a whole: nothing is stored, no case opened.
pub async fn mismatched_triage_is_refused(storage: &dyn Storage) {
    let brand = unique_brand("mismatch");
    let x = owner(&brand, "x");
    let messages = [inbound("a", "a", "Een", T0), inbound("b", "b", "Twee", T0)];
    let triage = [triage(50, Bucket::Normal, None, 0.0)];
    let result = storage
        .commit(
            &x,
            IngestBatch {
                channel: "twitter",
                messages: &messages,
                triage: &triage,
                updates: &[],
                next_cursor: Some("c1"),
            },
        )
        .await;
    assert!(result.is_err(), "two messages, one decision: {result:?}");
    assert!(storage.messages(&brand, 0).await.unwrap().is_empty());
    assert!(all_cases(storage, &brand).await.is_empty());
    assert_eq!(storage.cursor(&x).await.unwrap(), None, "nor the cursor");
}

/// A case takes the triage of its opening message; a more urgent later
/// message raises it (with its bucket, reasons and sentiment), a less
/// urgent one does not; a team goes on a case that has none; every change
/// bumps the version.
pub async fn triage_sets_and_raises_priority(storage: &dyn Storage) {
    let brand = unique_brand("triage");
    let x = owner(&brand, "x");

    let opening = triage(40, Bucket::Normal, Some("billing"), -0.25);
    let out = ingest(
        storage,
        &x,
        &[inbound("m1", "t1", "Factuur klopt niet", T0)],
        std::slice::from_ref(&opening),
        &[],
    )
    .await;
    assert_eq!(out.cases_opened, 1);
    let case = case_of_thread(storage, &brand, "t1").await;
    assert_eq!(case.status, CaseStatus::New);
    assert_eq!(case.assignee, None);
    assert_eq!(case.priority, 40);
    assert_eq!(case.bucket, Bucket::Normal);
    assert_eq!(case.reasons, opening.reasons);
    assert_eq!(case.team.as_deref(), Some("billing"));
    assert_eq!(case.sentiment, -0.25);
    assert_eq!(case.waiting_since, Some(T0), "the opening message waits");
    assert_eq!(case.first_response_at, None);
    assert_eq!(case.message_count, 1);

    // More urgent: raises, the team stays.
    let urgent = triage(85, Bucket::Urgent, Some("social"), -0.9);
    ingest(
        storage,
        &x,
        &[inbound("m2", "t1", "Dit is echt schandalig", T0 + MINUTE)],
        std::slice::from_ref(&urgent),
        &[],
    )
    .await;
    let raised = reread(storage, &case).await;
    assert_eq!(
        (
            raised.priority,
            raised.bucket,
            &raised.reasons,
            raised.sentiment
        ),
        (85, Bucket::Urgent, &urgent.reasons, -0.9),
        "a more urgent message raises the case"
    );
    assert_eq!(
        raised.team.as_deref(),
        Some("billing"),
        "the team of a case that has one stays"
    );
    assert_eq!(raised.status, CaseStatus::New);
    assert!(
        raised.version > case.version,
        "ingest bumps the version: {} → {}",
        case.version,
        raised.version
    );

    // Less urgent: nothing of the triage changes.
    ingest(
        storage,
        &x,
        &[inbound("m3", "t1", "Hallo?", T0 + 2 * MINUTE)],
        &[triage(10, Bucket::Low, None, 0.5)],
        &[],
    )
    .await;
    let kept = reread(storage, &case).await;
    assert_eq!(
        (kept.priority, kept.bucket, &kept.reasons, kept.sentiment),
        (85, Bucket::Urgent, &urgent.reasons, -0.9),
        "a less urgent message does not lower the case"
    );
    assert_eq!(kept.message_count, 3);
    assert_eq!(kept.waiting_since, Some(T0));
    assert!(kept.version > raised.version, "every inbound message bumps");

    // A case without a team takes the first team triage names.
    ingest(
        storage,
        &x,
        &[inbound("n1", "t2", "Vraag", T0)],
        &[triage(20, Bucket::Low, None, 0.0)],
        &[],
    )
    .await;
    let teamless = case_of_thread(storage, &brand, "t2").await;
    assert_eq!(teamless.team, None);
    ingest(
        storage,
        &x,
        &[inbound("n2", "t2", "Nog een vraag", T0 + MINUTE)],
        &[triage(5, Bucket::Low, Some("sales"), 0.0)],
        &[],
    )
    .await;
    let teamed = reread(storage, &teamless).await;
    assert_eq!(teamed.team.as_deref(), Some("sales"));
    assert_eq!(teamed.priority, 20, "team, not priority");

    // Untriaged messages count as priority 0.
    ingest(storage, &x, &[inbound("u1", "t3", "Hoi", T0)], &[], &[]).await;
    let untriaged = case_of_thread(storage, &brand, "t3").await;
    assert_eq!(
        (
            untriaged.priority,
            untriaged.bucket,
            untriaged.reasons.len()
        ),
        (0, Bucket::Low, 0)
    );
}

/// A customer writing again reopens a pending or closed case — to `open`
/// when it has an owner, else `new` — and the case takes the new message's
/// priority, even a lower one.
pub async fn inbound_reopens_with_new_priority(storage: &dyn Storage) {
    let brand = unique_brand("reopen");
    let x = owner(&brand, "x");
    ingest(
        storage,
        &x,
        &[
            inbound("p1", "pending", "Storing!", T0),
            inbound("c1", "closed", "Boos!", T0),
        ],
        &[
            triage(90, Bucket::Urgent, None, -0.8),
            triage(70, Bucket::High, None, -0.6),
        ],
        &[],
    )
    .await;

    // Pending and owned → open, with the new (lower) priority.
    let pending = case_of_thread(storage, &brand, "pending").await;
    let pending = change(storage, &pending, |c| {
        c.status = CaseStatus::Pending;
        c.assignee = Some("anna".to_string());
        c.waiting_since = None;
        c.first_response_at = Some(T0 + MINUTE);
    })
    .await;
    let later = triage(20, Bucket::Low, None, 0.3);
    ingest(
        storage,
        &x,
        &[inbound("p2", "pending", "Nog één ding", T0 + 5 * MINUTE)],
        std::slice::from_ref(&later),
        &[],
    )
    .await;
    let after = reread(storage, &pending).await;
    assert_eq!(after.status, CaseStatus::Open, "owned: reopened to open");
    assert_eq!(after.assignee.as_deref(), Some("anna"));
    assert_eq!(
        (
            after.priority,
            after.bucket,
            &after.reasons,
            after.sentiment
        ),
        (20, Bucket::Low, &later.reasons, 0.3),
        "a reopened case takes the new message's priority"
    );
    assert_eq!(after.waiting_since, Some(T0 + 5 * MINUTE));
    assert_eq!(
        after.first_response_at,
        Some(T0 + MINUTE),
        "the first response stays"
    );
    assert!(after.version > pending.version);

    // Closed and unowned → new; closed_at cleared.
    let closed = case_of_thread(storage, &brand, "closed").await;
    let closed = change(storage, &closed, |c| {
        c.status = CaseStatus::Closed;
        c.waiting_since = None;
        c.closed_at = Some(T0 + 2 * MINUTE);
    })
    .await;
    ingest(
        storage,
        &x,
        &[inbound("c2", "closed", "Nog steeds boos", T0 + 6 * MINUTE)],
        &[triage(30, Bucket::Normal, None, -0.1)],
        &[],
    )
    .await;
    let after = reread(storage, &closed).await;
    assert_eq!(after.status, CaseStatus::New, "unowned: reopened to new");
    assert_eq!(after.closed_at, None, "a reopened case is not closed");
    assert_eq!((after.priority, after.bucket), (30, Bucket::Normal));
    assert_eq!(after.waiting_since, Some(T0 + 6 * MINUTE));
    assert!(after.version > closed.version);

    // Closed but owned → open.
    let owned = change(storage, &after, |c| {
        c.status = CaseStatus::Closed;
        c.assignee = Some("bram".to_string());
        c.waiting_since = None;
        c.closed_at = Some(T0 + 7 * MINUTE);
    })
    .await;
    ingest(
        storage,
        &x,
        &[inbound("c3", "closed", "Hallo?", T0 + 8 * MINUTE)],
        &[triage(35, Bucket::Normal, None, 0.0)],
        &[],
    )
    .await;
    let after = reread(storage, &owned).await;
    assert_eq!(after.status, CaseStatus::Open);
    assert_eq!(after.assignee.as_deref(), Some("bram"));
    assert_eq!(after.priority, 35);

    // An escalated case is not reopened (it is active): it keeps its
    // status and the higher priority.
    let escalated = change(storage, &after, |c| c.status = CaseStatus::Escalated).await;
    ingest(
        storage,
        &x,
        &[inbound("c4", "closed", "??", T0 + 9 * MINUTE)],
        &[triage(5, Bucket::Low, None, 0.0)],
        &[],
    )
    .await;
    let after = reread(storage, &escalated).await;
    assert_eq!(after.status, CaseStatus::Escalated);
    assert_eq!(after.priority, 35);
}

/// `waiting_since` is set by an inbound message when nothing waits, and
/// stays at the oldest unanswered one (also when an older message arrives
/// late).
pub async fn waiting_since_keeps_the_oldest_unanswered(storage: &dyn Storage) {
    let brand = unique_brand("waiting");
    let x = owner(&brand, "x");
    ingest(
        storage,
        &x,
        &[inbound("w1", "w", "Eerste", T0 + 10 * MINUTE)],
        &[],
        &[],
    )
    .await;
    let case = case_of_thread(storage, &brand, "w").await;
    assert_eq!(case.waiting_since, Some(T0 + 10 * MINUTE));

    ingest(
        storage,
        &x,
        &[inbound("w2", "w", "Tweede", T0 + 20 * MINUTE)],
        &[],
        &[],
    )
    .await;
    let after = reread(storage, &case).await;
    assert_eq!(
        after.waiting_since,
        Some(T0 + 10 * MINUTE),
        "a newer message does not move the wait"
    );

    ingest(
        storage,
        &x,
        &[inbound("w0", "w", "Te laat bezorgd", T0 + 5 * MINUTE)],
        &[],
        &[],
    )
    .await;
    let after = reread(storage, &case).await;
    assert_eq!(
        after.waiting_since,
        Some(T0 + 5 * MINUTE),
        "an older message that arrives late waits longest"
    );
    assert_eq!(after.first_message_at, T0 + 5 * MINUTE);

    // An open case that nothing waits on (say, answered without leaving
    // `open`): the next inbound message starts the wait.
    let answered = change(storage, &after, |c| {
        c.status = CaseStatus::Open;
        c.assignee = Some("anna".to_string());
        c.waiting_since = None;
    })
    .await;
    ingest(
        storage,
        &x,
        &[inbound("w3", "w", "Derde", T0 + 30 * MINUTE)],
        &[],
        &[],
    )
    .await;
    let after = reread(storage, &answered).await;
    assert_eq!(after.status, CaseStatus::Open);
    assert_eq!(after.waiting_since, Some(T0 + 30 * MINUTE));
}

/// The brand's own messages join their case but never change its triage,
/// status or wait, whatever triage says about them.
pub async fn outbound_never_changes_priority(storage: &dyn Storage) {
    let brand = unique_brand("outbound");
    let x = owner(&brand, "x");
    ingest(
        storage,
        &x,
        &[inbound("o1", "o", "Help", T0)],
        &[triage(30, Bucket::Normal, None, -0.3)],
        &[],
    )
    .await;
    let case = case_of_thread(storage, &brand, "o").await;
    let pending = change(storage, &case, |c| {
        c.status = CaseStatus::Pending;
        c.assignee = Some("anna".to_string());
        c.waiting_since = None;
    })
    .await;
    let out = ingest(
        storage,
        &x,
        &[outbound("o2", "o", "We kijken ernaar! ^Anna", T0 + MINUTE)],
        &[triage(100, Bucket::Urgent, Some("pr"), -1.0)],
        &[],
    )
    .await;
    assert_eq!((out.inserted, out.cases_opened), (1, 0));
    let after = reread(storage, &case).await;
    assert_eq!(after.status, CaseStatus::Pending, "outbound never reopens");
    assert_eq!(
        (
            after.priority,
            after.bucket,
            &after.reasons,
            after.sentiment
        ),
        (30, Bucket::Normal, &case.reasons, -0.3),
        "outbound never changes priority"
    );
    assert_eq!(after.team, None, "outbound sets no team");
    assert_eq!(after.waiting_since, None, "outbound starts no wait");
    assert_eq!(after.message_count, 2, "it joins the case");
    assert_eq!(after.assignee, pending.assignee);

    // On an open case too.
    let open = change(storage, &after, |c| {
        c.status = CaseStatus::Open;
        c.waiting_since = Some(T0);
    })
    .await;
    ingest(
        storage,
        &x,
        &[outbound("o3", "o", "Nog even geduld", T0 + 2 * MINUTE)],
        &[triage(99, Bucket::Urgent, None, -1.0)],
        &[],
    )
    .await;
    let after = reread(storage, &open).await;
    assert_eq!((after.priority, after.status), (30, CaseStatus::Open));
    assert_eq!(after.waiting_since, Some(T0));
}

/// A write names the version it read: a stale one writes neither the case
/// nor the event; a current one persists every workflow field and the
/// event.
pub async fn write_case_is_compare_and_swap(storage: &dyn Storage) {
    let brand = unique_brand("cas");
    let x = owner(&brand, "x");
    ingest(
        storage,
        &x,
        &[inbound("a1", "a", "Waar blijft mijn geld?", T0)],
        &[triage(60, Bucket::High, None, -0.5)],
        &[],
    )
    .await;
    let care = store(storage);
    let case = case_of_thread(storage, &brand, "a").await;

    let escalation = Escalation {
        team: "finance ✓".to_string(),
        question: "Mag deze klant een \"coulance\"-terugbetaling?\nRegel twee".to_string(),
        asked_by: "anna".to_string(),
        asked_at: T0 + 3 * MINUTE,
        answer: None,
        answered_by: None,
        answered_at: None,
    };
    let mut next = case.clone();
    next.status = CaseStatus::Escalated;
    next.assignee = Some("anna".to_string());
    next.team = Some("tier-1".to_string());
    next.waiting_since = Some(T0 + MINUTE);
    next.first_response_at = Some(T0 + 2 * MINUTE);
    next.closed_at = Some(T0 + 4 * MINUTE);
    next.escalation = Some(escalation.clone());
    next.version = case.version + 1;
    let detail = json!({
        "team": "finance ✓",
        "question": escalation.question,
        "nested": {"list": [1, 2.5, null, true], "empty": {}},
    });
    let ev = NewEvent {
        at: T0 + 3 * MINUTE,
        actor: "anna".to_string(),
        kind: "escalated",
        channel: Some("x".to_string()),
        detail: detail.clone(),
    };

    for stale in [case.version + 1, case.version - 1, case.version + 100] {
        let written = care.write_case(&next, stale, &ev).await.unwrap();
        assert!(!written, "version {stale} is not the stored one");
    }
    assert_eq!(
        reread(storage, &case).await,
        case,
        "a stale write changes nothing"
    );
    assert!(
        workflow_events(care.case_events(&brand, case.id).await.unwrap()).is_empty(),
        "a stale write writes no event"
    );

    assert!(care.write_case(&next, case.version, &ev).await.unwrap());
    let stored = reread(storage, &case).await;
    assert_eq!(stored, next, "every workflow field is persisted");
    let events = workflow_events(care.case_events(&brand, case.id).await.unwrap());
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(
        (e.case_id, e.at, e.actor.as_str(), e.kind.as_str()),
        (case.id, T0 + 3 * MINUTE, "anna", "escalated")
    );
    assert_eq!(e.channel.as_deref(), Some("x"));
    assert_eq!(e.detail, detail, "the detail JSON round-trips");

    // The same expected version again is now stale: the first write won.
    let mut other = case.clone();
    other.assignee = Some("bram".to_string());
    other.version = case.version + 1;
    assert!(
        !care
            .write_case(&other, case.version, &event("claimed", "bram", json!({})))
            .await
            .unwrap(),
        "of two writes from one read, only the first succeeds"
    );
    assert_eq!(
        reread(storage, &case).await.assignee.as_deref(),
        Some("anna")
    );

    // The answered escalation and a cleared one round-trip too.
    let mut answered = stored.clone();
    let mut done = escalation.clone();
    done.answer = Some("Ja, €25 — akkoord".to_string());
    done.answered_by = Some("finn".to_string());
    done.answered_at = Some(T0 + 9 * MINUTE);
    answered.escalation = Some(done);
    answered.status = CaseStatus::Open;
    answered.closed_at = None;
    answered.team = None;
    answered.waiting_since = None;
    answered.version = stored.version + 1;
    assert!(
        care.write_case(
            &answered,
            stored.version,
            &event("escalation_answered", "finn", json!({}))
        )
        .await
        .unwrap()
    );
    assert_eq!(reread(storage, &case).await, answered);
    let mut cleared = answered.clone();
    cleared.escalation = None;
    cleared.assignee = None;
    cleared.version = answered.version + 1;
    assert!(
        care.write_case(
            &cleared,
            answered.version,
            &event("released", "anna", json!(null))
        )
        .await
        .unwrap()
    );
    assert_eq!(reread(storage, &case).await, cleared);

    let events = workflow_events(care.case_events(&brand, case.id).await.unwrap());
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["escalated", "escalation_answered", "released"],
        "events in the order they were written"
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(events[2].detail, json!(null));
    assert_eq!(events[2].channel, None);

    // A case that does not exist is not written.
    let mut ghost = cleared.clone();
    ghost.id = i64::MAX - 7;
    assert!(
        !care
            .write_case(&ghost, cleared.version, &event("claimed", "x", json!({})))
            .await
            .unwrap()
    );
}

/// Every read of the case workflow is scoped to its brand: another brand's
/// name with this brand's ids finds nothing.
pub async fn care_reads_are_isolated_per_brand(storage: &dyn Storage) {
    let ours = unique_brand("iso-ours");
    let theirs = unique_brand("iso-theirs");
    let care = store(storage);
    // The same connector name and thread ids in both brands.
    for brand in [&ours, &theirs] {
        ingest(
            storage,
            &owner(brand, "x"),
            &[inbound("m1", "t1", &format!("geheim {brand} zeppelin"), T0)],
            &[triage(50, Bucket::Normal, None, 0.0)],
            &[],
        )
        .await;
    }
    let case = case_of_thread(storage, &ours, "t1").await;
    let their_case = case_of_thread(storage, &theirs, "t1").await;
    assert_ne!(case.id, their_case.id, "one case per brand");
    let noted = change(storage, &case, |_| {}).await;
    care.write_case(
        &Case {
            version: noted.version + 1,
            ..noted.clone()
        },
        noted.version,
        &event("noted", "anna", json!({"text": "vertrouwelijk zeppelin"})),
    )
    .await
    .unwrap();
    let (action, _) = care
        .begin_action(&NewAction {
            brand: ours.clone(),
            case_id: case.id,
            connector: "x".to_string(),
            target_external_id: "m1".to_string(),
            idempotency_key: "iso-key".to_string(),
            action: ActionKind::React("like".to_string()),
            requested_by: "anna".to_string(),
            at: T0,
        })
        .await
        .unwrap();
    care.finish_action(action.id, &ActionOutcome::Failed("down".into()), T0)
        .await
        .unwrap();

    // Our own reads see it all.
    assert!(care.case(&ours, case.id).await.unwrap().is_some());
    assert_eq!(care.case_messages(&ours, case.id).await.unwrap().len(), 1);
    assert_eq!(
        workflow_events(care.case_events(&ours, case.id).await.unwrap()).len(),
        2
    );
    assert_eq!(care.case_actions(&ours, case.id).await.unwrap().len(), 1);
    assert_eq!(care.search(&ours, "zeppelin", 10).await.unwrap().len(), 1);

    // Theirs, with our ids, see nothing of ours.
    assert_eq!(care.case(&theirs, case.id).await.unwrap(), None);
    assert!(
        care.case_messages(&theirs, case.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(workflow_events(care.case_events(&theirs, case.id).await.unwrap()).is_empty());
    assert!(
        care.case_actions(&theirs, case.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        care.retry_action(&theirs, action.id, T0).await.unwrap(),
        None,
        "another brand cannot retry our action"
    );
    assert_eq!(
        care.case_actions(&ours, case.id).await.unwrap()[0].state,
        ActionState::Failed,
        "and it stays failed"
    );
    let hits = care.search(&theirs, "zeppelin", 10).await.unwrap();
    assert_eq!(
        hits.iter().map(|h| h.case_id).collect::<Vec<_>>(),
        [their_case.id],
        "their search finds their case only"
    );
    assert!(
        care.search(&theirs, "vertrouwelijk", 10)
            .await
            .unwrap()
            .is_empty(),
        "our notes are not in their search"
    );
    assert!(
        care.search(&theirs, &ours, 10).await.unwrap().is_empty(),
        "nor is our text"
    );
    assert_eq!(ids(&all_cases(storage, &theirs).await), [their_case.id]);
    assert_eq!(ids(&all_cases(storage, &ours).await), [case.id]);
    // A brand whose name extends ours (the index keys brands by name):
    // neither sees the other.
    let longer = format!("{ours}-nl");
    ingest(
        storage,
        &owner(&longer, "x"),
        &[inbound("m1", "t1", "langer zeppelin", T0)],
        &[],
        &[],
    )
    .await;
    let longer_case = case_of_thread(storage, &longer, "t1").await;
    assert_eq!(
        care.search(&ours, "zeppelin", 10)
            .await
            .unwrap()
            .iter()
            .map(|h| h.case_id)
            .collect::<Vec<_>>(),
        [case.id]
    );
    assert!(care.search(&ours, "langer", 10).await.unwrap().is_empty());
    assert!(care.search(&longer, "geheim", 10).await.unwrap().is_empty());
    assert_eq!(ids(&all_cases(storage, &longer).await), [longer_case.id]);
    assert_eq!(care.case(&longer, case.id).await.unwrap(), None);
    assert_eq!(ids(&all_cases(storage, &ours).await), [case.id]);
    let unknown = unique_brand("iso-nobody");
    assert!(all_cases(storage, &unknown).await.is_empty());
    assert_eq!(care.case(&unknown, case.id).await.unwrap(), None);

    // Their write with our case id changes nothing of ours.
    let current = reread(storage, &case).await;
    let mut forged = current.clone();
    forged.brand = theirs.clone();
    forged.assignee = Some("mallory".to_string());
    forged.version = current.version + 1;
    assert!(
        !care
            .write_case(
                &forged,
                current.version,
                &event("claimed", "mallory", json!({}))
            )
            .await
            .unwrap(),
        "a write under another brand does not reach our case"
    );
    assert_eq!(reread(storage, &case).await, current);
    assert!(workflow_events(care.case_events(&theirs, case.id).await.unwrap()).is_empty());
}

/// The queue view: priority first, then the longest waiting, cases nothing
/// waits on last; filters by status, owner, no owner and team; pages.
pub async fn case_list_orders_filters_and_pages(storage: &dyn Storage) {
    let brand = unique_brand("list");
    let x = owner(&brand, "x");
    // thread, created_at, priority, team
    let plan: [(&str, TimestampMs, u8, Option<&str>); 5] = [
        ("c1", T0 + 2 * MINUTE, 50, None),
        ("c2", T0 + MINUTE, 50, Some("billing")),
        ("c3", T0 + 5 * MINUTE, 90, None),
        ("c4", T0 - 10 * MINUTE, 50, None),
        ("c5", T0, 10, Some("billing")),
    ];
    let messages: Vec<Message> = plan
        .iter()
        .map(|(thread, at, _, _)| inbound(&format!("{thread}-m"), thread, "Vraag", *at))
        .collect();
    let triages: Vec<MessageTriage> = plan
        .iter()
        .map(|(_, _, score, team)| triage(*score, Bucket::Normal, *team, 0.0))
        .collect();
    ingest(storage, &x, &messages, &triages, &[]).await;
    let mut case = std::collections::HashMap::new();
    for (thread, ..) in plan {
        case.insert(thread, case_of_thread(storage, &brand, thread).await);
    }
    // c4 is answered (nothing waits: last among its priority, although it
    // waited longest); c1 is owned by anna, c4 too.
    change(storage, &case["c4"], |c| {
        c.status = CaseStatus::Pending;
        c.assignee = Some("anna".to_string());
        c.waiting_since = None;
    })
    .await;
    change(storage, &case["c1"], |c| {
        c.status = CaseStatus::Open;
        c.assignee = Some("anna".to_string());
    })
    .await;
    change(storage, &case["c3"], |c| {
        c.status = CaseStatus::Open;
        c.assignee = Some("bram".to_string());
    })
    .await;
    let id = |thread: &str| case[thread].id;
    let query = |edit: &dyn Fn(&mut CaseQuery)| {
        let mut q = CaseQuery {
            brand: brand.clone(),
            ..CaseQuery::default()
        };
        edit(&mut q);
        q
    };

    let all = list(storage, query(&|_| {})).await;
    assert_eq!(
        ids(&all),
        [id("c3"), id("c2"), id("c1"), id("c4"), id("c5")],
        "priority desc, then oldest waiting, non-waiting last: {all:#?}"
    );
    let status = list(storage, query(&|q| q.status = Some(CaseStatus::Pending))).await;
    assert_eq!(ids(&status), [id("c4")]);
    let open = list(storage, query(&|q| q.status = Some(CaseStatus::Open))).await;
    assert_eq!(ids(&open), [id("c3"), id("c1")]);
    let anna = list(storage, query(&|q| q.assignee = Some("anna".into()))).await;
    assert_eq!(ids(&anna), [id("c1"), id("c4")]);
    let unassigned = list(storage, query(&|q| q.unassigned = true)).await;
    assert_eq!(ids(&unassigned), [id("c2"), id("c5")]);
    let billing = list(storage, query(&|q| q.team = Some("billing".into()))).await;
    assert_eq!(ids(&billing), [id("c2"), id("c5")]);
    let combined = list(
        storage,
        query(&|q| {
            q.status = Some(CaseStatus::Open);
            q.assignee = Some("anna".into());
        }),
    )
    .await;
    assert_eq!(ids(&combined), [id("c1")]);
    let nobody = list(storage, query(&|q| q.assignee = Some("zoe".into()))).await;
    assert!(nobody.is_empty());
    let no_team = list(storage, query(&|q| q.team = Some("legal".into()))).await;
    assert!(no_team.is_empty());

    let page = |limit: usize, offset: usize| {
        query(&move |q: &mut CaseQuery| {
            q.limit = limit;
            q.offset = offset;
        })
    };
    assert_eq!(ids(&list(storage, page(2, 0)).await), [id("c3"), id("c2")]);
    assert_eq!(ids(&list(storage, page(2, 2)).await), [id("c1"), id("c4")]);
    assert_eq!(ids(&list(storage, page(2, 4)).await), [id("c5")]);
    assert!(list(storage, page(2, 5)).await.is_empty());
    assert_eq!(
        ids(&list(storage, page(0, 1)).await),
        [id("c2"), id("c1"), id("c4"), id("c5")],
        "limit 0 is the default page; offset still applies"
    );
    assert_eq!(ids(&list(storage, page(1, 0)).await), [id("c3")]);
}

fn new_action(brand: &str, case: &Case, key: &str, text: &str) -> NewAction {
    NewAction {
        brand: brand.to_string(),
        case_id: case.id,
        connector: case.connector.clone(),
        target_external_id: "m1".to_string(),
        idempotency_key: key.to_string(),
        action: ActionKind::Reply(Outgoing {
            text: text.to_string(),
            attachments: Vec::new(),
        }),
        requested_by: "anna".to_string(),
        at: T0 + MINUTE,
    }
}

/// Actions are recorded once per idempotency key and brand; they end sent
/// or failed; only a failed one goes back to pending for a retry.
pub async fn actions_are_idempotent_and_retried(storage: &dyn Storage) {
    let brand = unique_brand("actions");
    let other = unique_brand("actions-other");
    let care = store(storage);
    for b in [&brand, &other] {
        ingest(
            storage,
            &owner(b, "x"),
            &[inbound("m1", "t1", "Hoi", T0)],
            &[],
            &[],
        )
        .await;
    }
    let case = case_of_thread(storage, &brand, "t1").await;
    let their_case = case_of_thread(storage, &other, "t1").await;

    let first = new_action(&brand, &case, "key-1", "Sorry! We sturen een nieuwe 📦");
    let (record, created) = care.begin_action(&first).await.unwrap();
    assert!(created, "a new key records a new action");
    assert_eq!(
        (
            record.case_id,
            record.connector.as_str(),
            record.target_external_id.as_str(),
            record.idempotency_key.as_str(),
        ),
        (case.id, "x", "m1", "key-1")
    );
    assert_eq!(record.action, first.action);
    assert_eq!((record.state, record.attempts), (ActionState::Pending, 1));
    assert_eq!(
        (record.result.as_ref(), record.error.as_ref()),
        (None, None)
    );
    assert_eq!(record.requested_by, "anna");
    assert_eq!((record.created_at, record.updated_at), (first.at, first.at));

    // The same key again — even with other content — is the same action.
    let mut again = new_action(&brand, &case, "key-1", "another text");
    again.requested_by = "bram".to_string();
    let (repeat, created) = care.begin_action(&again).await.unwrap();
    assert!(!created, "a known key records nothing");
    assert_eq!(repeat, record, "the stored action comes back unchanged");

    // The same key in another brand is another action.
    let (theirs, created) = care
        .begin_action(&new_action(&other, &their_case, "key-1", "Hallo"))
        .await
        .unwrap();
    assert!(created, "keys are per brand");
    assert_ne!(theirs.id, record.id);
    assert_eq!(theirs.case_id, their_case.id);

    let (second, created) = care
        .begin_action(&new_action(&brand, &case, "key-2", "Tweede"))
        .await
        .unwrap();
    assert!(created);
    assert_ne!(second.id, record.id);

    // Sent: result stored; failed: error stored.
    let result = ActionResult {
        external_id: Some("reply-991".to_string()),
        permalink: Some("https://x.example/AcmeNL/status/reply-991".to_string()),
    };
    let sent = care
        .finish_action(
            record.id,
            &ActionOutcome::Sent(result.clone()),
            T0 + 2 * MINUTE,
        )
        .await
        .unwrap();
    assert_eq!(sent.state, ActionState::Sent);
    assert_eq!(sent.result, Some(result.clone()));
    assert_eq!(sent.error, None);
    assert_eq!(sent.updated_at, T0 + 2 * MINUTE);
    assert_eq!(sent.created_at, record.created_at);
    let failed = care
        .finish_action(
            second.id,
            &ActionOutcome::Failed("rate limited (429) ⏳".to_string()),
            T0 + 3 * MINUTE,
        )
        .await
        .unwrap();
    assert_eq!(failed.state, ActionState::Failed);
    assert_eq!(failed.error.as_deref(), Some("rate limited (429) ⏳"));
    assert_eq!(failed.result, None);

    // A sent action's key still returns it (as sent): never sent twice.
    let (repeat, created) = care.begin_action(&first).await.unwrap();
    assert!(!created);
    assert_eq!(repeat, sent);

    // Retry: failed → pending with one more attempt.
    let (retried, reopened) = care
        .retry_action(&brand, second.id, T0 + 4 * MINUTE)
        .await
        .unwrap()
        .expect("the action exists");
    assert!(reopened, "a failed action is retried");
    assert_eq!(retried.id, second.id);
    assert_eq!((retried.state, retried.attempts), (ActionState::Pending, 2));
    assert_eq!(retried.error, None, "the old error is cleared");
    assert_eq!(retried.updated_at, T0 + 4 * MINUTE);
    // Pending now: not again.
    let (pending, reopened) = care
        .retry_action(&brand, second.id, T0 + 5 * MINUTE)
        .await
        .unwrap()
        .expect("the action exists");
    assert!(!reopened, "a pending action is not retried");
    assert_eq!(pending, retried, "and is unchanged");
    // Sent: never again.
    let (still_sent, reopened) = care
        .retry_action(&brand, record.id, T0 + 5 * MINUTE)
        .await
        .unwrap()
        .expect("the action exists");
    assert!(!reopened, "a sent action is not retried");
    assert_eq!(still_sent, sent);
    // Unknown ids.
    assert_eq!(
        care.retry_action(&brand, i64::MAX - 3, T0).await.unwrap(),
        None
    );
    assert_eq!(
        care.retry_action(&brand, theirs.id, T0).await.unwrap(),
        None,
        "another brand's action is unknown here"
    );

    // The retried attempt can fail again and be retried again.
    let failed = care
        .finish_action(second.id, &ActionOutcome::Failed("again".into()), T0)
        .await
        .unwrap();
    assert_eq!((failed.state, failed.attempts), (ActionState::Failed, 2));
    let (retried, reopened) = care
        .retry_action(&brand, second.id, T0 + 6 * MINUTE)
        .await
        .unwrap()
        .unwrap();
    assert!(reopened);
    assert_eq!(retried.attempts, 3);
    let done = care
        .finish_action(second.id, &ActionOutcome::Sent(ActionResult::default()), T0)
        .await
        .unwrap();
    assert_eq!(done.state, ActionState::Sent);
    assert_eq!(done.result, Some(ActionResult::default()));
    assert_eq!(done.error, None);

    let actions = care.case_actions(&brand, case.id).await.unwrap();
    assert_eq!(
        actions.iter().map(|a| a.id).collect::<Vec<_>>(),
        [record.id, second.id],
        "a case's actions, oldest first"
    );
    assert_eq!(actions[0], sent);
    assert_eq!(actions[1], done);
    assert_eq!(
        care.case_actions(&other, their_case.id)
            .await
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>(),
        [theirs.id]
    );
}

fn hit_ids(hits: &[super::SearchHit]) -> Vec<i64> {
    let mut ids: Vec<i64> = hits.iter().map(|h| h.case_id).collect();
    ids.sort_unstable();
    ids
}

fn sorted(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids
}

/// Search finds words in messages and notes, ignores diacritics, takes a
/// trailing `*` as a prefix and needs every word; an edit replaces what is
/// found; each case comes back once, at most `limit` of them.
pub async fn search_finds_messages_and_notes(storage: &dyn Storage) {
    let brand = unique_brand("search");
    let x = owner(&brand, "x");
    let care = store(storage);
    ingest(
        storage,
        &x,
        &[
            inbound("s1", "cafe", "Mijn koffie in het café was koud", T0),
            inbound("s2", "order", "Pakket 4711 is kapot aangekomen", T0),
            inbound(
                "s3",
                "order",
                "Het pakket is echt helemaal kapot",
                T0 + MINUTE,
            ),
            inbound("s4", "other", "Waar blijft mijn pakket?", T0),
            inbound("s5", "third", "Mijn pakketje is zoek", T0),
            inbound("s6", "edit", "Oorspronkelijke klacht over vertraging", T0),
        ],
        &[],
        &[],
    )
    .await;
    let cafe = case_of_thread(storage, &brand, "cafe").await;
    let order = case_of_thread(storage, &brand, "order").await;
    let other = case_of_thread(storage, &brand, "other").await;
    let third = case_of_thread(storage, &brand, "third").await;
    let edit = case_of_thread(storage, &brand, "edit").await;
    let search = |query: &'static str, limit: usize| {
        let brand = brand.clone();
        async move {
            care.search(&brand, query, limit)
                .await
                .unwrap_or_else(|e| panic!("searching {query:?} should succeed, got: {e}"))
        }
    };

    // Diacritics either way.
    for query in ["cafe", "café", "CAFÉ", "Cafe"] {
        let hits = search(query, 10).await;
        assert_eq!(hit_ids(&hits), [cafe.id], "{query:?} finds the café");
        assert_eq!(hits[0].source, "message");
        assert_eq!(hits[0].status, CaseStatus::New);
        assert!(
            hits[0].snippet.contains('['),
            "the snippet marks the hit: {:?}",
            hits[0].snippet
        );
    }
    // Whole words, a trailing `*` is a prefix.
    assert_eq!(
        hit_ids(&search("pakket", 10).await),
        sorted(vec![order.id, other.id]),
        "pakketje is another word"
    );
    assert_eq!(
        hit_ids(&search("pakk*", 10).await),
        sorted(vec![order.id, other.id, third.id])
    );
    assert!(search("pakk", 10).await.is_empty(), "no prefix without `*`");
    // All words required.
    assert_eq!(hit_ids(&search("pakket kapot", 10).await), [order.id]);
    assert_eq!(hit_ids(&search("kapot 4711", 10).await), [order.id]);
    assert!(search("pakket koffie", 10).await.is_empty());
    // Each case once, though two of its messages match.
    let hits = search("kapot", 10).await;
    assert_eq!(
        hit_ids(&hits),
        [order.id],
        "each case at most once: {hits:#?}"
    );
    // Limit.
    assert_eq!(search("pakk*", 2).await.len(), 2);
    assert_eq!(search("pakk*", 1).await.len(), 1);
    assert!(search("onbekendwoord", 10).await.is_empty());
    // Best match first: the case that is all about it before the one that
    // mentions it once among many words.
    ingest(
        storage,
        &x,
        &[
            inbound(
                "r1",
                "mention",
                "Ik heb een vraag over mijn abonnement, de factuur, de levering \
                 en nog veel meer dingen waaronder ook een retour van vorige week",
                T0,
            ),
            inbound("r2", "about", "Retour! Retour retour.", T0 + MINUTE),
        ],
        &[],
        &[],
    )
    .await;
    let about = case_of_thread(storage, &brand, "about").await;
    let mention = case_of_thread(storage, &brand, "mention").await;
    let hits = search("retour", 10).await;
    assert_eq!(
        hits.iter().map(|h| h.case_id).collect::<Vec<_>>(),
        [about.id, mention.id],
        "best match first: {hits:#?}"
    );
    assert_eq!(hits[0].at, T0 + MINUTE, "the hit's message time");

    // Notes are found, as notes.
    let stored = reread(storage, &other).await;
    let mut noted = stored.clone();
    noted.version += 1;
    assert!(
        care.write_case(
            &noted,
            stored.version,
            &event(
                "noted",
                "anna",
                json!({"text": "Klant belt morgen terug over de terugbetaling"})
            ),
        )
        .await
        .unwrap()
    );
    let hits = search("terugbetaling", 10).await;
    assert_eq!(hit_ids(&hits), [other.id]);
    assert_eq!(hits[0].source, "note");
    assert!(
        search("pakket terugbetaling", 10).await.is_empty(),
        "words must occur in one text"
    );
    // Other events are not indexed.
    let stored = reread(storage, &third).await;
    let mut escalated = stored.clone();
    escalated.version += 1;
    assert!(
        care.write_case(
            &escalated,
            stored.version,
            &event("escalated", "anna", json!({"text": "zeldzaamwoord"})),
        )
        .await
        .unwrap()
    );
    assert!(search("zeldzaamwoord", 10).await.is_empty());

    // An edit: found by the new text, no longer by the old.
    let mut edited = inbound("s6", "edit", "Laat maar, alles is opgelost", T0);
    edited.html = Some("<p>Laat maar</p>".to_string());
    let out = ingest(
        storage,
        &x,
        &[],
        &[],
        &[MessageUpdate::Edited(Box::new(edited))],
    )
    .await;
    assert_eq!(out.updates_applied, 1);
    assert_eq!(hit_ids(&search("opgelost", 10).await), [edit.id]);
    assert!(
        search("vertraging", 10).await.is_empty(),
        "the old text is no longer found"
    );
    assert!(search("oorspronkelijke", 10).await.is_empty());
}

/// Whatever an agent types is words, never query syntax: no error, no
/// match-everything.
pub async fn search_input_is_never_syntax(storage: &dyn Storage) {
    let brand = unique_brand("syntax");
    let x = owner(&brand, "x");
    let care = store(storage);
    ingest(
        storage,
        &x,
        &[
            inbound("q1", "q1", "Refund please, e-mail me NEAR the office", T0),
            inbound("q2", "q2", "Iets heel anders", T0),
        ],
        &[],
        &[],
    )
    .await;
    let refund = case_of_thread(storage, &brand, "q1").await;
    let nothing: &[&str] = &[
        "\"",
        "\"\"",
        "*",
        "**",
        "-",
        "--",
        "- *",
        "()",
        ":",
        "^",
        "   ",
        "",
        "{body}",
        "+",
        "body:refund",
        "brand:refund",
        "NEAR(refund, 2)",
        "AND",
        "OR",
        "NOT",
    ];
    for query in nothing {
        let hits = care
            .search(&brand, query, 10)
            .await
            .unwrap_or_else(|e| panic!("searching {query:?} should not fail, got: {e}"));
        assert!(hits.is_empty(), "{query:?} finds nothing: {hits:#?}");
    }
    let found: &[&str] = &[
        "refund",
        "\"refund",
        "refund\"",
        "refund -office",
        "NEAR(",
        "NEAR()",
        "NEAR(refund office)",
        "refund AND office",
        "refund OR zzzz-never",
        "(refund)",
        "refund*",
        "ref*",
        "e-mail",
        "email",
        "{refund}",
        "^refund",
        "near",
    ];
    for query in found {
        let hits = care
            .search(&brand, query, 10)
            .await
            .unwrap_or_else(|e| panic!("searching {query:?} should not fail, got: {e}"));
        // Operators are words like any other, and every word is required:
        // the text has no "and", "or" or "zzzz"; "e-mail" is two words,
        // "email" another one.
        if ["refund OR zzzz-never", "refund AND office", "email"].contains(query) {
            assert!(hits.is_empty(), "{query:?}: all words required: {hits:#?}");
            continue;
        }
        assert_eq!(hit_ids(&hits), [refund.id], "{query:?} finds the refund");
    }
}

/// Tokens: created, found by hash, listed per brand or all (newest first),
/// revoked once.
pub async fn tokens_create_list_revoke(storage: &dyn Storage) {
    let brand = unique_brand("tokens");
    let other = unique_brand("tokens-other");
    let care = store(storage);
    let new = |name: &str, brand: Option<&str>, role: Role, at: TimestampMs| NewToken {
        name: name.to_string(),
        brand: brand.map(str::to_string),
        role,
        hash: super::tokens::hash(&super::tokens::generate()),
        at,
    };
    let anna = new("anna", Some(&brand), Role::Agent, T0);
    let finn = new("finn", Some(&brand), Role::SecondLine, T0 + MINUTE);
    let zoe = new("zoë", Some(&other), Role::Admin, T0 + 2 * MINUTE);
    let agency = new("agency ops", None, Role::Admin, T0 + 3 * MINUTE);
    let mut records = Vec::new();
    for token in [&anna, &finn, &zoe, &agency] {
        let record = care.create_token(token).await.unwrap();
        assert_eq!(
            (
                record.name.as_str(),
                record.brand.as_deref(),
                record.role,
                record.hash.as_str(),
                record.created_at,
                record.revoked_at,
            ),
            (
                token.name.as_str(),
                token.brand.as_deref(),
                token.role,
                token.hash.as_str(),
                token.at,
                None
            )
        );
        records.push(record);
    }
    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] != w[1]),
        "each token has its own id"
    );

    for (token, record) in [&anna, &finn, &zoe, &agency].iter().zip(&records) {
        assert_eq!(
            care.token_by_hash(&token.hash).await.unwrap().as_ref(),
            Some(record)
        );
    }
    let unknown = super::tokens::hash("wct_not-a-token");
    assert_eq!(care.token_by_hash(&unknown).await.unwrap(), None);

    assert_eq!(
        care.tokens(Some(&brand)).await.unwrap(),
        [records[1].clone(), records[0].clone()],
        "a brand's tokens, newest first"
    );
    assert_eq!(
        care.tokens(Some(&other)).await.unwrap(),
        [records[2].clone()]
    );
    assert!(
        care.tokens(Some(&unique_brand("tokens-none")))
            .await
            .unwrap()
            .is_empty()
    );
    let all = care.tokens(None).await.unwrap();
    let ours: Vec<i64> = all
        .iter()
        .map(|t| t.id)
        .filter(|id| ids.contains(id))
        .collect();
    assert_eq!(
        ours,
        [ids[3], ids[2], ids[1], ids[0]],
        "every token, the agency's too, newest first"
    );

    assert!(
        care.revoke_token(records[0].id, T0 + 9 * MINUTE)
            .await
            .unwrap()
    );
    assert!(
        !care
            .revoke_token(records[0].id, T0 + 10 * MINUTE)
            .await
            .unwrap(),
        "a second revoke is refused"
    );
    assert!(!care.revoke_token(i64::MAX - 11, T0).await.unwrap());
    let revoked = care
        .token_by_hash(&anna.hash)
        .await
        .unwrap()
        .expect("a revoked token is still found (and refused by the caller)");
    assert_eq!(
        revoked.revoked_at,
        Some(T0 + 9 * MINUTE),
        "the first revoke's time stays"
    );
    assert_eq!(
        care.token_by_hash(&finn.hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None,
        "other tokens stay valid"
    );
    let listed = care.tokens(Some(&brand)).await.unwrap();
    assert_eq!(listed.len(), 2, "revoked tokens are still listed");
    assert_eq!(listed[1].revoked_at, Some(T0 + 9 * MINUTE));
}

/// Whether ingest wrote `event`: `opened` for a new case, `reopened` when
/// the customer wrote again (those carry the channel; an agent's reopen
/// does not).
pub fn is_ingest_event(event: &CaseEvent) -> bool {
    event.kind == "opened" || (event.kind == "reopened" && event.channel.is_some())
}

/// `events` without those ingest wrote.
fn workflow_events(mut events: Vec<CaseEvent>) -> Vec<CaseEvent> {
    events.retain(|e| !is_ingest_event(e));
    events
}

/// A storage opened with the NATS outbox on writes one event per case
/// change, from ingest and from the workflow alike: the case as the change
/// left it (status, assignee, team), named by its version, and always
/// before the messages that caused it. Not in [`run_all`]: it needs the
/// outbox on, and reads the outbox's whole head.
pub async fn outbox_follows_every_case_change(storage: &dyn Storage) {
    let outbox = storage
        .outbox()
        .expect("this property needs a storage opened with the outbox on");
    let brand = unique_brand("outbox");
    let x = owner(&brand, "x");
    let loud = triage(60, Bucket::High, Some("care-nl"), -0.5);
    ingest(
        storage,
        &x,
        &[
            inbound("o1", "t", "Waar blijft mijn pakket?", T0),
            inbound("o2", "t", "Hallo??", T0 + MINUTE),
        ],
        &[loud.clone(), loud.clone()],
        &[],
    )
    .await;
    let case = case_of_thread(storage, &brand, "t").await;
    let claimed = change(storage, &case, |c| {
        c.status = CaseStatus::Open;
        c.assignee = Some("anna".to_string());
    })
    .await;
    let closed = change(storage, &claimed, |c| {
        c.status = CaseStatus::Closed;
        c.waiting_since = None;
        c.closed_at = Some(T0 + 2 * MINUTE);
    })
    .await;
    ingest(
        storage,
        &x,
        &[inbound("o3", "t", "Nog steeds niets", T0 + 3 * MINUTE)],
        std::slice::from_ref(&loud),
        &[MessageUpdate::Edited(Box::new(inbound(
            "o1",
            "t",
            "Waar blijft mijn pakket? (bestelling 4711)",
            T0,
        )))],
    )
    .await;
    let reopened = reread(storage, &closed).await;
    assert_eq!(reopened.status, CaseStatus::Open, "owned: reopened to open");

    let events: Vec<serde_json::Value> = outbox
        .head(10_000)
        .await
        .unwrap_or_else(|e| panic!("reading the outbox should succeed, got: {e}"))
        .into_iter()
        .map(|row| {
            let payload: serde_json::Value = serde_json::from_str(&row.entry.payload)
                .unwrap_or_else(|e| panic!("outbox payload is JSON ({e}): {}", row.entry.payload));
            json!({ "msg_id": row.entry.msg_id, "subject": row.entry.subject, "event": payload })
        })
        .filter(|row| row["event"]["brand"] == brand.as_str())
        .collect();
    let shape: Vec<String> = events
        .iter()
        .map(|row| {
            let e = &row["event"];
            match e["event"].as_str() {
                Some("case") => format!("case {}", e["change"].as_str().unwrap_or("?")),
                Some(kind) => format!(
                    "{kind} {}",
                    e["message"]["external_id"].as_str().unwrap_or("?")
                ),
                None => "?".to_string(),
            }
        })
        .collect();
    assert_eq!(
        shape,
        [
            "case opened",
            "message o1",
            "message o2",
            "case assigned",
            "case assigned",
            "case reopened",
            "message o3",
            "edited o1",
        ],
        "one event per change, each case change before the messages it brought: {events:#?}"
    );
    let cases: Vec<&serde_json::Value> = events
        .iter()
        .map(|row| &row["event"])
        .filter(|e| e["event"] == "case")
        .collect();
    let versions: Vec<i64> = cases
        .iter()
        .map(|e| e["version"].as_i64().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions rise with every change: {versions:?}"
    );
    assert_eq!(
        versions.last(),
        Some(&reopened.version),
        "the reopen is the case's latest version"
    );
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .map(|row| row["msg_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        events.len(),
        "every event has its own message id"
    );
    for (row, e) in events.iter().zip(&shape) {
        if e.starts_with("case") {
            let version = row["event"]["version"].as_i64().unwrap();
            assert_eq!(row["msg_id"], format!("case:{}:v{version}", case.id));
            assert_eq!(row["event"]["case_id"], case.id);
        }
        assert!(
            row["subject"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{brand}.twitter.")),
            "{row}"
        );
    }
    let opened = cases[0];
    assert_eq!(
        opened["version"], 0,
        "a new case's event names the version it opened with"
    );
    assert_eq!(
        (
            &opened["status"],
            &opened["team"],
            &opened["assignee"],
            &opened["actor"]
        ),
        (
            &json!("new"),
            &json!("care-nl"),
            &json!(null),
            &json!(case.author)
        ),
    );
    let again = cases[3];
    assert_eq!(
        (
            &again["status"],
            &again["team"],
            &again["assignee"],
            &again["actor"]
        ),
        (
            &json!("open"),
            &json!("care-nl"),
            &json!("anna"),
            &json!(case.author)
        ),
    );
    assert_eq!(cases[2]["status"], "closed");
}
