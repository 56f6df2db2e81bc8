//! A fake X (Twitter) API v2 on loopback, serving the fixtures in
//! `tests/fixtures/twitter/`: the mentions timeline (two pages, then newer
//! posts for a `since_id`), recent search, DM events, and the endpoints the
//! connector's actions call. Each read endpoint can be switched to answer
//! with a rate limit, an exhausted quota, a malformed body or an X problem,
//! and the token can be revoked, so tests drive every path through the real
//! connector. Serve it with [`FakeApi::start`](crate::fake_api::FakeApi::start).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// The bearer token the fake accepts.
pub const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAwebcare-x-test-token";
/// The brand account's id.
pub const BRAND_ID: &str = "1500000000000000001";
/// The brand account's handle.
pub const BRAND_USERNAME: &str = "acme_care";
/// The search query the tests configure.
pub const SEARCH_QUERY: &str = "acme OR #acmehelp";
/// `meta.next_token` of the first mentions page.
pub const MENTIONS_PAGE2_TOKEN: &str = "7140dibdnow9c7btw4p2mentions";
/// The id `POST /2/tweets` answers with (from the recorded tweepy cassette).
pub const CREATED_TWEET_ID: &str = "1456012973835788293";

/// The fixture files, embedded.
pub mod fixtures {
    macro_rules! fixture {
        ($name:ident, $file:literal) => {
            #[doc = concat!("`tests/fixtures/twitter/", $file, "`")]
            pub const $name: &str = include_str!(concat!("../fixtures/twitter/", $file));
        };
    }
    fixture!(MENTIONS_PAGE1, "mentions_page1.json");
    fixture!(MENTIONS_PAGE2, "mentions_page2.json");
    fixture!(MENTIONS_NEWER, "mentions_newer.json");
    fixture!(SEARCH_PAGE, "search_page.json");
    fixture!(DM_EVENTS, "dm_events.json");
    fixture!(DM_EVENTS_NEWER, "dm_events_newer.json");
    fixture!(DM_CREATED, "dm_created.json");
    fixture!(LIKED, "liked.json");
    fixture!(MALFORMED_PAGE, "malformed_page.json");
    fixture!(PROBLEM_401, "problem_401.json");
    fixture!(
        PROBLEM_403_UNSUPPORTED_AUTH,
        "problem_403_unsupported_auth.json"
    );
    fixture!(PROBLEM_403_NOT_ENROLLED, "problem_403_not_enrolled.json");
    fixture!(PROBLEM_429, "problem_429.json");
    fixture!(RECORDED_MENTIONS_PAGE, "v2_users_mentions_page.json");
    fixture!(
        RECORDED_MENTIONS_WITH_INCLUDES,
        "v2_mentions_with_includes.json"
    );
    fixture!(RECORDED_DM_EVENTS, "v2_dm_conversation_events.json");
    fixture!(RECORDED_TWEET_CREATED, "v2_post_tweets_create.json");
}

/// How a read endpoint answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Answer {
    /// The fixtures, with a comfortable `x-rate-limit-remaining`.
    #[default]
    Normal,
    /// The fixtures, with `x-rate-limit-remaining: 0` until `reset` (Unix s).
    Exhausted { reset: u64 },
    /// `429 Too Many Requests` with `x-rate-limit-reset: reset` (Unix s).
    RateLimited { reset: u64 },
    /// `200` with a truncated JSON body.
    Malformed,
    /// An X problem object with this status.
    Problem { status: u16, body: &'static str },
}

/// The fake's switches. Share it with [`FakeX::router`].
#[derive(Default)]
pub struct FakeX {
    mentions: Mutex<Answer>,
    search: Mutex<Answer>,
    dms: Mutex<Answer>,
    actions: Mutex<Answer>,
    revoked: AtomicBool,
    newer_dms: AtomicBool,
    deleted: Mutex<Vec<String>>,
    oauth: Mutex<OAuthGrant>,
}

/// The fake's OAuth 2.0 side: one client, one user grant.
#[derive(Debug)]
struct OAuthGrant {
    /// The refresh token that works now (single use, as X's).
    refresh_token: Option<String>,
    /// Access tokens issued so far; all of them are accepted.
    issued: Vec<String>,
    /// `expires_in` of the tokens it issues, in seconds.
    lifetime_s: u64,
}

