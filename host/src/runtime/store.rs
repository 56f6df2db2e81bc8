//! The data every plugin `Store` carries: the connector's grants, WASI's
//! (deliberately empty) context, the resource table and the per-call
//! accounting that lets the host say which guard stopped a call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::HostServices;
use super::error::PanicReport;
use super::limits::Limiter;
use crate::capabilities::Grants;
use crate::capabilities::log::{GuestLog, Source};

/// Bookkeeping of the call in progress.
#[derive(Debug)]
pub struct CallAccounting {
    pub started: Instant,
    /// Time spent awaiting host I/O (http, socket): not the guest's CPU.
    pub host_wait: Duration,
    pub cpu_budget: Duration,
    /// Set by the epoch callback when the budget ran out.
    pub cpu_exceeded: bool,
    /// The first destination the allow-list refused during this call.
    pub denied: Option<String>,
    pub panic: Option<PanicReport>,
}

impl CallAccounting {
    fn new(cpu_budget: Duration) -> Self {
        CallAccounting {
            started: Instant::now(),
            host_wait: Duration::ZERO,
            cpu_budget,
            cpu_exceeded: false,
            denied: None,
            panic: None,
        }
    }

    /// Guest time of the call so far: wall time less host waits.
    pub fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_wait)
    }
}

pub struct StoreState {
    pub grants: Arc<Grants>,
    pub services: Arc<HostServices>,
    pub log: GuestLog,
    pub limiter: Limiter,
    pub call: CallAccounting,
    pub sockets_open: usize,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl StoreState {
    pub fn new(grants: Arc<Grants>, services: Arc<HostServices>, memory_bytes: u64) -> Self {
        let log = GuestLog::new(Arc::new(grants.id.clone()), grants.redactor.clone());
        // No preopens, no environment, no arguments, no network: the only
        // WASI a plugin gets is stdout/stderr (into the log), clocks and
        // random numbers. Filesystem and socket interfaces are not even
        // linked (see `bindings::link_wasi`).
        let wasi = WasiCtx::builder()
            .stdout(log.stream(Source::Stdout))
            .stderr(log.stream(Source::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        StoreState {
            grants,
            services,
            log,
            limiter: Limiter::new(memory_bytes),
            call: CallAccounting::new(Duration::MAX),
            sockets_open: 0,
            wasi,
            table: ResourceTable::new(),
        }
    }

    /// Resets the per-call accounting before a call.
    pub fn begin_call(&mut self, cpu_budget: Duration) {
        self.call = CallAccounting::new(cpu_budget);
        self.limiter.refused_growth = None;
        self.log.begin_call();
    }

    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// Runs host I/O, counting its duration as host time, not guest CPU.
    pub async fn host_io<T>(&mut self, io: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = io.await;
        self.call.host_wait += start.elapsed();
        out
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
