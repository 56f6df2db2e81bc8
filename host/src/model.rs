//! The host's own, version-independent picture of the contract.
//!
//! Every supported WIT version converts its generated bindings into these
//! types (see [`crate::runtime::bindings`]), so the rest of the host — the
//! queue, the scheduler, the CLI — never depends on one contract version.
//! Field names follow the WIT records with `-` replaced by `_`; that is also
//! their JSON form.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
pub type TimestampMs = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Mention,
    Comment,
    Reply,
    DirectMessage,
    Post,
    Email,
    Review,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub followers: Option<u64>,
    pub verified: bool,
    pub profile_url: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    Video,
    Audio,
    File,
    Link,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub url: Option<String>,
    pub mime_type: Option<String>,
    pub name: Option<String>,
    pub size_bytes: Option<u64>,
    pub alt_text: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engagement {
    pub likes: Option<u64>,
    pub shares: Option<u64>,
    pub replies: Option<u64>,
}

/// One normalised message, as a connector reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub external_id: String,
    pub thread_id: String,
    pub in_reply_to: Option<String>,
    pub kind: MessageKind,
    pub visibility: Visibility,
    pub direction: Direction,
    pub addressed_to_brand: bool,
    pub author: Author,
    pub text: String,
    pub html: Option<String>,
    pub subject: Option<String>,
    pub language: Option<String>,
    pub created_at: TimestampMs,
    pub permalink: Option<String>,
    pub attachments: Vec<Attachment>,
    pub metrics: Engagement,
    pub properties: Vec<(String, String)>,
}

impl Message {
    /// Bytes this message occupies in the host, roughly: used to enforce the
    /// output cap without serialising.
    pub fn approx_size(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let a = &self.author;
        self.external_id.len()
            + self.thread_id.len()
            + opt(&self.in_reply_to)
            + a.id.len()
            + a.handle.len()
            + a.display_name.len()
            + opt(&a.profile_url)
            + opt(&a.email)
            + self.text.len()
            + opt(&self.html)
            + opt(&self.subject)
            + opt(&self.language)
            + opt(&self.permalink)
            + self
                .attachments
                .iter()
                .map(|x| opt(&x.url) + opt(&x.mime_type) + opt(&x.name) + opt(&x.alt_text) + 16)
                .sum::<usize>()
            + self
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + 128
    }
}

/// Which message a deletion, hide or unhide is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub external_id: String,
    pub thread_id: Option<String>,
    pub at: Option<TimestampMs>,
    pub by: Option<String>,
}

/// A change to a message the host may already hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "update", content = "message")]
pub enum MessageUpdate {
    Edited(Box<Message>),
    Deleted(Removal),
    Hidden(Removal),
    Unhidden(Removal),
}

impl MessageUpdate {
    /// The `external_id` of the message this update is about.
    pub fn external_id(&self) -> &str {
        match self {
            MessageUpdate::Edited(m) => &m.external_id,
            MessageUpdate::Deleted(r) | MessageUpdate::Hidden(r) | MessageUpdate::Unhidden(r) => {
                &r.external_id
            }
        }
    }
}

