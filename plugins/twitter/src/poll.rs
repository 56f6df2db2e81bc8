//! `poll`: one page from each of the three streams (mentions, recent search,
//! direct messages), each with its own position in the cursor.
//!
//! Why one page from every stream per call rather than one stream per call:
//! the host commits the cursor only with a successful batch, so a stream
//! that is rate-limited must not fail the whole call, or mentions and DMs
//! would stall behind it. A stream that answers 429, or whose
//! `x-rate-limit-remaining` reaches 0, is parked in the cursor until its
//! reset (`blocked_until`) and skipped until then; the others keep flowing.
//! Only when every stream tried in a call is rate-limited does `poll` fail
//! with a rate-limited error (the earliest reset), and when every enabled
//! stream is parked the batch asks the host to wait with `retry_after_ms`.
//! A transient fault (5xx, timeout) of one stream likewise only skips that
//! stream for this call.
//!
//! Paging: X serves newest first. A run starts without a pagination token
//! (with `since_id` once we have one), follows `next_token` page by page
//! (keeping the same `since_id`), and when it ends, the newest id of its
//! first page becomes the stream's `since_id`. `GET /2/dm_events` has no
//! `since_id` parameter, so for DMs the run ends at the first event at or
//! below the stored `since_id`, and such events are filtered out.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use webcare_plugin::http::Request;
use webcare_plugin::{
    Batch, Error, Message, MessageUpdate, RateLimit, Result, clock, cursor, state,
};

use crate::config::Config;
use crate::errors::{self, Endpoint};
use crate::normalize::{TweetStream, cmp_ids, normalize_dm_events, normalize_tweets};

/// State key set once a poll has succeeded: a later 401 means the token
/// expired or was revoked rather than never worked.
pub const TOKEN_OK_KEY: &str = "token_ok";

/// Post fields to ask for (the normalisation reads these).
const TWEET_FIELDS: &str = "id,text,author_id,conversation_id,created_at,in_reply_to_user_id,\
referenced_tweets,entities,lang,public_metrics,attachments,edit_history_tweet_ids,edit_controls,\
note_tweet";
/// Expansions of posts: authors and media, joined from `includes`.
const TWEET_EXPANSIONS: &str = "author_id,attachments.media_keys";
/// Account fields for the author.
const USER_FIELDS: &str = "id,name,username,verified,verified_type,public_metrics";
/// Media fields for attachments.
const MEDIA_FIELDS: &str = "media_key,type,url,preview_image_url,alt_text,variants";
/// DM event fields.
const DM_EVENT_FIELDS: &str =
    "id,text,event_type,created_at,dm_conversation_id,sender_id,participant_ids,attachments";
/// Expansions of DM events.
const DM_EXPANSIONS: &str = "sender_id,attachments.media_keys";

/// The connector's cursor: one position per stream. Small (ids and X's
/// tokens of ~50 bytes), well under the host's 4 KiB.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollCursor {
    /// `GET /2/users/{id}/mentions`.
    #[serde(default, skip_serializing_if = "StreamCursor::is_empty")]
    pub mentions: StreamCursor,
    /// `GET /2/tweets/search/recent`.
    #[serde(default, skip_serializing_if = "StreamCursor::is_empty")]
    pub search: StreamCursor,
    /// A hash of the search query the `search` position belongs to: a new
    /// query starts afresh instead of resuming the old one's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_query_hash: Option<String>,
    /// `GET /2/dm_events`.
    #[serde(default, skip_serializing_if = "StreamCursor::is_empty")]
    pub dms: StreamCursor,
}

/// Where one stream stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCursor {
    /// Everything up to this id has been delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_id: Option<String>,
    /// The next (older) page of the run in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination_token: Option<String>,
    /// The newest id of the run in progress; `since_id` once the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_newest_id: Option<String>,
    /// Unix ms before which the stream is not asked (rate limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_until: Option<i64>,
}

