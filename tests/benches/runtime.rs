//! Runtime benchmarks (criterion). Run with `RUST_BACKTRACE=0`: a captured
//! backtrace on any error path distorts figures (see docs/runtime.md).
//!
//! ```text
//! RUST_BACKTRACE=0 cargo bench -p webcare-tests --bench runtime
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use webcare::capabilities::{AllowList, ConnectorId, Grants, IoLimits, MemoryStateStore};
use webcare::model::WebhookRequest;
use webcare::runtime::cache::{ComponentCache, digest};
use webcare::runtime::{
    Call, CallLimits, ConnectorInstance, EngineSettings, Interruption, Runtime, RuntimeConfig,
};
use webcare_tests::plugins::plugin_path;

/// The allocator the `webcare` binary runs with (host/src/main.rs), so the
/// host's side of every call (lifting strings, building records) is
/// measured as it runs in production. The native side uses it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

fn connector(rt: &Runtime, tokio: &tokio::runtime::Runtime) -> ConnectorInstance {
    plugin_instance(rt, tokio, "template_connector")
}

/// A warm instance of the plugin `name` with the template's settings.
fn plugin_instance(rt: &Runtime, tokio: &tokio::runtime::Runtime, name: &str) -> ConnectorInstance {
    let plugin = tokio.block_on(rt.load_file(&plugin_path(name))).unwrap();
    let settings = BTreeMap::from([
        ("base_url".to_string(), "https://feed.example".to_string()),
        ("brand_handle".to_string(), "acme_care".to_string()),
        ("page_size".to_string(), "100".to_string()),
    ]);
    let secrets = BTreeMap::from([(
        "api_token".to_string(),
        webcare::capabilities::Secret::new("t0ken-for-bench"),
    )]);
    let grants = Grants::new(
        ConnectorId {
            brand: "bench".into(),
            connector: "feed".into(),
        },
        settings,
        secrets,
        AllowList::default(),
        IoLimits::default(),
        Arc::new(MemoryStateStore::default()),
    );
    rt.connector(plugin, grants, CallLimits::default())
}

/// A realistic 100-message page of the template feed format.
fn page_100() -> Vec<u8> {
    let texts = [
        "Mijn pakket is nog steeds niet bezorgd 😡 #vertraging @acme_care kunnen jullie even kijken?",
        "@acme_care my order #A-20931 arrived damaged, the box was crushed and the lamp is broken. What now?",
        "مرحبا، طلبي لم يصل بعد. هل يمكنكم المساعدة؟",
        "Bedankt voor de snelle hulp gisteren! 🙏🏽👍 Top service van jullie team.",
    ];
    let data: Vec<_> = (0..100)
        .map(|i| {
            json!({
                "id": format!("1460{i:06}"),
                "conversation_id": format!("1460{:06}", i - i % 4),
                "reply_to": if i % 4 == 0 { serde_json::Value::Null } else { json!(format!("1460{:06}", i - 1)) },
                "type": if i % 7 == 0 { "direct_message" } else { "mention" },
                "to_brand": i % 3 != 0,
                "author": {"id": format!("u{i}"), "username": format!("klant_{i}"), "name": format!("Klant {i}"), "followers": 100 + i * 37, "verified": i % 11 == 0, "url": format!("https://feed.example/u/{i}")},
                "text": texts[i % texts.len()],
                "lang": if i % 4 == 2 { "ar" } else { "nl" },
                "created_at": format!("2026-11-20T09:{:02}:{:02}Z", i / 60, i % 60),
                "url": format!("https://feed.example/m/{i}"),
                "likes": i, "shares": i / 2, "replies": i / 3,
                "attachments": if i % 5 == 0 { json!([{"type": "image", "url": format!("https://cdn.feed.example/{i}.jpg"), "mime_type": "image/jpeg", "alt": "foto"}]) } else { json!([]) }
            })
        })
        .collect();
    serde_json::to_vec(&json!({"data": data, "next": "100", "has_more": true})).unwrap()
}

