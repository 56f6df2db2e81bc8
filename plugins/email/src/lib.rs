//! webcare connector for e-mail: IMAP polling, SMTP replies, inbound MIME webhooks (work in progress).

use webcare_plugin::{Connector, PluginInfo};

/// The connector.
pub struct ThisConnector;

impl Connector for ThisConnector {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "email",
            env!("CARGO_PKG_VERSION"),
            "email",
            "webcare connector for e-mail: IMAP polling, SMTP replies, inbound MIME webhooks",
        )
    }
}

webcare_plugin::export!(ThisConnector);
