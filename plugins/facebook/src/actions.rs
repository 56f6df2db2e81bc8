//! Agents' actions on Facebook: public comment replies, Private Replies,
//! Messenger replies, likes, hiding and unhiding comments.
//!
//! Channel rules are checked before any request (see [`crate::policy`]):
//! an action that would break one fails with `not-allowed` and sends nothing.

use serde::{Deserialize, Serialize};
use serde_json::json;
use webcare_plugin::{
    Action, ActionKind, ActionResult, ActionTarget, Error, MessageKind, Result, clock, settings,
    state,
};

use crate::client::{Graph, segment};
use crate::policy::{self, SendMode};

/// Longest Messenger text the Send API takes, in characters.
const MESSENGER_MAX_CHARS: usize = 2000;
/// Longest comment Facebook takes, in characters.
const COMMENT_MAX_CHARS: usize = 8000;

/// What the state remembers of a private reply that was sent.
#[derive(Serialize, Deserialize)]
struct SentPrivateReply {
    /// The action's idempotency key: a retry of the same action gets the
    /// earlier result instead of a refusal.
    key: String,
    message_id: String,
}

/// Carries out `action` on `target`.
pub fn perform(action: Action, target: ActionTarget) -> Result<ActionResult> {
    let page_id = settings::require("page_id")?;
    let key = action.idempotency_key;
    match action.kind {
        ActionKind::Reply(outgoing) | ActionKind::PrivateReply(outgoing)
            if target.kind == MessageKind::DirectMessage =>
        {
            messenger_reply(&page_id, &target, &outgoing.text, &key)
        }
        ActionKind::Reply(outgoing) => comment_reply(&target, &outgoing.text),
        ActionKind::PrivateReply(outgoing) => {
            private_reply(&page_id, &target, &outgoing.text, &key)
        }
        ActionKind::React(reaction) => like(&target, &reaction),
        ActionKind::Hide => set_hidden(&target, true),
        ActionKind::Unhide => set_hidden(&target, false),
    }
}

/// The Graph object an action on `target` addresses: its comment, else its post.
fn object_id(target: &ActionTarget) -> &str {
    target.property("comment_id").unwrap_or(&target.external_id)
}

/// Refuses empty text and text over `max` characters.
fn check_text(text: &str, max: usize, what: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid_input(format!("a {what} needs text")));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(Error::not_allowed(format!(
            "a {what} may have at most {max} characters, this one has {chars}"
        )));
    }
    Ok(())
}

/// `POST /{comment-or-post-id}/comments` with `message`.
fn comment_reply(target: &ActionTarget, text: &str) -> Result<ActionResult> {
    check_text(text, COMMENT_MAX_CHARS, "comment")?;
    let object = object_id(target);
    let mut graph = Graph::from_config()?;
    let created: Created = graph
        .post_form(
            &format!("{}/comments", segment(object)),
            &[("message", text)],
        )?
        .json()?;
    let post_id = target.property("post_id").unwrap_or(&target.thread_id);
    let permalink = format!(
        "https://www.facebook.com/{post_id}?comment_id={}",
        created.id
    );
    Ok(ActionResult::created(created.id, Some(permalink)))
}

