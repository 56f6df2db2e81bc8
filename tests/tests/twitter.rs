//! The X (Twitter) connector: the real `.wasm` in the real host, against the
//! fake X API v2 of `webcare_tests::fake_twitter` on loopback. Every test
//! checks what the connector produced and what the fake received.

mod common;

use std::sync::Arc;

use common::grants;
use serde_json::{Value, json};
use webcare::model::{
    Action, ActionKind, ActionTarget, AttachmentKind, Batch, ConnectorError, Direction, Message,
    MessageKind, MessageUpdate, Outgoing, SettingType, Visibility,
};
use webcare::runtime::{CallLimits, ConnectorInstance, PluginError};
use webcare_tests::fake_api::{FakeApi, Recorded};
use webcare_tests::fake_twitter::{
    Answer, BRAND_ID, BRAND_USERNAME, CREATED_TWEET_ID, FakeX, MENTIONS_PAGE2_TOKEN,
    OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OAUTH_SEED_REFRESH_TOKEN, SEARCH_QUERY, TOKEN, fixtures,
    unix_now,
};
use webcare_tests::plugins::plugin_path;
use webcare_tests::runtime;

/// Ids in the fixtures.
const M1: &str = "1991000000000000101";
const M2: &str = "1991000000000000102";
const M3: &str = "1991000000000000103";
const M3_EDITED: &str = "1991000000000000106";
const M4: &str = "1991000000000000104";
const M5: &str = "1991000000000000105";
const S1: &str = "1991000000000000201";
const S2: &str = "1991000000000000202";
const D1: &str = "1991000000000000301";
const D2: &str = "1991000000000000302";
const D3: &str = "1991000000000000303";
const JAN: &str = "1100000000000000011";
const SANNE: &str = "1200000000000000900";
const DM_CONVERSATION: &str = "1200000000000000900-1500000000000000001";

/// A fake X API and a connector configured against it.
struct Setup {
    fake: Arc<FakeX>,
    api: FakeApi,
    x: ConnectorInstance,
}

/// Starts a fake and a connector with all three streams and `token`;
/// `overrides` replace or (with an empty value) drop settings.
async fn setup_with(token: &str, overrides: &[(&str, &str)]) -> Setup {
    let fake = FakeX::new();
    let api = FakeApi::start(fake.router()).await;
    let base = api.base_url();
    let mut settings: Vec<(&str, &str)> = vec![
        ("api_base_url", &base),
        ("brand_user_id", BRAND_ID),
        ("brand_username", BRAND_USERNAME),
        ("search_query", SEARCH_QUERY),
        ("page_size", "50"),
    ];
    for (key, value) in overrides {
        settings.retain(|(k, _)| k != key);
        if !value.is_empty() {
            settings.push((key, value));
        }
    }
    let rt = runtime();
    let plugin = rt
        .load_file(&plugin_path("twitter_connector"))
        .await
        .expect("load twitter connector");
    let x = rt
        .configured_connector(
            plugin,
            grants(
                "acme",
                &settings,
                &[("bearer_token", token)],
                &[api.allow_entry()],
            ),
            CallLimits::default(),
        )
        .await
        .expect("settings fit");
    Setup { fake, api, x }
}

async fn setup() -> Setup {
    setup_with(TOKEN, &[]).await
}

fn ids(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.external_id.as_str()).collect()
}

fn find<'a>(batch: &'a Batch, id: &str) -> &'a Message {
    batch
        .messages
        .iter()
        .find(|m| m.external_id == id)
        .unwrap_or_else(|| panic!("{id} not in {:?}", ids(&batch.messages)))
}

fn property<'a>(message: &'a Message, key: &str) -> Option<&'a str> {
    message
        .properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The requests to `path` the fake received.
