//! X API v2 as far as the Twitter/X connector uses it: mentions, recent
//! search and DM events (with `since_id` honoured, so a second poll returns
//! only what is newer), and the write endpoints for replies, DMs and likes.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};

use super::{bearer, credentials, json, recorded};

pub fn router() -> Router {
    Router::new().route("/{brand}/{*rest}", any(handle))
}

fn page(brand: &str, rest: &str) -> Option<Value> {
    if brand != "acme" {
        return None;
    }
    let text = if rest.ends_with("/mentions") {
        include_str!("../../../../examples/demo/twitter/acme-mentions.json")
    } else if rest == "2/tweets/search/recent" {
        include_str!("../../../../examples/demo/twitter/acme-search.json")
    } else if rest == "2/dm_events" {
        include_str!("../../../../examples/demo/twitter/acme-dm-events.json")
    } else {
        return None;
    };
    Some(recorded(text))
}

/// Tweet and event ids are decimal strings of up to 19 digits: compare them
/// as numbers.
fn newer(id: &str, since: &str) -> bool {
    match (id.parse::<u128>(), since.parse::<u128>()) {
        (Ok(id), Ok(since)) => id > since,
        _ => true,
    }
}

async fn handle(
    method: Method,
    Path((brand, rest)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if brand != "acme" || bearer(&headers) != Some(credentials::X_BEARER) {
        return json(
            StatusCode::UNAUTHORIZED,
            json!({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}),
        );
    }
    if method == Method::POST {
        return post(&rest);
    }
    let Some(mut page) = page(&brand, &rest) else {
        return json(
            StatusCode::NOT_FOUND,
            json!({"errors": [{"message": format!("no simulated endpoint /{rest}")}], "title": "Not Found Error", "status": 404}),
        );
    };
    if let Some(since) = query.get("since_id") {
        let data: Vec<Value> = page["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["id"].as_str().is_some_and(|id| newer(id, since)))
            .cloned()
            .collect();
        if data.is_empty() {
            return json(StatusCode::OK, json!({"meta": {"result_count": 0}}));
        }
        page["meta"]["result_count"] = json!(data.len());
        page["data"] = Value::Array(data);
    }
    json(StatusCode::OK, page)
}

fn post(rest: &str) -> Response {
    if rest == "2/tweets" {
        let created = include_str!("../../../../examples/demo/twitter/created-tweet.json");
        return json(StatusCode::CREATED, recorded(created));
    }
    if rest.starts_with("2/dm_conversations/") {
        return json(
            StatusCode::CREATED,
            json!({"data": {"dm_conversation_id": "1400000000000000011-1300000000000000001", "dm_event_id": "1861000000000000998"}}),
        );
    }
    if rest.ends_with("/likes") {
        return json(StatusCode::OK, json!({"data": {"liked": true}}));
    }
    json(
        StatusCode::NOT_FOUND,
        json!({"title": "Not Found Error", "status": 404}),
    )
}
