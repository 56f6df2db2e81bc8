//! Discourse's post JSON and its normalisation into the contract's messages.
//!
//! Everything here is pure (no host imports), so it runs natively in unit
//! tests and benchmarks exactly as it runs inside the component.
//!
//! The same post serialisation arrives from three places: `GET /posts.json`
//! (`latest_posts`), `GET /private-posts.json` (`private_posts`) and webhook
//! bodies (`{"post": {...}}`), so one [`Post`] type and one normaliser serve
//! them all and a post gets the same `external_id` whichever way it came.

use serde::Deserialize;
use webcare_plugin::text::html_to_text;
use webcare_plugin::{
    Author, Direction, Engagement, Error, Message, MessageKind, Removal, Result, Visibility, time,
};

/// Discourse's `post_type` of an ordinary post (2 = moderator action,
/// 3 = small action such as "closed this topic", 4 = staff whisper).
const REGULAR_POST: u64 = 1;
/// The `actions_summary` id of a like.
const LIKE_ACTION: u64 = 2;

/// What decides which posts matter and how: the brand's account, its support
/// categories and the monitored keywords.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The forum's root URL, without a trailing slash (for permalinks).
    pub base_url: String,
    /// The brand's forum username, compared case-insensitively.
    pub brand_username: String,
    /// Categories whose every post is addressed to the brand.
    pub support_category_ids: Vec<u64>,
    /// Monitored keywords, lower-cased; a hit is proactive care.
    pub keywords: Vec<String>,
}

impl Rules {
    /// Rules with keywords lower-cased and a leading `@` and trailing `/`
    /// removed where operators tend to type them.
    pub fn new(
        base_url: &str,
        brand_username: &str,
        support_category_ids: Vec<u64>,
        keywords: &[String],
    ) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            brand_username: brand_username.trim().trim_start_matches('@').to_owned(),
            support_category_ids,
            keywords: keywords
                .iter()
                .map(|keyword| keyword.trim().to_lowercase())
                .filter(|keyword| !keyword.is_empty())
                .collect(),
        }
    }
}

/// One post as Discourse serialises it (`PostSerializer`; webhooks add
/// `topic_archetype` and `category_slug`). Missing fields and `null` mean
/// the same.
#[derive(Clone, Debug, Deserialize)]
pub struct Post {
    /// The post's id, unique across the forum.
    pub id: u64,
    /// The author's username.
    pub username: String,
    /// The author's full name, when the forum shows names.
    #[serde(default)]
    pub name: Option<String>,
    /// The author's user id (negative for the `system` user).
    #[serde(default)]
    pub user_id: Option<i64>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The rendered HTML.
    #[serde(default)]
    pub cooked: Option<String>,
    /// The Markdown source; only a string is used (some Discourse versions
    /// and plugins send other shapes).
    #[serde(default)]
    pub raw: Option<serde_json::Value>,
    /// Position of the post in its topic, from 1 (the opener).
    pub post_number: u64,
    /// `post_type`; see [`REGULAR_POST`].
    #[serde(default)]
    pub post_type: Option<u64>,
    /// The `post_number` this post answers, in the same topic.
    #[serde(default)]
    pub reply_to_post_number: Option<u64>,
    /// The author of the post this one answers.
    #[serde(default)]
    pub reply_to_user: Option<ReplyToUser>,
    /// Number of direct replies.
    #[serde(default)]
    pub reply_count: Option<u64>,
    /// The topic's id.
    pub topic_id: u64,
    /// The topic's URL slug.
    #[serde(default)]
    pub topic_slug: Option<String>,
    /// The topic's title.
    #[serde(default)]
    pub topic_title: Option<String>,
    /// `regular` or `private_message` (webhooks only).
    #[serde(default)]
    pub topic_archetype: Option<String>,
    /// The topic's category.
    #[serde(default)]
    pub category_id: Option<u64>,
    /// Edit count plus one.
    #[serde(default)]
    pub version: Option<u64>,
    /// Hidden after flags.
    #[serde(default)]
    pub hidden: bool,
    /// RFC 3339 time of deletion, when deleted.
    #[serde(default)]
    pub deleted_at: Option<String>,
    /// Counts per post action (likes, flags).
    #[serde(default)]
    pub actions_summary: Vec<ActionSummary>,
}

/// `reply_to_user` of a post.
#[derive(Clone, Debug, Deserialize)]
pub struct ReplyToUser {
    /// The username of the author answered.
    pub username: String,
}

/// One entry of `actions_summary`.
#[derive(Clone, Debug, Deserialize)]
pub struct ActionSummary {
    /// The action type (2 = like).
    pub id: u64,
    /// How many users did it.
    #[serde(default)]
    pub count: Option<u64>,
}