/// The result of one poll.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub messages: Vec<Message>,
    pub updates: Vec<MessageUpdate>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
    pub retry_after_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes_as_text")]
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes_as_text")]
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookOutcome {
    pub response: WebhookResponse,
    pub messages: Vec<Message>,
    pub updates: Vec<MessageUpdate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionTarget {
    pub external_id: String,
    pub thread_id: String,
    pub kind: MessageKind,
    pub visibility: Visibility,
    pub author: Author,
    pub created_at: TimestampMs,
    pub last_inbound_at: Option<TimestampMs>,
    pub subject: Option<String>,
    pub properties: Vec<(String, String)>,
}

impl ActionTarget {
    /// The target an action on `message` gets: the message as the host
    /// stored it, plus when the customer last wrote in its thread (`None`
    /// when unknown; an inbound message's own time is the usual answer).
    pub fn of_message(message: &Message, last_inbound_at: Option<TimestampMs>) -> ActionTarget {
        ActionTarget {
            external_id: message.external_id.clone(),
            thread_id: message.thread_id.clone(),
            kind: message.kind,
            visibility: message.visibility,
            author: message.author.clone(),
            created_at: message.created_at,
            last_inbound_at,
            subject: message.subject.clone(),
            properties: message.properties.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    pub text: String,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum ActionKind {
    Reply(Outgoing),
    PrivateReply(Outgoing),
    React(String),
    Hide,
    Unhide,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub idempotency_key: String,
    pub kind: ActionKind,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub external_id: Option<String>,
    pub permalink: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    Poll,
    Webhook,
    Reply,
    PrivateReply,
    React,
    Hide,
    Unhide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingType {
    Text,
    Integer,
    Boolean,
    Url,
    TextList,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingSpec {
    pub name: String,
    pub description: String,
    pub setting_type: SettingType,
    pub required: bool,
    pub default_value: Option<String>,
    pub secret: bool,
}

impl SettingSpec {
    /// Checks `value` against the declared type; the error says what was expected.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        match self.setting_type {
            SettingType::Text | SettingType::TextList => Ok(()),
            SettingType::Integer => value
                .trim()
                .parse::<i64>()
                .map(|_| ())
                .map_err(|_| format!("expected an integer, got {value:?}")),
            SettingType::Boolean => match value {
                "true" | "false" => Ok(()),
                _ => Err(format!("expected true or false, got {value:?}")),
            },
            SettingType::Url => match url::Url::parse(value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
                _ => Err(format!("expected an absolute http(s) URL, got {value:?}")),
            },
        }
    }
}

/// What a plugin says about itself in `describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub channel: String,
    pub description: String,
    pub features: Vec<Feature>,
    pub settings: Vec<SettingSpec>,
}

/// A connector's own account of a failure (the WIT `connector-error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ConnectorError {
    #[error("rate limited, retry after {retry_after_ms} ms: {detail}")]
    RateLimited { retry_after_ms: u64, detail: String },
    #[error("{}: {detail}{}", if *expired { "credentials expired" } else { "unauthorized" }, missing_scope.as_ref().map(|s| format!(" (missing scope: {s})")).unwrap_or_default())]
    Unauthorized {
        detail: String,
        expired: bool,
        missing_scope: Option<String>,
    },
    #[error("transient failure: {detail}")]
    Transient { detail: String },
    #[error("invalid input: {detail}")]
    InvalidInput { detail: String },
    #[error("unsupported: {detail}")]
    Unsupported { detail: String },
    #[error("not allowed by the channel: {detail}")]
    NotAllowed { detail: String },
}

/// Bodies are bytes in the contract; in JSON they show as text when they are
/// UTF-8 (the common case) and as an array of numbers otherwise.
mod serde_bytes_as_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => text.serialize(s),
            Err(_) => bytes.serialize(s),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrBytes {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(match TextOrBytes::deserialize(d)? {
            TextOrBytes::Text(t) => t.into_bytes(),
            TextOrBytes::Bytes(b) => b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_validation_names_what_was_expected() {
        let spec = |t| SettingSpec {
            name: "n".into(),
            description: String::new(),
            setting_type: t,
            required: false,
            default_value: None,
            secret: false,
        };
        assert!(spec(SettingType::Integer).validate("42").is_ok());
        assert!(
            spec(SettingType::Integer)
                .validate("4x")
                .unwrap_err()
                .contains("integer")
        );
        assert!(spec(SettingType::Boolean).validate("yes").is_err());
        assert!(spec(SettingType::Url).validate("https://api.x.com").is_ok());
        assert!(spec(SettingType::Url).validate("ftp://x").is_err());
        assert!(spec(SettingType::Url).validate("/relative").is_err());
    }

    #[test]
    fn message_update_json_names_the_update() {
        let u = MessageUpdate::Deleted(Removal {
            external_id: "1".into(),
            thread_id: None,
            at: None,
            by: None,
        });
        let json = serde_json::to_string(&u).unwrap();
        assert!(json.contains(r#""update":"deleted""#), "{json}");
        assert_eq!(u.external_id(), "1");
    }
}

/// A setting or secret that does not fit a plugin's declared schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct SettingError {
    /// The setting or secret name.
    pub key: String,
    pub problem: String,
}

impl PluginInfo {
    /// Checks operator-given settings and secret names against the schema
    /// the plugin declared, and fills in defaults. Every problem is reported,
    /// each naming its key.
    pub fn apply_settings<'a>(
        &self,
        settings: &std::collections::BTreeMap<String, String>,
        secret_names: impl IntoIterator<Item = &'a str>,
    ) -> Result<std::collections::BTreeMap<String, String>, Vec<SettingError>> {
        let secret_names: std::collections::BTreeSet<&str> = secret_names.into_iter().collect();
        let mut errors = Vec::new();
        let mut resolved = std::collections::BTreeMap::new();
        let err = |key: &str, problem: String| SettingError {
            key: key.to_string(),
            problem,
        };
        for key in settings.keys() {
            match self.settings.iter().find(|s| &s.name == key) {
                None => errors.push(err(key, format!("unknown setting; {} declares: {}", self.name, self.declared(false)))),
                Some(spec) if spec.secret => errors.push(err(
                    key,
                    "is a secret: give it under `secrets` by reference (env or file), not as a setting".into(),
                )),
                Some(_) => {}
            }
        }
        for key in &secret_names {
            match self.settings.iter().find(|s| s.name == *key) {
                None => errors.push(err(
                    key,
                    format!(
                        "unknown secret; {} declares: {}",
                        self.name,
                        self.declared(true)
                    ),
                )),
                Some(spec) if !spec.secret => errors.push(err(
                    key,
                    "is a setting, not a secret: give it under `settings`".into(),
                )),
                Some(_) => {}
            }
        }
        for spec in &self.settings {
            if spec.secret {
                if spec.required && !secret_names.contains(spec.name.as_str()) {
                    errors.push(err(
                        &spec.name,
                        format!("required secret is missing ({})", spec.description),
                    ));
                }
                continue;
            }
            let value = settings.get(&spec.name).or(spec.default_value.as_ref());
            match value {
                Some(v) => match spec.validate(v) {
                    Ok(()) => {
                        resolved.insert(spec.name.clone(), v.clone());
                    }
                    Err(problem) => errors.push(err(&spec.name, problem)),
                },
                None if spec.required => errors.push(err(
                    &spec.name,
                    format!("required setting is missing ({})", spec.description),
                )),
                None => {}
            }
        }
        if errors.is_empty() {
            Ok(resolved)
        } else {
            Err(errors)
        }
    }

    fn declared(&self, secret: bool) -> String {
        let names: Vec<&str> = self
            .settings
            .iter()
            .filter(|s| s.secret == secret)
            .map(|s| s.name.as_str())
            .collect();
        if names.is_empty() {
            "(none)".into()
        } else {
            names.join(", ")
        }
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;
    use std::collections::BTreeMap;

    fn info() -> PluginInfo {
        let spec = |name: &str, t, required, default: Option<&str>, secret| SettingSpec {
            name: name.into(),
            description: format!("the {name}"),
            setting_type: t,
            required,
            default_value: default.map(str::to_string),
            secret,
        };
        PluginInfo {
            name: "demo".into(),
            version: "1.0.0".into(),
            channel: "test".into(),
            description: String::new(),
            features: vec![Feature::Poll],
            settings: vec![
                spec("base_url", SettingType::Url, true, None, false),
                spec("page_size", SettingType::Integer, false, Some("50"), false),
                spec("api_token", SettingType::Text, true, None, true),
            ],
        }
    }

    #[test]
    fn fills_defaults_and_accepts_good_input() {
        let given = BTreeMap::from([(
            "base_url".to_string(),
            "https://api.example.com".to_string(),
        )]);
        let resolved = info().apply_settings(&given, ["api_token"]).unwrap();
        assert_eq!(resolved["page_size"], "50");
        assert!(!resolved.contains_key("api_token"));
    }

    #[test]
    fn names_every_bad_key() {
        let given = BTreeMap::from([
            ("page_size".to_string(), "many".to_string()),
            ("colour".to_string(), "blue".to_string()),
            ("api_token".to_string(), "inline!".to_string()),
        ]);
        let errors = info().apply_settings(&given, ["nope"]).unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        for k in ["colour", "api_token", "nope", "base_url", "page_size"] {
            assert!(keys.contains(&k), "{k} missing from {errors:?}");
        }
    }
}