fn requests_to(api: &FakeApi, path: &str) -> Vec<Recorded> {
    api.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

fn query_param(request: &Recorded, key: &str) -> Option<String> {
    request.query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn connector_error(error: PluginError) -> ConnectorError {
    match error {
        PluginError::Connector(error) => error,
        other => panic!("expected a connector error, got {other}"),
    }
}

fn target_of(message: &Message) -> ActionTarget {
    ActionTarget {
        external_id: message.external_id.clone(),
        thread_id: message.thread_id.clone(),
        kind: message.kind,
        visibility: message.visibility,
        author: message.author.clone(),
        created_at: message.created_at,
        last_inbound_at: None,
        subject: None,
        properties: message.properties.clone(),
    }
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

#[tokio::test]
async fn describe_declares_the_agreed_settings() {
    let rt = runtime();
    let plugin = rt
        .load_file(&plugin_path("twitter_connector"))
        .await
        .unwrap();
    let info = rt.describe(plugin).await.unwrap();
    assert_eq!(info.name, "twitter");
    assert_eq!(info.channel, "twitter");
    let settings: Vec<_> = info
        .settings
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.setting_type,
                s.required,
                s.default_value.as_deref(),
                s.secret,
            )
        })
        .collect();
    assert_eq!(
        settings,
        vec![
            (
                "api_base_url",
                SettingType::Url,
                false,
                Some("https://api.twitter.com"),
                false
            ),
            ("brand_user_id", SettingType::Text, true, None, false),
            ("brand_username", SettingType::Text, true, None, false),
            ("search_query", SettingType::Text, false, None, false),
            (
                "direct_messages",
                SettingType::Boolean,
                false,
                Some("true"),
                false
            ),
            ("page_size", SettingType::Integer, false, Some("100"), false),
            (
                "deletion_check_seconds",
                SettingType::Integer,
                false,
                Some("900"),
                false
            ),
            ("oauth_client_id", SettingType::Text, false, None, false),
            ("bearer_token", SettingType::Text, false, None, true),
            ("oauth_refresh_token", SettingType::Text, false, None, true),
            ("oauth_client_secret", SettingType::Text, false, None, true),
        ]
    );
}

