//! Facebook: messages normalised per second from one signed webhook
//! delivery of 100 changes and Messenger events (comments, page replies,
//! visitor posts, mentions, DMs in Dutch, Arabic and Hebrew with emoji),
//! through `facebook_connector.wasm` in the host (`handle_webhook`, signature
//! check included) and through the same code natively
//! (`verify_signature` + `normalize_webhook`).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use serde_json::{Value, json};
use webcare::capabilities::{AllowList, ConnectorId, Grants, IoLimits, MemoryStateStore, Secret};
use webcare::model::WebhookRequest;
use webcare::runtime::{Call, CallLimits, EngineSettings, Interruption, Runtime, RuntimeConfig};
use webcare_tests::fake_facebook::{APP_SECRET, PAGE_ID, TOKEN, VERIFY_TOKEN, sign};
use webcare_tests::plugins::plugin_path;

const TEXTS: [&str; 4] = [
    "Hé, mijn pakketje is nog steeds niet bezorgd. Wanneer komt het? 😡 Bestelling #A-20931",
    "مرحبا، طلبي لم يصل بعد. هل يمكنكم المساعدة؟",
    "שלום, ההזמנה שלי לא הגיעה, אפשר לבדוק?",
    "Bedankt voor de snelle hulp gisteren! 🙏🏽👍 Top service van jullie team.",
];

/// One delivery of 100 items in 10 entries of 10: per entry 7 feed changes
/// (comments, replies by the page, a visitor post, a mention) and 3
/// Messenger messages (one of them an echo).
fn delivery_100() -> Vec<u8> {
    let entries: Vec<Value> = (0..10)
        .map(|e| {
            let changes: Vec<Value> = (0..7)
                .map(|c| {
                    let i = e * 10 + c;
                    let time = 1_795_166_100 + i * 7;
                    let post = format!("{PAGE_ID}_90109783665{e:04}");
                    match c {
                        5 => json!({"field": "feed", "value": {"item": "status", "verb": "add",
                            "post_id": format!("{PAGE_ID}_77{i:06}"), "from": {"id": format!("62033445566{i:05}"), "name": "ليلى"},
                            "created_time": time, "message": TEXTS[1], "photo": "https://scontent.example/p.jpg"}}),
                        6 => json!({"field": "mention", "value": {"item": "comment", "verb": "add",
                            "post_id": format!("5550001112223_{i}"), "comment_id": format!("{i}_3754798971271"),
                            "created_time": time, "message": TEXTS[3]}}),
                        _ => {
                            let from = if c == 2 {
                                json!({"id": PAGE_ID, "name": "Acme Care"})
                            } else {
                                json!({"id": format!("62033445566{i:05}"), "name": "Joost de Vries"})
                            };
                            json!({"field": "feed", "value": {"item": "comment", "verb": "add",
                                "comment_id": format!("90109783665{e:04}_90343899308{i:04}"), "post_id": post,
                                "parent_id": if c == 2 { format!("90109783665{e:04}_90343899308{:04}", i - 1) } else { post.clone() },
                                "from": from, "created_time": time, "message": TEXTS[c % 4]}})
                        }
                    }
                })
                .collect();
            let messaging: Vec<Value> = (7..10)
                .map(|c| {
                    let i = e * 10 + c;
                    let psid = format!("24680{e:05}");
                    let echo = c == 9;
                    json!({
                        "sender": {"id": if echo { PAGE_ID.to_owned() } else { psid.clone() }},
                        "recipient": {"id": if echo { psid } else { PAGE_ID.to_owned() }},
                        "timestamp": (1_795_166_100 + i * 7) * 1000,
                        "message": {"mid": format!("m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_{i:04}"), "text": TEXTS[(c + 1) % 4], "is_echo": echo}
                    })
                })
                .collect();
            json!({"id": PAGE_ID, "time": 1_795_166_900, "changes": changes, "messaging": messaging})
        })
        .collect();
    serde_json::to_vec(&json!({"object": "page", "entry": entries})).unwrap()
}

fn runtime(interruption: Interruption) -> Runtime {
    Runtime::new(RuntimeConfig {
        engine: EngineSettings {
            interruption,
            ..EngineSettings::default()
        },
        cache_dir: Some(webcare_tests::test_cache_dir()),
        extra_roots_pem: vec![],
    })
    .unwrap()
}

pub fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = delivery_100();
    let signature = sign(&body, APP_SECRET);
    let request = WebhookRequest {
        method: "POST".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-hub-signature-256".into(), signature.clone()),
        ],
        body: body.clone(),
        ..WebhookRequest::default()
    };
    let native = facebook_connector::normalize_webhook(&body, PAGE_ID).unwrap();
    assert_eq!(native.messages.len(), 100);

    let mut group = c.benchmark_group("facebook_webhook_100_messages");
    group.throughput(Throughput::Elements(100));
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("native", |b| {
        b.iter(|| {
            facebook_connector::verify_signature(black_box(&body), Some(&signature), APP_SECRET)
                .unwrap();
            black_box(facebook_connector::normalize_webhook(black_box(&body), PAGE_ID).unwrap())
        })
    });
    for interruption in [Interruption::Epoch, Interruption::Fuel] {
        let rt = runtime(interruption);
        let plugin = tokio
            .block_on(rt.load_file(&plugin_path("facebook_connector")))
            .unwrap();
        let grants = Grants::new(
            ConnectorId {
                brand: "bench".into(),
                connector: "facebook".into(),
            },
            BTreeMap::from([("page_id".to_string(), PAGE_ID.to_string())]),
            BTreeMap::from([
                ("page_access_token".to_string(), Secret::new(TOKEN)),
                ("app_secret".to_string(), Secret::new(APP_SECRET)),
                ("verify_token".to_string(), Secret::new(VERIFY_TOKEN)),
            ]),
            AllowList::default(),
            IoLimits::default(),
            Arc::new(MemoryStateStore::default()),
        );
        let mut inst = tokio
            .block_on(rt.configured_connector(plugin, grants, CallLimits::default()))
            .unwrap();
        let check = tokio
            .block_on(inst.handle_webhook(request.clone()))
            .unwrap();
        assert_eq!(check.response.status, 200);
        assert_eq!(check.messages.len(), 100);
        group.bench_function(format!("wasm_{}", interruption.as_str()), |b| {
            b.iter_custom(|iters| {
                tokio.block_on(async {
                    // Copies of the request are made outside the timed region.
                    let mut elapsed = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(64);
                        let calls: Vec<_> =
                            (0..n).map(|_| Call::Webhook(request.clone())).collect();
                        let start = Instant::now();
                        for call in calls {
                            black_box(inst.invoke(call).await.unwrap());
                        }
                        elapsed += start.elapsed();
                        left -= n;
                    }
                    elapsed
                })
            })
        });
    }
    group.finish();
}
