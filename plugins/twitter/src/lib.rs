//! webcare connector for Twitter/X (API v2): mentions, keyword search, DMs (work in progress).

use webcare_plugin::{Connector, PluginInfo};

/// The connector.
pub struct ThisConnector;

impl Connector for ThisConnector {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "twitter",
            env!("CARGO_PKG_VERSION"),
            "twitter",
            "webcare connector for Twitter/X (API v2): mentions, keyword search, DMs",
        )
    }
}

webcare_plugin::export!(ThisConnector);
