//! The real runtime loading real compiled plugins that talk to fake channel
//! APIs on loopback.

mod common;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use common::*;
use webcare::model::{
    Action, ActionKind, ActionTarget, Direction, MessageKind, MessageUpdate, Outgoing, Visibility,
    WebhookRequest,
};
use webcare::runtime::{CallLimits, EngineSettings, Interruption, Origin, PluginError};
use webcare_tests::fake_api::FakeApi;
use webcare_tests::plugins::plugin_path;
use webcare_tests::runtime;

#[tokio::test]
async fn template_polls_pages_with_cursor_and_normalises() {
    let api = FakeApi::start(feed_router()).await;
    let rt = runtime();
    let mut feed = template(&rt, "acme", &api).await;

    let first = feed.poll(None).await.expect("first poll");
    assert_eq!(first.messages.len(), 2);
    assert!(first.has_more);
    let m1 = &first.messages[0];
    assert_eq!(m1.external_id, "m1");
    assert_eq!(m1.thread_id, "conv-1");
    assert_eq!(m1.kind, MessageKind::Mention);
    assert_eq!(m1.visibility, Visibility::Public);
    assert_eq!(m1.direction, Direction::Inbound);
    assert!(m1.addressed_to_brand);
    assert_eq!(
        m1.text,
        "Mijn pakket is nog steeds niet bezorgd 😡 #vertraging"
    );
    assert_eq!(m1.author.handle, "jan");
    assert_eq!(m1.author.followers, Some(1200));
    assert_eq!(m1.language.as_deref(), Some("nl"));
    assert_eq!(m1.created_at, 1_795_166_100_000);
    assert_eq!(m1.metrics.likes, Some(3));
    assert_eq!(first.messages[1].text, "مرحبا، طلبي لم يصل بعد");

    // Resume from the cursor: no duplicates, offsets respected.
    let second = feed
        .poll(first.next_cursor.as_deref())
        .await
        .expect("second poll");
    assert_eq!(second.messages[0].external_id, "m3");
    assert_eq!(second.messages[0].text, "Bedankt voor de snelle hulp! 🙏🏽👍");
    assert_eq!(
        second.messages[0].created_at, 1_795_165_200_000,
        "offset +01:00 honoured"
    );
    let third = feed
        .poll(second.next_cursor.as_deref())
        .await
        .expect("third poll");
    assert!(!third.has_more);
    let mut ids: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|b| b.messages.iter().map(|m| m.external_id.clone()))
        .collect();
    for b in [&first, &second, &third] {
        for u in &b.updates {
            if let MessageUpdate::Edited(m) = u {
                ids.push(m.external_id.clone());
            }
        }
    }
    ids.sort();
    ids.dedup();
    assert!(ids.len() >= 4, "{ids:?}");
    let deletions: Vec<_> = third
        .updates
        .iter()
        .chain(second.updates.iter())
        .filter(|u| matches!(u, MessageUpdate::Deleted(_)))
        .collect();
    assert_eq!(deletions.len(), 1);
    assert_eq!(deletions[0].external_id(), "m5");

    // Every request carried the bearer token and paging parameters.
    let requests = api.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert!(r.query.contains("limit=2"), "{}", r.query);
    }
    assert!(
        requests[1].query.contains("after=2"),
        "{}",
        requests[1].query
    );
}

#[tokio::test]
async fn template_reply_reaches_the_fake_api() {
    let api = FakeApi::start(feed_router()).await;
    let rt = runtime();
    let mut feed = template(&rt, "acme", &api).await;
    let batch = feed.poll(None).await.unwrap();
    let m = &batch.messages[0];
    let target = ActionTarget {
        external_id: m.external_id.clone(),
        thread_id: m.thread_id.clone(),
        kind: m.kind,
        visibility: m.visibility,
        author: m.author.clone(),
        created_at: m.created_at,
        last_inbound_at: None,
        subject: None,
        properties: m.properties.clone(),
    };
    let action = Action {
        idempotency_key: "case-1-reply-1".into(),
        kind: ActionKind::Reply(Outgoing {
            text: "Sorry Jan, we zoeken het uit! 📦".into(),
            attachments: vec![],
        }),
    };
    let result = feed.perform(action, target).await.expect("reply");
    assert_eq!(result.external_id.as_deref(), Some("r-42"));
    let sent = api
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("a POST");
    assert_eq!(sent.path, "/v1/messages/m1/replies");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["text"], "Sorry Jan, we zoeken het uit! 📦");
    assert_eq!(body["private"], false);
    assert_eq!(body["idempotency_key"], "case-1-reply-1");
}

