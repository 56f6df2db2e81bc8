//! Per-call resource limits and the store's resource limiter.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// What one connector's calls may consume. Defaults suit a connector that
/// fetches and normalises a page of a few hundred messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLimits {
    /// Linear memory of the plugin instance, in bytes.
    pub memory_bytes: u64,
    /// CPU time the guest may spend in one call (time waiting on host I/O
    /// does not count).
    pub cpu_budget: Duration,
    /// Wall-clock time for the whole call, host I/O included.
    pub call_timeout: Duration,
    /// Messages plus updates in one batch or webhook outcome.
    pub max_messages: usize,
    /// Approximate bytes of one message (text, HTML, attachments, properties).
    pub max_message_bytes: usize,
    /// Approximate bytes of one batch or webhook outcome.
    pub max_output_bytes: usize,
    /// Calls served by one warm instance before it is replaced by a fresh one
    /// (bounds what a plugin can accumulate in its globals).
    pub max_calls_per_instance: u32,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            memory_bytes: 64 * 1024 * 1024,
            cpu_budget: Duration::from_secs(2),
            call_timeout: Duration::from_secs(60),
            max_messages: 10_000,
            max_message_bytes: 1024 * 1024,
            max_output_bytes: 32 * 1024 * 1024,
            max_calls_per_instance: 1_000,
        }
    }
}

/// Largest bytes of a cursor.
pub const MAX_CURSOR_BYTES: usize = 4096;
/// Most `properties` pairs on one message.
pub const MAX_PROPERTIES: usize = 32;
/// Largest value of one property.
pub const MAX_PROPERTY_BYTES: usize = 4096;

/// Enforces the memory cap and remembers that it did, so the error that
/// follows can name the guard.
#[derive(Debug)]
pub struct Limiter {
    memory_bytes: usize,
    /// Set when a growth was refused: the size the guest asked for.
    pub refused_growth: Option<usize>,
}

impl Limiter {
    pub fn new(memory_bytes: u64) -> Self {
        Limiter {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            refused_growth: None,
        }
    }

    pub fn set_memory_bytes(&mut self, memory_bytes: u64) {
        self.memory_bytes = usize::try_from(memory_bytes).unwrap_or(usize::MAX);
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.refused_growth = Some(desired);
            // An error traps at the `memory.grow` itself: the backtrace then
            // shows who asked for the memory.
            return Err(wasmtime::Error::msg(format!(
                "memory limit: growing to {desired} bytes refused (cap {} bytes)",
                self.memory_bytes
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        // A Rust guest component holds a handful of core instances.
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        4
    }
}