impl Default for OAuthGrant {
    fn default() -> Self {
        OAuthGrant {
            refresh_token: Some(OAUTH_SEED_REFRESH_TOKEN.to_owned()),
            issued: Vec::new(),
            lifetime_s: 7200,
        }
    }
}

/// The app's OAuth 2.0 client id the fake knows.
pub const OAUTH_CLIENT_ID: &str = "cGFyaXR5LWNsaWVudC1pZA";
/// Its client secret (a confidential client).
pub const OAUTH_CLIENT_SECRET: &str = "x-client-secret-0f3e9a";
/// The refresh token of the user's first authorisation.
pub const OAUTH_SEED_REFRESH_TOKEN: &str = "bWVudGlvbnMtcmVmcmVzaC0w";

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

impl FakeX {
    /// A fake answering normally.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// How `GET /2/users/{id}/mentions` answers from now on.
    pub fn set_mentions(&self, answer: Answer) {
        *self.mentions.lock().unwrap() = answer;
    }

    /// How `GET /2/tweets/search/recent` answers from now on.
    pub fn set_search(&self, answer: Answer) {
        *self.search.lock().unwrap() = answer;
    }

    /// How `GET /2/dm_events` answers from now on.
    pub fn set_dms(&self, answer: Answer) {
        *self.dms.lock().unwrap() = answer;
    }

    /// How the action endpoints answer from now on.
    pub fn set_actions(&self, answer: Answer) {
        *self.actions.lock().unwrap() = answer;
    }

    /// Every request from now on gets a 401, as after a revoked token.
    pub fn revoke_token(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }

    /// A newer DM (`dm_events_newer.json`) shows on top of the DM events.
    pub fn add_newer_dm(&self) {
        self.newer_dms.store(true, Ordering::SeqCst);
    }

    /// Access tokens issued from now on expire after `seconds`.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.oauth.lock().unwrap().lifetime_s = seconds;
    }

    /// The user revokes the app: no refresh token works any more.
    pub fn revoke_grant(&self) {
        let mut grant = self.oauth.lock().unwrap();
        grant.refresh_token = None;
        grant.issued.clear();
    }

    /// The post `id` is deleted: post lookups answer "Not Found" for it.
    pub fn delete_post(&self, id: &str) {
        self.deleted.lock().unwrap().push(id.to_owned());
    }

    /// The router; serve it with `FakeApi::start`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/2/users/{id}/mentions", get(mentions))
            .route("/2/tweets/search/recent", get(search))
            .route("/2/dm_events", get(dm_events))
            .route("/2/tweets", post(create_tweet).get(lookup_posts))
            .route("/2/oauth2/token", post(oauth_token))
            .route(
                "/2/dm_conversations/with/{participant_id}/messages",
                post(send_dm),
            )
            .route("/2/users/{id}/likes", post(like))
            .with_state(self.clone())
    }

    /// `Some(401)` unless the request carries the valid token.
    fn refuse(&self, headers: &HeaderMap) -> Option<Response> {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok());
        let expected = format!("Bearer {TOKEN}");
        let issued = given
            .and_then(|g| g.strip_prefix("Bearer "))
            .is_some_and(|token| self.oauth.lock().unwrap().issued.iter().any(|t| t == token));
        if (given != Some(expected.as_str()) && !issued) || self.revoked.load(Ordering::SeqCst) {
            return Some(json_response(
                StatusCode::UNAUTHORIZED,
                fixtures::PROBLEM_401,
                &[("www-authenticate", "Bearer realm=\"api.twitter.com\"")],
            ));
        }
        None
    }
}

type Params = Query<BTreeMap<String, String>>;

