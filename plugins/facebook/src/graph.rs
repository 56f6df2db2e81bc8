//! The Graph API's conventions that every request shares: the
//! `appsecret_proof`, the error JSON and its codes, and the usage headers
//! that announce throttling before it happens.
//!
//! All of it is pure (the caller passes the time), so it is unit-tested
//! natively against the shapes documented at
//! <https://developers.facebook.com/docs/graph-api/guides/error-handling> and
//! <https://developers.facebook.com/docs/graph-api/overview/rate-limiting>.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use webcare_plugin::Error;
use webcare_plugin::http::{self, Response};

/// HMAC-SHA256 with a key of any length.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Usage (in percent of the quota) from which the connector stops polling
/// until the quota recovers. Graph throttles at 100 %.
pub const USAGE_BACKOFF_PERCENT: f64 = 95.0;

/// Wait when a usage header is over [`USAGE_BACKOFF_PERCENT`] or a
/// throttling error came without saying how long: Graph counts usage over a
/// rolling hour, so a few minutes bring it down noticeably.
pub const DEFAULT_BACKOFF_MS: u64 = 5 * 60 * 1000;

/// `appsecret_proof`: the hex HMAC-SHA256 of the access token, keyed with
/// the app secret. Graph refuses calls without it when the app requires it,
/// and with it a leaked token is useless without the secret.
pub fn appsecret_proof(token: &str, app_secret: &str) -> String {
    hex::encode(hmac_sha256(app_secret.as_bytes(), token.as_bytes()))
}

/// HMAC-SHA256 of `message` keyed with `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Graph's error body: `{"error": {...}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: GraphError,
}

/// The `error` object of a failed Graph call.
#[derive(Deserialize, Debug, Default)]
pub struct GraphError {
    /// Human-readable text, e.g. `(#200) Requires pages_messaging permission`.
    #[serde(default)]
    pub message: String,
    /// `OAuthException`, `GraphMethodException`, ...
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The error code that says what went wrong (190, 200, 4, ...).
    #[serde(default)]
    pub code: i64,
    /// A finer code for some errors (463 expired token, 2018278 window closed, ...).
    pub error_subcode: Option<i64>,
    /// Graph says a retry may succeed.
    #[serde(default)]
    pub is_transient: bool,
    /// Meta's trace id, for support requests.
    pub fbtrace_id: Option<String>,
}

impl GraphError {
    /// Parses a Graph error body; `None` when the body is something else.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .map(|body| body.error)
    }
}

/// The error a Graph response stands for, or `None` for a success. Reads
/// Graph's error JSON first (its codes say more than the HTTP status), then
/// falls back to the status (429, 401, 5xx, ...).
///
/// | Graph code | error |
/// |---|---|
/// | 190, 102 (token expired, revoked, invalid session) | unauthorized, `expired: true` |
/// | 10 with subcode 2018278 / 2018065 / 1545041, 551, 368, 2022 | not allowed (a channel rule: window closed, user unavailable, blocked) |
/// | 10, 200–299 | unauthorized, with the permission named in the message as missing scope |
/// | 4, 17, 32, 613, 80001–80014 | rate limited: `Retry-After`, else the usage headers' time to regain access, else 5 min |
/// | 1, 2, or `is_transient` | transient |
/// | others (100 invalid parameter, ...) | invalid input |
pub fn response_error(response: &Response, what: &str, now_ms: i64) -> Option<Error> {
    if response.is_success() {
        return None;
    }
    let Some(error) = GraphError::parse(&response.body) else {
        return response.status_error(|| now_ms);
    };
    let detail = format!(
        "{what}: Graph API error {}{} ({}): {}{}",
        error.code,
        error
            .error_subcode
            .map(|subcode| format!("/{subcode}"))
            .unwrap_or_default(),
        if error.kind.is_empty() {
            "no type"
        } else {
            &error.kind
        },
        error.message,
        error
            .fbtrace_id
            .as_deref()
            .map(|id| format!(" [fbtrace_id {id}]"))
            .unwrap_or_default(),
    );
    Some(match error.code {
        190 | 102 => Error::auth_expired(detail),
        10 if matches!(error.error_subcode, Some(2_018_278 | 2_018_065 | 1_545_041)) => {
            Error::not_allowed(detail)
        }
        551 | 368 | 2022 => Error::not_allowed(detail),
        10 | 200..=299 => match missing_permission(&error.message) {
            Some(permission) => Error::missing_scope(permission, detail),
            None => Error::unauthorized(detail),
        },
        4 | 17 | 32 | 613 | 80_001..=80_014 => {
            Error::rate_limited(throttle_wait_ms(&response.headers, now_ms), detail)
        }
        1 | 2 => Error::transient(detail),
        _ if error.is_transient || response.status >= 500 => Error::transient(detail),
        _ if response.status == 429 => {
            Error::rate_limited(throttle_wait_ms(&response.headers, now_ms), detail)
        }
        _ => Error::invalid_input(detail),
    })
}

