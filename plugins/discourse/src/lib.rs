//! # Discourse connector
//!
//! Brings the posts of a Discourse forum that matter to a brand into
//! webcare, and posts agents' answers back (see this crate's `README.md` for
//! settings, webhooks and the mapping).
//!
//! - [`DiscourseConnector::poll`] reads `GET /posts.json` (public posts) and
//!   `GET /private-posts.json` (the brand account's private messages), newest
//!   first, paging backwards with `before=<post id>` until it reaches the
//!   highest post id it reported before (kept in the cursor).
//! - [`DiscourseConnector::handle_webhook`] accepts Discourse's signed `post`
//!   webhooks and normalises them exactly like polled posts.
//! - [`DiscourseConnector::perform`] replies in the topic or sends the
//!   author a private message through `POST /posts.json`.
//! - [`post`] holds the pure parsing and normalisation ([`normalize_posts`]),
//!   unit-tested natively and benchmarked against its Wasm build.

#![warn(missing_docs)]

pub mod api;
mod poll;
pub mod post;
mod webhook;

pub use post::{Post, Relevance, Rules, normalize_posts};

use serde::{Deserialize, Serialize};
use webcare_plugin::{
    Action, ActionKind, ActionResult, ActionTarget, Batch, Connector, Error, Feature, MessageKind,
    Outgoing, PluginInfo, Result, SettingSpec, WebhookOutcome, WebhookRequest, settings,
};

/// The connector. It holds no data: every call reads what it needs from the
/// settings, because the host may run each call on a fresh instance.
pub struct DiscourseConnector;

impl Connector for DiscourseConnector {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "discourse",
            env!("CARGO_PKG_VERSION"),
            "forum",
            "Discourse forums: mentions of the brand, support-category posts, keyword hits and \
             private messages; replies in the topic and private messages back.",
        )
        .feature(Feature::Poll)
        .feature(Feature::Webhook)
        .feature(Feature::Reply)
        .feature(Feature::PrivateReply)
        .setting(
            SettingSpec::url(
                "base_url",
                "Root URL of the forum, e.g. https://forum.example.com.",
            )
            .required(),
        )
        .setting(
            SettingSpec::text(
                "api_username",
                "Username the API key acts as (sent as Api-Username); best the brand's own, non-admin account.",
            )
            .required(),
        )
        .setting(SettingSpec::text(
            "brand_username",
            "The brand's forum username: its posts are outbound, @-mentions of it and replies to it are reactive (default: api_username).",
        ))
        .setting(SettingSpec::text_list(
            "support_category_ids",
            "Ids of categories whose every post is addressed to the brand.",
        ))
        .setting(SettingSpec::text_list(
            "keywords",
            "Words or phrases monitored in posts and topic titles (proactive care).",
        ))
        .setting(
            SettingSpec::integer(
                "page_size",
                "Posts per page of /posts.json as the forum serves it (Discourse: 50); a full page of new posts makes the connector page back.",
            )
            .default_value("50"),
        )
        .setting(
            SettingSpec::text("api_key", "Discourse API key (sent as Api-Key).")
                .required()
                .secret(),
        )
        .setting(
            SettingSpec::text(
                "webhook_secret",
                "Secret of the Discourse webhook; deliveries must carry its HMAC-SHA256 signature. Webhooks are refused without it.",
            )
            .secret(),
        )
    }

    fn poll(cursor: Option<String>) -> Result<Batch> {
        poll::poll(cursor)
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        webhook::handle(&request)
    }

    fn perform(action: Action, target: ActionTarget) -> Result<ActionResult> {
        let client = api::Client::from_settings()?;
        match action.kind {
            ActionKind::Reply(outgoing) => reply_in_topic(&client, &target, &outgoing),
            ActionKind::PrivateReply(outgoing) => {
                // A private message is answered inside its own topic; a
                // public post gets a new private message to its author.
                if target.kind == MessageKind::DirectMessage
                    || target.property("archetype") == Some("private_message")
                {
                    reply_in_topic(&client, &target, &outgoing)
                } else {
                    private_message(&client, &target, &outgoing)
                }
            }
            other => Err(Error::unsupported(format!(
                "the Discourse connector cannot `{}` posts",
                other.name()
            ))),
        }
    }
}

