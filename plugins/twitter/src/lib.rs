//! # X (Twitter) connector
//!
//! Brings a brand's X (API v2) traffic into webcare and carries agents'
//! answers back:
//!
//! - `poll` reads three streams, each with its own position in the cursor
//!   ([`poll`] explains the paging and the rate-limit handling): mentions of
//!   the brand account (reactive care), a recent-search query (keyword
//!   monitoring, proactive care) and direct messages (private).
//! - `perform` posts public replies, sends DMs (private replies) and likes
//!   posts ([`actions`]).
//! - [`normalize_tweets`] and [`normalize_dm_events`] turn X's JSON into the
//!   contract's messages. They are pure, so they are unit-tested natively
//!   and benchmarked against the Wasm build.
//!
//! Settings and the mapping to the contract are documented in the crate's
//! `README.md`.

#![warn(missing_docs)]

pub mod actions;
mod api;
mod config;
pub mod deletions;
pub mod errors;
pub mod normalize;
pub mod poll;
pub mod token;

pub use normalize::{Brand, DmPage, TweetPage, TweetStream, normalize_dm_events, normalize_tweets};

use webcare_plugin::{
    Action, ActionResult, ActionTarget, Batch, Connector, Feature, PluginInfo, Result, SettingSpec,
};

/// The connector. It holds no data: every call reads its settings afresh,
/// because the host may run each call on a fresh instance.
pub struct TwitterConnector;

impl Connector for TwitterConnector {
    fn describe() -> PluginInfo {
        // Only build data here: `describe` must not call any host import.
        PluginInfo::new(
            "twitter",
            env!("CARGO_PKG_VERSION"),
            "twitter",
            "X (Twitter) API v2: mentions, keyword search and direct messages; replies, DMs and likes",
        )
        .feature(Feature::Poll)
        .feature(Feature::Reply)
        .feature(Feature::PrivateReply)
        .feature(Feature::React)
        .setting(
            SettingSpec::url(
                "api_base_url",
                "Root URL of the X API (change only for a proxy or a test double).",
            )
            .default_value(config::DEFAULT_API_BASE_URL),
        )
        .setting(
            SettingSpec::text(
                "brand_user_id",
                "The brand account's numeric X user id; its posts and DMs are outbound.",
            )
            .required(),
        )
        .setting(
            SettingSpec::text(
                "brand_username",
                "The brand account's @-handle (without @), for permalinks of replies.",
            )
            .required(),
        )
        .setting(SettingSpec::text(
            "search_query",
            "Recent-search query to monitor (keywords, hashtags); empty: no keyword monitoring.",
        ))
        .setting(
            SettingSpec::boolean(
                "direct_messages",
                "Read the brand's direct messages (needs a user-context token with dm.read).",
            )
            .default_value("true"),
        )
        .setting(
            SettingSpec::integer("page_size", "Results per request, 5 to 100.")
                .default_value(config::DEFAULT_PAGE_SIZE.to_string()),
        )
        .setting(
            SettingSpec::integer(
                "deletion_check_seconds",
                "Seconds between look-ups of the last 100 delivered posts, to report \
                 deleted ones; 0: never.",
            )
            .default_value(config::DEFAULT_DELETION_CHECK_SECONDS.to_string()),
        )
        .setting(SettingSpec::text(
            "oauth_client_id",
            "The app's OAuth 2.0 client id, to renew user-context tokens with \
             `oauth_refresh_token` (instead of a fixed `bearer_token`).",
        ))
        .setting(
            SettingSpec::text(
                "bearer_token",
                "OAuth 2.0 bearer token (user context for DMs and actions); not needed \
                 with `oauth_client_id` and `oauth_refresh_token`.",
            )
            .secret(),
        )
        .setting(
            SettingSpec::text(
                "oauth_refresh_token",
                "Refresh token of the brand account's authorisation (scope offline.access); \
                 the connector renews access tokens with it and keeps the rotated one.",
            )
            .secret(),
        )
        .setting(
            SettingSpec::text(
                "oauth_client_secret",
                "Client secret of a confidential OAuth 2.0 client (sent as HTTP Basic).",
            )
            .secret(),
        )
    }

    fn poll(cursor: Option<String>) -> Result<Batch> {
        poll::poll(cursor).inspect_err(forget_refused_token)
    }

    fn perform(action: Action, target: ActionTarget) -> Result<ActionResult> {
        actions::perform(action, target).inspect_err(forget_refused_token)
    }
}

webcare_plugin::export!(TwitterConnector);

/// After a 401, a kept (renewed) access token is dropped, so the next call
/// renews it instead of sending the refused one again.
fn forget_refused_token(error: &webcare_plugin::Error) {
    if matches!(error, webcare_plugin::Error::Unauthorized(_)) {
        token::forget_access_token();
    }
}