/// `GET /posts.json` or `GET /private-posts.json`.
#[derive(Deserialize)]
struct PostList {
    #[serde(default, alias = "private_posts")]
    latest_posts: Option<Vec<Post>>,
}

/// Parses a page of `GET /posts.json` (`latest_posts`) or
/// `GET /private-posts.json` (`private_posts`), newest first as Discourse
/// sends it. Malformed JSON, or a body with neither list, is invalid input.
pub fn parse_post_list(body: &[u8]) -> Result<Vec<Post>> {
    let list: PostList = serde_json::from_slice(body).map_err(|error| {
        Error::invalid_input(format!("Discourse post list is not valid: {error}"))
    })?;
    list.latest_posts.ok_or_else(|| {
        Error::invalid_input("Discourse post list has neither `latest_posts` nor `private_posts`")
    })
}

/// Why a post is reported, in order of precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relevance {
    /// Written by the brand: reported as outbound.
    Brand,
    /// A private message to the brand.
    Private,
    /// Names `@brand`.
    Mention,
    /// Answers one of the brand's posts.
    ReplyToBrand,
    /// Posted in a support category.
    SupportCategory,
    /// Contains a monitored keyword (proactive care).
    Keyword,
}

impl Post {
    /// The Markdown source, when Discourse sent it as a string.
    pub fn raw_text(&self) -> Option<&str> {
        self.raw.as_ref().and_then(serde_json::Value::as_str)
    }

    /// True for a post in a private message topic (`private` is set for
    /// posts read from `/private-posts.json`, which does not say).
    pub fn is_private(&self, private: bool) -> bool {
        private || self.topic_archetype.as_deref() == Some("private_message")
    }

    /// A signature of the post's changeable state (version, hidden,
    /// deleted), so a poll can tell whether it already reported a change.
    pub fn state_signature(&self) -> u64 {
        self.version.unwrap_or(1).saturating_mul(4)
            + 2 * u64::from(self.hidden)
            + u64::from(self.deleted_at.is_some())
    }

    /// The signature of a post as first written: version 1, visible.
    pub const ORIGINAL_SIGNATURE: u64 = 4;

    /// Why the post matters to the brand, or `None` when it does not (not
    /// reported: the connector monitors only what matters).
    pub fn relevance(&self, rules: &Rules, private: bool) -> Option<Relevance> {
        if self.post_type.is_some_and(|kind| kind != REGULAR_POST) {
            return None;
        }
        let brand = rules.brand_username.as_str();
        if !brand.is_empty() && self.username.eq_ignore_ascii_case(brand) {
            return Some(Relevance::Brand);
        }
        if self.is_private(private) {
            return Some(Relevance::Private);
        }
        let body = self
            .raw_text()
            .or(self.cooked.as_deref())
            .unwrap_or_default();
        if !brand.is_empty() && mentions(body, brand) {
            return Some(Relevance::Mention);
        }
        if self
            .reply_to_user
            .as_ref()
            .is_some_and(|user| !brand.is_empty() && user.username.eq_ignore_ascii_case(brand))
        {
            return Some(Relevance::ReplyToBrand);
        }
        if self
            .category_id
            .is_some_and(|category| rules.support_category_ids.contains(&category))
        {
            return Some(Relevance::SupportCategory);
        }
        if !rules.keywords.is_empty() {
            let haystack = format!(
                "{}\n{}",
                self.topic_title.as_deref().unwrap_or_default(),
                body
            )
            .to_lowercase();
            if rules
                .keywords
                .iter()
                .any(|keyword| haystack.contains(keyword.as_str()))
            {
                return Some(Relevance::Keyword);
            }
        }
        None
    }

    /// The contract's `thread_id` of the post: its topic.
    pub fn thread_id(&self) -> String {
        thread_id(self.topic_id)
    }

    /// The link that opens the post: `{base}/t/{slug}/{topic_id}/{post_number}`.
    pub fn permalink(&self, base_url: &str) -> String {
        permalink(
            base_url,
            self.topic_slug.as_deref(),
            self.topic_id,
            self.post_number,
        )
    }

    /// The post as a removal (for deletions and hides).
    pub fn removal(&self, at: Option<&str>) -> Removal {
        Removal {
            thread_id: Some(self.thread_id()),
            at: at.and_then(|text| time::parse_rfc3339(text).ok()),
            ..Removal::new(self.id.to_string())
        }
    }

