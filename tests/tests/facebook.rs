//! The Facebook connector: the real `facebook_connector.wasm` in the real
//! host, against a fake Graph API on loopback (`webcare_tests::fake_facebook`)
//! and signed webhook deliveries built from recorded and documented payloads
//! (`tests/fixtures/facebook`, credited in its `SOURCES`).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use common::grants;
use serde_json::{Value, json};
use webcare::model::{
    Action, ActionKind, ActionTarget, AttachmentKind, ConnectorError, Direction, Message,
    MessageKind, MessageUpdate, Outgoing, Visibility, WebhookOutcome, WebhookRequest,
};
use webcare::runtime::{CallLimits, ConnectorInstance, PluginError};
use webcare_tests::facebook_fixture;
use webcare_tests::fake_api::{FakeApi, Recorded};
use webcare_tests::fake_facebook::{
    APP_SECRET, FakeGraph, PAGE_ID, TOKEN, VERIFY_TOKEN, appsecret_proof, graph_router, sign,
};
use webcare_tests::plugins::plugin_path;
use webcare_tests::runtime;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A Facebook connector against `api`, with `token` as page token.
async fn facebook_with(api: &FakeApi, token: &str) -> ConnectorInstance {
    let rt = runtime();
    let plugin = rt
        .load_file(&plugin_path("facebook_connector"))
        .await
        .expect("load facebook connector");
    let base = api.base_url();
    rt.configured_connector(
        plugin,
        grants(
            "acme",
            &[("graph_base_url", &base), ("page_id", PAGE_ID)],
            &[
                ("page_access_token", token),
                ("app_secret", APP_SECRET),
                ("verify_token", VERIFY_TOKEN),
            ],
            &[api.allow_entry()],
        ),
        CallLimits::default(),
    )
    .await
    .expect("facebook settings fit")
}

async fn facebook(api: &FakeApi) -> ConnectorInstance {
    facebook_with(api, TOKEN).await
}

async fn fake_graph() -> (FakeApi, FakeGraph) {
    let graph = FakeGraph::default();
    (FakeApi::start(graph_router(graph.clone())).await, graph)
}

/// A webhook `POST` of `body` with `signature` as `X-Hub-Signature-256`.
fn delivery(body: &[u8], signature: Option<String>) -> WebhookRequest {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(signature) = signature {
        headers.push(("x-hub-signature-256".to_owned(), signature));
    }
    WebhookRequest {
        method: "POST".into(),
        headers,
        body: body.to_vec(),
        ..Default::default()
    }
}

/// A correctly signed delivery of `body`.
fn signed(body: &str) -> WebhookRequest {
    delivery(body.as_bytes(), Some(sign(body.as_bytes(), APP_SECRET)))
}

async fn deliver(fb: &mut ConnectorInstance, body: &str) -> WebhookOutcome {
    let outcome = fb
        .handle_webhook(signed(body))
        .await
        .expect("delivery accepted");
    assert_eq!(outcome.response.status, 200);
    outcome
}

fn by_id<'a>(messages: &'a [Message], id: &str) -> &'a Message {
    messages
        .iter()
        .find(|m| m.external_id == id)
        .unwrap_or_else(|| panic!("no message {id} in {messages:#?}"))
}

/// The value of property `name` of `message`.
fn property<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .properties
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn target_of(m: &Message) -> ActionTarget {
    ActionTarget::of_message(m, None)
}

fn act(kind: ActionKind) -> Action {
    Action {
        idempotency_key: "case-7-action-1".into(),
        kind,
    }
}

fn text(text: &str) -> Outgoing {
    Outgoing {
        text: text.into(),
        attachments: vec![],
    }
}

/// Every request to the fake Graph API carried the token as a bearer
/// header (never in the URL) and the right `appsecret_proof`.
fn assert_signed(request: &Recorded) {
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str()),
        "{request:?}"
    );
    assert!(
        request.query.contains(&format!(
            "appsecret_proof={}",
            appsecret_proof(TOKEN, APP_SECRET)
        )),
        "{}",
        request.query
    );
    assert!(!request.query.contains(TOKEN), "token leaked into the URL");
}

