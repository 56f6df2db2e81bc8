//! The conformance suite every [`Storage`] backend must pass.
//!
//! Each property is its own function, so a backend's tests can run one per
//! test and a failure names the broken property; [`run_all`] runs them all
//! against one storage. Every function works in brands of its own, named
//! with a random suffix, so the properties neither see each other's data
//! nor depend on the database being empty: a PostgreSQL database that
//! outlives a test run is fine. Only the [`Storage`] trait is used, nothing
//! of a particular backend.

use crate::capabilities::state::{MAX_KEY_BYTES, MAX_TOTAL_BYTES, MAX_VALUE_BYTES};
use crate::capabilities::{ConnectorId, StateError};
use crate::model::{
    Attachment, AttachmentKind, Author, Direction, Engagement, Message, MessageKind, MessageUpdate,
    Removal, TimestampMs, Visibility,
};

use super::{
    CaseFilter, CaseStatus, CaseSummary, ChannelCount, CommitOutcome, IngestBatch, PREVIEW_CHARS,
    Storage, StoredMessage,
};

/// Runs every property against `storage`.
pub async fn run_all(storage: &dyn Storage) {
    dedup_on_external_id(storage).await;
    batch_and_cursor_commit_together(storage).await;
    failed_commit_changes_nothing(storage).await;
    cases_group_by_thread_and_reopen(storage).await;
    outbound_never_opens_a_case(storage).await;
    updates_edit_delete_hide(storage).await;
    unknown_updates_are_counted(storage).await;
    brands_are_isolated(storage).await;
    cases_list_newest_first(storage).await;
    messages_list_oldest_first(storage).await;
    counts_per_connector_and_channel(storage).await;
    state_is_per_connector(storage).await;
    poll_leases_have_one_holder(storage).await;
}

/// 2025-01-06 09:00 UTC, a Monday morning.
const T0: TimestampMs = 1_736_154_000_000;
const MINUTE: TimestampMs = 60_000;

/// Texts that must come back byte for byte: Dutch with an emoji, Arabic
/// (right to left), Hebrew mixed with digits, a ZWJ emoji sequence, and
/// CRLF with trailing whitespace.
const DUTCH: &str =
    "Hoi @AcmeNL, mijn bestelling #4711 is nog steeds niet geleverd 😤 Kunnen jullie even kijken?";
const ARABIC: &str = "مرحبا، طلبي لم يصل بعد. هل يمكنكم المساعدة؟ 🙏";
const HEBREW: &str = "שלום! ההזמנה שלי 4711 עדיין לא הגיעה, מה קורה?";
const ZWJ: &str = "👩🏽‍💻 Inloggen lukt niet meer sinds de update van gisteren… ‏";
const CRLF: &str = "Regel één\r\nRegel twee\t \n";

/// A brand name no other run or property uses.
fn unique_brand(name: &str) -> String {
    format!("{name}-{:016x}", fastrand::u64(..))
}

fn owner(brand: &str, connector: &str) -> ConnectorId {
    ConnectorId {
        brand: brand.to_string(),
        connector: connector.to_string(),
    }
}

fn customer(handle: &str) -> Author {
    Author {
        id: format!("uid-{handle}"),
        handle: handle.to_string(),
        display_name: format!("{handle} 🌷"),
        followers: Some(1_234),
        verified: false,
        profile_url: Some(format!("https://x.example/{handle}")),
        email: None,
    }
}

/// A customer's public mention of the brand, with every optional field
/// filled so a lossy backend shows.
fn inbound(
    external_id: &str,
    thread_id: &str,
    handle: &str,
    text: &str,
    created_at: TimestampMs,
) -> Message {
    Message {
        external_id: external_id.to_string(),
        thread_id: thread_id.to_string(),
        in_reply_to: (external_id != thread_id).then(|| thread_id.to_string()),
        kind: MessageKind::Mention,
        visibility: Visibility::Public,
        direction: Direction::Inbound,
        addressed_to_brand: true,
        author: customer(handle),
        text: text.to_string(),
        html: Some(format!("<p>{text}</p>")),
        subject: None,
        language: Some("nl".to_string()),
        created_at,
        permalink: Some(format!("https://x.example/{handle}/status/{external_id}")),
        attachments: vec![Attachment {
            kind: AttachmentKind::Image,
            url: Some("https://media.x.example/pakket.jpg".to_string()),
            mime_type: Some("image/jpeg".to_string()),
            name: None,
            size_bytes: Some(48_213),
            alt_text: Some("Een lege brievenbus 📭".to_string()),
        }],
        metrics: Engagement {
            likes: Some(3),
            shares: Some(0),
            replies: None,
        },
        properties: vec![
            ("source".to_string(), "Twitter for iPhone".to_string()),
            ("lang_confidence".to_string(), "0.98".to_string()),
        ],
    }
}

/// The brand's own answer in a thread.
fn outbound(external_id: &str, thread_id: &str, text: &str, created_at: TimestampMs) -> Message {
    Message {
        kind: MessageKind::Reply,
        direction: Direction::Outbound,
        addressed_to_brand: false,
        author: Author {
            id: "uid-acme".to_string(),
            handle: "AcmeNL".to_string(),
            display_name: "Acme Nederland".to_string(),
            followers: Some(250_000),
            verified: true,
            profile_url: Some("https://x.example/AcmeNL".to_string()),
            email: None,
        },
        ..inbound(external_id, thread_id, "AcmeNL", text, created_at)
    }
}

