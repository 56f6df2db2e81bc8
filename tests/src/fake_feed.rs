//! A fake JSON feed API in the format the template connector speaks
//! (documented in `examples/template-connector/README.md`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The bearer token the fake feed accepts.
pub const TOKEN: &str = "feed-token-0123456789";

fn item(id: &str, text: &str, author: &str, created: &str) -> Value {
    json!({
        "id": id,
        "conversation_id": "conv-1",
        "type": "mention",
        "to_brand": true,
        "author": {"id": format!("u-{author}"), "username": author, "name": author.to_uppercase(), "followers": 1200, "verified": false},
        "text": text,
        "lang": "nl",
        "created_at": created,
        "url": format!("https://feed.example/m/{id}"),
        "likes": 3
    })
}

/// Three pages of the feed, with emoji, right-to-left and Dutch text.
pub fn feed_items() -> Vec<Value> {
    vec![
        item(
            "m1",
            "Mijn pakket is nog steeds niet bezorgd 😡 #vertraging",
            "jan",
            "2026-11-20T09:15:00Z",
        ),
        item(
            "m2",
            "مرحبا، طلبي لم يصل بعد",
            "layla",
            "2026-11-20T09:16:30Z",
        ),
        item(
            "m3",
            "Bedankt voor de snelle hulp! 🙏🏽👍",
            "eva",
            "2026-11-20T10:00:00+01:00",
        ),
        {
            let mut v = item("m4", "edited text", "jan", "2026-11-20T11:00:00Z");
            v["edited_at"] = json!("2026-11-20T11:05:00Z");
            v
        },
        {
            let mut v = item("m5", "", "piet", "2026-11-20T12:00:00Z");
            v["deleted"] = json!(true);
            v
        },
    ]
}

/// The fake feed API: pages of `page_size` (query `limit`), cursor `after`
/// = index of the next item; requires the bearer token.
pub fn feed_router() -> Router {
    async fn messages(headers: HeaderMap, Query(q): Query<BTreeMap<String, String>>) -> Response {
        if headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {TOKEN}"))
        {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid token"})),
            )
                .into_response();
        }
        let items = feed_items();
        let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
        let start: usize = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let end = (start + limit).min(items.len());
        let page = &items[start.min(items.len())..end];
        let has_more = end < items.len();
        Json(json!({"data": page, "next": end.to_string(), "has_more": has_more})).into_response()
    }
    async fn reply(Json(body): Json<Value>) -> Json<Value> {
        let private = body["private"].as_bool().unwrap_or(false);
        Json(
            json!({"id": if private { "dm-77" } else { "r-42" }, "url": "https://feed.example/m/r-42"}),
        )
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(10)).await;
        "late"
    }
    Router::new()
        .route("/v1/messages", get(messages))
        .route("/v1/messages/{id}/replies", post(reply))
        .route("/slow", get(slow))
}

/// The text of backlog message `n` (Dutch, with an emoji, so every store
/// round-trips non-ASCII text).
pub fn backlog_text(n: usize) -> String {
    format!("Mijn bestelling {n} is nog niet binnen 📦 kunnen jullie helpen?")
}

/// A channel with a backlog of `total` generated messages, paged like the
/// feed API (query `limit`, default 50; cursor `after` = index of the next
/// message), for ingest tests and benchmarks. Message `n` has the id
/// `{prefix}m{n}`, belongs to thread `{prefix}t{n / thread_size}` and has
/// the text [`backlog_text`]`(n)`; its author is one of 997. Items are
/// rendered once, here, so serving a page costs a copy, not the bench's
/// time; `delay` holds every page back, to stand for a slow channel. No
/// token is checked.
pub fn backlog_router(prefix: &str, total: usize, thread_size: usize, delay: Duration) -> Router {
    let items: Vec<String> = (0..total)
        .map(|n| {
            let author = n % 997;
            json!({
                "id": format!("{prefix}m{n}"),
                "conversation_id": format!("{prefix}t{}", n / thread_size),
                "type": "mention",
                "to_brand": true,
                "author": {"id": format!("u{author}"), "username": format!("klant{author}"), "name": "Klant", "followers": n % 5000},
                "text": backlog_text(n),
                "lang": "nl",
                "created_at": "2026-11-24T08:00:00Z",
                "url": format!("https://feed.example/m/{prefix}{n}")
            })
            .to_string()
        })
        .collect();
    let items = std::sync::Arc::new(items);
    Router::new().route(
        "/v1/messages",
        get(move |Query(q): Query<BTreeMap<String, String>>| {
            let items = std::sync::Arc::clone(&items);
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(50);
                let start = q
                    .get("after")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0usize)
                    .min(items.len());
                let end = (start + limit).min(items.len());
                let body = format!(
                    r#"{{"data":[{}],"next":"{end}","has_more":{}}}"#,
                    items[start..end].join(","),
                    end < items.len()
                );
                ([("content-type", "application/json")], body)
            }
        }),
    )
}
