//! The Discourse connector's `.wasm` in the real host, against the fake
//! Discourse API on loopback (`webcare_tests::fake_discourse`).

mod common;

use std::sync::{Arc, Mutex};

use common::grants;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use webcare::model::{
    Action, ActionKind, ActionTarget, Author, ConnectorError, Direction, Message, MessageKind,
    MessageUpdate, Outgoing, Visibility, WebhookRequest,
};
use webcare::runtime::{CallLimits, ConnectorInstance, PluginError};
use webcare_tests::fake_api::FakeApi;
use webcare_tests::fake_discourse::{
    API_KEY, API_USERNAME, FORUM_POSTS, Forum, PRIVATE_POSTS, UPSTREAM_POSTS, WEBHOOK_POST_CREATED,
    fixture_posts, router,
};
use webcare_tests::plugins::plugin_path;
use webcare_tests::runtime;

const WEBHOOK_SECRET: &str = "whsec-discourse-test-secret";

/// A forum on loopback and a Discourse connector configured against it.
async fn setup(
    public: Vec<Value>,
    private: Vec<Value>,
    page_size: usize,
    api_key: &str,
    with_webhook_secret: bool,
) -> (FakeApi, Arc<Mutex<Forum>>, ConnectorInstance) {
    let forum = Forum::new(public, private, page_size);
    let api = FakeApi::start(router(forum.clone())).await;
    let rt = runtime();
    let plugin = rt
        .load_file(&plugin_path("discourse_connector"))
        .await
        .expect("load discourse connector");
    let base = api.base_url();
    let page_size = page_size.to_string();
    let mut secrets = vec![("api_key", api_key)];
    if with_webhook_secret {
        secrets.push(("webhook_secret", WEBHOOK_SECRET));
    }
    let connector = rt
        .configured_connector(
            plugin,
            grants(
                "acme",
                &[
                    ("base_url", &base),
                    ("api_username", API_USERNAME),
                    ("support_category_ids", "7, 12"),
                    ("keywords", "Acme Router, pakket"),
                    ("page_size", &page_size),
                ],
                &secrets,
                &[api.allow_entry()],
            ),
            CallLimits::default(),
        )
        .await
        .expect("discourse settings fit");
    (api, forum, connector)
}

fn by_id<'a>(messages: &'a [Message], id: &str) -> &'a Message {
    messages
        .iter()
        .find(|m| m.external_id == id)
        .unwrap_or_else(|| panic!("no message {id} in {messages:#?}"))
}

fn prop<'a>(message: &'a Message, key: &str) -> Option<&'a str> {
    message
        .properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn ids(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.external_id.as_str()).collect()
}

fn target(message: &Message) -> ActionTarget {
    ActionTarget::of_message(message, None)
}

