//! Discourse as far as the connector uses it: the latest public and private
//! posts (paged backwards with `before`), a topic's posts, one post by its
//! number, and creating posts.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};

use super::{credentials, json, recorded};

pub fn router() -> Router {
    Router::new().route("/{brand}/{*rest}", any(handle))
}

fn posts() -> Vec<Value> {
    recorded(include_str!(
        "../../../../examples/demo/discourse/globex-posts.json"
    ))["latest_posts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn private_posts() -> Vec<Value> {
    recorded(include_str!(
        "../../../../examples/demo/discourse/globex-private-posts.json"
    ))["private_posts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn handle(
    method: Method,
    Path((brand, rest)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let key = headers.get("api-key").and_then(|v| v.to_str().ok());
    if brand != "globex" || key != Some(credentials::DISCOURSE_API_KEY) {
        return json(
            StatusCode::FORBIDDEN,
            json!({"errors": ["You are not permitted to view the requested resource. The API username or key is invalid."], "error_type": "invalid_access"}),
        );
    }
    if method == Method::POST && rest == "posts.json" {
        return json(
            StatusCode::OK,
            recorded(include_str!(
                "../../../../examples/demo/discourse/created-post.json"
            )),
        );
    }
    if rest == "private-posts.json" {
        let before: Option<u64> = query.get("before").and_then(|b| b.parse().ok());
        let page: Vec<Value> = private_posts()
            .into_iter()
            .filter(|p| before.is_none_or(|b| p["id"].as_u64().is_some_and(|id| id < b)))
            .collect();
        return json(StatusCode::OK, json!({"private_posts": page}));
    }
    // `posts/by_number/{topic}/{number}.json`: one post of a topic.
    if let Some(path) = rest.strip_prefix("posts/by_number/") {
        let mut parts = path.trim_end_matches(".json").split('/');
        let topic: Option<u64> = parts.next().and_then(|t| t.parse().ok());
        let number: Option<u64> = parts.next().and_then(|n| n.parse().ok());
        if let Some(post) = posts().into_iter().find(|p| {
            topic.is_some()
                && p["topic_id"].as_u64() == topic
                && p["post_number"].as_u64() == number
        }) {
            return json(StatusCode::OK, post);
        }
        return json(
            StatusCode::NOT_FOUND,
            json!({"errors": ["The requested URL or resource could not be found."], "error_type": "not_found"}),
        );
    }
    if rest == "posts.json" {
        let before: Option<u64> = query.get("before").and_then(|b| b.parse().ok());
        let page: Vec<Value> = posts()
            .into_iter()
            .filter(|p| before.is_none_or(|b| p["id"].as_u64().is_some_and(|id| id < b)))
            .collect();
        return json(StatusCode::OK, json!({"latest_posts": page}));
    }
    // `t/{slug}/{id}/posts.json`, `t/{id}/posts.json` or `t/{id}.json`.
    if let Some(topic) = rest.strip_prefix("t/") {
        let id: Option<u64> = topic
            .trim_end_matches(".json")
            .trim_end_matches("/posts")
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok());
        let mut in_topic: Vec<Value> = posts()
            .into_iter()
            .filter(|p| id.is_some() && p["topic_id"].as_u64() == id)
            .collect();
        in_topic.sort_by_key(|p| p["post_number"].as_u64());
        let title = in_topic.first().map(|p| p["topic_title"].clone());
        return json(
            StatusCode::OK,
            json!({"id": id, "title": title, "post_stream": {"posts": in_topic}}),
        );
    }
    if rest == "latest.json" || rest.starts_with("c/") {
        return json(
            StatusCode::OK,
            json!({"users": [], "topic_list": {"topics": []}}),
        );
    }
    json(
        StatusCode::NOT_FOUND,
        json!({"errors": ["The requested URL or resource could not be found."], "error_type": "not_found"}),
    )
}
