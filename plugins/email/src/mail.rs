//! RFC 5322/MIME mail into the contract's [`Message`], and replies back
//! into RFC 5322. Pure (no host imports): unit-tested and benchmarked
//! natively, and the same code for polled and webhook-delivered mail, so
//! both give the same message for the same mail.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use webcare_plugin::{
    Attachment, AttachmentKind, Author, Direction, Error, Message, MessageKind, Result,
    TimestampMs, text,
};

/// The most bytes of one mail the connector fetches and parses; larger
/// mails become a metadata-only message with a note.
pub const MAX_MESSAGE_BYTES: u64 = 2 * 1024 * 1024;

/// The contract's limit on one property value.
const MAX_PROPERTY_BYTES: usize = 4096;

/// The brand's side of the mailbox: who "we" are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Brand {
    /// The brand's address (`care@acme.example`), lower case.
    pub address: String,
    /// Further addresses that are the brand too, lower case.
    pub aliases: Vec<String>,
}

impl Brand {
    /// A brand from its address and aliases, compared case-insensitively.
    pub fn new(address: &str, aliases: &[String]) -> Self {
        Self {
            address: address.trim().to_ascii_lowercase(),
            aliases: aliases
                .iter()
                .map(|alias| alias.trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// True if `address` is the brand's address or one of its aliases.
    pub fn owns(&self, address: &str) -> bool {
        let address = address.trim().to_ascii_lowercase();
        address == self.address || self.aliases.contains(&address)
    }

    /// The domain of the brand's address, for Message-IDs and `EHLO`.
    pub fn domain(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map_or("localhost", |(_, domain)| domain)
    }
}

/// Normalises one raw mail.
///
/// - `external_id` is the Message-ID without `<>`; a mail without one gets
///   `nomsgid-` and a hash of its From, To, Date, Subject and text, so the
///   same mail gets the same id however it arrives.
/// - `thread_id` is the first id in `References`, else `In-Reply-To`, else
///   the mail's own id; `in_reply_to` is `In-Reply-To`, else the last
///   `References` id.
/// - From the brand (or an alias) is outbound; the brand in To or Cc makes
///   it addressed to the brand.
/// - `received_at` stands in for a missing or unreadable `Date`.
/// - `full_size` is the mail's size when `raw` holds only its header (the
///   mail was larger than [`MAX_MESSAGE_BYTES`]): the text then says so.
///
/// Fails with [`Error::InvalidInput`] when `raw` is not a mail at all.
pub fn normalize_mail(
    raw: &[u8],
    brand: &Brand,
    received_at: TimestampMs,
    full_size: Option<u64>,
) -> Result<Message> {
    let mail = MessageParser::default()
        .parse(raw)
        .filter(|mail| !mail.headers().is_empty() && looks_like_mail(raw))
        .ok_or_else(|| {
            Error::invalid_input("the body is not an RFC 5322 mail (no header fields)")
        })?;

    let from = first_address(mail.from()).or_else(|| first_address(mail.sender()));
    let (from_address, from_name) = from.unwrap_or_default();
    let reply_to = first_address(mail.reply_to()).map(|(address, _)| address);
    let references = id_list(mail.references());
    let in_reply_to_ids = id_list(mail.in_reply_to());
    let subject = mail.subject().map(str::to_owned);

    let text_body = body_text(&mail);
    let html = mail.html_bodies().find_map(|part| match &part.body {
        PartType::Html(html) => Some(html.to_string()),
        _ => None,
    });
    let created_at = mail
        .date()
        .map(|date| date.to_timestamp().saturating_mul(1000))
        .filter(|&ms| ms > 0)
        .unwrap_or(received_at);

    let external_id = match mail
        .message_id()
        .map(normalize_id)
        .filter(|id| !id.is_empty())
    {
        Some(id) => id,
        None => {
            let mut hash = Fnv128::new();
            for field in [
                from_address.as_str(),
                &addresses(mail.to()).join(","),
                &created_at.to_string(),
                subject.as_deref().unwrap_or(""),
                &text_body,
            ] {
                hash.write(field.as_bytes());
                hash.write(&[0]);
            }
            format!("nomsgid-{:032x}", hash.finish())
        }
    };
    let thread_id = references
        .first()
        .or_else(|| in_reply_to_ids.first())
        .cloned()
        .unwrap_or_else(|| external_id.clone());
    let in_reply_to = in_reply_to_ids
        .first()
        .or_else(|| references.last())
        .cloned();

    let recipients: Vec<String> = mail
        .all_to()
        .chain(mail.all_cc())
        .flat_map(|address| addresses(Some(address)))
        .collect();
    let addressed_to_brand = recipients.iter().any(|address| brand.owns(address));
    let direction = if !from_address.is_empty() && brand.owns(&from_address) {
        Direction::Outbound
    } else {
        Direction::Inbound
    };

    let mut text = text_body;
    if let Some(size) = full_size {
        text = format!(
            "[This e-mail is {} KiB, more than the {} KiB the connector fetches; open it in the mailbox to read it.]",
            size.div_ceil(1024),
            MAX_MESSAGE_BYTES / 1024
        );
    }

    let handle = if from_address.is_empty() {
        "unknown".to_owned()
    } else {
        from_address.clone()
    };
    let author = Author {
        display_name: from_name,
        email: None,
        ..Author::new(handle.clone(), handle)
    };
    let mut properties = Vec::new();
    if mail.message_id().is_some() {
        properties.push(("message_id".to_owned(), external_id.clone()));
    }
    if !references.is_empty() {
        properties.push(("references".to_owned(), fit_references(&references)));
    }
    if let Some(reply_to) = reply_to {
        properties.push(("reply_to".to_owned(), reply_to));
    }
    if !from_address.is_empty() {
        properties.push(("from".to_owned(), from_address));
    }
    if full_size.is_some() {
        properties.push(("truncated".to_owned(), "true".to_owned()));
    }

    Ok(Message {
        in_reply_to,
        direction,
        addressed_to_brand,
        html: if full_size.is_some() { None } else { html },
        subject,
        language: language(&mail),
        attachments: if full_size.is_some() {
            Vec::new()
        } else {
            attachments(&mail)
        },
        properties,
        // `Message::new` makes e-mail private.
        ..Message::new(
            external_id,
            thread_id,
            MessageKind::Email,
            author,
            text,
            created_at,
        )
    })
}

/// The stand-in for a stored mail that does not parse: a message that
/// tells the agent to look in the mailbox, with an id made of the mailbox's
/// `UIDVALIDITY` and the mail's UID (stable while the mailbox is).
pub fn unreadable_mail(
    uid_validity: u32,
    uid: u32,
    mailbox: &str,
    received_at: TimestampMs,
) -> Message {
    let id = format!("imap-{uid_validity}-{uid}");
    Message::new(
        id.clone(),
        id,
        MessageKind::Email,
        Author::new("unknown", "unknown"),
        format!(
            "[An e-mail in `{mailbox}` (UID {uid}) could not be read; open it in the mailbox.]"
        ),
        received_at,
    )
}

/// mail-parser accepts nearly anything as a mail; require a header line
/// (`Name: value`, the name letters, digits and `-`) first, so a JSON or HTML body
/// posted by mistake is refused instead of becoming an empty message.
fn looks_like_mail(raw: &[u8]) -> bool {
    let first_line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    match first_line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => first_line[..colon]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-'),
        _ => first_line.starts_with(b"From "),
    }
}

/// The readable text: every inline text part, HTML parts converted (an
/// HTML-only mail becomes text through the SDK's converter), lines ending
/// in `\n`.
fn body_text(mail: &mail_parser::Message<'_>) -> String {
    let mut parts = Vec::new();
    for part in mail.text_bodies() {
        match &part.body {
            // One line-ending convention, whatever the transport did to
            // the mail (IMAP stores CRLF, webhooks may deliver LF).
            PartType::Text(body) => parts.push(body.trim_end().replace("\r\n", "\n")),
            PartType::Html(html) => parts.push(text::html_to_text(html)),
            _ => {}
        }
    }
    parts.retain(|part| !part.is_empty());
    parts.join("\n\n")
}

/// Attachments as metadata: name, MIME type, decoded size.
fn attachments(mail: &mail_parser::Message<'_>) -> Vec<Attachment> {
    mail.attachments()
        .map(|part| {
            let mime_type = part.content_type().map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            });
            let kind = match mime_type.as_deref().and_then(|m| m.split('/').next()) {
                Some("image") => AttachmentKind::Image,
                Some("video") => AttachmentKind::Video,
                Some("audio") => AttachmentKind::Audio,
                _ => AttachmentKind::File,
            };
            Attachment {
                mime_type,
                name: part.attachment_name().map(str::to_owned),
                size_bytes: Some(part.len() as u64),
                ..Attachment::new(kind, None)
            }
        })
        .collect()
}

