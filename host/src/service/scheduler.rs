//! One polling task per connector: interval with jitter, `retry-after` and
//! rate limits honoured, capped exponential backoff on failures, health
//! tracked — without ever stopping the other connectors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::leases::Held;
use super::{ConnectorHandle, PreparedIngest, Shared};
use crate::model::ConnectorError;
use crate::runtime::PluginError;

/// Longest wait between attempts of a failing connector.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// A connector whose next poll is at least this far away gives up its warm
/// instance (re-instantiating costs ~10 µs; a slot costs memory).
pub const RELEASE_WHEN_IDLE: Duration = Duration::from_secs(5);
/// Consecutive failures after which a connector is reported unhealthy.
pub const UNHEALTHY_AFTER: u32 = 3;

/// `interval` ± 10 %, so connectors started together do not poll in step.
pub fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_secs_f64() * 0.1;
    let offset = (fastrand::f64() * 2.0 - 1.0) * spread;
    Duration::from_secs_f64((interval.as_secs_f64() + offset).max(0.0))
}

/// Backoff after `failures` consecutive failures: interval × 2^(n-1), capped.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    interval.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Runs until `stop` turns true; an in-flight poll and its commit finish first.
/// Polls only while this host holds the connector's lease (`held`, see
/// [`super::leases`]), starting each time from the committed cursor.
pub async fn run(
    shared: Arc<Shared>,
    handle: Arc<ConnectorHandle>,
    mut stop: watch::Receiver<bool>,
    mut held: Held,
) {
    let id = &handle.id;
    loop {
        tokio::select! {
            gained = held.wait_for(|h| h.contains(id)) => if gained.is_err() { break },
            _ = stop.wait_for(|s| *s) => break,
        }
        if *stop.borrow() {
            break;
        }
        tracing::debug!(brand = %id.brand, connector = %id.connector, "polling: this host holds the lease");
        match poll_while_held(&shared, &handle, &mut stop, &held).await {
            Ended::Stopped => break,
            Ended::LeaseLost => {
                tracing::info!(brand = %id.brand, connector = %id.connector, "polling paused: another host holds the lease");
            }
        }
    }
    tracing::debug!(brand = %id.brand, connector = %id.connector, "scheduler stopped");
}

/// Why [`poll_while_held`] returned.
enum Ended {
    Stopped,
    LeaseLost,
}

/// While a backlog drains (`has-more`), the commit of one page overlaps the
/// fetch of the next, its triage and the building of its rows: the plugin,
/// the channel and triage work while the database writes.
/// Commits stay strictly in order, each with its own cursor, and a page
/// fetched on top of a commit that then fails is dropped and fetched again,
/// so exactly-once holds as without the overlap.
async fn poll_while_held(
    shared: &Arc<Shared>,
    handle: &Arc<ConnectorHandle>,
    stop: &mut watch::Receiver<bool>,
    held: &Held,
) -> Ended {
    let id = &handle.id;
    let mut failures = 0u32;
    // The cursor of the last commit, and the one the next poll starts from
    // (ahead of it while a commit is in flight). Read afresh each time the
    // lease is gained: another host may have moved it.
    let mut committed = match shared.storage.cursor(id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(brand = %id.brand, connector = %id.connector, "cannot read the cursor, connector not started: {e}");
            shared.metrics.set_healthy(id, false);
            return Ended::Stopped;
        }
    };
    let mut fetch_from = committed.clone();
    let mut in_flight: Option<(tokio::task::JoinHandle<bool>, Option<String>)> = None;
    let mut wait = Duration::ZERO;
    let mut lost = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if *stop.borrow() {
            break;
        }
        if !held.borrow().contains(id) {
            lost = true;
            break;
        }
        let started = Instant::now();
        let result = handle
            .instance
            .lock()
            .await
            .poll(fetch_from.as_deref())
            .await;
        shared.metrics.observe_call(id, "poll", started.elapsed());
        // Triage and the queue's rows for this page, while the previous
        // page is still being written.
        let result = result.map(|batch| {
            let prepared = shared.prepare_ingest(
                handle,
                &batch.messages,
                &batch.updates,
                batch.next_cursor.as_deref(),
            );
            (batch, prepared)
        });
        if let Some((commit, after)) = in_flight.take() {
            if commit.await.unwrap_or(false) {
                committed = after;
            } else {
                // What was just fetched builds on a page that is not stored.
                fetch_from = committed.clone();
                wait = failed(shared, handle, &mut failures, None);
                continue;
            }
        }
        wait = match result {
            Ok((batch, prepared)) => {
                shared
                    .metrics
                    .polls
                    .get_or_create(&super::metrics::Metrics::labels(id))
                    .inc();
                let after = batch.next_cursor.clone().or_else(|| fetch_from.clone());
                let retry_after = batch.retry_after_ms.map(Duration::from_millis);
                if batch.has_more && retry_after.is_none() {
                    fetch_from = after.clone();
                    let (shared, handle) = (shared.clone(), handle.clone());
                    in_flight = Some((
                        tokio::spawn(async move { commit(&shared, &handle, prepared).await }),
                        after,
                    ));
                    failures = 0;
                    Duration::ZERO
                } else if commit(shared, handle, prepared).await {
                    committed = after;
                    fetch_from = committed.clone();
                    failures = 0;
                    let base = jittered(handle.poll_interval);
                    retry_after.map_or(base, |r| base.max(r))
                } else {
                    fetch_from = committed.clone();
                    failed(shared, handle, &mut failures, None)
                }
            }
            Err(error) => {
                shared.call_failed(id, &error);
                fetch_from = committed.clone();
                failed(shared, handle, &mut failures, Some(&error))
            }
        };
        if wait >= RELEASE_WHEN_IDLE {
            // An idle connector holds no instance slot: with hundreds of
            // connectors polling every minute, only the busy ones stay warm.
            handle.instance.lock().await.release();
        }
    }
    if let Some((commit, _)) = in_flight {
        let _ = commit.await;
    }
    if lost {
        Ended::LeaseLost
    } else {
        Ended::Stopped
    }
}

