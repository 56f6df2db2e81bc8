//! Constructors and small helpers on the contract's types, so connectors
//! need not spell out every field.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    ActionKind, ActionResult, ActionTarget, Attachment, AttachmentKind, Author, Batch, Direction,
    Engagement, Error, Feature, Message, MessageKind, Outgoing, PluginInfo, Removal, Result,
    SettingSpec, SettingType, TimestampMs, Visibility, WebhookOutcome, WebhookRequest,
    WebhookResponse,
};

/// The first value of `name` in a list of header-like pairs, comparing names
/// case-insensitively.
pub(crate) fn find_pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

impl Message {
    /// A message with the fields every channel knows, and defaults for the
    /// rest: visibility [`Visibility::Private`] for direct messages and
    /// e-mail and [`Visibility::Public`] otherwise, direction
    /// [`Direction::Inbound`], not addressed to the brand, no `in-reply-to`,
    /// HTML, subject, language or permalink, no attachments, unknown metrics
    /// and no properties. Set the public fields to change any of them.
    pub fn new(
        external_id: impl Into<String>,
        thread_id: impl Into<String>,
        kind: MessageKind,
        author: Author,
        text: impl Into<String>,
        created_at: TimestampMs,
    ) -> Self {
        let visibility = match kind {
            MessageKind::DirectMessage | MessageKind::Email => Visibility::Private,
            _ => Visibility::Public,
        };
        Self {
            external_id: external_id.into(),
            thread_id: thread_id.into(),
            in_reply_to: None,
            kind,
            visibility,
            direction: Direction::Inbound,
            addressed_to_brand: false,
            author,
            text: text.into(),
            html: None,
            subject: None,
            language: None,
            created_at,
            permalink: None,
            attachments: Vec::new(),
            metrics: Engagement::unknown(),
            properties: Vec::new(),
        }
    }

    /// The value of the property `name`, if the connector set one.
    pub fn property(&self, name: &str) -> Option<&str> {
        find_pair(&self.properties, name)
    }
}

impl Author {
    /// An author known by id and handle; the display name is `""` and the
    /// optional facts are unknown.
    pub fn new(id: impl Into<String>, handle: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            handle: handle.into(),
            display_name: String::new(),
            followers: None,
            verified: false,
            profile_url: None,
            email: None,
        }
    }
}

impl Attachment {
    /// An attachment of `kind` served at `url`, with no further metadata.
    pub fn new(kind: AttachmentKind, url: Option<String>) -> Self {
        Self {
            kind,
            url,
            mime_type: None,
            name: None,
            size_bytes: None,
            alt_text: None,
        }
    }
}

impl Engagement {
    /// No counter reported (all `None`, which is not zero).
    pub fn unknown() -> Self {
        Self {
            likes: None,
            shares: None,
            replies: None,
        }
    }
}

impl Removal {
    /// A removal of the message `external_id`, with no further facts.
    pub fn new(external_id: impl Into<String>) -> Self {
        Self {
            external_id: external_id.into(),
            thread_id: None,
            at: None,
            by: None,
        }
    }
}

impl Batch {
    /// A batch of new messages, without updates, keeping the host's cursor,
    /// with `has-more` false and no requested wait.
    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            messages,
            updates: Vec::new(),
            next_cursor: None,
            has_more: false,
            retry_after_ms: None,
        }
    }

    /// Nothing new; the cursor stays where it was.
    pub fn empty() -> Self {
        Self::new(Vec::new())
    }
}

impl WebhookRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_pair(&self.headers, name)
    }

    /// The first value of query parameter `name` (case-sensitive, decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON; a body that does not parse is invalid input.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|error| {
            Error::invalid_input(format!("webhook body is not the expected JSON: {error}"))
        })
    }
}

impl WebhookResponse {
    /// `200 OK` with an empty body.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// A response with status `status` and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into().into_bytes())
    }

    /// An `application/json` response with `value` serialised as its body.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Result<Self> {
        Ok(Self::status(status)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(value)?))
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

impl WebhookOutcome {
    /// An outcome that answers with `response` and reports nothing new.
    pub fn new(response: WebhookResponse) -> Self {
        Self {
            response,
            messages: Vec::new(),
            updates: Vec::new(),
        }
    }
}

impl ActionKind {
    /// The contract's name of this kind of action (`reply`, `private-reply`,
    /// `react`, `hide`, `unhide`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Reply(_) => "reply",
            Self::PrivateReply(_) => "private-reply",
            Self::React(_) => "react",
            Self::Hide => "hide",
            Self::Unhide => "unhide",
        }
    }
}