/// `Content-Language` of the mail or its first text part.
fn language(mail: &mail_parser::Message<'_>) -> Option<String> {
    let from_value = |value: &HeaderValue<'_>| match value {
        HeaderValue::Text(text) => Some(text.trim().to_owned()),
        HeaderValue::TextList(list) => list.first().map(|text| text.trim().to_owned()),
        _ => None,
    };
    from_value(mail.content_language())
        .or_else(|| {
            mail.text_bodies()
                .find_map(|part| from_value(part.content_language()))
        })
        .filter(|tag| !tag.is_empty())
}

/// The first mailbox of an address header: (address lower-cased, name).
fn first_address(address: Option<&Address<'_>>) -> Option<(String, String)> {
    let addr = address?.first()?;
    let email = addr.address()?.trim().to_ascii_lowercase();
    Some((email, addr.name().unwrap_or("").trim().to_owned()))
}

/// Every address in an address header, lower-cased.
fn addresses(address: Option<&Address<'_>>) -> Vec<String> {
    address
        .map(|address| {
            address
                .iter()
                .filter_map(|addr| addr.address())
                .map(|a| a.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

/// Message ids from an id-list header (`References`, `In-Reply-To`).
fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    let ids: Vec<String> = match value {
        HeaderValue::Text(text) => text.split_whitespace().map(normalize_id).collect(),
        HeaderValue::TextList(list) => list.iter().map(|id| normalize_id(id)).collect(),
        _ => Vec::new(),
    };
    ids.into_iter().filter(|id| !id.is_empty()).collect()
}

/// A Message-ID without angle brackets or surrounding space.
pub fn normalize_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

/// `References` as `<a> <b> ...`, within the property size limit: when too
/// long, the first id and as many of the latest as fit are kept (as RFC
/// 5322 3.6.4 suggests for trimming).
fn fit_references(ids: &[String]) -> String {
    let bracketed: Vec<String> = ids.iter().map(|id| format!("<{id}>")).collect();
    let full = bracketed.join(" ");
    if full.len() <= MAX_PROPERTY_BYTES {
        return full;
    }
    let first = &bracketed[0];
    let mut tail: Vec<&str> = Vec::new();
    let mut len = first.len();
    for id in bracketed[1..].iter().rev() {
        if len + 1 + id.len() > MAX_PROPERTY_BYTES {
            break;
        }
        len += 1 + id.len();
        tail.push(id);
    }
    tail.reverse();
    let mut out = first.clone();
    for id in tail {
        out.push(' ');
        out.push_str(id);
    }
    out
}

/// What a reply needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplySpec<'a> {
    /// The brand's address, the `From`.
    pub from_address: &'a str,
    /// The brand's display name, if any.
    pub from_name: Option<&'a str>,
    /// Who gets the reply (the target's Reply-To, else its From).
    pub to: &'a str,
    /// The target's subject.
    pub subject: Option<&'a str>,
    /// The target's Message-ID (without `<>`).
    pub in_reply_to: Option<&'a str>,
    /// The target's `References` property (`<a> <b>`).
    pub references: Option<&'a str>,
    /// The action's idempotency key: the same key gives the same Message-ID.
    pub idempotency_key: &'a str,
    /// Now, for the `Date` header.
    pub now_ms: TimestampMs,
    /// The agent's text.
    pub text: &'a str,
}

/// A composed reply: its Message-ID (without `<>`) and the RFC 5322 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composed {
    /// The new mail's Message-ID, without `<>`.
    pub message_id: String,
    /// The whole mail, CRLF line endings.
    pub bytes: Vec<u8>,
}

/// Writes a reply: `Re: ` subject (not doubled), threading headers, a
/// Message-ID at the brand's domain derived from the idempotency key, and
/// a UTF-8 text body (base64 when not plain ASCII).
pub fn compose_reply(spec: &ReplySpec<'_>) -> Composed {
    let domain = spec
        .from_address
        .rsplit_once('@')
        .map_or("localhost", |(_, domain)| domain);
    let mut key_hash = Fnv128::new();
    key_hash.write(spec.idempotency_key.as_bytes());
    let message_id = format!("webcare.{:032x}@{domain}", key_hash.finish());

    let subject = match spec.subject.map(str::trim) {
        Some(subject) if is_reply_subject(subject) => subject.to_owned(),
        Some(subject) if !subject.is_empty() => format!("Re: {subject}"),
        _ => "Re:".to_owned(),
    };

    let mut out = String::new();
    let from = match spec.from_name.filter(|name| !name.trim().is_empty()) {
        Some(name) => format!("{} <{}>", display_name(name.trim()), spec.from_address),
        None => format!("<{}>", spec.from_address),
    };
    let _ = write!(out, "From: {from}\r\n");
    let _ = write!(out, "To: <{}>\r\n", spec.to);
    let _ = write!(out, "Subject: {}\r\n", encode_header_text(&subject));
    let _ = write!(out, "Date: {}\r\n", rfc5322_date(spec.now_ms));
    let _ = write!(out, "Message-ID: <{message_id}>\r\n");
    // Ids come from customers' mails: only well-formed ones go into headers.
    if let Some(parent) = spec.in_reply_to.filter(|id| is_header_safe_id(id)) {
        let _ = write!(out, "In-Reply-To: <{parent}>\r\n");
        let mut references: Vec<String> = spec
            .references
            .unwrap_or("")
            .split_whitespace()
            .map(normalize_id)
            .filter(|id| is_header_safe_id(id))
            .map(|id| format!("<{id}>"))
            .collect();
        let parent = format!("<{parent}>");
        if !references.contains(&parent) {
            references.push(parent);
        }
        out.push_str(&fold("References:", &references));
    }
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str("Content-Type: text/plain; charset=utf-8\r\n");

    let body = spec.text.replace("\r\n", "\n").replace('\n', "\r\n");
    let plain = body.is_ascii() && body.split("\r\n").all(|line| line.len() <= 998);
    if plain {
        out.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
        out.push_str(&body);
    } else {
        out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        let encoded = BASE64.encode(body.as_bytes());
        for chunk in encoded.as_bytes().chunks(76) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push_str("\r\n");
        }
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    Composed {
        message_id,
        bytes: out.into_bytes(),
    }
}

/// A Message-ID that can go into a header as `<id>`: printable ASCII, no
/// brackets (so nothing a customer wrote can add a header line).
fn is_header_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// `Re:`, `RE :`, `re:` already there.
fn is_reply_subject(subject: &str) -> bool {
    let lower = subject.to_ascii_lowercase();
    lower
        .strip_prefix("re")
        .is_some_and(|rest| rest.trim_start().starts_with(':'))
}

/// A header field folded at spaces so no line exceeds 78 characters.
fn fold(name: &str, words: &[String]) -> String {
    let mut out = String::from(name);
    let mut line_len = name.len();
    for word in words {
        if line_len + 1 + word.len() > 78 && line_len > name.len() {
            out.push_str("\r\n");
            line_len = 0;
        }
        out.push(' ');
        out.push_str(word);
        line_len += 1 + word.len();
    }
    out.push_str("\r\n");
    out
}

/// A display name as a quoted string, or an encoded word if not ASCII.
fn display_name(name: &str) -> String {
    if name.is_ascii() && !name.chars().any(|c| c.is_ascii_control()) {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    } else {
        encode_header_text(name)
    }
}

/// Header text as is when ASCII, else RFC 2047 `=?UTF-8?B?...?=` words of
/// at most 75 characters, split between characters.
fn encode_header_text(value: &str) -> String {
    if value.is_ascii() && !value.chars().any(|c| c.is_ascii_control()) {
        return value.to_owned();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        // 45 bytes of UTF-8 become 60 of base64: 72 with the markers.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", BASE64.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", BASE64.encode(chunk.as_bytes())));
    }
    words.join("\r\n ")
}

/// `Tue, 24 Nov 2026 15:27:48 +0000` for `ms` since the epoch.
pub fn rfc5322_date(ms: TimestampMs) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{weekday}, {day:02} {month} {year} {:02}:{:02}:{:02} +0000",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// (year, month 1-12, day) of a day count since 1970-01-01, after Howard
/// Hinnant's public-domain `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// FNV-1a, 128 bits: a stable, dependency-free hash for ids (not for
/// security: it only has to tell different mails and keys apart).
struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u128::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> u128 {
        self.0
    }
}

