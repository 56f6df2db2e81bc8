//! Outbound HTTP, carried out by the host (`http.send` in the contract).
//!
//! Only hosts on the connector's allow-list can be reached; anything else
//! fails with [`Error::NotAllowed`] before a byte is sent.
//!
//! ```no_run
//! # fn main() -> webcare_plugin::Result<()> {
//! use webcare_plugin::http::Request;
//!
//! #[derive(serde::Deserialize)]
//! struct Me {
//!     id: String,
//! }
//!
//! let me: Me = Request::get("https://api.example.com/v1/me")
//!     .bearer("token")
//!     .query(&[("fields", "id,name")])
//!     .timeout_ms(5_000)
//!     .send()?
//!     .error_for_status()?
//!     .json()?;
//! # let _ = me.id;
//! # Ok(())
//! # }
//! ```
//!
//! # How failures map to [`Error`]
//!
//! Transport failures ([`Request::send`]):
//!
//! | host says | error |
//! |---|---|
//! | URL not on the allow-list | [`Error::NotAllowed`], naming the URL |
//! | timeout, DNS/TCP/TLS failure | [`Error::Transient`] |
//! | body over the size cap, malformed request, too many redirects | [`Error::InvalidInput`] |
//!
//! Status codes ([`Response::error_for_status`]):
//!
//! | status | error |
//! |---|---|
//! | 429 | [`Error::RateLimited`]; wait from `retry-after` (seconds or HTTP-date), else `x-rate-limit-reset` (Unix seconds), else 60 s; at least 1 s |
//! | 401 | [`Error::Unauthorized`], `expired` when `www-authenticate` or the body mention "expired" |
//! | 403 | [`Error::Unauthorized`] with a missing scope when the response names one (see below) |
//! | 503 with `retry-after` | [`Error::RateLimited`], waiting as the header says |
//! | 408, other 5xx | [`Error::Transient`] |
//! | other 4xx | [`Error::InvalidInput`] |
//!
//! A 403 names a missing scope, in this order of preference, when:
//! `www-authenticate` carries `error="insufficient_scope"` (RFC 6750; the
//! `scope` parameter if present), an `x-access-level` header reports the
//! token's level (X/Twitter), or the JSON body has a string field
//! `missing_scope`, `required_scope` or `scope`, at the top level or inside
//! an `error` object.
//!
//! Error details name the method and the URL without its query string (which
//! may carry credentials) and an excerpt of the response body.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::webcare::connector::http as host;
use crate::types::find_pair;
use crate::{Error, Result, clock, time};

pub use host::Method;

/// Characters left alone by [`encode_component`]: RFC 3986 "unreserved".
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Wait after a 429 when the response does not say how long.
const DEFAULT_RETRY_AFTER_MS: u64 = 60_000;
/// Shortest wait after a 429, so a clock skew cannot make the host hammer.
const MIN_RETRY_AFTER_MS: u64 = 1_000;
/// Longest body excerpt quoted in an error detail, in characters.
const EXCERPT_CHARS: usize = 200;

/// Percent-encodes `text` for use as one URL path segment or query
/// component: everything but ASCII letters, digits and `-._~` is encoded,
/// as UTF-8 bytes.
///
/// ```
/// assert_eq!(webcare_plugin::http::encode_component("a b/ü"), "a%20b%2F%C3%BC");
/// ```
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// The upper-case name of an HTTP method.
pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
    }
}

/// An outgoing request, built step by step and sent with [`send`](Self::send).
#[must_use = "a request does nothing until it is sent"]
#[derive(Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout_ms: Option<u32>,
}

impl Request {
    /// A request with `method` to the absolute URL `url`.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `HEAD` request.
    pub fn head(url: impl Into<String>) -> Self {
        Self::new(Method::Head, url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::Put, url)
    }

