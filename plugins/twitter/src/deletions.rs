//! Deleted posts. X's v2 timelines never say that a post was deleted: a
//! deleted post simply stops being served. So the connector remembers the
//! posts it delivered recently (state key [`RECENT_KEY`], the newest
//! [`REMEMBERED`]) and, at most every `deletion_check_seconds`, looks them
//! all up in one `GET /2/tweets?ids=…` request. X answers a deleted post
//! with a "Not Found Error" naming its id, which becomes
//! `MessageUpdate::Deleted` on the original message.
//!
//! The check is best effort: it never fails a poll (a rate limit or an
//! outage only postpones it), and it costs one request per interval, which
//! the default of 15 minutes keeps far below the lookup endpoint's quota.

use serde::{Deserialize, Serialize};
use webcare_plugin::http::Request;
use webcare_plugin::{Error, Message, MessageKind, MessageUpdate, Removal, Result, log, state};

use crate::config::Config;

/// State key of the remembered posts and the next check's time.
pub const RECENT_KEY: &str = "recent_posts";
/// How many recently delivered posts are checked (one lookup request takes
/// at most 100 ids).
pub const REMEMBERED: usize = 100;

/// What the connector remembers between polls.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recent {
    /// Unix ms of the next check; 0 before the first posts are remembered.
    #[serde(default)]
    pub next_check_at: i64,
    /// Newest last.
    #[serde(default)]
    pub posts: Vec<RecentPost>,
}

/// One delivered post.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecentPost {
    /// The message's `external_id` (the original id of an edited post).
    pub id: String,
    /// The id X serves it under now (the newest version of an edited post).
    pub tweet_id: String,
    /// Its `thread_id` (conversation).
    pub thread: String,
}

/// Looks up the remembered posts when a check is due and returns the
/// deletions found; then remembers the posts of this poll's `messages`.
pub fn check_and_remember(config: &Config, messages: &[Message], now: i64) -> Vec<MessageUpdate> {
    if config.deletion_check_ms == 0 {
        return Vec::new();
    }
    let mut recent: Recent = match state::get_json(RECENT_KEY) {
        Ok(recent) => recent.unwrap_or_default(),
        Err(error) => {
            log::warn(format!("deletion check: cannot read its state: {error}"));
            return Vec::new();
        }
    };
    let mut updates = Vec::new();
    if !recent.posts.is_empty() && now >= recent.next_check_at {
        match lookup(config, &recent.posts) {
            Ok(gone) => {
                recent.posts.retain(|post| {
                    let deleted = gone.contains(&post.tweet_id);
                    if deleted {
                        updates.push(MessageUpdate::Deleted(Removal {
                            external_id: post.id.clone(),
                            thread_id: Some(post.thread.clone()),
                            at: None,
                            by: None,
                        }));
                    }
                    !deleted
                });
            }
            Err(error) => log::warn(format!("deletion check postponed: {}", error.detail())),
        }
        recent.next_check_at = now.saturating_add(config.deletion_check_ms);
    }
    let before = recent.posts.len();
    remember(&mut recent, messages);
    if before == 0 && !recent.posts.is_empty() && recent.next_check_at <= now {
        // The first posts: check them one interval from now.
        recent.next_check_at = now.saturating_add(config.deletion_check_ms);
    }
    if let Err(error) = state::set_json(RECENT_KEY, &recent) {
        log::warn(format!("deletion check: cannot store its state: {error}"));
    }
    updates
}

/// Adds the posts (not DMs) among `messages`, keeping the newest
/// [`REMEMBERED`] and each id once.
pub fn remember(recent: &mut Recent, messages: &[Message]) {
    for message in messages {
        if message.kind == MessageKind::DirectMessage
            || recent.posts.iter().any(|p| p.id == message.external_id)
        {
            continue;
        }
        recent.posts.push(RecentPost {
            id: message.external_id.clone(),
            tweet_id: message
                .property("tweet_id")
                .unwrap_or(&message.external_id)
                .to_owned(),
            thread: message.thread_id.clone(),
        });
    }
    let excess = recent.posts.len().saturating_sub(REMEMBERED);
    recent.posts.drain(..excess);
}

