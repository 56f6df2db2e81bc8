//! The feed API's JSON and its normalisation into the contract's types.
//!
//! Everything here is pure (no host imports), so it runs natively in unit
//! tests and benchmarks exactly as it runs inside the component.

use serde::Deserialize;
use webcare_plugin::{
    Attachment, AttachmentKind, Author, Direction, Engagement, Error, Message, MessageKind,
    MessageUpdate, Removal, Result, time,
};

/// One page of the feed, normalised: what `poll` returns and what a webhook
/// delivery reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// New messages, in feed order (oldest first).
    pub messages: Vec<Message>,
    /// Edits and deletions of earlier messages, in feed order.
    pub updates: Vec<MessageUpdate>,
    /// The cursor of the next page, if the feed gave one.
    pub next: Option<String>,
    /// The feed says another page is waiting.
    pub has_more: bool,
}

/// Parses a feed body (`{"data":[...],"next":...,"has_more":...}`; a webhook
/// body carries only `data`) and normalises every item. `brand_handle` marks
/// the brand's own messages as outbound (compared case-insensitively, a
/// leading `@` ignored).
///
/// Fails with [`Error::InvalidInput`] on malformed JSON or on any item that
/// does not fit the feed's format; there is no partial result.
pub fn normalize_page(body: &[u8], brand_handle: &str) -> Result<Page> {
    // One UTF-8 check of the whole body is cheaper than one per string,
    // which is what `from_slice` does.
    let body = std::str::from_utf8(body)
        .map_err(|error| Error::invalid_input(format!("feed page is not UTF-8: {error}")))?;
    let page: FeedPage = serde_json::from_str(body)
        .map_err(|error| Error::invalid_input(format!("feed page is not valid: {error}")))?;
    let brand_handle = brand_handle.trim_start_matches('@');
    let mut messages = Vec::with_capacity(page.data.len());
    let mut updates = Vec::new();
    for item in page.data {
        match normalize_item(item, brand_handle)? {
            Normalized::New(message) => messages.push(message),
            Normalized::Update(update) => updates.push(update),
        }
    }
    Ok(Page {
        messages,
        updates,
        next: page.next,
        has_more: page.has_more,
    })
}

/// A page as the feed sends it.
#[derive(Deserialize)]
struct FeedPage {
    data: Vec<FeedItem>,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    has_more: bool,
}

/// One item of the feed. Missing optional fields and `null` mean the same.
#[derive(Deserialize)]
struct FeedItem {
    id: String,
    conversation_id: Option<String>,
    reply_to: Option<String>,
    #[serde(rename = "type")]
    kind: FeedKind,
    #[serde(default)]
    to_brand: bool,
    author: FeedAuthor,
    #[serde(default)]
    text: String,
    lang: Option<String>,
    created_at: String,
    url: Option<String>,
    likes: Option<u64>,
    shares: Option<u64>,
    replies: Option<u64>,
    #[serde(default)]
    attachments: Vec<FeedAttachment>,
    #[serde(default)]
    deleted: bool,
    edited_at: Option<String>,
}

/// The feed's item types.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FeedKind {
    Mention,
    Comment,
    Reply,
    DirectMessage,
    Post,
    Review,
}

/// The account that wrote an item.
#[derive(Deserialize)]
struct FeedAuthor {
    id: String,
    username: String,
    #[serde(default)]
    name: String,
    followers: Option<u64>,
    #[serde(default)]
    verified: bool,
    url: Option<String>,
    /// An address the feed has verified for this account (a logged-in
    /// webshop customer, say); the host links identities by it.
    email: Option<String>,
}

/// A file or link attached to an item.
#[derive(Deserialize)]
struct FeedAttachment {
    #[serde(rename = "type")]
    kind: String,
    url: String,
    mime_type: Option<String>,
    alt: Option<String>,
}

/// What one feed item becomes.
enum Normalized {
    New(Message),
    Update(MessageUpdate),
}

