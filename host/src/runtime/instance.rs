//! One connector's instance of its plugin, and the guarded call path.

use std::sync::Arc;

use wasmtime::{Store, Trap, WasmBacktrace};

use super::bindings::{Call, Exports, Reply};
use super::error::PluginError;
use super::limits::CallLimits;
use super::output;
use super::plugin::SharedPlugin;
use super::store::StoreState;
use super::{Interruption, Runtime};
use crate::capabilities::Grants;
use crate::model::{
    Action, ActionResult, ActionTarget, Batch, PluginInfo, WebhookOutcome, WebhookRequest,
};

struct Warm {
    store: Store<StoreState>,
    exports: Exports,
    calls: u32,
}

/// A connector's plugin instance. Calls take `&mut self`: one call at a
/// time per connector, as the contract promises plugins. The instance stays
/// warm between calls (a call costs about a microsecond) and is replaced by
/// a fresh one after a trap, a guard, or `max_calls_per_instance` calls.
pub struct ConnectorInstance {
    runtime: Runtime,
    plugin: SharedPlugin,
    grants: Arc<Grants>,
    limits: CallLimits,
    warm: Option<Warm>,
}

impl std::fmt::Debug for ConnectorInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorInstance")
            .field("id", &self.grants.id)
            .field("plugin", &self.plugin.what)
            .field("warm", &self.warm.is_some())
            .finish()
    }
}

impl ConnectorInstance {
    pub(crate) fn new(
        runtime: Runtime,
        plugin: SharedPlugin,
        grants: Arc<Grants>,
        limits: CallLimits,
    ) -> Self {
        ConnectorInstance {
            runtime,
            plugin,
            grants,
            limits,
            warm: None,
        }
    }

    pub fn plugin(&self) -> &SharedPlugin {
        &self.plugin
    }

    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    pub fn limits(&self) -> &CallLimits {
        &self.limits
    }

    /// Drops the warm instance; the next call starts a fresh one. For idle
    /// connectors, so they hold no instance slot while they wait.
    pub fn release(&mut self) {
        self.warm = None;
    }

    pub fn is_warm(&self) -> bool {
        self.warm.is_some()
    }

    /// `describe()`; the first answer is cached on the plugin.
    pub async fn describe(&mut self) -> Result<PluginInfo, PluginError> {
        if let Some(info) = self.plugin.info.get() {
            return Ok(info.clone());
        }
        match self.invoke(Call::Describe).await? {
            Reply::Describe(info) => {
                let _ = self.plugin.info.set(info.clone());
                Ok(info)
            }
            _ => unreachable!("describe answers with Reply::Describe"),
        }
    }

    pub async fn poll(&mut self, cursor: Option<&str>) -> Result<Batch, PluginError> {
        match self.invoke(Call::Poll(cursor.map(str::to_string))).await? {
            Reply::Poll(batch) => Ok(batch),
            _ => unreachable!("poll answers with Reply::Poll"),
        }
    }

    pub async fn handle_webhook(
        &mut self,
        request: WebhookRequest,
    ) -> Result<WebhookOutcome, PluginError> {
        match self.invoke(Call::Webhook(request)).await? {
            Reply::Webhook(outcome) => Ok(outcome),
            _ => unreachable!("handle-webhook answers with Reply::Webhook"),
        }
    }

    pub async fn perform(
        &mut self,
        action: Action,
        target: ActionTarget,
    ) -> Result<ActionResult, PluginError> {
        match self
            .invoke(Call::Perform(Box::new((action, target))))
            .await?
        {
            Reply::Perform(result) => Ok(result),
            _ => unreachable!("perform answers with Reply::Perform"),
        }
    }

    /// Runs one call under every guard and validates its output.
    pub async fn invoke(&mut self, call: Call) -> Result<Reply, PluginError> {
        let call_name = call.name();
        let result = self.invoke_inner(call).await;
        if let Err(e) = &result {
            if e.poisons_instance() {
                self.warm = None;
            }
            tracing::warn!(
                brand = %self.grants.id.brand,
                connector = %self.grants.id.connector,
                call = call_name,
                kind = e.kind(),
                "plugin call failed: {e}"
            );
            for frame in e.backtrace() {
                tracing::debug!(brand = %self.grants.id.brand, connector = %self.grants.id.connector, "  at {frame}");
            }
        }
        result
    }

