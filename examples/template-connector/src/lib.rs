//! # Template connector
//!
//! A complete, working webcare channel connector for a simple JSON feed API
//! (documented in this crate's `README.md`). Copy this crate to start a new
//! connector: replace the feed's JSON types in [`feed`] with your channel's,
//! keep the shape.
//!
//! The pieces:
//! - [`TemplateConnector`] implements [`Connector`]: `describe` declares
//!   settings and features, `poll` fetches a page, `handle_webhook` accepts
//!   pushed items, `perform` posts replies and reactions.
//! - [`normalize_page`] turns the feed's JSON into the contract's messages.
//!   It is pure (no host calls), so it is unit-tested natively and
//!   benchmarked against its Wasm build.
//! - `webcare_plugin::export!` at the bottom makes the type the component's
//!   export.
//!
//! Build the component with
//! `cargo build --target wasm32-wasip2 --profile plugin -p template-connector`.

#![warn(missing_docs)]

pub mod feed;

pub use feed::{Page, normalize_page};

use serde::{Deserialize, Serialize};
use webcare_plugin::http::{self, Request};
use webcare_plugin::security::constant_time_eq;
use webcare_plugin::{
    Action, ActionKind, ActionResult, ActionTarget, Batch, Connector, Error, Feature, PluginInfo,
    Result, SettingSpec, WebhookOutcome, WebhookRequest, WebhookResponse, secrets, settings,
};

/// The connector. It holds no data: every call reads what it needs from the
/// settings, because the host may run each call on a fresh instance.
pub struct TemplateConnector;

impl Connector for TemplateConnector {
    fn describe() -> PluginInfo {
        // Only build data here: `describe` must not call any host import.
        PluginInfo::new(
            "template",
            env!("CARGO_PKG_VERSION"),
            "feed",
            "Messages from a JSON feed API; a starting point for new connectors.",
        )
        .feature(Feature::Poll)
        .feature(Feature::Webhook)
        .feature(Feature::Reply)
        .feature(Feature::PrivateReply)
        .feature(Feature::React)
        .setting(
            SettingSpec::url(
                "base_url",
                "Root URL of the feed API, e.g. https://feed.example.com.",
            )
            .required(),
        )
        .setting(
            SettingSpec::text(
                "brand_handle",
                "The brand's own username; its messages are outbound.",
            )
            .required(),
        )
        .setting(
            SettingSpec::integer("page_size", "Items per poll request (1-1000).")
                .default_value("50"),
        )
        .setting(
            SettingSpec::text("api_token", "Bearer token for the feed API.")
                .required()
                .secret(),
        )
        .setting(
            SettingSpec::text(
                "webhook_token",
                "Shared token webhook calls must send in `x-feed-token`.",
            )
            .secret(),
        )
    }

    fn poll(cursor: Option<String>) -> Result<Batch> {
        let page_size: u32 = settings::parse("page_size")?;
        if !(1..=1000).contains(&page_size) {
            return Err(Error::invalid_input(format!(
                "setting `page_size` must be between 1 and 1000, not {page_size}"
            )));
        }
        let mut request = Request::get(format!("{}/v1/messages", base_url()?))
            .bearer(&secrets::require("api_token")?)
            .query(&[("limit", page_size.to_string())]);
        // The cursor is the feed's own opaque `next` value. A connector that
        // needs a structured cursor can use `webcare_plugin::cursor`.
        if let Some(after) = &cursor {
            request = request.query(&[("after", after)]);
        }
        // `error_for_status` maps 429 (with its wait), 401, 403, 5xx, ... to
        // the errors the host knows how to handle.
        let response = request.send()?.error_for_status()?;
        let page = normalize_page(&response.body, &settings::require("brand_handle")?)?;
        Ok(Batch {
            messages: page.messages,
            updates: page.updates,
            // `None` (the feed said `next: null`) keeps the host's cursor.
            next_cursor: page.next,
            has_more: page.has_more,
            retry_after_ms: None,
        })
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        match request.method.as_str() {
            // Verification handshake: echo the challenge.
            "GET" => Ok(WebhookOutcome::new(
                match request.query_param("challenge") {
                    Some(challenge) => WebhookResponse::text(200, challenge),
                    None => WebhookResponse::text(400, "missing `challenge` query parameter"),
                },
            )),
            "POST" => {
                if !token_matches(&request) {
                    return Ok(WebhookOutcome::new(WebhookResponse::json(
                        401,
                        &Ack { ok: false },
                    )?));
                }
                // Malformed JSON fails the whole delivery (the host answers
                // 4xx and reports nothing).
                let page = normalize_page(&request.body, &settings::require("brand_handle")?)?;
                Ok(WebhookOutcome {
                    response: WebhookResponse::json(200, &Ack { ok: true })?,
                    messages: page.messages,
                    updates: page.updates,
                })
            }
            _ => Ok(WebhookOutcome::new(
                WebhookResponse::text(405, "use GET or POST").header("allow", "GET, POST"),
            )),
        }
    }

