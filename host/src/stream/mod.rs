//! The NATS JetStream sink: every newly stored message, every edit and
//! deletion, and every case state change is published to
//! `<prefix>.<brand>.<channel>.<event>` (see `docs/stream.md`).
//!
//! ```text
//! commit / write_case ──(same transaction)──> outbox rows (queue::outbox)
//!                                                  │ seq order
//!                       publisher task (one per database) ──Nats-Msg-Id──> JetStream
//!                                                  │ PubAck
//!                                            rows deleted
//! ```
//!
//! Events are never published from the commit itself: the outbox makes
//! publication at-least-once whatever NATS does (down at commit time, gone
//! between publish and acknowledgement, restarted), and JetStream's
//! de-duplication on the deterministic message ids turns the re-sends into
//! exactly-once on the stream, within its duplicate window.
//!
//! [`StreamMonitor`] is what the publisher reports: `/readyz`, `/status`
//! and the metrics show it.

pub mod publisher;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::capabilities::Secret;

/// `[stream] stream` when not given.
pub const DEFAULT_STREAM: &str = "WEBCARE";

/// `[stream] subject_prefix` when not given.
pub const DEFAULT_SUBJECT_PREFIX: &str = "webcare";

/// `[stream] duplicate_window_seconds` when not given: long enough to
/// cover a publisher's reconnect and resend after a lost acknowledgement
/// (JetStream's own default is 2 minutes).
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// What the publisher needs: `[stream]`, its URL resolved.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// One NATS server URL, or several separated by commas.
    pub url: Secret,
    pub stream: String,
    pub subject_prefix: String,
    pub duplicate_window: Duration,
}

/// Whether `text` can prefix every subject: dot-separated tokens, none
/// empty, none with a wildcard or whitespace.
pub fn is_subject_prefix(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| !matches!(c, '*' | '>') && !c.is_whitespace() && !c.is_control())
        })
}

/// The server addresses of a `[stream] url`.
pub fn server_addrs(url: &str) -> Result<Vec<async_nats::ServerAddr>, String> {
    let addrs = url
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<async_nats::ServerAddr>()
                .map_err(|e| e.to_string())
                .and_then(|addr| match addr.is_websocket() {
                    true => Err("websocket URLs are not supported; use nats:// or tls://".into()),
                    false => Ok(addr),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err("no NATS server given; write e.g. nats://127.0.0.1:4222".into());
    }
    Ok(addrs)
}

/// What is wrong with a `[stream] url`, if anything (without the URL).
pub fn url_problem(url: &str) -> Option<String> {
    server_addrs(url).err().map(|e| {
        format!("{e}; write nats://HOST:PORT (several separated by commas), or tls://HOST:PORT")
    })
}

/// Whether a `[stream] url` carries credentials (user, password or token).
pub fn url_has_credentials(url: &str) -> bool {
    server_addrs(url).is_ok_and(|addrs| {
        addrs.iter().any(|addr| {
            let url = addr.clone().into_inner();
            !url.username().is_empty() || url.password().is_some()
        })
    })
}

/// What the publisher reports, shared with the HTTP routes. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StreamMonitor {
    /// 1 while connected to NATS.
    pub connected: Gauge,
    /// 1 while this host holds the publisher's lease (the only publisher
    /// of its database).
    pub publishing: Gauge,
    /// Outbox rows waiting (as last counted).
    pub backlog: Gauge,
    /// Events acknowledged by JetStream and removed from the outbox.
    pub published: Counter,
    /// Re-sent events JetStream acknowledged as duplicates (and dropped).
    pub duplicates: Counter,
    /// Failed connects, stream set-ups, publishes and outbox reads.
    pub errors: Counter,
    last_error: Arc<Mutex<Option<String>>>,
}

/// The stream's state on `/readyz` and `/status`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StreamStatus {
    pub connected: bool,
    pub publishing: bool,
    pub backlog: i64,
    pub published: u64,
    pub duplicates: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

impl StreamMonitor {
    /// Adds the stream's metrics to a host's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "stream_connected",
            "1 while the NATS JetStream publisher is connected",
            self.connected.clone(),
        );
        registry.register(
            "stream_publishing",
            "1 while this host is the publisher of its queue's outbox",
            self.publishing.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Outbox events waiting to be published to NATS JetStream",
            self.backlog.clone(),
        );
        registry.register(
            "stream_published",
            "Events acknowledged by NATS JetStream and removed from the outbox",
            self.published.clone(),
        );
        registry.register(
            "stream_duplicates",
            "Re-sent events NATS JetStream dropped as duplicates",
            self.duplicates.clone(),
        );
        registry.register(
            "stream_publish_errors",
            "Failed NATS connects, stream set-ups, publishes and outbox reads",
            self.errors.clone(),
        );
    }

    /// Records a failure (counted, and kept as the last error).
    pub fn failed(&self, error: &str) {
        self.errors.inc();
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }

    pub fn status(&self) -> StreamStatus {
        StreamStatus {
            connected: self.connected.get() == 1,
            publishing: self.publishing.get() == 1,
            backlog: self.backlog.get(),
            published: self.published.get(),
            duplicates: self.duplicates.get(),
            errors: self.errors.get(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// Ready unless this host is the publisher and cannot reach NATS (a
    /// host that does not publish leaves NATS to the one that does).
    pub fn ready(&self) -> bool {
        self.publishing.get() == 0 || self.connected.get() == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_tokens_without_wildcards() {
        assert!(is_subject_prefix("webcare"));
        assert!(is_subject_prefix("acme.care"));
        for bad in ["", ".", "a..b", "a.", "a.*", "a.>", "a b", "web\tcare"] {
            assert!(!is_subject_prefix(bad), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_checked_without_repeating_them() {
        assert_eq!(url_problem("nats://127.0.0.1:4222"), None);
        assert_eq!(url_problem("127.0.0.1:4222, tls://nats.example:4443"), None);
        let problem = url_problem("http://nats.example:4222").unwrap();
        assert!(problem.contains("write nats://HOST:PORT"), "{problem}");
        assert!(url_problem("").unwrap().contains("no NATS server given"));
        assert!(
            url_problem("ws://nats.example")
                .unwrap()
                .contains("websocket")
        );
        assert!(url_has_credentials("nats://care:hunter2@nats.example:4222"));
        assert!(url_has_credentials("nats://s3cr3t-token@nats.example:4222"));
        assert!(!url_has_credentials("nats://nats.example:4222"));
    }
}
