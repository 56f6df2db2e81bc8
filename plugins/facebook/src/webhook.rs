//! Webhook deliveries (`object: page`): signature check and normalisation.
//!
//! Shapes from the Webhooks reference
//! (<https://developers.facebook.com/docs/graph-api/webhooks/reference/page/>)
//! and the Messenger Platform webhook events
//! (<https://developers.facebook.com/docs/messenger-platform/webhooks>):
//!
//! ```json
//! {"object": "page", "entry": [
//!   {"id": "<page-id>", "time": 1449135003,
//!    "changes": [{"field": "feed", "value": {"item": "comment", "verb": "add", ...}}],
//!    "messaging": [{"sender": {"id": "<psid>"}, "recipient": {"id": "<page-id>"},
//!                   "timestamp": 1457764197627, "message": {"mid": "...", "text": "..."}}]}
//! ]}
//! ```
//!
//! Everything here is pure, so it is unit-tested natively and benchmarked
//! against its Wasm build.

use serde::Deserialize;
use webcare_plugin::security::constant_time_eq;
use webcare_plugin::{
    Attachment, AttachmentKind, Author, Direction, Error, Message, MessageKind, MessageUpdate,
    Removal, Result,
};

use crate::graph::hmac_sha256;
use crate::ids::{GraphTime, Id};
use crate::public::Public;

/// What one delivery brought, normalised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The delivery's `object` (`page` for everything this connector reads).
    pub object: String,
    /// New posts, comments, mentions and Messenger messages, oldest first.
    pub messages: Vec<Message>,
    /// Edits, removals, hides and unhides, in delivery order.
    pub updates: Vec<MessageUpdate>,
    /// Changes and events that are not messages (reactions, likes, read
    /// receipts, fields this connector does not read), skipped on purpose.
    pub ignored: usize,
}

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureProblem {
    /// No `X-Hub-Signature-256` header.
    Missing,
    /// The header is there but is not `sha256=` and 64 hex digits, or the
    /// HMAC does not match.
    Invalid,
}

/// Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body,
/// keyed with the app secret>` in constant time.
pub fn verify_signature(
    body: &[u8],
    header: Option<&str>,
    app_secret: &str,
) -> Result<(), SignatureProblem> {
    let header = header.ok_or(SignatureProblem::Missing)?.trim();
    let given = header
        .strip_prefix("sha256=")
        .and_then(|hex_digits| hex::decode(hex_digits).ok())
        .ok_or(SignatureProblem::Invalid)?;
    let expected = hmac_sha256(app_secret.as_bytes(), body);
    if constant_time_eq(&given, &expected) {
        Ok(())
    } else {
        Err(SignatureProblem::Invalid)
    }
}

/// Parses a delivery and normalises every change and Messenger event in
/// every entry. `page_id` is the configured page: authors with that id (or
/// the entry's own page id) are the brand, so their messages are outbound.
///
/// A delivery for another `object` (`instagram`, `user`, ...) is not an error:
/// it comes back with its `object` and nothing else, so the caller can log
/// it and still answer 200 (Facebook retries anything else for hours).
///
/// Fails with [`Error::InvalidInput`] when the body is not JSON of this
/// shape or a post, comment or message lacks its id; there is no partial
/// result.
pub fn normalize_webhook(body: &[u8], page_id: &str) -> Result<Delivery> {
    let body = std::str::from_utf8(body)
        .map_err(|error| Error::invalid_input(format!("webhook body is not UTF-8: {error}")))?;
    let head: Head = serde_json::from_str(body)
        .map_err(|error| Error::invalid_input(format!("webhook body is not valid: {error}")))?;
    let mut delivery = Delivery {
        object: head.object,
        ..Delivery::default()
    };
    if delivery.object != "page" {
        return Ok(delivery);
    }
    let envelope: Envelope = serde_json::from_str(body).map_err(|error| {
        Error::invalid_input(format!(
            "webhook body is not a valid page delivery: {error}"
        ))
    })?;
    for entry in envelope.entry {
        let entry_page = entry.id.0;
        for change in entry.changes {
            normalize_change(&entry_page, page_id, entry.time, change, &mut delivery)?;
        }
        for event in entry.messaging {
            normalize_event(&entry_page, page_id, event, &mut delivery)?;
        }
    }
    // Entries come in delivery order, which is not always time order.
    delivery.messages.sort_by_key(|message| message.created_at);
    Ok(delivery)
}

/// Only the `object` of a delivery, read first so that other objects'
/// entries (whose shapes differ) are never parsed.
#[derive(Deserialize)]
struct Head {
    object: String,
}

