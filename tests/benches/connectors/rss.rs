//! RSS/Atom: items normalised per second from a recorded 100-item RSS 2.0
//! forum feed, natively (`rss_connector::normalize_feed`) and through the
//! `.wasm` in the host (a first `poll` with `backfill = 100`, which fetches
//! the feed from a fake server on loopback, so the Wasm figure includes one
//! loopback HTTP round trip).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use rss_connector::normalize_feed;
use webcare::capabilities::{AllowList, ConnectorId, Grants, IoLimits, MemoryStateStore};
use webcare::runtime::CallLimits;
use webcare_tests::fake_api::FakeApi;
use webcare_tests::fake_rss::{FORUM_RSS, FeedSite, router};
use webcare_tests::plugins::plugin_path;

/// The fixture feed's three items repeated to 100, each with its own guid,
/// link and date.
fn feed_100() -> String {
    let start = FORUM_RSS.find("<item>").unwrap();
    let end = FORUM_RSS.rfind("</item>").unwrap() + "</item>".len();
    let items: Vec<&str> = FORUM_RSS[start..end]
        .split_inclusive("</item>")
        .map(str::trim)
        .collect();
    let mut body = String::from(&FORUM_RSS[..start]);
    for i in 0..100 {
        let item = items[i % items.len()]
            .replace("-topic-", &format!("-topic-{i}-"))
            .replace("</link>", &format!("?n={i}</link>"))
            .replace("20 Nov 2026", &format!("{:02} Nov 2026", 1 + i % 28));
        body.push_str(&item);
        body.push('\n');
    }
    body.push_str(&FORUM_RSS[end..]);
    body
}

pub fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = feed_100();
    let now_ms = 1_795_166_100_000;
    let native_count = normalize_feed(body.as_bytes(), false, now_ms)
        .unwrap()
        .len();
    assert_eq!(native_count, 100);
    let site = FeedSite::new(&body, "application/rss+xml", None, None);
    let api = tokio.block_on(FakeApi::start(router(site)));

    let rt = webcare_tests::runtime();
    let plugin = tokio
        .block_on(rt.load_file(&plugin_path("rss_connector")))
        .unwrap();
    let settings = BTreeMap::from([
        ("feed_url".to_string(), format!("{}/feed", api.base_url())),
        ("backfill".to_string(), "100".to_string()),
    ]);
    let grants = Grants::new(
        ConnectorId {
            brand: "bench".into(),
            connector: "rss".into(),
        },
        settings,
        BTreeMap::new(),
        AllowList::parse(&[api.allow_entry()]).unwrap(),
        IoLimits::default(),
        Arc::new(MemoryStateStore::default()),
    );
    let mut inst = tokio
        .block_on(rt.configured_connector(plugin, grants, CallLimits::default()))
        .unwrap();
    let check = tokio.block_on(inst.poll(None)).unwrap();
    assert_eq!(check.messages.len(), native_count);

    let mut group = c.benchmark_group("rss_normalise_100_items");
    group
        .throughput(Throughput::Elements(native_count as u64))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("native", |b| {
        b.iter(|| black_box(normalize_feed(black_box(body.as_bytes()), false, now_ms).unwrap()))
    });
    group.bench_function("wasm_first_poll", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
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