impl StreamCursor {
    /// Nothing stored (kept out of the JSON).
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether the stream is parked at `now_ms`.
    fn blocked_at(&self, now_ms: i64) -> bool {
        self.blocked_until.is_some_and(|until| until > now_ms)
    }

    /// Moves past a page whose newest id is `page_newest`, continuing with
    /// `next_token` unless `done`.
    fn advance(&mut self, page_newest: Option<String>, next_token: Option<String>, done: bool) {
        if let Some(newest) = page_newest
            && self
                .run_newest_id
                .as_deref()
                .is_none_or(|run| cmp_ids(&newest, run).is_gt())
        {
            self.run_newest_id = Some(newest);
        }
        match next_token.filter(|token| !done && !token.is_empty()) {
            Some(token) => self.pagination_token = Some(token),
            None => {
                self.pagination_token = None;
                if let Some(newest) = self.run_newest_id.take()
                    && self
                        .since_id
                        .as_deref()
                        .is_none_or(|since| cmp_ids(&newest, since).is_gt())
                {
                    self.since_id = Some(newest);
                }
            }
        }
    }
}

/// The streams a poll reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Mentions,
    Search,
    Dms,
}

/// What one stream's page contributed.
struct Fetched {
    messages: Vec<Message>,
    updates: Vec<MessageUpdate>,
}

/// The `poll` export.
pub fn poll(cursor: Option<String>) -> Result<Batch> {
    let config = Config::load()?;
    let had_cursor = cursor.is_some();
    let mut position: PollCursor = cursor::decode(cursor)?.unwrap_or_default();
    let query_hash = config.search_query.as_deref().map(query_hash);
    if position.search_query_hash != query_hash {
        position.search = StreamCursor::default();
        position.search_query_hash = query_hash;
    }

    let mut streams = vec![Stream::Mentions];
    if config.search_query.is_some() {
        streams.push(Stream::Search);
    }
    if config.direct_messages {
        streams.push(Stream::Dms);
    }

    let now = clock::now_ms();
    let mut messages = Vec::new();
    let mut updates = Vec::new();
    let mut limited: Vec<RateLimit> = Vec::new();
    let mut failed: Option<Error> = None;
    let mut fetched_any = false;
    for &stream in &streams {
        let at = stream_cursor(&mut position, stream);
        if at.blocked_at(now) {
            continue;
        }
        at.blocked_until = None;
        match fetch(stream, at, &config, had_cursor, now) {
            Ok(fetched) => {
                fetched_any = true;
                messages.extend(fetched.messages);
                updates.extend(fetched.updates);
            }
            Err(Error::RateLimited(limit)) => {
                let wait = i64::try_from(limit.retry_after_ms).unwrap_or(i64::MAX);
                at.blocked_until = Some(now.saturating_add(wait));
                limited.push(limit);
            }
            // A passing fault of one stream (5xx, timeout) does not hold
            // back the others either; that stream is simply asked again
            // next time.
            Err(error @ Error::Transient(_)) => failed = Some(error),
            // Anything else (credentials, malformed pages) fails the whole
            // call: no partial batch, the cursor stays where it was, and
            // the connector shows as needing attention.
            Err(error) => return Err(error),
        }
    }
    if !fetched_any {
        if let Some(limit) = limited.into_iter().min_by_key(|l| l.retry_after_ms) {
            return Err(Error::RateLimited(limit));
        }
        if let Some(error) = failed {
            return Err(error);
        }
    }
    if fetched_any && !had_cursor {
        // Best effort: only sharpens a later 401's message.
        let _ = state::set(TOKEN_OK_KEY, b"1");
    }

    // Oldest first across streams; a post found by both mentions and
    // search is delivered once (mentions come first, so their copy wins).
    messages.sort_by_key(|message| message.created_at);
    let mut seen = BTreeSet::new();
    messages.retain(|message| seen.insert(message.external_id.clone()));
    if fetched_any {
        updates.extend(crate::deletions::check_and_remember(
            &config, &messages, now,
        ));
    }

    let has_more = streams.iter().any(|&stream| {
        let at = stream_cursor(&mut position, stream);
        at.pagination_token.is_some() && !at.blocked_at(now)
    });
    let retry_after_ms = streams
        .iter()
        .map(|&stream| stream_cursor(&mut position, stream).blocked_until)
        .collect::<Option<Vec<i64>>>()
        .and_then(|until| until.into_iter().min())
        .filter(|&until| until > now)
        .map(|until| u64::try_from(until - now).unwrap_or(0));
    Ok(Batch {
        messages,
        updates,
        next_cursor: Some(cursor::encode(&position)?),
        has_more,
        retry_after_ms,
    })
}

