//! The host service an operator runs: connectors polled on schedule or fed
//! by webhooks, every message committed to the care queue exactly once.
//!
//! ```text
//! ServiceSpec ──start──> per connector: ConnectorHandle (plugin instance behind a mutex)
//!                           ├── scheduler task: poll → commit(batch + cursor) → sleep
//!                           └── HTTP: /webhooks/{brand}/{connector} → handle-webhook → commit → response
//!                        /healthz, /metrics
//! ```
//! One call at a time per connector (the instance's mutex); connectors run
//! independently, so one failing or slow connector never holds up another.

pub mod http;
pub mod leases;
pub mod live_relay;
pub mod metrics;
pub mod scheduler;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Mutex, broadcast, watch};

use crate::capabilities::{AllowList, ConnectorId, Grants, IoLimits, Secret};
use crate::care::CareDesk;
use crate::care::crisis::{self, ALERT_SAMPLE, Alert, CrisisPolicy};
use crate::care::desk::Channels;
use crate::care::replies::{self, BrandReplies};
use crate::care::sla::ServiceLevels;
use crate::model::{
    Action, ActionResult, ActionTarget, Direction, Feature, Message, MessageUpdate,
};
use crate::queue::{CommitOutcome, IngestBatch, MessageTriage, Storage, StorageError};
use crate::runtime::{CallLimits, ConnectorInstance, PluginError, Runtime, SetupError};
use crate::stream::{StreamMonitor, StreamSpec};
use crate::triage::{Triage, TriagePolicy};
use metrics::Metrics;

/// Everything needed to run one connector.
#[derive(Debug, Clone)]
pub struct ConnectorSpec {
    pub id: ConnectorId,
    pub plugin: PathBuf,
    /// Poll the connector (when its plugin polls at all); false for
    /// webhook-only connectors.
    pub poll: bool,
    pub poll_interval: Duration,
    pub allow_list: AllowList,
    pub limits: CallLimits,
    pub settings: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
    /// The brand's triage policy.
    pub triage: TriagePolicy,
}

/// Everything needed to run the service.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub listen: SocketAddr,
    /// Time in-flight calls get to finish after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    /// Largest webhook body accepted (413 beyond).
    pub max_webhook_body: usize,
    pub connectors: Vec<ConnectorSpec>,
    /// Service levels per brand id; brands not named get the defaults.
    pub service_levels: HashMap<String, ServiceLevels>,
    /// Crisis early warning per brand id; brands not named are not watched.
    pub crisis: HashMap<String, CrisisPolicy>,
    /// Saved replies and acknowledgement templates per brand id.
    pub replies: HashMap<String, BrandReplies>,
    /// This host among the hosts on one queue (poll leases).
    pub cluster: leases::ClusterSpec,
    /// The NATS JetStream sink (`[stream]`); the storage must have been
    /// opened with the outbox on.
    pub stream: Option<StreamSpec>,
}

/// Turns a loaded configuration into what the service runs: the enabled
/// connectors, their secrets resolved.
pub fn spec_from_config(config: &crate::config::Config) -> Result<ServiceSpec, ServiceError> {
    let mut connectors = Vec::new();
    for (brand, connector) in config.connectors() {
        if !connector.enabled {
            continue;
        }
        let secrets = connector
            .resolve_secrets()
            .map_err(|unresolved| ServiceError::Secret {
                brand: brand.id.clone(),
                connector: connector.id.clone(),
                detail: format!("{}: {}", unresolved.name, unresolved.error),
            })?;
        connectors.push(ConnectorSpec {
            id: ConnectorId {
                brand: brand.id.clone(),
                connector: connector.id.clone(),
            },
            plugin: connector.plugin.clone(),
            poll: connector.poll,
            poll_interval: connector.poll_interval,
            allow_list: connector.allow_hosts.clone(),
            limits: connector.limits.clone(),
            settings: connector.settings.clone(),
            secrets,
            triage: brand.triage.clone(),
        });
    }
    Ok(ServiceSpec {
        cluster: leases::ClusterSpec {
            host_id: config.host.id.clone(),
            lease_time: config.host.lease_time,
        },
        listen: config.host.listen,
        shutdown_grace: config.host.shutdown_grace,
        max_webhook_body: DEFAULT_MAX_WEBHOOK_BODY,
        connectors,
        service_levels: config
            .brands
            .iter()
            .map(|b| (b.id.clone(), ServiceLevels::of_brand(b)))
            .collect(),
        crisis: config
            .brands
            .iter()
            .filter(|b| b.crisis.enabled)
            .map(|b| (b.id.clone(), b.crisis.clone()))
            .collect(),
        replies: config
            .brands
            .iter()
            .map(|b| {
                let replies = BrandReplies {
                    brand_name: b.name.clone(),
                    replies: b.replies.clone(),
                };
                (b.id.clone(), replies)
            })
            .collect(),
        stream: config
            .stream
            .as_ref()
            .map(|stream| {
                Ok::<_, ServiceError>(StreamSpec {
                    url: stream
                        .url
                        .resolve()
                        .map_err(|e| ServiceError::Stream(format!("stream.url: {e}")))?,
                    stream: stream.stream.clone(),
                    subject_prefix: stream.subject_prefix.clone(),
                    duplicate_window: stream.duplicate_window,
                })
            })
            .transpose()?,
    })
}

