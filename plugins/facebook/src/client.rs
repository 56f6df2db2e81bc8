//! Calls to the Graph API with the page token.
//!
//! Every request carries the token as `Authorization: Bearer` (never in the
//! URL, so it cannot end up in a log line or an error detail) and the
//! `appsecret_proof` query parameter. Failed responses are mapped with
//! [`graph::response_error`]; the usage headers of every response are kept
//! so `poll` can back off before Graph throttles.

use webcare_plugin::http::{self, Request, Response};
use webcare_plugin::{Result, clock, secrets, settings};

use crate::graph;

/// A Graph client for one call of the connector.
pub struct Graph {
    /// `{graph_base_url}/{graph_version}`, without a trailing slash.
    root: String,
    token: String,
    proof: String,
    /// The longest wait the usage headers asked for so far.
    pub backoff_ms: Option<u64>,
}

impl Graph {
    /// A client from the connector's settings and secrets.
    pub fn from_config() -> Result<Self> {
        let base = settings::get("graph_base_url")
            .unwrap_or_else(|| crate::DEFAULT_GRAPH_BASE_URL.to_owned());
        let version = settings::get("graph_version")
            .unwrap_or_else(|| crate::DEFAULT_GRAPH_VERSION.to_owned());
        let token = secrets::require("page_access_token")?;
        let app_secret = secrets::require("app_secret")?;
        Ok(Self {
            root: format!(
                "{}/{}",
                base.trim_end_matches('/'),
                version.trim_matches('/')
            ),
            proof: graph::appsecret_proof(&token, &app_secret),
            token,
            backoff_ms: None,
        })
    }

    /// The URL of the Graph node or edge `path` (segments already encoded).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.root)
    }

    /// `GET path?query`.
    pub fn get(&mut self, path: &str, query: &[(&str, &str)]) -> Result<Response> {
        let request = Request::get(self.url(path)).query(query);
        self.send(request, &format!("GET {path}"))
    }

    /// `POST path` with a form body.
    pub fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Response> {
        let request = Request::post(self.url(path)).form(form);
        self.send(request, &format!("POST {path}"))
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&mut self, path: &str, body: &serde_json::Value) -> Result<Response> {
        let request = Request::post(self.url(path)).json(body)?;
        self.send(request, &format!("POST {path}"))
    }

    /// Signs, sends and checks one request; `what` names it in errors.
    fn send(&mut self, request: Request, what: &str) -> Result<Response> {
        let response = request
            .bearer(&self.token)
            .query(&[("appsecret_proof", &self.proof)])
            .send()?;
        if let Some(wait) = graph::usage_backoff_ms(&response.headers) {
            self.backoff_ms = Some(self.backoff_ms.map_or(wait, |earlier| earlier.max(wait)));
        }
        match graph::response_error(&response, what, clock::now_ms()) {
            Some(error) => Err(error),
            None => Ok(response),
        }
    }
}

/// `text` encoded as one URL path segment.
pub fn segment(text: &str) -> String {
    http::encode_component(text)
}