fn removal(external_id: &str) -> Removal {
    Removal {
        external_id: external_id.to_string(),
        thread_id: None,
        at: Some(T0 + 90 * MINUTE),
        by: Some("moderator".to_string()),
    }
}

fn batch<'a>(
    messages: &'a [Message],
    updates: &'a [MessageUpdate],
    next_cursor: Option<&'a str>,
) -> IngestBatch<'a> {
    IngestBatch {
        channel: "twitter",
        messages,
        triage: &[],
        updates,
        next_cursor,
    }
}

async fn commit(
    storage: &dyn Storage,
    owner: &ConnectorId,
    batch: IngestBatch<'_>,
) -> CommitOutcome {
    storage
        .commit(owner, batch)
        .await
        .unwrap_or_else(|e| panic!("commit for {owner} should succeed, got: {e}"))
}

async fn messages_of(storage: &dyn Storage, brand: &str) -> Vec<StoredMessage> {
    storage
        .messages(brand, 0)
        .await
        .unwrap_or_else(|e| panic!("listing messages of {brand} should succeed, got: {e}"))
}

async fn cases_of(storage: &dyn Storage, brand: &str) -> Vec<CaseSummary> {
    list_cases(storage, brand, None, 0).await
}

async fn list_cases(
    storage: &dyn Storage,
    brand: &str,
    status: Option<CaseStatus>,
    limit: usize,
) -> Vec<CaseSummary> {
    let filter = CaseFilter {
        brand: Some(brand.to_string()),
        status,
        limit,
    };
    storage
        .cases(&filter)
        .await
        .unwrap_or_else(|e| panic!("listing cases with {filter:?} should succeed, got: {e}"))
}

fn case_of<'a>(cases: &'a [CaseSummary], thread_id: &str) -> &'a CaseSummary {
    cases
        .iter()
        .find(|c| c.thread_id == thread_id)
        .unwrap_or_else(|| panic!("expected a case for thread {thread_id:?}, got {cases:#?}"))
}

fn stored<'a>(
    messages: &'a [StoredMessage],
    connector: &str,
    external_id: &str,
) -> &'a StoredMessage {
    messages
        .iter()
        .find(|m| m.connector == connector && m.message.external_id == external_id)
        .unwrap_or_else(|| {
            panic!("expected message {connector}/{external_id:?} to be stored, got {messages:#?}")
        })
}

/// Moves `case` to `status` the way the workflow does: one audited,
/// versioned change through the case store.
async fn set_status(storage: &dyn Storage, case: &CaseSummary, status: CaseStatus) {
    let care = storage
        .care()
        .expect("this backend must offer the case workflow (Storage::care)");
    let current = care
        .case(&case.brand, case.id)
        .await
        .unwrap_or_else(|e| panic!("reading case {} failed: {e}", case.id))
        .unwrap_or_else(|| panic!("case {} of {} should exist", case.id, case.brand));
    let mut next = current.clone();
    next.status = status;
    next.version = current.version + 1;
    let event = crate::care::NewEvent {
        at: T0 + 60 * MINUTE,
        actor: "suite".to_string(),
        kind: "status",
        channel: None,
        detail: serde_json::json!({ "status": status }),
    };
    let written = care
        .write_case(&next, current.version, &event)
        .await
        .unwrap_or_else(|e| panic!("setting case {} to {status:?} failed: {e}", case.id));
    assert!(
        written,
        "case {} is at version {}",
        case.id, current.version
    );
}

async fn cursor_of(storage: &dyn Storage, owner: &ConnectorId) -> Option<String> {
    storage
        .cursor(owner)
        .await
        .unwrap_or_else(|e| panic!("reading the cursor of {owner} should succeed, got: {e}"))
}

/// A message is stored once per (brand, connector, external id), whatever
/// its content on redelivery, and comes back exactly as delivered.
pub async fn dedup_on_external_id(storage: &dyn Storage) {
    let brand = unique_brand("dedup");
    let twitter = owner(&brand, "twitter");
    let first = [
        inbound("1001", "1001", "sanne_dv", DUTCH, T0),
        inbound("1002", "1002", "yusuf", ARABIC, T0 + MINUTE),
        inbound("1003", "1003", "noa", HEBREW, T0 + 2 * MINUTE),
    ];
    let out = commit(storage, &twitter, batch(&first, &[], Some("c1"))).await;
    assert_eq!(
        (out.inserted, out.duplicates),
        (3, 0),
        "a first delivery of three messages stores three: {out:?}"
    );

    let mut changed = first[1].clone();
    changed.text = "a redelivery with other text".to_string();
    let second = [
        changed,
        inbound("1004", "1004", "piet", ZWJ, T0 + 3 * MINUTE),
        first[0].clone(),
    ];
    let out = commit(storage, &twitter, batch(&second, &[], Some("c2"))).await;
    assert_eq!(
        (out.inserted, out.duplicates),
        (1, 2),
        "a redelivery stores only the new message: {out:?}"
    );

    let twice = [
        inbound("1005", "1005", "kees", CRLF, T0 + 4 * MINUTE),
        inbound("1005", "1005", "kees", CRLF, T0 + 4 * MINUTE),
    ];
    let out = commit(storage, &twitter, batch(&twice, &[], None)).await;
    assert_eq!(
        (out.inserted, out.duplicates),
        (1, 1),
        "a message twice in one batch is stored once: {out:?}"
    );

    // The key includes the connector: the same id elsewhere is another message.
    let forum = owner(&brand, "forum");
    let out = commit(storage, &forum, batch(&first[..1], &[], None)).await;
    assert_eq!(
        out.inserted, 1,
        "the same external id under another connector is a new message: {out:?}"
    );

    let messages = messages_of(storage, &brand).await;
    assert_eq!(messages.len(), 6, "expected 5 twitter + 1 forum messages");
    for original in first.iter().chain(&second[1..2]).chain(&twice[..1]) {
        let back = stored(&messages, "twitter", &original.external_id);
        assert_eq!(
            &back.message, original,
            "message {:?} must come back exactly as delivered (first version wins)",
            original.external_id
        );
        assert_eq!(back.message.text.as_bytes(), original.text.as_bytes());
        assert_eq!(
            (back.brand.as_str(), back.channel.as_str()),
            (brand.as_str(), "twitter")
        );
        assert!(
            !back.edited && !back.deleted && !back.hidden,
            "fresh messages carry no flags"
        );
    }
}