fn form(request: &Recorded) -> Vec<(String, String)> {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

fn connector_error(err: PluginError) -> ConnectorError {
    match err {
        PluginError::Connector(e) => e,
        other => panic!("expected a connector error, got {other}"),
    }
}

// ---------------------------------------------------------------- webhooks

#[tokio::test]
async fn verification_handshake_echoes_the_challenge_only_for_the_right_token() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;
    let handshake = |token: &str| WebhookRequest {
        method: "GET".into(),
        query: vec![
            ("hub.mode".into(), "subscribe".into()),
            ("hub.verify_token".into(), token.into()),
            ("hub.challenge".into(), "1158201444".into()),
        ],
        ..Default::default()
    };
    let ok = fb.handle_webhook(handshake(VERIFY_TOKEN)).await.unwrap();
    assert_eq!(ok.response.status, 200);
    assert_eq!(ok.response.body, b"1158201444");
    let wrong = fb.handle_webhook(handshake("guess")).await.unwrap();
    assert_eq!(wrong.response.status, 403);
    assert!(!wrong.response.body.starts_with(b"1158201444"));
    let bare = fb
        .handle_webhook(WebhookRequest {
            method: "GET".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(bare.response.status, 400);
    assert_eq!(api.request_count(), 0);
}

#[tokio::test]
async fn batched_entries_all_land_with_text_intact() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;
    let outcome = deliver(&mut fb, facebook_fixture!("webhook-batched.json")).await;
    assert_eq!(outcome.response.body, b"EVENT_RECEIVED");
    assert!(outcome.updates.is_empty());
    // Five messages from three entries; the reaction and the read receipt are skipped.
    let ids: Vec<&str> = outcome
        .messages
        .iter()
        .map(|m| m.external_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "901097836652708_903438993085300",
            "1234567890321_901097836659999",
            "7363534231324_3754798971271500",
            "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P",
            "901097836652708_903438993085301",
        ],
        "oldest first"
    );

    let comment = by_id(&outcome.messages, "901097836652708_903438993085300");
    assert_eq!(comment.kind, MessageKind::Comment);
    assert_eq!(comment.visibility, Visibility::Public);
    assert_eq!(comment.direction, Direction::Inbound);
    assert!(comment.addressed_to_brand);
    assert_eq!(comment.thread_id, "1234567890321_901097836652708");
    assert_eq!(
        comment.in_reply_to.as_deref(),
        Some("1234567890321_901097836652708")
    );
    assert_eq!(
        comment.text,
        "Hé, mijn pakketje is nog steeds niet bezorgd. Wanneer komt het? 😡"
    );
    assert_eq!(comment.author.id, "6203344556677889");
    assert_eq!(comment.author.display_name, "Joost de Vries");
    assert_eq!(comment.created_at, 1_795_166_100_000);
    assert_eq!(
        comment.permalink.as_deref(),
        Some(
            "https://www.facebook.com/1234567890321_901097836652708?comment_id=901097836652708_903438993085300"
        )
    );
    assert_eq!(
        property(comment, "comment_id"),
        Some("901097836652708_903438993085300")
    );
    assert_eq!(
        property(comment, "post_id"),
        Some("1234567890321_901097836652708")
    );
    assert_eq!(property(comment, "page_id"), Some(PAGE_ID));
    assert_eq!(property(comment, "item"), Some("comment"));

    // The page's own answer to that comment: outbound, linked to it.
    let answer = by_id(&outcome.messages, "901097836652708_903438993085301");
    assert_eq!(answer.direction, Direction::Outbound);
    assert_eq!(
        answer.in_reply_to.as_deref(),
        Some("901097836652708_903438993085300")
    );
    assert_eq!(
        answer.text,
        "Sorry Joost, we zoeken het meteen voor je uit! 📦"
    );

    let post = by_id(&outcome.messages, "1234567890321_901097836659999");
    assert_eq!(post.kind, MessageKind::Post);
    assert_eq!(post.thread_id, post.external_id);
    assert_eq!(post.in_reply_to, None);
    assert_eq!(post.text, "مرحبا، طلبي لم يصل بعد. هل يمكنكم المساعدة؟");
    assert_eq!(post.author.display_name, "ليلى");
    assert_eq!(post.attachments[0].kind, AttachmentKind::Image);
    assert_eq!(
        post.permalink.as_deref(),
        Some("https://www.facebook.com/1234567890321_901097836659999")
    );

    let mention = by_id(&outcome.messages, "7363534231324_3754798971271500");
    assert_eq!(mention.kind, MessageKind::Mention);
    assert_eq!(mention.direction, Direction::Inbound);
    assert_eq!(mention.author.id, "", "mentions come without an author");
    assert_eq!(mention.text, "@Acme Care kijk hier even naar 🙏🏽");

    let dm = by_id(
        &outcome.messages,
        "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P",
    );
    assert_eq!(dm.kind, MessageKind::DirectMessage);
    assert_eq!(dm.visibility, Visibility::Private);
    assert_eq!(dm.direction, Direction::Inbound);
    assert_eq!(dm.thread_id, "messenger:2468013579");
    assert_eq!(property(dm, "psid"), Some("2468013579"));
    assert_eq!(dm.text, "שלום, ההזמנה שלי לא הגיעה");
    assert_eq!(dm.created_at, 1_795_166_300_000);
    assert_eq!(
        dm.attachments[0].url.as_deref(),
        Some("https://scontent.example/dm-image.jpg")
    );

    assert_eq!(api.request_count(), 0, "a delivery needs no Graph call");
}