/// Largest webhook body accepted by default: generous for JSON and e-mail
/// deliveries, small enough that a flood cannot exhaust memory.
pub const DEFAULT_MAX_WEBHOOK_BODY: usize = 2 * 1024 * 1024;

/// A running connector: its plugin instance and what the scheduler and the
/// webhook route need to know about it.
pub struct ConnectorHandle {
    pub id: ConnectorId,
    pub channel: String,
    /// Whether a scheduler task polls it: the operator did not switch polling
    /// off and the plugin declares the `poll` feature.
    pub polls: bool,
    pub poll_interval: Duration,
    pub instance: Mutex<ConnectorInstance>,
    /// What `/status` shows; kept by the scheduler and the webhook route.
    pub status: std::sync::Mutex<status::ConnectorStatus>,
    /// The brand's triage, applied to every inbound message before commit.
    pub triage: Triage,
}

impl ConnectorHandle {
    /// Records a success (a committed poll or an accepted delivery).
    pub fn succeeded(&self) {
        self.status
            .lock()
            .expect("status lock poisoned")
            .succeeded();
    }

    /// Records an accepted webhook delivery.
    pub fn delivered(&self) {
        self.status
            .lock()
            .expect("status lock poisoned")
            .delivered();
    }

    /// Records a failure; `None` is a failed commit.
    pub fn failed(&self, error: Option<&PluginError>) {
        self.status
            .lock()
            .expect("status lock poisoned")
            .failed(error);
    }

    /// The current status.
    pub fn status(&self) -> status::ConnectorStatus {
        self.status.lock().expect("status lock poisoned").clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("brand {brand:?} connector {connector:?}: {source}")]
    Connector {
        brand: String,
        connector: String,
        #[source]
        source: Box<SetupError>,
    },
    #[error("brand {brand:?} connector {connector:?}: secret {detail}")]
    Secret {
        brand: String,
        connector: String,
        detail: String,
    },
    #[error("{0}")]
    Stream(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Shared by the scheduler tasks and the HTTP routes.
pub struct Shared {
    pub storage: Arc<dyn Storage>,
    pub metrics: Metrics,
    pub connectors: Arc<ConnectorMap>,
    /// The case workflow, answering through `connectors`.
    pub desk: Arc<CareDesk>,
    service_levels: HashMap<String, ServiceLevels>,
    default_levels: ServiceLevels,
    crisis: HashMap<String, CrisisPolicy>,
    replies: HashMap<String, BrandReplies>,
    /// For alert webhooks.
    http: reqwest::Client,
    /// What changed, for the inbox's live updates (`GET
    /// /api/v1/brands/{brand}/events`). Sending never waits: a subscriber
    /// that falls more than [`LIVE_EVENT_BUFFER`] events behind is told to
    /// re-read instead.
    pub events: broadcast::Sender<LiveEvent>,
    /// Turns true when the service stops, so long-lived responses (the
    /// event streams) end and graceful shutdown need not wait for them.
    pub stopping: watch::Sender<bool>,
    /// The NATS JetStream publisher's state, when `[stream]` is configured.
    pub stream: Option<StreamMonitor>,
    /// Live events on their way to the other hosts of the storage
    /// ([`live_relay`]), when it is shared.
    pub peers: Option<tokio::sync::mpsc::Sender<LiveEvent>>,
}

/// A page made ready for its commit ([`Shared::prepare_ingest`]).
#[derive(Debug)]
pub struct PreparedIngest {
    batch: Result<crate::queue::PreparedBatch, StorageError>,
    /// Messages whose triage asks for an acknowledgement, with the
    /// template's name.
    acknowledge: Vec<(Message, String)>,
}

/// Events kept for a slow subscriber before it lags.
pub const LIVE_EVENT_BUFFER: usize = 256;

/// Something changed in a brand's queue: what a live inbox re-reads on.
/// Carries no content, only where to look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveEvent {
    pub brand: String,
    /// `messages`: messages came in or changed (a commit); `case`: a case
    /// changed through the agent API (transition, answer, retry).
    pub kind: &'static str,
    /// The case, when one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<i64>,
}

impl LiveEvent {
    pub fn messages(brand: &str) -> Self {
        LiveEvent {
            brand: brand.to_string(),
            kind: "messages",
            case_id: None,
        }
    }

