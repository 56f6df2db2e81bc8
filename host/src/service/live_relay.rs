//! Live events across hosts. An inbox's event stream (`GET
//! /api/v1/brands/{brand}/events`) is served by whichever host the load
//! balancer picked, but the change may happen on another: a webhook or a
//! poll stored there, an agent answered there. Where the storage is shared
//! by several hosts ([`Storage::peers`]: PostgreSQL), every host relays the
//! [`LiveEvent`]s it publishes to the others, and publishes theirs to its
//! own subscribers.
//!
//! * **Out:** events gather for [`GATHER`], duplicates go, and one note
//!   (`{"host": ..., "events": [...]}`) carries them: a burst of commits
//!   costs one `NOTIFY`, not one per commit. A host that cannot keep up
//!   drops events rather than slow its commits (they are hints to re-read).
//! * **In:** notes of other hosts are published to this host's
//!   subscribers (never relayed again). When the listening session is lost
//!   and found again, notes may have been missed: every brand's
//!   subscribers are told to re-read.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};

use super::LiveEvent;
use crate::queue::{PEER_PAYLOAD_MAX, PeerSignal};

/// How long outgoing events gather into one note.
pub const GATHER: Duration = Duration::from_millis(20);

/// Events waiting to go out; more are dropped.
pub const OUTGOING_BUFFER: usize = 4_096;

/// How long to wait before listening again after the session was lost.
const LISTEN_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// One note between hosts.
#[derive(Debug, Serialize, Deserialize)]
struct Note {
    /// The sender's `[host] id`: a host skips its own notes.
    host: String,
    events: Vec<WireEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WireEvent {
    brand: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    case_id: Option<i64>,
}

impl WireEvent {
    fn of(event: &LiveEvent) -> Self {
        WireEvent {
            brand: event.brand.clone(),
            kind: event.kind.to_string(),
            case_id: event.case_id,
        }
    }

    /// The event, when its kind is one this host knows.
    fn to_live(&self) -> Option<LiveEvent> {
        let kind = match self.kind.as_str() {
            "messages" => "messages",
            "case" => "case",
            "alert" => "alert",
            _ => return None,
        };
        Some(LiveEvent {
            brand: self.brand.clone(),
            kind,
            case_id: self.case_id,
        })
    }
}

/// Sends this host's events to the others, a note per [`GATHER`].
pub async fn send(
    peers: std::sync::Arc<dyn PeerSignal>,
    host: String,
    mut outgoing: mpsc::Receiver<LiveEvent>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            event = outgoing.recv() => match event {
                Some(event) => event,
                None => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        tokio::time::sleep(GATHER).await;
        let mut events = vec![WireEvent::of(&first)];
        while let Ok(event) = outgoing.try_recv() {
            let event = WireEvent::of(&event);
            if !events.contains(&event) {
                events.push(event);
            }
        }
        for payload in notes(&host, events) {
            if let Err(e) = peers.signal(&payload).await {
                tracing::warn!("cannot tell the other hosts about changes: {e}");
            }
        }
    }
}

/// The notes that carry `events`, each within [`PEER_PAYLOAD_MAX`].
fn notes(host: &str, events: Vec<WireEvent>) -> Vec<String> {
    let encode = |events: Vec<WireEvent>| {
        serde_json::to_string(&Note {
            host: host.to_string(),
            events,
        })
        .unwrap_or_default()
    };
    // A note's size is its envelope plus each event and a comma between.
    let envelope = encode(Vec::new()).len();
    let mut out = Vec::new();
    let mut pending: Vec<WireEvent> = Vec::new();
    let mut size = envelope;
    for event in events {
        let length = serde_json::to_string(&event).map_or(usize::MAX, |json| json.len());
        if envelope.saturating_add(length) > PEER_PAYLOAD_MAX {
            // Too large for any note (a brand id of thousands of bytes).
            continue;
        }
        let added = length + usize::from(!pending.is_empty());
        if size + added > PEER_PAYLOAD_MAX {
            out.push(encode(std::mem::take(&mut pending)));
            size = envelope;
            pending.push(event);
            size += length;
        } else {
            pending.push(event);
            size += added;
        }
    }
    if !pending.is_empty() {
        out.push(encode(pending));
    }
    out
}

/// Publishes the other hosts' events to this host's subscribers, listening
/// again whenever the session is lost.
pub async fn receive(
    peers: std::sync::Arc<dyn PeerSignal>,
    host: String,
    brands: Vec<String>,
    local: broadcast::Sender<LiveEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut lost = false;
    loop {
        match peers.listen().await {
            Ok(mut notes) => {
                if lost {
                    tracing::info!("listening to the other hosts again");
                    // Notes sent meanwhile are gone: re-read everything.
                    for brand in &brands {
                        let _ = local.send(LiveEvent::messages(brand));
                    }
                }
                loop {
                    let note = tokio::select! {
                        note = notes.recv() => note,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    let Some(note) = note else { break };
                    deliver(&host, &note, &local);
                }
                tracing::warn!("lost the session listening to the other hosts");
            }
            Err(e) => tracing::warn!("cannot listen to the other hosts: {e}"),
        }
        lost = true;
        tokio::select! {
            _ = tokio::time::sleep(LISTEN_AGAIN_AFTER) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn deliver(host: &str, payload: &str, local: &broadcast::Sender<LiveEvent>) {
    let note: Note = match serde_json::from_str(payload) {
        Ok(note) => note,
        Err(e) => {
            tracing::debug!("ignoring a note from another host that is not one ({e})");
            return;
        }
    };
    if note.host == host {
        return;
    }
    for event in note.events.iter().filter_map(WireEvent::to_live) {
        let _ = local.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(brand: &str, kind: &str, case_id: Option<i64>) -> WireEvent {
        WireEvent {
            brand: brand.to_string(),
            kind: kind.to_string(),
            case_id,
        }
    }

    #[test]
    fn notes_stay_within_the_payload_limit_and_keep_every_event() {
        let events: Vec<WireEvent> = (0..500)
            .map(|i| event(&format!("brand-{i}"), "case", Some(i)))
            .collect();
        let sent = notes("care-1", events.clone());
        assert!(sent.len() > 1, "500 events need several notes");
        let mut seen = Vec::new();
        for payload in &sent {
            assert!(payload.len() <= PEER_PAYLOAD_MAX);
            let note: Note = serde_json::from_str(payload).unwrap();
            assert_eq!(note.host, "care-1");
            seen.extend(note.events);
        }
        assert_eq!(seen, events);
        let huge = event(&"x".repeat(PEER_PAYLOAD_MAX), "messages", None);
        assert!(notes("care-1", vec![huge]).is_empty());
    }

    #[test]
    fn other_hosts_events_are_delivered_and_own_ones_skipped() {
        let (local, mut rx) = broadcast::channel(16);
        let note = |host: &str| {
            serde_json::to_string(&Note {
                host: host.to_string(),
                events: vec![
                    event("acme", "case", Some(7)),
                    event("acme", "from-a-newer-version", None),
                    event("acme", "messages", None),
                ],
            })
            .unwrap()
        };
        deliver("care-1", &note("care-1"), &local);
        deliver("care-1", "not json", &local);
        assert!(
            rx.try_recv().is_err(),
            "own and malformed notes are skipped"
        );
        deliver("care-1", &note("care-2"), &local);
        assert_eq!(rx.try_recv().unwrap(), LiveEvent::case("acme", 7));
        assert_eq!(rx.try_recv().unwrap(), LiveEvent::messages("acme"));
        assert!(rx.try_recv().is_err(), "unknown kinds are skipped");
    }
}