impl Outgoing {
    /// Plain text without attachments.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            attachments: Vec::new(),
        }
    }
}

impl ActionTarget {
    /// The value of the property `name` the connector attached to the target
    /// message, if any.
    pub fn property(&self, name: &str) -> Option<&str> {
        find_pair(&self.properties, name)
    }
}

impl ActionResult {
    /// The action created something on the channel with id `external_id`.
    pub fn created(external_id: impl Into<String>, permalink: Option<String>) -> Self {
        Self {
            external_id: Some(external_id.into()),
            permalink,
        }
    }

    /// The action succeeded without creating anything (a reaction, a hide).
    pub fn done() -> Self {
        Self {
            external_id: None,
            permalink: None,
        }
    }
}

impl PluginInfo {
    /// A plugin with no features and no settings yet; add them with
    /// [`feature`](Self::feature) and [`setting`](Self::setting). Pass
    /// `env!("CARGO_PKG_VERSION")` as `version`.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        channel: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            channel: channel.into(),
            description: description.into(),
            features: Vec::new(),
            settings: Vec::new(),
        }
    }

    /// Declares a feature the plugin offers.
    pub fn feature(mut self, feature: Feature) -> Self {
        self.features.push(feature);
        self
    }

    /// Declares a setting or secret the plugin reads.
    pub fn setting(mut self, setting: SettingSpec) -> Self {
        self.settings.push(setting);
        self
    }
}

impl SettingSpec {
    /// An optional, non-secret setting of type `setting_type` without default.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        setting_type: SettingType,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            setting_type,
            required: false,
            default_value: None,
            secret: false,
        }
    }

    /// A free-text setting.
    pub fn text(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, description, SettingType::Text)
    }

    /// A base-10 `i64` setting.
    pub fn integer(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, description, SettingType::Integer)
    }

    /// A `true`/`false` setting.
    pub fn boolean(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, description, SettingType::Boolean)
    }

    /// An absolute `http`/`https` URL setting.
    pub fn url(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, description, SettingType::Url)
    }

    /// A comma-separated list of texts.
    pub fn text_list(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, description, SettingType::TextList)
    }

    /// The host refuses to start the connector without this key.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The value the host uses when the operator gives none.
    pub fn default_value(mut self, value: impl Into<String>) -> Self {
        self.default_value = Some(value.into());
        self
    }

    /// A credential: given by reference, never logged, read with
    /// [`secrets`](crate::secrets) rather than [`settings`](crate::settings).
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_defaults_follow_the_kind() {
        let author = Author::new("1", "ann");
        let dm = Message::new(
            "m1",
            "t1",
            MessageKind::DirectMessage,
            author.clone(),
            "hi",
            5,
        );
        assert_eq!(dm.visibility, Visibility::Private);
        assert_eq!(dm.direction, Direction::Inbound);
        let post = Message::new("m2", "m2", MessageKind::Post, author, "hi", 5);
        assert_eq!(post.visibility, Visibility::Public);
        assert!(!post.addressed_to_brand);
        assert_eq!(post.metrics, Engagement::unknown());
    }

    #[test]
    fn setting_builders_compose() {
        let spec = SettingSpec::integer("page_size", "Items per page.").default_value("50");
        assert_eq!(spec.setting_type, SettingType::Integer);
        assert_eq!(spec.default_value.as_deref(), Some("50"));
        assert!(!spec.required && !spec.secret);
        let token = SettingSpec::text("api_token", "Token.").required().secret();
        assert!(token.required && token.secret);
    }

    #[test]
    fn webhook_helpers_find_headers_and_params() {
        let request = WebhookRequest {
            method: "GET".into(),
            path: String::new(),
            query: vec![("challenge".into(), "abc".into())],
            headers: vec![("x-feed-token".into(), "t".into())],
            body: Vec::new(),
        };
        assert_eq!(request.header("X-Feed-Token"), Some("t"));
        assert_eq!(request.query_param("challenge"), Some("abc"));
        assert_eq!(request.query_param("Challenge"), None);
        let response = WebhookResponse::json(200, &serde_json::json!({"ok": true})).unwrap();
        assert_eq!(response.body, br#"{"ok":true}"#);
        assert_eq!(
            find_pair(&response.headers, "Content-Type"),
            Some("application/json")
        );
    }
}
