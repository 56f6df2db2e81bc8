//! The sandboxed plugin runtime: loads untrusted connector components and
//! runs their calls under a memory cap, a CPU budget and a wall-clock
//! timeout, with only the capabilities the connector was granted.
//!
//! ```text
//! Runtime ── load(.wasm) ──> Plugin (compiled once, cached on disk, pre-linked)
//!    │                          │
//!    └── connector(plugin, grants, limits) ──> ConnectorInstance (warm Store,
//!                                               recycled after a trap)
//! ```
//! Design notes and measured figures: `docs/runtime.md`.

pub mod bindings;
pub mod cache;
pub mod engine;
pub mod error;
pub mod instance;
pub mod limits;
pub mod output;
pub mod plugin;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::{Engine, Store, UpdateDeadline};

use crate::capabilities::http::HttpClient;
use crate::capabilities::socket::TlsSettings;
use crate::capabilities::{AllowList, ConnectorId, Grants, IoLimits, MemoryStateStore};
use crate::model::{PluginInfo, SettingError};
pub use bindings::{Call, Reply};
pub use cache::Origin;
pub use engine::{Allocation, AllocatorInUse, EngineSettings, Interruption};
pub use error::{Guard, PluginError};
pub use instance::ConnectorInstance;
pub use limits::CallLimits;
pub use plugin::{Plugin, SharedPlugin};
use store::StoreState;

/// Services shared by every connector: the HTTP client and TLS roots.
#[derive(Debug)]
pub struct HostServices {
    pub http: HttpClient,
    pub tls: TlsSettings,
}

/// How to build a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub engine: EngineSettings,
    /// Directory of precompiled components; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// PEM root certificates trusted for sockets in addition to WebPKI's.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

/// A connector that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("settings do not fit plugin {plugin}: {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Settings {
        plugin: String,
        errors: Vec<SettingError>,
    },
}

/// Failure to build the runtime itself (not a plugin's fault).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
    #[error("cannot set up outbound HTTP: {0}")]
    Http(String),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

struct Inner {
    engine: Engine,
    settings: EngineSettings,
    allocator: AllocatorInUse,
    linkers: bindings::Linkers,
    cache: cache::ComponentCache,
    services: Arc<HostServices>,
    /// Loaded plugins by content hash: 250 brands using one `.wasm` share one.
    plugins: Mutex<HashMap<[u8; 32], SharedPlugin>>,
}