webcare_plugin::export!(DiscourseConnector);

/// The settings every call needs, read once per call.
pub(crate) fn rules() -> Result<Rules> {
    let base_url = settings::require("base_url")?;
    let brand = settings::get("brand_username")
        .filter(|name| !name.trim().is_empty())
        .map_or_else(|| settings::require("api_username"), Ok)?;
    let categories = settings::list("support_category_ids")
        .iter()
        .map(|id| {
            id.parse::<u64>().map_err(|_| {
                Error::invalid_input(format!(
                    "setting `support_category_ids`: `{id}` is not a category id (a number)"
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Rules::new(
        &base_url,
        &brand,
        categories,
        &settings::list("keywords"),
    ))
}

/// `POST /posts.json` body of a reply in an existing topic.
#[derive(Serialize)]
struct ReplyBody<'a> {
    topic_id: u64,
    raw: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to_post_number: Option<u64>,
}

/// `POST /posts.json` body of a new private message.
#[derive(Serialize)]
struct PrivateMessageBody<'a> {
    title: &'a str,
    raw: &'a str,
    target_recipients: &'a str,
    archetype: &'static str,
}

/// What Discourse answers to `POST /posts.json`.
#[derive(Deserialize)]
struct Created {
    id: u64,
    topic_id: u64,
    #[serde(default)]
    topic_slug: Option<String>,
    post_number: u64,
}

/// Answers `target` publicly in its topic, quoting it as the post replied to.
fn reply_in_topic(
    client: &api::Client,
    target: &ActionTarget,
    outgoing: &Outgoing,
) -> Result<ActionResult> {
    let raw = compose(outgoing)?;
    let topic_id = target_topic(target)?;
    let reply_to_post_number = target
        .property("post_number")
        .and_then(|number| number.parse().ok());
    let created: Created = client.post_json(
        "/posts.json",
        &ReplyBody {
            topic_id,
            raw: &raw,
            reply_to_post_number,
        },
    )?;
    Ok(created_result(client, &created))
}

/// Opens a private message to the author of `target`, titled after its topic.
fn private_message(
    client: &api::Client,
    target: &ActionTarget,
    outgoing: &Outgoing,
) -> Result<ActionResult> {
    let raw = compose(outgoing)?;
    let recipient = target
        .property("username")
        .unwrap_or(target.author.handle.as_str());
    if recipient.is_empty() {
        return Err(Error::invalid_input(
            "the target post has no author username to send a private message to",
        ));
    }
    let topic_title = target
        .subject
        .as_deref()
        .or_else(|| target.property("topic_title"))
        .unwrap_or("your forum post");
    let title = format!("Re: {topic_title}");
    let created: Created = client.post_json(
        "/posts.json",
        &PrivateMessageBody {
            title: &title,
            raw: &raw,
            target_recipients: recipient,
            archetype: "private_message",
        },
    )?;
    Ok(created_result(client, &created))
}

/// The Markdown to post: the text, then one line per attached link.
fn compose(outgoing: &Outgoing) -> Result<String> {
    if outgoing.text.trim().is_empty() {
        return Err(Error::invalid_input("cannot post an empty answer"));
    }
    let mut raw = outgoing.text.clone();
    for url in outgoing
        .attachments
        .iter()
        .filter_map(|attachment| attachment.url.as_deref())
    {
        raw.push_str("\n\n");
        raw.push_str(url);
    }
    Ok(raw)
}

/// The topic of `target`: its `topic_id` property, else its `topic:{id}` thread.
fn target_topic(target: &ActionTarget) -> Result<u64> {
    target
        .property("topic_id")
        .or_else(|| target.thread_id.strip_prefix("topic:"))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "message `{}` does not belong to a Discourse topic (no `topic_id` property)",
                target.external_id
            ))
        })
}

/// The action result for a created post: its id and permalink.
fn created_result(client: &api::Client, created: &Created) -> ActionResult {
    ActionResult::created(
        created.id.to_string(),
        Some(post::permalink(
            client.base_url(),
            created.topic_slug.as_deref(),
            created.topic_id,
            created.post_number,
        )),
    )
}
