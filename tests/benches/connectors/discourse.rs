//! Discourse: posts normalised per second from a recorded 100-post page of
//! `GET /posts.json`, natively (`discourse_connector::normalize_posts`) and
//! through the `.wasm` in the host (a first `poll`, which fetches that page
//! and an empty `/private-posts.json` from a fake forum on loopback, so the
//! Wasm figure includes two loopback HTTP round trips).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use discourse_connector::{Rules, normalize_posts};
use serde_json::{Value, json};
use webcare::capabilities::{AllowList, ConnectorId, Grants, IoLimits, MemoryStateStore, Secret};
use webcare::runtime::CallLimits;
use webcare_tests::fake_api::FakeApi;
use webcare_tests::fake_discourse::{
    API_KEY, API_USERNAME, FORUM_POSTS, Forum, fixture_posts, router,
};
use webcare_tests::plugins::plugin_path;

/// 100 posts in 10 topics of a support category, newest first, built from
/// the fixture posts (Dutch, Hebrew, emoji; raw and cooked-only bodies);
/// every reply answers the post before it, on the same page.
fn page_100() -> Vec<Value> {
    let templates = fixture_posts(FORUM_POSTS);
    let mut posts: Vec<Value> = (0..100_u64)
        .map(|i| {
            let mut post = templates[(i % templates.len() as u64) as usize].clone();
            let topic = 500 + i / 10;
            let number = i % 10 + 1;
            post["id"] = json!(10_000 + i);
            post["topic_id"] = json!(topic);
            post["post_number"] = json!(number);
            post["category_id"] = json!(7);
            post["reply_to_post_number"] = if number > 1 {
                json!(number - 1)
            } else {
                Value::Null
            };
            post["created_at"] = json!(format!("2026-11-20T09:{:02}:{:02}.000Z", i / 60, i % 60));
            post
        })
        .collect();
    posts.reverse();
    posts
}

pub fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let posts = page_100();
    let body = serde_json::to_vec(&json!({"latest_posts": posts})).unwrap();
    let forum = Forum::new(posts, vec![], 100);
    let api = tokio.block_on(FakeApi::start(router(forum)));
    let rules = Rules::new(
        &api.base_url(),
        API_USERNAME,
        vec![7],
        &["acme router".to_owned()],
    );
    let native_count = normalize_posts(&body, &rules, false).unwrap().len();

    let rt = webcare_tests::runtime();
    let plugin = tokio
        .block_on(rt.load_file(&plugin_path("discourse_connector")))
        .unwrap();
    let settings = BTreeMap::from([
        ("base_url".to_string(), api.base_url()),
        ("api_username".to_string(), API_USERNAME.to_string()),
        ("support_category_ids".to_string(), "7".to_string()),
        ("keywords".to_string(), "acme router".to_string()),
        ("page_size".to_string(), "100".to_string()),
    ]);
    let secrets = BTreeMap::from([("api_key".to_string(), Secret::new(API_KEY))]);
    let grants = Grants::new(
        ConnectorId {
            brand: "bench".into(),
            connector: "discourse".into(),
        },
        settings,
        secrets,
        AllowList::parse(&[api.allow_entry()]).unwrap(),
        IoLimits::default(),
        Arc::new(MemoryStateStore::default()),
    );
    let mut inst = tokio
        .block_on(rt.configured_connector(plugin, grants, CallLimits::default()))
        .unwrap();
    let check = tokio.block_on(inst.poll(None)).unwrap();
    assert_eq!(check.messages.len(), native_count);
    assert!(
        check
            .messages
            .iter()
            .all(|m| m.in_reply_to.is_some() || m.external_id.ends_with('0'))
    );

    let mut group = c.benchmark_group("discourse_normalise_100_posts");
    group
        .throughput(Throughput::Elements(native_count as u64))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("native", |b| {
        b.iter(|| black_box(normalize_posts(black_box(&body), &rules, false).unwrap()))
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