    fn perform(action: Action, target: ActionTarget) -> Result<ActionResult> {
        let message_url = format!(
            "{}/v1/messages/{}",
            base_url()?,
            http::encode_component(&target.external_id)
        );
        let token = secrets::require("api_token")?;
        match action.kind {
            ActionKind::Reply(outgoing) => reply(
                &message_url,
                &token,
                &outgoing.text,
                false,
                &action.idempotency_key,
            ),
            ActionKind::PrivateReply(outgoing) => reply(
                &message_url,
                &token,
                &outgoing.text,
                true,
                &action.idempotency_key,
            ),
            ActionKind::React(reaction) => {
                Request::post(format!("{message_url}/reactions"))
                    .bearer(&token)
                    .json(&ReactionBody {
                        reaction: &reaction,
                    })?
                    .send()?
                    .error_for_status()?;
                Ok(ActionResult::done())
            }
            ActionKind::Hide | ActionKind::Unhide => Err(Error::unsupported(
                "the feed API cannot hide or unhide messages",
            )),
        }
    }
}

webcare_plugin::export!(TemplateConnector);

/// The `base_url` setting without a trailing slash.
fn base_url() -> Result<String> {
    Ok(settings::require("base_url")?
        .trim_end_matches('/')
        .to_owned())
}

/// True when no `webhook_token` is configured or the request's
/// `x-feed-token` header matches it (compared in constant time).
fn token_matches(request: &WebhookRequest) -> bool {
    match secrets::get("webhook_token") {
        None => true,
        Some(expected) => {
            let given = request.header("x-feed-token").unwrap_or_default();
            constant_time_eq(given.as_bytes(), expected.as_bytes())
        }
    }
}

/// Posts a public or private reply to the message at `message_url`.
fn reply(
    message_url: &str,
    token: &str,
    text: &str,
    private: bool,
    idempotency_key: &str,
) -> Result<ActionResult> {
    let created: Created = Request::post(format!("{message_url}/replies"))
        .bearer(token)
        .json(&ReplyBody {
            text,
            private,
            idempotency_key,
        })?
        .send()?
        .error_for_status()?
        .json()?;
    Ok(ActionResult::created(created.id, created.url))
}

/// The webhook's response body.
#[derive(Serialize)]
struct Ack {
    ok: bool,
}

/// `POST /v1/messages/{id}/replies` request body.
#[derive(Serialize)]
struct ReplyBody<'a> {
    text: &'a str,
    private: bool,
    idempotency_key: &'a str,
}

/// `POST /v1/messages/{id}/reactions` request body.
#[derive(Serialize)]
struct ReactionBody<'a> {
    reaction: &'a str,
}

/// What the feed answers to a reply.
#[derive(Deserialize)]
struct Created {
    id: String,
    url: Option<String>,
}
