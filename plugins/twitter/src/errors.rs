//! X's HTTP answers mapped to the contract's errors.
//!
//! Pure: takes the response and the current time, so it is unit-tested
//! natively. X reports problems as JSON "problem" objects
//! (<https://docs.x.com/x-api/fundamentals/response-codes-and-errors>).

use webcare_plugin::http::{Response, retry_after_ms};
use webcare_plugin::{Error, Result};

use crate::api::Problem;
use crate::normalize::problem_text;

/// Wait after a 429 that names no reset time.
const DEFAULT_RETRY_AFTER_MS: u64 = 60_000;
/// Shortest wait after a 429, so clock skew cannot make the host hammer.
const MIN_RETRY_AFTER_MS: u64 = 1_000;

/// An X endpoint, named in errors with the OAuth 2.0 scopes it needs.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    /// Human name, e.g. `mentions timeline`.
    pub name: &'static str,
    /// The OAuth 2.0 user-context scopes the endpoint needs.
    pub scopes: &'static str,
}

/// `GET /2/users/{id}/mentions`.
pub const MENTIONS: Endpoint = Endpoint {
    name: "mentions timeline",
    scopes: "tweet.read users.read",
};
/// `GET /2/tweets/search/recent`.
pub const SEARCH: Endpoint = Endpoint {
    name: "recent search",
    scopes: "tweet.read users.read",
};
/// `GET /2/dm_events`.
pub const DM_EVENTS: Endpoint = Endpoint {
    name: "direct-message events",
    scopes: "dm.read tweet.read users.read",
};
/// `POST /2/tweets`.
pub const CREATE_TWEET: Endpoint = Endpoint {
    name: "post creation",
    scopes: "tweet.read tweet.write users.read",
};
/// `POST /2/dm_conversations/with/{id}/messages`.
pub const SEND_DM: Endpoint = Endpoint {
    name: "direct-message sending",
    scopes: "dm.write dm.read tweet.read users.read",
};
/// `POST /2/users/{id}/likes`.
pub const LIKE: Endpoint = Endpoint {
    name: "like",
    scopes: "like.write tweet.read users.read",
};

/// `Ok(response)` for a status below 400, else the matching error:
///
/// | status | error |
/// |---|---|
/// | 429 | rate-limited until the exhausted limit resets (24-hour limits first, then `retry-after`, then `x-rate-limit-reset`) |
/// | 401 | unauthorized; `expired` when the token worked before (`token_known_good`) or X says "expired" |
/// | 403 `client-not-enrolled` | unauthorized, missing scope = X's `required_enrollment` |
/// | 403 `unsupported-authentication` | unauthorized, missing scope = a user-context token with the endpoint's scopes |
/// | 403 duplicate / not allowed / too long | not allowed (a channel rule) |
/// | other 403 | unauthorized, missing scope = the endpoint's scopes |
/// | 408, 5xx | transient; other 4xx invalid input |
pub fn check(
    response: Response,
    endpoint: Endpoint,
    token_known_good: bool,
    now_ms: i64,
) -> Result<Response> {
    if response.status < 400 {
        return Ok(response);
    }
    let problem: Problem = serde_json::from_slice(&response.body).unwrap_or_default();
    let said = problem_text(&problem);
    let status = response.status;
    Err(match status {
        429 => {
            let wait = rate_limit_wait(&response.headers, now_ms)
                .unwrap_or(DEFAULT_RETRY_AFTER_MS)
                .max(MIN_RETRY_AFTER_MS);
            Error::rate_limited(
                wait,
                format!(
                    "X rate limit reached on the {} (HTTP 429: {said})",
                    endpoint.name
                ),
            )
        }
        401 => {
            let expired =
                token_known_good || String::from_utf8_lossy(&response.body).contains("xpired");
            if expired {
                Error::auth_expired(format!(
                    "X no longer accepts the bearer token on the {} (HTTP 401: {said}); it worked \
                     before, so it has expired or been revoked: issue a new token",
                    endpoint.name
                ))
            } else {
                Error::unauthorized(format!(
                    "X rejected the bearer token on the {} (HTTP 401: {said}); check the \
                     `bearer_token` secret",
                    endpoint.name
                ))
            }
        }
        403 => forbidden(&problem, &said, endpoint),
        _ => response
            .status_error(|| now_ms)
            .unwrap_or_else(|| Error::invalid_input(format!("X answered HTTP {status}: {said}"))),
    })
}

