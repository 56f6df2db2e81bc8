//! Calls to the Discourse REST API, with Discourse's errors mapped to the
//! contract's.
//!
//! Discourse authenticates with the `Api-Key` and `Api-Username` headers. It
//! answers a bad, revoked or under-scoped key with `403` and
//! `"error_type": "invalid_access"`, a rate limit with `429`, `Retry-After`
//! and `extras.wait_seconds`, and a refused post (too short, too similar,
//! topic closed) with `422` and a list of `errors`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use webcare_plugin::http::{Request, Response, retry_after_ms};
use webcare_plugin::{Error, Result, clock, secrets, settings};

/// Wait after a 429 that names no delay.
const DEFAULT_WAIT_MS: u64 = 60_000;

/// A Discourse API client for one call.
pub struct Client {
    base_url: String,
    api_key: String,
    api_username: String,
}

impl Client {
    /// A client from the `base_url`, `api_username` settings and `api_key` secret.
    pub fn from_settings() -> Result<Self> {
        Ok(Self {
            base_url: settings::require("base_url")?
                .trim_end_matches('/')
                .to_owned(),
            api_key: secrets::require("api_key")?,
            api_username: settings::require("api_username")?,
        })
    }

    /// The forum's root URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET {base}{path}` with `query`; the body of a successful response.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<u8>> {
        let request = self
            .authorised(Request::get(format!("{}{path}", self.base_url)))
            .query(query);
        Ok(check(request.send()?)?.body)
    }

    /// `POST {base}{path}` with a JSON body; the JSON answer.
    pub fn post_json<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let request = self
            .authorised(Request::post(format!("{}{path}", self.base_url)))
            .json(body)?;
        check(request.send()?)?.json()
    }

    /// Adds the credentials and asks for JSON.
    fn authorised(&self, request: Request) -> Request {
        request
            .header("Api-Key", &self.api_key)
            .header("Api-Username", &self.api_username)
            .header("Accept", "application/json")
    }
}

/// `Ok(response)` for a success, else the contract's error for what
/// Discourse answered.
pub fn check(response: Response) -> Result<Response> {
    match response.status {
        429 => {
            let wait = retry_after_ms(&response.headers, clock::now_ms())
                .or_else(|| wait_seconds(&response.body).map(|s| s.saturating_mul(1000)))
                .unwrap_or(DEFAULT_WAIT_MS)
                .max(1000);
            Err(Error::rate_limited(
                wait,
                format!("Discourse rate limit: {}", errors_text(&response.body)),
            ))
        }
        422 => Err(Error::not_allowed(format!(
            "Discourse refused the post: {}",
            errors_text(&response.body)
        ))),
        // Discourse answers a wrong, revoked or under-scoped key with 403
        // `invalid_access`; the SDK maps 401/403 to `unauthorized`, 5xx to
        // `transient`.
        _ => response.error_for_status(),
    }
}

/// `extras.wait_seconds` of a Discourse rate-limit body.
fn wait_seconds(body: &[u8]) -> Option<u64> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    json.get("extras")?.get("wait_seconds")?.as_u64()
}

/// The `errors` list of a Discourse error body, joined, or an excerpt of
/// the body when it has none.
fn errors_text(body: &[u8]) -> String {
    let listed = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|json| {
            let errors = json.get("errors")?.as_array()?;
            Some(
                errors
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
        .filter(|text| !text.is_empty());
    listed.unwrap_or_else(|| {
        String::from_utf8_lossy(body)
            .chars()
            .take(200)
            .collect::<String>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discourse_error_bodies_are_read() {
        let body = br#"{"errors":["You've performed this action too many times."],"error_type":"rate_limit","extras":{"wait_seconds":9,"time_left":"9 seconds"}}"#;
        assert_eq!(wait_seconds(body), Some(9));
        assert_eq!(
            errors_text(body),
            "You've performed this action too many times."
        );
        assert_eq!(errors_text(b"plain"), "plain");
        assert_eq!(wait_seconds(b"{}"), None);
    }
}
