//! The connector's settings and secret, read and checked once per call.

use webcare_plugin::{Error, Result, clock, secrets, settings};

/// Where X's API lives unless `api_base_url` says otherwise.
pub const DEFAULT_API_BASE_URL: &str = "https://api.twitter.com";
/// The page size unless `page_size` says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Seconds between deletion checks unless `deletion_check_seconds` says otherwise.
pub const DEFAULT_DELETION_CHECK_SECONDS: i64 = 900;

/// Settings of this connector for this brand.
pub struct Config {
    /// API root without a trailing slash.
    pub base_url: String,
    /// The brand account's numeric id.
    pub brand_user_id: String,
    /// The brand account's handle without `@`.
    pub brand_username: String,
    /// The recent-search query to monitor, if any.
    pub search_query: Option<String>,
    /// Whether to read direct messages.
    pub direct_messages: bool,
    /// `max_results` per request (5..=100).
    pub page_size: u32,
    /// Milliseconds between deletion checks of recent posts; 0: never.
    pub deletion_check_ms: i64,
    /// The access token for this call (see [`crate::token`]).
    pub token: String,
    /// The token is renewed with an OAuth 2.0 refresh token.
    pub refreshes: bool,
}

impl Config {
    /// Reads and checks the settings and the `bearer_token` secret.
    pub fn load() -> Result<Self> {
        let base_url = settings::get("api_base_url")
            .unwrap_or_else(|| DEFAULT_API_BASE_URL.to_owned())
            .trim()
            .trim_end_matches('/')
            .to_owned();
        let brand_user_id = settings::require("brand_user_id")?.trim().to_owned();
        if brand_user_id.is_empty() || !brand_user_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid_input(format!(
                "setting `brand_user_id` must be the brand account's numeric X user id, not \
                 `{brand_user_id}`"
            )));
        }
        let brand_username = settings::require("brand_username")?
            .trim()
            .trim_start_matches('@')
            .to_owned();
        if brand_username.is_empty() {
            return Err(Error::invalid_input(
                "setting `brand_username` must be the brand's @-handle",
            ));
        }
        let search_query = settings::get("search_query")
            .map(|query| query.trim().to_owned())
            .filter(|query| !query.is_empty());
        let direct_messages = match settings::get("direct_messages") {
            Some(_) => settings::parse("direct_messages")?,
            None => true,
        };
        let page_size = match settings::get("page_size") {
            Some(_) => settings::parse::<i64>("page_size")?,
            None => i64::from(DEFAULT_PAGE_SIZE),
        };
        let page_size = u32::try_from(page_size)
            .ok()
            .filter(|size| (5..=100).contains(size))
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "setting `page_size` must be between 5 and 100 (X's limits), not {page_size}"
                ))
            })?;
        let deletion_check_seconds = match settings::get("deletion_check_seconds") {
            Some(_) => settings::parse::<i64>("deletion_check_seconds")?,
            None => DEFAULT_DELETION_CHECK_SECONDS,
        };
        if deletion_check_seconds < 0 {
            return Err(Error::invalid_input(format!(
                "setting `deletion_check_seconds` must be 0 (off) or a number of seconds, not \
                 {deletion_check_seconds}"
            )));
        }
        let oauth = crate::token::OAuthClient::from_settings()?;
        Ok(Self {
            deletion_check_ms: deletion_check_seconds.saturating_mul(1000),
            brand_user_id,
            brand_username,
            search_query,
            direct_messages,
            page_size,
            refreshes: oauth.is_some(),
            token: match &oauth {
                Some(client) => crate::token::access_token(client, &base_url, clock::now_ms())?,
                None => secrets::get("bearer_token")
                    .filter(|token| !token.is_empty())
                    .ok_or_else(|| {
                        Error::invalid_input(
                            "the secret `bearer_token` is missing: give an OAuth 2.0 bearer \
                             token, or `oauth_client_id` with the secret `oauth_refresh_token`",
                        )
                    })?,
            },
            base_url,
        })
    }

    /// The brand, as the normalisation code wants it.
    pub fn brand(&self) -> crate::Brand<'_> {
        crate::Brand {
            user_id: &self.brand_user_id,
            username: &self.brand_username,
        }
    }
}