/// How long to wait after a throttling error: `Retry-After`, else the usage
/// headers' time to regain access, else [`DEFAULT_BACKOFF_MS`]; at least 1 s.
fn throttle_wait_ms(headers: &[(String, String)], now_ms: i64) -> u64 {
    http::retry_after_ms(headers, now_ms)
        .or_else(|| usage_backoff_ms(headers))
        .unwrap_or(DEFAULT_BACKOFF_MS)
        .max(1000)
}

/// The permission a Graph permission error names, e.g. `pages_messaging` in
/// `(#200) Requires pages_messaging permission to manage the object` or
/// `pages_read_engagement` in `... requires the 'pages_read_engagement'
/// permission`.
pub fn missing_permission(message: &str) -> Option<String> {
    const OTHERS: [&str; 5] = [
        "business_management",
        "public_profile",
        "read_insights",
        "publish_video",
        "instagram_basic",
    ];
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|word| {
            (word.starts_with("pages_") && word.len() > "pages_".len()) || OTHERS.contains(word)
        })
        .map(str::to_owned)
}

/// One usage report: percentages of the quota used, and for business use
/// cases the minutes until access is regained.
#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    call_count: f64,
    #[serde(default)]
    total_time: f64,
    #[serde(default)]
    total_cputime: f64,
    #[serde(default)]
    estimated_time_to_regain_access: f64,
}

impl Usage {
    fn peak_percent(&self) -> f64 {
        self.call_count.max(self.total_time).max(self.total_cputime)
    }
}