#[tokio::test]
async fn wrong_token_is_a_typed_unauthorized_error() {
    let api = FakeApi::start(feed_router()).await;
    let rt = runtime();
    let plugin = rt
        .load_file(&plugin_path("template_connector"))
        .await
        .unwrap();
    let base = api.base_url();
    let mut feed = rt
        .configured_connector(
            plugin,
            grants(
                "acme",
                &[("base_url", &base), ("brand_handle", "acme_care")],
                &[("api_token", "wrong-token")],
                &[api.allow_entry()],
            ),
            CallLimits::default(),
        )
        .await
        .unwrap();
    let err = feed.poll(None).await.unwrap_err();
    assert_eq!(err.kind(), "unauthorized", "{err}");
}

#[tokio::test]
async fn rate_limit_and_malformed_payloads_are_typed() {
    let router = Router::new().route(
        "/v1/messages",
        get(|| async {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "7")],
                "slow down",
            )
                .into_response()
        }),
    );
    let api = FakeApi::start(router).await;
    let rt = runtime();
    let mut feed = template(&rt, "acme", &api).await;
    match feed.poll(None).await.unwrap_err() {
        PluginError::Connector(webcare::model::ConnectorError::RateLimited {
            retry_after_ms,
            ..
        }) => {
            assert_eq!(retry_after_ms, 7_000)
        }
        other => panic!("expected rate-limited, got {other}"),
    }

    let router = Router::new().route(
        "/v1/messages",
        get(|| async {
            (
                [("content-type", "application/json")],
                r#"{"data":[{"id":"x""#,
            )
        }),
    );
    let api = FakeApi::start(router).await;
    let mut feed = template(&rt, "acme", &api).await;
    let err = feed.poll(None).await.unwrap_err();
    assert_eq!(err.kind(), "invalid-input", "{err}");
}