#[tokio::test]
async fn duplicate_delivery_gives_the_same_external_ids() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;
    let body = facebook_fixture!("webhook-batched.json");
    let first = deliver(&mut fb, body).await;
    let second = deliver(&mut fb, body).await;
    assert_eq!(
        first.messages, second.messages,
        "a redelivery normalises identically"
    );
}

#[tokio::test]
async fn tampered_missing_or_foreign_signatures_are_refused_and_nothing_lands() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;
    let body = facebook_fixture!("webhook-batched.json");
    let signature = sign(body.as_bytes(), APP_SECRET);

    let tampered = body.replace("Joost de Vries", "Joost de Vriez");
    let refused = fb
        .handle_webhook(delivery(tampered.as_bytes(), Some(signature.clone())))
        .await
        .unwrap();
    assert_eq!(refused.response.status, 403);
    assert!(refused.messages.is_empty() && refused.updates.is_empty());

    let missing = fb
        .handle_webhook(delivery(body.as_bytes(), None))
        .await
        .unwrap();
    assert_eq!(missing.response.status, 401);
    assert!(missing.messages.is_empty());

    let foreign = sign(body.as_bytes(), "another-apps-secret");
    let other = fb
        .handle_webhook(delivery(body.as_bytes(), Some(foreign)))
        .await
        .unwrap();
    assert_eq!(other.response.status, 403);
    assert!(other.messages.is_empty());

    let garbled = fb
        .handle_webhook(delivery(body.as_bytes(), Some("sha256=zz".into())))
        .await
        .unwrap();
    assert_eq!(garbled.response.status, 403);

    // The genuine one still lands.
    let ok = fb
        .handle_webhook(delivery(body.as_bytes(), Some(signature)))
        .await
        .unwrap();
    assert_eq!(ok.messages.len(), 5);
}

#[tokio::test]
async fn recorded_restfb_payloads_numeric_ids_and_older_shapes() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;

    // A comment written by the page itself (from.id == page id): outbound.
    let own = deliver(&mut fb, facebook_fixture!("feed-comment-add-211.json")).await;
    assert_eq!(own.messages.len(), 1);
    let m = &own.messages[0];
    assert_eq!(m.external_id, "901097836652708_903438993085259");
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(
        m.in_reply_to.as_deref(),
        Some("1234567890321_901097836652708")
    );
    assert_eq!(m.text, "and the next one");
    assert_eq!(m.created_at, 1_449_135_003_000);

    // `verb: edited` with the older sender_id (a number) / sender_name.
    let edited = deliver(&mut fb, facebook_fixture!("feed-comment-edited-25.json")).await;
    assert!(edited.messages.is_empty());
    match &edited.updates[..] {
        [MessageUpdate::Edited(m)] => {
            assert_eq!(m.external_id, "900728623356296_900744590021366");
            assert_eq!(m.author.id, "1234567890321");
            assert_eq!(m.author.display_name, "Tester");
            assert_eq!(m.text, "Let's see the Webhooks in action :D");
            assert_eq!(m.direction, Direction::Outbound);
        }
        other => panic!("expected one edit, got {other:?}"),
    }

    // A mention: no `from` at all.
    let mention = deliver(&mut fb, facebook_fixture!("mention-comment-add.json")).await;
    let m = &mention.messages[0];
    assert_eq!(m.kind, MessageKind::Mention);
    assert_eq!(m.thread_id, "1234567890321_7363534231324");
    assert_eq!(m.author.id, "");
    assert_eq!(m.direction, Direction::Inbound);

    // Messenger with numeric ids.
    let dm = deliver(&mut fb, facebook_fixture!("messaging-message-basic.json")).await;
    let m = &dm.messages[0];
    assert_eq!(m.external_id, "mid.1457764197618:41d102a3e1ae206a38");
    assert_eq!(m.thread_id, "messenger:987654321432");
    assert_eq!(m.author.id, "987654321432");
    assert_eq!(property(m, "page_id"), Some("12345654332"));
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.visibility, Visibility::Private);
    assert_eq!(m.created_at, 1_457_764_197_627);

    // Its echo: sent by the page, outbound, in the same conversation.
    let echo = deliver(
        &mut fb,
        facebook_fixture!("messaging-message-basic-echo.json"),
    )
    .await;
    let m = &echo.messages[0];
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(m.thread_id, "messenger:987654321432");
    assert_eq!(m.author.id, "12345654332");
    assert_eq!(
        property(m, "metadata"),
        Some("DEVELOPER_DEFINED_METADATA_STRING")
    );
}

