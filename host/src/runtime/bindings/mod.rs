//! One module per supported contract version, Zed-style.
//!
//! A plugin says which contract it was built against through the version in
//! its export name (`webcare:connector/connector@0.1.0`). Each supported
//! minor line has its own `bindgen!` module that converts to and from the
//! host's [`crate::model`] types; when 0.2 arrives, `v0_1` keeps serving
//! old plugins by converting into the newest model, and the WIT of 0.1 is
//! frozen beside it.

pub mod v0_1;

use std::sync::Arc;

use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime::{Engine, Store};

use super::error::PluginError;
use super::store::StoreState;
use crate::model::{
    Action, ActionResult, ActionTarget, Batch, ConnectorError, PluginInfo, WebhookOutcome,
    WebhookRequest,
};

/// Contract versions this host serves, as a semver requirement, for messages.
pub const SUPPORTED_RANGE: &str = "0.1.x";

/// Export name prefix of the connector interface.
pub const CONNECTOR_EXPORT: &str = "webcare:connector/connector";

/// A contract line the host can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractLine {
    V0_1,
}

impl ContractLine {
    /// Picks the line that serves `version`, if any.
    pub fn for_version(version: &semver::Version) -> Option<ContractLine> {
        (version.major == 0 && version.minor == 1).then_some(ContractLine::V0_1)
    }
}

/// A call into a plugin, independent of contract version.
#[derive(Debug, Clone)]
pub enum Call {
    Describe,
    Poll(Option<String>),
    Webhook(WebhookRequest),
    Perform(Box<(Action, ActionTarget)>),
}

impl Call {
    pub fn name(&self) -> &'static str {
        match self {
            Call::Describe => "describe",
            Call::Poll(_) => "poll",
            Call::Webhook(_) => "handle-webhook",
            Call::Perform(_) => "perform",
        }
    }
}

/// What a call returned, independent of contract version.
#[derive(Debug, Clone)]
pub enum Reply {
    Describe(PluginInfo),
    Poll(Batch),
    Webhook(WebhookOutcome),
    Perform(ActionResult),
}

/// Pre-linked instance factory of one loaded plugin.
#[derive(Clone)]
pub enum Pre {
    V0_1(v0_1::Pre),
}

/// A live instance's exports.
pub enum Exports {
    V0_1(v0_1::Exports),
}

/// Host-side `HasData` for the store: the import traits are implemented on
/// `StoreState` itself.
pub struct HasStore;

impl HasData for HasStore {
    type Data<'a> = &'a mut StoreState;
}

struct HasTable;

impl HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links the WASI subset a plugin may use: stdout/stderr (into the log),
/// clocks, random numbers, an empty environment and `exit`. Filesystem and
/// sockets are absent on purpose: a component that imports them is refused
/// at load time (see [`crate::runtime::plugin::GRANTED_IMPORTS`]).
fn link_wasi(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::WasiView;
    use wasmtime_wasi::cli::WasiCli;
    use wasmtime_wasi::cli::WasiCliView;
    use wasmtime_wasi::clocks::WasiClocks;
    use wasmtime_wasi::clocks::WasiClocksView;
    use wasmtime_wasi::p2::bindings::{cli, clocks, random};
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi_io::bindings::wasi::io;

    let l = linker;
    io::error::add_to_linker::<StoreState, HasTable>(l, |s| s.table())?;
    io::poll::add_to_linker::<StoreState, HasTable>(l, |s| s.table())?;
    io::streams::add_to_linker::<StoreState, HasTable>(l, |s| s.table())?;
    clocks::wall_clock::add_to_linker::<StoreState, WasiClocks>(
        l,
        <StoreState as WasiClocksView>::clocks,
    )?;
    clocks::monotonic_clock::add_to_linker::<StoreState, WasiClocks>(
        l,
        <StoreState as WasiClocksView>::clocks,
    )?;
    random::random::add_to_linker::<StoreState, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    random::insecure::add_to_linker::<StoreState, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<StoreState, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    cli::exit::add_to_linker::<StoreState, WasiCli>(l, <StoreState as WasiCliView>::cli)?;
    cli::environment::add_to_linker::<StoreState, WasiCli>(l, <StoreState as WasiCliView>::cli)?;
    cli::stdin::add_to_linker::<StoreState, WasiCli>(l, <StoreState as WasiCliView>::cli)?;
    cli::stdout::add_to_linker::<StoreState, WasiCli>(l, <StoreState as WasiCliView>::cli)?;
    cli::stderr::add_to_linker::<StoreState, WasiCli>(l, <StoreState as WasiCliView>::cli)?;
    cli::terminal_input::add_to_linker::<StoreState, WasiCli>(l, <StoreState as WasiCliView>::cli)?;
    cli::terminal_output::add_to_linker::<StoreState, WasiCli>(
        l,
        <StoreState as WasiCliView>::cli,
    )?;
    cli::terminal_stdin::add_to_linker::<StoreState, WasiCli>(l, <StoreState as WasiCliView>::cli)?;
    cli::terminal_stdout::add_to_linker::<StoreState, WasiCli>(
        l,
        <StoreState as WasiCliView>::cli,
    )?;
    cli::terminal_stderr::add_to_linker::<StoreState, WasiCli>(
        l,
        <StoreState as WasiCliView>::cli,
    )?;
    Ok(())
}

/// The linkers of every supported line, built once per engine.
pub struct Linkers {
    v0_1: Linker<StoreState>,
}

impl Linkers {
    pub fn new(engine: &Engine) -> wasmtime::Result<Self> {
        let mut v0_1 = Linker::new(engine);
        link_wasi(&mut v0_1)?;
        v0_1::ChannelConnector::add_to_linker::<StoreState, HasStore>(&mut v0_1, |s| s)?;
        Ok(Linkers { v0_1 })
    }
}

impl Pre {
    /// Pre-links `component` for `line`. The caller has already refused
    /// components that import anything the host does not grant.
    pub fn new(
        linkers: &Linkers,
        line: ContractLine,
        component: &Component,
        export: &str,
        what: &str,
    ) -> Result<Pre, PluginError> {
        let link_err = |e: wasmtime::Error| PluginError::Link {
            what: what.to_string(),
            detail: format!("{e:#}"),
        };
        match line {
            ContractLine::V0_1 => {
                let pre = linkers.v0_1.instantiate_pre(component).map_err(link_err)?;
                let pre = v0_1::Pre::new(pre, export).map_err(link_err)?;
                Ok(Pre::V0_1(pre))
            }
        }
    }

    pub async fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Exports> {
        match self {
            Pre::V0_1(pre) => Ok(Exports::V0_1(pre.instantiate(store).await?)),
        }
    }
}

impl Exports {
    /// Runs `call`. The outer `Result` is a trap; the inner one the
    /// connector's own error.
    pub async fn dispatch(
        &self,
        store: &mut Store<StoreState>,
        call: Call,
    ) -> wasmtime::Result<Result<Reply, ConnectorError>> {
        match self {
            Exports::V0_1(exports) => v0_1::dispatch(exports, store, call).await,
        }
    }
}

/// Shared handle to the engine-wide linkers.
pub type SharedLinkers = Arc<Linkers>;