fn action(kind: ActionKind) -> Action {
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

fn connector_error(error: PluginError) -> ConnectorError {
    match error {
        PluginError::Connector(error) => error,
        other => panic!("expected a connector error, got {other}"),
    }
}

fn signed(event: &str, body: &[u8], signature: Option<String>) -> WebhookRequest {
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        (
            "x-discourse-instance".into(),
            "https://forum.example".into(),
        ),
        ("x-discourse-event-id".into(), "42".into()),
        (
            "x-discourse-event-type".into(),
            if event == "ping" { "ping" } else { "post" }.into(),
        ),
        ("x-discourse-event".into(), event.into()),
    ];
    if let Some(signature) = signature {
        headers.push(("x-discourse-event-signature".into(), signature));
    }
    WebhookRequest {
        method: "POST".into(),
        headers,
        body: body.to_vec(),
        ..Default::default()
    }
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn polls_backwards_across_pages_resumes_without_duplicates_and_reports_only_what_matters() {
    let (api, forum, mut discourse) =
        setup(fixture_posts(UPSTREAM_POSTS), vec![], 3, API_KEY, false).await;

    // First poll: starts from now; the upstream sample holds nothing for
    // the brand, and nothing older is read.
    let first = discourse.poll(None).await.expect("first poll");
    assert!(first.messages.is_empty(), "{:#?}", first.messages);
    assert!(!first.has_more);
    assert_eq!(api.request_count(), 2, "one page of each list");

    // Nine public posts and a private message arrive.
    {
        let mut forum = forum.lock().unwrap();
        forum.public.extend(fixture_posts(FORUM_POSTS));
        forum.private.extend(fixture_posts(PRIVATE_POSTS));
    }
    let mut cursor = first.next_cursor.clone();
    let mut batches = Vec::new();
    loop {
        let batch = discourse.poll(cursor.as_deref()).await.expect("poll");
        assert!(cursor.as_ref().is_some_and(|c| c.len() < 4096));
        cursor = batch.next_cursor.clone().or(cursor);
        let more = batch.has_more;
        batches.push(batch);
        if !more {
            break;
        }
        assert!(batches.len() < 10, "pagination does not end");
    }
    assert_eq!(
        batches.len(),
        4,
        "three full pages of new posts, then known ones"
    );
    assert_eq!(ids(&batches[0].messages), ["109", "110"], "oldest first");
    assert_eq!(ids(&batches[1].messages), ["104", "105", "106"]);
    assert_eq!(ids(&batches[2].messages), ["101", "102"]);
    assert!(batches[3].messages.is_empty());
    let all: Vec<Message> = batches.iter().flat_map(|b| b.messages.clone()).collect();

    // Pages went backwards with `before` (inclusive, like Discourse).
    let requests = api.requests();
    let list_queries: Vec<&str> = requests
        .iter()
        .filter(|r| r.path == "/posts.json")
        .map(|r| r.query.as_str())
        .collect();
    assert_eq!(
        list_queries,
        ["", "", "before=106", "before=103", "before=100"]
    );
    for r in &requests {
        assert_eq!(r.method, "GET");
        assert_eq!(r.header("api-key"), Some(API_KEY));
        assert_eq!(r.header("api-username"), Some(API_USERNAME));
    }
    // Replies whose parent was on another page were linked through
    // `/posts/by_number`.
    let lookups: Vec<&str> = requests
        .iter()
        .filter(|r| r.path.starts_with("/posts/by_number/"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        lookups,
        ["/posts/by_number/42/1.json", "/posts/by_number/41/1.json"]
    );

    // A support-category topic opener, in Dutch: reactive.
    let base = api.base_url();
    let opener = by_id(&all, "101");
    assert_eq!(opener.kind, MessageKind::Post);
    assert!(opener.addressed_to_brand);
    assert_eq!(opener.direction, Direction::Inbound);
    assert_eq!(opener.visibility, Visibility::Public);
    assert_eq!(opener.thread_id, "topic:41");
    assert_eq!(opener.in_reply_to, None);
    assert_eq!(
        opener.subject.as_deref(),
        Some("Router valt steeds uit na update")
    );
    assert_eq!(
        opener.text,
        "Sinds de update van gisteren valt mijn router elk uur uit. Wie kan helpen?"
    );
    assert_eq!(
        opener.permalink.as_deref(),
        Some(format!("{base}/t/router-valt-steeds-uit-na-update/41/1").as_str())
    );
    assert_eq!(opener.author.id, "311");
    assert_eq!(opener.author.handle, "jan_de_vries");
    assert_eq!(opener.author.display_name, "Jan de Vries");
    assert_eq!(
        opener.author.profile_url.as_deref(),
        Some(format!("{base}/u/jan_de_vries").as_str())
    );
    assert_eq!(opener.created_at, 1_795_161_600_000);
    assert_eq!(prop(opener, "topic_id"), Some("41"));
    assert_eq!(prop(opener, "post_number"), Some("1"));
    assert_eq!(prop(opener, "relevance"), Some("support_category"));

    // The brand's own answer: outbound, linked to the post it answers.
    let answer = by_id(&all, "105");
    assert_eq!(answer.direction, Direction::Outbound);
    assert!(!answer.addressed_to_brand);
    assert_eq!(answer.in_reply_to.as_deref(), Some("101"));
    assert_eq!(answer.thread_id, "topic:41");

    // A reply to the brand: reactive, emoji intact, likes counted.
    let thanks = by_id(&all, "106");
    assert_eq!(thanks.kind, MessageKind::Reply);
    assert!(thanks.addressed_to_brand);
    assert_eq!(thanks.in_reply_to.as_deref(), Some("105"));
    assert_eq!(thanks.text, "Bedankt! 🙏 Het werkt weer, top geregeld 👍🏽");
    assert_eq!(thanks.metrics.likes, Some(2));

    // A Hebrew @-mention: reactive, right-to-left text intact.
    let mention = by_id(&all, "104");
    assert_eq!(mention.kind, MessageKind::Mention);
    assert!(mention.addressed_to_brand);
    assert_eq!(
        mention.text,
        "@acme_care ההזמנה שלי לא הגיעה עדיין 😟 מספר הזמנה 5521"
    );
    assert_eq!(mention.author.display_name, "יעל");
    assert_eq!(mention.subject.as_deref(), Some("שאלה על המשלוח"));

    // Keyword hits: proactive. 109 has only `cooked`: text from the HTML.
    let keyword = by_id(&all, "102");
    assert!(!keyword.addressed_to_brand);
    assert_eq!(prop(keyword, "relevance"), Some("keyword"));
    let cooked_only = by_id(&all, "109");
    assert!(!cooked_only.addressed_to_brand);
    assert_eq!(cooked_only.kind, MessageKind::Reply);
    assert_eq!(cooked_only.in_reply_to.as_deref(), Some("102"));
    assert!(
        cooked_only
            .text
            .contains("The Acme router firmware 2.1 fixed my Wi"),
        "{}",
        cooked_only.text
    );
    assert!(
        cooked_only.text.contains("drops & more."),
        "{}",
        cooked_only.text
    );
    assert!(cooked_only.html.as_deref().unwrap().contains("<strong>"));

    // A private message to the brand.
    let private = by_id(&all, "110");
    assert_eq!(private.kind, MessageKind::DirectMessage);
    assert_eq!(private.visibility, Visibility::Private);
    assert!(private.addressed_to_brand);
    assert!(private.text.contains("€49,95"), "{}", private.text);
    assert_eq!(prop(private, "archetype"), Some("private_message"));

    // Neither a mention (`@acme_care_bot` is someone else), nor support,
    // nor a keyword: not reported.
    for ignored in ["103", "107", "108"] {
        assert!(all.iter().all(|m| m.external_id != ignored), "{ignored}");
    }

    // Resuming from the last cursor reports nothing twice.
    let again = discourse.poll(cursor.as_deref()).await.expect("poll again");
    assert!(again.messages.is_empty(), "{:#?}", again.messages);
    assert!(again.updates.is_empty());
    assert!(!again.has_more);
}

#[tokio::test]
async fn edits_hides_and_deletions_become_updates_once() {
    let (_api, forum, mut discourse) =
        setup(fixture_posts(FORUM_POSTS), vec![], 50, API_KEY, false).await;
    let first = discourse.poll(None).await.expect("first poll");
    assert_eq!(
        ids(&first.messages),
        ["101", "102", "104", "105", "106", "109"]
    );

    {
        let mut forum = forum.lock().unwrap();
        let edited = forum.post_mut(104);
        edited["raw"] = "@acme_care ההזמנה הגיעה, תודה! ✅".into();
        edited["cooked"] = "<p>@acme_care ההזמנה הגיעה, תודה! ✅</p>".into();
        edited["version"] = 2.into();
        edited["updated_at"] = "2026-11-20T09:30:00.000Z".into();
        forum.post_mut(101)["hidden"] = true.into();
        forum.post_mut(102)["deleted_at"] = "2026-11-20T09:40:00.000Z".into();
        // An edit of a post of no interest stays unreported.
        forum.post_mut(107)["version"] = 3.into();
    }
    let second = discourse
        .poll(first.next_cursor.as_deref())
        .await
        .expect("second poll");
    assert!(second.messages.is_empty());
    assert_eq!(second.updates.len(), 3, "{:#?}", second.updates);
    match &second.updates[0] {
        MessageUpdate::Hidden(removal) => {
            assert_eq!(removal.external_id, "101");
            assert_eq!(removal.thread_id.as_deref(), Some("topic:41"));
        }
        other => panic!("expected a hide, got {other:?}"),
    }
    match &second.updates[1] {
        MessageUpdate::Deleted(removal) => {
            assert_eq!(removal.external_id, "102");
            assert_eq!(removal.at, Some(1_795_167_600_000));
        }
        other => panic!("expected a deletion, got {other:?}"),
    }
    match &second.updates[2] {
        MessageUpdate::Edited(message) => {
            assert_eq!(message.external_id, "104");
            assert_eq!(message.text, "@acme_care ההזמנה הגיעה, תודה! ✅");
            assert_eq!(message.kind, MessageKind::Mention);
        }
        other => panic!("expected an edit, got {other:?}"),
    }

    // Seen once, reported once.
    let third = discourse
        .poll(second.next_cursor.as_deref())
        .await
        .expect("third poll");
    assert!(
        third.messages.is_empty() && third.updates.is_empty(),
        "{third:#?}"
    );

    forum.lock().unwrap().post_mut(101)["hidden"] = false.into();
    let fourth = discourse
        .poll(third.next_cursor.as_deref())
        .await
        .expect("fourth poll");
    assert!(
        matches!(&fourth.updates[..], [MessageUpdate::Unhidden(r)] if r.external_id == "101"),
        "{:#?}",
        fourth.updates
    );
}

#[tokio::test]
async fn webhooks_are_verified_and_match_polled_posts() {
    let (api, forum, mut discourse) =
        setup(fixture_posts(FORUM_POSTS), vec![], 50, API_KEY, true).await;
    let first = discourse.poll(None).await.expect("first poll");
    let body = WEBHOOK_POST_CREATED.as_bytes();

    // Missing and wrong signatures: refused, nothing reported, no call out.
    let calls = api.request_count();
    let missing = discourse
        .handle_webhook(signed("post_created", body, None))
        .await
        .unwrap();
    assert_eq!(missing.response.status, 401);
    assert!(missing.messages.is_empty() && missing.updates.is_empty());
    let wrong = discourse
        .handle_webhook(signed(
            "post_created",
            body,
            Some(signature("not-the-secret", body)),
        ))
        .await
        .unwrap();
    assert_eq!(wrong.response.status, 403);
    assert!(wrong.messages.is_empty() && wrong.updates.is_empty());
    // A signature over other bytes does not carry over.
    let tampered = discourse
        .handle_webhook(signed(
            "post_created",
            &body[1..],
            Some(signature(WEBHOOK_SECRET, body)),
        ))
        .await
        .unwrap();
    assert_eq!(tampered.response.status, 403);
    assert_eq!(api.request_count(), calls);

    // Ping.
    let ping_body = br#"{"ping":"OK"}"#;
    let ping = discourse
        .handle_webhook(signed(
            "ping",
            ping_body,
            Some(signature(WEBHOOK_SECRET, ping_body)),
        ))
        .await
        .unwrap();
    assert_eq!(ping.response.status, 200);
    assert!(ping.messages.is_empty());

    // A signed `post_created`: the Hebrew/Dutch mention, linked to the
    // topic's opener through `/posts/by_number`.
    let good = signed("post_created", body, Some(signature(WEBHOOK_SECRET, body)));
    let created = discourse.handle_webhook(good.clone()).await.unwrap();
    assert_eq!(created.response.status, 200);
    assert_eq!(created.messages.len(), 1);
    let pushed = &created.messages[0];
    assert_eq!(pushed.external_id, "111");
    assert_eq!(pushed.kind, MessageKind::Mention);
    assert!(pushed.addressed_to_brand);
    assert_eq!(pushed.in_reply_to.as_deref(), Some("104"));
    assert_eq!(
        pushed.text,
        "@acme_care תודה! 🙏 Dank jullie wel, het pakket is binnen."
    );
    // A duplicate delivery gives the same message (the host deduplicates).
    let duplicate = discourse.handle_webhook(good).await.unwrap();
    assert_eq!(duplicate.messages, created.messages);

    // The same post polled later: same external id, same message.
    let post: Value = serde_json::from_str(WEBHOOK_POST_CREATED).unwrap();
    forum.lock().unwrap().public.push(post["post"].clone());
    let polled = discourse
        .poll(first.next_cursor.as_deref())
        .await
        .expect("poll");
    assert_eq!(polled.messages, created.messages);

    // An edit that hides the post, then its deletion.
    let mut edited: Value = post.clone();
    edited["post"]["raw"] = "@acme_care bewerkt ✏️".into();
    edited["post"]["version"] = 2.into();
    edited["post"]["hidden"] = true.into();
    let edited = serde_json::to_vec(&edited).unwrap();
    let outcome = discourse
        .handle_webhook(signed(
            "post_edited",
            &edited,
            Some(signature(WEBHOOK_SECRET, &edited)),
        ))
        .await
        .unwrap();
    assert!(outcome.messages.is_empty());
    assert!(
        matches!(&outcome.updates[..], [MessageUpdate::Edited(m), MessageUpdate::Hidden(r)]
            if m.external_id == "111" && m.text == "@acme_care bewerkt ✏️" && r.external_id == "111"),
        "{:#?}",
        outcome.updates
    );
    let mut destroyed = post.clone();
    destroyed["post"]["deleted_at"] = "2026-11-20T11:00:00.000Z".into();
    let destroyed = serde_json::to_vec(&destroyed).unwrap();
    let outcome = discourse
        .handle_webhook(signed(
            "post_destroyed",
            &destroyed,
            Some(signature(WEBHOOK_SECRET, &destroyed)),
        ))
        .await
        .unwrap();
    match &outcome.updates[..] {
        [MessageUpdate::Deleted(removal)] => {
            assert_eq!(removal.external_id, "111");
            assert_eq!(removal.thread_id.as_deref(), Some("topic:43"));
            assert_eq!(removal.at, Some(1_795_172_400_000));
        }
        other => panic!("expected one deletion, got {other:?}"),
    }

    // A signed body that is not JSON: invalid input, nothing reported.
    let broken = br#"{"post": {"id": 112, "username": "#;
    let error = discourse
        .handle_webhook(signed(
            "post_created",
            broken,
            Some(signature(WEBHOOK_SECRET, broken)),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "invalid-input", "{error}");
}

#[tokio::test]
async fn webhooks_are_refused_without_a_configured_secret() {
    let (_api, _forum, mut discourse) = setup(vec![], vec![], 50, API_KEY, false).await;
    let body = WEBHOOK_POST_CREATED.as_bytes();
    let outcome = discourse
        .handle_webhook(signed(
            "post_created",
            body,
            Some(signature(WEBHOOK_SECRET, body)),
        ))
        .await
        .unwrap();
    assert_eq!(outcome.response.status, 403);
    assert!(outcome.messages.is_empty());
}

#[tokio::test]
async fn replies_and_private_messages_reach_the_forum() {
    let (api, forum, mut discourse) = setup(
        fixture_posts(FORUM_POSTS),
        fixture_posts(PRIVATE_POSTS),
        50,
        API_KEY,
        false,
    )
    .await;
    let first = discourse.poll(None).await.expect("first poll");
    let base = api.base_url();

    // A public reply in the topic of the Hebrew mention.
    let mention = by_id(&first.messages, "104");
    let reply_text = "שלום יעל, we kijken het na 📦 — groet, Acme";
    let result = discourse
        .perform(action(ActionKind::Reply(text(reply_text))), target(mention))
        .await
        .expect("reply");
    assert_eq!(result.external_id.as_deref(), Some("1001"));
    assert_eq!(
        result.permalink.as_deref(),
        Some(format!("{base}/t/topic/43/2").as_str())
    );
    let sent = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect::<Vec<_>>();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/posts.json");
    assert_eq!(sent[0].header("api-key"), Some(API_KEY));
    assert_eq!(sent[0].header("api-username"), Some(API_USERNAME));
    assert!(
        sent[0]
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"topic_id": 43, "raw": reply_text, "reply_to_post_number": 1})
    );

    // The reply shows up in the next poll as the brand's own, outbound
    // post with the id the action returned.
    let second = discourse
        .poll(first.next_cursor.as_deref())
        .await
        .expect("poll");
    let own = by_id(&second.messages, "1001");
    assert_eq!(own.direction, Direction::Outbound);
    assert_eq!(own.in_reply_to.as_deref(), Some("104"));
    assert_eq!(own.text, reply_text);

    // A private message to the author of a public support post.
    let opener = by_id(&first.messages, "101");
    let result = discourse
        .perform(
            action(ActionKind::PrivateReply(text(
                "Hoi Jan, mag ik je serienummer? 🙂",
            ))),
            target(opener),
        )
        .await
        .expect("private message");
    assert_eq!(result.external_id.as_deref(), Some("1002"));
    assert_eq!(
        result.permalink.as_deref(),
        Some(format!("{base}/t/re-private/6002/1").as_str())
    );
    let body: Value = serde_json::from_slice(&api.requests().last().unwrap().body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "title": "Re: Router valt steeds uit na update",
            "raw": "Hoi Jan, mag ik je serienummer? 🙂",
            "target_recipients": "jan_de_vries",
            "archetype": "private_message"
        })
    );

    // A private answer to a private message stays in its topic.
    let private = by_id(&first.messages, "110");
    discourse
        .perform(
            action(ActionKind::PrivateReply(text(
                "Hallo Noor, we passen de factuur aan.",
            ))),
            target(private),
        )
        .await
        .expect("answer in the private message");
    let body: Value = serde_json::from_slice(&api.requests().last().unwrap().body).unwrap();
    assert_eq!(body["topic_id"], 46);
    assert_eq!(body.get("archetype"), None);

    // Discourse refuses a too-short post (422): a channel rule.
    let error = discourse
        .perform(action(ActionKind::Reply(text("ok"))), target(mention))
        .await
        .unwrap_err();
    assert!(
        matches!(connector_error(error), ConnectorError::NotAllowed { ref detail } if detail.contains("too short")),
    );
    // Empty answers never leave; hiding is not offered.
    let error = discourse
        .perform(action(ActionKind::Reply(text("  "))), target(mention))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "invalid-input", "{error}");
    let error = discourse
        .perform(action(ActionKind::Hide), target(mention))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "unsupported", "{error}");
    assert_eq!(forum.lock().unwrap().created.len(), 3);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_typed() {
    let (_api, forum, mut discourse) =
        setup(fixture_posts(FORUM_POSTS), vec![], 50, API_KEY, false).await;
    let first = discourse.poll(None).await.expect("first poll");
    let mention = by_id(&first.messages, "104").clone();

    let rate_limited = r#"{"errors":["You’ve performed this action too many times. Please wait 17 seconds before trying again."],"error_type":"rate_limit","extras":{"wait_seconds":17,"time_left":"17 seconds"}}"#;
    forum.lock().unwrap().fail(
        "/posts.json",
        429,
        &[("retry-after", "17"), ("content-type", "application/json")],
        rate_limited,
    );
    match connector_error(
        discourse
            .poll(first.next_cursor.as_deref())
            .await
            .unwrap_err(),
    ) {
        ConnectorError::RateLimited { retry_after_ms, .. } => assert_eq!(retry_after_ms, 17_000),
        other => panic!("expected rate-limited, got {other}"),
    }

    // Without `Retry-After`, the body's `extras.wait_seconds` says how long.
    let only_body = rate_limited.replace("17", "9");
    forum.lock().unwrap().fail(
        "/posts.json",
        429,
        &[("content-type", "application/json")],
        &only_body,
    );
    match connector_error(
        discourse
            .perform(
                action(ActionKind::Reply(text("Wij kijken mee!"))),
                target(&mention),
            )
            .await
            .unwrap_err(),
    ) {
        ConnectorError::RateLimited { retry_after_ms, .. } => assert_eq!(retry_after_ms, 9_000),
        other => panic!("expected rate-limited, got {other}"),
    }

    forum
        .lock()
        .unwrap()
        .fail("/posts.json", 502, &[], "<html>Bad Gateway</html>");
    let error = discourse
        .poll(first.next_cursor.as_deref())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "transient", "{error}");
}