/// A JSON response with extra headers.
fn json_response(status: StatusCode, body: &str, headers: &[(&'static str, &str)]) -> Response {
    let mut response = (status, body.to_owned()).into_response();
    let map = response.headers_mut();
    map.insert(
        "content-type",
        "application/json; charset=utf-8".parse().unwrap(),
    );
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    response
}

/// Answers `body` per `answer`, with X's rate-limit headers.
fn answer(answer: &Answer, body: &str) -> Response {
    let later = (unix_now() + 900).to_string();
    match answer {
        Answer::Normal => json_response(
            StatusCode::OK,
            body,
            &[
                ("x-rate-limit-limit", "450"),
                ("x-rate-limit-remaining", "448"),
                ("x-rate-limit-reset", &later),
            ],
        ),
        Answer::Exhausted { reset } => json_response(
            StatusCode::OK,
            body,
            &[
                ("x-rate-limit-limit", "450"),
                ("x-rate-limit-remaining", "0"),
                ("x-rate-limit-reset", &reset.to_string()),
            ],
        ),
        Answer::RateLimited { reset } => json_response(
            StatusCode::TOO_MANY_REQUESTS,
            fixtures::PROBLEM_429,
            &[
                ("x-rate-limit-limit", "450"),
                ("x-rate-limit-remaining", "0"),
                ("x-rate-limit-reset", &reset.to_string()),
            ],
        ),
        Answer::Malformed => json_response(StatusCode::OK, fixtures::MALFORMED_PAGE, &[]),
        Answer::Problem { status, body } => json_response(
            StatusCode::from_u16(*status).expect("a valid status"),
            body,
            &[],
        ),
    }
}

/// `since_id` as a number (0 when absent).
fn since(params: &BTreeMap<String, String>) -> u128 {
    params
        .get("since_id")
        .and_then(|id| id.parse().ok())
        .unwrap_or(0)
}

/// X's answer to a search without a query.
const EMPTY_QUERY_PROBLEM: &str = r#"{"errors":[{"parameters":{"query":[]},"message":"The `query` query parameter can not be empty"}],"title":"Invalid Request","detail":"One or more parameters to your request was invalid.","type":"https://api.twitter.com/2/problems/invalid-request"}"#;

/// An empty page, as X sends it.
const EMPTY_PAGE: &str = r#"{"meta":{"result_count":0}}"#;

/// `GET /2/users/{id}/mentions`: page 1, page 2 (by token), then for
/// `since_id` ≥ page 1's newest the newer posts, then nothing.
async fn mentions(
    State(fake): State<Arc<FakeX>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Params,
) -> Response {
    if let Some(refused) = fake.refuse(&headers) {
        return refused;
    }
    let mode = fake.mentions.lock().unwrap().clone();
    if id != BRAND_ID {
        let body = json!({"errors": [{
            "value": id, "detail": format!("Could not find user with id: [{id}]."),
            "title": "Not Found Error", "resource_type": "user", "parameter": "id",
            "resource_id": id, "type": "https://api.twitter.com/2/problems/resource-not-found"
        }]});
        return answer(&mode, &body.to_string());
    }
    let body = if params.get("pagination_token").map(String::as_str) == Some(MENTIONS_PAGE2_TOKEN) {
        fixtures::MENTIONS_PAGE2
    } else {
        match since(&params) {
            0 => fixtures::MENTIONS_PAGE1,
            s if s < 1_991_000_000_000_000_106 => fixtures::MENTIONS_NEWER,
            _ => EMPTY_PAGE,
        }
    };
    answer(&mode, body)
}

/// `GET /2/tweets/search/recent`: one page, then nothing newer.
async fn search(
    State(fake): State<Arc<FakeX>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Response {
    if let Some(refused) = fake.refuse(&headers) {
        return refused;
    }
    let mode = fake.search.lock().unwrap().clone();
    if params.get("query").is_none_or(String::is_empty) {
        return json_response(StatusCode::BAD_REQUEST, EMPTY_QUERY_PROBLEM, &[]);
    }
    let body = if since(&params) >= 1_991_000_000_000_000_202 {
        EMPTY_PAGE
    } else {
        fixtures::SEARCH_PAGE
    };
    answer(&mode, body)
}

/// `GET /2/dm_events`: the DM events (no `since_id` on this endpoint), with
/// a newer one on top once [`FakeX::add_newer_dm`] was called.
async fn dm_events(State(fake): State<Arc<FakeX>>, headers: HeaderMap) -> Response {
    if let Some(refused) = fake.refuse(&headers) {
        return refused;
    }
    let mode = fake.dms.lock().unwrap().clone();
    if !fake.newer_dms.load(Ordering::SeqCst) {
        return answer(&mode, fixtures::DM_EVENTS);
    }
    let mut page: Value = serde_json::from_str(fixtures::DM_EVENTS).unwrap();
    let newer: Value = serde_json::from_str(fixtures::DM_EVENTS_NEWER).unwrap();
    let mut data = newer["data"].as_array().unwrap().clone();
    data.extend(page["data"].as_array().unwrap().iter().cloned());
    page["data"] = Value::Array(data);
    answer(&mode, &page.to_string())
}

/// The action answer, unless the actions are switched to a problem.
fn action_answer(fake: &FakeX, status: StatusCode, body: &str) -> Response {
    match &*fake.actions.lock().unwrap() {
        Answer::Normal => json_response(
            status,
            body,
            &[
                ("x-rate-limit-limit", "200"),
                ("x-rate-limit-remaining", "199"),
            ],
        ),
        other => answer(other, body),
    }
}

/// `POST /2/tweets`: answers with the recorded creation (id
/// [`CREATED_TWEET_ID`]) carrying the posted text.
async fn create_tweet(State(fake): State<Arc<FakeX>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = fake.refuse(&headers) {
        return refused;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            r#"{"title":"Invalid Request"}"#,
            &[],
        );
    };
    let recorded: Value = serde_json::from_str(fixtures::RECORDED_TWEET_CREATED).unwrap();
    let mut created = recorded["body"].clone();
    created["data"]["text"] = request["text"].clone();
    created["data"]["edit_history_tweet_ids"] = json!([CREATED_TWEET_ID]);
    action_answer(&fake, StatusCode::CREATED, &created.to_string())
}

/// `POST /2/dm_conversations/with/{participant_id}/messages`.
async fn send_dm(State(fake): State<Arc<FakeX>>, headers: HeaderMap) -> Response {
    if let Some(refused) = fake.refuse(&headers) {
        return refused;
    }
    action_answer(&fake, StatusCode::CREATED, fixtures::DM_CREATED)
}

/// `POST /2/users/{id}/likes`: only the token's own user may like.
async fn like(
    State(fake): State<Arc<FakeX>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = fake.refuse(&headers) {
        return refused;
    }
    if id != BRAND_ID {
        return json_response(
            StatusCode::FORBIDDEN,
            r#"{"title":"Forbidden","type":"about:blank","status":403,"detail":"You are not permitted to perform this action."}"#,
            &[],
        );
    }
    action_answer(&fake, StatusCode::OK, fixtures::LIKED)
}

/// `GET /2/tweets?ids=…`: every id exists except the deleted ones, which
/// get X's "Not Found Error", as X answers a lookup of a deleted post.
async fn lookup_posts(
    State(x): State<Arc<FakeX>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Response {
    if let Some(refused) = x.refuse(&headers) {
        return refused;
    }
    let deleted = x.deleted.lock().unwrap().clone();
    let (mut data, mut errors) = (Vec::new(), Vec::new());
    for id in params
        .get("ids")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        if deleted.iter().any(|d| d == id) {
            errors.push(json!({
                "value": id,
                "detail": format!("Could not find tweet with ids: [{id}]."),
                "title": "Not Found Error",
                "resource_type": "tweet",
                "parameter": "ids",
                "resource_id": id,
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            }));
        } else if !id.is_empty() {
            data.push(json!({"id": id, "text": "…", "edit_history_tweet_ids": [id]}));
        }
    }
    let mut body = json!({});
    if !data.is_empty() {
        body["data"] = Value::Array(data);
    }
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    answer(&Answer::Normal, &body.to_string())
}

/// `POST /2/oauth2/token` with `grant_type=refresh_token`: a confidential
/// client authenticates with HTTP Basic; each refresh token works once and
/// is replaced by the one issued with the new access token.
async fn oauth_token(State(x): State<Arc<FakeX>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        // The fake's tokens and ids need no percent-decoding.
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let basic = format!(
        "Basic {}",
        BASE64.encode(format!("{OAUTH_CLIENT_ID}:{OAUTH_CLIENT_SECRET}"))
    );
    let client_ok = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&basic);
    let mut grant = x.oauth.lock().unwrap();
    let refresh_ok =
        grant.refresh_token.is_some() && form.get("refresh_token") == grant.refresh_token.as_ref();
    if !client_ok {
        return json_response(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"unauthorized_client","error_description":"Missing valid authorization header"}"#,
            &[],
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") || !refresh_ok {
        return json_response(
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_request","error_description":"Value passed for the token was invalid."}"#,
            &[],
        );
    }
    let n = grant.issued.len() + 1;
    let access = format!("access-{n}");
    let refresh = format!("refresh-{n}");
    grant.issued.push(access.clone());
    grant.refresh_token = Some(refresh.clone());
    let body = json!({
        "token_type": "bearer",
        "expires_in": grant.lifetime_s,
        "access_token": access,
        "scope": "tweet.read users.read dm.read dm.write tweet.write like.write offline.access",
        "refresh_token": refresh,
    });
    json_response(StatusCode::OK, &body.to_string(), &[])
}
