//! A fake Discourse forum API: `GET /posts.json` and
//! `GET /private-posts.json` (newest first, `before=<id>` inclusive, a fixed
//! page size, as Discourse's `PostsController#latest` serves them),
//! `GET /posts/by_number/{topic}/{number}.json`, and `POST /posts.json`
//! (replies and private messages, which then show up in the lists).
//!
//! Every call needs `Api-Key: API_KEY` and `Api-Username: API_USERNAME`,
//! else it gets Discourse's `403 invalid_access`. Tests change the forum
//! between polls through [`Forum`] and can make any path answer a canned
//! response with [`Forum::fail`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// The API key the fake forum accepts.
pub const API_KEY: &str = "d1sc0urse-api-key-0123456789abcdef";
/// The API username the fake forum accepts (the brand's account).
pub const API_USERNAME: &str = "acme_care";
/// Discourse's answer to a wrong or revoked key.
pub const INVALID_ACCESS: &str = r#"{"errors":["You are not permitted to view the requested resource. The API username or key is invalid."],"error_type":"invalid_access"}"#;

/// The public posts the forum starts with in the tests: the upstream
/// `posts_latest.json` sample (ids 2–15, nothing of interest to the brand).
pub const UPSTREAM_POSTS: &str = include_str!("../fixtures/discourse/posts_latest.json");
/// Nine newer public posts (ids 101–109), written for webcare: a support
/// category thread in Dutch with the brand's answer, a Hebrew @-mention,
/// keyword hits, a look-alike handle and posts of no interest.
pub const FORUM_POSTS: &str = include_str!("../fixtures/discourse/forum_posts.json");
/// One private message to the brand (id 110).
pub const PRIVATE_POSTS: &str = include_str!("../fixtures/discourse/private_posts.json");
/// A `post_created` webhook body (post 111).
pub const WEBHOOK_POST_CREATED: &str =
    include_str!("../fixtures/discourse/webhook_post_created.json");

/// The posts of a list fixture (`latest_posts` or `private_posts`), newest first.
pub fn fixture_posts(fixture: &str) -> Vec<Value> {
    let json: Value = serde_json::from_str(fixture).expect("fixture is JSON");
    json.get("latest_posts")
        .or_else(|| json.get("private_posts"))
        .and_then(Value::as_array)
        .cloned()
        .expect("fixture has a post list")
}

/// A canned answer for one path.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The forum's state, shared with the test.
#[derive(Debug)]
pub struct Forum {
    /// Public posts, any order (served newest id first).
    pub public: Vec<Value>,
    /// Private-message posts visible to the API user.
    pub private: Vec<Value>,
    /// Posts per page of the lists (Discourse: 50).
    pub page_size: usize,
    /// Posts created through `POST /posts.json`.
    pub created: Vec<Value>,
    /// Paths answering a canned response instead.
    pub canned: HashMap<String, Canned>,
    next_id: u64,
}

impl Forum {
    /// A forum holding `public` and `private` posts.
    pub fn new(public: Vec<Value>, private: Vec<Value>, page_size: usize) -> Arc<Mutex<Forum>> {
        Arc::new(Mutex::new(Forum {
            public,
            private,
            page_size,
            created: Vec::new(),
            canned: HashMap::new(),
            next_id: 1000,
        }))
    }

    /// Makes `path` answer `status` with `headers` and `body`.
    pub fn fail(&mut self, path: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        self.canned.insert(
            path.to_owned(),
            Canned {
                status,
                headers: headers
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect(),
                body: body.to_owned(),
            },
        );
    }

    /// The post with `id`, public or private, for changing it in place.
    pub fn post_mut(&mut self, id: u64) -> &mut Value {
        self.public
            .iter_mut()
            .chain(self.private.iter_mut())
            .find(|post| post["id"] == id)
            .expect("post exists")
    }
}

type Shared = Arc<Mutex<Forum>>;

/// The fake API over `forum`.
pub fn router(forum: Shared) -> Router {
    Router::new()
        .route("/posts.json", get(latest).post(create))
        .route("/private-posts.json", get(private_latest))
        .route("/posts/by_number/{topic}/{number}", get(by_number))
        .with_state(forum)
}

