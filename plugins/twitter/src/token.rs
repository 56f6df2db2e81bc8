//! The access token for X's API: a fixed `bearer_token`, or — for a
//! user-context OAuth 2.0 grant, whose access tokens live two hours — one
//! kept fresh with the refresh token.
//!
//! With `oauth_client_id` and the `oauth_refresh_token` secret configured,
//! the connector exchanges the refresh token at `POST /2/oauth2/token`
//! (`grant_type=refresh_token`; HTTP Basic with the client secret for a
//! confidential client, else `client_id` in the form) and keeps the access
//! token, its expiry and the **rotated** refresh token in its state (X
//! refresh tokens are single-use: the configured one is only the seed). The
//! access token is renewed ahead of its expiry, so a healthy connector
//! never meets a 401; a refused refresh (a revoked grant, a reused refresh
//! token) is an expired-credentials error for an operator to fix, and a 401
//! from the API drops the kept access token so the next call refreshes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use webcare_plugin::http::Request;
use webcare_plugin::{Error, Result, log, secrets, settings, state};

/// State key of the kept tokens.
pub const STATE_KEY: &str = "oauth2_tokens";

/// Renew this long before the access token expires (at most half its life).
const RENEW_AHEAD_MS: i64 = 5 * 60 * 1000;

/// The OAuth 2.0 client and seed refresh token, when configured.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// The app's OAuth 2.0 client id.
    pub client_id: String,
    /// The client secret of a confidential client.
    pub client_secret: Option<String>,
    /// The configured refresh token: used until X issues the next one.
    pub seed_refresh_token: String,
}

impl OAuthClient {
    /// From the settings and secrets; `None` when no refresh is configured.
    pub fn from_settings() -> Result<Option<OAuthClient>> {
        let client_id = settings::get("oauth_client_id")
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        let refresh = secrets::get("oauth_refresh_token").filter(|t| !t.is_empty());
        match (client_id, refresh) {
            (Some(client_id), Some(seed_refresh_token)) => Ok(Some(OAuthClient {
                client_id,
                client_secret: secrets::get("oauth_client_secret").filter(|s| !s.is_empty()),
                seed_refresh_token,
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(Error::invalid_input(
                "setting `oauth_client_id` needs the secret `oauth_refresh_token` (from the \
                 user's authorisation with offline.access)",
            )),
            (None, Some(_)) => Err(Error::invalid_input(
                "secret `oauth_refresh_token` needs the setting `oauth_client_id` (the app's \
                 OAuth 2.0 client id)",
            )),
        }
    }
}

/// What the connector keeps between calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Kept {
    /// The access token in use.
    pub access_token: Option<String>,
    /// Unix ms after which the access token is no longer used.
    pub renew_at: i64,
    /// The latest refresh token X issued (it replaces the seed).
    pub refresh_token: Option<String>,
}

/// X's token endpoint answer.
#[derive(Debug, Deserialize)]
struct Granted {
    access_token: String,
    /// Seconds.
    expires_in: Option<i64>,
    refresh_token: Option<String>,
}

/// An access token for this call: kept and fresh, or renewed now.
pub fn access_token(client: &OAuthClient, base_url: &str, now_ms: i64) -> Result<String> {
    let mut kept: Kept = state::get_json(STATE_KEY)?.unwrap_or_default();
    if let Some(token) = &kept.access_token
        && now_ms < kept.renew_at
    {
        return Ok(token.clone());
    }
    let refresh_token = kept
        .refresh_token
        .clone()
        .unwrap_or_else(|| client.seed_refresh_token.clone());
    let mut request = Request::post(format!("{base_url}/2/oauth2/token"));
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    match &client.client_secret {
        Some(secret) => {
            let basic = STANDARD.encode(format!("{}:{secret}", client.client_id));
            request = request.header("authorization", format!("Basic {basic}"));
        }
        None => form.push(("client_id", client.client_id.as_str())),
    }
    let response = request.form(&form).send()?;
    if response.status == 400 || response.status == 401 {
        return Err(Error::auth_expired(format!(
            "X refused to renew the access token (HTTP {}: {}); the authorisation was revoked \
             or its refresh token was already used: authorise the brand account again and set \
             a new `oauth_refresh_token`",
            response.status,
            String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect::<String>()
        )));
    }
    let granted: Granted = response.error_for_status()?.json()?;
    let lifetime_ms = granted
        .expires_in
        .unwrap_or(7200)
        .max(1)
        .saturating_mul(1000);
    kept = Kept {
        renew_at: now_ms.saturating_add(lifetime_ms - RENEW_AHEAD_MS.min(lifetime_ms / 2)),
        refresh_token: granted.refresh_token.or(Some(refresh_token)),
        access_token: Some(granted.access_token.clone()),
    };
    if let Err(error) = state::set_json(STATE_KEY, &kept) {
        // The old refresh token is spent: without the new one the next
        // renewal fails. Say so loudly; the access token still works now.
        log::error(format!(
            "could not keep X's rotated refresh token ({error}); the next renewal will fail \
             and the brand account must be authorised again"
        ));
    }
    Ok(granted.access_token)
}

/// Drops the kept access token (after a 401), keeping the refresh token.
pub fn forget_access_token() {
    if let Ok(Some(mut kept)) = state::get_json::<Kept>(STATE_KEY) {
        kept.access_token = None;
        let _ = state::set_json(STATE_KEY, &kept);
    }
}
