//! The smallest possible connector: `poll` returns an empty batch without
//! touching any import. The benchmarks use it to measure what the host adds
//! to a call (instantiation, the call itself) with no plugin work in it.

use webcare_plugin::{Batch, Connector, Feature, PluginInfo, Result};

/// Does nothing, quickly.
pub struct Noop;

impl Connector for Noop {
    fn describe() -> PluginInfo {
        PluginInfo::new("noop", env!("CARGO_PKG_VERSION"), "test", "Does nothing.")
            .feature(Feature::Poll)
    }

    fn poll(_cursor: Option<String>) -> Result<Batch> {
        Ok(Batch::empty())
    }
}

webcare_plugin::export!(Noop);
