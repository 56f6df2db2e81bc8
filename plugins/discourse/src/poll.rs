//! Polling: `GET /posts.json` and `GET /private-posts.json`, newest first,
//! paged backwards with `before=<post id>`.
//!
//! The cursor keeps, per list, the highest post id reported (`last`) and,
//! while a backlog is being read, where the next older page starts
//! (`scan.before`) and the highest id of the backlog (`scan.top`). Post ids
//! are unique and only grow, so "id > last" is exactly "not yet reported":
//! resuming never duplicates. A backlog is read newest page first (each
//! batch oldest first); `last` moves to `scan.top` when the scan reaches
//! known posts, so posts written during a scan are read right after it.
//!
//! Edits, hides and deletions are seen on posts at or below `last` that
//! show up again in a page. The cursor remembers a small signature
//! (version, hidden, deleted) of the posts whose change it reported, so a
//! change is reported once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use webcare_plugin::{Batch, Error, Message, MessageUpdate, Result, cursor, settings};

use crate::api::Client;
use crate::post::{Post, Rules, parse_post_list};
use crate::rules;

/// Most post signatures the cursor keeps (the highest ids win).
const MAX_SEEN: usize = 100;

/// The poll cursor.
#[derive(Default, Serialize, Deserialize)]
struct PollCursor {
    /// `GET /posts.json`.
    #[serde(default)]
    public: ListCursor,
    /// `GET /private-posts.json`.
    #[serde(default)]
    private: ListCursor,
    /// Post id → state signature of posts whose change was reported, or
    /// that were first seen already edited or hidden.
    #[serde(default)]
    seen: BTreeMap<u64, u64>,
}

/// Where one post list stands.
#[derive(Clone, Default, Serialize, Deserialize)]
struct ListCursor {
    /// The highest post id reported; `None` before the first poll.
    last: Option<u64>,
    /// A backlog scan in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scan: Option<Scan>,
}

/// A backlog scan: the next page starts at `before` (inclusive, as
/// Discourse reads it); `top` is the highest id of the backlog.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct Scan {
    before: u64,
    top: u64,
}

/// One of the two post lists.
#[derive(Clone, Copy)]
enum List {
    Public,
    Private,
}

impl List {
    fn path(self) -> &'static str {
        match self {
            Self::Public => "/posts.json",
            Self::Private => "/private-posts.json",
        }
    }

    fn private(self) -> bool {
        matches!(self, Self::Private)
    }
}

/// What one poll of one list produced.
struct ListOutcome {
    messages: Vec<Message>,
    updates: Vec<MessageUpdate>,
    next: ListCursor,
    has_more: bool,
}

/// The `poll` export.
pub fn poll(cursor: Option<String>) -> Result<Batch> {
    let mut state: PollCursor = cursor::decode(cursor)?.unwrap_or_default();
    let page_size: usize = settings::parse("page_size")?;
    if !(1..=1000).contains(&page_size) {
        return Err(Error::invalid_input(format!(
            "setting `page_size` must be between 1 and 1000, not {page_size}"
        )));
    }
    let client = Client::from_settings()?;
    let rules = rules()?;

    // Both lists are read before anything is returned: any failure fails
    // the whole poll, so there is never a partial batch.
    let public = poll_list(
        &client,
        &rules,
        List::Public,
        &state.public,
        &mut state.seen,
        page_size,
    )?;
    let private = poll_list(
        &client,
        &rules,
        List::Private,
        &state.private,
        &mut state.seen,
        page_size,
    )?;

    let mut messages = public.messages;
    messages.extend(private.messages);
    messages.sort_by(|a, b| {
        (a.created_at, numeric_id(&a.external_id)).cmp(&(b.created_at, numeric_id(&b.external_id)))
    });
    let mut updates = public.updates;
    updates.extend(private.updates);

    state.public = public.next;
    state.private = private.next;
    while state.seen.len() > MAX_SEEN {
        state.seen.pop_first();
    }
    Ok(Batch {
        messages,
        updates,
        next_cursor: Some(cursor::encode(&state)?),
        has_more: public.has_more || private.has_more,
        retry_after_ms: None,
    })
}

