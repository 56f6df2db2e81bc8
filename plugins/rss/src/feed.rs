//! RSS 2.0, RSS 1.0 (RDF) and Atom 1.0 parsing with quick-xml's pull
//! reader, and the normalisation of feed items into the contract's
//! messages.
//!
//! Everything here is pure (no host imports), so it runs natively in unit
//! tests and benchmarks exactly as it runs inside the component.
//!
//! Elements are recognised by namespace and local name, so prefixes do not
//! matter (`dc:creator` and `dublin:creator` are the same when both are
//! bound to Dublin Core). Text, CDATA sections and character or predefined
//! entity references are joined; an undefined entity such as `&nbsp;`
//! (invalid XML, common in feeds) is kept as written, so the HTML converter
//! decodes it. The whole document must be well-formed: any XML error fails
//! the whole feed, there is no partial result.

use quick_xml::NsReader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use webcare_plugin::{
    Attachment, AttachmentKind, Author, Error, Message, MessageKind, Result, TimestampMs,
};

use crate::date::parse_feed_date;
use webcare_plugin::text::html_to_text;

const ATOM: &[u8] = b"http://www.w3.org/2005/Atom";
const RSS1: &[u8] = b"http://purl.org/rss/1.0/";
const RDF: &[u8] = b"http://www.w3.org/1999/02/22-rdf-syntax-ns#";
const DC: &[u8] = b"http://purl.org/dc/elements/1.1/";
const CONTENT: &[u8] = b"http://purl.org/rss/1.0/modules/content/";
const WFW: &[u8] = b"http://wellformedweb.org/CommentAPI/";
const THREAD: &[u8] = b"http://purl.org/syndication/thread/1.0";
const MEDIA: &[u8] = b"http://search.yahoo.com/mrss/";

/// The longest value kept in one message property, in bytes.
const MAX_PROPERTY_BYTES: usize = 4096;

/// Which syndication format a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RSS 2.0 (and 0.9x): `<rss><channel><item>`.
    Rss2,
    /// RSS 1.0: `<rdf:RDF><item>`.
    Rdf,
    /// Atom 1.0: `<feed><entry>`.
    Atom,
}

impl Format {
    /// The name kept in the `feed_format` property.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rss2 => "rss",
            Self::Rdf => "rdf",
            Self::Atom => "atom",
        }
    }
}

/// A parsed feed.
#[derive(Clone, Debug)]
pub struct Feed {
    /// The document's format.
    pub format: Format,
    /// The feed's language (RSS `<language>`, Atom `xml:lang`), if given.
    pub language: Option<String>,
    /// The items (entries), in document order.
    pub items: Vec<Item>,
}

/// How a text construct is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Markup {
    /// Plain text.
    #[default]
    Text,
    /// HTML, escaped or in CDATA (RSS descriptions, Atom `type="html"`).
    Html,
    /// Inline XHTML markup (Atom `type="xhtml"`), kept as HTML.
    Xhtml,
}

/// One item or entry as the feed wrote it.
#[derive(Clone, Debug, Default)]
pub struct Item {
    /// Atom `<id>`.
    pub atom_id: Option<String>,
    /// RSS `<guid>`.
    pub guid: Option<String>,
    /// `<title>` and how it is written.
    pub title: Option<(String, Markup)>,
    /// RSS `<link>` or Atom `<link rel="alternate">`.
    pub link: Option<String>,
    /// RSS `<description>`.
    pub description: Option<String>,
    /// `<content:encoded>`.
    pub encoded: Option<String>,
    /// Atom `<summary>`.
    pub summary: Option<(String, Markup)>,
    /// Atom `<content>`.
    pub content: Option<(String, Markup)>,
    /// `<dc:creator>`, Atom `<author><name>`, or RSS `<author>`.
    pub author: Option<String>,
    /// Atom `<author><uri>`.
    pub author_uri: Option<String>,
    /// RSS `<pubDate>`, Atom `<published>` or `<dc:date>`.
    pub published: Option<String>,
    /// Atom `<updated>`.
    pub updated: Option<String>,
    /// `<category>` texts or Atom `term`s, `<dc:subject>`.
    pub categories: Vec<String>,
    /// Enclosures, Atom `rel="enclosure"` links and `media:content`.
    pub attachments: Vec<Attachment>,
    /// RSS `<comments>`: the page with the item's comments.
    pub comments: Option<String>,
    /// `<wfw:commentRss>`: the feed of the item's comments.
    pub comment_feed: Option<String>,
    /// `<thr:in-reply-to ref="...">`: the id of the item this one answers.
    pub in_reply_to: Option<String>,
}