/// The cursor is stored with its batch, kept when a batch has none, and
/// moves even when everything in the batch was a duplicate.
pub async fn batch_and_cursor_commit_together(storage: &dyn Storage) {
    let brand = unique_brand("cursor");
    let twitter = owner(&brand, "twitter");
    assert_eq!(
        cursor_of(storage, &twitter).await,
        None,
        "no cursor before the first commit"
    );

    let page = [
        inbound("2001", "2001", "sanne_dv", DUTCH, T0),
        inbound("2002", "2002", "yusuf", ARABIC, T0 + MINUTE),
    ];
    let since = "eyJzaW5jZV9pZCI6IjIwMDIifQ==";
    commit(storage, &twitter, batch(&page, &[], Some(since))).await;
    assert_eq!(cursor_of(storage, &twitter).await.as_deref(), Some(since));

    commit(storage, &twitter, batch(&[], &[], None)).await;
    assert_eq!(
        cursor_of(storage, &twitter).await.as_deref(),
        Some(since),
        "a commit without a next cursor keeps the stored one"
    );

    let out = commit(storage, &twitter, batch(&page, &[], Some("page-3 ✓"))).await;
    assert_eq!(
        out.duplicates, 2,
        "the replayed page is all duplicates: {out:?}"
    );
    assert_eq!(
        cursor_of(storage, &twitter).await.as_deref(),
        Some("page-3 ✓"),
        "the cursor moves even when every message was a duplicate"
    );

    commit(storage, &twitter, batch(&[], &[], Some("page-4"))).await;
    assert_eq!(
        cursor_of(storage, &twitter).await.as_deref(),
        Some("page-4"),
        "an empty batch still moves the cursor"
    );

    assert_eq!(
        cursor_of(storage, &owner(&brand, "forum")).await,
        None,
        "another connector of the brand has its own cursor"
    );
    assert_eq!(
        cursor_of(storage, &owner(&unique_brand("cursor-other"), "twitter")).await,
        None,
        "the same connector id under another brand has its own cursor"
    );
}

/// A commit that fails stores nothing of its batch: not its messages, not
/// its updates, not its cases, not its cursor. An empty external id cannot
/// be deduplicated, so every backend refuses it.
pub async fn failed_commit_changes_nothing(storage: &dyn Storage) {
    let brand = unique_brand("atomic");
    let twitter = owner(&brand, "twitter");
    let good = [inbound("3001", "3001", "sanne_dv", DUTCH, T0)];
    commit(storage, &twitter, batch(&good, &[], Some("c1"))).await;

    let bad = [
        inbound("3002", "3002", "yusuf", ARABIC, T0 + MINUTE),
        inbound("3003", "3001", "sanne_dv", ZWJ, T0 + 2 * MINUTE),
        inbound("", "3004", "noa", HEBREW, T0 + 3 * MINUTE),
    ];
    let updates = [MessageUpdate::Hidden(removal("3001"))];
    let result = storage
        .commit(&twitter, batch(&bad, &updates, Some("c2")))
        .await;
    assert!(
        result.is_err(),
        "a batch with an empty external id must be refused, got {result:?}"
    );

    let messages = messages_of(storage, &brand).await;
    assert_eq!(
        messages.len(),
        1,
        "nothing of the failed batch may be stored, got {messages:#?}"
    );
    assert!(
        !messages[0].hidden,
        "the failed batch's update must not apply"
    );
    assert_eq!(
        cursor_of(storage, &twitter).await.as_deref(),
        Some("c1"),
        "the cursor must stay where the last successful commit put it"
    );
    let cases = cases_of(storage, &brand).await;
    assert_eq!(cases.len(), 1, "no case may be opened by a failed commit");
    assert_eq!(
        cases[0].message_count, 1,
        "the existing case must not count the failed batch"
    );
}