/// An `object: page` delivery.
#[derive(Deserialize)]
struct Envelope {
    entry: Vec<Entry>,
}

/// One entry: changes to one page's feed, or Messenger events of one page.
#[derive(Deserialize)]
struct Entry {
    id: Id,
    time: Option<GraphTime>,
    #[serde(default)]
    changes: Vec<Change>,
    #[serde(default)]
    messaging: Vec<Event>,
}

/// One change: `field` names what changed (`feed`, `mention`, ...).
#[derive(Deserialize)]
struct Change {
    field: String,
    #[serde(default)]
    value: ChangeValue,
}

/// The value of a `feed` or `mention` change. Every field is optional so
/// that changes this connector skips (reactions, other fields) parse too.
#[derive(Deserialize, Default)]
struct ChangeValue {
    item: Option<String>,
    verb: Option<String>,
    post_id: Option<Id>,
    comment_id: Option<Id>,
    parent_id: Option<Id>,
    from: Option<Sender>,
    /// Older payloads: the author's id and name without `from`.
    sender_id: Option<Id>,
    sender_name: Option<String>,
    created_time: Option<GraphTime>,
    message: Option<String>,
    permalink_url: Option<String>,
    link: Option<String>,
    photo: Option<String>,
    video: Option<String>,
}

/// `from` of a change.
#[derive(Deserialize)]
struct Sender {
    id: Id,
    #[serde(default)]
    name: String,
}

/// A Messenger event.
#[derive(Deserialize)]
struct Event {
    sender: Option<Party>,
    recipient: Option<Party>,
    timestamp: Option<GraphTime>,
    message: Option<MessengerMessage>,
    /// `message_edits` subscription: a message's new text.
    message_edit: Option<MessageEdit>,
}

/// Sender or recipient of a Messenger event.
#[derive(Deserialize)]
struct Party {
    id: Option<Id>,
}

/// `message` of a Messenger event.
#[derive(Deserialize)]
struct MessengerMessage {
    mid: Option<Id>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    is_echo: bool,
    #[serde(default)]
    is_deleted: bool,
    #[serde(default)]
    attachments: Vec<MessengerAttachment>,
    reply_to: Option<ReplyTo>,
    metadata: Option<String>,
}

/// `message_edit` of a Messenger event.
#[derive(Deserialize)]
struct MessageEdit {
    mid: Option<Id>,
    #[serde(default)]
    text: String,
}

/// What a Messenger message answers (`reply_to.mid`).
#[derive(Deserialize)]
struct ReplyTo {
    mid: Option<Id>,
}

/// A Messenger attachment.
#[derive(Deserialize)]
struct MessengerAttachment {
    #[serde(rename = "type", default)]
    kind: String,
    payload: Option<AttachmentPayload>,
}

/// The part of an attachment payload this connector reads.
#[derive(Deserialize)]
struct AttachmentPayload {
    url: Option<String>,
    title: Option<String>,
}

/// Graph `item`s that are posts (a page's own or a visitor's).
const POST_ITEMS: [&str; 8] = [
    "status", "post", "photo", "video", "share", "link", "note", "event",
];

/// What a change or event does to a message.
enum Verb {
    Add,
    Edit,
    Remove,
    Hide,
    Unhide,
}

impl Verb {
    fn parse(verb: &str) -> Option<Self> {
        Some(match verb {
            "add" => Self::Add,
            "edited" | "edit" | "update" => Self::Edit,
            "remove" | "delete" => Self::Remove,
            "hide" => Self::Hide,
            "unhide" => Self::Unhide,
            _ => return None,
        })
    }
}

