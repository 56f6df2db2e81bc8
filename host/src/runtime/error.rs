//! Everything that can go wrong loading or calling a plugin. Each guard has
//! its own case, so an operator reads *which* limit stopped a plugin.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::model::ConnectorError;

/// The guard that stopped a call, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guard {
    MemoryLimit,
    CpuBudget,
    CallTimeout,
    AllowList,
    OutputLimit,
}

impl Guard {
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::MemoryLimit => "memory-limit",
            Guard::CpuBudget => "cpu-budget",
            Guard::CallTimeout => "call-timeout",
            Guard::AllowList => "allow-list",
            Guard::OutputLimit => "output-limit",
        }
    }
}

/// A guest panic as reported through `log.report-panic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicReport {
    pub message: String,
    pub location: Option<String>,
}

#[derive(Debug, Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is not a WebAssembly component: {detail}")]
    NotAComponent { what: String, detail: String },
    #[error(
        "{what} is not a webcare channel connector: it exports [{}], a connector exports webcare:connector/connector@{}",
        exports.join(", "),
        crate::runtime::bindings::SUPPORTED_RANGE
    )]
    WrongWorld { what: String, exports: Vec<String> },
    #[error(
        "{what} was built against contract webcare:connector@{found}, but this host supports webcare:connector@{supported}; rebuild the plugin against a supported version of the WIT"
    )]
    UnsupportedVersion {
        what: String,
        found: String,
        supported: String,
    },
    #[error(
        "{what} imports {}, which webcare does not grant: a plugin gets no filesystem and no sockets except through the webcare:connector capabilities",
        imports.join(", ")
    )]
    Ungranted { what: String, imports: Vec<String> },
    #[error("cannot link {what}: {detail}")]
    Link { what: String, detail: String },
    #[error("cannot start plugin instance: {0}")]
    Instantiate(String),

    #[error(
        "memory limit: the plugin tried to grow its memory to {requested_bytes} bytes, over its cap of {limit_bytes} bytes"
    )]
    MemoryLimit {
        limit_bytes: u64,
        requested_bytes: u64,
    },
    #[error("cpu budget: the plugin ran for more than {}ms of CPU in one call (stopped by {mechanism})", budget.as_millis())]
    CpuBudget {
        budget: Duration,
        mechanism: &'static str,
    },
    #[error("call timeout: the call took longer than {}ms", limit.as_millis())]
    CallTimeout { limit: Duration },
    #[error(
        "allow-list: the plugin tried to reach {destination}, which is not on this connector's allow-list ({allowed}); add it to the connector's allowed hosts if it should"
    )]
    AllowList {
        destination: String,
        /// The connector's allow-list entries.
        allowed: String,
        /// What the plugin made of the refusal.
        plugin_error: String,
    },
    #[error("output limit: {0}")]
    OutputLimit(String),
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    #[error("plugin panicked: {message}{}", location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Panic {
        message: String,
        location: Option<String>,
        backtrace: Vec<String>,
    },
    #[error("plugin trapped: {message}")]
    Trap {
        message: String,
        backtrace: Vec<String>,
    },
    #[error("{0}")]
    Connector(ConnectorError),
    #[error("host error: {0}")]
    Host(String),
}

impl PluginError {
    /// The guard that stopped the call, if one did.
    pub fn guard(&self) -> Option<Guard> {
        match self {
            PluginError::MemoryLimit { .. } => Some(Guard::MemoryLimit),
            PluginError::CpuBudget { .. } => Some(Guard::CpuBudget),
            PluginError::CallTimeout { .. } => Some(Guard::CallTimeout),
            PluginError::AllowList { .. } => Some(Guard::AllowList),
            PluginError::OutputLimit(_) => Some(Guard::OutputLimit),
            _ => None,
        }
    }

    /// A short, stable name of the kind of failure (for metrics).
    pub fn kind(&self) -> &'static str {
        if let Some(guard) = self.guard() {
            return guard.as_str();
        }
        match self {
            PluginError::Read { .. }
            | PluginError::NotAComponent { .. }
            | PluginError::WrongWorld { .. }
            | PluginError::UnsupportedVersion { .. }
            | PluginError::Ungranted { .. }
            | PluginError::Link { .. } => "load",
            PluginError::Instantiate(_) => "instantiate",
            PluginError::InvalidOutput(_) => "invalid-output",
            PluginError::Panic { .. } => "panic",
            PluginError::Trap { .. } => "trap",
            PluginError::Connector(e) => match e {
                ConnectorError::RateLimited { .. } => "rate-limited",
                ConnectorError::Unauthorized { .. } => "unauthorized",
                ConnectorError::Transient { .. } => "transient",
                ConnectorError::InvalidInput { .. } => "invalid-input",
                ConnectorError::Unsupported { .. } => "unsupported",
                ConnectorError::NotAllowed { .. } => "not-allowed",
            },
            PluginError::Host(_) => "host",
            _ => "other",
        }
    }

    /// True when the instance is unusable afterwards (trap, guard, timeout)
    /// and the next call needs a fresh one.
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            PluginError::MemoryLimit { .. }
                | PluginError::CpuBudget { .. }
                | PluginError::CallTimeout { .. }
                | PluginError::Panic { .. }
                | PluginError::Trap { .. }
                | PluginError::Instantiate(_)
                | PluginError::Host(_)
        )
    }

    /// The guest's backtrace, innermost frame first, when the call trapped.
    pub fn backtrace(&self) -> &[String] {
        match self {
            PluginError::Panic { backtrace, .. } | PluginError::Trap { backtrace, .. } => backtrace,
            _ => &[],
        }
    }
}