/// Inbound messages form one case per thread; the case knows its first
/// message even when an older one arrives late, and a customer writing
/// again reopens a pending or closed case (but not a new or escalated one).
pub async fn cases_group_by_thread_and_reopen(storage: &dyn Storage) {
    let brand = unique_brand("cases");
    let twitter = owner(&brand, "twitter");
    let first = [
        inbound("4001", "t1", "sanne_dv", DUTCH, T0),
        inbound("4002", "t2", "yusuf", ARABIC, T0 + 2 * MINUTE),
        inbound("4003", "t1", "sanne_dv", "Nog een vraag…", T0 + 5 * MINUTE),
    ];
    let out = commit(storage, &twitter, batch(&first, &[], None)).await;
    assert_eq!(out.cases_opened, 2, "two threads open two cases: {out:?}");

    let cases = cases_of(storage, &brand).await;
    assert_eq!(
        cases.len(),
        2,
        "expected one case per thread, got {cases:#?}"
    );
    let t1 = case_of(&cases, "t1");
    assert_eq!(
        (
            t1.status,
            t1.message_count,
            t1.first_message_at,
            t1.last_message_at
        ),
        (CaseStatus::New, 2, T0, T0 + 5 * MINUTE),
        "t1 is new, has two messages from T0 to T0+5m: {t1:?}"
    );
    assert_eq!(
        (t1.author.as_str(), t1.preview.as_str()),
        ("sanne_dv", DUTCH)
    );
    assert_eq!(
        (
            t1.brand.as_str(),
            t1.connector.as_str(),
            t1.channel.as_str()
        ),
        (brand.as_str(), "twitter", "twitter")
    );
    let t2 = case_of(&cases, "t2").clone();
    let messages = messages_of(storage, &brand).await;
    for (external_id, case_id) in [("4001", t1.id), ("4002", t2.id), ("4003", t1.id)] {
        assert_eq!(
            stored(&messages, "twitter", external_id).case_id,
            Some(case_id),
            "message {external_id} belongs to case {case_id}"
        );
    }
    let t1 = t1.clone();

    // An older message of the thread arrives late: it becomes the first.
    let late = [inbound("4000", "t1", "piet", HEBREW, T0 - MINUTE)];
    let out = commit(storage, &twitter, batch(&late, &[], None)).await;
    assert_eq!(out.cases_opened, 0, "a known thread opens no case: {out:?}");
    let cases = cases_of(storage, &brand).await;
    let now = case_of(&cases, "t1");
    assert_eq!(
        (
            now.id,
            now.message_count,
            now.first_message_at,
            now.last_message_at
        ),
        (t1.id, 3, T0 - MINUTE, T0 + 5 * MINUTE),
        "the late message joins t1 as its first: {now:?}"
    );
    assert_eq!(
        (now.author.as_str(), now.preview.as_str()),
        ("piet", HEBREW)
    );

    // Closed and pending cases reopen when the customer writes again.
    set_status(storage, &t1, CaseStatus::Closed).await;
    set_status(storage, &t2, CaseStatus::Pending).await;
    let again = [
        inbound("4004", "t1", "sanne_dv", "Hallo? 👀", T0 + 60 * MINUTE),
        inbound("4005", "t2", "yusuf", "؟", T0 + 61 * MINUTE),
        inbound("4006", "t3", "noa", ZWJ, T0 + 62 * MINUTE),
    ];
    let out = commit(storage, &twitter, batch(&again, &[], None)).await;
    assert_eq!(out.cases_opened, 1, "only t3 is a new thread: {out:?}");
    let cases = cases_of(storage, &brand).await;
    let (now1, now2) = (case_of(&cases, "t1"), case_of(&cases, "t2"));
    assert_eq!(
        now1.status,
        CaseStatus::New,
        "a closed case nobody owns reopens as new: {now1:?}"
    );
    assert_eq!(
        now2.status,
        CaseStatus::New,
        "a pending case nobody owns reopens as new: {now2:?}"
    );
    assert_eq!(
        (now1.message_count, now1.last_message_at),
        (4, T0 + 60 * MINUTE)
    );

    // New and escalated cases keep their status.
    let t3 = case_of(&cases, "t3").clone();
    set_status(storage, now2, CaseStatus::Escalated).await;
    let more = [
        inbound("4007", "t2", "yusuf", ARABIC, T0 + 70 * MINUTE),
        inbound("4008", "t3", "noa", CRLF, T0 + 71 * MINUTE),
    ];
    commit(storage, &twitter, batch(&more, &[], None)).await;
    let cases = cases_of(storage, &brand).await;
    assert_eq!(
        case_of(&cases, "t2").status,
        CaseStatus::Escalated,
        "escalated stays escalated"
    );
    assert_eq!(
        case_of(&cases, "t3").status,
        CaseStatus::New,
        "a new case stays new"
    );
    assert_eq!(case_of(&cases, "t3").id, t3.id, "t3 keeps its case");

    // The preview is cut by characters, never inside one.
    let long: String = "🙂ë".repeat(PREVIEW_CHARS);
    let out = commit(
        storage,
        &twitter,
        batch(&[inbound("4009", "t4", "kees", &long, T0)], &[], None),
    )
    .await;
    assert_eq!(out.cases_opened, 1);
    let cases = cases_of(storage, &brand).await;
    let preview = &case_of(&cases, "t4").preview;
    assert_eq!(
        preview.chars().count(),
        PREVIEW_CHARS,
        "the preview holds {PREVIEW_CHARS} characters"
    );
    assert!(
        long.starts_with(preview.as_str()),
        "the preview is the text's beginning"
    );
}

