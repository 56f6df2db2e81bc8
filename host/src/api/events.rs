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

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(
        brand: &str,
        capacity: usize,
    ) -> (
        broadcast::Sender<LiveEvent>,
        watch::Sender<bool>,
        Subscription,
    ) {
        let (events, rx) = broadcast::channel(capacity);
        let (stopping, stop_rx) = watch::channel(false);
        let sub = Subscription {
            brand: brand.into(),
            events: rx,
            stopping: stop_rx,
        };
        (events, stopping, sub)
    }

    /// The wire form of an event, as the client reads it.
    async fn wire(event: Event) -> String {
        let stream = futures_util::stream::iter([Ok::<_, Infallible>(event)]);
        let body = Sse::new(stream).into_response().into_body();
        let bytes = axum::body::to_bytes(body, 1 << 16).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn only_the_brands_events_come_through_with_their_kind() {
        let (events, _stop, mut sub) = subscription("acme", 16);
        events.send(LiveEvent::messages("globex")).unwrap();
        events.send(LiveEvent::case("acme", 7)).unwrap();
        events.send(LiveEvent::messages("acme")).unwrap();
        let first = wire(sub.next().await.unwrap()).await;
        let second = wire(sub.next().await.unwrap()).await;
        assert_eq!(
            first,
            "event: case\ndata: {\"brand\":\"acme\",\"kind\":\"case\",\"case_id\":7}\n\n"
        );
        assert_eq!(
            second,
            "event: messages\ndata: {\"brand\":\"acme\",\"kind\":\"messages\"}\n\n"
        );
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_to_resync_and_stays() {
        let (events, _stop, mut sub) = subscription("acme", 2);
        for id in 0..5 {
            events.send(LiveEvent::case("acme", id)).unwrap();
        }
        let resync = wire(sub.next().await.unwrap()).await;
        assert_eq!(resync, "event: resync\ndata: 3\n\n");
        // Then the events still buffered, and new ones.
        for _ in 0..2 {
            assert!(sub.next().await.is_some());
        }
        events.send(LiveEvent::case("acme", 9)).unwrap();
        assert!(sub.next().await.is_some());
    }

    #[tokio::test]
    async fn the_stream_ends_when_the_service_stops() {
        let (_events, stop, mut sub) = subscription("acme", 2);
        let waiting = tokio::spawn(async move { sub.next().await.is_none() });
        tokio::task::yield_now().await;
        stop.send_replace(true);
        assert!(waiting.await.unwrap(), "no event, the stream ends");
    }
}
