//! The HTTP server: webhook ingress, health, metrics, the agent API
//! ([`crate::api`]) and the web inbox ([`crate::inbox`]).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use super::Shared;
use super::metrics::Metrics;
use crate::model::{ConnectorError, WebhookRequest};
use crate::runtime::PluginError;

/// Route state: the shared service and the webhook body cap.
#[derive(Clone)]
pub struct Ctx {
    shared: Arc<Shared>,
    max_body: usize,
}

pub fn router(shared: Arc<Shared>, max_body: usize) -> Router {
    Router::new()
        .route("/webhooks/{brand}/{connector}", any(webhook))
        .route("/webhooks/{brand}/{connector}/{*rest}", any(webhook_sub))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        // Webhook bodies are capped by `read_capped`, which also drains.
        .layer(DefaultBodyLimit::disable())
        .with_state(Ctx {
            shared: shared.clone(),
            max_body,
        })
        .merge(crate::api::router(shared))
        .merge(crate::inbox::router())
}

/// How much of an oversized body is read (and discarded) so the sender
/// gets its 413 instead of a connection reset; beyond this it is cut off.
const DRAIN_FACTOR: usize = 4;

/// Reads a body of at most `max` bytes. An oversized body is drained up to
/// `DRAIN_FACTOR × max` and reported as `Err(bytes seen)`: closing a socket
/// with unread data makes the kernel send a reset, and the client would
/// never see the 413.
async fn read_capped(body: Body, max: usize) -> Result<Vec<u8>, usize> {
    let mut body = std::pin::pin!(body);
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= max {
                buf.extend_from_slice(&data);
            } else if seen > max.saturating_mul(DRAIN_FACTOR) {
                break;
            }
        }
    }
    if seen > max { Err(seen) } else { Ok(buf) }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Whether the host does all of its work: 503 when it is the publisher of
/// the NATS JetStream sink and NATS cannot be reached (ingest goes on into
/// the outbox meanwhile, so `/healthz` stays up). The body shows the
/// stream's state and backlog.
async fn readyz(State(ctx): State<Ctx>) -> Response {
    // A load balancer sends webhooks and API calls only to hosts that can
    // store them: the queue must answer (one small read) within the limit.
    let database = match tokio::time::timeout(READY_TIMEOUT, ctx.shared.storage.leases()).await {
        Ok(Ok(_)) => {
            serde_json::json!({ "ok": true, "backend": ctx.shared.storage.backend_name() })
        }
        Ok(Err(e)) => serde_json::json!({ "ok": false, "error": e.to_string() }),
        Err(_) => serde_json::json!({
            "ok": false,
            "error": format!("no answer within {} s", READY_TIMEOUT.as_secs()),
        }),
    };
    let database_ok = database["ok"] == serde_json::Value::Bool(true);
    let (stream_ok, stream) = match &ctx.shared.stream {
        Some(monitor) => (monitor.ready(), Some(monitor.status())),
        None => (true, None),
    };
    let ready = database_ok && stream_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::json!({ "ready": ready, "database": database });
    if let Some(stream) = stream {
        body["stream"] = serde_json::to_value(stream).unwrap_or_default();
    }
    (status, axum::Json(body)).into_response()
}

/// How long `/readyz` waits for the queue.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Every connector with its health, whether it needs a person, and its
/// last error: what an operator looks at when a channel goes quiet.
async fn status(State(ctx): State<Ctx>) -> Response {
    let mut connectors: Vec<_> = ctx.shared.connectors.values().collect();
    connectors.sort_by(|a, b| (&a.id.brand, &a.id.connector).cmp(&(&b.id.brand, &b.id.connector)));
    let connectors: Vec<serde_json::Value> = connectors
        .into_iter()
        .map(|c| {
            let mut entry = serde_json::json!({
                "brand": c.id.brand,
                "connector": c.id.connector,
                "channel": c.channel,
                "polls": c.polls,
            });
            if let (Some(entry), Ok(serde_json::Value::Object(status))) =
                (entry.as_object_mut(), serde_json::to_value(c.status()))
            {
                entry.extend(status);
            }
            entry
        })
        .collect();
    let mut body = serde_json::json!({ "connectors": connectors });
    if let (Some(monitor), Some(body)) = (&ctx.shared.stream, body.as_object_mut()) {
        body.insert("stream".into(), serde_json::json!(monitor.status()));
    }
    axum::Json(body).into_response()
}

