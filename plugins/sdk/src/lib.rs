//! Guest SDK for webcare channel connectors.
//!
//! A channel connector is a WebAssembly component that brings a channel's
//! messages into webcare (by polling or through webhooks) and carries agents'
//! answers back out. This crate hides the component-model plumbing: implement
//! the [`Connector`] trait for a type, call [`export!`] once, and build the
//! crate as a `cdylib` for `wasm32-wasip2`.
//!
//! ```no_run
//! use webcare_plugin::{
//!     Author, Batch, Connector, Feature, Message, MessageKind, PluginInfo, Result, SettingSpec,
//!     cursor, http, secrets, settings, time,
//! };
//!
//! /// Reads mentions from a (fictional) JSON API.
//! struct Example;
//!
//! #[derive(serde::Deserialize)]
//! struct Mention {
//!     id: String,
//!     user: String,
//!     text: String,
//!     created_at: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Page {
//!     mentions: Vec<Mention>,
//!     next: Option<String>,
//! }
//!
//! impl Connector for Example {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("example", env!("CARGO_PKG_VERSION"), "example", "Mentions from example.com")
//!             .feature(Feature::Poll)
//!             .setting(SettingSpec::url("base_url", "Root URL of the API.").required())
//!             .setting(SettingSpec::text("api_token", "API token.").required().secret())
//!     }
//!
//!     fn poll(cursor: Option<String>) -> Result<Batch> {
//!         let base_url = settings::require("base_url")?;
//!         let token = secrets::require("api_token")?;
//!         let after: Option<String> = cursor::decode(cursor)?;
//!         let mut request = http::Request::get(format!("{base_url}/mentions")).bearer(&token);
//!         if let Some(after) = &after {
//!             request = request.query(&[("after", after)]);
//!         }
//!         let page: Page = request.send()?.error_for_status()?.json()?;
//!         let mut messages = Vec::new();
//!         for mention in page.mentions {
//!             let author = Author::new(mention.user.clone(), mention.user);
//!             let created_at = time::parse_rfc3339(&mention.created_at)?;
//!             messages.push(Message::new(
//!                 mention.id.clone(),
//!                 mention.id,
//!                 MessageKind::Mention,
//!                 author,
//!                 mention.text,
//!                 created_at,
//!             ));
//!         }
//!         let mut batch = Batch::new(messages);
//!         batch.next_cursor = page.next.as_ref().map(cursor::encode).transpose()?;
//!         Ok(batch)
//!     }
//! }
//!
//! webcare_plugin::export!(Example);
//! ```
//!
//! Everything a connector may do outside its sandbox goes through the host
//! imports wrapped here: [`http`], [`socket`], [`log`], [`state`],
//! [`settings`], [`secrets`], [`context()`] and [`clock`]. Natively (for unit
//! tests of a connector's pure parsing code) those imports are not available
//! and panic when called; keep parsing in pure functions and test those.
//!
//! A panic inside a connector aborts the call. The SDK installs a panic hook
//! that first tells the host the panic message and its source location (see
//! `log.report-panic` in the contract), so operators see why a plugin trapped.

#![warn(missing_docs)]

extern crate self as webcare_plugin;

mod adapter;
pub mod clock;
pub mod cursor;
mod error;
pub mod http;
pub mod log;
pub mod secrets;
pub mod security;
pub mod settings;
pub mod socket;
pub mod state;
pub mod text;
pub mod time;
mod types;

/// Bindings generated from the contract in the workspace's `wit/` folder.
/// Not part of the public API: use the re-exports at the crate root.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "channel-connector",
        pub_export_macro: true,
        export_macro_name: "__export_channel_connector",
        default_bindings_module: "::webcare_plugin::bindings",
        runtime_path: "::webcare_plugin::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
        with: {
            "webcare:connector/types@0.1.0/connector-error": crate::error::Error,
        },
    });
}

pub use bindings::webcare::connector::config::ConnectorContext as Context;
pub use bindings::webcare::connector::types::{
    Action, ActionKind, ActionResult, ActionTarget, Attachment, AttachmentKind, AuthProblem,
    Author, Batch, Direction, Engagement, Feature, Message, MessageKind, MessageUpdate, Outgoing,
    PluginInfo, RateLimit, Removal, SettingSpec, SettingType, TimestampMs, Visibility,
    WebhookOutcome, WebhookRequest, WebhookResponse,
};
pub use error::{Error, Result};

/// What a connector implements. Every method is an associated function: the
/// host may run each call on a fresh instance, so a connector keeps no state
/// in `self` or in globals between calls (use [`state`] for that).
///
/// Only [`describe`](Connector::describe) is mandatory; the other calls
/// default to [`Error::unsupported`]. List the calls you implement in
/// [`PluginInfo::features`].
pub trait Connector {
    /// Who the plugin is, which features it offers and which settings and
    /// secrets it reads. Must not call any import (no [`settings`], no
    /// [`http`], no [`log`]): the host calls it before granting capabilities.
    fn describe() -> PluginInfo;

    /// Fetches what is new since `cursor` (`None` on the very first poll,
    /// else the last [`Batch::next_cursor`] the host committed). Return at
    /// most one page and set [`Batch::has_more`] if another is waiting.
    fn poll(cursor: Option<String>) -> Result<Batch> {
        let _ = cursor;
        Err(Error::unsupported("this connector does not poll"))
    }

    /// Handles one webhook delivery, including verification handshakes.
    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        let _ = request;
        Err(Error::unsupported(
            "this connector does not accept webhooks",
        ))
    }

    /// Carries out an agent's action on the message `target`.
    fn perform(action: Action, target: ActionTarget) -> Result<ActionResult> {
        let _ = target;
        Err(Error::unsupported(format!(
            "this connector does not support the `{}` action",
            action.kind.name()
        )))
    }
}

/// Where this connector runs: the brand's id and the connector's id.
pub fn context() -> Context {
    bindings::webcare::connector::config::context()
}

/// Exports a [`Connector`] implementation as the component's
/// `webcare:connector/connector` interface. Call it exactly once, at the
/// crate root of the connector's `cdylib`. It expands to nothing when the
/// target is not `wasm32`, so the crate also builds natively for tests:
///
/// ```no_run
/// use webcare_plugin::{Connector, PluginInfo};
///
/// struct MyConnector;
///
/// impl Connector for MyConnector {
///     fn describe() -> PluginInfo {
///         PluginInfo::new("mine", "1.0.0", "example", "Does nothing yet.")
///     }
/// }
///
/// webcare_plugin::export!(MyConnector);
/// ```
#[macro_export]
macro_rules! export {
    ($connector:ty) => {
        // Exports exist only in the component; a native build (unit tests,
        // benchmarks of a connector's pure code) leaves them out.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[doc(hidden)]
            type __WebcareConnectorExport = $crate::__private::Adapter<$connector>;
            $crate::bindings::__export_channel_connector!(
                __WebcareConnectorExport with_types_in $crate::bindings
            );
        };
    };
}

/// Support for [`export!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::adapter::Adapter;
    pub use wit_bindgen;
}
