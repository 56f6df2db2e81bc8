//! Channel simulators for the demo: small fakes of the real channel APIs,
//! served on one loopback port from recorded payloads in `examples/demo/`.
//! Each channel lives under its own path prefix and each brand under its own
//! credentials, so the connectors speak to them exactly as to the real hosts
//! (only their base URL setting points here):
//!
//! | prefix | simulates |
//! |---|---|
//! | `/feed/{brand}` | the template connector's JSON feed API |
//! | `/x/{brand}` | X API v2: mentions, recent search, DM events, posting |
//! | `/graph/{brand}` | Facebook Graph API: page feed with comments, replies, Messenger sends |
//! | `/discourse/{brand}` | Discourse: latest posts, topics, creating posts |
//! | `/rss/{brand}` | an RSS 2.0 forum feed with ETag / conditional GET |
//!
//! What is pushed rather than polled (Facebook webhooks, inbound e-mail) is
//! not served here: the demo delivers it to the host's webhook routes (see
//! `super::pushes`).

pub mod discourse;
pub mod feed;
pub mod graph;
pub mod rss;
pub mod twitter;

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Credentials the simulated channels accept (and the demo config uses).
pub mod credentials {
    pub const X_BEARER: &str = "acme-x-demo-bearer-5d1e";
    pub const GRAPH_PAGE_TOKEN: &str = "EAAacmeDemoPageToken0b7c";
    pub const GRAPH_APP_SECRET: &str = "acme-demo-app-secret-42f9";
    pub const GRAPH_VERIFY_TOKEN: &str = "acme-demo-verify-7731";
    pub const DISCOURSE_API_KEY: &str = "globex-demo-discourse-key-8c0d";
    pub const MAIL_WEBHOOK_TOKEN: &str = "acme-demo-inbound-mail-2e6b";
}

/// A running simulator.
pub struct Simulator {
    pub addr: SocketAddr,
    pub feeds: Vec<feed::Feed>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Simulator {
    /// Serves every simulated channel on a free loopback port.
    pub async fn start(feeds: Vec<feed::Feed>) -> std::io::Result<Simulator> {
        let app = Router::new()
            .nest("/feed", feed::router(&feeds))
            .nest("/x", twitter::router())
            .nest("/graph", graph::router())
            .nest("/discourse", discourse::router())
            .nest("/rss", rss::router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Simulator {
            addr,
            feeds,
            _shutdown: tx,
        })
    }

    /// Base URL of a simulated channel for `brand`, e.g. `url("x", "acme")`.
    pub fn url(&self, channel: &str, brand: &str) -> String {
        format!("http://{}/{channel}/{brand}", self.addr)
    }
}

/// Parses a recorded payload that ships with the binary.
fn recorded(text: &str) -> Value {
    serde_json::from_str(text).expect("recorded demo payload is valid JSON")
}

/// The `authorization: Bearer ...` token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn json(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}