/// The error for a 403, from X's problem object.
fn forbidden(problem: &Problem, said: &str, endpoint: Endpoint) -> Error {
    let kind = problem.kind.as_deref().unwrap_or_default();
    let reason = problem.reason.as_deref().unwrap_or_default();
    let detail = format!("X refused the {} (HTTP 403: {said})", endpoint.name);
    if reason == "client-not-enrolled" || kind.ends_with("/client-forbidden") {
        let needed = problem.required_enrollment.clone().unwrap_or_else(|| {
            "an App attached to a Project with the required access level".to_owned()
        });
        return Error::missing_scope(needed, detail);
    }
    if reason == "unsupported-authentication" || kind.ends_with("/unsupported-authentication") {
        return Error::missing_scope(
            format!("an OAuth 2.0 user-context token with {}", endpoint.scopes),
            detail,
        );
    }
    let lower = said.to_ascii_lowercase();
    if [
        "duplicate",
        "not allowed",
        "not permitted",
        "too long",
        "cannot send",
    ]
    .iter()
    .any(|rule| lower.contains(rule))
    {
        return Error::not_allowed(detail);
    }
    Error::missing_scope(endpoint.scopes, detail)
}

/// How long a 429 asks to wait: an exhausted 24-hour user or app limit
/// (X's posting caps) first, then `retry-after`, then `x-rate-limit-reset`.
fn rate_limit_wait(headers: &[(String, String)], now_ms: i64) -> Option<u64> {
    for (remaining, reset) in [
        ("x-user-limit-24hour-remaining", "x-user-limit-24hour-reset"),
        ("x-app-limit-24hour-remaining", "x-app-limit-24hour-reset"),
    ] {
        if header(headers, remaining) == Some("0")
            && let Some(at_ms) = reset_ms(headers, reset)
        {
            return Some(u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0));
        }
    }
    retry_after_ms(headers, now_ms)
}

/// When a successful response says the endpoint's quota is used up
/// (`x-rate-limit-remaining: 0`), the time it comes back
/// (`x-rate-limit-reset`, Unix seconds), in Unix ms.
pub fn exhausted_until(headers: &[(String, String)]) -> Option<i64> {
    (header(headers, "x-rate-limit-remaining") == Some("0"))
        .then(|| reset_ms(headers, "x-rate-limit-reset"))
        .flatten()
}

/// The Unix-seconds header `name` in ms.
fn reset_ms(headers: &[(String, String)], name: &str) -> Option<i64> {
    let seconds: i64 = header(headers, name)?.parse().ok()?;
    Some(seconds.saturating_mul(1000))
}

