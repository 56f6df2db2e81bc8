//! The wasmtime engine: compilation settings, instance allocation (pooling
//! with a fallback), and how runaway guests are interrupted.

use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    WasmBacktraceDetails,
};

/// How a guest that uses too much CPU is stopped.
///
/// Measured on the normalisation benchmark (see `docs/runtime.md`): epoch
/// interruption costs less per call than fuel and measures what an operator
/// means by "CPU budget" (guest time, host I/O excluded), so it is the
/// default. Fuel is deterministic (instruction counts), for reproducible
/// tests or for hosts that must bill by work done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interruption {
    #[default]
    Epoch,
    Fuel,
}

impl Interruption {
    pub fn as_str(self) -> &'static str {
        match self {
            Interruption::Epoch => "epoch",
            Interruption::Fuel => "fuel",
        }
    }
}

/// How instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Try pooling, fall back to on-demand where the machine refuses the
    /// address-space reservation.
    #[default]
    Auto,
    Pooling,
    OnDemand,
}

/// Engine-wide settings. Changing any of them changes the compiled code, so
/// they are part of the component cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    pub interruption: Interruption,
    pub allocation: Allocation,
    /// Instances that may live at once (pooling slots).
    pub max_instances: u32,
    /// Largest linear memory any connector may be granted.
    pub max_memory_bytes: u64,
    /// Granularity of the CPU budget with epoch interruption.
    pub epoch_tick: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            interruption: Interruption::Epoch,
            allocation: Allocation::Auto,
            max_instances: 256,
            max_memory_bytes: 512 * 1024 * 1024,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Fuel units granted per millisecond of CPU budget in fuel mode. One unit
/// is roughly one Wasm instruction; calibrated on the reference machine
/// (a tight loop runs ~4 units per ns, ordinary code less).
pub const FUEL_PER_MS: u64 = 2_000_000;

/// Guest code between two fuel checks that yield to tokio, so a wall-clock
/// timeout can fire even when a guest never calls the host.
pub const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// Stack a guest may use.
const MAX_WASM_STACK: usize = 1024 * 1024;

fn base_config(settings: &EngineSettings) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64))
        .wasm_backtrace_details(WasmBacktraceDetails::Enable)
        .max_wasm_stack(MAX_WASM_STACK)
        .async_stack_size(MAX_WASM_STACK + 512 * 1024)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    match settings.interruption {
        Interruption::Epoch => config.epoch_interruption(true),
        Interruption::Fuel => config.consume_fuel(true),
    };
    if let Some(profiler) = profiler_from_env() {
        config.profiler(profiler);
    }
    config
}

/// `WEBCARE_PLUGIN_PROFILER=perfmap` writes `/tmp/perf-<pid>.map`, so that
/// `perf report` names plugin functions instead of bare addresses. An
/// environment variable rather than a setting: it is for a profiling
/// session, never for a deployment. (jitdump would need wasmtime's
/// `profiling` feature and its dependencies; perfmap needs nothing.)
fn profiler_from_env() -> Option<wasmtime::ProfilingStrategy> {
    match std::env::var("WEBCARE_PLUGIN_PROFILER").ok()?.as_str() {
        "perfmap" => Some(wasmtime::ProfilingStrategy::PerfMap),
        other => {
            tracing::warn!(
                value = other,
                "WEBCARE_PLUGIN_PROFILER must be `perfmap`; ignored"
            );
            None
        }
    }
}

/// Which allocator the engine ended up with, for logs and `inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorInUse {
    Pooling,
    OnDemand,
}

/// Builds the engine. With [`Allocation::Auto`] a pooling engine is tried
/// first; if the machine refuses the reservation (small or restricted
/// virtual memory), the on-demand allocator is used and that is logged.
pub fn build_engine(settings: &EngineSettings) -> wasmtime::Result<(Engine, AllocatorInUse)> {
    let pooled = |pagemap: bool| {
        let mut pool = PoolingAllocationConfig::new();
        let n = settings.max_instances;
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_core_instances_per_component(32)
            .max_memory_size(usize::try_from(settings.max_memory_bytes).unwrap_or(usize::MAX))
            // Reuse slots without page faults: pages a guest dirtied stay
            // mapped and are reset with memset instead of madvise (no TLB
            // shootdowns). With PAGEMAP_SCAN (Linux 6.7+) only the dirty
            // pages are reset, so a keep-resident span that covers a Rust
            // guest's stack (below 1 MiB), data and first heap pages is
            // cheap; without it wasmtime memsets the whole span, so keep it
            // small there. Fiber stacks likewise stay resident.
            .pagemap_scan(if pagemap { Enabled::Yes } else { Enabled::No })
            .linear_memory_keep_resident(if pagemap { 2 * 1024 * 1024 } else { 64 * 1024 })
            .table_keep_resident(if pagemap { 64 * 1024 } else { 16 * 1024 })
            .async_stack_keep_resident(128 * 1024);
        let mut config = base_config(settings);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Engine::new(&config)
    };
    let on_demand = || Engine::new(&base_config(settings));
    // Pooling with PAGEMAP_SCAN where the kernel has it, else without.
    let pooled_best = || pooled(true).or_else(|_| pooled(false));
    match settings.allocation {
        Allocation::Pooling => Ok((pooled_best()?, AllocatorInUse::Pooling)),
        Allocation::OnDemand => Ok((on_demand()?, AllocatorInUse::OnDemand)),
        Allocation::Auto => match pooled_best() {
            Ok(engine) => {
                tracing::info!(
                    slots = settings.max_instances,
                    "instance allocator: pooling ({} instance slots)",
                    settings.max_instances
                );
                Ok((engine, AllocatorInUse::Pooling))
            }
            Err(e) => {
                tracing::warn!(
                    "instance allocator: on-demand (pooling unavailable on this machine: {e:#})"
                );
                Ok((on_demand()?, AllocatorInUse::OnDemand))
            }
        },
    }
}

/// Advances the engine's epoch every `tick` from a plain thread (a tokio
/// task would never run while a guest spins on the same worker). The
/// thread ends when the engine is dropped.
pub fn spawn_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("webcare-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("cannot spawn the epoch thread");
}
