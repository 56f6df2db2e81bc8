//! `perform`: public replies (`POST /2/tweets`), private replies (a DM to
//! the author, `POST /2/dm_conversations/with/{participant_id}/messages`)
//! and likes (`POST /2/users/{id}/likes`).
//!
//! X has no idempotency keys on these endpoints. A retried reply that went
//! through the first time is refused by X as duplicate content, which maps
//! to `not-allowed` (not retried).

use serde::Serialize;
use webcare_plugin::http::Request;
use webcare_plugin::{
    Action, ActionKind, ActionResult, ActionTarget, Error, MessageKind, Result, clock, http, state,
};

use crate::api::{CreatedDm, CreatedTweet, Liked};
use crate::config::Config;
use crate::errors::{self, Endpoint};
use crate::normalize::{dm_permalink, tweet_permalink};
use crate::poll::{TOKEN_OK_KEY, token_known_good};

/// X's limit for a post by a standard account, in weighted characters.
pub const MAX_TWEET_WEIGHT: usize = 280;
/// X's limit for a direct message, in characters.
pub const MAX_DM_CHARS: usize = 10_000;
/// Weight X gives every URL, whatever its length (t.co wrapping).
const URL_WEIGHT: usize = 23;

/// The `perform` export.
pub fn perform(action: Action, target: ActionTarget) -> Result<ActionResult> {
    let config = Config::load()?;
    let result = match action.kind {
        // A DM cannot be answered in public: answering it means answering in
        // its own (private) conversation.
        ActionKind::Reply(outgoing) if target.kind == MessageKind::DirectMessage => {
            send_dm(&config, &target, &outgoing.text)
        }
        ActionKind::Reply(outgoing) => reply(&config, &target, &outgoing.text),
        ActionKind::PrivateReply(outgoing) => send_dm(&config, &target, &outgoing.text),
        ActionKind::React(reaction) => like(&config, &target, &reaction),
        ActionKind::Hide | ActionKind::Unhide => Err(Error::unsupported(
            "the X connector does not hide or unhide replies",
        )),
    }?;
    // Best effort: only sharpens a later 401's message.
    let _ = state::set(TOKEN_OK_KEY, b"1");
    Ok(result)
}

/// Replies in public to the target post.
fn reply(config: &Config, target: &ActionTarget, text: &str) -> Result<ActionResult> {
    check_text(text)?;
    let weight = weighted_length(text);
    if weight > MAX_TWEET_WEIGHT {
        return Err(Error::not_allowed(format!(
            "an X post holds at most {MAX_TWEET_WEIGHT} characters (URLs count 23, emoji and CJK \
             count 2); this reply counts {weight}"
        )));
    }
    // Reply to the newest version of an edited post.
    let tweet_id = target.property("tweet_id").unwrap_or(&target.external_id);
    let body = CreateTweet {
        text,
        reply: ReplyTo {
            in_reply_to_tweet_id: tweet_id,
        },
    };
    let request = Request::post(format!("{}/2/tweets", config.base_url))
        .bearer(&config.token)
        .json(&body)?;
    let created: CreatedTweet = send(request, errors::CREATE_TWEET)?.json()?;
    let permalink = tweet_permalink(Some(&config.brand_username), &created.data.id);
    Ok(ActionResult::created(created.data.id, Some(permalink)))
}

/// Sends a direct message to the target's author (or, for a DM the brand
/// sent, to the other participant).
fn send_dm(config: &Config, target: &ActionTarget, text: &str) -> Result<ActionResult> {
    check_text(text)?;
    let chars = text.chars().count();
    if chars > MAX_DM_CHARS {
        return Err(Error::not_allowed(format!(
            "an X direct message holds at most {MAX_DM_CHARS} characters; this one has {chars}"
        )));
    }
    let participant = target
        .property("participant_id")
        .filter(|id| !id.is_empty())
        .unwrap_or(&target.author.id);
    if participant.is_empty() || participant == config.brand_user_id {
        return Err(Error::invalid_input(
            "a private reply needs a customer to write to; this message was written by the \
             brand itself",
        ));
    }
    let url = format!(
        "{}/2/dm_conversations/with/{}/messages",
        config.base_url,
        http::encode_component(participant)
    );
    let request = Request::post(url)
        .bearer(&config.token)
        .json(&SendDm { text })?;
    let created: CreatedDm = send(request, errors::SEND_DM)?.json()?;
    let permalink = dm_permalink(&created.data.dm_conversation_id);
    Ok(ActionResult::created(
        created.data.dm_event_id,
        Some(permalink),
    ))
}