/// Normalises one `changes[]` element into `delivery`.
fn normalize_change(
    entry_page: &str,
    page_id: &str,
    entry_time: Option<GraphTime>,
    change: Change,
    delivery: &mut Delivery,
) -> Result<()> {
    let value = change.value;
    let field = change.field.as_str();
    let item = value.item.as_deref().unwrap_or_default();
    let is_comment = item == "comment";
    let verb = value.verb.as_deref().and_then(Verb::parse);
    let (Some(verb), true, true) = (
        verb,
        matches!(field, "feed" | "mention"),
        is_comment || POST_ITEMS.contains(&item),
    ) else {
        // Reactions, likes, ratings, other fields: not messages.
        delivery.ignored += 1;
        return Ok(());
    };
    let post_id = value.post_id.map(|id| id.0).ok_or_else(|| {
        Error::invalid_input(format!("a `{field}` change of a `{item}` has no `post_id`"))
    })?;
    let comment_id = if is_comment {
        Some(value.comment_id.map(|id| id.0).ok_or_else(|| {
            Error::invalid_input(format!(
                "a `{field}` change of a comment on `{post_id}` has no `comment_id`"
            ))
        })?)
    } else {
        None
    };
    let author = match (value.from, value.sender_id) {
        (Some(from), _) => Some((from.id.0, from.name)),
        (None, Some(sender)) => Some((sender.0, value.sender_name.unwrap_or_default())),
        // Mentions come without any author.
        (None, None) => None,
    };
    let at = value.created_time.or(entry_time).map(|time| time.0);
    let external_id = comment_id.clone().unwrap_or_else(|| post_id.clone());
    let removal = |by: Option<String>| Removal {
        thread_id: Some(post_id.clone()),
        at,
        by,
        ..Removal::new(external_id.clone())
    };
    let by = author.as_ref().map(|(id, _)| id.clone());
    match verb {
        Verb::Remove => delivery.updates.push(MessageUpdate::Deleted(removal(by))),
        Verb::Hide => delivery.updates.push(MessageUpdate::Hidden(removal(by))),
        Verb::Unhide => delivery.updates.push(MessageUpdate::Unhidden(removal(by))),
        Verb::Add | Verb::Edit => {
            let mut attachments = Vec::new();
            if let Some(url) = value.photo {
                attachments.push(Attachment::new(AttachmentKind::Image, Some(url)));
            }
            if let Some(url) = value.video {
                attachments.push(Attachment::new(AttachmentKind::Video, Some(url)));
            }
            if let Some(url) = value.link {
                attachments.push(Attachment::new(AttachmentKind::Link, Some(url)));
            }
            let message = Public {
                page_id: entry_page,
                own_page_id: page_id,
                kind: match (field, is_comment) {
                    ("mention", _) => MessageKind::Mention,
                    (_, true) => MessageKind::Comment,
                    (_, false) => MessageKind::Post,
                },
                item,
                post_id: post_id.clone(),
                comment_id,
                parent_id: value.parent_id.map(|id| id.0),
                author,
                text: value.message.unwrap_or_default(),
                created_at: at.unwrap_or_default(),
                permalink: value.permalink_url,
                attachments,
            }
            .into_message();
            if matches!(verb, Verb::Add) {
                delivery.messages.push(message);
            } else {
                delivery.updates.push(MessageUpdate::Edited(message));
            }
        }
    }
    Ok(())
}

