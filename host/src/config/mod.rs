//! The operator's config file: which brands the host serves and, per brand,
//! which connectors run with which plugin, settings, secrets, network
//! allow-list and limits.
//!
//! ```toml
//! [host]
//! data_dir = "./data"              # default ./webcare-data (next to this file)
//! listen = "127.0.0.1:8080"
//!
//! [[brand]]
//! id = "acme"
//! name = "ACME Corp"
//! time_zone = "Europe/Amsterdam"
//! working_hours = "mon-fri 09:00-17:00"
//! first_response_target = "1h"
//!
//! [brand.triage]                   # optional; see docs/triage.md
//! ignore_proactive_below_followers = 500
//! [[brand.triage.route]]
//! keywords = ["invoice", "factuur"]
//! team = "billing"
//!
//! [[brand.connector]]
//! id = "feed"
//! plugin = "plugins/template_connector.wasm"
//! poll_interval = "60s"
//! allow_hosts = ["api.example.com"]
//! [brand.connector.settings]
//! base_url = "https://api.example.com"
//! [brand.connector.secrets]
//! api_token = { env = "ACME_FEED_TOKEN" }
//! ```
//! `examples/single-brand.toml` and `examples/agency.toml` explain every key.
//!
//! Checking happens in two steps. [`load`] checks everything that needs no
//! plugin code: syntax, keys, types, ids, durations, allow-lists, time zones,
//! working hours, that secrets resolve and plugin files exist. [`check`] then
//! loads each plugin and checks its connectors' settings and secrets against
//! the schema the plugin declares. Both report every problem they find, each
//! with the file, line and key, so one run of `webcare check` lists all of
//! them.

mod check;
mod error;
mod raw;
mod secrets;
mod sla;
mod validate;
mod working_hours;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::capabilities::{AllowList, Secret};
use crate::runtime::CallLimits;

pub use check::check;
pub use error::{ConfigError, ConfigErrors};
pub use secrets::{SecretError, SecretRef};
pub use working_hours::WorkingHours;

/// A config file that passed [`load`]: defaults applied, paths absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file, as given to [`load`]; errors of [`check`] name it.
    pub path: PathBuf,
    pub host: HostConfig,
    pub storage: StorageConfig,
    /// `[stream]`: the NATS JetStream sink; `None`: no sink, no outbox.
    pub stream: Option<StreamConfig>,
    pub brands: Vec<BrandConfig>,
}

/// `[host]`: where the host keeps its data and listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Queue database, component cache and other state; created on start.
    pub data_dir: PathBuf,
    /// Address of the HTTP server (webhooks, health, metrics).
    pub listen: SocketAddr,
    /// Precompiled plugins, so a restart does not compile them again.
    pub component_cache: PathBuf,
    /// Time in-flight calls get to finish after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    /// This host's name among the hosts sharing one queue (`id`; default:
    /// the machine's host name). Hosts on one database need distinct ids.
    pub id: String,
    /// How long a poll lease lasts without renewal (`lease_time`, default
    /// 15 s): how soon another host takes over the connectors of a host
    /// that died.
    pub lease_time: Duration,
}

/// `[storage]`: where the care queue lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// `kind = "sqlite"`: an SQLite file (the embedded default).
    Sqlite { path: PathBuf },
    /// `kind = "postgres"`: a PostgreSQL database, shared by several hosts
    /// if need be.
    Postgres {
        url: DatabaseUrl,
        /// Connections the host keeps open at most (`pool_size`, default 8).
        pool_size: usize,
        /// `ca_file`: PEM roots that verify the server's certificate when
        /// the URL says `sslmode=require` (default: the public WebPKI
        /// roots).
        ca_file: Option<PathBuf>,
    },
}

/// `[storage] url` of a PostgreSQL queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// Written into the file: allowed only without a password (a server
    /// that trusts the host, or one on a Unix socket).
    Plain(String),
    /// `{ env = "NAME" }` or `{ file = "path" }`, like connector secrets:
    /// the URL and its password stay out of the file.
    Reference(SecretRef),
}

impl DatabaseUrl {
    /// The URL, read from the environment or the file now.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            DatabaseUrl::Plain(url) => Ok(Secret::new(url.clone())),
            DatabaseUrl::Reference(reference) => reference.resolve(),
        }
    }
}

/// `[stream]`: where events of the care queue are published (see
/// `docs/stream.md`). Only NATS JetStream (`kind = "nats"`) for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// The NATS server(s): `nats://host:4222`, plain (no password) or by
    /// reference.
    pub url: SecretUrl,
    /// The JetStream stream (`stream`, default `WEBCARE`); created at start
    /// when missing.
    pub stream: String,
    /// First subject tokens (`subject_prefix`, default `webcare`): events go
    /// to `<prefix>.<brand>.<channel>.<event>`.
    pub subject_prefix: String,
    /// The stream's de-duplication window (`duplicate_window_seconds`,
    /// default 600).
    pub duplicate_window: Duration,
}

/// A URL that may carry a password: written into the file only without
/// one, else referenced like a connector secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretUrl {
    Plain(String),
    Reference(SecretRef),
}

