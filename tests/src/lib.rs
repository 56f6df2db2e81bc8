//! The test kit: builds the plugins the tests load, serves fake channel
//! APIs on loopback, and makes runtimes that share one component cache.
//!
//! `plugins`, `fake_api`, `fake_feed`, `host_process` and `postgres_db` do not depend on the host
//! crate, so the host's own CLI tests include them by path.

pub mod care_api;
pub mod fake_api;
pub mod fake_discourse;
pub mod fake_facebook;
pub mod fake_feed;
pub mod fake_rss;
pub mod fake_twitter;
pub mod host_process;
pub mod mail_servers;
pub mod nats_server;
pub mod plugins;
pub mod postgres_db;
pub mod postgres_tls_server;
pub mod test_pki;

use std::path::PathBuf;

use webcare::runtime::{EngineSettings, Runtime, RuntimeConfig};

/// A runtime whose component cache is shared by all test binaries, so each
/// plugin is compiled once per build, not once per test.
pub fn runtime() -> Runtime {
    runtime_with(EngineSettings::default())
}

pub fn runtime_with(engine: EngineSettings) -> Runtime {
    Runtime::new(RuntimeConfig {
        engine,
        cache_dir: Some(test_cache_dir()),
        extra_roots_pem: Vec::new(),
    })
    .expect("runtime")
}

pub fn test_cache_dir() -> PathBuf {
    plugins::workspace_root()
        .join("target")
        .join("test-component-cache")
}