    /// A `PATCH` request.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(Method::Patch, url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    /// Sets header `name` to `value`, replacing any earlier value of a header
    /// with the same name (compared case-insensitively).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers
            .retain(|(key, _)| !key.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Sets `authorization: Bearer {token}`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Appends query parameters, percent-encoded with [`encode_component`],
    /// after any query the URL already has (and before a `#fragment`).
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        append_query(&mut self.url, pairs);
        self
    }

    /// Sends `value` as a JSON body with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value).map_err(|error| {
            Error::invalid_input(format!("request body cannot be written as JSON: {error}"))
        })?;
        Ok(self.body("application/json", body))
    }

    /// Sends `pairs` as an `application/x-www-form-urlencoded` body (OAuth
    /// token endpoints, classic form APIs).
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.body("application/x-www-form-urlencoded", body.into_bytes())
    }

    /// Sends `body` with the given `content-type`.
    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self.header("content-type", content_type)
    }

    /// Gives up after `timeout_ms` milliseconds (the host caps it at the
    /// connector's limit; without this call that limit applies).
    pub fn timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }

    /// The URL as built so far, including the query.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends the request through the host and waits for the whole response.
    /// Any status counts as a response here; call
    /// [`Response::error_for_status`] to turn error statuses into [`Error`]s.
    pub fn send(self) -> Result<Response> {
        let request = host::Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms: self.timeout_ms,
        };
        match host::send(&request) {
            Ok(response) => Ok(Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
                method: request.method,
                url: request.url,
            }),
            Err(error) => Err(transport_error(request.method, &request.url, error)),
        }
    }
}

/// Shows method, URL without query and header names, never header values
/// (they may hold credentials).
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &method_name(self.method))
            .field("url", &without_query(&self.url))
            .field("headers", &header_names)
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// A complete HTTP response (after redirects).
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code of the final response.
    pub status: u16,
    /// Header names in lower case, values as received.
    pub headers: Vec<(String, String)>,
    /// The body, at most the connector's response size cap.
    pub body: Vec<u8>,
    method: Method,
    url: String,
}

impl Response {
    /// A response as if `method url` had returned it; for tests of connector
    /// code against recorded traffic.
    pub fn new(
        method: Method,
        url: impl Into<String>,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        Self {
            status,
            headers,
            body,
            method,
            url: url.into(),
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_pair(&self.headers, name)
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text; invalid UTF-8 sequences become `U+FFFD`.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON into `T`. A body that does not parse or does
    /// not fit `T` is [`Error::InvalidInput`] naming the URL and the problem.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|error| {
            Error::invalid_input(format!(
                "{} did not return the expected JSON: {error}",
                self.describe()
            ))
        })
    }

    /// `Ok(self)` for a status below 400, else the matching [`Error`] (see
    /// the [module documentation](self)). Reads the host clock only for a 429.
    pub fn error_for_status(self) -> Result<Self> {
        match self.status_error(clock::now_ms) {
            Some(error) => Err(error),
            None => Ok(self),
        }
    }

    /// The error [`error_for_status`](Self::error_for_status) would return,
    /// with `now_ms` giving the current time for relative rate-limit waits.
    pub fn status_error(&self, now_ms: impl FnOnce() -> i64) -> Option<Error> {
        let status = self.status;
        if status < 400 {
            return None;
        }
        let detail = format!(
            "{} returned HTTP {status}{}",
            self.describe(),
            excerpt(&self.body)
        );
        Some(match status {
            429 => {
                let wait = retry_after_ms(&self.headers, now_ms())
                    .unwrap_or(DEFAULT_RETRY_AFTER_MS)
                    .max(MIN_RETRY_AFTER_MS);
                Error::rate_limited(wait, detail)
            }
            401 if self.mentions_expiry() => Error::auth_expired(detail),
            401 => Error::unauthorized(detail),
            403 => match missing_scope(&self.headers, &self.body) {
                Some(scope) => Error::missing_scope(scope, detail),
                None => Error::unauthorized(detail),
            },
            // A server that is down for a known while says so (RFC 9110
            // 15.6.4): wait as told instead of backing off blindly.
            503 if self.header("retry-after").is_some() => {
                match retry_after_ms(&self.headers, now_ms()) {
                    Some(wait) => Error::rate_limited(wait.max(MIN_RETRY_AFTER_MS), detail),
                    None => Error::transient(detail),
                }
            }
            408 | 500.. => Error::transient(detail),
            _ => Error::invalid_input(detail),
        })
    }

    /// `GET https://host/path`, without the query.
    fn describe(&self) -> String {
        format!("{} {}", method_name(self.method), without_query(&self.url))
    }

    /// Whether the challenge or the body of a 401 says the credentials expired.
    fn mentions_expiry(&self) -> bool {
        let challenge = self.header("www-authenticate").unwrap_or_default();
        contains_ignore_case(challenge.as_bytes(), b"expired")
            || contains_ignore_case(&self.body, b"expired")
    }
}