/// The position of `stream` in `position`.
fn stream_cursor(position: &mut PollCursor, stream: Stream) -> &mut StreamCursor {
    match stream {
        Stream::Mentions => &mut position.mentions,
        Stream::Search => &mut position.search,
        Stream::Dms => &mut position.dms,
    }
}

/// Fetches and normalises one page of `stream`, advancing `at`.
fn fetch(
    stream: Stream,
    at: &mut StreamCursor,
    config: &Config,
    had_cursor: bool,
    now: i64,
) -> Result<Fetched> {
    // One retry when X refuses a stale position (a `since_id` older than
    // search's 7 days, an expired pagination token): start the run afresh.
    let mut retried = false;
    loop {
        let (request, endpoint) = request_for(stream, at, config);
        let response = request.send()?;
        if response.status == 400 && !retried && refuses_position(&response.body) {
            retried = true;
            *at = StreamCursor::default();
            continue;
        }
        let response = errors::check(response, endpoint, token_known_good(had_cursor), now)?;
        let brand = config.brand();
        let fetched = match stream {
            Stream::Mentions | Stream::Search => {
                let tweet_stream = if stream == Stream::Mentions {
                    TweetStream::Mentions
                } else {
                    TweetStream::Search
                };
                let page =
                    normalize_tweets(&response.body, brand, tweet_stream, at.since_id.as_deref())?;
                at.advance(page.newest_id, page.next_token, false);
                Fetched {
                    messages: page.messages,
                    updates: page.updates,
                }
            }
            Stream::Dms => {
                let page = normalize_dm_events(&response.body, brand, at.since_id.as_deref())?;
                at.advance(page.newest_id, page.next_token, page.reached_known);
                Fetched {
                    messages: page.messages,
                    updates: Vec::new(),
                }
            }
        };
        at.blocked_until = errors::exhausted_until(&response.headers);
        return Ok(fetched);
    }
}

/// The request for the next page of `stream`.
fn request_for(stream: Stream, at: &StreamCursor, config: &Config) -> (Request, Endpoint) {
    let base = &config.base_url;
    let (url, endpoint, page_size, token_param) = match stream {
        Stream::Mentions => (
            format!("{base}/2/users/{}/mentions", config.brand_user_id),
            errors::MENTIONS,
            config.page_size,
            "pagination_token",
        ),
        // Recent search wants 10..=100 results per page.
        Stream::Search => (
            format!("{base}/2/tweets/search/recent"),
            errors::SEARCH,
            config.page_size.max(10),
            "next_token",
        ),
        Stream::Dms => (
            format!("{base}/2/dm_events"),
            errors::DM_EVENTS,
            config.page_size,
            "pagination_token",
        ),
    };
    let page_size = page_size.to_string();
    let mut query: Vec<(&str, &str)> = Vec::with_capacity(10);
    match stream {
        Stream::Mentions | Stream::Search => {
            if stream == Stream::Search {
                query.push(("query", config.search_query.as_deref().unwrap_or_default()));
            }
            query.extend([
                ("max_results", page_size.as_str()),
                ("tweet.fields", TWEET_FIELDS),
                ("expansions", TWEET_EXPANSIONS),
                ("user.fields", USER_FIELDS),
                ("media.fields", MEDIA_FIELDS),
            ]);
            if let Some(since) = &at.since_id {
                query.push(("since_id", since));
            }
        }
        Stream::Dms => query.extend([
            ("event_types", "MessageCreate"),
            ("max_results", page_size.as_str()),
            ("dm_event.fields", DM_EVENT_FIELDS),
            ("expansions", DM_EXPANSIONS),
            ("user.fields", USER_FIELDS),
            ("media.fields", MEDIA_FIELDS),
        ]),
    }
    if let Some(token) = &at.pagination_token {
        query.push((token_param, token));
    }
    let request = Request::get(url).bearer(&config.token).query(&query);
    (request, endpoint)
}