    pub fn case(brand: &str, case_id: i64) -> Self {
        LiveEvent {
            brand: brand.to_string(),
            kind: "case",
            case_id: Some(case_id),
        }
    }

    /// A crisis alert was raised: the inbox shows its banner.
    pub fn alert(brand: &str) -> Self {
        LiveEvent {
            brand: brand.to_string(),
            kind: "alert",
            case_id: None,
        }
    }
}

/// The running connectors by (brand, connector id).
pub type ConnectorMap = HashMap<(String, String), Arc<ConnectorHandle>>;

impl Shared {
    pub fn new(
        storage: Arc<dyn Storage>,
        connectors: ConnectorMap,
        service_levels: HashMap<String, ServiceLevels>,
        crisis: HashMap<String, CrisisPolicy>,
        replies: HashMap<String, BrandReplies>,
    ) -> Self {
        let connectors = Arc::new(connectors);
        let channels = Arc::new(ServiceChannels {
            connectors: connectors.clone(),
        });
        Shared {
            desk: Arc::new(CareDesk::new(storage.clone(), channels)),
            storage,
            metrics: Metrics::new(),
            connectors,
            service_levels,
            default_levels: ServiceLevels::default(),
            crisis,
            replies,
            http: reqwest::Client::builder()
                .timeout(ALERT_WEBHOOK_TIMEOUT)
                .build()
                .unwrap_or_default(),
            events: broadcast::channel(LIVE_EVENT_BUFFER).0,
            stopping: watch::channel(false).0,
            stream: None,
            peers: None,
        }
    }

    /// The saved replies of `brand`.
    pub fn replies(&self, brand: &str) -> Option<&BrandReplies> {
        self.replies.get(brand)
    }

    /// The service levels of `brand`.
    pub fn service_levels(&self, brand: &str) -> &ServiceLevels {
        self.service_levels
            .get(brand)
            .unwrap_or(&self.default_levels)
    }

    /// Looks for a crisis in `brand`'s traffic up to `now` (see
    /// [`crisis`]); raises, stores, publishes and posts each new alert.
    pub async fn check_crisis(
        &self,
        brand: &str,
        now: crate::model::TimestampMs,
    ) -> Result<Vec<Alert>, StorageError> {
        let Some(policy) = self.crisis.get(brand) else {
            return Ok(Vec::new());
        };
        let Some(store) = self.storage.care() else {
            return Ok(Vec::new());
        };
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let from = now.saturating_sub(ms(policy.window));
        let baseline_from = from.saturating_sub(ms(policy.baseline));
        let current = store.crisis_counts(brand, from, now).await?;
        let baseline = store.crisis_counts(brand, baseline_from, from).await?;
        let mut raised = Vec::new();
        for spike in crisis::detect(policy, current, baseline) {
            // One alert per spike: the same kind stays quiet until the
            // last alert's window has passed.
            if store
                .last_alert_end(brand, spike.kind)
                .await?
                .is_some_and(|end| end > from)
            {
                continue;
            }
            let messages = store
                .crisis_messages(brand, from, now, spike.kind == "negative", ALERT_SAMPLE)
                .await?;
            let alert = store
                .record_alert(&Alert {
                    id: 0,
                    brand: brand.to_string(),
                    kind: spike.kind.to_string(),
                    raised_at: jiff::Timestamp::now().as_millisecond(),
                    window_from: from,
                    window_to: now,
                    observed: spike.observed,
                    expected: spike.expected,
                    team: policy.team.clone(),
                    messages,
                })
                .await?;
            tracing::warn!(
                brand,
                kind = %alert.kind,
                observed = alert.observed,
                expected = alert.expected,
                "crisis alert raised"
            );
            self.publish(LiveEvent::alert(brand));
            if let Some(url) = &policy.webhook_url {
                self.post_alert(url, &alert).await;
            }
            raised.push(alert);
        }
        Ok(raised)
    }