/// Normalises a batch of raw mails (the benchmark's unit of work); the
/// first malformed one fails the whole batch.
pub fn normalize_mails(
    raws: &[Vec<u8>],
    brand: &Brand,
    received_at: TimestampMs,
) -> Result<Vec<Message>> {
    raws.iter()
        .map(|raw| normalize_mail(raw, brand, received_at, None))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use webcare_plugin::Visibility;

    fn brand() -> Brand {
        Brand::new("Care@Acme.test", &["support@acme.test".into()])
    }

    const MULTIPART: &str = concat!(
        "From: \"Jan de Vries\" <jan@example.test>\r\n",
        "To: Acme Care <care@acme.test>\r\n",
        "Subject: =?UTF-8?Q?Bestelling_kwijt_=F0=9F=98=A1?=\r\n",
        "Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n",
        "Message-ID: <m1@example.test>\r\n",
        "Reply-To: jan.private@example.test\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: multipart/mixed; boundary=\"b1\"\r\n",
        "\r\n",
        "--b1\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n",
        "Content-Transfer-Encoding: quoted-printable\r\n",
        "\r\n",
        "Hoi, mijn pakket is niet bezorgd =F0=9F=93=A6. \u{05e9}=D7=9C=D7=95=D7=9D\r\n",
        "--b1\r\n",
        "Content-Type: application/pdf; name=\"factuur.pdf\"\r\n",
        "Content-Disposition: attachment; filename=\"factuur.pdf\"\r\n",
        "Content-Transfer-Encoding: base64\r\n",
        "\r\n",
        "JVBERi0xLjQK\r\n",
        "--b1--\r\n",
    );

    #[test]
    fn a_multipart_mail_normalises() {
        let message = normalize_mail(MULTIPART.as_bytes(), &brand(), 7, None).unwrap();
        assert_eq!(message.external_id, "m1@example.test");
        assert_eq!(message.thread_id, "m1@example.test");
        assert_eq!(message.in_reply_to, None);
        assert_eq!(message.kind, MessageKind::Email);
        assert_eq!(message.visibility, Visibility::Private);
        assert_eq!(message.direction, Direction::Inbound);
        assert!(message.addressed_to_brand);
        assert_eq!(message.author.handle, "jan@example.test");
        assert_eq!(message.author.display_name, "Jan de Vries");
        assert_eq!(message.subject.as_deref(), Some("Bestelling kwijt 😡"));
        assert!(
            message
                .text
                .starts_with("Hoi, mijn pakket is niet bezorgd 📦."),
            "{:?}",
            message.text
        );
        assert_eq!(message.created_at, 1_795_510_800_000);
        assert_eq!(message.attachments.len(), 1);
        let pdf = &message.attachments[0];
        assert_eq!(pdf.name.as_deref(), Some("factuur.pdf"));
        assert_eq!(pdf.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(pdf.size_bytes, Some(9));
        assert_eq!(pdf.kind, AttachmentKind::File);
        assert_eq!(
            message.property("reply_to"),
            Some("jan.private@example.test")
        );
        assert_eq!(message.property("from"), Some("jan@example.test"));
        assert_eq!(message.property("message_id"), Some("m1@example.test"));
    }

    #[test]
    fn threading_follows_references_then_in_reply_to() {
        let raw = include_bytes!("../../../tests/fixtures/email/chatwoot_references.eml");
        let message = normalize_mail(raw, &brand(), 7, None).unwrap();
        assert_eq!(
            message.external_id,
            "0CB459E0-0336-41DA-BC88-E6E28C697DDBF@chatwoot.com"
        );
        assert_eq!(
            message.thread_id,
            "4e6e35f5a38b4_479f13bb90078178@small-app-01.mail"
        );
        assert_eq!(
            message.in_reply_to.as_deref(),
            Some("4e6e35f5a38b4_479f13bb90078178@small-app-01.mail")
        );
        assert_eq!(
            message.property("references"),
            Some("<4e6e35f5a38b4_479f13bb90078178@small-app-01.mail> <test-in-reply-to>")
        );
        assert!(!message.addressed_to_brand, "no To header at all");
        assert_eq!(message.text, "References Email");
    }

    #[test]
    fn mails_from_the_brand_are_outbound() {
        let raw = "From: support@ACME.test\r\nTo: jan@example.test\r\nCc: care@acme.test\r\nIn-Reply-To: <m1@example.test>\r\nMessage-ID: <r1@acme.test>\r\nSubject: Re: x\r\n\r\nWe are on it.\r\n";
        let message = normalize_mail(raw.as_bytes(), &brand(), 7, None).unwrap();
        assert_eq!(message.direction, Direction::Outbound);
        assert!(message.addressed_to_brand, "the brand in Cc");
        assert_eq!(message.in_reply_to.as_deref(), Some("m1@example.test"));
        assert_eq!(message.thread_id, "m1@example.test");
        assert_eq!(message.created_at, 7, "no Date: the fallback");
    }

    #[test]
    fn legacy_charsets_and_html_only_mail_become_text() {
        let latin1 = b"From: a@b.test\r\nSubject: =?ISO-8859-1?Q?Caf=E9?=\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nIk wil graag een caf\xe9 cr\xe8me, d\xe1nk je.\r\n";
        let message = normalize_mail(latin1, &brand(), 7, None).unwrap();
        assert_eq!(message.text, "Ik wil graag een café crème, dánk je.");
        assert_eq!(message.subject.as_deref(), Some("Café"));
        assert!(message.external_id.starts_with("nomsgid-"));
        let again = normalize_mail(latin1, &brand(), 7, None).unwrap();
        assert_eq!(again.external_id, message.external_id, "stable hash id");

        let html = "From: a@b.test\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hallo <b>team</b> &amp; co,</p><p>\u{0645}\u{0631}\u{062d}\u{0628}\u{0627}</p></body></html>\r\n";
        let message = normalize_mail(html.as_bytes(), &brand(), 7, None).unwrap();
        assert!(
            message.text.contains("Hallo team & co,"),
            "{:?}",
            message.text
        );
        assert!(message.text.contains("مرحبا"), "{:?}", message.text);
        assert!(!message.text.contains('<'));
        assert!(
            message
                .html
                .as_deref()
                .is_some_and(|h| h.contains("<b>team</b>"))
        );

        let raw = include_bytes!(
            "../../../tests/fixtures/email/mailparser_thirdparty_010_rfc2047_utf8_b.eml"
        );
        let message = normalize_mail(raw, &brand(), 7, None).unwrap();
        assert_eq!(message.subject.as_deref(), Some("こんにちは"));
        assert_eq!(message.language.as_deref(), Some("ja"));
    }

    #[test]
    fn the_rfc_2046_sample_keeps_both_text_parts() {
        let raw =
            include_bytes!("../../../tests/fixtures/email/mailparser_rfc_005_multipart_mixed.eml");
        let message = normalize_mail(raw, &brand(), 7, None).unwrap();
        assert!(
            message
                .text
                .contains("This is implicitly typed plain US-ASCII text.")
        );
        assert!(
            message
                .text
                .contains("This is explicitly typed plain US-ASCII text.")
        );
        assert!(!message.text.contains("preamble"));
        assert!(message.attachments.is_empty());
    }

    #[test]
    fn huge_mails_are_metadata_only() {
        let header = "From: a@b.test\r\nTo: care@acme.test\r\nMessage-ID: <big@b.test>\r\nSubject: scan\r\n\r\n";
        let message =
            normalize_mail(header.as_bytes(), &brand(), 7, Some(30 * 1024 * 1024)).unwrap();
        assert_eq!(message.external_id, "big@b.test");
        assert!(message.text.contains("30720 KiB"), "{}", message.text);
        assert_eq!(message.property("truncated"), Some("true"));
    }

    #[test]
    fn non_mail_is_invalid_input() {
        for raw in [
            &b""[..],
            b"{\"json\": true}",
            b"<html>hi</html>",
            b"\r\n\r\nbody only",
        ] {
            let error = normalize_mail(raw, &brand(), 7, None).unwrap_err();
            assert!(matches!(error, Error::InvalidInput(_)), "{raw:?}");
        }
    }

    #[test]
    fn unreadable_stored_mail_becomes_a_note() {
        let message = unreadable_mail(3, 42, "INBOX", 9);
        assert_eq!(message.external_id, "imap-3-42");
        assert!(message.text.contains("UID 42"));
        assert_eq!(message.created_at, 9);
        assert_eq!(message.visibility, webcare_plugin::Visibility::Private);
    }

    #[test]
    fn long_reference_chains_are_trimmed_to_fit() {
        let ids: Vec<String> = (0..400).map(|i| format!("id{i:04}@example.test")).collect();
        let fitted = fit_references(&ids);
        assert!(fitted.len() <= MAX_PROPERTY_BYTES);
        assert!(fitted.starts_with("<id0000@example.test> "));
        assert!(fitted.ends_with("<id0399@example.test>"));
    }

    #[test]
    fn replies_thread_and_encode() {
        let spec = ReplySpec {
            from_address: "care@acme.test",
            from_name: Some("Acme Klantenservice"),
            to: "jan.private@example.test",
            subject: Some("Bestelling kwijt 😡"),
            in_reply_to: Some("m1@example.test"),
            references: Some("<root@example.test>"),
            idempotency_key: "case-1-reply-1",
            now_ms: 1_795_534_068_000,
            text: "Sorry Jan, we zoeken het uit! 📦\n.\nGroet",
        };
        let composed = compose_reply(&spec);
        assert_eq!(composed, compose_reply(&spec), "same key, same mail");
        assert!(composed.message_id.ends_with("@acme.test"));
        let text = String::from_utf8(composed.bytes.clone()).unwrap();
        assert!(
            text.contains("From: \"Acme Klantenservice\" <care@acme.test>\r\n"),
            "{text}"
        );
        assert!(text.contains("To: <jan.private@example.test>\r\n"));
        assert!(
            text.contains("Date: Tue, 24 Nov 2026 15:27:48 +0000\r\n"),
            "{text}"
        );
        assert!(text.contains("In-Reply-To: <m1@example.test>\r\n"));
        assert!(text.contains("References: <root@example.test> <m1@example.test>\r\n"));
        assert!(text.contains("Content-Transfer-Encoding: base64\r\n"));

        let parsed = normalize_mail(&composed.bytes, &brand(), 7, None).unwrap();
        assert_eq!(parsed.subject.as_deref(), Some("Re: Bestelling kwijt 😡"));
        assert_eq!(parsed.text, "Sorry Jan, we zoeken het uit! 📦\n.\nGroet");
        assert_eq!(parsed.external_id, composed.message_id);
        assert_eq!(parsed.thread_id, "root@example.test");
        assert_eq!(parsed.direction, Direction::Outbound);

        let again = compose_reply(&ReplySpec {
            subject: Some("RE: Bestelling"),
            idempotency_key: "case-1-reply-2",
            text: "plain",
            ..spec
        });
        let text = String::from_utf8(again.bytes).unwrap();
        assert!(text.contains("Subject: RE: Bestelling\r\n"), "{text}");
        assert!(text.contains("Content-Transfer-Encoding: 7bit\r\n"));
        assert_ne!(again.message_id, composed.message_id);
    }

    #[test]
    fn injected_ids_and_subjects_stay_inside_their_headers() {
        let composed = compose_reply(&ReplySpec {
            from_address: "care@acme.test",
            from_name: Some("Acme\r\nBcc: evil@example.test"),
            to: "jan@example.test",
            subject: Some("Hi\r\nBcc: evil@example.test"),
            in_reply_to: Some("x@y>\r\nBcc: evil@example.test"),
            references: Some("<ok@example.test> <bad\r\nBcc:@x>"),
            idempotency_key: "k",
            now_ms: 0,
            text: "t",
        });
        let text = String::from_utf8(composed.bytes).unwrap();
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(!text.contains("In-Reply-To"), "{text}");
    }

    #[test]
    fn dates_format_as_rfc_5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(951_782_400_000),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
        assert_eq!(rfc5322_date(-1000), "Wed, 31 Dec 1969 23:59:59 +0000");
    }
}