async fn metrics(State(ctx): State<Ctx>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        ctx.shared.metrics.render(),
    )
}

fn plain(status: StatusCode, text: String) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        text + "\n",
    )
        .into_response()
}

async fn webhook_sub(
    state: State<Ctx>,
    Path((brand, connector, rest)): Path<(String, String, String)>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, brand, connector, rest, method, query, headers, body).await
}

async fn webhook(
    state: State<Ctx>,
    Path((brand, connector)): Path<(String, String)>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(
        state,
        brand,
        connector,
        String::new(),
        method,
        query,
        headers,
        body,
    )
    .await
}

/// Runs the connector's `handle-webhook`, commits what it returned, and only
/// then answers with the plugin's response. If the plugin fails or the
/// commit fails, the caller gets a 5xx (or 400 for a payload the plugin
/// calls invalid) and nothing is stored, so the channel's retry is safe.
#[allow(clippy::too_many_arguments)]
async fn handle(
    State(ctx): State<Ctx>,
    brand: String,
    connector: String,
    path: String,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let shared = ctx.shared;
    let Some(handle) = shared
        .connectors
        .get(&(brand.clone(), connector.clone()))
        .cloned()
    else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("no connector {connector:?} for brand {brand:?}"),
        );
    };
    let body = match read_capped(body, ctx.max_body).await {
        Ok(body) => body,
        Err(seen) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "body of {seen}+ bytes exceeds the limit of {} bytes",
                    ctx.max_body
                ),
            );
        }
    };
    let request = WebhookRequest {
        method: method.as_str().to_string(),
        path,
        query: url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let started = Instant::now();
    let result = handle.instance.lock().await.handle_webhook(request).await;
    shared
        .metrics
        .observe_call(&handle.id, "handle-webhook", started.elapsed());
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(error) => {
            shared.call_failed(&handle.id, &error);
            // A malformed or forged delivery is the sender's fault, not the
            // connector's: only what says something about the connector
            // (refused credentials, a trap, a guard) counts against it.
            if !matches!(
                error,
                PluginError::Connector(
                    ConnectorError::InvalidInput { .. }
                        | ConnectorError::NotAllowed { .. }
                        | ConnectorError::Unsupported { .. }
                )
            ) {
                handle.failed(Some(&error));
            }
            return error_response(&error);
        }
    };
    shared
        .metrics
        .webhooks
        .get_or_create(&Metrics::labels(&handle.id))
        .inc();
    if (!outcome.messages.is_empty() || !outcome.updates.is_empty())
        && shared
            .ingest(&handle, &outcome.messages, &outcome.updates, None)
            .await
            .is_err()
    {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "could not store the delivery; retry later".into(),
        );
    }
    shared.metrics.success(&handle.id);
    handle.delivered();
    let response = outcome.response;
    let mut builder =
        Response::builder().status(StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK));
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(axum::body::Body::from(response.body))
        .unwrap_or_else(|_| {
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "bad response from plugin".into(),
            )
        })
}

fn error_response(error: &PluginError) -> Response {
    match error {
        PluginError::Connector(ConnectorError::InvalidInput { detail }) => plain(
            StatusCode::BAD_REQUEST,
            format!("invalid payload: {detail}"),
        ),
        PluginError::Connector(ConnectorError::Unsupported { .. }) => plain(
            StatusCode::NOT_FOUND,
            "this connector does not accept webhooks".into(),
        ),
        PluginError::Connector(ConnectorError::RateLimited { retry_after_ms, .. }) => {
            let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "busy; retry later".into());
            let secs = retry_after_ms.div_ceil(1000).max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        PluginError::Connector(ConnectorError::Transient { .. }) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporary failure; retry later".into(),
        ),
        // Traps, guards and the plugin's own permanent errors: the delivery
        // is not stored; the details are in the host's log, not in the reply.
        _ => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the connector failed to handle this delivery".into(),
        ),
    }
}