    /// Normalises the post as it matters for `relevance` (from
    /// [`relevance`](Self::relevance)). `in_reply_to` is the post id of the
    /// answered post when the caller resolved `reply_to_post_number`.
    pub fn to_message(
        &self,
        rules: &Rules,
        relevance: Relevance,
        private: bool,
        in_reply_to: Option<u64>,
    ) -> Result<Message> {
        let created_at = time::parse_rfc3339(&self.created_at).map_err(|error| {
            Error::invalid_input(format!("Discourse post {}: {}", self.id, error.detail()))
        })?;
        let private = self.is_private(private);
        let kind = if private {
            MessageKind::DirectMessage
        } else if relevance == Relevance::Mention {
            MessageKind::Mention
        } else if self.post_number <= 1 {
            MessageKind::Post
        } else {
            MessageKind::Reply
        };
        let author = Author {
            display_name: self.name.clone().unwrap_or_default(),
            profile_url: Some(format!(
                "{}/u/{}",
                rules.base_url,
                webcare_plugin::http::encode_component(&self.username)
            )),
            ..Author::new(
                self.user_id
                    .map_or_else(|| self.username.clone(), |id| id.to_string()),
                self.username.clone(),
            )
        };
        let cooked = self.cooked.clone();
        let text = match (self.raw_text(), &cooked) {
            (Some(raw), _) => raw.trim().to_owned(),
            (None, Some(html)) => html_to_text(html),
            (None, None) => String::new(),
        };
        let likes = self
            .actions_summary
            .iter()
            .find(|action| action.id == LIKE_ACTION)
            .and_then(|action| action.count);
        let mut properties = vec![
            ("topic_id".to_owned(), self.topic_id.to_string()),
            ("post_number".to_owned(), self.post_number.to_string()),
            ("username".to_owned(), self.username.clone()),
        ];
        if let Some(slug) = &self.topic_slug {
            properties.push(("topic_slug".to_owned(), slug.clone()));
        }
        if let Some(title) = &self.topic_title {
            properties.push(("topic_title".to_owned(), title.clone()));
        }
        if let Some(category) = self.category_id {
            properties.push(("category_id".to_owned(), category.to_string()));
        }
        properties.push((
            "archetype".to_owned(),
            if private {
                "private_message"
            } else {
                "regular"
            }
            .to_owned(),
        ));
        properties.push(("relevance".to_owned(), relevance.name().to_owned()));
        Ok(Message {
            in_reply_to: in_reply_to.map(|id| id.to_string()),
            visibility: if private {
                Visibility::Private
            } else {
                Visibility::Public
            },
            direction: if relevance == Relevance::Brand {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            addressed_to_brand: !matches!(relevance, Relevance::Brand | Relevance::Keyword),
            html: cooked,
            subject: self.topic_title.clone(),
            permalink: Some(self.permalink(&rules.base_url)),
            metrics: Engagement {
                likes,
                shares: None,
                replies: self.reply_count,
            },
            properties,
            ..Message::new(
                self.id.to_string(),
                self.thread_id(),
                kind,
                author,
                text,
                created_at,
            )
        })
    }
}

impl Relevance {
    /// The name kept in the message's `relevance` property.
    pub fn name(self) -> &'static str {
        match self {
            Self::Brand => "brand",
            Self::Private => "private_message",
            Self::Mention => "mention",
            Self::ReplyToBrand => "reply_to_brand",
            Self::SupportCategory => "support_category",
            Self::Keyword => "keyword",
        }
    }
}

/// The contract's `thread_id` of topic `topic_id`.
pub fn thread_id(topic_id: u64) -> String {
    format!("topic:{topic_id}")
}

/// `{base}/t/{slug}/{topic_id}/{post_number}`; without a slug Discourse
/// redirects `{base}/t/{topic_id}/{post_number}` to the same place.
pub fn permalink(base_url: &str, slug: Option<&str>, topic_id: u64, post_number: u64) -> String {
    match slug.filter(|slug| !slug.is_empty()) {
        Some(slug) => format!("{base_url}/t/{slug}/{topic_id}/{post_number}"),
        None => format!("{base_url}/t/{topic_id}/{post_number}"),
    }
}

/// True when `text` names `@{username}` as a whole handle (not as the start
/// of a longer one such as `@acme_care_bot`), ignoring case.
pub fn mentions(text: &str, username: &str) -> bool {
    let needle = format!("@{}", username.to_lowercase());
    let haystack = text.to_lowercase();
    haystack.match_indices(&needle).any(|(at, found)| {
        let before_ok = haystack[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !is_handle_char(c));
        let after_ok = haystack[at + found.len()..]
            .chars()
            .next()
            // A `.` after the handle ends the sentence, not the name.
            .is_none_or(|c| c == '.' || !is_handle_char(c));
        before_ok && after_ok
    })
}