/// Host overhead: the no-op plugin, whose `poll` touches no import and
/// returns an empty batch.
fn bench_noop(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = runtime(Interruption::Epoch);
    let plugin = tokio
        .block_on(rt.load_file(&plugin_path("noop_plugin")))
        .unwrap();
    let grants = Grants::new(
        ConnectorId {
            brand: "bench".into(),
            connector: "noop".into(),
        },
        BTreeMap::new(),
        BTreeMap::new(),
        AllowList::default(),
        IoLimits::default(),
        Arc::new(MemoryStateStore::default()),
    );
    let mut inst = rt.connector(plugin, grants, CallLimits::default());
    let mut group = c.benchmark_group("noop");
    group.bench_function("fresh_instance_plus_poll", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    inst.release();
                    black_box(inst.poll(None).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("warm_poll", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                inst.poll(None).await.unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(inst.poll(None).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn bench_calls(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = runtime(Interruption::Epoch);
    let mut inst = connector(&rt, &tokio);
    println!("allocator in use: {:?}", rt.allocator());
    let mut group = c.benchmark_group("instance");
    group.bench_function("fresh_instance_plus_describe", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    inst.release();
                    black_box(inst.invoke(Call::Describe).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("warm_describe", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                inst.invoke(Call::Describe).await.unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(inst.invoke(Call::Describe).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    let empty_get = WebhookRequest {
        method: "GET".into(),
        ..WebhookRequest::default()
    };
    group.bench_function("warm_webhook_noop", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(inst.invoke(Call::Webhook(empty_get.clone())).await.ok());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn bench_normalise(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let page = page_100();
    let request = WebhookRequest {
        method: "POST".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: page.clone(),
        ..WebhookRequest::default()
    };
    let mut group = c.benchmark_group("normalise_100_messages");
    group.throughput(Throughput::Elements(100));
    group.bench_function("native", |b| {
        b.iter(|| {
            black_box(template_connector::normalize_page(black_box(&page), "acme_care").unwrap())
        })
    });
    for interruption in [Interruption::Epoch, Interruption::Fuel] {
        let rt = runtime(interruption);
        let mut inst = connector(&rt, &tokio);
        let check = tokio
            .block_on(inst.handle_webhook(request.clone()))
            .unwrap();
        assert_eq!(check.messages.len() + check.updates.len(), 100);
        group.bench_function(format!("wasm_{}", interruption.as_str()), |b| {
            b.iter_custom(|iters| {
                tokio.block_on(async {
                    // The native side borrows the page; copies of the request
                    // are made outside the timed region.
                    let mut elapsed = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(64);
                        let requests: Vec<_> =
                            (0..n).map(|_| Call::Webhook(request.clone())).collect();
                        let start = Instant::now();
                        for call in requests {
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

    // The guest code alone: the `guest-bench` plugin runs the same
    // `normalize_page` ROUNDS times per call, so the host's lowering and
    // lifting (once per call) shrink to a 1/ROUNDS share.
    const ROUNDS: u64 = 50;
    let rt = runtime(Interruption::Epoch);
    let mut inst = plugin_instance(&rt, &tokio, "guest_bench_plugin");
    let request = WebhookRequest {
        method: "POST".into(),
        query: vec![("rounds".into(), ROUNDS.to_string())],
        body: page.clone(),
        ..WebhookRequest::default()
    };
    let check = tokio
        .block_on(inst.handle_webhook(request.clone()))
        .unwrap();
    let expected = template_connector::normalize_page(&page, "acme_care")
        .unwrap()
        .messages
        .len();
    assert_eq!(check.response.body, expected.to_string().as_bytes());
    let mut group = c.benchmark_group("normalise_guest_only");
    group.throughput(Throughput::Elements(100 * ROUNDS));
    group.bench_function("wasm_epoch", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let call = Call::Webhook(request.clone());
                    let start = Instant::now();
                    black_box(inst.invoke(call).await.unwrap());
                    elapsed += start.elapsed();
                }
                elapsed
            })
        })
    });
    group.finish();
}

fn bench_load(c: &mut Criterion) {
    let rt = runtime(Interruption::Epoch);
    let bytes = std::fs::read(plugin_path("template_connector")).unwrap();
    let id = digest(&bytes);
    let dir = tempfile::tempdir().unwrap();
    let disk = ComponentCache::new(rt.engine(), Some(dir.path().to_path_buf()));
    let none = ComponentCache::new(rt.engine(), None);
    disk.load(rt.engine(), &bytes, &id).unwrap();
    println!("template_connector.wasm: {} bytes", bytes.len());
    let mut group = c.benchmark_group("load_component");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("from_disk_cache", |b| {
        b.iter(|| black_box(disk.load(rt.engine(), &bytes, &id).unwrap()))
    });
    group.bench_function("compile", |b| {
        b.iter(|| black_box(none.load(rt.engine(), &bytes, &id).unwrap()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench_noop, bench_calls, bench_normalise, bench_load
}
criterion_main!(benches);