/// The brand's own messages join an existing case of their thread (counted,
/// moving its last activity) but never open one and never reopen one.
pub async fn outbound_never_opens_a_case(storage: &dyn Storage) {
    let brand = unique_brand("outbound");
    let twitter = owner(&brand, "twitter");
    let post = [outbound(
        "5001",
        "post-1",
        "Vandaag zijn we gesloten 🎄",
        T0,
    )];
    let out = commit(storage, &twitter, batch(&post, &[], None)).await;
    assert_eq!(
        (out.inserted, out.cases_opened),
        (1, 0),
        "an outbound message is stored but opens no case: {out:?}"
    );
    assert!(
        cases_of(storage, &brand).await.is_empty(),
        "no case without a customer"
    );
    let messages = messages_of(storage, &brand).await;
    assert_eq!(stored(&messages, "twitter", "5001").case_id, None);

    let question = [inbound("5002", "post-1", "sanne_dv", DUTCH, T0 + MINUTE)];
    let out = commit(storage, &twitter, batch(&question, &[], None)).await;
    assert_eq!(
        out.cases_opened, 1,
        "the customer's message opens the case: {out:?}"
    );
    let case = cases_of(storage, &brand).await[0].clone();
    assert_eq!((case.message_count, case.author.as_str()), (1, "sanne_dv"));

    let answer = [outbound(
        "5003",
        "post-1",
        "Hoi Sanne, we kijken het na! ^JB",
        T0 + 9 * MINUTE,
    )];
    let out = commit(storage, &twitter, batch(&answer, &[], None)).await;
    assert_eq!(out.cases_opened, 0, "an answer opens no case: {out:?}");
    let cases = cases_of(storage, &brand).await;
    assert_eq!(cases.len(), 1);
    assert_eq!(
        (
            cases[0].message_count,
            cases[0].last_message_at,
            cases[0].status
        ),
        (2, T0 + 9 * MINUTE, CaseStatus::New),
        "the answer joins the case without changing its status: {:?}",
        cases[0]
    );
    let messages = messages_of(storage, &brand).await;
    assert_eq!(stored(&messages, "twitter", "5003").case_id, Some(case.id));

    set_status(storage, &case, CaseStatus::Closed).await;
    let follow_up = [outbound(
        "5004",
        "post-1",
        "Fijne feestdagen!",
        T0 + 30 * MINUTE,
    )];
    commit(storage, &twitter, batch(&follow_up, &[], None)).await;
    let cases = cases_of(storage, &brand).await;
    assert_eq!(
        (cases[0].status, cases[0].message_count),
        (CaseStatus::Closed, 3),
        "the brand's own message does not reopen a closed case"
    );
}

/// Edits replace the content, deletions and hides set flags, and an update
/// about a message in the same batch applies after it is stored.
pub async fn updates_edit_delete_hide(storage: &dyn Storage) {
    let brand = unique_brand("updates");
    let twitter = owner(&brand, "twitter");
    let originals = [
        inbound("6001", "6001", "sanne_dv", DUTCH, T0),
        inbound("6002", "6002", "yusuf", ARABIC, T0 + MINUTE),
        inbound("6003", "6003", "noa", HEBREW, T0 + 2 * MINUTE),
    ];
    commit(storage, &twitter, batch(&originals, &[], None)).await;

    let mut edit = originals[0].clone();
    edit.text = "Hoi @AcmeNL, laat maar: pakket is er! 🎉📦".to_string();
    edit.html = None;
    let updates = [
        MessageUpdate::Edited(Box::new(edit.clone())),
        MessageUpdate::Deleted(removal("6002")),
        MessageUpdate::Hidden(removal("6003")),
    ];
    let out = commit(storage, &twitter, batch(&[], &updates, None)).await;
    assert_eq!(
        (out.updates_applied, out.updates_unknown, out.inserted),
        (3, 0, 0),
        "three updates about stored messages apply and insert nothing: {out:?}"
    );
    let messages = messages_of(storage, &brand).await;
    assert_eq!(messages.len(), 3, "updates add no messages");
    let edited = stored(&messages, "twitter", "6001");
    assert_eq!(edited.message, edit, "an edit replaces the whole message");
    assert!(
        edited.edited && !edited.deleted && !edited.hidden,
        "{edited:?}"
    );
    let deleted = stored(&messages, "twitter", "6002");
    assert!(
        deleted.deleted && !deleted.edited && !deleted.hidden,
        "{deleted:?}"
    );
    assert_eq!(
        deleted.message, originals[1],
        "a deletion keeps the content for the record"
    );
    let hidden = stored(&messages, "twitter", "6003");
    assert!(hidden.hidden && !hidden.deleted, "{hidden:?}");

    // Applied in order: hide then unhide leaves it visible.
    let toggles = [
        MessageUpdate::Unhidden(removal("6003")),
        MessageUpdate::Hidden(removal("6003")),
        MessageUpdate::Unhidden(removal("6003")),
    ];
    let out = commit(storage, &twitter, batch(&[], &toggles, None)).await;
    assert_eq!(out.updates_applied, 3, "{out:?}");
    let messages = messages_of(storage, &brand).await;
    assert!(
        !stored(&messages, "twitter", "6003").hidden,
        "the last update wins"
    );

    // A message and an update about it in one batch.
    let fresh = [inbound("6004", "6004", "piet", ZWJ, T0 + 3 * MINUTE)];
    let hide = [MessageUpdate::Hidden(removal("6004"))];
    let out = commit(storage, &twitter, batch(&fresh, &hide, None)).await;
    assert_eq!(
        (out.inserted, out.updates_applied),
        (1, 1),
        "the update applies to the message stored in the same batch: {out:?}"
    );
    let messages = messages_of(storage, &brand).await;
    assert!(stored(&messages, "twitter", "6004").hidden);
}