    /// POSTs an alert to the brand's alert webhook; a failure is logged
    /// (the alert is stored and shown in the inbox either way).
    async fn post_alert(&self, url: &str, alert: &Alert) {
        let sent = self
            .http
            .post(url)
            .json(&serde_json::json!({ "alert": alert }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        if let Err(e) = sent {
            tracing::error!(brand = %alert.brand, "alert webhook failed: {e}");
        }
    }

    /// Tells live subscribers of the event's brand, on this host and (when
    /// the storage is shared) the others; nobody listening is fine.
    pub fn publish(&self, event: LiveEvent) {
        if let Some(peers) = &self.peers {
            // Full: the other hosts miss a hint rather than this host wait.
            let _ = peers.try_send(event.clone());
        }
        let _ = self.events.send(event);
    }
}

/// Answers go out through the running connectors' plugin instances.
struct ServiceChannels {
    connectors: Arc<ConnectorMap>,
}

#[async_trait::async_trait]
impl Channels for ServiceChannels {
    async fn perform(
        &self,
        brand: &str,
        connector: &str,
        action: Action,
        target: ActionTarget,
    ) -> Result<ActionResult, String> {
        let Some(handle) = self
            .connectors
            .get(&(brand.to_string(), connector.to_string()))
        else {
            return Err(format!(
                "connector {connector:?} of brand {brand:?} is not running on this host"
            ));
        };
        let mut instance = handle.instance.lock().await;
        instance.perform(action, target).await.map_err(|e| {
            tracing::warn!(%brand, %connector, "action failed: {e}");
            e.to_string()
        })
    }
}

impl Shared {
    /// Commits what a call brought in and counts it.
    pub async fn ingest(
        &self,
        handle: &ConnectorHandle,
        messages: &[Message],
        updates: &[MessageUpdate],
        next_cursor: Option<&str>,
    ) -> Result<CommitOutcome, StorageError> {
        let prepared = self.prepare_ingest(handle, messages, updates, next_cursor);
        self.commit_ingest(handle, prepared).await
    }

    /// The first half of [`Shared::ingest`]: triage, and the queue's rows
    /// built ([`Storage::prepare`]); no database yet, so a scheduler can do
    /// this for the next page while the previous one is being written.
    pub fn prepare_ingest(
        &self,
        handle: &ConnectorHandle,
        messages: &[Message],
        updates: &[MessageUpdate],
        next_cursor: Option<&str>,
    ) -> PreparedIngest {
        let now = jiff::Timestamp::now();
        // Messages whose triage asks for an acknowledgement, with the
        // template's name.
        let mut acknowledge: Vec<(Message, String)> = Vec::new();
        let triage: Vec<MessageTriage> = messages
            .iter()
            .map(|m| {
                if m.direction == Direction::Outbound {
                    MessageTriage::untriaged()
                } else {
                    let decision = handle.triage.decide(m, &handle.id.connector, now);
                    if let Some(template) = &decision.acknowledge {
                        acknowledge.push((m.clone(), template.clone()));
                    }
                    MessageTriage::from_decision(&decision)
                }
            })
            .collect();
        let batch = IngestBatch {
            channel: &handle.channel,
            messages,
            triage: &triage,
            updates,
            next_cursor,
        };
        PreparedIngest {
            batch: self.storage.prepare(&handle.id, batch),
            acknowledge,
        }
    }

    /// The second half of [`Shared::ingest`]: the commit, then the metrics,
    /// live events and acknowledgements.
    pub async fn commit_ingest(
        &self,
        handle: &ConnectorHandle,
        prepared: PreparedIngest,
    ) -> Result<CommitOutcome, StorageError> {
        let outcome = match prepared.batch {
            Ok(batch) => self.storage.commit_prepared(batch).await,
            Err(e) => Err(e),
        };
        let labels = Metrics::labels(&handle.id);
        match &outcome {
            Ok(o) => {
                if o.inserted > 0 || o.updates_applied > 0 {
                    self.publish(LiveEvent::messages(&handle.id.brand));
                }
                if o.inserted > 0 {
                    self.acknowledge(&handle.id, &prepared.acknowledge);
                }
                self.metrics
                    .messages_ingested
                    .get_or_create(&labels)
                    .inc_by(o.inserted as u64);
                self.metrics
                    .duplicates_dropped
                    .get_or_create(&labels)
                    .inc_by(o.duplicates as u64);
            }
            Err(e) => {
                self.metrics.error(&handle.id, "storage");
                tracing::error!(brand = %handle.id.brand, connector = %handle.id.connector, "commit failed, nothing stored: {e}");
            }
        }
        outcome
    }

    /// Sends the acknowledgements triage asked for, in the background (the
    /// channel's webhook must not wait for them). Each case is acknowledged
    /// at most once, and not once the brand has answered it.
    fn acknowledge(&self, id: &ConnectorId, wanted: &[(Message, String)]) {
        let Some(brand) = self.replies.get(&id.brand) else {
            return;
        };
        let sla = self.service_levels(&id.brand).first_response;
        for (message, template) in wanted {
            let Some(text) = brand.replies.get(template) else {
                continue;
            };
            let author = &message.author;
            let name = if author.display_name.is_empty() {
                &author.handle
            } else {
                &author.display_name
            };
            let text = replies::render(
                text,
                &replies::Vars {
                    name,
                    handle: &author.handle,
                    agent: "webcare",
                    brand: &brand.brand_name,
                    sla,
                },
            );
            let desk = self.desk.clone();
            let id = id.clone();
            let (thread, external) = (message.thread_id.clone(), message.external_id.clone());
            tokio::spawn(async move {
                if let Err(e) = desk
                    .acknowledge(&id.brand, &id.connector, &thread, &external, text)
                    .await
                {
                    tracing::warn!(brand = %id.brand, connector = %id.connector, "acknowledgement not sent: {e}");
                }
            });
        }
    }

    /// Records a failed plugin call.
    pub fn call_failed(&self, id: &ConnectorId, error: &PluginError) {
        self.metrics.error(id, error.kind());
        if error.poisons_instance() {
            self.metrics.traps.get_or_create(&Metrics::labels(id)).inc();
        }
    }
}

/// Builds every connector (loading and checking its plugin).
pub async fn build_connectors(
    runtime: &Runtime,
    storage: &Arc<dyn Storage>,
    specs: &[ConnectorSpec],
) -> Result<ConnectorMap, ServiceError> {
    let mut handles = HashMap::new();
    for spec in specs {
        let err = |source: SetupError| ServiceError::Connector {
            brand: spec.id.brand.clone(),
            connector: spec.id.connector.clone(),
            source: Box::new(source),
        };
        let plugin = runtime
            .load_file(&spec.plugin)
            .await
            .map_err(|e| err(e.into()))?;
        let info = runtime
            .describe(plugin.clone())
            .await
            .map_err(|e| err(e.into()))?;
        let grants = Grants::new(
            spec.id.clone(),
            spec.settings.clone(),
            spec.secrets.clone(),
            spec.allow_list.clone(),
            IoLimits::default(),
            storage.state_store(),
        );
        let instance = runtime
            .configured_connector(plugin, grants, spec.limits.clone())
            .await
            .map_err(err)?;
        handles.insert(
            (spec.id.brand.clone(), spec.id.connector.clone()),
            Arc::new(ConnectorHandle {
                id: spec.id.clone(),
                polls: spec.poll && info.features.contains(&Feature::Poll),
                channel: info.channel,
                poll_interval: spec.poll_interval,
                instance: Mutex::new(instance),
                status: std::sync::Mutex::default(),
                triage: Triage::new(spec.triage.clone()),
            }),
        );
    }
    Ok(handles)
}

/// A started service.
pub struct RunningService {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
    cluster: leases::ClusterSpec,
}

impl RunningService {
    /// Starts the scheduler tasks and the HTTP server.
    pub async fn start(
        spec: &ServiceSpec,
        runtime: &Runtime,
        storage: Arc<dyn Storage>,
    ) -> Result<RunningService, ServiceError> {
        // The outbox first: a `[stream]` over a storage that writes no
        // outbox rows would publish nothing, silently.
        let outbox = match &spec.stream {
            Some(_) => Some(storage.outbox().ok_or_else(|| {
                ServiceError::Stream(
                    "[stream] is configured, but the storage was opened without the outbox \
                     (open it with queue::OpenOptions { outbox: true })"
                        .to_string(),
                )
            })?),
            None => None,
        };
        let connectors = build_connectors(runtime, &storage, &spec.connectors).await?;
        let mut shared = Shared::new(
            storage,
            connectors,
            spec.service_levels.clone(),
            spec.crisis.clone(),
            spec.replies.clone(),
        );
        if spec.stream.is_some() {
            let monitor = StreamMonitor::default();
            shared.metrics.register_stream(&monitor);
            shared.stream = Some(monitor);
        }
        let relay = shared.storage.peers().map(|peers| {
            let (outgoing, receiver) = tokio::sync::mpsc::channel(live_relay::OUTGOING_BUFFER);
            shared.peers = Some(outgoing);
            (peers, receiver)
        });
        let shared = Arc::new(shared);
        let (shutdown, watch_rx) = watch::channel(false);
        let listener = tokio::net::TcpListener::bind(spec.listen)
            .await
            .map_err(|source| ServiceError::Listen {
                addr: spec.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServiceError::Listen {
                addr: spec.listen,
                source,
            })?;
        let mut tasks = Vec::new();
        let polled: Vec<ConnectorId> = shared
            .connectors
            .values()
            .filter(|handle| handle.polls)
            .map(|handle| handle.id.clone())
            .collect();
        let (held_tx, held) = leases::first_claim(&shared.storage, &spec.cluster, &polled).await;
        tasks.push(tokio::spawn(leases::keep(
            shared.storage.clone(),
            spec.cluster.clone(),
            polled,
            held_tx,
            watch_rx.clone(),
        )));
        for handle in shared.connectors.values() {
            shared.metrics.set_healthy(&handle.id, true);
            if !handle.polls {
                continue;
            }
            tasks.push(tokio::spawn(scheduler::run(
                shared.clone(),
                handle.clone(),
                watch_rx.clone(),
                held.clone(),
            )));
        }
        if let (Some(stream), Some(outbox), Some(monitor)) = (&spec.stream, outbox, &shared.stream)
        {
            tasks.push(tokio::spawn(crate::stream::publisher::run(
                outbox,
                stream.clone(),
                monitor.clone(),
                watch_rx.clone(),
            )));
        }
        if let Some((peers, outgoing)) = relay {
            let host = spec.cluster.host_id.clone();
            let mut brands: Vec<String> = shared
                .connectors
                .values()
                .map(|handle| handle.id.brand.clone())
                .chain(spec.service_levels.keys().cloned())
                .collect();
            brands.sort();
            brands.dedup();
            tasks.push(tokio::spawn(live_relay::send(
                peers.clone(),
                host.clone(),
                outgoing,
                watch_rx.clone(),
            )));
            tasks.push(tokio::spawn(live_relay::receive(
                peers,
                host,
                brands,
                shared.events.clone(),
                watch_rx.clone(),
            )));
        }
        for brand in spec.crisis.keys() {
            tasks.push(tokio::spawn(watch_crisis(
                shared.clone(),
                brand.clone(),
                watch_rx.clone(),
            )));
        }
        let router = http::router(shared.clone(), spec.max_webhook_body);
        let mut server_rx = watch_rx.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = server_rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!("http server failed: {e}");
            }
        }));
        tracing::info!(%addr, connectors = shared.connectors.len(), "webcare is running");
        Ok(RunningService {
            addr,
            shared,
            shutdown,
            tasks,
            grace: spec.shutdown_grace,
            cluster: spec.cluster.clone(),
        })
    }

    /// Stops polling, lets in-flight calls and commits finish (up to the
    /// grace period), and returns whether everything stopped in time.
    pub async fn stop(self) -> bool {
        let _ = self.shutdown.send(true);
        self.shared.stopping.send_replace(true);
        let deadline = Instant::now() + self.grace;
        let mut clean = true;
        for task in self.tasks {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, task).await.is_err() {
                clean = false;
            }
        }
        // The last commits are in (or abandoned): other hosts may take the
        // connectors over now rather than after the lease time.
        leases::release(&self.shared.storage, &self.cluster).await;
        clean
    }
}

/// How often each watched brand's traffic is checked for a crisis.
pub const CRISIS_CHECK_EVERY: Duration = Duration::from_secs(60);

/// How long an alert webhook may take.
const ALERT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

async fn watch_crisis(shared: Arc<Shared>, brand: String, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CRISIS_CHECK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let now = jiff::Timestamp::now().as_millisecond();
        if let Err(e) = shared.check_crisis(&brand, now).await {
            tracing::error!(%brand, "crisis check failed: {e}");
        }
    }
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
