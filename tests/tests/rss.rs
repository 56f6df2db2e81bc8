//! The RSS/Atom connector's `.wasm` in the real host, against a fake feed
//! server on loopback (`webcare_tests::fake_rss`).

mod common;

use std::sync::{Arc, Mutex};

use common::grants;
use webcare::model::{
    Action, ActionKind, ActionTarget, Author, ConnectorError, Direction, Message, MessageKind,
    MessageUpdate, Outgoing, Visibility, WebhookRequest,
};
use webcare::runtime::{CallLimits, ConnectorInstance, PluginError};
use webcare_tests::fake_api::FakeApi;
use webcare_tests::fake_rss::{BLOG_ATOM, FORUM_RSS, FeedSite, router};
use webcare_tests::plugins::plugin_path;
use webcare_tests::runtime;

const RSS_TYPE: &str = "application/rss+xml; charset=utf-8";
const MODIFIED: &str = "Fri, 20 Nov 2026 09:30:00 GMT";

/// A feed server and an RSS connector watching it.
async fn setup(
    site: Arc<Mutex<FeedSite>>,
    settings: &[(&str, &str)],
) -> (FakeApi, ConnectorInstance) {
    let api = FakeApi::start(router(site)).await;
    let rt = runtime();
    let plugin = rt
        .load_file(&plugin_path("rss_connector"))
        .await
        .expect("load rss connector");
    let feed_url = format!("{}/feed", api.base_url());
    let mut all = vec![("feed_url", feed_url.as_str())];
    all.extend_from_slice(settings);
    let connector = rt
        .configured_connector(
            plugin,
            grants("acme", &all, &[], &[api.allow_entry()]),
            CallLimits::default(),
        )
        .await
        .expect("rss settings fit");
    (api, connector)
}

fn ids(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.external_id.as_str()).collect()
}

fn prop<'a>(message: &'a Message, key: &str) -> Option<&'a str> {
    message
        .properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A new topic (48) on top of the forum feed, and topic 47 edited.
fn forum_feed_later() -> String {
    let new_item = r#"<channel>
    <item>
        <title>Bedankt voor de snelle hulp! 🙌</title>
        <dc:creator><![CDATA[eva]]></dc:creator>
        <category>Support</category>
        <description><![CDATA[<p>Top geregeld, de nieuwe router werkt perfect 💯</p>]]></description>
        <link>https://community.acme.example/t/bedankt-voor-de-snelle-hulp/48</link>
        <pubDate>Fri, 20 Nov 2026 11:00:00 +0100</pubDate>
        <guid isPermaLink="false">community.acme.example-topic-48</guid>
    </item>"#;
    FORUM_RSS.replacen("<channel>", new_item, 1).replace(
        "Ervaringen? 🙏",
        "Ervaringen? 🙏 (aangevuld: het wordt de X3)",
    )
}