/// Reads one page of `list` and decides what is new, what changed and
/// where the next poll goes on.
fn poll_list(
    client: &Client,
    rules: &Rules,
    list: List,
    at: &ListCursor,
    seen: &mut BTreeMap<u64, u64>,
    page_size: usize,
) -> Result<ListOutcome> {
    let query: Vec<(&str, String)> = at
        .scan
        .map(|scan| vec![("before", scan.before.to_string())])
        .unwrap_or_default();
    let mut posts = parse_post_list(&client.get(list.path(), &query)?)?;
    if let Some(scan) = at.scan {
        // Defensive: a page of a scan holds nothing above its start.
        posts.retain(|post| post.id <= scan.before);
    }
    let max_id = posts.iter().map(|post| post.id).max();
    let min_id = posts.iter().map(|post| post.id).min();
    let private = list.private();

    let Some(last) = at.last else {
        // The first poll starts from now: the latest page only.
        let fresh: Vec<&Post> = posts.iter().collect();
        let messages = new_messages(client, rules, &posts, &fresh, private, seen)?;
        return Ok(ListOutcome {
            messages,
            updates: Vec::new(),
            next: ListCursor {
                last: Some(max_id.unwrap_or(0)),
                scan: None,
            },
            has_more: false,
        });
    };

    let fresh: Vec<&Post> = posts.iter().filter(|post| post.id > last).collect();
    let messages = new_messages(client, rules, &posts, &fresh, private, seen)?;
    let known: Vec<&Post> = posts.iter().filter(|post| post.id <= last).collect();
    let updates = changes(client, rules, &posts, &known, private, seen)?;

    let top = at
        .scan
        .map_or(max_id.unwrap_or(last), |scan| scan.top)
        .max(last);
    // A full page of nothing but new posts: older new ones may wait below.
    let more = min_id.is_some_and(|min| min > last) && posts.len() >= page_size;
    let next = match min_id {
        Some(min) if more && min > 1 => ListCursor {
            last: Some(last),
            scan: Some(Scan {
                before: min - 1,
                top,
            }),
        },
        _ => ListCursor {
            last: Some(top),
            scan: None,
        },
    };
    let has_more = next.scan.is_some();
    Ok(ListOutcome {
        messages,
        updates,
        next,
        has_more,
    })
}

/// The relevant posts among `fresh` as messages; deleted ones are left out.
/// Posts first seen already edited or hidden are remembered in `seen`, so
/// a later poll does not report that as a change.
fn new_messages(
    client: &Client,
    rules: &Rules,
    page: &[Post],
    fresh: &[&Post],
    private: bool,
    seen: &mut BTreeMap<u64, u64>,
) -> Result<Vec<Message>> {
    let mut messages = Vec::new();
    for post in fresh.iter().rev() {
        if post.deleted_at.is_some() {
            continue;
        }
        let Some(relevance) = post.relevance(rules, private) else {
            continue;
        };
        let in_reply_to = resolve_reply(client, page, post)?;
        messages.push(post.to_message(rules, relevance, private, in_reply_to)?);
        let signature = post.state_signature();
        if signature != Post::ORIGINAL_SIGNATURE {
            seen.insert(post.id, signature);
        }
    }
    Ok(messages)
}

/// Edits, hides, unhides and deletions of relevant posts among `known`
/// whose state differs from what was reported.
fn changes(
    client: &Client,
    rules: &Rules,
    page: &[Post],
    known: &[&Post],
    private: bool,
    seen: &mut BTreeMap<u64, u64>,
) -> Result<Vec<MessageUpdate>> {
    let mut updates = Vec::new();
    for post in known.iter().rev() {
        let signature = post.state_signature();
        let before = seen
            .get(&post.id)
            .copied()
            .unwrap_or(Post::ORIGINAL_SIGNATURE);
        if signature == before {
            continue;
        }
        let Some(relevance) = post.relevance(rules, private) else {
            continue;
        };
        seen.insert(post.id, signature);
        if post.deleted_at.is_some() {
            updates.push(MessageUpdate::Deleted(
                post.removal(post.deleted_at.as_deref()),
            ));
            continue;
        }
        let was_hidden = before & 2 != 0;
        if post.hidden && !was_hidden {
            updates.push(MessageUpdate::Hidden(
                post.removal(post.updated_at.as_deref()),
            ));
        } else if !post.hidden && was_hidden {
            updates.push(MessageUpdate::Unhidden(
                post.removal(post.updated_at.as_deref()),
            ));
        }
        if signature / 4 != before / 4 {
            let in_reply_to = resolve_reply(client, page, post)?;
            updates.push(MessageUpdate::Edited(post.to_message(
                rules,
                relevance,
                private,
                in_reply_to,
            )?));
        }
    }
    Ok(updates)
}

/// The id of the post `post` answers: from the same page when it is there,
/// else from `GET /posts/by_number/{topic}/{number}.json`. A post that is
/// gone (404) links to nothing.
pub(crate) fn resolve_reply(client: &Client, page: &[Post], post: &Post) -> Result<Option<u64>> {
    let Some(number) = post.reply_to_post_number else {
        return Ok(None);
    };
    if let Some(id) = crate::post::post_id_by_number(page, post.topic_id, number) {
        return Ok(Some(id));
    }
    #[derive(Deserialize)]
    struct IdOnly {
        id: u64,
    }
    let path = format!("/posts/by_number/{}/{number}.json", post.topic_id);
    match client.get(&path, &[]) {
        Ok(body) => {
            let found: IdOnly = serde_json::from_slice(&body).map_err(|error| {
                Error::invalid_input(format!("Discourse {path} is not a post: {error}"))
            })?;
            Ok(Some(found.id))
        }
        Err(Error::InvalidInput(detail)) if detail.contains("HTTP 404") => Ok(None),
        Err(error) => Err(error),
    }
}

/// A numeric external id for ordering (Discourse ids are numbers).
fn numeric_id(id: &str) -> u64 {
    id.parse().unwrap_or(u64::MAX)
}