/// The plugin runtime. Cheap to clone; clones share the engine and caches.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("settings", &self.inner.settings)
            .field("allocator", &self.inner.allocator)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let (engine, allocator) = engine::build_engine(&config.engine)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        if config.engine.interruption == Interruption::Epoch {
            engine::spawn_epoch_ticker(&engine, config.engine.epoch_tick);
        }
        let linkers =
            bindings::Linkers::new(&engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let cache = cache::ComponentCache::new(&engine, config.cache_dir.clone());
        let services = Arc::new(HostServices {
            http: HttpClient::new().map_err(|e| RuntimeError::Http(e.to_string()))?,
            tls: TlsSettings::new(&config.extra_roots_pem).map_err(RuntimeError::Tls)?,
        });
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                settings: config.engine,
                allocator,
                linkers,
                cache,
                services,
                plugins: Mutex::default(),
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    pub fn allocator(&self) -> AllocatorInUse {
        self.inner.allocator
    }

    pub fn cache_dir(&self) -> Option<&Path> {
        self.inner.cache.dir()
    }

    /// Loads a plugin file (compiling on a blocking thread when not cached).
    pub async fn load_file(&self, path: &Path) -> Result<SharedPlugin, PluginError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| PluginError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        let what = path.display().to_string();
        let runtime = self.clone();
        tokio::task::spawn_blocking(move || runtime.load_bytes(&bytes, &what))
            .await
            .map_err(|e| PluginError::Host(format!("plugin loader thread failed: {e}")))?
    }

    /// Loads a plugin from its bytes; `what` names it in messages.
    pub fn load_bytes(&self, bytes: &[u8], what: &str) -> Result<SharedPlugin, PluginError> {
        let digest = cache::digest(bytes);
        if let Some(plugin) = self
            .inner
            .plugins
            .lock()
            .expect("plugin map poisoned")
            .get(&digest)
        {
            return Ok(plugin.clone());
        }
        plugin::check_component_header(bytes, what)?;
        let (component, origin) = self
            .inner
            .cache
            .load(&self.inner.engine, bytes, &digest)
            .map_err(|e| PluginError::NotAComponent {
                what: what.to_string(),
                detail: format!("{e:#}"),
            })?;
        let (imports, exports) = plugin::interface_names(&component, &self.inner.engine);
        let (contract, line, export) = plugin::contract_version(what, &exports)?;
        plugin::check_imports(what, &imports)?;
        let pre = bindings::Pre::new(&self.inner.linkers, line, &component, &export, what)?;
        let plugin = Arc::new(Plugin {
            what: what.to_string(),
            digest,
            contract,
            line,
            imports,
            exports,
            origin,
            pre,
            info: tokio::sync::OnceCell::new(),
        });
        tracing::debug!(plugin = %what, contract = %plugin.contract, ?origin, "plugin loaded");
        self.inner
            .plugins
            .lock()
            .expect("plugin map poisoned")
            .insert(digest, plugin.clone());
        Ok(plugin)
    }

    /// A connector: `plugin` run with `grants` under `limits`. Memory caps
    /// above the engine's ceiling are lowered to it.
    pub fn connector(
        &self,
        plugin: SharedPlugin,
        grants: Grants,
        mut limits: CallLimits,
    ) -> ConnectorInstance {
        if limits.memory_bytes > self.inner.settings.max_memory_bytes {
            tracing::warn!(
                brand = %grants.id.brand,
                connector = %grants.id.connector,
                "memory cap {} bytes lowered to the host's ceiling of {} bytes",
                limits.memory_bytes,
                self.inner.settings.max_memory_bytes
            );
            limits.memory_bytes = self.inner.settings.max_memory_bytes;
        }
        ConnectorInstance::new(self.clone(), plugin, Arc::new(grants), limits)
    }

    /// `describe()` of a plugin, run with nothing granted; cached on the plugin.
    pub async fn describe(&self, plugin: SharedPlugin) -> Result<PluginInfo, PluginError> {
        if let Some(info) = plugin.info.get() {
            return Ok(info.clone());
        }
        let grants = Grants::new(
            ConnectorId {
                brand: "-".into(),
                connector: "-".into(),
            },
            Default::default(),
            Default::default(),
            AllowList::default(),
            IoLimits::default(),
            Arc::new(MemoryStateStore::default()),
        );
        self.connector(plugin, grants, CallLimits::default())
            .describe()
            .await
    }

    /// A connector whose settings have been checked against the plugin's
    /// declared schema, with defaults filled in: what operators' configs and
    /// the CLI use. Every problem is reported, each naming its key.
    pub async fn configured_connector(
        &self,
        plugin: SharedPlugin,
        mut grants: Grants,
        limits: CallLimits,
    ) -> Result<ConnectorInstance, SetupError> {
        let info = self.describe(plugin.clone()).await?;
        grants.settings = info
            .apply_settings(&grants.settings, grants.secrets.keys().map(String::as_str))
            .map_err(|errors| SetupError::Settings {
                plugin: info.name.clone(),
                errors,
            })?;
        Ok(self.connector(plugin, grants, limits))
    }

    /// A store for one instance, with its limiter and interruption set up.
    pub(crate) fn new_store(&self, grants: Arc<Grants>, limits: &CallLimits) -> Store<StoreState> {
        let state = StoreState::new(grants, self.inner.services.clone(), limits.memory_bytes);
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        match self.inner.settings.interruption {
            Interruption::Epoch => {
                store.epoch_deadline_callback(|mut ctx| {
                    let call = &mut ctx.data_mut().call;
                    if call.guest_time() > call.cpu_budget {
                        call.cpu_exceeded = true;
                        Ok(UpdateDeadline::Interrupt)
                    } else {
                        // Let other tasks (and the call's timeout) run.
                        Ok(UpdateDeadline::Yield(1))
                    }
                });
            }
            Interruption::Fuel => {
                store
                    .fuel_async_yield_interval(Some(engine::FUEL_YIELD_INTERVAL))
                    .expect("fuel is enabled on this engine");
            }
        }
        store
    }

    /// Arms the CPU budget for the next call on `store`.
    pub(crate) fn arm_budget(&self, store: &mut Store<StoreState>, limits: &CallLimits) {
        store.data_mut().begin_call(limits.cpu_budget);
        match self.inner.settings.interruption {
            Interruption::Epoch => store.set_epoch_deadline(1),
            Interruption::Fuel => {
                let ms = u64::try_from(limits.cpu_budget.as_millis()).unwrap_or(u64::MAX);
                store
                    .set_fuel(ms.saturating_mul(engine::FUEL_PER_MS))
                    .expect("fuel is enabled on this engine");
            }
        }
    }
}