#[tokio::test]
async fn rss_items_are_reported_once_and_conditional_gets_keep_the_cursor() {
    let site = FeedSite::new(FORUM_RSS, RSS_TYPE, Some("\"v1\""), Some(MODIFIED));
    let (api, mut feed) = setup(site.clone(), &[("backfill", "2")]).await;

    // First poll: the two newest items (backfill = 2), oldest first.
    let first = feed.poll(None).await.expect("first poll");
    assert_eq!(
        ids(&first.messages),
        [
            "community.acme.example-topic-43",
            "community.acme.example-topic-47"
        ]
    );
    assert!(first.updates.is_empty());
    let qa = &first.messages[1];
    assert_eq!(qa.kind, MessageKind::Post);
    assert_eq!(qa.visibility, Visibility::Public);
    assert_eq!(qa.direction, Direction::Inbound);
    assert!(!qa.addressed_to_brand, "feeds are monitoring by default");
    assert_eq!(
        qa.subject.as_deref(),
        Some("Q&A: welke router voor glasvezel? 🤔")
    );
    assert!(
        qa.text.starts_with(
            "Ik stap over op glasvezel & twijfel tussen de X2 en de X3. Ervaringen? 🙏"
        ),
        "{}",
        qa.text
    );
    assert!(
        qa.html
            .as_deref()
            .unwrap()
            .contains("<small>1 post - 1 participant</small>")
    );
    assert_eq!(qa.author.handle, "pieter");
    assert_eq!(qa.created_at, 1_795_167_000_000, "10:30 +0100");
    assert_eq!(qa.thread_id, qa.external_id);
    assert_eq!(
        qa.permalink.as_deref(),
        Some("https://community.acme.example/t/q-a-welke-router-voor-glasvezel/47")
    );
    assert_eq!(prop(qa, "categories"), Some("Algemeen, Glasvezel"));
    assert_eq!(qa.language.as_deref(), Some("nl"));
    let hebrew = &first.messages[0];
    assert!(
        hebrew
            .text
            .starts_with("ההזמנה שלי לא הגיעה עדיין 😟 מספר הזמנה 5521"),
        "{}",
        hebrew.text
    );
    assert_eq!(hebrew.created_at, 1_795_162_200_000, "08:10 GMT");
    let cursor = first.next_cursor.clone().expect("a cursor");
    assert!(cursor.len() < 4096);

    // Nothing changed: the server answers 304 to the conditional GET; the
    // batch is empty and the cursor stays.
    let unchanged = feed.poll(Some(&cursor)).await.expect("second poll");
    assert!(unchanged.messages.is_empty() && unchanged.updates.is_empty());
    assert_eq!(unchanged.next_cursor, None);
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("if-none-match"), None);
    assert_eq!(requests[0].header("if-modified-since"), None);
    assert!(
        requests[0]
            .header("accept")
            .unwrap()
            .contains("application/rss+xml")
    );
    assert_eq!(requests[1].header("if-none-match"), Some("\"v1\""));
    assert_eq!(requests[1].header("if-modified-since"), Some(MODIFIED));

    // A new item and an edited one: the new one as a message, the edit as
    // an update; topic 41, seen on the first poll but not backfilled, is
    // not reported now.
    {
        let mut site = site.lock().unwrap();
        site.body = forum_feed_later();
        site.etag = Some("\"v2\"".into());
        site.last_modified = Some("Fri, 20 Nov 2026 10:00:00 GMT".into());
    }
    let changed = feed.poll(Some(&cursor)).await.expect("third poll");
    assert_eq!(ids(&changed.messages), ["community.acme.example-topic-48"]);
    assert_eq!(
        changed.messages[0].text,
        "Top geregeld, de nieuwe router werkt perfect 💯"
    );
    match &changed.updates[..] {
        [MessageUpdate::Edited(message)] => {
            assert_eq!(message.external_id, "community.acme.example-topic-47");
            assert!(
                message.text.contains("(aangevuld: het wordt de X3)"),
                "{}",
                message.text
            );
        }
        other => panic!("expected one edit, got {other:?}"),
    }
    let cursor = changed.next_cursor.clone().expect("a new cursor");
    assert_eq!(
        api.requests()[2].header("if-none-match"),
        Some("\"v1\""),
        "the stored validator was sent"
    );

    // The server stops honouring validators: the full document again
    // reports nothing twice.
    {
        let mut site = site.lock().unwrap();
        site.etag = None;
        site.last_modified = None;
    }
    let again = feed.poll(Some(&cursor)).await.expect("fourth poll");
    assert!(again.messages.is_empty(), "{:#?}", again.messages);
    assert!(again.updates.is_empty(), "{:#?}", again.updates);
    assert_eq!(api.requests()[3].header("if-none-match"), Some("\"v2\""));
}

#[tokio::test]
async fn atom_entries_are_parsed_with_threads_and_enclosures() {
    let site = FeedSite::new(BLOG_ATOM, "application/atom+xml", None, Some(MODIFIED));
    let (api, mut feed) = setup(site, &[("addressed_to_brand", "true")]).await;
    let batch = feed.poll(None).await.expect("poll");
    assert_eq!(
        ids(&batch.messages),
        [
            "tag:blog.example.nl,2026:post-812",
            "tag:blog.example.nl,2026:comment-3"
        ]
    );
    let review = &batch.messages[0];
    assert!(review.addressed_to_brand);
    assert_eq!(review.kind, MessageKind::Post);
    assert_eq!(
        review.subject.as_deref(),
        Some("Review: de Acme Router X2 na een maand")
    );
    assert_eq!(
        review.text,
        "Een maand met de Acme Router X2: snel, stil 👍, maar de app kan beter.\nPrijs: €129 — eerlijk."
    );
    assert_eq!(review.author.display_name, "Marloes van Dijk");
    assert_eq!(review.created_at, 1_795_114_800_000);
    assert_eq!(review.language.as_deref(), Some("nl"));
    assert_eq!(review.attachments.len(), 1);
    assert_eq!(
        review.attachments[0].url.as_deref(),
        Some("https://blog.example.nl/media/x2-review.mp3")
    );
    assert_eq!(review.attachments[0].size_bytes, Some(1_337_000));
    let comment = &batch.messages[1];
    assert_eq!(comment.kind, MessageKind::Comment);
    assert_eq!(comment.thread_id, review.external_id);
    assert_eq!(
        comment.in_reply_to.as_deref(),
        Some(review.external_id.as_str())
    );
    assert!(comment.text.contains("مرحبا 🙂"), "{}", comment.text);
    assert_eq!(
        comment.permalink.as_deref(),
        Some("https://blog.example.nl/2026/11/acme-router-x2-review#comment-3")
    );

    // Only Last-Modified was given: it alone is sent back.
    feed.poll(batch.next_cursor.as_deref()).await.expect("poll");
    let requests = api.requests();
    assert_eq!(requests[1].header("if-modified-since"), Some(MODIFIED));
    assert_eq!(requests[1].header("if-none-match"), None);
}