#[tokio::test]
async fn removed_hidden_and_unhidden_are_updates() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;
    let outcome = deliver(&mut fb, facebook_fixture!("webhook-remove-hide.json")).await;
    assert!(outcome.messages.is_empty());
    match &outcome.updates[..] {
        [
            MessageUpdate::Hidden(hidden),
            MessageUpdate::Unhidden(unhidden),
            MessageUpdate::Deleted(comment),
            MessageUpdate::Deleted(post),
        ] => {
            assert_eq!(hidden.external_id, "901097836652708_903438993085300");
            assert_eq!(
                hidden.thread_id.as_deref(),
                Some("1234567890321_901097836652708")
            );
            assert_eq!(hidden.at, Some(1_795_169_900_000));
            assert_eq!(hidden.by.as_deref(), Some("6203344556677889"));
            assert_eq!(unhidden.external_id, hidden.external_id);
            assert_eq!(comment.external_id, "901097836652708_903438993085302");
            assert_eq!(post.external_id, "1234567890321_901097836659999");
            assert_eq!(post.by, None);
        }
        other => panic!("unexpected updates {other:?}"),
    }
}

#[tokio::test]
async fn unknown_objects_are_acknowledged_and_malformed_json_is_invalid_input() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;
    let instagram = r#"{"object":"instagram","entry":[{"id":"1789","time":1795166100,"changes":[{"field":"comments","value":{"id":"1","text":"hi","from":"x"}}]}]}"#;
    let outcome = deliver(&mut fb, instagram).await;
    assert!(outcome.messages.is_empty() && outcome.updates.is_empty());

    // A body cut short, then one whose third entry is broken: nothing lands.
    let full = facebook_fixture!("webhook-batched.json");
    for body in [
        &full[..full.len() / 2],
        &full.replacen(
            "\"id\": \"1234567890321\",\n      \"time\": 1795166600000",
            "\"id\": {},",
            1,
        ),
    ] {
        let err = fb.handle_webhook(signed(body)).await.unwrap_err();
        assert_eq!(err.kind(), "invalid-input", "{err}");
    }
    let no_comment_id = r#"{"object":"page","entry":[{"id":"1234567890321","changes":[{"field":"feed","value":{"item":"comment","verb":"add","post_id":"1_2","message":"x"}}]}]}"#;
    let err = fb.handle_webhook(signed(no_comment_id)).await.unwrap_err();
    assert_eq!(err.kind(), "invalid-input", "{err}");
}

// -------------------------------------------------------------------- poll

/// A cursor at 2026-11-20T00:00:00Z, as a host would hold it.
const NOV_20: &str = r#"{"since":1795132800,"newest":1795132800}"#;