/// Updates about messages the queue never saw (or that belong to another
/// connector or brand) are counted and change nothing; an edit of an
/// unknown message does not insert it.
pub async fn unknown_updates_are_counted(storage: &dyn Storage) {
    let brand = unique_brand("unknown");
    let twitter = owner(&brand, "twitter");
    let known = [inbound("7001", "7001", "sanne_dv", DUTCH, T0)];
    commit(storage, &twitter, batch(&known, &[], None)).await;

    let updates = [
        MessageUpdate::Edited(Box::new(inbound("7100", "7100", "yusuf", ARABIC, T0))),
        MessageUpdate::Deleted(removal("7101")),
        MessageUpdate::Hidden(removal("7102")),
        MessageUpdate::Unhidden(removal("7103")),
    ];
    let out = commit(storage, &twitter, batch(&[], &updates, None)).await;
    assert_eq!(
        (out.updates_unknown, out.updates_applied, out.inserted),
        (4, 0, 0),
        "four updates about unknown messages are counted, not applied: {out:?}"
    );

    let hide = [MessageUpdate::Hidden(removal("7001"))];
    let out = commit(storage, &owner(&brand, "forum"), batch(&[], &hide, None)).await;
    assert_eq!(
        out.updates_unknown, 1,
        "another connector cannot update it: {out:?}"
    );
    let other_brand = owner(&unique_brand("unknown-other"), "twitter");
    let out = commit(storage, &other_brand, batch(&[], &hide, None)).await;
    assert_eq!(
        out.updates_unknown, 1,
        "another brand cannot update it: {out:?}"
    );

    let messages = messages_of(storage, &brand).await;
    assert_eq!(
        messages.len(),
        1,
        "an edit of an unknown message inserts nothing"
    );
    assert!(!messages[0].hidden, "updates from elsewhere change nothing");
    assert_eq!(messages[0].message, known[0]);
}

/// Two brands with the same connector ids, external ids and thread ids
/// share nothing: messages, cases, cursors, counts, status changes.
pub async fn brands_are_isolated(storage: &dyn Storage) {
    let (a, b) = (unique_brand("acme"), unique_brand("globex"));
    let (a_tw, b_tw) = (owner(&a, "twitter"), owner(&b, "twitter"));
    let for_a = [
        inbound("8001", "t1", "sanne_dv", DUTCH, T0),
        inbound("8002", "t1", "sanne_dv", ZWJ, T0 + MINUTE),
    ];
    let for_b = [
        inbound("8001", "t1", "yusuf", ARABIC, T0),
        inbound("8002", "t1", "noa", HEBREW, T0 + MINUTE),
    ];
    let out_a = commit(storage, &a_tw, batch(&for_a, &[], Some("a-1"))).await;
    let out_b = commit(storage, &b_tw, batch(&for_b, &[], Some("b-1"))).await;
    for (name, out) in [(&a, out_a), (&b, out_b)] {
        assert_eq!(
            (out.inserted, out.duplicates, out.cases_opened),
            (2, 0, 1),
            "{name}: the other brand's equal ids are no duplicates: {out:?}"
        );
    }

    let (msgs_a, msgs_b) = (
        messages_of(storage, &a).await,
        messages_of(storage, &b).await,
    );
    assert!(
        msgs_a.iter().all(|m| m.brand == a),
        "{a} sees only its own messages"
    );
    assert!(
        msgs_b.iter().all(|m| m.brand == b),
        "{b} sees only its own messages"
    );
    let texts = |ms: &[StoredMessage]| {
        ms.iter()
            .map(|m| m.message.text.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&msgs_a), [DUTCH, ZWJ]);
    assert_eq!(texts(&msgs_b), [ARABIC, HEBREW]);

    let (cases_a, cases_b) = (cases_of(storage, &a).await, cases_of(storage, &b).await);
    assert_eq!((cases_a.len(), cases_b.len()), (1, 1), "one case per brand");
    assert_ne!(cases_a[0].id, cases_b[0].id, "each brand has its own case");
    assert_eq!(cases_a[0].author, "sanne_dv");
    assert_eq!(cases_b[0].author, "yusuf");

    assert_eq!(cursor_of(storage, &a_tw).await.as_deref(), Some("a-1"));
    assert_eq!(cursor_of(storage, &b_tw).await.as_deref(), Some("b-1"));

    let care = storage
        .care()
        .expect("this backend must offer the case workflow (Storage::care)");
    let seen = care
        .case(&b, cases_a[0].id)
        .await
        .expect("reading a case should succeed");
    assert!(
        seen.is_none(),
        "{b} cannot see, so cannot change, a case of {a}"
    );
    assert_eq!(cases_of(storage, &a).await[0].status, CaseStatus::New);

    let hide = [MessageUpdate::Hidden(removal("8001"))];
    commit(storage, &b_tw, batch(&[], &hide, None)).await;
    assert!(!stored(&messages_of(storage, &a).await, "twitter", "8001").hidden);
    assert!(stored(&messages_of(storage, &b).await, "twitter", "8001").hidden);

    let counts = storage.counts().await.expect("counts should succeed");
    for brand in [&a, &b] {
        let mine: Vec<&ChannelCount> = counts.iter().filter(|c| &c.brand == brand).collect();
        assert_eq!(mine.len(), 1, "{brand} has one connector: {mine:?}");
        assert_eq!(
            (mine[0].messages, mine[0].cases),
            (2, 1),
            "{brand}: {mine:?}"
        );
    }

    let all = storage
        .cases(&CaseFilter::default())
        .await
        .expect("listing all brands' cases should succeed");
    for case in [&cases_a[0], &cases_b[0]] {
        assert!(
            all.iter().any(|c| c.id == case.id && c.brand == case.brand),
            "the operator view (no brand) lists case {} of {}",
            case.id,
            case.brand
        );
    }
}

