//! The publisher: one task per host that moves outbox rows to JetStream.
//!
//! It first takes the outbox's lease ([`Outbox::lead`]: one publisher per
//! database), then connects, makes sure the stream exists, and drains the
//! outbox in `seq` order: each batch is sent with up to [`WINDOW`]
//! publications awaiting their PubAck (one acknowledgement round trip per
//! event would cap the rate at one event per RTT), and the rows are deleted
//! once acknowledged. On any error it deletes the acknowledged prefix,
//! drops the connection, waits (exponential backoff with jitter) and starts
//! again from the first row not deleted. Re-sent events carry the same
//! `Nats-Msg-Id`, so JetStream drops the ones it had already stored.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use tokio::sync::watch;

use super::{StreamMonitor, StreamSpec, server_addrs};
use crate::queue::StorageError;
use crate::queue::outbox::{Outbox, PublisherLease, header_safe_msg_id};

/// Rows read from the outbox at a time.
pub const BATCH: usize = 512;

/// Publications awaiting their PubAck at most.
pub const WINDOW: usize = 256;

/// How long a PubAck may take before the publication counts as failed.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Looks at the outbox this often even without a local commit (commits of
/// other hosts sharing a PostgreSQL queue wake nobody here).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Backoff after a failure: from this, doubling...
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ...up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(3);