/// Normalises one `messaging[]` event into `delivery`: messages and echoes
/// (the page's own sends, outbound), edits and deletions. Delivery and read
/// receipts, postbacks and reactions are skipped.
fn normalize_event(
    entry_page: &str,
    page_id: &str,
    event: Event,
    delivery: &mut Delivery,
) -> Result<()> {
    let party = |party: Option<Party>| party.and_then(|party| party.id).map(|id| id.0);
    let sender = party(event.sender).unwrap_or_default();
    let recipient = party(event.recipient).unwrap_or_default();
    let is_page = |id: &str| !id.is_empty() && (id == entry_page || id == page_id);
    // The customer is whichever side is not the page: the sender of an
    // inbound message, the recipient of an echo.
    let psid = if is_page(&sender) {
        recipient
    } else {
        sender.clone()
    };
    let thread_id = format!("messenger:{psid}");
    let at = event.timestamp.map(|time| time.0);

    let (mid, text, echo, reply_to, metadata, attachments, edited) =
        match (event.message, event.message_edit) {
            (Some(message), _) => {
                let mid = message.mid.map(|id| id.0).ok_or_else(|| {
                    Error::invalid_input("a Messenger message has no `mid`".to_owned())
                })?;
                if message.is_deleted {
                    delivery.updates.push(MessageUpdate::Deleted(Removal {
                        thread_id: Some(thread_id),
                        at,
                        by: Some(sender),
                        ..Removal::new(mid)
                    }));
                    return Ok(());
                }
                (
                    mid,
                    message.text,
                    message.is_echo,
                    message.reply_to.and_then(|reply| reply.mid).map(|id| id.0),
                    message.metadata,
                    message.attachments,
                    false,
                )
            }
            (None, Some(edit)) => {
                let mid = edit.mid.map(|id| id.0).ok_or_else(|| {
                    Error::invalid_input("a Messenger message edit has no `mid`".to_owned())
                })?;
                let echo = is_page(&sender);
                (mid, edit.text, echo, None, None, Vec::new(), true)
            }
            (None, None) => {
                delivery.ignored += 1;
                return Ok(());
            }
        };
    let outbound = echo || is_page(&sender);
    let author = if outbound {
        Author::new(entry_page, entry_page)
    } else {
        Author::new(sender.clone(), sender)
    };
    let mut properties = vec![
        ("page_id".to_owned(), entry_page.to_owned()),
        ("psid".to_owned(), psid),
        ("item".to_owned(), "message".to_owned()),
    ];
    if let Some(metadata) = metadata {
        properties.push(("metadata".to_owned(), metadata));
    }
    let message = Message {
        in_reply_to: reply_to,
        direction: if outbound {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        addressed_to_brand: true,
        attachments: attachments.into_iter().map(normalize_attachment).collect(),
        properties,
        ..Message::new(
            mid,
            thread_id,
            MessageKind::DirectMessage,
            author,
            text,
            at.unwrap_or_default(),
        )
    };
    if edited {
        delivery.updates.push(MessageUpdate::Edited(message));
    } else {
        delivery.messages.push(message);
    }
    Ok(())
}

/// Maps a Messenger attachment; unknown types (`fallback`, `template`,
/// `location`) count as links when they carry a URL, else files.
fn normalize_attachment(attachment: MessengerAttachment) -> Attachment {
    let (url, title) = match attachment.payload {
        Some(payload) => (payload.url, payload.title),
        None => (None, None),
    };
    let kind = match attachment.kind.as_str() {
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "file" => AttachmentKind::File,
        _ if url.is_some() => AttachmentKind::Link,
        _ => AttachmentKind::File,
    };
    Attachment {
        name: title,
        ..Attachment::new(kind, url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webcare_plugin::Visibility;

    const PAGE: &str = "1234567890321";

    fn delivery(body: &str) -> Delivery {
        normalize_webhook(body.as_bytes(), PAGE).unwrap()
    }

    #[test]
    fn signatures_are_checked_against_the_raw_body() {
        let body = br#"{"object":"page","entry":[]}"#;
        let good = format!("sha256={}", hex::encode(hmac_sha256(b"s3cret", body)));
        assert_eq!(verify_signature(body, Some(&good), "s3cret"), Ok(()));
        assert_eq!(
            verify_signature(
                body,
                Some(&good.to_uppercase().replace("SHA256=", "sha256=")),
                "s3cret"
            ),
            Ok(()),
            "hex case does not matter"
        );
        assert_eq!(
            verify_signature(b"{}", Some(&good), "s3cret"),
            Err(SignatureProblem::Invalid)
        );
        assert_eq!(
            verify_signature(body, Some(&good), "other"),
            Err(SignatureProblem::Invalid)
        );
        assert_eq!(
            verify_signature(body, None, "s3cret"),
            Err(SignatureProblem::Missing)
        );
        for header in [
            "",
            "sha1=abcd",
            "sha256=",
            "sha256=xyz",
            &good[..good.len() - 2],
        ] {
            assert_eq!(
                verify_signature(body, Some(header), "s3cret"),
                Err(SignatureProblem::Invalid),
                "{header}"
            );
        }
    }

    #[test]
    fn comments_posts_and_messenger_events_normalise() {
        let body = r#"{"object":"page","entry":[
          {"id":"1234567890321","time":1795166400,"changes":[
            {"field":"feed","value":{"item":"comment","verb":"add","comment_id":"9_2","post_id":"1234567890321_9",
              "parent_id":"9_1","from":{"id":"55","name":"Anna 🌷"},"created_time":1795166100,"message":"Nog niks ontvangen"}},
            {"field":"feed","value":{"item":"like","verb":"add","post_id":"1234567890321_9","from":{"id":"55"}}},
            {"field":"ratings","value":{"item":"rating","verb":"add","reviewer_id":"55"}}]},
          {"id":1234567890321,"time":1795166500000,"messaging":[
            {"sender":{"id":1234567890321},"recipient":{"id":77},"timestamp":1795166000000,
             "message":{"mid":"m_1","text":"We helpen je graag","is_echo":true,"metadata":"case-1"}},
            {"sender":{"id":"77"},"recipient":{"id":"1234567890321"},"timestamp":1795166200000,
             "message":{"mid":"m_2","text":"","reply_to":{"mid":"m_1"},
                        "attachments":[{"type":"file","payload":{"url":"https://cdn.example/f.pdf"}},
                                       {"type":"fallback","payload":{"url":"https://example.com","title":"Example"}},
                                       {"type":"location","payload":null}]}},
            {"sender":{"id":"77"},"recipient":{"id":"1234567890321"},"timestamp":1795166300000,
             "message_edit":{"mid":"m_2","text":"zie bijlage","num_edit":1}},
            {"sender":{"id":"77"},"recipient":{"id":"1234567890321"},"timestamp":1795166400000,
             "delivery":{"mids":["m_1"],"watermark":1795166000000}}]}]}"#;
        let delivery = delivery(body);
        assert_eq!(delivery.object, "page");
        assert_eq!(delivery.ignored, 3);
        let ids: Vec<&str> = delivery
            .messages
            .iter()
            .map(|m| m.external_id.as_str())
            .collect();
        assert_eq!(ids, ["m_1", "9_2", "m_2"]);

        let echo = &delivery.messages[0];
        assert_eq!(echo.direction, Direction::Outbound);
        assert_eq!(echo.thread_id, "messenger:77");
        assert_eq!(echo.author.id, PAGE);
        assert_eq!(echo.property("metadata"), Some("case-1"));

        let comment = &delivery.messages[1];
        assert_eq!(comment.kind, MessageKind::Comment);
        assert_eq!(comment.in_reply_to.as_deref(), Some("9_1"));
        assert_eq!(comment.thread_id, "1234567890321_9");
        assert_eq!(comment.author.display_name, "Anna 🌷");
        assert_eq!(comment.property("parent_id"), Some("9_1"));

        let dm = &delivery.messages[2];
        assert_eq!(dm.visibility, Visibility::Private);
        assert_eq!(dm.direction, Direction::Inbound);
        assert_eq!(dm.in_reply_to.as_deref(), Some("m_1"));
        let kinds: Vec<AttachmentKind> = dm.attachments.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                AttachmentKind::File,
                AttachmentKind::Link,
                AttachmentKind::File
            ]
        );
        assert_eq!(dm.attachments[1].name.as_deref(), Some("Example"));

        match &delivery.updates[..] {
            [MessageUpdate::Edited(edit)] => {
                assert_eq!(edit.external_id, "m_2");
                assert_eq!(edit.text, "zie bijlage");
                assert_eq!(edit.direction, Direction::Inbound);
            }
            other => panic!("expected one edit, got {other:?}"),
        }
    }

    #[test]
    fn deleted_messenger_messages_and_post_edits_are_updates() {
        let body = r#"{"object":"page","entry":[{"id":"1234567890321","time":1795166400,
          "changes":[{"field":"feed","value":{"item":"status","verb":"edited","post_id":"1234567890321_9",
                      "from":{"id":"1234567890321","name":"Acme"},"message":"Open tot 22:00","created_time":1795166000}}],
          "messaging":[{"sender":{"id":"77"},"recipient":{"id":"1234567890321"},"timestamp":1795166200000,
                        "message":{"mid":"m_9","is_deleted":true}}]}]}"#;
        let delivery = delivery(body);
        assert!(delivery.messages.is_empty());
        assert!(matches!(&delivery.updates[0], MessageUpdate::Edited(post)
            if post.kind == MessageKind::Post && post.direction == Direction::Outbound));
        assert!(
            matches!(&delivery.updates[1], MessageUpdate::Deleted(removal)
            if removal.external_id == "m_9" && removal.thread_id.as_deref() == Some("messenger:77"))
        );
    }

    #[test]
    fn other_objects_are_not_parsed_and_malformed_bodies_are_refused() {
        let other = delivery(
            r#"{"object":"instagram","entry":[{"id":1,"changes":[{"field":"comments","value":{"from":"x"}}]}]}"#,
        );
        assert_eq!(other.object, "instagram");
        assert!(other.messages.is_empty() && other.updates.is_empty());
        for body in [
            "",
            "[]",
            r#"{"entry":[]}"#,
            r#"{"object":"page","entry":[{"id":"1","changes":[{"field":"feed","value":{"item":"comment","verb":"add","post_id":"1_2"}}]}]}"#,
            r#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"message":{"text":"no mid"}}]}]}"#,
            r#"{"object":"page","entry":[{"id":"1","changes":[{"field":"feed","value":{"item":"status","verb":"add","post_id":"1_2","created_time":"yesterday"}}]}]}"#,
        ] {
            let error = normalize_webhook(body.as_bytes(), PAGE).unwrap_err();
            assert!(matches!(error, Error::InvalidInput(_)), "{body}: {error:?}");
        }
        assert!(normalize_webhook(&[0xff, 0xfe], PAGE).is_err());
    }
}