/// Whether a 400 body complains about our position rather than the request.
fn refuses_position(body: &[u8]) -> bool {
    let body = String::from_utf8_lossy(body);
    ["since_id", "pagination_token", "next_token"]
        .iter()
        .any(|param| body.contains(param))
}

/// Whether the token has worked before: the host holds a cursor (only
/// committed after a successful poll) or an earlier call recorded success.
pub fn token_known_good(had_cursor: bool) -> bool {
    had_cursor || matches!(state::get(TOKEN_OK_KEY), Ok(Some(_)))
}

/// FNV-1a 64-bit hash of the search query, as hex: enough to notice a
/// changed query without storing it (it may be long) in the cursor.
fn query_hash(query: &str) -> String {
    let hash = query.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_ends_with_its_newest_id_as_since_id() {
        let mut at = StreamCursor::default();
        at.advance(Some("104".into()), Some("p2".into()), false);
        assert_eq!(at.pagination_token.as_deref(), Some("p2"));
        assert_eq!(at.since_id, None, "not before the run ends");
        at.advance(Some("102".into()), None, false);
        assert_eq!(at.since_id.as_deref(), Some("104"));
        assert_eq!(at.pagination_token, None);
        assert_eq!(at.run_newest_id, None);
        // An empty page keeps the position.
        at.advance(None, None, false);
        assert_eq!(at.since_id.as_deref(), Some("104"));
        // A run that reached known events ends despite a token.
        at.advance(Some("110".into()), Some("p9".into()), true);
        assert_eq!(at.since_id.as_deref(), Some("110"));
        assert_eq!(at.pagination_token, None);
    }

    #[test]
    fn cursors_stay_small_and_round_trip() {
        let token = "7140dibdnow9c7btw423i3sy3u5zupmkcpofxcsmxj48j".to_owned();
        let stream = StreamCursor {
            since_id: Some("1991000000000000106".into()),
            pagination_token: Some(token),
            run_newest_id: Some("1991000000000000199".into()),
            blocked_until: Some(1_795_165_500_000),
        };
        let position = PollCursor {
            mentions: stream.clone(),
            search: stream.clone(),
            search_query_hash: Some(query_hash("acme OR #acmehelp")),
            dms: stream,
        };
        let text = cursor::encode(&position).unwrap();
        assert!(text.len() < 1024, "{} bytes", text.len());
        assert_eq!(
            cursor::decode::<PollCursor>(Some(text)).unwrap(),
            Some(position)
        );
        assert_eq!(cursor::encode(&PollCursor::default()).unwrap(), "{}");
    }

    #[test]
    fn stale_positions_are_recognised() {
        assert!(refuses_position(
            br#"{"errors":[{"message":"Invalid 'since_id':'1'. 'since_id' must be a tweet id created after 2026-11-13T09:00Z"}]}"#
        ));
        assert!(!refuses_position(
            br#"{"errors":[{"message":"bad query"}]}"#
        ));
        assert_ne!(query_hash("a"), query_hash("b"));
    }
}