/// How long the headers of a rate-limited response ask to wait, in
/// milliseconds from `now_ms`: `retry-after` (delay in seconds or an
/// HTTP-date), else `x-rate-limit-reset` (Unix time in seconds). `None` when
/// neither header is there or parses. Times in the past give 0.
pub fn retry_after_ms(headers: &[(String, String)], now_ms: i64) -> Option<u64> {
    let until = |at_ms: i64| u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0);
    if let Some(value) = find_pair(headers, "retry-after").map(str::trim) {
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(seconds.saturating_mul(1000));
        }
        if let Ok(at_ms) = time::parse_http_date(value) {
            return Some(until(at_ms));
        }
    }
    let reset = find_pair(headers, "x-rate-limit-reset")?.trim();
    let reset_seconds = reset.parse::<i64>().ok()?;
    Some(until(reset_seconds.saturating_mul(1000)))
}

/// The scope a 403 response says is missing (see the module documentation).
fn missing_scope(headers: &[(String, String)], body: &[u8]) -> Option<String> {
    if let Some(challenge) = find_pair(headers, "www-authenticate")
        && contains_ignore_case(challenge.as_bytes(), b"insufficient_scope")
    {
        let scope = auth_param(challenge, "scope").unwrap_or("insufficient_scope");
        return Some(scope.to_owned());
    }
    if let Some(level) = find_pair(headers, "x-access-level") {
        return Some(format!("more than the token's access level `{level}`"));
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["missing_scope", "required_scope", "scope"]
        .iter()
        .find_map(|key| {
            json.get(key)
                .or_else(|| json.get("error")?.get(key))
                .and_then(serde_json::Value::as_str)
        })
        .map(str::to_owned)
}

/// The value of parameter `name` in an authentication challenge such as
/// `Bearer realm="x", error="insufficient_scope", scope="a b"`.
fn auth_param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = challenge;
    while let Some(at) = rest.find('=') {
        let key = rest[..at]
            .rsplit(|c: char| c == ',' || c.is_whitespace())
            .next()
            .unwrap_or_default();
        let after = &rest[at + 1..];
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').unwrap_or(quoted.len());
                (&quoted[..end], quoted.get(end + 1..).unwrap_or_default())
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim(), &after[end..])
            }
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
        rest = remainder;
    }
    None
}

/// Maps a transport failure reported by the host to an [`Error`].
fn transport_error(method: Method, url: &str, error: host::HttpError) -> Error {
    let target = format!("{} {}", method_name(method), without_query(url));
    match error {
        host::HttpError::Denied(denied) => Error::not_allowed(format!(
            "{target}: {} is not on this connector's allow-list of hosts",
            without_query(&denied)
        )),
        host::HttpError::Timeout => Error::transient(format!("{target} timed out")),
        host::HttpError::Connection(reason) => {
            Error::transient(format!("{target} failed to connect: {reason}"))
        }
        host::HttpError::TooLarge(cap) => Error::invalid_input(format!(
            "{target}: the response body exceeds the cap of {cap} bytes"
        )),
        host::HttpError::InvalidRequest(reason) => {
            Error::invalid_input(format!("{target} is not a valid request: {reason}"))
        }
        host::HttpError::TooManyRedirects => {
            Error::invalid_input(format!("{target} redirected too many times"))
        }
    }
}