#[tokio::test]
async fn poll_reads_feed_and_comments_with_pagination_and_resumes_without_duplicates() {
    let (api, graph) = fake_graph().await;
    let mut fb = facebook(&api).await;

    let first = fb.poll(Some(NOV_20)).await.expect("first page");
    assert!(first.has_more);
    assert_eq!(first.retry_after_ms, None);
    let ids: Vec<&str> = first
        .messages
        .iter()
        .map(|m| m.external_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "1234567890321_1002",
            "1234567890321_1001",
            "1001_2001",
            "1001_2002",
            "1001_2003"
        ]
    );
    let post = by_id(&first.messages, "1234567890321_1001");
    assert_eq!(post.kind, MessageKind::Post);
    assert_eq!(post.direction, Direction::Inbound);
    assert_eq!(post.created_at, 1_795_161_600_000);
    assert_eq!(
        post.permalink.as_deref(),
        Some("https://www.facebook.com/1234567890321/posts/1001")
    );
    assert_eq!(
        post.text,
        "Waarom duurt mijn levering zo lang? Bestelling #A-20931 🚚"
    );
    assert_eq!(
        by_id(&first.messages, "1234567890321_1002").direction,
        Direction::Outbound
    );
    let arabic = by_id(&first.messages, "1001_2001");
    assert_eq!(arabic.text, "مرحبا، نفس المشكلة عندي");
    assert_eq!(arabic.thread_id, "1234567890321_1001");
    assert_eq!(arabic.in_reply_to.as_deref(), Some("1234567890321_1001"));
    let page_reply = by_id(&first.messages, "1001_2002");
    assert_eq!(page_reply.direction, Direction::Outbound);
    assert_eq!(page_reply.in_reply_to.as_deref(), Some("1001_2001"));
    assert_eq!(
        by_id(&first.messages, "1001_2003").text,
        "שלום, גם אני מחכה"
    );

    let second = fb
        .poll(first.next_cursor.as_deref())
        .await
        .expect("second page");
    assert!(!second.has_more);
    let ids: Vec<&str> = second
        .messages
        .iter()
        .map(|m| m.external_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["999_2004"],
        "the old post itself and its old comment stay out"
    );
    assert_eq!(
        second.messages[0].text,
        "Is deze jas ook in het blauw? 😍👍"
    );
    let cursor = second.next_cursor.clone().unwrap();
    assert!(cursor.len() < 4096);

    // What Graph was asked: the feed twice (second with `after`), comments of
    // every post, the long thread in two pages, always since the cursor.
    let requests = api.requests();
    for r in &requests {
        assert_eq!(r.method, "GET");
        assert_signed(r);
        assert!(r.query.contains("since=1795132800"), "{}", r.query);
    }
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v21.0/1234567890321/feed",
            "/v21.0/1234567890321_1001/comments",
            "/v21.0/1234567890321_1001/comments",
            "/v21.0/1234567890321_1002/comments",
            "/v21.0/1234567890321/feed",
            "/v21.0/1234567890321_999/comments",
        ]
    );
    assert!(!requests[0].query.contains("after="));
    assert!(
        requests[2].query.contains("after=2"),
        "{}",
        requests[2].query
    );
    assert!(
        requests[4].query.contains("after=QVFIUmZAfeed1a"),
        "{}",
        requests[4].query
    );
    assert!(
        requests[0]
            .query
            .contains("fields=id%2Cmessage%2Ccreated_time"),
        "{}",
        requests[0].query
    );

    // New activity, then a new window from the stored cursor: only the new
    // comment, nothing delivered before.
    graph.add_comment(
        "1234567890321_1001",
        json!({"id": "1001_2005", "message": "Nog steeds niks 😤", "created_time": "2026-11-20T11:00:00+0000",
               "from": {"id": "6203344556677889", "name": "Joost de Vries"}}),
    );
    let before = api.request_count();
    let mut cursor = Some(cursor);
    let mut later = Vec::new();
    for _ in 0..4 {
        let batch = fb.poll(cursor.as_deref()).await.expect("later poll");
        later.extend(batch.messages);
        cursor = batch.next_cursor;
        if !batch.has_more {
            break;
        }
    }
    let ids: Vec<&str> = later.iter().map(|m| m.external_id.as_str()).collect();
    assert_eq!(ids, ["1001_2005"]);
    assert!(
        api.requests()[before].query.contains("since=1795168800"),
        "the new window starts at the newest second delivered: {}",
        api.requests()[before].query
    );
}