#[tokio::test]
async fn a_wrong_or_revoked_key_is_unauthorized() {
    let (_api, _forum, mut discourse) =
        setup(fixture_posts(FORUM_POSTS), vec![], 50, "revoked-key", false).await;
    match connector_error(discourse.poll(None).await.unwrap_err()) {
        ConnectorError::Unauthorized { detail, .. } => {
            assert!(detail.contains("403"), "{detail}")
        }
        other => panic!("expected unauthorized, got {other}"),
    }
    let target = ActionTarget {
        external_id: "101".into(),
        thread_id: "topic:41".into(),
        kind: MessageKind::Post,
        visibility: Visibility::Public,
        author: Author {
            id: "311".into(),
            handle: "jan_de_vries".into(),
            display_name: String::new(),
            followers: None,
            verified: false,
            profile_url: None,
            email: None,
        },
        created_at: 0,
        last_inbound_at: None,
        subject: None,
        properties: vec![("topic_id".into(), "41".into())],
    };
    let error = discourse
        .perform(action(ActionKind::Reply(text("Hallo daar"))), target)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "unauthorized", "{error}");
}

#[tokio::test]
async fn malformed_json_fails_the_whole_poll_and_loses_nothing() {
    let (_api, forum, mut discourse) =
        setup(fixture_posts(UPSTREAM_POSTS), vec![], 50, API_KEY, false).await;
    let first = discourse.poll(None).await.expect("first poll");
    {
        let mut forum = forum.lock().unwrap();
        forum.public.extend(fixture_posts(FORUM_POSTS));
        // The public list is fine, the private one is cut off.
        forum.fail(
            "/private-posts.json",
            200,
            &[("content-type", "application/json")],
            r#"{"private_posts": [{"id": 110, "username": "noor""#,
        );
    }
    let error = discourse
        .poll(first.next_cursor.as_deref())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "invalid-input", "{error}");

    // Once the forum answers properly, the same cursor brings everything.
    forum.lock().unwrap().canned.clear();
    let batch = discourse
        .poll(first.next_cursor.as_deref())
        .await
        .expect("poll");
    assert_eq!(
        ids(&batch.messages),
        ["101", "102", "104", "105", "106", "109"]
    );
}
