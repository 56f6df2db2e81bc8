//! The `http` capability: outbound HTTP(S) through one shared `reqwest`
//! client, only to allow-listed destinations.
//!
//! Redirects are followed here, not by reqwest, so that every hop is checked
//! against the allow-list before a single byte goes out, and credentials are
//! dropped when a redirect leaves the origin. The client ignores proxy
//! environment variables: a plugin's traffic goes where the allow-list says.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;
use url::Url;

use super::{AllowList, IoLimits};

/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// Headers the host sets itself; a plugin's values are ignored.
const HOST_OWNED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
];

/// Headers removed when a redirect goes to another origin.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "api-key",
    "api-username",
    "x-api-key",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Options => reqwest::Method::OPTIONS,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    #[error("refused by the allow-list: {0} (allowed: see the connector's allow_hosts)")]
    Denied(String),
    #[error("timed out")]
    Timeout,
    #[error("response larger than the cap of {0} bytes")]
    TooLarge(u64),
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
}

/// The shared HTTP client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("webcare/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .https_only(false)
            .build()?;
        Ok(HttpClient { client })
    }

    /// Sends `request` on behalf of a connector with `allow` and `limits`.
    pub async fn send(
        &self,
        allow: &AllowList,
        limits: &IoLimits,
        request: Request,
    ) -> Result<Response, HttpError> {
        let timeout = request
            .timeout
            .map_or(limits.io_timeout, |t| t.min(limits.io_timeout));
        if let Some(body) = &request.body
            && body.len() as u64 > limits.max_request_bytes
        {
            return Err(HttpError::InvalidRequest(format!(
                "request body of {} bytes exceeds the cap of {} bytes",
                body.len(),
                limits.max_request_bytes
            )));
        }
        let mut url = Url::parse(&request.url)
            .map_err(|e| HttpError::InvalidRequest(format!("bad URL {:?}: {e}", request.url)))?;
        let mut headers = build_headers(&request.headers)?;
        let mut method = request.method.to_reqwest();
        let mut body = request.body;

        // One deadline for the whole exchange, redirects included.
        let exchange = async {
            for _hop in 0..=MAX_REDIRECTS {
                if !allow.allows_url(&url) {
                    return Err(HttpError::Denied(strip_query(&url)));
                }
                let mut builder = self
                    .client
                    .request(method.clone(), url.clone())
                    .headers(headers.clone());
                if let Some(b) = &body {
                    builder = builder.body(b.clone());
                }
                let response = builder.send().await.map_err(classify)?;
                let status = response.status();
                if status.is_redirection()
                    && let Some(location) = response.headers().get(reqwest::header::LOCATION)
                {
                    let location = location.to_str().map_err(|_| {
                        HttpError::Connection("redirect with a non-text Location".into())
                    })?;
                    let next = url.join(location).map_err(|e| {
                        HttpError::Connection(format!("bad redirect Location {location:?}: {e}"))
                    })?;
                    if next.origin() != url.origin() {
                        for name in CREDENTIAL_HEADERS {
                            headers.remove(*name);
                        }
                    }
                    // 303 always, and 301/302 after a POST, continue as GET
                    // without a body, as browsers do; 307/308 keep both.
                    if status == reqwest::StatusCode::SEE_OTHER
                        || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
                    {
                        method = reqwest::Method::GET;
                        body = None;
                        headers.remove(reqwest::header::CONTENT_TYPE);
                    }
                    url = next;
                    continue;
                }
                return read_response(response, limits.max_response_bytes).await;
            }
            Err(HttpError::TooManyRedirects)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout)?
    }
}

/// A URL for error messages: without query and fragment, where tokens hide.
fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

fn build_headers(pairs: &[(String, String)]) -> Result<HeaderMap, HttpError> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let lower = name.to_ascii_lowercase();
        if HOST_OWNED_HEADERS.contains(&lower.as_str()) {
            continue;
        }
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("bad header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| HttpError::InvalidRequest(format!("bad value for header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn classify(e: reqwest::Error) -> HttpError {
    if e.is_timeout() {
        HttpError::Timeout
    } else if e.is_builder() {
        HttpError::InvalidRequest(e.to_string())
    } else {
        // The chain holds the useful part ("connection refused", TLS error).
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        HttpError::Connection(msg)
    }
}

async fn read_response(mut response: reqwest::Response, cap: u64) -> Result<Response, HttpError> {
    if response.content_length().is_some_and(|len| len > cap) {
        return Err(HttpError::TooLarge(cap));
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(HttpError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_owned_headers_are_dropped() {
        let map = build_headers(&[
            ("Host".into(), "evil".into()),
            ("Authorization".into(), "Bearer x".into()),
            ("Content-Length".into(), "9".into()),
        ])
        .unwrap();
        assert_eq!(map.len(), 1);
        assert!(map.contains_key("authorization"));
        assert!(build_headers(&[("bad name".into(), "v".into())]).is_err());
    }

    #[test]
    fn error_urls_lose_their_query() {
        let u = Url::parse("https://user:pw@api.x.com/2/x?token=abc#f").unwrap();
        assert_eq!(strip_query(&u), "https://api.x.com/2/x");
    }

    #[tokio::test]
    async fn denied_before_anything_is_sent() {
        let client = HttpClient::new().unwrap();
        let allow = AllowList::parse(&["api.x.com"]).unwrap();
        let req = Request {
            method: Method::Get,
            url: "http://127.0.0.1:9/never".into(),
            headers: vec![],
            body: None,
            timeout: None,
        };
        let err = client
            .send(&allow, &IoLimits::default(), req)
            .await
            .unwrap_err();
        assert_eq!(err, HttpError::Denied("http://127.0.0.1:9/never".into()));
    }
}
