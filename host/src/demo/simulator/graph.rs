//! The Facebook Graph API as far as the connector's poll fallback and
//! actions use it: a page feed whose posts carry their comments, a post's
//! comments, and the write endpoints (comment replies, Messenger sends,
//! hide/unhide, likes). Webhook deliveries are pushed by the demo itself.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};

use super::{bearer, credentials, json, recorded};

/// The demo brand's Facebook page.
pub const PAGE_ID: &str = "104000000000001";

pub fn router() -> Router {
    Router::new().route("/{brand}/{*rest}", any(handle))
}

fn feed() -> Value {
    recorded(include_str!(
        "../../../../examples/demo/facebook/acme-feed.json"
    ))
}

async fn handle(
    method: Method,
    Path((brand, rest)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let token = query
        .get("access_token")
        .map(String::as_str)
        .or_else(|| bearer(&headers));
    if brand != "acme" || token != Some(credentials::GRAPH_PAGE_TOKEN) {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": "Invalid OAuth access token - Cannot parse access token", "type": "OAuthException", "code": 190, "fbtrace_id": "AdemoTrace1"}}),
        );
    }
    // `v21.0/{object}/{edge}`: the version is whatever the connector uses.
    let parts: Vec<&str> = rest.split('/').collect();
    let (object, edge) = match parts.as_slice() {
        [_version, object] => (*object, ""),
        [_version, object, edge] => (*object, *edge),
        _ => ("", ""),
    };
    if method == Method::POST {
        return match edge {
            "comments" => json(
                StatusCode::OK,
                recorded(include_str!(
                    "../../../../examples/demo/facebook/created-comment.json"
                )),
            ),
            "messages" => json(
                StatusCode::OK,
                json!({"recipient_id": "6200000000000001", "message_id": "m_demo_sent_1"}),
            ),
            _ => json(StatusCode::OK, json!({"success": true})),
        };
    }
    match edge {
        "feed" | "posts" | "published_posts" if object == PAGE_ID => json(StatusCode::OK, feed()),
        "comments" => {
            let comments = feed()["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|post| post["id"] == object)
                .map(|post| post["comments"].clone())
                .unwrap_or_else(|| json!({"data": []}));
            json(StatusCode::OK, comments)
        }
        _ => json(StatusCode::OK, json!({"data": []})),
    }
}
