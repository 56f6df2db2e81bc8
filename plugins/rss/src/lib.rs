//! webcare connector for RSS and Atom feeds of forums and blogs (read-only) (work in progress).

use webcare_plugin::{Connector, PluginInfo};

/// The connector.
pub struct ThisConnector;

impl Connector for ThisConnector {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "rss",
            env!("CARGO_PKG_VERSION"),
            "forum",
            "webcare connector for RSS and Atom feeds of forums and blogs (read-only)",
        )
    }
}

webcare_plugin::export!(ThisConnector);
