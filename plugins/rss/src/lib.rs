//! # RSS/Atom connector
//!
//! Watches one RSS 2.0, RSS 1.0 or Atom 1.0 feed of a forum or blog and
//! reports its new and changed items (see this crate's `README.md`). It is
//! read-only: feeds cannot be answered through the feed.
//!
//! - [`RssConnector::poll`] fetches the feed with a conditional GET
//!   (`If-None-Match`/`If-Modified-Since` from the last response's `ETag`
//!   and `Last-Modified`); `304 Not Modified` is an empty batch.
//! - [`feed`] parses the XML with quick-xml's pull reader and normalises
//!   items ([`normalize_feed`] is the pure entry point, unit-tested natively
//!   and benchmarked against its Wasm build).
//! - The cursor keeps the validators and a compact fingerprint (id hash and
//!   version hash) of every item of the current feed window, so no item is
//!   reported twice and a changed one is reported as an edit.

#![warn(missing_docs)]

mod date;
pub mod feed;

pub use date::parse_feed_date;
pub use feed::{Feed, Format, Item, normalize_feed, parse_feed};

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use webcare_plugin::http::{Request, retry_after_ms};
use webcare_plugin::{
    Batch, Connector, Error, Feature, Message, MessageUpdate, PluginInfo, Result, SettingSpec,
    clock, cursor, settings,
};

/// Most items whose fingerprints the cursor keeps (16 bytes each; with the
/// validators the cursor stays well under the host's 4 KiB).
const MAX_SEEN: usize = 200;
/// Longest validator (`ETag`, `Last-Modified`) kept; longer ones are dropped
/// (the feed is then fetched unconditionally).
const MAX_VALIDATOR_BYTES: usize = 256;
/// Wait after a 429/503 that names no delay.
const DEFAULT_WAIT_MS: u64 = 60_000;

/// The connector. It holds no data: every call reads what it needs from the
/// settings, because the host may run each call on a fresh instance.
pub struct RssConnector;

impl Connector for RssConnector {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "rss",
            env!("CARGO_PKG_VERSION"),
            "forum",
            "New and changed items of an RSS or Atom feed (forums, blogs); read-only.",
        )
        .feature(Feature::Poll)
        .setting(
            SettingSpec::url(
                "feed_url",
                "URL of the RSS 2.0, RSS 1.0 or Atom 1.0 feed to watch.",
            )
            .required(),
        )
        .setting(
            SettingSpec::boolean(
                "addressed_to_brand",
                "Treat every item as addressed to the brand (reactive care); off for monitoring.",
            )
            .default_value("false"),
        )
        .setting(
            SettingSpec::integer(
                "backfill",
                "How many of the newest items the very first poll reports (0 = none, only what comes after).",
            )
            .default_value("20"),
        )
    }

    fn poll(cursor: Option<String>) -> Result<Batch> {
        let feed_url = settings::require("feed_url")?;
        let addressed_to_brand: bool = settings::parse("addressed_to_brand")?;
        let backfill: i64 = settings::parse("backfill")?;
        let backfill = usize::try_from(backfill).map_err(|_| {
            Error::invalid_input(format!(
                "setting `backfill` must be 0 or more, not {backfill}"
            ))
        })?;
        let previous: Option<FeedCursor> = cursor::decode(cursor)?;

        let mut request = Request::get(&feed_url).header(
            "accept",
            "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, \
             application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1",
        );
        if let Some(state) = &previous {
            if let Some(etag) = &state.etag {
                request = request.header("if-none-match", etag);
            }
            if let Some(modified) = &state.last_modified {
                request = request.header("if-modified-since", modified);
            }
        }
        let response = request.send()?;
        let now_ms = clock::now_ms();
        match response.status {
            // Nothing changed: keep the cursor.
            304 => return Ok(Batch::empty()),
            429 | 503 => {
                let wait = retry_after_ms(&response.headers, now_ms)
                    .unwrap_or(DEFAULT_WAIT_MS)
                    .max(1000);
                return Err(Error::rate_limited(
                    wait,
                    format!(
                        "the feed answered HTTP {}; retry after {wait} ms",
                        response.status
                    ),
                ));
            }
            _ => {}
        }
        let response = response.error_for_status()?;
        let feed = parse_feed(&response.body)?;

        let validator = |name: &str| {
            response
                .header(name)
                .filter(|value| value.len() <= MAX_VALIDATOR_BYTES)
                .map(str::to_owned)
        };
        let mut batch = changes(
            &feed,
            previous.as_ref(),
            addressed_to_brand,
            backfill,
            now_ms,
        );
        let next = FeedCursor {
            etag: validator("etag"),
            last_modified: validator("last-modified"),
            seen: fingerprints(&feed),
        };
        batch.next_cursor = Some(cursor::encode(&next)?);
        // A feed may ask for patience on a successful answer too.
        batch.retry_after_ms = retry_after_ms(&response.headers, now_ms).filter(|wait| *wait > 0);
        Ok(batch)
    }
}

webcare_plugin::export!(RssConnector);

/// The poll cursor.
#[derive(Default, Serialize, Deserialize)]
struct FeedCursor {
    /// `ETag` of the last full response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    /// `Last-Modified` of the last full response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_modified: Option<String>,
    /// One 16-hex-digit fingerprint per item of the last feed window: 8
    /// digits of the id's hash, then 8 of the version's.
    #[serde(default)]
    seen: String,
}