/// `GET /2/tweets?ids=…`: the ids among `posts` that X reports as not found.
fn lookup(config: &Config, posts: &[RecentPost]) -> Result<Vec<String>> {
    let ids: Vec<&str> = posts.iter().map(|p| p.tweet_id.as_str()).collect();
    let response = Request::get(format!("{}/2/tweets", config.base_url))
        .bearer(&config.token)
        .query(&[("ids", ids.join(",").as_str()), ("tweet.fields", "id")])
        .send()?
        .error_for_status()?;
    not_found_ids(&response.body)
}

/// A lookup response: `data` for the posts that exist, `errors` for the
/// others. Only "Not Found Error" means deleted; an "Authorization Error"
/// (a protected or suspended author) says nothing about the post itself.
pub fn not_found_ids(body: &[u8]) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Lookup {
        #[serde(default)]
        errors: Vec<LookupError>,
    }
    #[derive(Deserialize)]
    struct LookupError {
        resource_id: Option<String>,
        resource_type: Option<String>,
        title: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let lookup: Lookup = serde_json::from_slice(body)
        .map_err(|e| Error::invalid_input(format!("X's post lookup is not valid JSON: {e}")))?;
    Ok(lookup
        .errors
        .into_iter()
        .filter(|e| e.resource_type.as_deref().is_none_or(|t| t == "tweet"))
        .filter(|e| {
            e.title.as_deref() == Some("Not Found Error")
                || e.kind
                    .as_deref()
                    .is_some_and(|k| k.ends_with("/resource-not-found"))
        })
        .filter_map(|e| e.resource_id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use webcare_plugin::Author;

    fn post(id: &str, kind: MessageKind) -> Message {
        Message::new(id, "conv-1", kind, Author::new("1", "klant"), "hallo", 0)
    }

    #[test]
    fn only_not_found_posts_count_as_deleted() {
        let body = br#"{
          "data": [{"id": "1991000000000000101", "text": "still here"}],
          "errors": [
            {"value": "1991000000000000102", "detail": "Could not find tweet with ids: [1991000000000000102].",
             "title": "Not Found Error", "resource_type": "tweet", "parameter": "ids",
             "resource_id": "1991000000000000102", "type": "https://api.twitter.com/2/problems/resource-not-found"},
            {"value": "1991000000000000103", "detail": "Sorry, you are not authorized to see the Tweet with ids: [1991000000000000103].",
             "title": "Authorization Error", "resource_type": "tweet", "parameter": "ids",
             "resource_id": "1991000000000000103", "type": "https://api.twitter.com/2/problems/not-authorized-for-resource"}
          ]
        }"#;
        assert_eq!(not_found_ids(body).unwrap(), ["1991000000000000102"]);
        assert_eq!(
            not_found_ids(br#"{"data": [{"id": "1"}]}"#).unwrap(),
            Vec::<String>::new()
        );
        assert!(not_found_ids(b"{\"errors\": [").is_err());
    }

    #[test]
    fn remembers_posts_once_newest_last_and_bounded() {
        let mut recent = Recent::default();
        let mut edited = post("100", MessageKind::Mention);
        edited.properties = vec![("tweet_id".into(), "105".into())];
        remember(
            &mut recent,
            &[
                edited,
                post("101", MessageKind::DirectMessage),
                post("102", MessageKind::Reply),
            ],
        );
        assert_eq!(recent.posts.len(), 2, "DMs are not looked up");
        assert_eq!(
            recent.posts[0].tweet_id, "105",
            "edits: the current version"
        );
        remember(&mut recent, &[post("102", MessageKind::Reply)]);
        assert_eq!(recent.posts.len(), 2, "each post once");
        let many: Vec<Message> = (1000..1200)
            .map(|i| post(&i.to_string(), MessageKind::Post))
            .collect();
        remember(&mut recent, &many);
        assert_eq!(recent.posts.len(), REMEMBERED);
        assert_eq!(recent.posts.last().unwrap().id, "1199");
    }
}
