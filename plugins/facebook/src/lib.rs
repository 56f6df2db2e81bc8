//! # Facebook connector
//!
//! Brings a Facebook Page's posts, comments, mentions and Messenger
//! conversations into webcare and carries agents' answers back, through the
//! Graph API. See this crate's `README.md` for settings, permissions,
//! webhooks and the mapping to the contract.
//!
//! - Webhooks ([`webhook`]): the `hub.challenge` handshake, the
//!   `X-Hub-Signature-256` check, and `object: page` deliveries (`changes`
//!   of the `feed` and `mention` fields, Messenger `messaging` events).
//! - Poll ([`poll`](Connector::poll)): the feed and its comments since a
//!   small cursor, a fallback for missed deliveries.
//! - Actions: comment replies, Private Replies, Messenger replies (with the
//!   24-hour / 7-day windows enforced up front, [`policy`]), likes, hiding.
//! - Graph errors and usage headers ([`graph`]) become the contract's errors
//!   and back-off.
//!
//! [`normalize_webhook`] is the pure normalisation, unit-tested natively
//! and benchmarked against the component.

#![warn(missing_docs)]

mod actions;
mod client;
pub mod feed;
pub mod graph;
pub mod ids;
pub mod policy;
mod poll;
mod public;
pub mod webhook;

pub use feed::{EdgePage, normalize_comments, normalize_feed};
pub use poll::Position;
pub use webhook::{Delivery, SignatureProblem, normalize_webhook, verify_signature};

use webcare_plugin::security::constant_time_eq;
use webcare_plugin::{
    Action, ActionResult, ActionTarget, Batch, Connector, Feature, PluginInfo, Result, SettingSpec,
    WebhookOutcome, WebhookRequest, WebhookResponse, log, secrets, settings,
};

/// Where the Graph API lives unless `graph_base_url` says otherwise.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version used unless `graph_version` says otherwise.
pub const DEFAULT_GRAPH_VERSION: &str = "v21.0";

/// The connector. It keeps nothing between calls: settings, secrets and the
/// `state` import say everything it needs.
pub struct FacebookConnector;

impl Connector for FacebookConnector {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "facebook",
            env!("CARGO_PKG_VERSION"),
            "facebook",
            "Facebook Page posts, comments, mentions and Messenger through the Graph API (webhooks and polling).",
        )
        .feature(Feature::Poll)
        .feature(Feature::Webhook)
        .feature(Feature::Reply)
        .feature(Feature::PrivateReply)
        .feature(Feature::React)
        .feature(Feature::Hide)
        .feature(Feature::Unhide)
        .setting(
            SettingSpec::url("graph_base_url", "Root URL of the Graph API.")
                .default_value(DEFAULT_GRAPH_BASE_URL),
        )
        .setting(
            SettingSpec::text("graph_version", "Graph API version, e.g. v21.0.")
                .default_value(DEFAULT_GRAPH_VERSION),
        )
        .setting(
            SettingSpec::text(
                "page_id",
                "The Facebook Page's numeric id; its own posts and messages are outbound.",
            )
            .required(),
        )
        .setting(
            SettingSpec::boolean(
                "poll_feed",
                "Poll the page feed and comments as a fallback for missed webhooks.",
            )
            .default_value("true"),
        )
        .setting(
            SettingSpec::text(
                "page_access_token",
                "Page access token (pages_read_engagement, pages_manage_engagement, pages_messaging, ...).",
            )
            .required()
            .secret(),
        )
        .setting(
            SettingSpec::text(
                "app_secret",
                "The Meta app's secret: checks webhook signatures and signs calls (appsecret_proof).",
            )
            .required()
            .secret(),
        )
        .setting(
            SettingSpec::text(
                "verify_token",
                "The token entered in the app's webhook settings, echoed in the hub.challenge handshake.",
            )
            .required()
            .secret(),
        )
    }

    fn poll(cursor: Option<String>) -> Result<Batch> {
        poll::poll(cursor)
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        match request.method.as_str() {
            "GET" => verify_subscription(&request),
            "POST" => receive(&request),
            _ => Ok(WebhookOutcome::new(
                WebhookResponse::text(405, "use GET or POST").header("allow", "GET, POST"),
            )),
        }
    }

    fn perform(action: Action, target: ActionTarget) -> Result<ActionResult> {
        actions::perform(action, target)
    }
}

webcare_plugin::export!(FacebookConnector);

/// The subscription handshake: `hub.mode=subscribe`, `hub.verify_token`
/// equal to the configured secret → 200 with `hub.challenge` as the body;
/// a wrong token → 403.
fn verify_subscription(request: &WebhookRequest) -> Result<WebhookOutcome> {
    let (Some(mode), Some(challenge)) = (
        request.query_param("hub.mode"),
        request.query_param("hub.challenge"),
    ) else {
        return Ok(WebhookOutcome::new(WebhookResponse::text(
            400,
            "expected hub.mode, hub.verify_token and hub.challenge",
        )));
    };
    let expected = secrets::require("verify_token")?;
    let given = request.query_param("hub.verify_token").unwrap_or_default();
    if mode != "subscribe" || !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        log::warn("webhook verification refused: wrong hub.mode or hub.verify_token");
        return Ok(WebhookOutcome::new(WebhookResponse::text(
            403,
            "verification failed",
        )));
    }
    Ok(WebhookOutcome::new(WebhookResponse::text(200, challenge)))
}

/// A delivery: signature first (nothing is read from an unsigned body),
/// then the normalised entries.
fn receive(request: &WebhookRequest) -> Result<WebhookOutcome> {
    let app_secret = secrets::require("app_secret")?;
    if let Err(problem) = verify_signature(
        &request.body,
        request.header("x-hub-signature-256"),
        &app_secret,
    ) {
        let (status, text) = match problem {
            SignatureProblem::Missing => (401, "missing X-Hub-Signature-256"),
            SignatureProblem::Invalid => (403, "X-Hub-Signature-256 does not match the body"),
        };
        log::warn(format!("webhook delivery refused: {text}"));
        return Ok(WebhookOutcome::new(WebhookResponse::text(status, text)));
    }
    let delivery = normalize_webhook(&request.body, &settings::require("page_id")?)?;
    if delivery.object != "page" {
        // Answer 200 anyway: Facebook retries anything else for hours.
        log::warn(format!(
            "ignored a webhook delivery for object `{}`; this connector reads `page`",
            delivery.object
        ));
    } else if delivery.ignored > 0 {
        log::debug(format!(
            "skipped {} change(s) or event(s) that are not messages",
            delivery.ignored
        ));
    }
    Ok(WebhookOutcome {
        response: WebhookResponse::text(200, "EVENT_RECEIVED"),
        messages: delivery.messages,
        updates: delivery.updates,
    })
}