/// The trimmed value of header `name`.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use webcare_plugin::http::Method;

    /// 2026-11-20T09:00:00Z
    const NOW_MS: i64 = 1_795_165_200_000;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::new(
            Method::Get,
            "https://api.twitter.com/2/dm_events?max_results=5",
            status,
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body.as_bytes().to_vec(),
        )
    }

    fn problem(name: &str) -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/twitter/");
        std::fs::read_to_string(format!("{path}{name}")).unwrap()
    }

    fn error(status: u16, headers: &[(&str, &str)], body: &str, known: bool) -> Error {
        check(response(status, headers, body), DM_EVENTS, known, NOW_MS).unwrap_err()
    }

    #[test]
    fn success_passes() {
        assert!(check(response(200, &[], "{}"), MENTIONS, false, NOW_MS).is_ok());
    }

    #[test]
    fn too_many_requests_waits_for_the_reset() {
        let reset = (NOW_MS / 1000 + 90).to_string();
        let body = problem("problem_429.json");
        match error(429, &[("x-rate-limit-reset", &reset)], &body, true) {
            Error::RateLimited(limit) => {
                assert_eq!(limit.retry_after_ms, 90_000);
                assert!(
                    limit.detail.contains("direct-message events"),
                    "{}",
                    limit.detail
                );
            }
            other => panic!("{other:?}"),
        }
        // An exhausted 24-hour posting cap wins over the 15-minute window.
        let day = (NOW_MS / 1000 + 3600).to_string();
        let headers = [
            ("x-rate-limit-reset", reset.as_str()),
            ("x-user-limit-24hour-remaining", "0"),
            ("x-user-limit-24hour-reset", day.as_str()),
        ];
        assert!(matches!(error(429, &headers, "", true),
            Error::RateLimited(limit) if limit.retry_after_ms == 3_600_000));
        // No reset at all: a minute; a reset in the past: the minimum.
        assert!(matches!(error(429, &[], "", true),
            Error::RateLimited(limit) if limit.retry_after_ms == 60_000));
        let past = (NOW_MS / 1000 - 5).to_string();
        assert!(
            matches!(error(429, &[("x-rate-limit-reset", &past)], "", true),
            Error::RateLimited(limit) if limit.retry_after_ms == 1_000)
        );
    }

    #[test]
    fn unauthorized_is_expired_only_for_a_token_that_worked() {
        let body = problem("problem_401.json");
        match error(401, &[], &body, false) {
            Error::Unauthorized(problem) => {
                assert!(!problem.expired);
                assert!(
                    problem.detail.contains("`bearer_token`"),
                    "{}",
                    problem.detail
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(error(401, &[], &body, true), Error::Unauthorized(p) if p.expired));
        assert!(matches!(
            error(401, &[], r#"{"detail":"Token expired"}"#, false),
            Error::Unauthorized(p) if p.expired
        ));
    }

    #[test]
    fn forbidden_names_what_is_missing() {
        match error(
            403,
            &[],
            &problem("problem_403_unsupported_auth.json"),
            true,
        ) {
            Error::Unauthorized(p) => assert_eq!(
                p.missing_scope.as_deref(),
                Some("an OAuth 2.0 user-context token with dm.read tweet.read users.read")
            ),
            other => panic!("{other:?}"),
        }
        match error(403, &[], &problem("problem_403_not_enrolled.json"), true) {
            Error::Unauthorized(p) => {
                assert_eq!(
                    p.missing_scope.as_deref(),
                    Some("Appropriate Level of API Access")
                )
            }
            other => panic!("{other:?}"),
        }
        match error(
            403,
            &[],
            r#"{"title":"Forbidden","detail":"Forbidden"}"#,
            true,
        ) {
            Error::Unauthorized(p) => {
                assert_eq!(
                    p.missing_scope.as_deref(),
                    Some("dm.read tweet.read users.read")
                )
            }
            other => panic!("{other:?}"),
        }
        let duplicate = r#"{"detail":"You are not allowed to create a Tweet with duplicate content.","type":"about:blank","title":"Forbidden","status":403}"#;
        assert!(matches!(
            error(403, &[], duplicate, true),
            Error::NotAllowed(_)
        ));
    }

    #[test]
    fn other_statuses_follow_the_sdk() {
        assert!(matches!(error(503, &[], "", true), Error::Transient(_)));
        assert!(matches!(
            error(400, &[], "{}", true),
            Error::InvalidInput(_)
        ));
    }

    #[test]
    fn an_exhausted_window_is_read_from_a_success() {
        let headers = |remaining: &str| {
            vec![
                ("x-rate-limit-remaining".to_owned(), remaining.to_owned()),
                ("x-rate-limit-reset".to_owned(), "1795165500".to_owned()),
            ]
        };
        assert_eq!(exhausted_until(&headers("0")), Some(1_795_165_500_000));
        assert_eq!(exhausted_until(&headers("12")), None);
        assert_eq!(exhausted_until(&[]), None);
    }
}