/// The canned answer for `uri`'s path, or a 403 when the credentials are
/// wrong; `None` to serve normally.
fn gate(forum: &Forum, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    if let Some(canned) = forum.canned.get(uri.path()) {
        let mut response = (
            StatusCode::from_u16(canned.status).expect("status"),
            canned.body.clone(),
        )
            .into_response();
        for (name, value) in &canned.headers {
            response.headers_mut().insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        return Some(response);
    }
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if header("api-key") != Some(API_KEY) || header("api-username") != Some(API_USERNAME) {
        return Some(
            (
                StatusCode::FORBIDDEN,
                [("content-type", "application/json")],
                INVALID_ACCESS,
            )
                .into_response(),
        );
    }
    None
}

/// One page of `posts`: ids at or below `before`, newest first.
fn page(posts: &[Value], before: Option<u64>, page_size: usize) -> Vec<Value> {
    let mut posts: Vec<Value> = posts
        .iter()
        .filter(|post| before.is_none_or(|before| post["id"].as_u64().unwrap_or(0) <= before))
        .cloned()
        .collect();
    posts.sort_by_key(|post| std::cmp::Reverse(post["id"].as_u64().unwrap_or(0)));
    posts.truncate(page_size);
    posts
}

async fn latest(
    State(forum): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let forum = forum.lock().unwrap();
    if let Some(response) = gate(&forum, &uri, &headers) {
        return response;
    }
    let before = query.get("before").and_then(|before| before.parse().ok());
    Json(json!({"latest_posts": page(&forum.public, before, forum.page_size)})).into_response()
}

async fn private_latest(
    State(forum): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let forum = forum.lock().unwrap();
    if let Some(response) = gate(&forum, &uri, &headers) {
        return response;
    }
    let before = query.get("before").and_then(|before| before.parse().ok());
    Json(json!({"private_posts": page(&forum.private, before, forum.page_size)})).into_response()
}

async fn by_number(
    State(forum): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Path((topic, number)): Path<(u64, String)>,
) -> Response {
    let forum = forum.lock().unwrap();
    if let Some(response) = gate(&forum, &uri, &headers) {
        return response;
    }
    let number: u64 = match number.trim_end_matches(".json").parse() {
        Ok(number) => number,
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    };
    match forum
        .public
        .iter()
        .chain(forum.private.iter())
        .find(|post| post["topic_id"] == topic && post["post_number"] == number)
    {
        Some(post) => Json(post.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"errors": ["The requested URL or resource could not be found."], "error_type": "not_found"})),
        )
            .into_response(),
    }
}

/// `POST /posts.json`: a reply (`topic_id`) or a new private message
/// (`archetype: private_message`), created as the API user.
async fn create(
    State(forum): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut forum = forum.lock().unwrap();
    if let Some(response) = gate(&forum, &uri, &headers) {
        return response;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    let raw = request["raw"].as_str().unwrap_or_default().to_owned();
    if raw.chars().count() < 5 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"action": "create_post", "errors": ["Body is too short (minimum is 5 characters)"]})),
        )
            .into_response();
    }
    forum.next_id += 1;
    let id = forum.next_id;
    let private = request["archetype"] == "private_message";
    let (topic_id, post_number, slug, title) = if private {
        let title = request["title"].as_str().unwrap_or_default().to_owned();
        (id + 5000, 1, "re-private".to_owned(), title)
    } else {
        let Some(topic_id) = request["topic_id"].as_u64() else {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"errors": ["topic_id is missing"]})),
            )
                .into_response();
        };
        let in_topic: Vec<&Value> = forum
            .public
            .iter()
            .chain(forum.private.iter())
            .filter(|post| post["topic_id"] == topic_id)
            .collect();
        let number = in_topic
            .iter()
            .filter_map(|post| post["post_number"].as_u64())
            .max()
            .unwrap_or(0)
            + 1;
        let first = in_topic.first();
        let slug = first
            .and_then(|post| post["topic_slug"].as_str())
            .unwrap_or("topic")
            .to_owned();
        let title = first
            .and_then(|post| post["topic_title"].as_str())
            .unwrap_or_default()
            .to_owned();
        (topic_id, number, slug, title)
    };
    let post = json!({
        "id": id, "name": "Acme Support", "username": API_USERNAME, "user_id": 2,
        "created_at": "2026-11-20T10:00:00.000Z", "updated_at": "2026-11-20T10:00:00.000Z",
        "cooked": format!("<p>{raw}</p>"), "raw": raw, "post_number": post_number, "post_type": 1,
        "reply_to_post_number": request["reply_to_post_number"], "reply_count": 0,
        "topic_id": topic_id, "topic_slug": slug, "topic_title": title, "category_id": if private { Value::Null } else { json!(7) },
        "version": 1, "hidden": false, "deleted_at": null, "actions_summary": []
    });
    forum.created.push(request);
    if private {
        forum.private.push(post.clone());
    } else {
        forum.public.push(post.clone());
    }
    Json(post).into_response()
}