/// Normalises one item: a deleted item becomes a deletion, an edited one an
/// edit carrying the new version, any other a new message.
fn normalize_item(item: FeedItem, brand_handle: &str) -> Result<Normalized> {
    if item.id.is_empty() {
        return Err(Error::invalid_input("feed item without an id"));
    }
    let thread_id = item.conversation_id.unwrap_or_else(|| item.id.clone());
    let edited_at = item
        .edited_at
        .as_deref()
        .map(|text| parse_time(&item.id, text))
        .transpose()?;

    if item.deleted {
        let mut removal = Removal::new(item.id);
        removal.thread_id = Some(thread_id);
        removal.at = edited_at;
        return Ok(Normalized::Update(MessageUpdate::Deleted(removal)));
    }

    let created_at = parse_time(&item.id, &item.created_at)?;
    let direction = if item.author.username.eq_ignore_ascii_case(brand_handle) {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let author = Author {
        display_name: item.author.name,
        followers: item.author.followers,
        verified: item.author.verified,
        profile_url: item.author.url,
        email: item.author.email,
        ..Author::new(item.author.id, item.author.username)
    };
    let message = Message {
        in_reply_to: item.reply_to,
        direction,
        addressed_to_brand: item.to_brand,
        language: item.lang,
        permalink: item.url,
        attachments: item
            .attachments
            .into_iter()
            .map(normalize_attachment)
            .collect(),
        metrics: Engagement {
            likes: item.likes,
            shares: item.shares,
            replies: item.replies,
        },
        // `Message::new` fills in the rest: private visibility for direct
        // messages, public for everything else.
        ..Message::new(
            item.id,
            thread_id,
            item.kind.into(),
            author,
            item.text,
            created_at,
        )
    };
    Ok(if edited_at.is_some() {
        Normalized::Update(MessageUpdate::Edited(message))
    } else {
        Normalized::New(message)
    })
}

/// Parses the RFC 3339 time `text` of the item `item_id`.
fn parse_time(item_id: &str, text: &str) -> Result<i64> {
    time::parse_rfc3339(text)
        .map_err(|error| Error::invalid_input(format!("feed item `{item_id}`: {}", error.detail())))
}

/// Maps an attachment; unknown types count as files.
fn normalize_attachment(attachment: FeedAttachment) -> Attachment {
    let kind = match attachment.kind.as_str() {
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "link" => AttachmentKind::Link,
        _ => AttachmentKind::File,
    };
    Attachment {
        mime_type: attachment.mime_type,
        alt_text: attachment.alt,
        ..Attachment::new(kind, Some(attachment.url))
    }
}

impl From<FeedKind> for MessageKind {
    fn from(kind: FeedKind) -> Self {
        match kind {
            FeedKind::Mention => Self::Mention,
            FeedKind::Comment => Self::Comment,
            FeedKind::Reply => Self::Reply,
            FeedKind::DirectMessage => Self::DirectMessage,
            FeedKind::Post => Self::Post,
            FeedKind::Review => Self::Review,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webcare_plugin::Visibility;

    const PAGE: &str = r#"{
      "data": [
        {
          "id": "m1", "type": "mention", "to_brand": true,
          "author": {"id": "u1", "username": "anna", "name": "Anna 🌷", "followers": 120, "verified": true,
                     "url": "https://feed.example/anna"},
          "text": "@acme my order 🚚 is late 😡", "lang": "en",
          "created_at": "2024-05-01T12:00:00Z", "url": "https://feed.example/m/m1",
          "likes": 3, "shares": 1, "replies": 0,
          "attachments": [{"type": "image", "url": "https://cdn.example/1.jpg", "mime_type": "image/jpeg", "alt": "a box"}]
        },
        {
          "id": "m2", "conversation_id": "m1", "reply_to": "m1", "type": "reply", "to_brand": false,
          "author": {"id": "u2", "username": "Acme"},
          "text": "Sorry Anna, we're on it.", "created_at": "2024-05-01T12:05:00.5+02:00"
        },
        {
          "id": "m3", "type": "direct_message", "to_brand": true,
          "author": {"id": "u3", "username": "yosef", "name": "יוסף"},
          "text": "שלום, ההזמנה שלי לא הגיעה", "lang": "he", "created_at": "2024-05-01T12:10:00Z",
          "attachments": [{"type": "sticker", "url": "https://cdn.example/s.webp"}]
        },
        {
          "id": "m4", "type": "comment", "to_brand": true,
          "author": {"id": "u4", "username": "joost", "name": "Joost"},
          "text": "Hé, mijn pakketje is nog niet bezorgd. Wanneer komt het?", "lang": "nl",
          "created_at": "2024-05-01T12:20:00Z", "edited_at": "2024-05-01T12:25:00Z"
        },
        {
          "id": "m0", "conversation_id": "m0", "type": "post", "to_brand": false,
          "author": {"id": "u5", "username": "spam"}, "text": "",
          "created_at": "2024-05-01T11:00:00Z", "deleted": true, "edited_at": "2024-05-01T12:30:00Z"
        }
      ],
      "next": "c-42",
      "has_more": true
    }"#;

    #[test]
    fn a_page_normalises_every_field() {
        let page = normalize_page(PAGE.as_bytes(), "@acme").unwrap();
        assert_eq!(page.next.as_deref(), Some("c-42"));
        assert!(page.has_more);
        assert_eq!(page.messages.len(), 3);
        assert_eq!(page.updates.len(), 2);

        let mention = &page.messages[0];
        assert_eq!(mention.external_id, "m1");
        assert_eq!(mention.thread_id, "m1");
        assert_eq!(mention.kind, MessageKind::Mention);
        assert_eq!(mention.visibility, Visibility::Public);
        assert_eq!(mention.direction, Direction::Inbound);
        assert!(mention.addressed_to_brand);
        assert_eq!(mention.author.display_name, "Anna 🌷");
        assert_eq!(mention.author.followers, Some(120));
        assert!(mention.author.verified);
        assert_eq!(mention.text, "@acme my order 🚚 is late 😡");
        assert_eq!(mention.created_at, 1_714_564_800_000);
        assert_eq!(
            mention.permalink.as_deref(),
            Some("https://feed.example/m/m1")
        );
        assert_eq!(mention.metrics.likes, Some(3));
        assert_eq!(mention.attachments[0].kind, AttachmentKind::Image);
        assert_eq!(mention.attachments[0].alt_text.as_deref(), Some("a box"));

        let reply = &page.messages[1];
        assert_eq!(reply.thread_id, "m1");
        assert_eq!(reply.in_reply_to.as_deref(), Some("m1"));
        assert_eq!(
            reply.direction,
            Direction::Outbound,
            "the brand's own reply"
        );
        assert_eq!(reply.created_at, 1_714_557_900_500);

        let dm = &page.messages[2];
        assert_eq!(dm.visibility, Visibility::Private);
        assert_eq!(dm.text, "שלום, ההזמנה שלי לא הגיעה");
        assert_eq!(dm.author.display_name, "יוסף");
        assert_eq!(dm.language.as_deref(), Some("he"));
        assert_eq!(dm.attachments[0].kind, AttachmentKind::File);
    }

    #[test]
    fn edits_and_deletions_become_updates() {
        let page = normalize_page(PAGE.as_bytes(), "acme").unwrap();
        match &page.updates[0] {
            MessageUpdate::Edited(message) => {
                assert_eq!(message.external_id, "m4");
                assert_eq!(
                    message.text,
                    "Hé, mijn pakketje is nog niet bezorgd. Wanneer komt het?"
                );
                assert_eq!(message.language.as_deref(), Some("nl"));
            }
            other => panic!("expected an edit, got {other:?}"),
        }
        match &page.updates[1] {
            MessageUpdate::Deleted(removal) => {
                assert_eq!(removal.external_id, "m0");
                assert_eq!(removal.thread_id.as_deref(), Some("m0"));
                assert_eq!(removal.at, Some(1_714_566_600_000));
            }
            other => panic!("expected a deletion, got {other:?}"),
        }
    }

    #[test]
    fn a_webhook_body_without_paging_fields_parses() {
        let body = r#"{"data":[{"id":"w1","type":"post","author":{"id":"u","username":"u"},
                       "text":"hi","created_at":"2024-05-01T12:00:00Z"}]}"#;
        let page = normalize_page(body.as_bytes(), "acme").unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.next, None);
        assert!(!page.has_more);
    }

    #[test]
    fn malformed_input_is_refused_whole() {
        let cases = [
            "",
            "not json",
            r#"{"data": [}"#,
            r#"{"next": "x"}"#,
            r#"{"data":[{"id":"x","type":"tweet","author":{"id":"u","username":"u"},"created_at":"2024-05-01T12:00:00Z"}]}"#,
            r#"{"data":[{"id":"x","type":"post","author":{"id":"u","username":"u"},"created_at":"yesterday"}]}"#,
            r#"{"data":[{"id":"","type":"post","author":{"id":"u","username":"u"},"created_at":"2024-05-01T12:00:00Z"}]}"#,
        ];
        for body in cases {
            let error = normalize_page(body.as_bytes(), "acme").unwrap_err();
            assert!(matches!(error, Error::InvalidInput(_)), "{body}: {error:?}");
        }
        let error = normalize_page(cases[5].as_bytes(), "acme").unwrap_err();
        assert!(
            error.detail().starts_with("feed item `x`: `yesterday`"),
            "{error}"
        );
    }
}