/// Appends percent-encoded `pairs` to the query of `url`.
fn append_query<K: AsRef<str>, V: AsRef<str>>(url: &mut String, pairs: &[(K, V)]) {
    if pairs.is_empty() {
        return;
    }
    let fragment = url.find('#').map(|at| url.split_off(at));
    let mut separator = match url.find('?') {
        None => Some('?'),
        Some(_) if url.ends_with('?') || url.ends_with('&') => None,
        Some(_) => Some('&'),
    };
    for (key, value) in pairs {
        if let Some(separator) = separator {
            url.push(separator);
        }
        url.push_str(&encode_component(key.as_ref()));
        url.push('=');
        url.push_str(&encode_component(value.as_ref()));
        separator = Some('&');
    }
    if let Some(fragment) = fragment {
        url.push_str(&fragment);
    }
}

/// `url` without its query and fragment, which may carry credentials.
fn without_query(url: &str) -> &str {
    url.find(['?', '#']).map_or(url, |at| &url[..at])
}

/// `": {start of body}"` for an error detail, whitespace collapsed, or `""`
/// for an empty body.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut words = text.split_whitespace();
    let Some(first) = words.next() else {
        return String::new();
    };
    let mut excerpt = format!(": {first}");
    for word in words {
        excerpt.push(' ');
        excerpt.push_str(word);
    }
    match excerpt.char_indices().nth(EXCERPT_CHARS + 2) {
        Some((cut, _)) => {
            excerpt.truncate(cut);
            excerpt.push('…');
            excerpt
        }
        None => excerpt,
    }
}

