//! A fake Graph API (Page feed, comments, Send API, likes, hiding) serving
//! the recorded and hand-written payloads in `tests/fixtures/facebook`, and a
//! helper that signs webhook bodies as Facebook does.
//!
//! The fake checks credentials like Graph: `Authorization: Bearer {TOKEN}`
//! and `appsecret_proof` = hex HMAC-SHA256 of the token keyed with
//! [`APP_SECRET`]; anything else gets Graph's error 190 (expired token).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The page the fixtures are about (the restfb samples' page id).
pub const PAGE_ID: &str = "1234567890321";
/// The page access token the fake accepts.
pub const TOKEN: &str = "EAAGm0PX4ZCpsBAFakePageToken0123456789";
/// The app secret: signs webhooks and `appsecret_proof`.
pub const APP_SECRET: &str = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c";
/// The webhook verify token.
pub const VERIFY_TOKEN: &str = "webcare-verify-7d1e";
/// The Graph version the fake serves.
pub const VERSION: &str = "v21.0";

/// A fixture file's text. The path is relative to the file that uses the
/// macro, which must sit one level below `tests/` (as `tests/src/` and
/// `tests/tests/` do), so that the host crate's tests can include this
/// module by path too.
#[macro_export]
macro_rules! facebook_fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/facebook/", $name))
    };
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`: the
/// `X-Hub-Signature-256` header Facebook sends with a webhook body.
pub fn sign(body: &[u8], secret: &str) -> String {
    format!("sha256={}", hex::encode(hmac(secret.as_bytes(), body)))
}

/// Graph's `appsecret_proof` for `token`.
pub fn appsecret_proof(token: &str, secret: &str) -> String {
    hex::encode(hmac(secret.as_bytes(), token.as_bytes()))
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Unix seconds of Graph's `2026-11-20T09:00:00+0000` (UTC only).
pub fn graph_time_seconds(text: &str) -> i64 {
    let field =
        |range: std::ops::Range<usize>| -> i64 { text[range].parse().expect("a digit field") };
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    let (hour, minute, second) = (field(11..13), field(14..16), field(17..19));
    // Days from the civil date (H. Hinnant's algorithm, proleptic Gregorian).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hour * 3600 + minute * 60 + second
}

/// The fake's mutable side: comments added by a test after the start
/// (new activity between polls).
#[derive(Clone, Default)]
pub struct FakeGraph {
    extra_comments: Arc<Mutex<Vec<(String, Value)>>>,
    /// How many of the next sends (`POST /{page}/messages`, replies) fail
    /// with Graph's transient error.
    failing_sends: Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeGraph {
    /// Adds `comment` (Graph JSON) under the post `post_id`.
    pub fn add_comment(&self, post_id: &str, comment: Value) {
        self.extra_comments
            .lock()
            .unwrap()
            .push((post_id.to_owned(), comment));
    }

    /// The next `n` sends fail with a `500` and Graph's transient error
    /// (code 2), as when Graph has a hiccup.
    pub fn fail_next_sends(&self, n: usize) {
        self.failing_sends
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether this send is one that fails.
    fn send_fails(&self) -> bool {
        self.failing_sends
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
    }
}

/// Graph's transient "unexpected error" (code 2), retryable.
fn transient() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({"error": {"message": "An unexpected error has occurred. Please retry your request later.", "type": "OAuthException", "is_transient": true, "code": 2}})),
    )
        .into_response()
}

/// Graph's error 190 for a bad or missing token or proof.
fn expired() -> Response {
    let body: Value = serde_json::from_str(facebook_fixture!("graph-error-190.json")).unwrap();
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Whether the request carries the page token and its proof.
fn authorised(headers: &HeaderMap, query: &BTreeMap<String, String>) -> bool {
    let bearer = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    bearer && query.get("appsecret_proof") == Some(&appsecret_proof(TOKEN, APP_SECRET))
}

/// The fake Graph API with `graph` as its mutable state. Routes, under `/v21.0`:
/// `GET /{page}/feed` (two pages: `after` selects the second),
/// `GET /{post}/comments` (filtered by `since`; one page per two comments),
/// `POST /{object}/comments`, `POST /{page}/messages`, `POST /{object}/likes`,
/// `POST /{comment}` (hide/unhide).
pub fn graph_router(graph: FakeGraph) -> Router {
    async fn feed(
        Path(page): Path<String>,
        headers: HeaderMap,
        Query(query): Query<BTreeMap<String, String>>,
    ) -> Response {
        if !authorised(&headers, &query) {
            return expired();
        }
        if page != PAGE_ID {
            return (StatusCode::NOT_FOUND, "unknown page").into_response();
        }
        let body = match query.get("after").map(String::as_str) {
            None => facebook_fixture!("graph-feed-page-1.json"),
            Some("QVFIUmZAfeed1a") => facebook_fixture!("graph-feed-page-2.json"),
            Some(_) => r#"{"data": []}"#,
        };
        let usage = json!({"call_count": 12, "total_time": 4, "total_cputime": 3}).to_string();
        (
            [
                ("content-type", "application/json"),
                ("x-app-usage", usage.as_str()),
            ],
            body.to_owned(),
        )
            .into_response()
    }

    async fn comments(
        State(graph): State<FakeGraph>,
        Path(post): Path<String>,
        headers: HeaderMap,
        Query(query): Query<BTreeMap<String, String>>,
    ) -> Response {
        if !authorised(&headers, &query) {
            return expired();
        }
        let all: BTreeMap<String, Vec<Value>> =
            serde_json::from_str(facebook_fixture!("graph-comments.json")).unwrap();
        let mut list = all.get(&post).cloned().unwrap_or_default();
        list.extend(
            graph
                .extra_comments
                .lock()
                .unwrap()
                .iter()
                .filter(|(on, _)| *on == post)
                .map(|(_, comment)| comment.clone()),
        );
        let since: i64 = query.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
        list.retain(|c| graph_time_seconds(c["created_time"].as_str().unwrap()) >= since);
        // Two comments a page; `after` is the index of the next one.
        let start: usize = query.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let end = (start + 2).min(list.len());
        let page = &list[start.min(end)..end];
        let mut body = json!({"data": page, "paging": {"cursors": {"before": start.to_string(), "after": end.to_string()}}});
        if end < list.len() {
            body["paging"]["next"] = json!(format!(
                "https://graph.facebook.com/{VERSION}/{post}/comments?after={end}"
            ));
        }
        axum::Json(body).into_response()
    }

    async fn reply(
        State(graph): State<FakeGraph>,
        Path(object): Path<String>,
        headers: HeaderMap,
        Query(query): Query<BTreeMap<String, String>>,
    ) -> Response {
        if !authorised(&headers, &query) {
            return expired();
        }
        if graph.send_fails() {
            return transient();
        }
        let suffix = object.rsplit('_').next().unwrap_or_default().to_owned();
        axum::Json(json!({"id": format!("{suffix}_777001")})).into_response()
    }

    async fn messages(
        State(graph): State<FakeGraph>,
        Path(page): Path<String>,
        headers: HeaderMap,
        Query(query): Query<BTreeMap<String, String>>,
        body: axum::body::Bytes,
    ) -> Response {
        if !authorised(&headers, &query) {
            return expired();
        }
        if graph.send_fails() {
            return transient();
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
        if page != PAGE_ID || body["message"]["text"].as_str().is_none() {
            return (StatusCode::BAD_REQUEST, r#"{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100}}"#).into_response();
        }
        let recipient = body["recipient"]["id"].as_str().unwrap_or("2468013579");
        axum::Json(json!({"recipient_id": recipient, "message_id": "m_sent_9f8e7d6c"}))
            .into_response()
    }

    async fn success(
        headers: HeaderMap,
        Query(query): Query<BTreeMap<String, String>>,
    ) -> Response {
        if !authorised(&headers, &query) {
            return expired();
        }
        axum::Json(json!({"success": true})).into_response()
    }

    Router::new()
        .route(&format!("/{VERSION}/{{page}}/feed"), get(feed))
        .route(
            &format!("/{VERSION}/{{post}}/comments"),
            get(comments).post(reply),
        )
        .route(&format!("/{VERSION}/{{page}}/messages"), post(messages))
        .route(&format!("/{VERSION}/{{object}}/likes"), post(success))
        .route(&format!("/{VERSION}/{{object}}"), post(success))
        .with_state(graph)
}