/// Characters Discourse allows inside a username.
fn is_handle_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Parses a page of `/posts.json` (or `/private-posts.json` when
/// `private`) and normalises its relevant posts into messages, oldest
/// first, as a first poll reports them. Replies are linked to the posts
/// they answer when those are on the same page. Deleted posts are left out.
pub fn normalize_posts(body: &[u8], rules: &Rules, private: bool) -> Result<Vec<Message>> {
    let posts = parse_post_list(body)?;
    let mut messages = Vec::with_capacity(posts.len());
    for post in posts.iter().rev() {
        if post.deleted_at.is_some() {
            continue;
        }
        if let Some(relevance) = post.relevance(rules, private) {
            let in_reply_to = post
                .reply_to_post_number
                .and_then(|number| post_id_by_number(&posts, post.topic_id, number));
            messages.push(post.to_message(rules, relevance, private, in_reply_to)?);
        }
    }
    Ok(messages)
}

/// The id of post `post_number` of topic `topic_id` among `posts`.
pub fn post_id_by_number(posts: &[Post], topic_id: u64, post_number: u64) -> Option<u64> {
    posts
        .iter()
        .find(|post| post.topic_id == topic_id && post.post_number == post_number)
        .map(|post| post.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORUM: &str = include_str!("../../../tests/fixtures/discourse/forum_posts.json");
    const UPSTREAM: &str = include_str!("../../../tests/fixtures/discourse/posts_latest.json");
    const PRIVATE: &str = include_str!("../../../tests/fixtures/discourse/private_posts.json");

    fn rules() -> Rules {
        Rules::new(
            "https://forum.example/",
            "@Acme_Care",
            vec![7],
            &["Acme Router".to_owned(), " ".to_owned()],
        )
    }

    #[test]
    fn mentions_need_the_whole_handle() {
        assert!(mentions("@acme_care help", "acme_care"));
        assert!(mentions("Hoi @ACME_CARE.", "acme_care"));
        assert!(mentions("(@acme_care)", "acme_care"));
        assert!(!mentions("@acme_care_bot help", "acme_care"));
        assert!(!mentions("mail me at jan@acme_care", "acme_care"));
        assert!(!mentions("acme_care", "acme_care"));
    }

    #[test]
    fn rules_normalise_operator_input() {
        let rules = rules();
        assert_eq!(rules.base_url, "https://forum.example");
        assert_eq!(rules.brand_username, "Acme_Care");
        assert_eq!(rules.keywords, ["acme router"]);
    }

    #[test]
    fn a_page_keeps_only_what_matters_oldest_first() {
        let messages = normalize_posts(FORUM.as_bytes(), &rules(), false).unwrap();
        let ids: Vec<&str> = messages.iter().map(|m| m.external_id.as_str()).collect();
        assert_eq!(ids, ["101", "102", "104", "105", "106", "109"]);
        let relevance: Vec<Option<&str>> =
            messages.iter().map(|m| m.property("relevance")).collect();
        assert_eq!(
            relevance,
            [
                Some("support_category"),
                Some("keyword"),
                Some("mention"),
                Some("brand"),
                Some("reply_to_brand"),
                Some("keyword")
            ]
        );
        let answer = &messages[3];
        assert_eq!(answer.direction, Direction::Outbound);
        assert_eq!(answer.in_reply_to.as_deref(), Some("101"));
        assert_eq!(
            answer.permalink.as_deref(),
            Some("https://forum.example/t/router-valt-steeds-uit-na-update/41/2")
        );
        assert!(messages.iter().all(|m| m.properties.len() <= 32));
        // The upstream sample has nothing for the brand.
        assert!(
            normalize_posts(UPSTREAM.as_bytes(), &rules(), false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn private_messages_are_private_and_reactive() {
        let messages = normalize_posts(PRIVATE.as_bytes(), &rules(), true).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].kind, MessageKind::DirectMessage);
        assert_eq!(messages[0].visibility, Visibility::Private);
        assert!(messages[0].addressed_to_brand);
    }

    #[test]
    fn raw_of_another_shape_falls_back_to_cooked() {
        let body =
            br#"{"latest_posts":[{"id":1,"username":"u","created_at":"2020-01-27T11:32:03.646Z",
            "cooked":"<p>Some @acme_care text &amp; more</p>","post_number":2,"topic_id":57,
            "raw":[{"type":"paragraph"}]}]}"#;
        let messages = normalize_posts(body, &rules(), false).unwrap();
        assert_eq!(messages[0].text, "Some @acme_care text & more");
        assert_eq!(
            messages[0].permalink.as_deref(),
            Some("https://forum.example/t/57/2")
        );
    }

    #[test]
    fn malformed_pages_are_invalid_input() {
        for body in [
            &b""[..],
            b"{",
            b"{}",
            br#"{"latest_posts":[{"id":"x"}]}"#,
            br#"{"latest_posts":[{"id":1,"username":"u","created_at":"yesterday","post_number":1,"topic_id":2,"raw":"@acme_care"}]}"#,
        ] {
            let error = normalize_posts(body, &rules(), false).unwrap_err();
            assert!(matches!(error, Error::InvalidInput(_)), "{error:?}");
        }
    }
}
