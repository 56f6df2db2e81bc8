//! Discourse webhooks (`post` events), beside polling.
//!
//! Discourse signs each delivery with `X-Discourse-Event-Signature:
//! sha256=<hex HMAC-SHA256 of the raw body>` keyed with the webhook's
//! secret. A delivery without a valid signature is refused (401 missing,
//! 403 wrong) and reports nothing; without a configured `webhook_secret`
//! every delivery is refused, since an unsigned endpoint would let anyone
//! inject messages. Posts go through the same normaliser as polled ones, so
//! a post delivered by webhook and later polled has the same external id.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use webcare_plugin::security::constant_time_eq;
use webcare_plugin::{
    MessageUpdate, Result, WebhookOutcome, WebhookRequest, WebhookResponse, log, secrets,
};

use crate::api::Client;
use crate::poll::resolve_reply;
use crate::post::Post;
use crate::rules;

/// A `post` webhook body.
#[derive(Deserialize)]
struct PostEvent {
    post: Post,
}

/// The `handle-webhook` export.
pub fn handle(request: &WebhookRequest) -> Result<WebhookOutcome> {
    if request.method != "POST" {
        return Ok(WebhookOutcome::new(
            WebhookResponse::text(405, "Discourse webhooks use POST").header("allow", "POST"),
        ));
    }
    let Some(secret) = secrets::get("webhook_secret").filter(|secret| !secret.is_empty()) else {
        log::warn("refused a webhook delivery: the `webhook_secret` secret is not configured");
        return Ok(reject(
            403,
            "webhooks are disabled: no webhook secret configured",
        ));
    };
    let Some(signature) = request.header("x-discourse-event-signature") else {
        return Ok(reject(401, "missing X-Discourse-Event-Signature"));
    };
    if !signature_matches(secret.as_bytes(), &request.body, signature) {
        return Ok(reject(403, "signature does not match"));
    }

    let event = request.header("x-discourse-event").unwrap_or_default();
    let event_type = request.header("x-discourse-event-type").unwrap_or_default();
    if event_type != "post" {
        // `ping` and events this connector does not subscribe to.
        return Ok(WebhookOutcome::new(WebhookResponse::ok()));
    }
    let PostEvent { post } = request.json()?;
    let rules = rules()?;
    let mut outcome = WebhookOutcome::new(WebhookResponse::ok());
    if event == "post_destroyed" {
        let at = post.deleted_at.as_deref().or(post.updated_at.as_deref());
        outcome
            .updates
            .push(MessageUpdate::Deleted(post.removal(at)));
        return Ok(outcome);
    }
    let Some(relevance) = post.relevance(&rules, false) else {
        return Ok(outcome);
    };
    if post.deleted_at.is_some() {
        outcome.updates.push(MessageUpdate::Deleted(
            post.removal(post.deleted_at.as_deref()),
        ));
        return Ok(outcome);
    }
    let client = Client::from_settings()?;
    let in_reply_to = resolve_reply(&client, &[], &post)?;
    let message = post.to_message(&rules, relevance, false, in_reply_to)?;
    match event {
        "post_created" => outcome.messages.push(message),
        // A recovered post comes back as it is now; an edit carries the
        // new version.
        "post_edited" | "post_recovered" => {
            outcome.updates.push(MessageUpdate::Edited(message));
        }
        _ => return Ok(outcome),
    }
    if post.hidden {
        outcome.updates.push(MessageUpdate::Hidden(
            post.removal(post.updated_at.as_deref()),
        ));
    }
    Ok(outcome)
}

/// A refusal that reports nothing.
fn reject(status: u16, reason: &str) -> WebhookOutcome {
    WebhookOutcome::new(WebhookResponse::text(status, reason))
}

/// True when `header` is `sha256=<hex>` of the HMAC-SHA256 of `body` keyed
/// with `secret` (compared in constant time).
pub fn signature_matches(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(given) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    constant_time_eq(given.to_ascii_lowercase().as_bytes(), expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::signature_matches;

    #[test]
    fn signatures_are_hmac_sha256_hex_of_the_body() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        let body = b"The quick brown fox jumps over the lazy dog";
        let hex = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
        assert!(signature_matches(b"key", body, &format!("sha256={hex}")));
        assert!(signature_matches(
            b"key",
            body,
            &format!("sha256={}", hex.to_uppercase())
        ));
        assert!(!signature_matches(b"key", body, hex));
        assert!(!signature_matches(b"other", body, &format!("sha256={hex}")));
        assert!(!signature_matches(b"key", b"", &format!("sha256={hex}")));
    }
}