/// What a captured element's text is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Title(Markup),
    Link,
    Guid,
    Id,
    Description,
    Encoded,
    Summary(Markup),
    Content(Markup),
    Author,
    AuthorName,
    AuthorUri,
    Published,
    Updated,
    Category,
    Comments,
    CommentFeed,
    Language,
}

/// The text being collected for a field.
struct Capture {
    field: Field,
    depth: usize,
    text: String,
}

/// The namespace of an element, as far as feeds care.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ns {
    /// No namespace (RSS 2.0) or RSS 1.0's.
    Plain,
    Atom,
    Rdf,
    Dc,
    Content,
    Wfw,
    Thread,
    Media,
    Other,
}

fn ns_of(resolved: &ResolveResult<'_>) -> Ns {
    match resolved {
        ResolveResult::Unbound => Ns::Plain,
        ResolveResult::Bound(Namespace(uri)) => match *uri {
            ATOM => Ns::Atom,
            RSS1 => Ns::Plain,
            RDF => Ns::Rdf,
            DC => Ns::Dc,
            CONTENT => Ns::Content,
            WFW => Ns::Wfw,
            THREAD => Ns::Thread,
            MEDIA => Ns::Media,
            _ => Ns::Other,
        },
        ResolveResult::Unknown(_) => Ns::Other,
    }
}

