//! webcare connector for Facebook Pages and Messenger (Graph API webhooks and polling) (work in progress).

use webcare_plugin::{Connector, PluginInfo};

/// The connector.
pub struct ThisConnector;

impl Connector for ThisConnector {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "facebook",
            env!("CARGO_PKG_VERSION"),
            "facebook",
            "webcare connector for Facebook Pages and Messenger (Graph API webhooks and polling)",
        )
    }
}

webcare_plugin::export!(ThisConnector);