    async fn invoke_inner(&mut self, call: Call) -> Result<Reply, PluginError> {
        if self
            .warm
            .as_ref()
            .is_some_and(|w| w.calls >= self.limits.max_calls_per_instance)
        {
            self.warm = None;
        }
        let limits = &self.limits;
        let timeout = limits.call_timeout;
        let warm = match &mut self.warm {
            Some(warm) => warm,
            empty @ None => {
                let mut store = self.runtime.new_store(self.grants.clone(), limits);
                self.runtime.arm_budget(&mut store, limits);
                let instantiated =
                    tokio::time::timeout(timeout, self.plugin.pre.instantiate(&mut store)).await;
                let exports = match instantiated {
                    Ok(Ok(exports)) => exports,
                    Ok(Err(e)) => return Err(self.runtime.classify_trap(e, &store, limits)),
                    Err(_) => return Err(PluginError::CallTimeout { limit: timeout }),
                };
                empty.insert(Warm {
                    store,
                    exports,
                    calls: 0,
                })
            }
        };
        warm.calls += 1;
        self.runtime.arm_budget(&mut warm.store, limits);
        let outcome =
            tokio::time::timeout(timeout, warm.exports.dispatch(&mut warm.store, call)).await;
        warm.store.data().log.end_call();
        let reply = match outcome {
            Err(_) => return Err(PluginError::CallTimeout { limit: timeout }),
            Ok(Err(trap)) => return Err(self.runtime.classify_trap(trap, &warm.store, limits)),
            Ok(Ok(Err(connector_error))) => {
                let state = warm.store.data();
                let redactor = &state.grants.redactor;
                let redacted = redact_connector_error(connector_error, |s| redactor.redact(s));
                return Err(match &state.call.denied {
                    Some(destination) => PluginError::AllowList {
                        destination: destination.clone(),
                        allowed: state.grants.allow_list.to_string(),
                        plugin_error: redacted.to_string(),
                    },
                    None => PluginError::Connector(redacted),
                });
            }
            Ok(Ok(Ok(reply))) => reply,
        };
        match &reply {
            Reply::Poll(batch) => {
                output::check_cursor(batch.next_cursor.as_deref())?;
                output::check_messages(&batch.messages, &batch.updates, limits)?;
            }
            Reply::Webhook(outcome) => output::check_webhook(outcome, limits)?,
            Reply::Describe(_) | Reply::Perform(_) => {}
        }
        Ok(reply)
    }
}

fn redact_connector_error(
    e: crate::model::ConnectorError,
    redact: impl Fn(&str) -> String,
) -> crate::model::ConnectorError {
    use crate::model::ConnectorError as E;
    match e {
        E::RateLimited {
            retry_after_ms,
            detail,
        } => E::RateLimited {
            retry_after_ms,
            detail: redact(&detail),
        },
        E::Unauthorized {
            detail,
            expired,
            missing_scope,
        } => E::Unauthorized {
            detail: redact(&detail),
            expired,
            missing_scope,
        },
        E::Transient { detail } => E::Transient {
            detail: redact(&detail),
        },
        E::InvalidInput { detail } => E::InvalidInput {
            detail: redact(&detail),
        },
        E::Unsupported { detail } => E::Unsupported {
            detail: redact(&detail),
        },
        E::NotAllowed { detail } => E::NotAllowed {
            detail: redact(&detail),
        },
    }
}

/// Formats a guest backtrace, innermost frame first.
fn backtrace_lines(err: &wasmtime::Error) -> Vec<String> {
    let Some(bt) = err.downcast_ref::<WasmBacktrace>() else {
        return Vec::new();
    };
    bt.frames()
        .iter()
        .map(|frame| {
            let name = frame.func_name().map_or_else(
                || "<unnamed>".to_string(),
                |n| format!("{:#}", rustc_demangle::demangle(n)),
            );
            let location = frame
                .symbols()
                .iter()
                .find_map(|s| Some(format!("{}:{}", s.file()?, s.line()?)));
            match location {
                Some(loc) => format!("{name} ({loc})"),
                None => name.to_string(),
            }
        })
        .collect()
}

impl Runtime {
    /// Turns a trap into the error that names what stopped the guest.
    pub(crate) fn classify_trap(
        &self,
        err: wasmtime::Error,
        store: &Store<StoreState>,
        limits: &CallLimits,
    ) -> PluginError {
        let state = store.data();
        let trap = err.downcast_ref::<Trap>().copied();
        if let Some(requested) = state.limiter.refused_growth {
            return PluginError::MemoryLimit {
                limit_bytes: limits.memory_bytes,
                requested_bytes: requested as u64,
            };
        }
        if state.call.cpu_exceeded || trap == Some(Trap::OutOfFuel) || trap == Some(Trap::Interrupt)
        {
            return PluginError::CpuBudget {
                budget: limits.cpu_budget,
                mechanism: match self.settings().interruption {
                    Interruption::Epoch => "epoch deadline",
                    Interruption::Fuel => "fuel",
                },
            };
        }
        let backtrace = backtrace_lines(&err);
        if let Some(panic) = &state.call.panic {
            return PluginError::Panic {
                message: panic.message.clone(),
                location: panic.location.clone(),
                backtrace,
            };
        }
        let message = match trap {
            Some(t) => t.to_string(),
            None => err.root_cause().to_string(),
        };
        PluginError::Trap {
            message: state.grants.redactor.redact(&message),
            backtrace,
        }
    }
}