#[tokio::test]
async fn malformed_xml_is_invalid_input_with_nothing_reported() {
    let truncated = &FORUM_RSS[..FORUM_RSS.len() / 2];
    let site = FeedSite::new(truncated, RSS_TYPE, Some("\"v1\""), None);
    let (_api, mut feed) = setup(site.clone(), &[]).await;
    let error = feed.poll(None).await.unwrap_err();
    assert_eq!(error.kind(), "invalid-input", "{error}");

    site.lock().unwrap().body = "<html><body><h1>502 Bad Gateway</h1></body></html>".into();
    let error = feed.poll(None).await.unwrap_err();
    assert_eq!(error.kind(), "invalid-input", "{error}");
    assert!(
        error.to_string().contains("not an RSS or Atom feed"),
        "{error}"
    );

    // The same feed, once whole, is read in full.
    site.lock().unwrap().body = FORUM_RSS.into();
    let batch = feed.poll(None).await.expect("poll");
    assert_eq!(batch.messages.len(), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let site = FeedSite::new(FORUM_RSS, RSS_TYPE, None, None);
    let (_api, mut feed) = setup(site.clone(), &[]).await;
    site.lock().unwrap().canned = Some((
        429,
        vec![("retry-after".into(), "120".into())],
        "Too Many Requests".into(),
    ));
    match feed.poll(None).await.unwrap_err() {
        PluginError::Connector(ConnectorError::RateLimited { retry_after_ms, .. }) => {
            assert_eq!(retry_after_ms, 120_000)
        }
        other => panic!("expected rate-limited, got {other}"),
    }
    site.lock().unwrap().canned = Some((
        503,
        vec![("retry-after".into(), "30".into())],
        "Service Unavailable".into(),
    ));
    match feed.poll(None).await.unwrap_err() {
        PluginError::Connector(ConnectorError::RateLimited { retry_after_ms, .. }) => {
            assert_eq!(retry_after_ms, 30_000)
        }
        other => panic!("expected rate-limited, got {other}"),
    }
    site.lock().unwrap().canned = Some((404, vec![], "Not Found".into()));
    let error = feed.poll(None).await.unwrap_err();
    assert_eq!(error.kind(), "invalid-input", "{error}");
}

#[tokio::test]
async fn feeds_are_read_only() {
    let site = FeedSite::new(FORUM_RSS, RSS_TYPE, None, None);
    let (api, mut feed) = setup(site, &[]).await;
    let target = ActionTarget {
        external_id: "community.acme.example-topic-47".into(),
        thread_id: "community.acme.example-topic-47".into(),
        kind: MessageKind::Post,
        visibility: Visibility::Public,
        author: Author {
            id: "pieter".into(),
            handle: "pieter".into(),
            display_name: "pieter".into(),
            followers: None,
            verified: false,
            profile_url: None,
            email: None,
        },
        created_at: 0,
        last_inbound_at: None,
        subject: None,
        properties: vec![],
    };
    let error = feed
        .perform(
            Action {
                idempotency_key: "k".into(),
                kind: ActionKind::Reply(Outgoing {
                    text: "Hallo!".into(),
                    attachments: vec![],
                }),
            },
            target,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "unsupported", "{error}");
    let error = feed
        .handle_webhook(WebhookRequest {
            method: "POST".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "unsupported", "{error}");
    assert_eq!(api.request_count(), 0);
}