#[tokio::test]
async fn polls_pages_and_resumes_from_the_cursor_without_duplicates() {
    let Setup { fake, api, mut x } = setup().await;

    // Poll 1: first mentions page, the search page, the DMs.
    let first = x.poll(None).await.expect("first poll");
    assert_eq!(
        ids(&first.messages),
        [M3, M4, D1, D2, S1, S2],
        "oldest first, M3 once"
    );
    assert!(first.updates.is_empty());
    assert!(first.has_more, "mentions have a second page");
    let cursor = first.next_cursor.clone().expect("a cursor");
    assert!(cursor.len() < 4096, "{cursor}");

    let mentions = requests_to(&api, &format!("/2/users/{BRAND_ID}/mentions"));
    assert_eq!(mentions.len(), 1);
    let m = &mentions[0];
    assert_eq!(m.method, "GET");
    assert_eq!(
        m.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(query_param(m, "max_results").as_deref(), Some("50"));
    assert_eq!(query_param(m, "since_id"), None);
    assert_eq!(query_param(m, "pagination_token"), None);
    let expansions = query_param(m, "expansions").unwrap();
    assert!(expansions.contains("author_id") && expansions.contains("attachments.media_keys"));
    let fields = query_param(m, "tweet.fields").unwrap();
    for field in [
        "conversation_id",
        "referenced_tweets",
        "public_metrics",
        "edit_history_tweet_ids",
        "lang",
    ] {
        assert!(fields.contains(field), "{fields}");
    }
    assert!(
        query_param(m, "user.fields")
            .unwrap()
            .contains("public_metrics")
    );
    assert!(query_param(m, "media.fields").unwrap().contains("alt_text"));
    let search = requests_to(&api, "/2/tweets/search/recent");
    assert_eq!(search.len(), 1);
    assert_eq!(
        query_param(&search[0], "query").as_deref(),
        Some(SEARCH_QUERY)
    );
    let dms = requests_to(&api, "/2/dm_events");
    assert_eq!(dms.len(), 1);
    assert_eq!(
        query_param(&dms[0], "event_types").as_deref(),
        Some("MessageCreate")
    );
    assert_eq!(
        dms[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // Poll 2: the second mentions page by token; search resumes after its
    // newest id; the same DM events are served again and filtered out.
    let second = x.poll(Some(&cursor)).await.expect("second poll");
    assert_eq!(ids(&second.messages), [M1, M2]);
    assert!(!second.has_more);
    let mentions = requests_to(&api, &format!("/2/users/{BRAND_ID}/mentions"));
    assert_eq!(
        query_param(&mentions[1], "pagination_token").as_deref(),
        Some(MENTIONS_PAGE2_TOKEN)
    );
    let search = requests_to(&api, "/2/tweets/search/recent");
    assert_eq!(query_param(&search[1], "since_id").as_deref(), Some(S2));

    // Poll 3: mentions since the newest of the finished run: a new mention
    // and an edit of M3; a newer DM.
    fake.add_newer_dm();
    let third = x
        .poll(second.next_cursor.as_deref())
        .await
        .expect("third poll");
    let mentions = requests_to(&api, &format!("/2/users/{BRAND_ID}/mentions"));
    assert_eq!(query_param(&mentions[2], "since_id").as_deref(), Some(M4));
    assert_eq!(query_param(&mentions[2], "pagination_token"), None);
    assert_eq!(ids(&third.messages), [D3, M5]);
    assert_eq!(third.updates.len(), 1);
    match &third.updates[0] {
        MessageUpdate::Edited(edited) => {
            assert_eq!(edited.external_id, M3, "the original id stays the identity");
            assert_eq!(
                edited.text,
                "@acme_care Mijn pakket is nog steeds niet bezorgd 😡 #vertraging (bestelling A-20931)"
            );
            assert_eq!(property(edited, "tweet_id"), Some(M3_EDITED));
            assert_eq!(
                edited.permalink.as_deref(),
                Some("https://x.com/jan_devries/status/1991000000000000106")
            );
        }
        other => panic!("expected an edit, got {other:?}"),
    }

    // Poll 4: nothing new anywhere.
    let fourth = x
        .poll(third.next_cursor.as_deref())
        .await
        .expect("fourth poll");
    assert!(
        fourth.messages.is_empty() && fourth.updates.is_empty(),
        "{fourth:?}"
    );
    let mentions = requests_to(&api, &format!("/2/users/{BRAND_ID}/mentions"));
    assert_eq!(
        query_param(&mentions[3], "since_id").as_deref(),
        Some(M3_EDITED)
    );

    let mut all: Vec<&str> = [&first, &second, &third]
        .iter()
        .flat_map(|b| ids(&b.messages))
        .collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no message delivered twice");
    assert_eq!(total, 10);
}

#[tokio::test]
async fn messages_join_includes_and_keep_text_intact() {
    let Setup {
        mut x, api: _api, ..
    } = setup().await;
    let first = x.poll(None).await.unwrap();

    let m3 = find(&first, M3);
    assert_eq!(m3.kind, MessageKind::Mention);
    assert_eq!(m3.visibility, Visibility::Public);
    assert_eq!(m3.direction, Direction::Inbound);
    assert!(m3.addressed_to_brand);
    assert_eq!(m3.thread_id, M3);
    assert_eq!(m3.in_reply_to, None);
    assert_eq!(m3.author.id, JAN);
    assert_eq!(m3.author.handle, "jan_devries");
    assert_eq!(m3.author.display_name, "Jan de Vries");
    assert!(m3.author.verified);
    assert_eq!(m3.author.followers, Some(1200));
    assert_eq!(
        m3.author.profile_url.as_deref(),
        Some("https://x.com/jan_devries")
    );
    assert_eq!(
        m3.text,
        "@acme_care Mijn pakket is nog steeds niet bezorgd 😡 #vertraging https://acme.example/track/A-20931",
        "Dutch and emoji intact, t.co link expanded"
    );
    assert_eq!(m3.language.as_deref(), Some("nl"));
    assert_eq!(m3.created_at, 1_795_165_200_000);
    assert_eq!(
        m3.permalink.as_deref(),
        Some("https://x.com/jan_devries/status/1991000000000000103")
    );
    assert_eq!(m3.metrics.likes, Some(3));
    assert_eq!(m3.metrics.shares, Some(2), "reposts + quotes");
    assert_eq!(m3.metrics.replies, Some(0));
    assert_eq!(m3.attachments.len(), 1);
    assert_eq!(m3.attachments[0].kind, AttachmentKind::Image);
    assert_eq!(
        m3.attachments[0].url.as_deref(),
        Some("https://pbs.twimg.com/media/GdX1brievenbus.jpg")
    );
    assert_eq!(
        m3.attachments[0].alt_text.as_deref(),
        Some("Foto van de lege brievenbus")
    );
    assert_eq!(property(m3, "author_id"), Some(JAN));
    assert_eq!(property(m3, "conversation_id"), Some(M3));
    assert_eq!(property(m3, "tweet_id"), Some(M3));
    assert!(m3.properties.len() <= 32);
    assert!(
        m3.properties
            .iter()
            .all(|(k, _)| k.chars().all(|c| !c.is_uppercase()))
    );

    // A reply to the brand's post, in Arabic, with a video.
    let m4 = find(&first, M4);
    assert_eq!(m4.kind, MessageKind::Reply);
    assert_eq!(m4.in_reply_to.as_deref(), Some("1991000000000000050"));
    assert_eq!(m4.thread_id, "1991000000000000050");
    assert!(m4.addressed_to_brand);
    assert_eq!(
        m4.text,
        "@acme_care طلبي لم يصل بعد، هل يمكنكم المساعدة؟ 📦"
    );
    assert_eq!(m4.author.display_name, "ليلى");
    assert_eq!(m4.language.as_deref(), Some("ar"));
    assert_eq!(m4.attachments[0].kind, AttachmentKind::Video);
    assert_eq!(
        m4.attachments[0].url.as_deref(),
        Some("https://video.twimg.com/ext_tw_video/1991000000000000900/pu/vid/720x1280/doos.mp4"),
        "the best MP4 rendition"
    );
    assert_eq!(m4.attachments[0].mime_type.as_deref(), Some("video/mp4"));

    // A keyword hit: proactive, not addressed to the brand.
    let s1 = find(&first, S1);
    assert_eq!(s1.kind, MessageKind::Post);
    assert!(!s1.addressed_to_brand);
    assert_eq!(s1.direction, Direction::Inbound);
    assert_eq!(s1.author.display_name, "Eva 🍰");

    // The brand's own reply: outbound, linked to the post it answers.
    let s2 = find(&first, S2);
    assert_eq!(s2.direction, Direction::Outbound);
    assert!(!s2.addressed_to_brand);
    assert_eq!(s2.kind, MessageKind::Reply);
    assert_eq!(s2.in_reply_to.as_deref(), Some(M1));
    assert_eq!(s2.thread_id, M1);
    assert_eq!(s2.author.handle, BRAND_USERNAME);
    assert_eq!(s2.text, "@sam_k Sorry Sam, we kijken het na! Q&A volgt.");

    // Direct messages: private; the brand's own is outbound.
    let d1 = find(&first, D1);
    assert_eq!(d1.kind, MessageKind::DirectMessage);
    assert_eq!(d1.visibility, Visibility::Private);
    assert_eq!(d1.direction, Direction::Inbound);
    assert!(d1.addressed_to_brand);
    assert_eq!(d1.thread_id, DM_CONVERSATION);
    assert_eq!(d1.author.handle, "sanne_v");
    assert_eq!(
        d1.text,
        "Hallo! Mijn bestelling is kapot aangekomen 😞 شكرا"
    );
    assert_eq!(property(d1, "dm_conversation_id"), Some(DM_CONVERSATION));
    assert_eq!(property(d1, "participant_id"), Some(SANNE));
    assert_eq!(d1.attachments[0].alt_text.as_deref(), Some("كرتونة مكسورة"));
    assert_eq!(
        d1.permalink.as_deref(),
        Some("https://x.com/messages/1200000000000000900-1500000000000000001")
    );
    let d2 = find(&first, D2);
    assert_eq!(d2.direction, Direction::Outbound);
    assert!(!d2.addressed_to_brand);
    assert_eq!(d2.visibility, Visibility::Private);
    assert_eq!(property(d2, "participant_id"), Some(SANNE));

    // Page 2: Hebrew with emoji; HTML entities decoded.
    let second = x.poll(first.next_cursor.as_deref()).await.unwrap();
    let m2 = find(&second, M2);
    assert_eq!(m2.text, "@acme_care ההזמנה שלי הגיעה שבורה 😢🙏🏽");
    assert_eq!(m2.author.display_name, "נועה לוי");
    assert!(m2.author.verified, "verified_type blue");
    assert_eq!(m2.author.followers, Some(15000));
    assert_eq!(m2.language.as_deref(), Some("he"));
    let m1 = find(&second, M1);
    assert_eq!(m1.text, "@acme_care Q&A: is order #A-1 <delayed>?");
}

#[tokio::test]
async fn a_rate_limited_search_does_not_starve_mentions_and_dms() {
    let Setup { fake, api, mut x } = setup().await;
    fake.set_search(Answer::RateLimited {
        reset: unix_now() + 120,
    });
    let first = x.poll(None).await.expect("mentions and DMs still arrive");
    assert_eq!(ids(&first.messages), [M3, M4, D1, D2]);
    assert_eq!(
        first.retry_after_ms, None,
        "the other streams are not held back"
    );
    let cursor: Value = serde_json::from_str(first.next_cursor.as_deref().unwrap()).unwrap();
    assert!(
        cursor["search"]["blocked_until"].as_i64().unwrap() > 0,
        "{cursor}"
    );
    assert_eq!(requests_to(&api, "/2/tweets/search/recent").len(), 1);

    // Search recovers, but its reset has not passed: it is not asked.
    fake.set_search(Answer::Normal);
    let second = x.poll(first.next_cursor.as_deref()).await.unwrap();
    assert_eq!(ids(&second.messages), [M1, M2]);
    assert_eq!(
        requests_to(&api, "/2/tweets/search/recent").len(),
        1,
        "search skipped"
    );
    assert_eq!(
        requests_to(&api, &format!("/2/users/{BRAND_ID}/mentions")).len(),
        2
    );
    assert_eq!(requests_to(&api, "/2/dm_events").len(), 2);
}

#[tokio::test]
async fn a_failing_search_does_not_hold_back_mentions_and_dms() {
    let Setup { fake, api, mut x } = setup().await;
    fake.set_search(Answer::Problem {
        status: 503,
        body: r#"{"title":"Service Unavailable","detail":"Service Unavailable","type":"about:blank","status":503}"#,
    });
    let first = x.poll(None).await.expect("mentions and DMs still arrive");
    assert_eq!(ids(&first.messages), [M3, M4, D1, D2]);
    // Search is asked again on the next poll (no wait was given) and its
    // first page comes in full.
    fake.set_search(Answer::Normal);
    let second = x.poll(first.next_cursor.as_deref()).await.unwrap();
    assert_eq!(ids(&second.messages), [M1, M2, M3, S1, S2]);
    assert_eq!(
        find(&second, M3),
        find(&first, M3),
        "found again by search: the same message, which the host deduplicates"
    );
    let search = requests_to(&api, "/2/tweets/search/recent");
    assert_eq!(search.len(), 2);
    assert_eq!(query_param(&search[1], "since_id"), None);

    // Every stream failing is a transient error.
    for set in [FakeX::set_mentions, FakeX::set_search, FakeX::set_dms] {
        set(
            &fake,
            Answer::Problem {
                status: 503,
                body: "{}",
            },
        );
    }
    let error = connector_error(x.poll(second.next_cursor.as_deref()).await.unwrap_err());
    assert!(
        matches!(error, ConnectorError::Transient { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn rate_limits_on_every_stream_are_a_rate_limited_error() {
    let Setup { fake, api, mut x } = setup().await;
    let now = unix_now();
    fake.set_mentions(Answer::RateLimited { reset: now + 300 });
    fake.set_search(Answer::RateLimited { reset: now + 120 });
    fake.set_dms(Answer::RateLimited { reset: now + 600 });
    match connector_error(x.poll(None).await.unwrap_err()) {
        ConnectorError::RateLimited {
            retry_after_ms,
            detail,
        } => {
            assert!(
                (115_000..=121_000).contains(&retry_after_ms),
                "{retry_after_ms} ms: from the earliest x-rate-limit-reset"
            );
            assert!(detail.contains("429"), "{detail}");
        }
        other => panic!("expected rate-limited, got {other:?}"),
    }
    assert_eq!(api.request_count(), 3, "every stream was tried once");
}

#[tokio::test]
async fn an_exhausted_quota_on_success_sets_retry_after() {
    let Setup { fake, api, mut x } =
        setup_with(TOKEN, &[("search_query", ""), ("direct_messages", "false")]).await;
    fake.set_mentions(Answer::Exhausted {
        reset: unix_now() + 300,
    });
    let batch = x.poll(None).await.unwrap();
    assert_eq!(ids(&batch.messages), [M3, M4]);
    let wait = batch.retry_after_ms.expect("a wait until the reset");
    assert!((295_000..=301_000).contains(&wait), "{wait}");
    assert!(!batch.has_more, "the next page waits for the reset");
    assert_eq!(api.request_count(), 1, "only mentions were configured");
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let Setup {
        api,
        mut x,
        fake: _fake,
    } = setup_with("not-the-token", &[]).await;
    match connector_error(x.poll(None).await.unwrap_err()) {
        ConnectorError::Unauthorized {
            detail, expired, ..
        } => {
            assert!(!expired, "it never worked");
            assert!(detail.contains("bearer_token"), "{detail}");
            assert!(detail.contains("401"), "{detail}");
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
    assert!(api.request_count() >= 1);
}

#[tokio::test]
async fn a_token_revoked_after_working_is_expired() {
    let Setup {
        fake,
        mut x,
        api: _api,
    } = setup().await;
    let first = x.poll(None).await.unwrap();
    fake.revoke_token();
    match connector_error(x.poll(first.next_cursor.as_deref()).await.unwrap_err()) {
        ConnectorError::Unauthorized {
            detail, expired, ..
        } => {
            assert!(expired, "{detail}");
            assert!(detail.contains("expired or been revoked"), "{detail}");
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn forbidden_answers_name_what_is_missing() {
    let Setup {
        fake,
        mut x,
        api: _api,
    } = setup().await;
    fake.set_dms(Answer::Problem {
        status: 403,
        body: fixtures::PROBLEM_403_UNSUPPORTED_AUTH,
    });
    match connector_error(x.poll(None).await.unwrap_err()) {
        ConnectorError::Unauthorized {
            missing_scope: Some(scope),
            detail,
            ..
        } => {
            assert!(scope.contains("dm.read"), "{scope}");
            assert!(scope.contains("user-context"), "{scope}");
            assert!(detail.contains("Application-Only"), "{detail}");
        }
        other => panic!("expected unauthorized with a scope, got {other:?}"),
    }
    fake.set_dms(Answer::Normal);
    fake.set_mentions(Answer::Problem {
        status: 403,
        body: fixtures::PROBLEM_403_NOT_ENROLLED,
    });
    match connector_error(x.poll(None).await.unwrap_err()) {
        ConnectorError::Unauthorized {
            missing_scope: Some(scope),
            ..
        } => assert_eq!(scope, "Appropriate Level of API Access"),
        other => panic!("expected unauthorized with a scope, got {other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_page_is_invalid_input_and_delivers_nothing() {
    let Setup { fake, api, mut x } = setup().await;
    fake.set_dms(Answer::Malformed);
    match connector_error(x.poll(None).await.unwrap_err()) {
        ConnectorError::InvalidInput { detail } => {
            assert!(
                detail.contains("malformed direct messages page"),
                "{detail}"
            )
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
    assert_eq!(requests_to(&api, "/2/dm_events").len(), 1);
    // Nothing was committed: once X answers properly, the same first page
    // comes again.
    fake.set_dms(Answer::Normal);
    let batch = x.poll(None).await.unwrap();
    assert_eq!(ids(&batch.messages), [M3, M4, D1, D2, S1, S2]);
}

#[tokio::test]
async fn an_unknown_brand_user_id_is_invalid_input() {
    let Setup {
        mut x, api: _api, ..
    } = setup_with(TOKEN, &[("brand_user_id", "42")]).await;
    match connector_error(x.poll(None).await.unwrap_err()) {
        ConnectorError::InvalidInput { detail } => {
            assert!(
                detail.contains("Could not find user with id: [42]"),
                "{detail}"
            )
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[tokio::test]
async fn actions_reach_the_fake_x_api() {
    let Setup {
        api,
        mut x,
        fake: _fake,
    } = setup().await;
    let first = x.poll(None).await.unwrap();
    let bearer = format!("Bearer {TOKEN}");

    // Public reply.
    let result = x
        .perform(
            action(ActionKind::Reply(text(
                "Sorry Layla, we zoeken het uit! 📦 شكرا",
            ))),
            target_of(find(&first, M4)),
        )
        .await
        .expect("reply");
    assert_eq!(result.external_id.as_deref(), Some(CREATED_TWEET_ID));
    assert_eq!(
        result.permalink.as_deref(),
        Some("https://x.com/acme_care/status/1456012973835788293")
    );
    let sent = requests_to(&api, "/2/tweets");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].header("authorization"), Some(bearer.as_str()));
    assert!(
        sent[0]
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"text": "Sorry Layla, we zoeken het uit! 📦 شكرا", "reply": {"in_reply_to_tweet_id": M4}})
    );

    // Private reply to a post: a DM to its author.
    let result = x
        .perform(
            action(ActionKind::PrivateReply(text(
                "Hoi Jan, stuur je ons je ordernummer? 🙏",
            ))),
            target_of(find(&first, M3)),
        )
        .await
        .expect("private reply");
    assert_eq!(result.external_id.as_deref(), Some("1991000000000000399"));
    assert_eq!(
        result.permalink.as_deref(),
        Some("https://x.com/messages/1200000000000000900-1500000000000000001")
    );
    let path = format!("/2/dm_conversations/with/{JAN}/messages");
    let sent = requests_to(&api, &path);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].header("authorization"), Some(bearer.as_str()));
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"text": "Hoi Jan, stuur je ons je ordernummer? 🙏"})
    );

    // A reply to a DM stays private: a DM to the other participant.
    x.perform(
        action(ActionKind::Reply(text("Dank je, Sanne!"))),
        target_of(find(&first, D1)),
    )
    .await
    .expect("reply to a DM");
    let sent = requests_to(&api, &format!("/2/dm_conversations/with/{SANNE}/messages"));
    assert_eq!(sent.len(), 1);
    assert_eq!(requests_to(&api, "/2/tweets").len(), 1, "never in public");

    // Like, as the brand account.
    let result = x
        .perform(
            action(ActionKind::React("like".into())),
            target_of(find(&first, M3)),
        )
        .await
        .expect("like");
    assert_eq!(result.external_id, None);
    let sent = requests_to(&api, &format!("/2/users/{BRAND_ID}/likes"));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].header("authorization"), Some(bearer.as_str()));
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body, json!({"tweet_id": M3}));

    // Channel rules are enforced before anything is sent.
    let before = api.request_count();
    let long = "Dit antwoord is veel te lang voor één post op X. ".repeat(7);
    let error = x
        .perform(
            action(ActionKind::Reply(text(&long))),
            target_of(find(&first, M3)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(connector_error(error), ConnectorError::NotAllowed { ref detail } if detail.contains("280")),
    );
    let error = x
        .perform(
            action(ActionKind::React("angry".into())),
            target_of(find(&first, M3)),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        connector_error(error),
        ConnectorError::Unsupported { .. }
    ));
    let error = x
        .perform(action(ActionKind::Hide), target_of(find(&first, M3)))
        .await
        .unwrap_err();
    assert!(matches!(
        connector_error(error),
        ConnectorError::Unsupported { .. }
    ));
    assert_eq!(
        api.request_count(),
        before,
        "nothing sent for refused actions"
    );
}

#[tokio::test]
async fn a_reply_to_an_edited_post_goes_to_its_newest_version() {
    let Setup {
        api,
        mut x,
        fake: _fake,
    } = setup().await;
    let first = x.poll(None).await.unwrap();
    let second = x.poll(first.next_cursor.as_deref()).await.unwrap();
    let third = x.poll(second.next_cursor.as_deref()).await.unwrap();
    let MessageUpdate::Edited(edited) = &third.updates[0] else {
        panic!("expected an edit: {:?}", third.updates);
    };
    x.perform(
        action(ActionKind::Reply(text("Gevonden, Jan!"))),
        target_of(edited),
    )
    .await
    .expect("reply");
    let sent = requests_to(&api, "/2/tweets");
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["reply"]["in_reply_to_tweet_id"], M3_EDITED);
}

#[tokio::test]
async fn an_action_with_a_revoked_token_is_expired() {
    let Setup {
        fake,
        mut x,
        api: _api,
    } = setup().await;
    let first = x.poll(None).await.unwrap();
    fake.revoke_token();
    let error = x
        .perform(
            action(ActionKind::React("like".into())),
            target_of(find(&first, M3)),
        )
        .await
        .unwrap_err();
    match connector_error(error) {
        ConnectorError::Unauthorized { expired, .. } => assert!(expired),
        other => panic!("expected unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn a_deleted_post_is_reported_as_deleted_on_the_next_check() {
    let Setup { fake, api, mut x } = setup_with(TOKEN, &[("deletion_check_seconds", "1")]).await;
    let first = x.poll(None).await.expect("first poll");
    let mention = find(&first, M3).clone();
    let lookups = |api: &FakeApi| {
        api.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == "/2/tweets")
            .collect::<Vec<_>>()
    };
    assert!(
        lookups(&api).is_empty(),
        "nothing to check on the first poll"
    );

    fake.delete_post(M3);
    // Not due yet: the first check comes one interval after the first posts.
    let cursor = first.next_cursor.clone();
    let early = x.poll(cursor.as_deref()).await.expect("second poll");
    assert!(lookups(&api).is_empty(), "checked before it was due");
    assert!(early.updates.is_empty(), "{:?}", early.updates);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let cursor = early.next_cursor.clone();
    let later = x.poll(cursor.as_deref()).await.expect("third poll");
    let checks = lookups(&api);
    assert_eq!(checks.len(), 1, "one lookup for all remembered posts");
    assert!(checks[0].query.contains(M3), "{}", checks[0].query);
    assert!(
        !checks[0].query.contains(D1),
        "DMs are not looked up: {}",
        checks[0].query
    );
    assert_eq!(
        checks[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let deleted: Vec<_> = later
        .updates
        .iter()
        .filter_map(|u| match u {
            MessageUpdate::Deleted(removal) => Some(removal),
            _ => None,
        })
        .collect();
    assert_eq!(deleted.len(), 1, "{:?}", later.updates);
    assert_eq!(deleted[0].external_id, M3);
    assert_eq!(
        deleted[0].thread_id.as_deref(),
        Some(mention.thread_id.as_str())
    );

    // Reported once: the deleted post is forgotten.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let cursor = later.next_cursor.clone();
    let again = x.poll(cursor.as_deref()).await.expect("fourth poll");
    assert!(
        !again
            .updates
            .iter()
            .any(|u| matches!(u, MessageUpdate::Deleted(r) if r.external_id == M3)),
        "{:?}",
        again.updates
    );
}

/// A connector on a user-context OAuth 2.0 grant: no fixed bearer token,
/// a client id and the refresh token of the brand account's authorisation.
async fn setup_oauth() -> Setup {
    let fake = FakeX::new();
    let api = FakeApi::start(fake.router()).await;
    let base = api.base_url();
    let rt = runtime();
    let plugin = rt
        .load_file(&plugin_path("twitter_connector"))
        .await
        .expect("load twitter connector");
    let x = rt
        .configured_connector(
            plugin,
            grants(
                "acme",
                &[
                    ("api_base_url", &base),
                    ("brand_user_id", BRAND_ID),
                    ("brand_username", BRAND_USERNAME),
                    ("direct_messages", "false"),
                    ("oauth_client_id", OAUTH_CLIENT_ID),
                ],
                &[
                    ("oauth_refresh_token", OAUTH_SEED_REFRESH_TOKEN),
                    ("oauth_client_secret", OAUTH_CLIENT_SECRET),
                ],
                &[api.allow_entry()],
            ),
            CallLimits::default(),
        )
        .await
        .expect("settings fit");
    Setup { fake, api, x }
}

#[tokio::test]
async fn a_user_grant_is_renewed_before_it_expires_and_its_refresh_token_rotated() {
    let Setup { fake, api, mut x } = setup_oauth().await;
    // Renewed halfway through a 4 s life: after 2 s.
    fake.set_token_lifetime(4);
    let renewals = |api: &FakeApi| {
        api.requests()
            .into_iter()
            .filter(|r| r.path == "/2/oauth2/token")
            .collect::<Vec<_>>()
    };
    let bearer_of_last_mentions = |api: &FakeApi| {
        api.requests()
            .into_iter()
            .rfind(|r| r.path.ends_with("/mentions"))
            .and_then(|r| r.header("authorization").map(str::to_owned))
    };

    let first = x.poll(None).await.expect("first poll");
    assert!(!first.messages.is_empty());
    let sent = renewals(&api);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    let form = String::from_utf8_lossy(&sent[0].body).into_owned();
    assert!(form.contains("grant_type=refresh_token"), "{form}");
    assert!(
        form.contains(&format!("refresh_token={OAUTH_SEED_REFRESH_TOKEN}")),
        "{form}"
    );
    assert!(
        sent[0]
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic ")),
        "a confidential client authenticates with HTTP Basic"
    );
    assert_eq!(
        bearer_of_last_mentions(&api).as_deref(),
        Some("Bearer access-1")
    );

    // Still fresh: no renewal.
    let cursor = first.next_cursor.clone();
    let second = x.poll(cursor.as_deref()).await.expect("second poll");
    assert_eq!(renewals(&api).len(), 1);

    // Past its renewal time: renewed with the rotated refresh token.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let cursor = second.next_cursor.clone();
    let third = x.poll(cursor.as_deref()).await.expect("third poll");
    let sent = renewals(&api);
    assert_eq!(sent.len(), 2);
    let form = String::from_utf8_lossy(&sent[1].body).into_owned();
    assert!(
        form.contains("refresh_token=refresh-1"),
        "the rotated one: {form}"
    );
    assert_eq!(
        bearer_of_last_mentions(&api).as_deref(),
        Some("Bearer access-2")
    );

    // The user revokes the app: a clear expired-credentials error.
    fake.revoke_grant();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let cursor = third.next_cursor.clone();
    let error = connector_error(x.poll(cursor.as_deref()).await.expect_err("revoked"));
    match error {
        ConnectorError::Unauthorized {
            expired, detail, ..
        } => {
            assert!(expired, "{detail}");
            assert!(detail.contains("oauth_refresh_token"), "{detail}");
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
}