/// A Private Reply: one Messenger message to the author of a comment or
/// visitor post, within 7 days of it, `POST /{page-id}/messages` with
/// `recipient: {comment_id}` (or `post_id`).
fn private_reply(
    page_id: &str,
    target: &ActionTarget,
    text: &str,
    key: &str,
) -> Result<ActionResult> {
    check_text(text, MESSENGER_MAX_CHARS, "private reply")?;
    let (recipient_field, object) = match (target.kind, target.property("comment_id")) {
        (_, Some(comment_id)) => ("comment_id", comment_id),
        (MessageKind::Post | MessageKind::Mention, None) => {
            ("post_id", target.external_id.as_str())
        }
        _ => {
            return Err(Error::invalid_input(format!(
                "a private reply answers a comment, a mention or a visitor post; `{}` is none of them",
                target.external_id
            )));
        }
    };
    let state_key = format!("private-reply/{object}");
    if let Some(sent) = state::get_json::<SentPrivateReply>(&state_key)? {
        if sent.key == key {
            // A retry of an action that already went through.
            return Ok(ActionResult::created(sent.message_id, None));
        }
        return Err(Error::not_allowed(format!(
            "Facebook allows one private reply per comment, and `{object}` already has one"
        )));
    }
    policy::private_reply_window(clock::now_ms(), target.created_at)?;
    let mut graph = Graph::from_config()?;
    let sent: Sent = graph
        .post_json(
            &format!("{}/messages", segment(page_id)),
            &json!({
                "recipient": {recipient_field: object},
                "message": {"text": text, "metadata": key},
            }),
        )?
        .json()?;
    state::set_json(
        &state_key,
        &SentPrivateReply {
            key: key.to_owned(),
            message_id: sent.message_id.clone(),
        },
    )?;
    Ok(ActionResult::created(sent.message_id, None))
}

/// A Messenger reply in the person's conversation, `RESPONSE` within 24 h of
/// their last message, `HUMAN_AGENT` up to 7 days.
fn messenger_reply(
    page_id: &str,
    target: &ActionTarget,
    text: &str,
    key: &str,
) -> Result<ActionResult> {
    check_text(text, MESSENGER_MAX_CHARS, "Messenger message")?;
    let psid = target
        .property("psid")
        .or_else(|| target.thread_id.strip_prefix("messenger:"))
        .filter(|psid| !psid.is_empty())
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "message `{}` has no Messenger PSID to answer",
                target.external_id
            ))
        })?;
    // Without a known last inbound time, the target's own time is the best
    // lower bound the host gives.
    let last_inbound = target.last_inbound_at.unwrap_or(target.created_at);
    let mut body = json!({
        "recipient": {"id": psid},
        "messaging_type": "RESPONSE",
        "message": {"text": text, "metadata": key},
    });
    if policy::messenger_mode(clock::now_ms(), last_inbound)? == SendMode::HumanAgent {
        body["messaging_type"] = json!("MESSAGE_TAG");
        body["tag"] = json!("HUMAN_AGENT");
    }
    let mut graph = Graph::from_config()?;
    let sent: Sent = graph
        .post_json(&format!("{}/messages", segment(page_id)), &body)?
        .json()?;
    Ok(ActionResult::created(sent.message_id, None))
}

/// `POST /{object-id}/likes`: the only reaction the Graph API lets a page make.
fn like(target: &ActionTarget, reaction: &str) -> Result<ActionResult> {
    if !reaction.eq_ignore_ascii_case("like") {
        return Err(Error::unsupported(format!(
            "the Graph API lets a page only `like`, not `{reaction}`"
        )));
    }
    if target.kind == MessageKind::DirectMessage {
        return Err(Error::unsupported("pages cannot like Messenger messages"));
    }
    let mut graph = Graph::from_config()?;
    graph.post_form(
        &format!("{}/likes", segment(object_id(target))),
        &[] as &[(&str, &str)],
    )?;
    Ok(ActionResult::done())
}

/// `POST /{comment-id}` with `is_hidden=true|false`.
fn set_hidden(target: &ActionTarget, hidden: bool) -> Result<ActionResult> {
    let Some(comment_id) = target.property("comment_id") else {
        return Err(Error::invalid_input(format!(
            "only comments can be hidden or unhidden; `{}` is not a comment",
            target.external_id
        )));
    };
    let mut graph = Graph::from_config()?;
    graph.post_form(
        &segment(comment_id),
        &[("is_hidden", if hidden { "true" } else { "false" })],
    )?;
    Ok(ActionResult::done())
}

/// Graph's answer to a created object.
#[derive(Deserialize)]
struct Created {
    id: String,
}

/// The Send API's answer.
#[derive(Deserialize)]
struct Sent {
    message_id: String,
}