/// Commits one prepared page with its cursor; true when it is stored.
async fn commit(shared: &Shared, handle: &ConnectorHandle, prepared: PreparedIngest) -> bool {
    let id = &handle.id;
    match shared.commit_ingest(handle, prepared).await {
        Ok(outcome) => {
            shared.metrics.success(id);
            handle.succeeded();
            tracing::debug!(brand = %id.brand, connector = %id.connector, inserted = outcome.inserted, duplicates = outcome.duplicates, "poll committed");
            true
        }
        Err(_) => false,
    }
}

fn failed(
    shared: &Shared,
    handle: &ConnectorHandle,
    failures: &mut u32,
    error: Option<&PluginError>,
) -> Duration {
    let id = &handle.id;
    handle.failed(error);
    *failures += 1;
    if *failures >= UNHEALTHY_AFTER {
        shared.metrics.set_healthy(id, false);
    }
    let wait = match error {
        Some(PluginError::Connector(ConnectorError::RateLimited { retry_after_ms, .. })) => {
            // Not the connector's fault: wait as told, stay healthy.
            *failures = 0;
            shared.metrics.set_healthy(id, true);
            Duration::from_millis(*retry_after_ms).max(Duration::from_secs(1))
        }
        Some(PluginError::Connector(ConnectorError::Unauthorized { .. })) => {
            // Retrying will not fix credentials: report once per attempt and
            // try again only rarely, in case an operator rotated them.
            shared.metrics.set_healthy(id, false);
            tracing::error!(brand = %id.brand, connector = %id.connector, "connector needs attention: its credentials were refused; it retries every {} s", MAX_BACKOFF.as_secs());
            MAX_BACKOFF
        }
        _ => jittered(backoff(
            handle.poll_interval.min(Duration::from_secs(30)),
            *failures,
        )),
    };
    if *failures >= UNHEALTHY_AFTER {
        tracing::warn!(brand = %id.brand, connector = %id.connector, failures = *failures, "connector unhealthy; next attempt in {} ms", wait.as_millis());
    }
    wait
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let i = Duration::from_secs(10);
        assert_eq!(backoff(i, 1), Duration::from_secs(10));
        assert_eq!(backoff(i, 2), Duration::from_secs(20));
        assert_eq!(backoff(i, 4), Duration::from_secs(80));
        assert_eq!(backoff(i, 40), MAX_BACKOFF);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_secs(100)).as_secs_f64();
            assert!((90.0..=110.0).contains(&j), "{j}");
        }
    }
}
