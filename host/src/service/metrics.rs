//! Per-connector metrics in the Prometheus text format (`GET /metrics`).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::capabilities::ConnectorId;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    pub brand: String,
    pub connector: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub brand: String,
    pub connector: String,
    /// `PluginError::kind()`, or `storage`.
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub brand: String,
    pub connector: String,
    /// `poll`, `handle-webhook`, `perform`.
    pub call: String,
}

/// All metrics of one host.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    pub messages_ingested: Family<ConnectorLabels, Counter>,
    pub duplicates_dropped: Family<ConnectorLabels, Counter>,
    pub polls: Family<ConnectorLabels, Counter>,
    pub webhooks: Family<ConnectorLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub traps: Family<ConnectorLabels, Counter>,
    pub call_seconds: Family<CallLabels, Histogram>,
    pub last_success: Family<ConnectorLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub healthy: Family<ConnectorLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("webcare");
        let messages_ingested = Family::<ConnectorLabels, Counter>::default();
        let duplicates_dropped = Family::<ConnectorLabels, Counter>::default();
        let polls = Family::<ConnectorLabels, Counter>::default();
        let webhooks = Family::<ConnectorLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let traps = Family::<ConnectorLabels, Counter>::default();
        let call_seconds = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            // 100 µs .. ~100 s: plugin calls range from a warm no-op to a slow API.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 4.0, 11,
            ))
        });
        let last_success =
            Family::<ConnectorLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let healthy = Family::<ConnectorLabels, Gauge>::default();
        registry.register(
            "messages_ingested",
            "New messages stored in the care queue",
            messages_ingested.clone(),
        );
        registry.register(
            "duplicates_dropped",
            "Messages dropped because the queue already held them",
            duplicates_dropped.clone(),
        );
        registry.register("polls", "Completed poll calls", polls.clone());
        registry.register("webhooks", "Webhook deliveries handled", webhooks.clone());
        registry.register("errors", "Failed calls and commits by kind", errors.clone());
        registry.register(
            "traps",
            "Plugin calls stopped by a trap or a guard",
            traps.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Plugin call latency",
            call_seconds.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful poll or webhook",
            last_success.clone(),
        );
        registry.register(
            "connector_healthy",
            "1 when the connector's last calls succeeded",
            healthy.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            messages_ingested,
            duplicates_dropped,
            polls,
            webhooks,
            errors,
            traps,
            call_seconds,
            last_success,
            healthy,
        }
    }

    pub fn labels(id: &ConnectorId) -> ConnectorLabels {
        ConnectorLabels {
            brand: id.brand.clone(),
            connector: id.connector.clone(),
        }
    }

    pub fn observe_call(&self, id: &ConnectorId, call: &str, took: Duration) {
        self.call_seconds
            .get_or_create(&CallLabels {
                brand: id.brand.clone(),
                connector: id.connector.clone(),
                call: call.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn error(&self, id: &ConnectorId, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                brand: id.brand.clone(),
                connector: id.connector.clone(),
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn success(&self, id: &ConnectorId) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_success
            .get_or_create(&Self::labels(id))
            .set(now.as_secs_f64());
        self.healthy.get_or_create(&Self::labels(id)).set(1);
    }

    pub fn set_healthy(&self, id: &ConnectorId, healthy: bool) {
        self.healthy
            .get_or_create(&Self::labels(id))
            .set(i64::from(healthy));
    }

    /// Adds the NATS JetStream publisher's metrics (outbox backlog,
    /// published events, publish errors).
    pub fn register_stream(&self, monitor: &crate::stream::StreamMonitor) {
        let mut registry = self.registry.lock().expect("metrics registry poisoned");
        monitor.register(&mut registry);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry poisoned");
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}