#[tokio::test]
async fn first_poll_looks_back_a_day_and_poll_feed_false_polls_nothing() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;
    let before = now_ms() / 1000;
    let first = fb.poll(None).await.expect("first poll");
    let after = now_ms() / 1000;
    // The fixtures are from 2026-11-18..20: nothing of it is within the last day
    // (the fake filters comments by `since`; the posts are older too).
    assert!(first.messages.is_empty(), "{:?}", first.messages);
    let since: i64 = api.requests()[0]
        .query
        .split('&')
        .find_map(|pair| pair.strip_prefix("since="))
        .expect("a since parameter")
        .parse()
        .unwrap();
    assert!(
        (before - 86_400..=after - 86_400).contains(&since),
        "{since} is not a day ago"
    );

    let rt = runtime();
    let plugin = rt
        .load_file(&plugin_path("facebook_connector"))
        .await
        .unwrap();
    let base = api.base_url();
    let mut webhooks_only = rt
        .configured_connector(
            plugin,
            grants(
                "acme",
                &[
                    ("graph_base_url", &base),
                    ("page_id", PAGE_ID),
                    ("poll_feed", "false"),
                ],
                &[
                    ("page_access_token", TOKEN),
                    ("app_secret", APP_SECRET),
                    ("verify_token", VERIFY_TOKEN),
                ],
                &[api.allow_entry()],
            ),
            CallLimits::default(),
        )
        .await
        .unwrap();
    let calls = api.request_count();
    let batch = webhooks_only.poll(None).await.unwrap();
    assert!(batch.messages.is_empty() && batch.next_cursor.is_none());
    assert_eq!(
        api.request_count(),
        calls,
        "poll_feed = false makes no call"
    );
}

