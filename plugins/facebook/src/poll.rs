//! The poll fallback for missed webhooks: the page's feed and each post's
//! comments since the cursor.
//!
//! One poll reads one page of the feed (`GET /{page-id}/feed?since=...`)
//! and, for every post on it, that post's comments since the same time
//! (`GET /{post-id}/comments?since=...`, following `paging.cursors.after`).
//! The cursor is small JSON: the window's start in Unix seconds, the feed's
//! `after` cursor while a window has more pages, the newest time seen, and
//! the ids already delivered at that newest second. Graph's `since` is
//! inclusive, so the next window starts at that second and skips those ids
//! (`skip`); a window never moves its own start, so ids seen at its start
//! stay skipped on all of its pages.

use serde::{Deserialize, Serialize};
use webcare_plugin::{Batch, Message, Result, clock, cursor, log, settings};

use crate::client::{Graph, segment};
use crate::feed::{COMMENT_FIELDS, FEED_FIELDS, normalize_comments, normalize_feed};

/// How far back the very first poll looks.
const FIRST_LOOKBACK_S: i64 = 24 * 60 * 60;
/// Posts per feed page.
const FEED_LIMIT: &str = "25";
/// Comments per comments page.
const COMMENT_LIMIT: &str = "100";
/// Comment pages read per post and poll; the rest waits for the next window.
const MAX_COMMENT_PAGES: usize = 10;
/// Boundary ids kept in each list of the cursor (ids are up to ~40 bytes:
/// two lists stay well under the host's 4 KiB).
const MAX_BOUNDARY_IDS: usize = 30;

/// The poll cursor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Start of the current window, Unix seconds (Graph's `since`).
    pub since: i64,
    /// The feed's `after` cursor while the window has more pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The newest `created_time` delivered so far, Unix seconds.
    #[serde(default)]
    pub newest: i64,
    /// Ids delivered in this window whose `created_time` is the second `newest`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<String>,
    /// Ids delivered by earlier windows at the second `since`: skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip: Vec<String>,
}

/// Reads what is new since `cursor`.
pub fn poll(cursor: Option<String>) -> Result<Batch> {
    let feed_enabled: bool = settings::parse("poll_feed")?;
    if !feed_enabled {
        return Ok(Batch::empty());
    }
    let page_id = settings::require("page_id")?;
    let mut position = match cursor::decode::<Position>(cursor)? {
        Some(position) => position,
        None => {
            let since = clock::now_ms() / 1000 - FIRST_LOOKBACK_S;
            Position {
                since,
                newest: since,
                ..Position::default()
            }
        }
    };
    let mut graph = Graph::from_config()?;

    let since = position.since.to_string();
    let mut query = vec![
        ("fields", FEED_FIELDS),
        ("limit", FEED_LIMIT),
        ("since", since.as_str()),
    ];
    if let Some(after) = &position.after {
        query.push(("after", after.as_str()));
    }
    let feed_path = format!("{}/feed", segment(&page_id));
    let feed = normalize_feed(&graph.get(&feed_path, &query)?.body, &page_id)?;

    let since_ms = position.since.saturating_mul(1000);
    let mut messages: Vec<Message> = Vec::new();
    for post in feed.messages {
        let comments = read_comments(&mut graph, &page_id, &post.external_id, &since)?;
        // Old posts surface in the feed for their new comments; only posts
        // of this window are new themselves.
        if post.created_at >= since_ms {
            messages.push(post);
        }
        messages.extend(comments);
    }

    // Drop what earlier windows already delivered at this window's start.
    messages.retain(|message| !position.skip.contains(&message.external_id));
    messages.sort_by_key(|message| message.created_at);
    for message in &messages {
        let second = message.created_at.div_euclid(1000);
        if second > position.newest {
            position.newest = second;
            position.seen.clear();
        }
        if second == position.newest && position.seen.len() < MAX_BOUNDARY_IDS {
            position.seen.push(message.external_id.clone());
        }
    }

    let has_more = feed.after.is_some();
    if has_more {
        position.after = feed.after;
    } else {
        // The window is done: the next one starts at the newest second seen
        // and skips what was delivered at that second.
        position.after = None;
        let seen = std::mem::take(&mut position.seen);
        if position.newest > position.since {
            position.since = position.newest;
            position.skip = seen;
        } else {
            for id in seen {
                if position.skip.len() < MAX_BOUNDARY_IDS && !position.skip.contains(&id) {
                    position.skip.push(id);
                }
            }
        }
    }
    let mut batch = Batch::new(messages);
    batch.next_cursor = Some(cursor::encode(&position)?);
    batch.has_more = has_more;
    if let Some(wait) = graph.backoff_ms {
        log::warn(format!(
            "Graph API usage is high: holding off polling for {} s",
            wait / 1000
        ));
        batch.retry_after_ms = Some(wait);
        // Another page now would only push usage further.
        batch.has_more = false;
    }
    Ok(batch)
}

/// All comments on `post_id` since `since`, up to [`MAX_COMMENT_PAGES`] pages.
fn read_comments(
    graph: &mut Graph,
    page_id: &str,
    post_id: &str,
    since: &str,
) -> Result<Vec<Message>> {
    let path = format!("{}/comments", segment(post_id));
    let mut comments = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_COMMENT_PAGES {
        let mut query = vec![
            ("fields", COMMENT_FIELDS),
            ("filter", "stream"),
            ("order", "chronological"),
            ("limit", COMMENT_LIMIT),
            ("since", since),
        ];
        if let Some(after) = &after {
            query.push(("after", after.as_str()));
        }
        let page = normalize_comments(&graph.get(&path, &query)?.body, page_id, post_id)?;
        comments.extend(page.messages);
        match page.after {
            Some(next) => after = Some(next),
            None => return Ok(comments),
        }
    }
    log::warn(format!(
        "post {post_id} has more than {MAX_COMMENT_PAGES} pages of new comments; \
         the rest come with the next poll window"
    ));
    Ok(comments)
}
