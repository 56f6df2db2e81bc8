//! X (Twitter) connector: posts normalised per second from a realistic
//! 100-post mentions page (with `includes.users`/`includes.media`), through
//! the `.wasm` in the real host (a `poll` against the fake X API on
//! loopback, so one HTTP round trip per page is included) and through
//! `twitter_connector::normalize_tweets` natively, in one run.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use criterion::{Criterion, Throughput};
use serde_json::{Value, json};
use twitter_connector::{Brand, TweetStream, normalize_tweets};
use webcare::capabilities::{AllowList, ConnectorId, Grants, IoLimits, MemoryStateStore, Secret};
use webcare::runtime::CallLimits;
use webcare_tests::fake_api::FakeApi;
use webcare_tests::fake_twitter::{BRAND_ID, BRAND_USERNAME, TOKEN, fixtures};
use webcare_tests::plugins::plugin_path;

/// A mentions page of 100 posts by 20 authors, built from the fixtures'
/// texts (Dutch, Arabic, Hebrew, emoji, entities), every fifth with a photo.
fn page_100() -> Vec<u8> {
    let samples: Vec<Value> = [fixtures::MENTIONS_PAGE1, fixtures::MENTIONS_PAGE2]
        .iter()
        .flat_map(|page| {
            let page: Value = serde_json::from_str(page).unwrap();
            page["data"].as_array().unwrap().clone()
        })
        .collect();
    let data: Vec<Value> = (0..100u64)
        .rev()
        .map(|i| {
            let mut tweet = samples[i as usize % samples.len()].clone();
            let id = format!("{}", 1_991_000_000_000_010_000 + i);
            tweet["id"] = json!(id);
            tweet["edit_history_tweet_ids"] = json!([id]);
            tweet["author_id"] = json!(format!("{}", 1_100_000_000_000_000_100 + i % 20));
            tweet["created_at"] = json!(format!("2026-11-20T09:{:02}:{:02}.000Z", i / 60, i % 60));
            if i % 5 == 0 {
                tweet["attachments"] = json!({"media_keys": [format!("3_{id}")]});
            } else if let Some(object) = tweet.as_object_mut() {
                object.remove("attachments");
            }
            tweet
        })
        .collect();
    let users: Vec<Value> = (0..20u64)
        .map(|u| {
            json!({"id": format!("{}", 1_100_000_000_000_000_100 + u), "username": format!("klant_{u}"),
                   "name": format!("Klant {u} 🌷"), "verified": u % 7 == 0, "verified_type": "none",
                   "public_metrics": {"followers_count": 100 + u * 37}})
        })
        .collect();
    let media: Vec<Value> = (0..100u64)
        .filter(|i| i % 5 == 0)
        .map(|i| {
            json!({"media_key": format!("3_{}", 1_991_000_000_000_010_000 + i), "type": "photo",
                   "url": format!("https://pbs.twimg.com/media/{i}.jpg"), "alt_text": "foto van de doos"})
        })
        .collect();
    serde_json::to_vec(&json!({
        "data": data,
        "includes": {"users": users, "media": media},
        "meta": {"result_count": 100, "newest_id": "1991000000000010099", "oldest_id": "1991000000000010000"}
    }))
    .unwrap()
}

pub fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let page = page_100();
    let brand = Brand {
        user_id: BRAND_ID,
        username: BRAND_USERNAME,
    };
    let check = normalize_tweets(&page, brand, TweetStream::Mentions, None).unwrap();
    assert_eq!(check.messages.len(), 100);

    let served = page.clone();
    let router = Router::new().route(
        "/2/users/{id}/mentions",
        get(move || {
            let body = served.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let api = tokio.block_on(FakeApi::start(router));
    let rt = webcare_tests::runtime();
    let plugin = tokio
        .block_on(rt.load_file(&plugin_path("twitter_connector")))
        .unwrap();
    let settings = BTreeMap::from(
        [
            ("api_base_url", api.base_url()),
            ("brand_user_id", BRAND_ID.to_owned()),
            ("brand_username", BRAND_USERNAME.to_owned()),
            ("direct_messages", "false".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let grants = Grants::new(
        ConnectorId {
            brand: "bench".into(),
            connector: "twitter".into(),
        },
        settings,
        BTreeMap::from([("bearer_token".to_owned(), Secret::new(TOKEN))]),
        AllowList::parse(&[api.allow_entry()]).unwrap(),
        IoLimits::default(),
        Arc::new(MemoryStateStore::default()),
    );
    let mut x = tokio
        .block_on(rt.configured_connector(plugin, grants, CallLimits::default()))
        .unwrap();
    let polled = tokio.block_on(x.poll(None)).unwrap();
    assert_eq!(polled.messages.len(), 100);

    let mut group = c.benchmark_group("twitter_normalise_100_posts");
    group.throughput(Throughput::Elements(100));
    group.bench_function("native", |b| {
        b.iter(|| {
            black_box(
                normalize_tweets(black_box(&page), brand, TweetStream::Mentions, None).unwrap(),
            )
        })
    });
    group.bench_function("wasm_poll_loopback", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(x.poll(None).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    drop(api);
}