/// Runs until `stop` turns true.
pub async fn run(
    outbox: Arc<dyn Outbox>,
    spec: StreamSpec,
    monitor: StreamMonitor,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    while !*stop.borrow() {
        let lease = tokio::select! {
            lease = outbox.lead() => lease,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match lease {
            Ok(lease) => {
                monitor.publishing.set(1);
                let publisher = Publisher {
                    outbox: &*outbox,
                    spec: &spec,
                    monitor: &monitor,
                };
                publisher.lead(&*lease, &mut stop, &mut backoff).await;
                monitor.publishing.set(0);
                monitor.connected.set(0);
            }
            Err(e) => {
                monitor.failed(&e.to_string());
                tracing::warn!(error = %e, "the outbox publisher cannot take its lease");
                if pause(backoff.next(), &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps for `pause`; true when told to stop meanwhile.
async fn pause(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = stop.wait_for(|stop| *stop) => true,
    };
    stopped || *stop.borrow()
}

/// Exponential backoff with full jitter.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let ceiling = BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(16))
            .min(BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(millis / 2..=millis))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Why a round of publishing stopped.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("{0}")]
    Storage(#[from] StorageError),
}

fn nats(what: &str, error: impl std::fmt::Display) -> Failure {
    Failure::Nats(format!("{what}: {error}"))
}

struct Publisher<'a> {
    outbox: &'a dyn Outbox,
    spec: &'a StreamSpec,
    monitor: &'a StreamMonitor,
}

impl Publisher<'_> {
    /// Publishes while the lease holds: connect, drain, and after a failure
    /// back off and connect again.
    async fn lead(
        &self,
        lease: &dyn PublisherLease,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) {
        while lease.is_held() && !*stop.borrow() {
            let connected = tokio::select! {
                connected = self.connect() => connected,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            let failure = match connected {
                Ok((client, js)) => {
                    let failure = self.drain(&client, &js, lease, stop, backoff).await;
                    self.monitor.connected.set(0);
                    failure
                }
                Err(failure) => Some(failure),
            };
            let Some(failure) = failure else {
                return;
            };
            self.monitor.failed(&failure.to_string());
            tracing::warn!(error = %failure, "publishing to NATS JetStream failed; retrying");
            if pause(backoff.next(), stop).await {
                return;
            }
        }
    }

    /// A new connection (the client reconnects by itself after a blip;
    /// after a failure the publisher drops it and makes a new one) and the
    /// stream, created when missing.
    async fn connect(&self) -> Result<(async_nats::Client, jetstream::Context), Failure> {
        let addrs = server_addrs(self.spec.url.expose()).map_err(|e| nats("the URL", e))?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(addrs)
            .await
            .map_err(|e| nats("connecting", e))?;
        self.monitor.connected.set(1);
        let mut context = jetstream::new(client.clone());
        context.set_timeout(ACK_TIMEOUT);
        let config = jetstream::stream::Config {
            name: self.spec.stream.clone(),
            subjects: vec![format!("{}.>", self.spec.subject_prefix)],
            duplicate_window: self.spec.duplicate_window,
            ..Default::default()
        };
        context
            .get_or_create_stream(config)
            .await
            .map_err(|e| nats(&format!("setting up stream {}", self.spec.stream), e))?;
        Ok((client, context))
    }

    /// Publishes until told to stop (`None`), the lease is lost (`None`) or
    /// something fails.
    async fn drain(
        &self,
        client: &async_nats::Client,
        js: &jetstream::Context,
        lease: &dyn PublisherLease,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Option<Failure> {
        let written = self.outbox.written();
        loop {
            if *stop.borrow() || !lease.is_held() {
                return None;
            }
            let state = client.connection_state();
            self.monitor
                .connected
                .set(i64::from(state == async_nats::connection::State::Connected));
            // Stopping mid-batch is safe: what was not deleted is sent again
            // at the next start, and JetStream drops what it already has.
            let published = tokio::select! {
                published = self.publish_batch(js) => published,
                _ = stop.wait_for(|stop| *stop) => return None,
            };
            match published {
                Ok(0) => {
                    if let Err(e) = self.count_backlog().await {
                        return Some(e);
                    }
                    // A commit since the read left a permit: no lost wake-up.
                    tokio::select! {
                        _ = written.notified() => {}
                        _ = tokio::time::sleep(POLL_EVERY) => {}
                        _ = stop.wait_for(|stop| *stop) => return None,
                    }
                }
                Ok(published) => {
                    backoff.reset();
                    let published = i64::try_from(published).unwrap_or(i64::MAX);
                    self.monitor.published.inc_by(published.unsigned_abs());
                    // Counted exactly once the outbox is drained.
                    let left = (self.monitor.backlog.get() - published).max(0);
                    self.monitor.backlog.set(left);
                }
                Err(failure) => return Some(failure),
            }
        }
    }

    async fn count_backlog(&self) -> Result<(), Failure> {
        let backlog = self.outbox.backlog().await?;
        self.monitor
            .backlog
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Publishes the head of the outbox and deletes what was acknowledged:
    /// the number of rows published.
    async fn publish_batch(&self, js: &jetstream::Context) -> Result<usize, Failure> {
        let rows = self.outbox.head(BATCH).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut acked = Vec::with_capacity(rows.len());
        let sent = self.send(js, rows, &mut acked).await;
        // The acknowledged prefix goes even when a later one failed, so
        // the retry resumes at the first row JetStream did not confirm.
        self.outbox.remove(&acked).await?;
        sent?;
        Ok(acked.len())
    }

    /// Waits for the oldest publication's PubAck.
    async fn await_ack(
        &self,
        in_flight: &mut InFlight,
        acked: &mut Vec<i64>,
    ) -> Result<(), Failure> {
        if let Some((seq, msg_id, ack)) = in_flight.pop_front() {
            let ack = ack
                .await
                .map_err(|e| nats(&format!("acknowledging {msg_id:?}"), e))?;
            if ack.duplicate {
                // A re-send of an event JetStream had stored: dropped there.
                self.monitor.duplicates.inc();
            }
            acked.push(seq);
        }
        Ok(())
    }

    async fn send(
        &self,
        js: &jetstream::Context,
        rows: Vec<crate::queue::outbox::OutboxRow>,
        acked: &mut Vec<i64>,
    ) -> Result<(), Failure> {
        let mut in_flight = VecDeque::with_capacity(WINDOW);
        for row in rows {
            if in_flight.len() >= WINDOW {
                self.await_ack(&mut in_flight, acked).await?;
            }
            let subject = format!("{}.{}", self.spec.subject_prefix, row.entry.subject);
            let publish = PublishMessage::build()
                .message_id(header_safe_msg_id(&row.entry.msg_id))
                .payload(Bytes::from(row.entry.payload));
            let ack = js
                .send_publish(subject, publish)
                .await
                .map_err(|e| nats(&format!("publishing {:?}", row.entry.msg_id), e))?;
            in_flight.push_back((row.seq, row.entry.msg_id, ack));
        }
        while !in_flight.is_empty() {
            self.await_ack(&mut in_flight, acked).await?;
        }
        Ok(())
    }
}

/// Publications awaiting their PubAck: (seq, msg id, the PubAck).
type InFlight = VecDeque<(i64, String, jetstream::context::PublishAckFuture)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter_and_resets() {
        let mut backoff = Backoff::default();
        let first = backoff.next();
        assert!(first >= BACKOFF_MIN / 2 && first <= BACKOFF_MIN);
        for _ in 0..20 {
            assert!(backoff.next() <= BACKOFF_MAX);
        }
        assert!(backoff.next() >= BACKOFF_MAX / 2);
        backoff.reset();
        assert!(backoff.next() <= BACKOFF_MIN);
    }
}
