//! The X API v2 JSON this connector reads, as serde types.
//!
//! Only the fields the connector uses are declared; X adds fields over time
//! and serde ignores the rest. Every optional field tolerates both absence
//! and `null`. Reference: <https://docs.x.com/x-api/fundamentals/data-dictionary>.

use serde::Deserialize;

/// A page of tweets: `GET /2/users/{id}/mentions`, `GET /2/tweets/search/recent`.
#[derive(Debug, Deserialize)]
pub struct TweetsResponse {
    /// Absent when the page is empty.
    #[serde(default)]
    pub data: Vec<Tweet>,
    #[serde(default)]
    pub includes: Includes,
    pub meta: Option<Meta>,
    /// Partial errors (X answers 200 with `errors` when, e.g., the user id
    /// does not exist).
    #[serde(default)]
    pub errors: Vec<Problem>,
}

/// A page of direct-message events: `GET /2/dm_events`.
#[derive(Debug, Deserialize)]
pub struct DmEventsResponse {
    #[serde(default)]
    pub data: Vec<DmEvent>,
    #[serde(default)]
    pub includes: Includes,
    pub meta: Option<Meta>,
    #[serde(default)]
    pub errors: Vec<Problem>,
}

/// Objects expanded by `expansions=`, joined to the page by id or key.
#[derive(Debug, Default, Deserialize)]
pub struct Includes {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub media: Vec<Media>,
}

/// Paging facts of a page.
#[derive(Debug, Default, Deserialize)]
pub struct Meta {
    pub newest_id: Option<String>,
    pub next_token: Option<String>,
}

/// One post ("tweet").
#[derive(Debug, Deserialize)]
pub struct Tweet {
    pub id: String,
    #[serde(default)]
    pub text: String,
    pub author_id: Option<String>,
    pub conversation_id: Option<String>,
    pub created_at: Option<String>,
    pub in_reply_to_user_id: Option<String>,
    #[serde(default)]
    pub referenced_tweets: Vec<ReferencedTweet>,
    pub lang: Option<String>,
    pub public_metrics: Option<TweetMetrics>,
    pub attachments: Option<TweetAttachments>,
    pub entities: Option<Entities>,
    /// Ids of every version of this post, oldest first; the last is this one.
    #[serde(default)]
    pub edit_history_tweet_ids: Vec<String>,
    /// The full text of a post longer than 280 characters.
    pub note_tweet: Option<NoteTweet>,
}

/// A post this one replies to, quotes or reposts.
#[derive(Debug, Deserialize)]
pub struct ReferencedTweet {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// Engagement counters of a post.
#[derive(Debug, Deserialize)]
pub struct TweetMetrics {
    pub like_count: Option<u64>,
    pub retweet_count: Option<u64>,
    pub reply_count: Option<u64>,
    pub quote_count: Option<u64>,
}

/// Media keys of a post or a direct message.
#[derive(Debug, Default, Deserialize)]
pub struct TweetAttachments {
    #[serde(default)]
    pub media_keys: Vec<String>,
}

/// Entities found in a post's text.
#[derive(Debug, Default, Deserialize)]
pub struct Entities {
    #[serde(default)]
    pub mentions: Vec<MentionEntity>,
    #[serde(default)]
    pub urls: Vec<UrlEntity>,
}

/// An @-mention in a post.
#[derive(Debug, Deserialize)]
pub struct MentionEntity {
    pub id: Option<String>,
    #[serde(default)]
    pub username: String,
}

/// A `t.co` link in a post and what it stands for.
#[derive(Debug, Deserialize)]
pub struct UrlEntity {
    pub url: String,
    pub expanded_url: Option<String>,
}

/// The long text of a post over 280 characters.
#[derive(Debug, Deserialize)]
pub struct NoteTweet {
    pub text: String,
}

/// An account, from `includes.users`.
#[derive(Debug, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub verified: bool,
    /// `blue`, `business`, `government` or `none` (newer than `verified`).
    pub verified_type: Option<String>,
    pub public_metrics: Option<UserMetrics>,
}

/// Counters of an account.
#[derive(Debug, Deserialize)]
pub struct UserMetrics {
    pub followers_count: Option<u64>,
}

/// A photo, video or GIF, from `includes.media`.
#[derive(Debug, Deserialize)]
pub struct Media {
    pub media_key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: Option<String>,
    pub preview_image_url: Option<String>,
    pub alt_text: Option<String>,
    #[serde(default)]
    pub variants: Vec<MediaVariant>,
}

/// One encoding of a video or GIF.
#[derive(Debug, Deserialize)]
pub struct MediaVariant {
    pub url: String,
    pub content_type: Option<String>,
    pub bit_rate: Option<u64>,
}

/// One direct-message event.
#[derive(Debug, Deserialize)]
pub struct DmEvent {
    pub id: String,
    /// `MessageCreate`, `ParticipantsJoin` or `ParticipantsLeave`.
    pub event_type: String,
    #[serde(default)]
    pub text: String,
    pub created_at: Option<String>,
    pub dm_conversation_id: Option<String>,
    pub sender_id: Option<String>,
    #[serde(default)]
    pub participant_ids: Vec<String>,
    pub attachments: Option<TweetAttachments>,
}

/// An X "problem" object: the body of 4xx answers and the items of `errors`.
#[derive(Debug, Default, Deserialize)]
pub struct Problem {
    pub title: Option<String>,
    pub detail: Option<String>,
    /// A URI such as `https://api.twitter.com/2/problems/client-forbidden`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `client-not-enrolled`, ... on `client-forbidden` problems.
    pub reason: Option<String>,
    /// The access level a `client-not-enrolled` App lacks.
    pub required_enrollment: Option<String>,
    /// Legacy v1.1-style error list some endpoints still send.
    #[serde(default)]
    pub errors: Vec<LegacyError>,
}

/// An item of a legacy `errors` list (`{"message": ..., "code": ...}`).
#[derive(Debug, Deserialize)]
pub struct LegacyError {
    pub message: Option<String>,
}

/// `POST /2/tweets` answer.
#[derive(Debug, Deserialize)]
pub struct CreatedTweet {
    pub data: CreatedTweetData,
}

/// The created post.
#[derive(Debug, Deserialize)]
pub struct CreatedTweetData {
    pub id: String,
}

/// `POST /2/dm_conversations/with/{participant_id}/messages` answer.
#[derive(Debug, Deserialize)]
pub struct CreatedDm {
    pub data: CreatedDmData,
}

/// The created direct message.
#[derive(Debug, Deserialize)]
pub struct CreatedDmData {
    pub dm_conversation_id: String,
    pub dm_event_id: String,
}

/// `POST /2/users/{id}/likes` answer.
#[derive(Debug, Deserialize)]
pub struct Liked {
    pub data: LikedData,
}

/// Whether the post is now liked.
#[derive(Debug, Deserialize)]
pub struct LikedData {
    pub liked: bool,
}