/// How long to hold off, from the usage headers of any Graph response
/// (successful ones too): `X-App-Usage`, `X-Page-Usage` (page tokens) and
/// `X-Business-Use-Case-Usage` (`{"<id>": [{"type": "pages", "call_count": 96,
/// ..., "estimated_time_to_regain_access": 12}]}`).
///
/// `Some` when any quota is at [`USAGE_BACKOFF_PERCENT`] or more or Graph
/// gives a time to regain access: that time (minutes) if given, else
/// [`DEFAULT_BACKOFF_MS`]. Headers that do not parse are ignored: they are
/// advice, not data.
pub fn usage_backoff_ms(headers: &[(String, String)]) -> Option<u64> {
    let mut reports: Vec<Usage> = Vec::new();
    for (name, value) in headers {
        let name = name.as_str();
        if name.eq_ignore_ascii_case("x-app-usage") || name.eq_ignore_ascii_case("x-page-usage") {
            if let Ok(usage) = serde_json::from_str::<Usage>(value) {
                reports.push(usage);
            }
        } else if name.eq_ignore_ascii_case("x-business-use-case-usage")
            && let Ok(by_id) =
                serde_json::from_str::<std::collections::BTreeMap<String, Vec<Usage>>>(value)
        {
            reports.extend(by_id.into_values().flatten());
        }
    }
    let peak = reports.iter().map(Usage::peak_percent).fold(0.0, f64::max);
    let regain_minutes = reports
        .iter()
        .map(|usage| usage.estimated_time_to_regain_access)
        .fold(0.0, f64::max);
    if regain_minutes > 0.0 {
        // Whole minutes from Graph; a fraction would be rounded up anyway.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = (regain_minutes.ceil() as u64).saturating_mul(60_000);
        Some(ms)
    } else if peak >= USAGE_BACKOFF_PERCENT {
        Some(DEFAULT_BACKOFF_MS)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webcare_plugin::http::Method;

    const NOW_MS: i64 = 1_714_564_800_000;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::new(
            Method::Get,
            "https://graph.facebook.com/v21.0/me?access_token=secret",
            status,
            headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            body.as_bytes().to_vec(),
        )
    }

    fn graph(status: u16, code: i64, subcode: Option<i64>, message: &str) -> Response {
        let body = serde_json::json!({"error": {
            "message": message, "type": "OAuthException", "code": code,
            "error_subcode": subcode, "fbtrace_id": "AbC123"}});
        response(status, &[], &body.to_string())
    }

    #[test]
    fn proof_is_the_hex_hmac_of_the_token() {
        // The well-known HMAC-SHA256 example: key "key", this message.
        assert_eq!(
            appsecret_proof("The quick brown fox jumps over the lazy dog", "key"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn expired_tokens_are_expired() {
        let error = response_error(
            &graph(
                400,
                190,
                Some(463),
                "Error validating access token: Session has expired",
            ),
            "GET feed",
            NOW_MS,
        )
        .unwrap();
        assert!(matches!(&error, Error::Unauthorized(problem) if problem.expired));
        assert!(error.detail().contains("190/463"), "{error}");
        assert!(error.detail().contains("AbC123"), "{error}");
        assert!(!error.detail().contains("secret"), "{error}");
    }

    #[test]
    fn permission_errors_name_the_permission() {
        let error = response_error(
            &graph(
                403,
                200,
                None,
                "(#200) Requires pages_messaging permission to manage the object",
            ),
            "POST messages",
            NOW_MS,
        )
        .unwrap();
        assert!(matches!(&error, Error::Unauthorized(problem)
            if problem.missing_scope.as_deref() == Some("pages_messaging") && !problem.expired));
        let error = response_error(
            &graph(400, 10, None, "(#10) This endpoint requires the 'pages_read_engagement' permission or the 'Page Public Content Access' feature."),
            "GET feed",
            NOW_MS,
        )
        .unwrap();
        assert!(matches!(&error, Error::Unauthorized(problem)
            if problem.missing_scope.as_deref() == Some("pages_read_engagement")));
        let error = response_error(
            &graph(400, 200, None, "(#200) Permissions error"),
            "x",
            NOW_MS,
        )
        .unwrap();
        assert!(matches!(&error, Error::Unauthorized(problem) if problem.missing_scope.is_none()));
    }

    #[test]
    fn throttling_codes_are_rate_limits() {
        for code in [4, 17, 32, 613, 80_001, 80_014] {
            let error = response_error(
                &graph(400, code, None, "(#4) Application request limit reached"),
                "x",
                NOW_MS,
            )
            .unwrap();
            assert!(
                matches!(&error, Error::RateLimited(limit) if limit.retry_after_ms == DEFAULT_BACKOFF_MS),
                "{code}: {error}"
            );
        }
        let mut throttled = graph(
            400,
            613,
            None,
            "Calls to this api have exceeded the rate limit.",
        );
        throttled.headers.push(("retry-after".into(), "30".into()));
        assert!(matches!(response_error(&throttled, "x", NOW_MS).unwrap(),
            Error::RateLimited(limit) if limit.retry_after_ms == 30_000));
        let mut throttled = graph(
            400,
            80_001,
            None,
            "There have been too many calls to this Page account.",
        );
        throttled.headers.push((
            "x-business-use-case-usage".into(),
            r#"{"1234":[{"type":"pages","call_count":100,"total_cputime":20,"total_time":25,"estimated_time_to_regain_access":12}]}"#.into(),
        ));
        assert!(matches!(response_error(&throttled, "x", NOW_MS).unwrap(),
            Error::RateLimited(limit) if limit.retry_after_ms == 12 * 60_000));
    }

    #[test]
    fn channel_rules_and_other_codes() {
        let closed = graph(
            400,
            10,
            Some(2_018_278),
            "(#10) This message is sent outside of allowed window.",
        );
        assert!(matches!(
            response_error(&closed, "x", NOW_MS).unwrap(),
            Error::NotAllowed(_)
        ));
        let transient = graph(500, 2, None, "An unexpected error has occurred.");
        assert!(matches!(
            response_error(&transient, "x", NOW_MS).unwrap(),
            Error::Transient(_)
        ));
        let invalid = graph(400, 100, None, "(#100) Invalid parameter");
        assert!(matches!(
            response_error(&invalid, "x", NOW_MS).unwrap(),
            Error::InvalidInput(_)
        ));
        // Without Graph's JSON the status decides.
        assert!(matches!(
            response_error(&response(429, &[("retry-after", "7")], "slow"), "x", NOW_MS).unwrap(),
            Error::RateLimited(limit) if limit.retry_after_ms == 7000
        ));
        assert!(matches!(
            response_error(&response(502, &[], "<html>"), "x", NOW_MS).unwrap(),
            Error::Transient(_)
        ));
        assert!(response_error(&response(200, &[], "{}"), "x", NOW_MS).is_none());
    }

    #[test]
    fn usage_headers_say_when_to_back_off() {
        let headers = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            usage_backoff_ms(&headers(&[(
                "x-app-usage",
                r#"{"call_count":40,"total_time":10,"total_cputime":5}"#
            )])),
            None
        );
        assert_eq!(
            usage_backoff_ms(&headers(&[(
                "x-app-usage",
                r#"{"call_count":96,"total_time":10,"total_cputime":5}"#
            )])),
            Some(DEFAULT_BACKOFF_MS)
        );
        assert_eq!(
            usage_backoff_ms(&headers(&[(
                "X-Page-Usage",
                r#"{"call_count":5,"total_time":99,"total_cputime":5}"#
            )])),
            Some(DEFAULT_BACKOFF_MS)
        );
        assert_eq!(
            usage_backoff_ms(&headers(&[(
                "x-business-use-case-usage",
                r#"{"112233":[{"type":"pages","call_count":20,"total_cputime":3,"total_time":4,"estimated_time_to_regain_access":0},{"type":"messenger","call_count":100,"total_cputime":3,"total_time":4,"estimated_time_to_regain_access":3}]}"#,
            )])),
            Some(180_000)
        );
        assert_eq!(
            usage_backoff_ms(&headers(&[("x-app-usage", "not json")])),
            None
        );
    }
}