#[tokio::test]
async fn webhook_handshake_and_push() {
    let api = FakeApi::start(feed_router()).await;
    let rt = runtime();
    let mut feed = template(&rt, "acme", &api).await;
    let challenge = feed
        .handle_webhook(WebhookRequest {
            method: "GET".into(),
            query: vec![("challenge".into(), "abc123".into())],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(challenge.response.status, 200);
    assert_eq!(challenge.response.body, b"abc123");
    assert!(challenge.messages.is_empty());

    let body = serde_json::to_vec(&serde_json::json!({"data": feed_items()[..2]})).unwrap();
    let pushed = feed
        .handle_webhook(WebhookRequest {
            method: "POST".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pushed.response.status, 200);
    assert_eq!(pushed.messages.len(), 2);
    assert_eq!(api.request_count(), 0, "a webhook needs no outbound call");
}

#[tokio::test]
async fn each_hostile_plugin_is_stopped_by_its_guard_and_neighbours_are_unaffected() {
    let api = FakeApi::start(feed_router()).await;
    let rt = runtime();
    let mut good = template(&rt, "acme", &api).await;
    let quick = CallLimits {
        cpu_budget: Duration::from_millis(300),
        memory_bytes: 32 * 1024 * 1024,
        ..CallLimits::default()
    };

    let mut looping = hostile(&rt, "loop", &[], &[], quick.clone()).await;
    let err = looping.poll(None).await.unwrap_err();
    assert!(matches!(err, PluginError::CpuBudget { .. }), "{err}");
    assert!(err.to_string().starts_with("cpu budget"), "{err}");
    assert!(
        good.poll(None).await.is_ok(),
        "neighbour still works after a loop"
    );

    let mut bomb = hostile(&rt, "memory-bomb", &[], &[], quick.clone()).await;
    let err = bomb.poll(None).await.unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::MemoryLimit {
                limit_bytes: 33_554_432,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("memory limit"), "{err}");
    assert!(
        good.poll(None).await.is_ok(),
        "neighbour still works after a memory bomb"
    );

    let mut panicking = hostile(&rt, "panic", &[], &[], quick.clone()).await;
    let err = panicking.poll(None).await.unwrap_err();
    match &err {
        PluginError::Panic {
            message,
            location,
            backtrace,
        } => {
            assert_eq!(message, "hostile plugin panicked on purpose");
            assert!(
                location
                    .as_deref()
                    .is_some_and(|l| l.contains("src/lib.rs")),
                "{location:?}"
            );
            assert!(
                backtrace.iter().any(|f| f.contains("hostile")),
                "backtrace has names: {backtrace:?}"
            );
        }
        other => panic!("expected a panic, got {other}"),
    }

    let mut huge = hostile(
        &rt,
        "huge-output",
        &[("count", "20000")],
        &[],
        CallLimits::default(),
    )
    .await;
    let err = huge.poll(None).await.unwrap_err();
    assert!(matches!(err, PluginError::OutputLimit(_)), "{err}");
    assert!(err.to_string().contains("20000"), "{err}");

    let slow_url = format!("{}/slow", api.base_url());
    let impatient = CallLimits {
        call_timeout: Duration::from_millis(400),
        ..CallLimits::default()
    };
    let mut sleeper = hostile(
        &rt,
        "sleep-host",
        &[("target_url", &slow_url)],
        &[api.allow_entry()],
        impatient,
    )
    .await;
    let err = sleeper.poll(None).await.unwrap_err();
    assert!(matches!(err, PluginError::CallTimeout { .. }), "{err}");

    // After all that: the hostile plugin itself runs fine in a fresh
    // instance, and the good neighbour still gets its messages.
    let mut fine = hostile(&rt, "ok", &[], &[], quick.clone()).await;
    assert_eq!(
        fine.poll(None).await.unwrap().messages[0].external_id,
        "ok-1"
    );
    let mut again = hostile(&rt, "loop", &[], &[], quick).await;
    assert!(again.poll(None).await.is_err());
    assert!(good.poll(None).await.is_ok());
}

#[tokio::test]
async fn fuel_mode_stops_a_loop_too() {
    let rt = webcare_tests::runtime_with(EngineSettings {
        interruption: Interruption::Fuel,
        ..EngineSettings::default()
    });
    let limits = CallLimits {
        cpu_budget: Duration::from_millis(100),
        ..CallLimits::default()
    };
    let mut looping = hostile(&rt, "loop", &[], &[], limits).await;
    let err = looping.poll(None).await.unwrap_err();
    match err {
        PluginError::CpuBudget { mechanism, .. } => assert_eq!(mechanism, "fuel"),
        other => panic!("expected cpu budget, got {other}"),
    }
}

#[tokio::test]
async fn log_flood_is_throttled_not_fatal() {
    let rt = runtime();
    let limits = CallLimits {
        cpu_budget: Duration::from_secs(30),
        ..CallLimits::default()
    };
    let mut flood = hostile(&rt, "log-flood", &[], &[], limits).await;
    let batch = flood
        .poll(None)
        .await
        .expect("a plugin that prints a lot still completes");
    assert!(batch.messages.is_empty());
}

/// A hostile connector that GETs `url` with `allow` as its allow-list.
async fn fetching(
    rt: &webcare::runtime::Runtime,
    url: &str,
    allow: &[String],
) -> webcare::runtime::ConnectorInstance {
    hostile(
        rt,
        "forbidden-host",
        &[("target_url", url)],
        allow,
        CallLimits::default(),
    )
    .await
}

#[tokio::test]
async fn allow_list_refuses_before_anything_leaves_also_through_redirects() {
    let outsider =
        FakeApi::start(Router::new().route("/", get(|| async { "you should not see me" }))).await;
    let outsider_url = format!("{}/", outsider.base_url());
    let target = outsider_url.clone();
    let allowed = FakeApi::start(
        Router::new()
            .route(
                "/hop",
                get(move || async move { Redirect::temporary(&target) }),
            )
            .route("/inside", get(|| async { Redirect::temporary("/landing") }))
            .route("/landing", get(|| async { "landed" })),
    )
    .await;
    let rt = runtime();

    // Direct request to a host that is not on the list.
    let mut direct = fetching(&rt, &outsider_url, &[allowed.allow_entry()]).await;
    let err = direct.poll(None).await.unwrap_err();
    assert!(matches!(err, PluginError::AllowList { .. }), "{err}");
    assert!(
        err.to_string().contains(&outsider.addr.to_string()),
        "{err}"
    );

    // An allowed host that redirects to it.
    let hop = format!("{}/hop", allowed.base_url());
    let mut redirected = fetching(&rt, &hop, &[allowed.allow_entry()]).await;
    let err = redirected.poll(None).await.unwrap_err();
    assert!(matches!(err, PluginError::AllowList { .. }), "{err}");
    assert_eq!(
        outsider.request_count(),
        0,
        "nothing reached the host outside the allow-list"
    );
    assert_eq!(
        allowed.request_count(),
        1,
        "the allowed hop itself was requested once"
    );

    // Plain http is not implied by a host:port entry.
    let mut no_plain = fetching(&rt, &outsider_url, &[outsider.addr.to_string()]).await;
    assert!(matches!(
        no_plain.poll(None).await.unwrap_err(),
        PluginError::AllowList { .. }
    ));
    assert_eq!(outsider.request_count(), 0);

    // A redirect that stays on the allow-list is followed.
    let inside = format!("{}/inside", allowed.base_url());
    let mut ok = fetching(&rt, &inside, &[allowed.allow_entry()]).await;
    let batch = ok.poll(None).await.expect("allowed redirect is followed");
    assert!(
        batch.messages[0].text.contains("landed"),
        "{:?}",
        batch.messages[0].text
    );
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_never_reach_logs_or_errors() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let rt = runtime();
    let mut leaky = hostile(&rt, "secret-leak", &[], &[], CallLimits::default()).await;
    let err = leaky.poll(None).await.unwrap_err();
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert!(err.to_string().contains("[redacted]"), "{err}");
    assert!(!logs.contains(TOKEN), "secret leaked into logs:\n{logs}");
    assert!(
        logs.contains("[redacted]"),
        "the guest's log lines were captured:\n{logs}"
    );
}

#[tokio::test]
async fn unsupported_contract_version_names_both_versions() {
    let rt = runtime();
    let err = rt
        .load_file(&plugin_path("skewed_plugin"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, PluginError::UnsupportedVersion { .. }),
        "{text}"
    );
    assert!(text.contains("webcare:connector@0.9.0"), "{text}");
    assert!(text.contains("webcare:connector@0.1.x"), "{text}");
}

#[tokio::test]
async fn other_worlds_and_non_components_are_refused_clearly() {
    let rt = runtime();
    let err = rt
        .load_file(&plugin_path("not-a-connector"))
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::WrongWorld { .. }), "{err}");
    assert!(err.to_string().contains("wasi:cli/run"), "{err}");

    let core_module = b"\0asm\x01\0\0\0";
    let err = rt.load_bytes(core_module, "core.wasm").unwrap_err();
    assert!(err.to_string().contains("core WebAssembly module"), "{err}");
    let err = rt
        .load_bytes(b"{\"not\": \"wasm\"}", "feed.json")
        .unwrap_err();
    assert!(err.to_string().contains("magic bytes"), "{err}");
    let err = rt
        .load_bytes(b"\0asm\x0d\0\x01\0garbage", "torn.wasm")
        .unwrap_err();
    assert!(matches!(err, PluginError::NotAComponent { .. }), "{err}");
}

#[tokio::test]
async fn compiled_components_are_cached_by_content_and_engine_settings() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(plugin_path("template_connector")).unwrap();
    let make = |interruption| {
        webcare::runtime::Runtime::new(webcare::runtime::RuntimeConfig {
            engine: EngineSettings {
                interruption,
                ..EngineSettings::default()
            },
            cache_dir: Some(dir.path().to_path_buf()),
            extra_roots_pem: vec![],
        })
        .unwrap()
    };
    assert_eq!(
        make(Interruption::Epoch)
            .load_bytes(&bytes, "t")
            .unwrap()
            .origin,
        Origin::Compiled
    );
    assert_eq!(
        make(Interruption::Epoch)
            .load_bytes(&bytes, "t")
            .unwrap()
            .origin,
        Origin::Cached
    );
    // Other engine settings must not load the epoch build.
    assert_eq!(
        make(Interruption::Fuel)
            .load_bytes(&bytes, "t")
            .unwrap()
            .origin,
        Origin::Compiled
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

    // A damaged artefact is ignored and replaced.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"torn").unwrap();
    }
    let plugin = make(Interruption::Epoch).load_bytes(&bytes, "t").unwrap();
    assert_eq!(plugin.origin, Origin::Compiled);
    assert_eq!(
        make(Interruption::Epoch)
            .load_bytes(&bytes, "t")
            .unwrap()
            .origin,
        Origin::Cached
    );
}

#[tokio::test]
async fn brands_sharing_a_plugin_get_their_own_settings_and_state() {
    let api = FakeApi::start(feed_router()).await;
    let rt = runtime();
    let mut a = template(&rt, "brand-a", &api).await;
    let mut b = template(&rt, "brand-b", &api).await;
    assert!(
        std::sync::Arc::ptr_eq(a.plugin(), b.plugin()),
        "one compiled plugin serves both"
    );
    assert_eq!(a.grants().id.brand, "brand-a");
    a.poll(None).await.unwrap();
    b.poll(None).await.unwrap();
    assert_eq!(api.request_count(), 2);
}
