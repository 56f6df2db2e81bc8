//! One polling task per connector: interval with jitter, `retry-after` and
//! rate limits honoured, capped exponential backoff on failures, health
//! tracked — without ever stopping the other connectors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{ConnectorHandle, Shared};
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
pub async fn run(
    shared: Arc<Shared>,
    handle: Arc<ConnectorHandle>,
    mut stop: watch::Receiver<bool>,
) {
    let id = &handle.id;
    let mut failures = 0u32;
    let mut cursor = match shared.storage.cursor(id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(brand = %id.brand, connector = %id.connector, "cannot read the cursor, connector not started: {e}");
            shared.metrics.set_healthy(id, false);
            return;
        }
    };
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if *stop.borrow() {
            break;
        }
        wait = poll_once(&shared, &handle, &mut cursor, &mut failures).await;
        if wait >= RELEASE_WHEN_IDLE {
            // An idle connector holds no instance slot: with hundreds of
            // connectors polling every minute, only the busy ones stay warm.
            handle.instance.lock().await.release();
        }
    }
    tracing::debug!(brand = %id.brand, connector = %id.connector, "scheduler stopped");
}

/// One poll and its commit; returns how long to wait before the next.
async fn poll_once(
    shared: &Shared,
    handle: &ConnectorHandle,
    cursor: &mut Option<String>,
    failures: &mut u32,
) -> Duration {
    let id = &handle.id;
    let started = Instant::now();
    let result = handle.instance.lock().await.poll(cursor.as_deref()).await;
    shared.metrics.observe_call(id, "poll", started.elapsed());
    let labels = super::metrics::Metrics::labels(id);
    match result {
        Ok(batch) => {
            shared.metrics.polls.get_or_create(&labels).inc();
            match shared
                .ingest(
                    handle,
                    &batch.messages,
                    &batch.updates,
                    batch.next_cursor.as_deref(),
                )
                .await
            {
                Ok(outcome) => {
                    if let Some(next) = batch.next_cursor {
                        *cursor = Some(next);
                    }
                    *failures = 0;
                    shared.metrics.success(id);
                    tracing::debug!(brand = %id.brand, connector = %id.connector, inserted = outcome.inserted, duplicates = outcome.duplicates, "poll committed");
                    let base = if batch.has_more {
                        Duration::ZERO
                    } else {
                        jittered(handle.poll_interval)
                    };
                    batch
                        .retry_after_ms
                        .map_or(base, |ms| base.max(Duration::from_millis(ms)))
                }
                Err(_) => failed(shared, handle, failures, None),
            }
        }
        Err(error) => {
            shared.call_failed(id, &error);
            failed(shared, handle, failures, Some(&error))
        }
    }
}

fn failed(
    shared: &Shared,
    handle: &ConnectorHandle,
    failures: &mut u32,
    error: Option<&PluginError>,
) -> Duration {
    let id = &handle.id;
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