/// Cases list newest activity first, filtered by status, cut at `limit`.
pub async fn cases_list_newest_first(storage: &dyn Storage) {
    let brand = unique_brand("listing");
    let twitter = owner(&brand, "twitter");
    // Threads whose last activity is in the order t3, t1, t4, t2, t0.
    let messages = [
        inbound("9001", "t0", "a", DUTCH, T0),
        inbound("9002", "t1", "b", ARABIC, T0 + 10 * MINUTE),
        inbound("9003", "t2", "c", HEBREW, T0 + 2 * MINUTE),
        inbound("9004", "t3", "d", ZWJ, T0 + 3 * MINUTE),
        inbound("9005", "t4", "e", CRLF, T0 + 4 * MINUTE),
        inbound("9006", "t3", "d", "nog iets", T0 + 20 * MINUTE),
    ];
    commit(storage, &twitter, batch(&messages, &[], None)).await;
    let threads = |cases: &[CaseSummary]| {
        cases
            .iter()
            .map(|c| c.thread_id.clone())
            .collect::<Vec<_>>()
    };

    let all = cases_of(storage, &brand).await;
    assert_eq!(
        threads(&all),
        ["t3", "t1", "t4", "t2", "t0"],
        "newest activity first"
    );
    let top = list_cases(storage, &brand, None, 2).await;
    assert_eq!(
        threads(&top),
        ["t3", "t1"],
        "limit 2 gives the two most recent"
    );

    set_status(storage, case_of(&all, "t1"), CaseStatus::Closed).await;
    set_status(storage, case_of(&all, "t2"), CaseStatus::Closed).await;
    let closed = list_cases(storage, &brand, Some(CaseStatus::Closed), 0).await;
    assert_eq!(
        threads(&closed),
        ["t1", "t2"],
        "only closed cases, newest first"
    );
    let new = list_cases(storage, &brand, Some(CaseStatus::New), 1).await;
    assert_eq!(threads(&new), ["t3"], "status and limit combine");
    let none = list_cases(storage, &brand, Some(CaseStatus::Escalated), 0).await;
    assert!(none.is_empty(), "no escalated cases: {none:?}");
}

