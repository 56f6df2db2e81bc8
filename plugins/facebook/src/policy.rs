//! Meta's messaging windows, enforced before any call so that an agent gets
//! a clear `not-allowed` instead of a Graph error after the fact.
//!
//! - Messenger (<https://developers.facebook.com/docs/messenger-platform/policy/policy-overview>):
//!   a page may answer freely within 24 hours of the person's last message
//!   (`messaging_type: RESPONSE`); from 24 hours to 7 days only a human agent
//!   may, with `messaging_type: MESSAGE_TAG` and `tag: HUMAN_AGENT`; later,
//!   not at all.
//! - Private Replies (<https://developers.facebook.com/docs/messenger-platform/discovery/private-replies>):
//!   one message to the author of a comment or visitor post, within 7 days
//!   of it.

use webcare_plugin::{Error, Result, TimestampMs};

/// One hour in milliseconds.
const HOUR_MS: i64 = 60 * 60 * 1000;
/// The standard Messenger window.
pub const STANDARD_WINDOW_MS: i64 = 24 * HOUR_MS;
/// The human-agent window, and the private-reply window.
pub const EXTENDED_WINDOW_MS: i64 = 7 * 24 * HOUR_MS;

/// How a Messenger message must be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendMode {
    /// Within 24 hours: `messaging_type: RESPONSE`.
    Response,
    /// From 24 hours to 7 days: `messaging_type: MESSAGE_TAG`, `tag: HUMAN_AGENT`.
    HumanAgent,
}

/// The mode for a Messenger reply at `now_ms` when the person last wrote at
/// `last_inbound_at`; `not-allowed` after 7 days.
pub fn messenger_mode(now_ms: TimestampMs, last_inbound_at: TimestampMs) -> Result<SendMode> {
    let elapsed = now_ms.saturating_sub(last_inbound_at);
    if elapsed <= STANDARD_WINDOW_MS {
        Ok(SendMode::Response)
    } else if elapsed <= EXTENDED_WINDOW_MS {
        Ok(SendMode::HumanAgent)
    } else {
        Err(Error::not_allowed(format!(
            "Messenger allows replies only within 7 days of the person's last message \
             (with the HUMAN_AGENT tag after 24 hours); the last one is {} old",
            describe_age(elapsed)
        )))
    }
}

/// Checks the private-reply window for a comment written at `created_at`.
pub fn private_reply_window(now_ms: TimestampMs, created_at: TimestampMs) -> Result<()> {
    let elapsed = now_ms.saturating_sub(created_at);
    if elapsed <= EXTENDED_WINDOW_MS {
        Ok(())
    } else {
        Err(Error::not_allowed(format!(
            "Facebook allows a private reply only within 7 days of the comment; this one is {} old",
            describe_age(elapsed)
        )))
    }
}

/// `8 days 3 h`, `30 h`, for error details.
fn describe_age(elapsed_ms: i64) -> String {
    let hours = elapsed_ms / HOUR_MS;
    if hours >= 48 {
        format!("{} days {} h", hours / 24, hours % 24)
    } else {
        format!("{hours} h")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_714_564_800_000;

    #[test]
    fn messenger_windows() {
        assert_eq!(messenger_mode(NOW, NOW - HOUR_MS), Ok(SendMode::Response));
        assert_eq!(
            messenger_mode(NOW, NOW - 24 * HOUR_MS),
            Ok(SendMode::Response)
        );
        assert_eq!(
            messenger_mode(NOW, NOW - 30 * HOUR_MS),
            Ok(SendMode::HumanAgent)
        );
        assert_eq!(
            messenger_mode(NOW, NOW - 7 * 24 * HOUR_MS),
            Ok(SendMode::HumanAgent)
        );
        let error = messenger_mode(NOW, NOW - 8 * 24 * HOUR_MS).unwrap_err();
        assert!(
            matches!(&error, Error::NotAllowed(detail) if detail.contains("8 days 0 h")),
            "{error}"
        );
    }

    #[test]
    fn private_reply_window_is_seven_days() {
        assert!(private_reply_window(NOW, NOW - 6 * 24 * HOUR_MS).is_ok());
        assert!(
            private_reply_window(NOW, NOW + HOUR_MS).is_ok(),
            "clock skew is no reason to refuse"
        );
        let error = private_reply_window(NOW, NOW - 7 * 24 * HOUR_MS - 1).unwrap_err();
        assert!(matches!(error, Error::NotAllowed(_)));
    }
}
