//! The template connector's JSON feed API, served from recorded payloads
//! (`examples/demo/*.json`), one feed per brand, each behind its own bearer
//! token.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// One simulated brand feed.
#[derive(Debug, Clone)]
pub struct Feed {
    pub brand: String,
    /// The brand's own account on the feed (its posts are outbound).
    pub handle: String,
    pub token: String,
    pub items: Vec<Value>,
}

/// The recorded feeds the demo serves.
pub fn recorded_feeds() -> Vec<Feed> {
    let parse = |text: &str| -> Vec<Value> {
        let page: Value = serde_json::from_str(text).expect("recorded demo feed is valid JSON");
        page["data"].as_array().cloned().unwrap_or_default()
    };
    vec![
        Feed {
            brand: "acme".into(),
            handle: "acme_care".into(),
            token: "acme-demo-token-7f3a".into(),
            items: parse(include_str!("../../../../examples/demo/acme.json")),
        },
        Feed {
            brand: "globex".into(),
            handle: "globex_air".into(),
            token: "globex-demo-token-91c2".into(),
            items: parse(include_str!("../../../../examples/demo/globex.json")),
        },
    ]
}

type Feeds = Arc<BTreeMap<String, Feed>>;

async fn messages(
    State(feeds): State<Feeds>,
    Path(brand): Path<String>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(feed) = feeds.get(&brand) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such feed"})),
        )
            .into_response();
    };
    let expected = format!("Bearer {}", feed.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid token"})),
        )
            .into_response();
    }
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(50)
        .max(1);
    let start: usize = q
        .get("after")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
        .min(feed.items.len());
    let end = (start + limit).min(feed.items.len());
    Json(json!({
        "data": &feed.items[start..end],
        "next": end.to_string(),
        "has_more": end < feed.items.len(),
    }))
    .into_response()
}

async fn reply(Path((brand, id)): Path<(String, String)>, Json(body): Json<Value>) -> Json<Value> {
    tracing::info!(%brand, message = %id, text = %body["text"], "simulator received a reply");
    Json(
        json!({"id": format!("reply-to-{id}"), "url": format!("https://feed.example/{brand}/m/reply-to-{id}")}),
    )
}

/// The feed API of every brand in `feeds`, under `/{brand}`.
pub fn router(feeds: &[Feed]) -> Router {
    let map: Feeds = Arc::new(feeds.iter().map(|f| (f.brand.clone(), f.clone())).collect());
    Router::new()
        .route("/{brand}/v1/messages", get(messages))
        .route("/{brand}/v1/messages/{id}/replies", post(reply))
        .with_state(map)
}