/// Messages list oldest first by creation time, then in arrival order,
/// cut at `limit`.
pub async fn messages_list_oldest_first(storage: &dyn Storage) {
    let brand = unique_brand("ordering");
    let twitter = owner(&brand, "twitter");
    let first = [
        inbound("m3", "m3", "a", DUTCH, T0 + 3 * MINUTE),
        inbound("m1", "m1", "b", ARABIC, T0 + MINUTE),
    ];
    let second = [
        inbound("m2a", "m2", "c", HEBREW, T0 + 2 * MINUTE),
        inbound("m2b", "m2", "d", ZWJ, T0 + 2 * MINUTE),
        inbound("m0", "m0", "e", CRLF, T0),
    ];
    commit(storage, &twitter, batch(&first, &[], None)).await;
    commit(storage, &twitter, batch(&second, &[], None)).await;
    let ids = |ms: Vec<StoredMessage>| {
        ms.into_iter()
            .map(|m| m.message.external_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(messages_of(storage, &brand).await),
        ["m0", "m1", "m2a", "m2b", "m3"],
        "oldest first; equal times in arrival order"
    );
    let two = storage
        .messages(&brand, 2)
        .await
        .expect("listing messages should succeed");
    assert_eq!(ids(two), ["m0", "m1"], "limit 2 gives the two oldest");
}

/// Counts per brand, connector and channel, in that order; a connector
/// with only outbound messages has messages but no cases.
pub async fn counts_per_connector_and_channel(storage: &dyn Storage) {
    let brand = unique_brand("counts");
    let tw = [
        inbound("c1", "t1", "a", DUTCH, T0),
        inbound("c2", "t1", "b", ARABIC, T0 + MINUTE),
        inbound("c3", "t2", "c", HEBREW, T0 + 2 * MINUTE),
    ];
    commit(storage, &owner(&brand, "twitter"), batch(&tw, &[], None)).await;
    let forum = [outbound(
        "f1",
        "topic-9",
        "Onderhoud vannacht 02:00–04:00",
        T0,
    )];
    let forum_batch = IngestBatch {
        channel: "discourse",
        ..batch(&forum, &[], None)
    };
    commit(storage, &owner(&brand, "community"), forum_batch).await;

    let counts = storage.counts().await.expect("counts should succeed");
    let mine: Vec<ChannelCount> = counts.into_iter().filter(|c| c.brand == brand).collect();
    let expected = [
        ChannelCount {
            brand: brand.clone(),
            connector: "community".to_string(),
            channel: "discourse".to_string(),
            messages: 1,
            cases: 0,
        },
        ChannelCount {
            brand: brand.clone(),
            connector: "twitter".to_string(),
            channel: "twitter".to_string(),
            messages: 3,
            cases: 2,
        },
    ];
    assert_eq!(mine, expected, "one row per connector and channel, sorted");
}

/// Connector state is private to one (brand, connector), binary-safe,
/// shared by every handle of the storage, and held to the state limits.
pub async fn state_is_per_connector(storage: &dyn Storage) {
    let brand = unique_brand("state");
    let store = storage.state_store();
    let twitter = owner(&brand, "twitter");
    let forum = owner(&brand, "forum");
    let elsewhere = owner(&unique_brand("state-other"), "twitter");

    assert_eq!(
        store.get(&twitter, "since_id").unwrap(),
        None,
        "empty at first"
    );
    store.set(&twitter, "since_id", b"1874563").unwrap();
    assert_eq!(
        store.get(&twitter, "since_id").unwrap().as_deref(),
        Some(&b"1874563"[..])
    );
    assert_eq!(
        store.get(&forum, "since_id").unwrap(),
        None,
        "another connector sees nothing"
    );
    assert_eq!(
        store.get(&elsewhere, "since_id").unwrap(),
        None,
        "another brand sees nothing"
    );
    assert_eq!(
        storage
            .state_store()
            .get(&twitter, "since_id")
            .unwrap()
            .as_deref(),
        Some(&b"1874563"[..]),
        "every handle sees the same state"
    );

    let binary = [0_u8, 255, 128, 10, 13, 0];
    store.set(&twitter, "ключ-🔑", &binary).unwrap();
    assert_eq!(
        store.get(&twitter, "ключ-🔑").unwrap().as_deref(),
        Some(&binary[..])
    );
    store.set(&twitter, "empty", b"").unwrap();
    assert_eq!(
        store.get(&twitter, "empty").unwrap(),
        Some(Vec::new()),
        "empty is not absent"
    );
    store.set(&twitter, "since_id", b"1874999").unwrap();
    assert_eq!(
        store.get(&twitter, "since_id").unwrap().as_deref(),
        Some(&b"1874999"[..])
    );
    store.delete(&twitter, "since_id").unwrap();
    assert_eq!(store.get(&twitter, "since_id").unwrap(), None, "deleted");
    store.delete(&twitter, "never-set").unwrap();

    let too_long_key = "k".repeat(MAX_KEY_BYTES + 1);
    assert!(matches!(
        store.set(&forum, &too_long_key, b""),
        Err(StateError::TooLarge(_))
    ));
    let too_big = vec![7_u8; MAX_VALUE_BYTES + 1];
    assert!(matches!(
        store.set(&forum, "big", &too_big),
        Err(StateError::TooLarge(_))
    ));

    // Fill the forum connector up to its total.
    let chunk = vec![1_u8; MAX_VALUE_BYTES - 8];
    let fits = MAX_TOTAL_BYTES / (chunk.len() + 3);
    for i in 0..fits {
        store
            .set(&forum, &format!("k{i:02}"), &chunk)
            .unwrap_or_else(|e| panic!("chunk {i} of {fits} should fit: {e}"));
    }
    let over = store.set(&forum, "one-more", &chunk);
    assert!(
        matches!(over, Err(StateError::TooLarge(_))),
        "state beyond {MAX_TOTAL_BYTES} bytes must be refused, got {over:?}"
    );
    store
        .set(&forum, "k00", &chunk)
        .expect("replacing a value does not count it twice");
    store
        .set(&twitter, "unaffected", &chunk)
        .expect("one connector's full state does not limit another");
    store.delete(&forum, "k00").unwrap();
    store
        .set(&forum, "one-more", &chunk)
        .expect("deleting frees room");
}

/// A connector's poll lease has one holder at a time; the holder renews
/// it, an expired or released lease goes to the next host that asks.
pub async fn poll_leases_have_one_holder(storage: &dyn Storage) {
    let brand = unique_brand("leases");
    let (feed, mail) = (owner(&brand, "feed"), owner(&brand, "mail"));
    let both = [feed.clone(), mail.clone()];
    let (one, two) = (format!("{brand}-host-1"), format!("{brand}-host-2"));
    let long = std::time::Duration::from_secs(600);
    let claim = |holder: &str, wanted: &[ConnectorId], ttl| {
        let holder = holder.to_string();
        let wanted = wanted.to_vec();
        async move { storage.claim_leases(&holder, &wanted, ttl).await.unwrap() }
    };

    assert_eq!(
        claim(&one, &both, long).await,
        both,
        "free leases are taken"
    );
    assert!(
        claim(&two, &both, long).await.is_empty(),
        "a held lease is not taken"
    );
    assert_eq!(
        claim(&one, &both, long).await,
        both,
        "the holder renews its leases"
    );

    // Host 1 stops renewing `mail`: once expired, host 2 takes it.
    assert_eq!(
        claim(&one, std::slice::from_ref(&mail), std::time::Duration::ZERO).await,
        std::slice::from_ref(&mail)
    );
    assert_eq!(claim(&two, &both, long).await, std::slice::from_ref(&mail));
    let held: Vec<(String, String)> = storage
        .leases()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.brand == brand)
        .map(|l| (l.connector, l.holder))
        .collect();
    assert_eq!(
        held,
        [
            ("feed".to_string(), one.clone()),
            ("mail".to_string(), two.clone())
        ]
    );
    assert!(
        claim(&one, std::slice::from_ref(&mail), long)
            .await
            .is_empty(),
        "a lease lost is not taken back while the new holder renews it"
    );

    // Hosts say they are alive; a released host is gone at once.
    let alive = storage.heartbeat(&one, long).await.unwrap();
    assert_eq!(storage.heartbeat(&two, long).await.unwrap(), alive + 1);
    assert_eq!(storage.heartbeat(&two, long).await.unwrap(), alive + 1);

    // A clean stop releases at once.
    storage.release_leases(&one).await.unwrap();
    assert_eq!(storage.heartbeat(&two, long).await.unwrap(), alive);
    assert_eq!(claim(&two, &both, long).await, both);
    storage.release_leases(&two).await.unwrap();
    assert!(
        storage
            .leases()
            .await
            .unwrap()
            .iter()
            .all(|l| l.brand != brand)
    );
}
