//! What a plugin may import, one module per capability.
//!
//! Each capability is plain Rust that knows nothing of WIT: the versioned
//! bindings in [`crate::runtime::bindings`] convert the guest's arguments and
//! call in here. That keeps every policy check (allow-list, size caps,
//! redaction) in one place whatever contract version a plugin speaks.

pub mod allow_list;
pub mod http;
pub mod log;
pub mod secrets;
pub mod socket;
pub mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use allow_list::AllowList;
pub use log::Redactor;
pub use secrets::Secret;
pub use state::{MemoryStateStore, StateError, StateStore};

/// Who a connector is: every log line, metric and state key carries this.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectorId {
    pub brand: String,
    pub connector: String,
}

impl std::fmt::Display for ConnectorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.brand, self.connector)
    }
}

/// Limits of the outbound capabilities of one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoLimits {
    /// Upper bound for one HTTP request (connect to last body byte) and for
    /// each socket connect/read/write.
    pub io_timeout: Duration,
    /// Largest HTTP response body a plugin may receive.
    pub max_response_bytes: u64,
    /// Largest HTTP request body a plugin may send.
    pub max_request_bytes: u64,
    /// Open sockets per connector instance.
    pub max_sockets: usize,
}

impl Default for IoLimits {
    fn default() -> Self {
        IoLimits {
            io_timeout: Duration::from_secs(30),
            max_response_bytes: 8 * 1024 * 1024,
            max_request_bytes: 1024 * 1024,
            max_sockets: 4,
        }
    }
}

/// Everything a connector has been granted: its identity, settings, secrets,
/// network allow-list and limits. Built once per connector and shared by all
/// its instances; never shared between connectors or brands.
#[derive(Debug)]
pub struct Grants {
    pub id: ConnectorId,
    pub settings: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
    pub allow_list: AllowList,
    pub io: IoLimits,
    /// Scrubs this connector's secret values from anything the guest can
    /// make the host print.
    pub redactor: Redactor,
    pub state: Arc<dyn StateStore>,
}

impl Grants {
    pub fn new(
        id: ConnectorId,
        settings: BTreeMap<String, String>,
        secrets: BTreeMap<String, Secret>,
        allow_list: AllowList,
        io: IoLimits,
        state: Arc<dyn StateStore>,
    ) -> Self {
        let redactor = Redactor::new(secrets.values().map(Secret::expose));
        Grants {
            id,
            settings,
            secrets,
            allow_list,
            io,
            redactor,
            state,
        }
    }
}