/// ASCII case-insensitive substring search.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn response(status: u16, pairs: &[(&str, &str)], body: &str) -> Response {
        Response::new(
            Method::Get,
            "https://api.example.com/v1/items?token=secret",
            status,
            headers(pairs),
            body.as_bytes().to_vec(),
        )
    }

    /// 2024-05-01T12:00:00Z
    const NOW_MS: i64 = 1_714_564_800_000;

    fn error_of(response: &Response) -> Error {
        response.status_error(|| NOW_MS).expect("an error status")
    }

    #[test]
    fn success_and_redirect_statuses_are_not_errors() {
        for status in [200, 201, 204, 304] {
            assert_eq!(response(status, &[], "").status_error(|| NOW_MS), None);
        }
    }

    #[test]
    fn too_many_requests_waits_as_retry_after_says_in_seconds() {
        let error = error_of(&response(429, &[("retry-after", " 120 ")], ""));
        assert!(matches!(error, Error::RateLimited(limit) if limit.retry_after_ms == 120_000));
    }

    #[test]
    fn too_many_requests_waits_until_an_http_date() {
        let error = error_of(&response(
            429,
            &[("Retry-After", "Wed, 01 May 2024 12:00:30 GMT")],
            "",
        ));
        assert!(matches!(error, Error::RateLimited(limit) if limit.retry_after_ms == 30_000));
    }

    #[test]
    fn too_many_requests_waits_until_the_rate_limit_reset() {
        let reset = (NOW_MS / 1000 + 900).to_string();
        let error = error_of(&response(429, &[("x-rate-limit-reset", &reset)], ""));
        assert!(matches!(error, Error::RateLimited(limit) if limit.retry_after_ms == 900_000));
    }

    #[test]
    fn too_many_requests_defaults_to_a_minute_and_waits_at_least_a_second() {
        let error = error_of(&response(429, &[("retry-after", "soon")], ""));
        assert!(matches!(error, Error::RateLimited(limit) if limit.retry_after_ms == 60_000));
        let past = (NOW_MS / 1000 - 10).to_string();
        let error = error_of(&response(429, &[("x-rate-limit-reset", &past)], ""));
        assert!(matches!(error, Error::RateLimited(limit) if limit.retry_after_ms == 1_000));
    }

    #[test]
    fn retry_after_prefers_retry_after_over_the_reset_header() {
        let reset = (NOW_MS / 1000 + 900).to_string();
        let pairs = headers(&[("x-rate-limit-reset", &reset), ("retry-after", "5")]);
        assert_eq!(retry_after_ms(&pairs, NOW_MS), Some(5_000));
        assert_eq!(retry_after_ms(&[], NOW_MS), None);
    }

    #[test]
    fn the_clock_is_read_only_for_rate_limits() {
        let error = response(503, &[], "").status_error(|| panic!("clock read"));
        assert!(matches!(error, Some(Error::Transient(_))));
    }

    #[test]
    fn unauthorized_notices_expired_credentials() {
        let error = error_of(&response(401, &[], "{\"error\":\"bad token\"}"));
        assert!(matches!(error, Error::Unauthorized(problem) if !problem.expired));
        let error = error_of(&response(
            401,
            &[(
                "www-authenticate",
                "Bearer error=\"invalid_token\", error_description=\"The access token expired\"",
            )],
            "",
        ));
        assert!(matches!(error, Error::Unauthorized(problem) if problem.expired));
    }

    #[test]
    fn forbidden_reports_the_missing_scope() {
        let challenge =
            "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"tweet.write users.read\"";
        let error = error_of(&response(403, &[("www-authenticate", challenge)], ""));
        assert_eq!(
            error,
            Error::missing_scope("tweet.write users.read", error.detail())
        );

        let error = error_of(&response(403, &[("x-access-level", "read")], ""));
        assert!(matches!(error, Error::Unauthorized(problem)
            if problem.missing_scope.as_deref() == Some("more than the token's access level `read`")));

        let body = r#"{"error":{"message":"nope","required_scope":"pages_manage_engagement"}}"#;
        let error = error_of(&response(403, &[], body));
        assert!(matches!(error, Error::Unauthorized(problem)
            if problem.missing_scope.as_deref() == Some("pages_manage_engagement")));

        let error = error_of(&response(403, &[], "forbidden"));
        assert!(matches!(error, Error::Unauthorized(problem) if problem.missing_scope.is_none()));
    }

    #[test]
    fn unavailable_with_retry_after_waits_as_told() {
        let error = error_of(&response(503, &[("retry-after", "120")], "maintenance"));
        assert!(
            matches!(&error, Error::RateLimited(limit) if limit.retry_after_ms == 120_000),
            "{error:?}"
        );
        // Without the header, or with one that does not parse: a plain transient fault.
        assert!(matches!(
            error_of(&response(503, &[], "")),
            Error::Transient(_)
        ));
        assert!(matches!(
            error_of(&response(503, &[("retry-after", "later")], "")),
            Error::Transient(_)
        ));
    }

    #[test]
    fn other_statuses_map_to_transient_or_invalid_input() {
        assert!(matches!(
            error_of(&response(408, &[], "")),
            Error::Transient(_)
        ));
        assert!(matches!(
            error_of(&response(500, &[], "")),
            Error::Transient(_)
        ));
        assert!(matches!(
            error_of(&response(599, &[], "")),
            Error::Transient(_)
        ));
        assert!(matches!(
            error_of(&response(400, &[], "")),
            Error::InvalidInput(_)
        ));
        assert!(matches!(
            error_of(&response(404, &[], "")),
            Error::InvalidInput(_)
        ));
    }

    #[test]
    fn details_hide_the_query_and_quote_the_body() {
        let error = error_of(&response(404, &[], "  no such\n item "));
        assert_eq!(
            error.detail(),
            "GET https://api.example.com/v1/items returned HTTP 404: no such item"
        );
        let long = "x".repeat(1000);
        let detail = error_of(&response(500, &[], &long)).detail().to_owned();
        assert!(detail.ends_with('…'));
        assert!(detail.len() < 300);
    }

    #[test]
    fn transport_errors_map_by_kind() {
        let url = "https://evil.example/steal?key=secret";
        let denied = transport_error(Method::Get, url, host::HttpError::Denied(url.into()));
        assert_eq!(
            denied,
            Error::not_allowed(
                "GET https://evil.example/steal: https://evil.example/steal is not on this connector's allow-list of hosts"
            )
        );
        assert!(matches!(
            transport_error(Method::Post, url, host::HttpError::Timeout),
            Error::Transient(_)
        ));
        assert!(matches!(
            transport_error(
                Method::Get,
                url,
                host::HttpError::Connection("reset".into())
            ),
            Error::Transient(_)
        ));
        assert!(matches!(
            transport_error(Method::Get, url, host::HttpError::TooLarge(1024)),
            Error::InvalidInput(detail) if detail.contains("1024 bytes")
        ));
        assert!(matches!(
            transport_error(
                Method::Get,
                url,
                host::HttpError::InvalidRequest("bad".into())
            ),
            Error::InvalidInput(_)
        ));
        assert!(matches!(
            transport_error(Method::Get, url, host::HttpError::TooManyRedirects),
            Error::InvalidInput(_)
        ));
    }

    #[test]
    fn queries_are_percent_encoded_and_appended() {
        let request =
            Request::get("https://x.test/search").query(&[("q", "café & co"), ("n", "1")]);
        assert_eq!(
            request.url(),
            "https://x.test/search?q=caf%C3%A9%20%26%20co&n=1"
        );
        let request = Request::get("https://x.test/s?a=1#top").query(&[("b", "2+3=5")]);
        assert_eq!(request.url(), "https://x.test/s?a=1&b=2%2B3%3D5#top");
        let request = Request::get("https://x.test/s?").query(&[("emoji", "😀")]);
        assert_eq!(request.url(), "https://x.test/s?emoji=%F0%9F%98%80");
        let empty: &[(&str, &str)] = &[];
        assert_eq!(
            Request::get("https://x.test/").query(empty).url(),
            "https://x.test/"
        );
    }

    #[test]
    fn builders_set_headers_and_bodies() {
        let request = Request::post("https://x.test/")
            .bearer("t1")
            .header("Authorization", "Bearer t2")
            .json(&serde_json::json!({"a": 1}))
            .unwrap();
        assert_eq!(
            request.headers,
            headers(&[
                ("Authorization", "Bearer t2"),
                ("content-type", "application/json")
            ])
        );
        assert_eq!(request.body.as_deref(), Some(&br#"{"a":1}"#[..]));
        let debug = format!("{request:?}");
        assert!(!debug.contains("t2"), "{debug}");

        let form = Request::post("https://x.test/token").form(&[("grant_type", "refresh token")]);
        assert_eq!(form.body.as_deref(), Some(&b"grant_type=refresh+token"[..]));
    }

    #[test]
    fn responses_parse_json_and_name_the_url_on_failure() {
        let ok = response(200, &[("Content-Type", "application/json")], "[1,2]");
        assert_eq!(ok.json::<Vec<u8>>().unwrap(), vec![1, 2]);
        assert_eq!(ok.header("content-type"), Some("application/json"));
        let error = ok.json::<String>().unwrap_err();
        assert!(matches!(&error, Error::InvalidInput(detail)
            if detail.starts_with("GET https://api.example.com/v1/items did not return the expected JSON")));
    }

    #[test]
    fn auth_params_are_found_quoted_or_bare() {
        let challenge = "Bearer realm=\"a,b\", error=insufficient_scope, scope=\"x y\"";
        assert_eq!(auth_param(challenge, "realm"), Some("a,b"));
        assert_eq!(auth_param(challenge, "error"), Some("insufficient_scope"));
        assert_eq!(auth_param(challenge, "scope"), Some("x y"));
        assert_eq!(auth_param(challenge, "missing"), None);
    }
}