impl SecretUrl {
    /// The URL, read from the environment or the file now.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretUrl::Plain(url) => Ok(Secret::new(url.clone())),
            SecretUrl::Reference(reference) => reference.resolve(),
        }
    }
}

/// One `[[brand]]`: a client whose channels the host watches.
#[derive(Debug, Clone)]
pub struct BrandConfig {
    pub id: String,
    /// Display name; the id when not given.
    pub name: String,
    /// The zone working hours are read in.
    pub time_zone: jiff::tz::TimeZone,
    pub working_hours: WorkingHours,
    /// How soon a new case should get its first answer.
    pub first_response_target: Duration,
    /// `[brand.triage]`, defaults filled in.
    pub triage: crate::triage::TriagePolicy,
    /// `[brand.crisis]`, defaults filled in.
    pub crisis: crate::care::crisis::CrisisPolicy,
    /// `[brand.replies]`: saved replies and acknowledgement templates by
    /// name (see [`crate::care::replies`]).
    pub replies: std::collections::BTreeMap<String, String>,
    pub connectors: Vec<ConnectorConfig>,
}

impl BrandConfig {
    /// Is the brand's care team at work at `at`?
    pub fn is_working_time(&self, at: jiff::Timestamp) -> bool {
        self.working_hours
            .is_open(at.to_zoned_datetime(self.time_zone.clone()).datetime())
    }

    /// The brand's working time in `[start, end)`, in its time zone: what
    /// service levels are measured in (see [`WorkingHours::working_time_between`]).
    pub fn working_time_between(&self, start: jiff::Timestamp, end: jiff::Timestamp) -> Duration {
        self.working_hours
            .working_time_between(&self.time_zone, start, end)
    }

    /// When `target` of the brand's working time after `start` runs out
    /// (see [`WorkingHours::due_at`]).
    pub fn due_at(&self, start: jiff::Timestamp, target: Duration) -> jiff::Timestamp {
        self.working_hours.due_at(&self.time_zone, start, target)
    }

    /// When a case that came in at `received` is overdue for its first
    /// response: [`Self::first_response_target`] of working time later.
    pub fn first_response_due(&self, received: jiff::Timestamp) -> jiff::Timestamp {
        self.due_at(received, self.first_response_target)
    }
}

/// One `[[brand.connector]]`: a plugin run for a brand with its own
/// settings, credentials, allow-list and limits.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub id: String,
    /// Absolute path of the plugin's `.wasm` file.
    pub plugin: PathBuf,
    /// A disabled connector is not run and its plugin and secrets need not
    /// exist yet; its keys are still checked.
    pub enabled: bool,
    /// false: the connector only takes webhooks (an inbound-mail service, a
    /// webhook-only channel) and is never polled.
    pub poll: bool,
    pub poll_interval: Duration,
    pub allow_hosts: AllowList,
    pub limits: CallLimits,
    /// Settings as the plugin receives them (TOML integers and booleans as
    /// text), before the plugin's defaults are applied.
    pub settings: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretRef>,
    /// Line of the connector's `[[brand.connector]]` header.
    pub line: usize,
    /// Lines of its `plugin`, `settings.<name>` and `secrets.<name>` keys, so
    /// that problems [`check`] finds point at the key.
    pub key_lines: BTreeMap<String, usize>,
}

/// A secret of a connector that did not resolve when it was needed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret {name}: {error}")]
pub struct UnresolvedSecret {
    pub name: String,
    pub error: SecretError,
}

impl ConnectorConfig {
    /// Reads the secrets' values (from the environment and files, now: a
    /// rotated credential is picked up on the connector's next start).
    pub fn resolve_secrets(&self) -> Result<BTreeMap<String, Secret>, UnresolvedSecret> {
        self.secrets
            .iter()
            .map(|(name, reference)| {
                reference
                    .resolve()
                    .map(|secret| (name.clone(), secret))
                    .map_err(|error| UnresolvedSecret {
                        name: name.clone(),
                        error,
                    })
            })
            .collect()
    }
}

impl Config {
    /// The queue's SQLite file; `None` when the queue is in PostgreSQL.
    pub fn storage_path(&self) -> Option<&Path> {
        match &self.storage {
            StorageConfig::Sqlite { path } => Some(path),
            StorageConfig::Postgres { .. } => None,
        }
    }

    /// Every connector with its brand, in file order.
    pub fn connectors(&self) -> impl Iterator<Item = (&BrandConfig, &ConnectorConfig)> {
        self.brands
            .iter()
            .flat_map(|brand| brand.connectors.iter().map(move |c| (brand, c)))
    }
}

/// Reads and checks a config file (everything short of running plugins;
/// see [`check`]). Relative paths in it are relative to its directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    validate::load(path, &|name| std::env::var(name))
}

/// Like [`load`], for commands that only read the queue: every check but
/// whether the secrets can be resolved, so a care agent can look into the
/// queue without the connectors' credentials in their environment.
pub fn load_without_secrets(path: &Path) -> Result<Config, ConfigErrors> {
    validate::load_with(path, &|name| std::env::var(name), false)
}