impl FeedCursor {
    /// The fingerprints as id hash → version hash.
    fn seen(&self) -> HashMap<u32, u32> {
        self.seen
            .as_bytes()
            .chunks_exact(16)
            .filter_map(|chunk| {
                let text = std::str::from_utf8(chunk).ok()?;
                let id = u32::from_str_radix(&text[..8], 16).ok()?;
                let version = u32::from_str_radix(&text[8..], 16).ok()?;
                Some((id, version))
            })
            .collect()
    }
}

/// The 32-bit hash of an item id kept in the cursor.
fn id_hash(item: &Item) -> u32 {
    fold(feed::fnv1a(&[item.id().as_bytes()]))
}

/// The 32-bit hash of an item version kept in the cursor.
fn version_hash(item: &Item) -> u32 {
    fold(item.version())
}

/// Folds a 64-bit hash to 32 bits.
fn fold(hash: u64) -> u32 {
    // Truncation is the point: both halves mixed into 32 bits.
    ((hash >> 32) ^ (hash & 0xffff_ffff)) as u32
}

/// The fingerprints of the newest [`MAX_SEEN`] items of `feed`.
fn fingerprints(feed: &Feed) -> String {
    let mut items: Vec<&Item> = feed.items.iter().collect();
    items.sort_by_key(|item| std::cmp::Reverse(item.created_at()));
    items
        .iter()
        .take(MAX_SEEN)
        .map(|item| format!("{:08x}{:08x}", id_hash(item), version_hash(item)))
        .collect()
}

/// What `feed` holds that `previous` has not reported: on the first poll
/// (no cursor) the newest `backfill` items; later, items with an unseen id
/// as messages and items with a changed version as edits. Oldest first.
fn changes(
    feed: &Feed,
    previous: Option<&FeedCursor>,
    addressed_to_brand: bool,
    backfill: usize,
    now_ms: i64,
) -> Batch {
    let message = |item: &Item| -> Message {
        item.to_message(
            feed.format,
            feed.language.as_deref(),
            addressed_to_brand,
            now_ms,
        )
    };
    let mut batch = Batch::empty();
    match previous {
        None => {
            let mut items: Vec<&Item> = feed.items.iter().collect();
            items.sort_by_key(|item| std::cmp::Reverse(item.created_at()));
            batch.messages = items.into_iter().take(backfill).map(message).collect();
        }
        Some(previous) => {
            let seen = previous.seen();
            let mut reported = std::collections::HashSet::new();
            for item in &feed.items {
                let id = id_hash(item);
                if !reported.insert(id) {
                    // The same id twice in one document: report it once.
                    continue;
                }
                match seen.get(&id) {
                    None => batch.messages.push(message(item)),
                    Some(version) if *version != version_hash(item) => {
                        batch.updates.push(MessageUpdate::Edited(message(item)));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    batch.messages.sort_by_key(|message| message.created_at);
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn rss(items: &[(&str, &str)]) -> Feed {
        let items: String = items
            .iter()
            .enumerate()
            .map(|(i, (guid, text))| {
                format!(
                    "<item><guid>{guid}</guid><title>{guid}</title><description>{text}</description>\
                     <pubDate>Fri, {:02} Nov 2026 09:00:00 GMT</pubDate></item>",
                    i + 1
                )
            })
            .collect();
        parse_feed(format!("<rss><channel>{items}</channel></rss>").as_bytes()).unwrap()
    }

    fn cursor_of(feed: &Feed) -> FeedCursor {
        FeedCursor {
            seen: fingerprints(feed),
            ..FeedCursor::default()
        }
    }

    #[test]
    fn the_first_poll_backfills_the_newest_and_remembers_all() {
        let feed = rss(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let batch = changes(&feed, None, false, 2, NOW);
        let ids: Vec<&str> = batch
            .messages
            .iter()
            .map(|m| m.external_id.as_str())
            .collect();
        assert_eq!(ids, ["b", "c"], "newest two, oldest first");
        assert!(changes(&feed, None, false, 0, NOW).messages.is_empty());

        let later = rss(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        let batch = changes(&later, Some(&cursor_of(&feed)), false, 2, NOW);
        let ids: Vec<&str> = batch
            .messages
            .iter()
            .map(|m| m.external_id.as_str())
            .collect();
        assert_eq!(ids, ["d"], "`a` was remembered though not backfilled");
    }

    #[test]
    fn changed_items_are_edits_and_duplicates_count_once() {
        let feed = rss(&[("a", "1"), ("b", "2")]);
        let later = rss(&[("a", "1"), ("b", "2 (edited)"), ("b", "2 (edited)")]);
        let batch = changes(&later, Some(&cursor_of(&feed)), true, 20, NOW);
        assert!(batch.messages.is_empty());
        assert!(
            matches!(&batch.updates[..], [MessageUpdate::Edited(m)] if m.external_id == "b" && m.addressed_to_brand)
        );
    }

    #[test]
    fn the_cursor_stays_under_4_kib_for_long_feeds() {
        let items: Vec<(String, String)> = (0..500)
            .map(|i| (format!("https://forum.example/t/{i}"), format!("item {i}")))
            .collect();
        let refs: Vec<(&str, &str)> = items
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let feed = rss(&refs);
        let cursor = FeedCursor {
            etag: Some(format!("\"{}\"", "e".repeat(MAX_VALIDATOR_BYTES - 2))),
            last_modified: Some("Fri, 20 Nov 2026 09:00:00 GMT".into()),
            seen: fingerprints(&feed),
        };
        let text = cursor::encode(&cursor).unwrap();
        assert!(text.len() < cursor::MAX_CURSOR_BYTES, "{}", text.len());
        assert_eq!(cursor.seen().len(), MAX_SEEN);
    }
}
