//! `GET /api/v1/brands/{brand}/events`: what changed in a brand's queue,
//! as Server-Sent Events, so an inbox re-reads only when it must.
//!
//! Each event is `event: messages` or `event: case` with the JSON of a
//! [`LiveEvent`] as data. A subscriber that falls too far behind gets
//! `event: resync` (data: how many events it missed) and stays connected:
//! it should re-read what it shows. Comments keep idle connections open
//! through proxies. The stream ends when the service stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::auth::Principal;
use super::error::ApiError;
use crate::service::{LiveEvent, Shared};

/// How often an idle stream gets a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What one subscription needs between events.
struct Subscription {
    brand: String,
    events: broadcast::Receiver<LiveEvent>,
    stopping: watch::Receiver<bool>,
}

impl Subscription {
    /// The next event for this brand; `None` when the service stops.
    async fn next(&mut self) -> Option<Event> {
        loop {
            let received = tokio::select! {
                biased;
                _ = self.stopping.wait_for(|stop| *stop) => return None,
                received = self.events.recv() => received,
            };
            match received {
                Ok(event) if event.brand == self.brand => return Some(to_sse(&event)),
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    return Some(Event::default().event("resync").data(missed.to_string()));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn to_sse(event: &LiveEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    Event::default().event(event.kind).data(data)
}

pub async fn events(
    State(shared): State<Arc<Shared>>,
    principal: Principal,
    Path(brand): Path<String>,
) -> Result<Response, ApiError> {
    principal.actor_for(&brand)?;
    // Subscribe before answering: whatever happens after the client has
    // the response headers reaches it.
    let subscription = Subscription {
        brand,
        events: shared.events.subscribe(),
        stopping: shared.stopping.subscribe(),
    };
    let stream = futures_util::stream::unfold(subscription, |mut sub| async move {
        let event = sub.next().await?;
        Some((Ok::<_, Infallible>(event), sub))
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    // Tell buffering reverse proxies (nginx) to pass events on at once.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}