/// Likes the target post as the brand account.
fn like(config: &Config, target: &ActionTarget, reaction: &str) -> Result<ActionResult> {
    if target.kind == MessageKind::DirectMessage {
        return Err(Error::unsupported(
            "X's API cannot react to direct messages",
        ));
    }
    if !matches!(
        reaction.trim().to_lowercase().as_str(),
        "like" | "heart" | "favorite" | "❤️" | "❤"
    ) {
        return Err(Error::unsupported(format!(
            "X posts only take a like; `{reaction}` is not one"
        )));
    }
    let tweet_id = target.property("tweet_id").unwrap_or(&target.external_id);
    let url = format!(
        "{}/2/users/{}/likes",
        config.base_url,
        http::encode_component(&config.brand_user_id)
    );
    let request = Request::post(url)
        .bearer(&config.token)
        .json(&LikeTweet { tweet_id })?;
    let liked: Liked = send(request, errors::LIKE)?.json()?;
    if !liked.data.liked {
        return Err(Error::transient(format!(
            "X answered that post {tweet_id} is not liked"
        )));
    }
    Ok(ActionResult::done())
}

/// Sends `request` and maps X's error answers.
fn send(request: Request, endpoint: Endpoint) -> Result<http::Response> {
    let response = request.send()?;
    let now = clock::now_ms();
    // Actions follow polls: a 401 here means the token stopped working.
    let known_good = response.status != 401 || token_known_good(false);
    errors::check(response, endpoint, known_good, now)
}

/// Refuses an empty answer.
fn check_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid_input("X does not accept an empty message"));
    }
    Ok(())
}

/// The length X counts for a post (twitter-text v3 rules, simplified):
/// characters in the Latin, Greek, Cyrillic, Hebrew, Arabic, ... blocks and
/// common punctuation count 1, others (CJK, emoji) count 2, and every
/// `http(s)://` link counts 23.
pub fn weighted_length(text: &str) -> usize {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let token = word.trim_end();
            if token.starts_with("https://") || token.starts_with("http://") {
                URL_WEIGHT + (word.len() - token.len())
            } else {
                word.chars().map(char_weight).sum()
            }
        })
        .sum()
}

/// The weight of one character in X's count.
fn char_weight(c: char) -> usize {
    match u32::from(c) {
        0..=4351 | 8192..=8205 | 8208..=8223 | 8242..=8247 => 1,
        // Variation selectors belong to the emoji before them.
        0xFE00..=0xFE0F => 0,
        _ => 2,
    }
}

/// `POST /2/tweets` body.
#[derive(Serialize)]
struct CreateTweet<'a> {
    text: &'a str,
    reply: ReplyTo<'a>,
}

/// The post a new post answers.
#[derive(Serialize)]
struct ReplyTo<'a> {
    in_reply_to_tweet_id: &'a str,
}

/// `POST /2/dm_conversations/with/{id}/messages` body.
#[derive(Serialize)]
struct SendDm<'a> {
    text: &'a str,
}

/// `POST /2/users/{id}/likes` body.
#[derive(Serialize)]
struct LikeTweet<'a> {
    tweet_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::weighted_length;

    #[test]
    fn weighted_length_follows_x_rules() {
        assert_eq!(weighted_length("Hallo Jan!"), 10);
        assert_eq!(weighted_length("مرحبا"), 5, "Arabic counts 1");
        assert_eq!(weighted_length("שלום"), 4, "Hebrew counts 1");
        assert_eq!(weighted_length("😡"), 2);
        assert_eq!(weighted_length("❤️"), 2, "the variation selector is free");
        assert_eq!(weighted_length("日本"), 4);
        assert_eq!(
            weighted_length("zie https://acme.example/a/very/long/path/to/a/page?with=query"),
            4 + 23
        );
        assert_eq!(weighted_length(&"a".repeat(280)), 280);
    }
}
