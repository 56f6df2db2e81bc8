//! webcare connector for Discourse forums: new posts, mentions, replies, private messages (work in progress).

use webcare_plugin::{Connector, PluginInfo};

/// The connector.
pub struct ThisConnector;

impl Connector for ThisConnector {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "discourse",
            env!("CARGO_PKG_VERSION"),
            "forum",
            "webcare connector for Discourse forums: new posts, mentions, replies, private messages",
        )
    }
}

webcare_plugin::export!(ThisConnector);