/// Parses a feed document. Anything that is not well-formed XML, or whose
/// root is not `<rss>`, `<rdf:RDF>` or an Atom `<feed>`, is invalid input.
pub fn parse_feed(body: &[u8]) -> Result<Feed> {
    let mut reader = NsReader::from_reader(body);
    let mut format = None;
    let mut language = None;
    let mut items = Vec::new();
    let mut item: Option<(Item, usize)> = None;
    let mut author_depth: Option<usize> = None;
    let mut capture: Option<Capture> = None;
    let mut depth = 0_usize;

    loop {
        let position = reader.buffer_position();
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|error| malformed(position, &error))?;
        let ns = ns_of(&resolved);
        match event {
            Event::Start(start) if capture.is_some() => {
                // Markup inside a field: only XHTML content keeps it.
                depth += 1;
                if let Some(capture) = capture.as_mut() {
                    push_xhtml_tag(capture, &start, false, position)?;
                }
            }
            Event::Empty(start) if capture.is_some() => {
                if let Some(capture) = capture.as_mut() {
                    push_xhtml_tag(capture, &start, true, position)?;
                }
            }
            Event::Start(start) => {
                depth += 1;
                let local = start.local_name();
                let local = local.as_ref();
                if format.is_none() {
                    format = Some(root_format(ns, local)?);
                    if let Some(lang) = attribute(&start, b"lang", position)? {
                        language = Some(lang);
                    }
                    continue;
                }
                if let Some((current, item_depth)) = item.as_mut() {
                    // Only direct children describe the item: an Atom
                    // `<source>` repeats `id`, `title` and `updated` of
                    // the feed the entry was copied from.
                    let child = depth == *item_depth + 1;
                    if child && ns == Ns::Atom && local == b"author" {
                        author_depth = Some(depth);
                        continue;
                    }
                    let in_author = author_depth.is_some_and(|at| depth == at + 1);
                    if (child || in_author)
                        && let Some(field) = item_field(ns, local, in_author, &start, position)?
                    {
                        capture = Some(Capture {
                            field,
                            depth,
                            text: String::new(),
                        });
                    } else if child || ns == Ns::Media {
                        item_attributes(current, ns, local, &start, position)?;
                    }
                } else if is_item(ns, local) {
                    item = Some((Item::default(), depth));
                } else if ns == Ns::Plain && local == b"language" {
                    capture = Some(Capture {
                        field: Field::Language,
                        depth,
                        text: String::new(),
                    });
                }
            }
            Event::Empty(start) => {
                let local = start.local_name();
                if format.is_none() {
                    return Err(Error::invalid_input("the feed document is empty"));
                }
                if let Some((current, item_depth)) = item.as_mut()
                    && (depth == *item_depth || ns == Ns::Media)
                {
                    item_attributes(current, ns, local.as_ref(), &start, position)?;
                }
            }
            Event::End(end) => {
                if let Some(done) = capture.take_if(|c| c.depth == depth) {
                    let text = done.text;
                    match item.as_mut() {
                        Some((current, _)) => store(current, done.field, text),
                        None if done.field == Field::Language => {
                            language = Some(text.trim().to_owned()).filter(|l| !l.is_empty());
                        }
                        None => {}
                    }
                } else if let Some(capture) = capture.as_mut() {
                    if capture.field.is_xhtml() {
                        capture.text.push_str("</");
                        capture
                            .text
                            .push_str(&String::from_utf8_lossy(end.local_name().as_ref()));
                        capture.text.push('>');
                    }
                } else if author_depth == Some(depth) {
                    author_depth = None;
                } else if let Some((done, _)) = item.take_if(|(_, at)| *at == depth) {
                    items.push(done);
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(text) => {
                if let Some(capture) = capture.as_mut() {
                    let text = text.decode().map_err(|error| malformed(position, &error))?;
                    capture.text.push_str(&text);
                }
            }
            Event::CData(data) => {
                if let Some(capture) = capture.as_mut() {
                    let text = data.decode().map_err(|error| malformed(position, &error))?;
                    capture.text.push_str(&text);
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(capture) = capture.as_mut() {
                    push_reference(&mut capture.text, &reference, position)?;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let Some(format) = format else {
        return Err(Error::invalid_input("the feed document is empty"));
    };
    if depth != 0 {
        return Err(Error::invalid_input(
            "the feed ends before all its elements are closed (truncated?)",
        ));
    }
    Ok(Feed {
        format,
        language,
        items,
    })
}

/// Keeps a tag met inside an XHTML text construct, with its `href`;
/// markup inside any other field is dropped (its text is kept).
fn push_xhtml_tag(
    capture: &mut Capture,
    start: &BytesStart<'_>,
    empty: bool,
    position: u64,
) -> Result<()> {
    if !capture.field.is_xhtml() {
        return Ok(());
    }
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    capture.text.push('<');
    capture.text.push_str(&name);
    if let Some(href) = attribute(start, b"href", position)? {
        capture.text.push_str(" href=\"");
        capture.text.push_str(&href.replace('"', "&quot;"));
        capture.text.push('"');
    }
    capture.text.push_str(if empty { "/>" } else { ">" });
    Ok(())
}

impl Field {
    /// True for an Atom text construct written as inline XHTML.
    fn is_xhtml(self) -> bool {
        matches!(
            self,
            Self::Content(Markup::Xhtml)
                | Self::Summary(Markup::Xhtml)
                | Self::Title(Markup::Xhtml)
        )
    }
}

/// The format named by the root element.
fn root_format(ns: Ns, local: &[u8]) -> Result<Format> {
    match (ns, local) {
        (Ns::Plain, b"rss") => Ok(Format::Rss2),
        (Ns::Rdf, b"RDF") => Ok(Format::Rdf),
        (Ns::Atom, b"feed") => Ok(Format::Atom),
        _ => Err(Error::invalid_input(format!(
            "not an RSS or Atom feed: the root element is <{}>",
            String::from_utf8_lossy(local)
        ))),
    }
}

/// True for the element that holds one item.
fn is_item(ns: Ns, local: &[u8]) -> bool {
    matches!((ns, local), (Ns::Plain, b"item") | (Ns::Atom, b"entry"))
}

/// The field an element inside an item carries as text, if any.
fn item_field(
    ns: Ns,
    local: &[u8],
    in_author: bool,
    start: &BytesStart<'_>,
    position: u64,
) -> Result<Option<Field>> {
    let markup = || -> Result<Markup> {
        Ok(match attribute(start, b"type", position)?.as_deref() {
            Some("html" | "text/html") => Markup::Html,
            Some("xhtml" | "application/xhtml+xml") => Markup::Xhtml,
            _ => Markup::Text,
        })
    };
    Ok(Some(match (ns, local) {
        (Ns::Plain, b"title") => Field::Title(Markup::Text),
        (Ns::Plain, b"link") => Field::Link,
        (Ns::Plain, b"guid") => Field::Guid,
        (Ns::Plain, b"description") => Field::Description,
        (Ns::Plain, b"author") => Field::Author,
        (Ns::Plain, b"pubDate") => Field::Published,
        (Ns::Plain, b"category") => Field::Category,
        (Ns::Plain, b"comments") => Field::Comments,
        (Ns::Dc, b"creator") => Field::Author,
        (Ns::Dc, b"date") => Field::Published,
        (Ns::Dc, b"subject") => Field::Category,
        (Ns::Content, b"encoded") => Field::Encoded,
        (Ns::Wfw, b"commentRss") => Field::CommentFeed,
        (Ns::Atom, b"name") if in_author => Field::AuthorName,
        (Ns::Atom, b"uri") if in_author => Field::AuthorUri,
        (Ns::Atom, b"id") => Field::Id,
        (Ns::Atom, b"title") => Field::Title(markup()?),
        (Ns::Atom, b"summary") => Field::Summary(markup()?),
        (Ns::Atom, b"content") => Field::Content(markup()?),
        (Ns::Atom, b"published") => Field::Published,
        (Ns::Atom, b"updated") => Field::Updated,
        _ => return Ok(None),
    }))
}

/// Facts an item element carries in attributes (links, enclosures,
/// categories, threading).
fn item_attributes(
    item: &mut Item,
    ns: Ns,
    local: &[u8],
    start: &BytesStart<'_>,
    position: u64,
) -> Result<()> {
    let get = |name: &[u8]| attribute(start, name, position);
    match (ns, local) {
        (Ns::Plain, b"enclosure") => {
            if let Some(url) = get(b"url")? {
                let mime = get(b"type")?;
                item.attachments.push(Attachment {
                    size_bytes: get(b"length")?.and_then(|length| length.parse().ok()),
                    ..attachment(url, mime, None)
                });
            }
        }
        (Ns::Atom, b"link") => {
            let Some(href) = get(b"href")? else {
                return Ok(());
            };
            match get(b"rel")?.as_deref() {
                None | Some("alternate") => {
                    item.link.get_or_insert(href);
                }
                Some("enclosure") => {
                    let mime = get(b"type")?;
                    item.attachments.push(Attachment {
                        size_bytes: get(b"length")?.and_then(|length| length.parse().ok()),
                        name: get(b"title")?,
                        ..attachment(href, mime, None)
                    });
                }
                Some("replies") => {
                    if get(b"type")?.is_some_and(|t| t.contains("xml")) {
                        item.comment_feed.get_or_insert(href);
                    } else {
                        item.comments.get_or_insert(href);
                    }
                }
                _ => {}
            }
        }
        (Ns::Atom, b"category") => {
            if let Some(term) = get(b"label")?.or(get(b"term")?) {
                item.categories.push(term);
            }
        }
        (Ns::Thread, b"in-reply-to") => {
            if let Some(reference) = get(b"ref")? {
                item.in_reply_to = Some(reference);
            }
        }
        (Ns::Media, b"content") => {
            if let Some(url) = get(b"url")? {
                let medium = get(b"medium")?;
                item.attachments.push(Attachment {
                    size_bytes: get(b"fileSize")?.and_then(|size| size.parse().ok()),
                    ..attachment(url, get(b"type")?, medium.as_deref())
                });
            }
        }
        _ => {}
    }
    Ok(())
}

/// An attachment at `url`, its kind from the MIME type or the media medium.
fn attachment(url: String, mime: Option<String>, medium: Option<&str>) -> Attachment {
    let kind_of = |text: &str| {
        if text.starts_with("image") {
            AttachmentKind::Image
        } else if text.starts_with("video") {
            AttachmentKind::Video
        } else if text.starts_with("audio") {
            AttachmentKind::Audio
        } else {
            AttachmentKind::File
        }
    };
    let kind = medium
        .or(mime.as_deref())
        .map_or(AttachmentKind::File, kind_of);
    Attachment {
        mime_type: mime,
        ..Attachment::new(kind, Some(url))
    }
}

/// Stores the text collected for `field`.
fn store(item: &mut Item, field: Field, text: String) {
    let trimmed = || text.trim().to_owned();
    match field {
        Field::Title(markup) => item.title = Some((trimmed(), markup)),
        Field::Link => {
            let link = trimmed();
            if !link.is_empty() {
                item.link = Some(link);
            }
        }
        Field::Guid => item.guid = Some(trimmed()),
        Field::Id => item.atom_id = Some(trimmed()),
        Field::Description => item.description = Some(text),
        Field::Encoded => item.encoded = Some(text),
        Field::Summary(markup) => item.summary = Some((text, markup)),
        Field::Content(markup) => item.content = Some((text, markup)),
        Field::Author | Field::AuthorName => item.author = Some(trimmed()),
        Field::AuthorUri => item.author_uri = Some(trimmed()),
        Field::Published => item.published = Some(trimmed()),
        Field::Updated => item.updated = Some(trimmed()),
        Field::Category => {
            let category = trimmed();
            if !category.is_empty() {
                item.categories.push(category);
            }
        }
        Field::Comments => item.comments = Some(trimmed()),
        Field::CommentFeed => item.comment_feed = Some(trimmed()),
        Field::Language => {}
    }
}

/// Appends what a `&...;` reference stands for.
fn push_reference(text: &mut String, reference: &BytesRef<'_>, position: u64) -> Result<()> {
    if reference.is_char_ref() {
        match reference.resolve_char_ref() {
            Ok(Some(c)) => text.push(c),
            Ok(None) | Err(_) => {
                return Err(Error::invalid_input(format!(
                    "the feed is not well-formed XML near byte {position}: a character reference names no character"
                )));
            }
        }
        return Ok(());
    }
    let name = reference
        .decode()
        .map_err(|error| malformed(position, &error))?;
    match resolve_predefined_entity(&name) {
        Some(replacement) => text.push_str(replacement),
        None => {
            text.push('&');
            text.push_str(&name);
            text.push(';');
        }
    }
    Ok(())
}

/// The value of the attribute with local name `name`, unescaped.
fn attribute(start: &BytesStart<'_>, name: &[u8], position: u64) -> Result<Option<String>> {
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|error| malformed(position, &error))?;
        if attribute.key.local_name().as_ref() == name {
            let value = attribute
                .unescape_value()
                .map_err(|error| malformed(position, &error))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// The error for XML that does not parse.
fn malformed(position: u64, error: &dyn std::fmt::Display) -> Error {
    Error::invalid_input(format!(
        "the feed is not well-formed XML near byte {position}: {error}"
    ))
}

impl Item {
    /// The item's stable id: Atom `id`, else RSS `guid`, else `link`, else
    /// `hash:` and a hash of title and publication date.
    pub fn id(&self) -> String {
        let nonempty = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        nonempty(&self.atom_id)
            .or_else(|| nonempty(&self.guid))
            .or_else(|| nonempty(&self.link))
            .unwrap_or_else(|| {
                let title = self.title.as_ref().map_or("", |(title, _)| title.as_str());
                let date = self.published.as_deref().unwrap_or_default();
                format!(
                    "hash:{:016x}",
                    fnv1a(&[title.as_bytes(), b"\n", date.as_bytes()])
                )
            })
    }

    /// A fingerprint of the item's version: its Atom `updated` when given,
    /// else a hash of title and body, so a changed item can be told apart.
    pub fn version(&self) -> u64 {
        match &self.updated {
            Some(updated) => fnv1a(&[b"updated:", updated.as_bytes()]),
            None => {
                let title = self.title.as_ref().map_or("", |(title, _)| title.as_str());
                let (body, _) = self.body().unwrap_or_default();
                fnv1a(&[title.as_bytes(), b"\n", body.as_bytes()])
            }
        }
    }

    /// The richest body: `content:encoded`, Atom `content`, `description`,
    /// Atom `summary`.
    fn body(&self) -> Option<(&str, Markup)> {
        if let Some(html) = &self.encoded {
            return Some((html, Markup::Html));
        }
        if let Some((text, markup)) = &self.content {
            return Some((text, *markup));
        }
        if let Some(html) = &self.description {
            return Some((html, Markup::Html));
        }
        self.summary
            .as_ref()
            .map(|(text, markup)| (text.as_str(), *markup))
    }

    /// When the item was written: `pubDate`/`published`/`dc:date`, else
    /// `updated`; `None` when neither parses.
    pub fn created_at(&self) -> Option<TimestampMs> {
        self.published
            .as_deref()
            .and_then(parse_feed_date)
            .or_else(|| self.updated.as_deref().and_then(parse_feed_date))
    }

    /// The item as a message. `now_ms` stands in for an item without a
    /// usable date.
    pub fn to_message(
        &self,
        format: Format,
        language: Option<&str>,
        addressed_to_brand: bool,
        now_ms: TimestampMs,
    ) -> Message {
        let id = self.id();
        let (text, html) = match self.body() {
            Some((body, Markup::Html | Markup::Xhtml)) => {
                (html_to_text(body), Some(body.trim().to_owned()))
            }
            Some((body, Markup::Text)) => (body.trim().to_owned(), None),
            None => (String::new(), None),
        };
        let subject = self.title.as_ref().map(|(title, markup)| match markup {
            Markup::Text => title.clone(),
            Markup::Html | Markup::Xhtml => html_to_text(title),
        });
        let (handle, display_name) = author_names(self.author.as_deref().unwrap_or_default());
        let author = Author {
            display_name,
            profile_url: self.author_uri.clone(),
            ..Author::new(
                self.author_uri
                    .clone()
                    .filter(|uri| !uri.is_empty())
                    .unwrap_or_else(|| {
                        if handle.is_empty() {
                            "anonymous".to_owned()
                        } else {
                            handle.clone()
                        }
                    }),
                handle,
            )
        };
        let mut properties = vec![("feed_format".to_owned(), format.name().to_owned())];
        let mut add = |key: &str, value: Option<String>| {
            if let Some(value) = value.filter(|v| !v.is_empty() && v.len() <= MAX_PROPERTY_BYTES) {
                properties.push((key.to_owned(), value));
            }
        };
        add("categories", Some(self.categories.join(", ")));
        add("comments_url", self.comments.clone());
        add("comments_feed", self.comment_feed.clone());
        add("updated", self.updated.clone());
        Message {
            in_reply_to: self.in_reply_to.clone(),
            addressed_to_brand,
            html,
            subject,
            language: language.map(str::to_owned),
            permalink: self.link.clone(),
            attachments: self.attachments.clone(),
            properties,
            ..Message::new(
                id.clone(),
                self.in_reply_to.clone().unwrap_or(id),
                if self.in_reply_to.is_some() {
                    MessageKind::Comment
                } else {
                    MessageKind::Post
                },
                author,
                text,
                self.created_at().unwrap_or(now_ms),
            )
        }
    }
}

/// Handle and display name from an author field: `Jan`, or RSS's
/// `jan@example.com (Jan de Vries)`.
fn author_names(author: &str) -> (String, String) {
    let author = author.trim();
    if let Some((address, rest)) = author.split_once(" (")
        && let Some(name) = rest.strip_suffix(')')
    {
        return (address.trim().to_owned(), name.trim().to_owned());
    }
    (author.to_owned(), author.to_owned())
}

/// 64-bit FNV-1a over `parts`: a stable hash (unlike `std`'s, which may
/// change between Rust releases) for ids and versions kept in cursors.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Parses `body` and normalises every item into a message, oldest first,
/// as a first poll with an unlimited backfill reports them.
pub fn normalize_feed(
    body: &[u8],
    addressed_to_brand: bool,
    now_ms: TimestampMs,
) -> Result<Vec<Message>> {
    let feed = parse_feed(body)?;
    let mut messages: Vec<Message> = feed
        .items
        .iter()
        .map(|item| {
            item.to_message(
                feed.format,
                feed.language.as_deref(),
                addressed_to_brand,
                now_ms,
            )
        })
        .collect();
    messages.sort_by_key(|message| message.created_at);
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use webcare_plugin::{Direction, Visibility};

    const RSS: &str = include_str!("../../../tests/fixtures/rss/forum_latest.rss");
    const ATOM: &str = include_str!("../../../tests/fixtures/rss/blog.atom");
    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn rss_items_normalise() {
        let feed = parse_feed(RSS.as_bytes()).unwrap();
        assert_eq!(feed.format, Format::Rss2);
        assert_eq!(feed.language.as_deref(), Some("nl"));
        assert_eq!(feed.items.len(), 3);
        let messages = normalize_feed(RSS.as_bytes(), false, NOW).unwrap();
        let ids: Vec<&str> = messages.iter().map(|m| m.external_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "community.acme.example-topic-41",
                "community.acme.example-topic-43",
                "community.acme.example-topic-47"
            ],
            "oldest first"
        );
        let qa = &messages[2];
        assert_eq!(
            qa.subject.as_deref(),
            Some("Q&A: welke router voor glasvezel? 🤔")
        );
        assert_eq!(qa.created_at, 1_795_167_000_000, "10:30 +0100 is 09:30Z");
        assert_eq!(qa.author.handle, "pieter");
        assert_eq!(qa.kind, MessageKind::Post);
        assert_eq!(qa.visibility, Visibility::Public);
        assert_eq!(qa.direction, Direction::Inbound);
        assert!(!qa.addressed_to_brand);
        assert!(
            qa.text.starts_with(
                "Ik stap over op glasvezel & twijfel tussen de X2 en de X3. Ervaringen? 🙏"
            ),
            "{}",
            qa.text
        );
        assert!(qa.html.as_deref().unwrap().starts_with("<p>Ik stap over"));
        assert_eq!(qa.thread_id, qa.external_id);
        assert_eq!(
            qa.permalink.as_deref(),
            Some("https://community.acme.example/t/q-a-welke-router-voor-glasvezel/47")
        );
        assert_eq!(qa.property("categories"), Some("Algemeen, Glasvezel"));
        assert_eq!(qa.language.as_deref(), Some("nl"));
        let hebrew = &messages[1];
        assert!(
            hebrew.text.starts_with("ההזמנה שלי לא הגיעה עדיין 😟"),
            "{}",
            hebrew.text
        );
        let router = &messages[0];
        assert_eq!(router.attachments.len(), 1);
        assert_eq!(router.attachments[0].kind, AttachmentKind::Image);
        assert_eq!(router.attachments[0].size_bytes, Some(48_213));
    }

    #[test]
    fn atom_entries_normalise() {
        let feed = parse_feed(ATOM.as_bytes()).unwrap();
        assert_eq!(feed.format, Format::Atom);
        assert_eq!(feed.language.as_deref(), Some("nl"));
        let messages = normalize_feed(ATOM.as_bytes(), true, NOW).unwrap();
        assert_eq!(messages.len(), 2);
        let review = &messages[0];
        assert_eq!(review.external_id, "tag:blog.example.nl,2026:post-812");
        assert_eq!(
            review.subject.as_deref(),
            Some("Review: de Acme Router X2 na een maand")
        );
        assert_eq!(
            review.text,
            "Een maand met de Acme Router X2: snel, stil 👍, maar de app kan beter.\nPrijs: €129 — eerlijk."
        );
        assert!(review.addressed_to_brand);
        assert_eq!(review.author.display_name, "Marloes van Dijk");
        assert_eq!(review.author.id, "https://blog.example.nl/over-mij");
        assert_eq!(
            review.created_at, 1_795_114_800_000,
            "20:00 +01:00 is 19:00Z"
        );
        assert_eq!(
            review.permalink.as_deref(),
            Some("https://blog.example.nl/2026/11/acme-router-x2-review")
        );
        assert_eq!(review.attachments[0].kind, AttachmentKind::Audio);
        assert_eq!(review.attachments[0].name.as_deref(), Some("Podcastversie"));
        assert_eq!(
            review.property("comments_feed"),
            Some("https://blog.example.nl/2026/11/acme-router-x2-review/comments.atom")
        );
        assert_eq!(review.property("categories"), Some("Routers"));

        let comment = &messages[1];
        assert_eq!(comment.kind, MessageKind::Comment);
        assert_eq!(comment.thread_id, "tag:blog.example.nl,2026:post-812");
        assert_eq!(
            comment.in_reply_to.as_deref(),
            Some("tag:blog.example.nl,2026:post-812")
        );
        assert!(
            comment
                .text
                .contains("Bij mij valt de wifi 's nachts weg. Iemand een idee? مرحبا 🙂"),
            "{}",
            comment.text
        );
        assert!(
            comment
                .html
                .as_deref()
                .unwrap()
                .contains("<a href=\"https://blog.example.nl/forum\">")
        );
    }

    #[test]
    fn rss1_and_fallback_ids() {
        let rdf = r#"<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://x.example/"><title>X</title></channel>
  <item rdf:about="https://x.example/1"><title>Eén</title><link>https://x.example/1</link>
    <description>Hallo &amp;amp; welkom</description><dc:creator>Kees</dc:creator><dc:date>2026-11-20T09:15:00Z</dc:date></item>
  <item><title>Zonder link</title><description>x</description></item>
</rdf:RDF>"#;
        let feed = parse_feed(rdf.as_bytes()).unwrap();
        assert_eq!(feed.format, Format::Rdf);
        assert_eq!(feed.items[0].id(), "https://x.example/1");
        assert!(feed.items[1].id().starts_with("hash:"));
        assert_eq!(feed.items[1].id(), feed.items[1].clone().id(), "stable");
        let message = feed.items[0].to_message(feed.format, None, false, NOW);
        assert_eq!(message.text, "Hallo & welkom");
        assert_eq!(message.author.handle, "Kees");
        assert_eq!(message.created_at, 1_795_166_100_000);
        let undated = feed.items[1].to_message(feed.format, None, false, NOW);
        assert_eq!(undated.created_at, NOW);
        assert_eq!(undated.author.id, "anonymous");
    }

    #[test]
    fn an_atom_source_does_not_override_the_entry() {
        let atom = r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry>
            <id>urn:entry:1</id><title>Mine</title><updated>2026-11-20T09:15:00Z</updated>
            <link href="https://x.example/1"/>
            <source><id>urn:feed:other</id><title>Other feed</title>
              <link rel="alternate" href="https://other.example/"/>
              <updated>2020-01-01T00:00:00Z</updated></source>
          </entry></feed>"#;
        let feed = parse_feed(atom.as_bytes()).unwrap();
        let item = &feed.items[0];
        assert_eq!(item.id(), "urn:entry:1");
        assert_eq!(item.title.as_ref().map(|(t, _)| t.as_str()), Some("Mine"));
        assert_eq!(item.link.as_deref(), Some("https://x.example/1"));
        assert_eq!(item.created_at(), Some(1_795_166_100_000));
    }

    #[test]
    fn rss_author_addresses_split() {
        assert_eq!(
            author_names("jan@example.com (Jan de Vries)"),
            ("jan@example.com".to_owned(), "Jan de Vries".to_owned())
        );
        assert_eq!(author_names(" Eva "), ("Eva".to_owned(), "Eva".to_owned()));
    }

    #[test]
    fn versions_change_with_content() {
        let feed = parse_feed(RSS.as_bytes()).unwrap();
        let before = feed.items[0].version();
        let changed = RSS.replace("Ervaringen?", "Ervaringen, iemand?");
        let after = parse_feed(changed.as_bytes()).unwrap().items[0].version();
        assert_ne!(before, after);
        assert_eq!(
            before,
            parse_feed(RSS.as_bytes()).unwrap().items[0].version()
        );
    }

    #[test]
    fn malformed_documents_are_invalid_input() {
        for body in [
            "",
            "   ",
            "<rss><channel><item><title>x</title></channel></rss>",
            "<rss><channel><item><title>x</title></item>",
            "<html><body>Not a feed</body></html>",
            "<rss><channel><item><title>a &#xD800; b</title></item></channel></rss>",
            "{\"json\": true}",
        ] {
            let error = parse_feed(body.as_bytes()).unwrap_err();
            assert!(matches!(error, Error::InvalidInput(_)), "{body}: {error:?}");
        }
    }
}
