//! A connector built against `webcare:connector@0.9.0`, a contract version
//! the host does not support.
//!
//! It uses `wit-bindgen` directly on its own copy of the contract
//! (`wit/`, identical to the workspace's but for the package version), not
//! the SDK, which is tied to the version the host speaks. The host's tests
//! load it to check that the host refuses it with an error naming both the
//! plugin's version (0.9.0) and the versions the host supports.

wit_bindgen::generate!({
    path: "wit",
    world: "channel-connector",
});

use exports::webcare::connector::connector::Guest;
use webcare::connector::types::{
    Action, ActionResult, ActionTarget, Batch, ConnectorError, Feature, PluginInfo, WebhookOutcome,
    WebhookRequest,
};

/// The connector: it would work, if the host accepted its contract version.
pub struct Skewed;

impl Guest for Skewed {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "skewed".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            channel: "test".to_owned(),
            description: "Built against contract 0.9.0; the host must refuse it.".to_owned(),
            features: vec![Feature::Poll],
            settings: Vec::new(),
        }
    }

    fn poll(cursor: Option<String>) -> Result<Batch, ConnectorError> {
        Ok(Batch {
            messages: Vec::new(),
            updates: Vec::new(),
            next_cursor: cursor,
            has_more: false,
            retry_after_ms: None,
        })
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported(
            "the skewed plugin takes no webhooks".to_owned(),
        ))
    }

    fn perform(_action: Action, _target: ActionTarget) -> Result<ActionResult, ConnectorError> {
        Err(ConnectorError::Unsupported(
            "the skewed plugin performs no actions".to_owned(),
        ))
    }
}

// Exports exist only in the component; a native build (clippy) leaves them out.
#[cfg(target_arch = "wasm32")]
export!(Skewed);