#[tokio::test]
async fn expired_token_is_unauthorized_and_expired() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook_with(&api, "EAAGexpiredToken").await;
    match connector_error(fb.poll(Some(NOV_20)).await.unwrap_err()) {
        ConnectorError::Unauthorized {
            expired, detail, ..
        } => {
            assert!(expired, "{detail}");
            assert!(detail.contains("190"), "{detail}");
            assert!(!detail.contains("EAAGexpiredToken"), "{detail}");
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
}

/// Response headers of a fake answer.
type Headers = Vec<(&'static str, String)>;

/// A Graph API whose feed answers with `status`, `headers` and `body`.
async fn feed_answering(status: StatusCode, headers: Headers, body: &'static str) -> FakeApi {
    let router = Router::new()
        .route(
            "/v21.0/{page}/feed",
            get(move || {
                let headers = headers.clone();
                async move {
                    let mut response = (status, body).into_response();
                    for (name, value) in headers {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response
                }
            }),
        )
        .route("/v21.0/{post}/comments", get(|| async { r#"{"data":[]}"# }));
    FakeApi::start(router).await
}

#[tokio::test]
async fn rate_limits_from_errors_and_usage_headers() {
    let feed = facebook_fixture!("graph-feed-page-2.json");

    // A successful page, but the app is at 97 %: the batch lands and asks the host to wait.
    let api = feed_answering(
        StatusCode::OK,
        vec![(
            "x-app-usage",
            r#"{"call_count":97,"total_time":40,"total_cputime":30}"#.into(),
        )],
        feed,
    )
    .await;
    let mut fb = facebook(&api).await;
    let batch = fb.poll(Some(NOV_20)).await.unwrap();
    assert_eq!(batch.messages.len(), 0);
    assert_eq!(batch.retry_after_ms, Some(300_000));
    assert!(!batch.has_more);

    // Business use case usage says how long until access comes back.
    let api = feed_answering(
        StatusCode::OK,
        vec![("x-business-use-case-usage", r#"{"1234567890321":[{"type":"pages","call_count":100,"total_cputime":10,"total_time":12,"estimated_time_to_regain_access":7}]}"#.into())],
        feed,
    )
    .await;
    let mut fb = facebook(&api).await;
    assert_eq!(
        fb.poll(Some(NOV_20)).await.unwrap().retry_after_ms,
        Some(420_000)
    );

    // Graph error code 4 (app limit) and 613 (with Retry-After), HTTP 429.
    let cases: [(StatusCode, Headers, &'static str, u64); 3] = [
        (
            StatusCode::FORBIDDEN,
            vec![],
            facebook_fixture!("graph-error-4.json"),
            300_000,
        ),
        (
            StatusCode::BAD_REQUEST,
            vec![("retry-after", "90".into())],
            facebook_fixture!("graph-error-613.json"),
            90_000,
        ),
        (
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "120".into())],
            "Too Many Requests",
            120_000,
        ),
    ];
    for (status, headers, body, wait) in cases {
        let api = feed_answering(status, headers, body).await;
        let mut fb = facebook(&api).await;
        match connector_error(fb.poll(Some(NOV_20)).await.unwrap_err()) {
            ConnectorError::RateLimited { retry_after_ms, .. } => {
                assert_eq!(retry_after_ms, wait, "{body}")
            }
            other => panic!("expected rate-limited for {body}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn malformed_graph_page_is_invalid_input() {
    let api = feed_answering(
        StatusCode::OK,
        vec![],
        r#"{"data":[{"id":"1_2","created_time":"2026-11-20T08:00:00+0000"},{"id":"#,
    )
    .await;
    let mut fb = facebook(&api).await;
    let err = fb.poll(Some(NOV_20)).await.unwrap_err();
    assert_eq!(err.kind(), "invalid-input", "{err}");
}

// ----------------------------------------------------------------- actions

/// The batched delivery's messages, for action targets.
async fn delivered(fb: &mut ConnectorInstance) -> Vec<Message> {
    deliver(fb, facebook_fixture!("webhook-batched.json"))
        .await
        .messages
}

const JOOST_COMMENT: &str = "901097836652708_903438993085300";
const DM: &str =
    "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P";

#[tokio::test]
async fn public_reply_like_hide_and_unhide_reach_graph() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;
    let messages = delivered(&mut fb).await;
    let comment = target_of(by_id(&messages, JOOST_COMMENT));

    let reply = fb
        .perform(
            act(ActionKind::Reply(text(
                "Sorry Joost, we zoeken het uit! 📦 شكرا",
            ))),
            comment.clone(),
        )
        .await
        .expect("reply");
    assert_eq!(reply.external_id.as_deref(), Some("903438993085300_777001"));
    assert_eq!(
        reply.permalink.as_deref(),
        Some(
            "https://www.facebook.com/1234567890321_901097836652708?comment_id=903438993085300_777001"
        )
    );
    fb.perform(act(ActionKind::React("like".into())), comment.clone())
        .await
        .expect("like");
    fb.perform(act(ActionKind::Hide), comment.clone())
        .await
        .expect("hide");
    fb.perform(act(ActionKind::Unhide), comment.clone())
        .await
        .expect("unhide");

    let requests = api.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_signed(r);
    }
    assert_eq!(requests[0].path, format!("/v21.0/{JOOST_COMMENT}/comments"));
    assert_eq!(
        form(&requests[0]),
        [(
            "message".to_owned(),
            "Sorry Joost, we zoeken het uit! 📦 شكرا".to_owned()
        )]
    );
    assert_eq!(requests[1].path, format!("/v21.0/{JOOST_COMMENT}/likes"));
    assert_eq!(requests[2].path, format!("/v21.0/{JOOST_COMMENT}"));
    assert_eq!(
        form(&requests[2]),
        [("is_hidden".to_owned(), "true".to_owned())]
    );
    assert_eq!(
        form(&requests[3]),
        [("is_hidden".to_owned(), "false".to_owned())]
    );

    // A reaction Graph cannot make, and hiding a Messenger message: refused without a call.
    let err = connector_error(
        fb.perform(act(ActionKind::React("love".into())), comment)
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, ConnectorError::Unsupported { .. }), "{err:?}");
    let dm = target_of(by_id(&messages, DM));
    let err = connector_error(fb.perform(act(ActionKind::Hide), dm).await.unwrap_err());
    assert!(
        matches!(err, ConnectorError::InvalidInput { .. }),
        "{err:?}"
    );
    assert_eq!(api.request_count(), 4);
}

#[tokio::test]
async fn private_reply_once_within_seven_days() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;
    let messages = delivered(&mut fb).await;
    let mut comment = target_of(by_id(&messages, JOOST_COMMENT));

    // Eight days old: refused before any call.
    comment.created_at = now_ms() - 8 * DAY_MS;
    let err = connector_error(
        fb.perform(
            act(ActionKind::PrivateReply(text("Mag ik je ordernummer?"))),
            comment.clone(),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        matches!(&err, ConnectorError::NotAllowed { detail } if detail.contains("7 days")),
        "{err:?}"
    );
    assert_eq!(api.request_count(), 0);

    comment.created_at = now_ms() - 2 * DAY_MS;
    let sent = fb
        .perform(
            act(ActionKind::PrivateReply(text("Mag ik je ordernummer? 🙏"))),
            comment.clone(),
        )
        .await
        .expect("private reply");
    assert_eq!(sent.external_id.as_deref(), Some("m_sent_9f8e7d6c"));
    let requests = api.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, format!("/v21.0/{PAGE_ID}/messages"));
    assert_signed(&requests[0]);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["recipient"], json!({"comment_id": JOOST_COMMENT}));
    assert_eq!(body["message"]["text"], "Mag ik je ordernummer? 🙏");

    // A retry of the same action gets the same answer without a second message ...
    let again = fb
        .perform(
            act(ActionKind::PrivateReply(text("Mag ik je ordernummer? 🙏"))),
            comment.clone(),
        )
        .await
        .expect("retry of the same action");
    assert_eq!(again.external_id.as_deref(), Some("m_sent_9f8e7d6c"));
    // ... and another private reply to the same comment is refused.
    let second = Action {
        idempotency_key: "case-7-action-2".into(),
        kind: ActionKind::PrivateReply(text("Nog een vraag")),
    };
    let err = connector_error(fb.perform(second, comment).await.unwrap_err());
    assert!(
        matches!(&err, ConnectorError::NotAllowed { detail } if detail.contains("one private reply")),
        "{err:?}"
    );
    assert_eq!(api.request_count(), 1, "no second message was sent");
}

#[tokio::test]
async fn messenger_reply_windows_pick_the_tag_or_refuse() {
    let (api, _) = fake_graph().await;
    let mut fb = facebook(&api).await;
    let messages = delivered(&mut fb).await;
    let mut dm = target_of(by_id(&messages, DM));

    dm.last_inbound_at = Some(now_ms() - HOUR_MS);
    let sent = fb
        .perform(
            act(ActionKind::Reply(text("שלום! נבדוק את זה עכשיו"))),
            dm.clone(),
        )
        .await
        .expect("reply within 24 h");
    assert_eq!(sent.external_id.as_deref(), Some("m_sent_9f8e7d6c"));

    dm.last_inbound_at = Some(now_ms() - 30 * HOUR_MS);
    fb.perform(
        act(ActionKind::PrivateReply(text(
            "Hallo, nog even over je bestelling",
        ))),
        dm.clone(),
    )
    .await
    .expect("reply at 30 h");

    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(r.path, format!("/v21.0/{PAGE_ID}/messages"));
        assert_signed(r);
    }
    let within: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(within["recipient"], json!({"id": "2468013579"}));
    assert_eq!(within["messaging_type"], "RESPONSE");
    assert_eq!(within.get("tag"), None);
    assert_eq!(within["message"]["text"], "שלום! נבדוק את זה עכשיו");
    assert_eq!(within["message"]["metadata"], "case-7-action-1");
    let tagged: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(tagged["messaging_type"], "MESSAGE_TAG");
    assert_eq!(tagged["tag"], "HUMAN_AGENT");

    dm.last_inbound_at = Some(now_ms() - 8 * DAY_MS);
    let err = connector_error(
        fb.perform(act(ActionKind::Reply(text("Hallo?"))), dm)
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, ConnectorError::NotAllowed { .. }), "{err:?}");
    assert_eq!(api.request_count(), 2, "nothing sent after 7 days");
}

#[tokio::test]
async fn missing_permission_is_named() {
    let router = Router::new().route(
        "/v21.0/{page}/messages",
        axum::routing::post(|| async {
            (
                StatusCode::FORBIDDEN,
                facebook_fixture!("graph-error-200.json"),
            )
                .into_response()
        }),
    );
    let api = FakeApi::start(router).await;
    let mut fb = facebook(&api).await;
    let messages = delivered(&mut fb).await;
    let mut dm = target_of(by_id(&messages, DM));
    dm.last_inbound_at = Some(now_ms());
    match connector_error(
        fb.perform(act(ActionKind::Reply(text("Hoi"))), dm)
            .await
            .unwrap_err(),
    ) {
        ConnectorError::Unauthorized {
            missing_scope,
            expired,
            ..
        } => {
            assert_eq!(missing_scope.as_deref(), Some("pages_messaging"));
            assert!(!expired);
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
}
