//! [`Error`]: the contract's `connector-error`, with constructors.

use std::fmt;

use crate::{AuthProblem, RateLimit};

/// Why a connector call failed: the contract's `connector-error`.
///
/// The host decides what to do from the case alone (wait, retry with
/// backoff, stop and ask an operator, give up), so pick the case with care;
/// the detail text is for humans and logs. Never put a secret in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The channel asked us to slow down; the host waits
    /// [`RateLimit::retry_after_ms`] before calling the connector again.
    RateLimited(RateLimit),
    /// Credentials are missing, wrong, expired or lack a permission; the host
    /// stops retrying and reports the connector as needing attention.
    Unauthorized(AuthProblem),
    /// A passing fault (timeout, 5xx, connection reset): retried with backoff.
    Transient(String),
    /// Malformed input (a payload that does not parse, a bad setting, an
    /// action on a message of the wrong kind). Not retried.
    InvalidInput(String),
    /// The connector does not support this call or action.
    Unsupported(String),
    /// The channel's rules forbid this now (a closed reply window, a message
    /// too long); says which rule. Not retried.
    NotAllowed(String),
}

/// The result of a connector call or of an SDK helper.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// A passing fault that is worth retrying (timeout, 5xx, reset).
    pub fn transient(detail: impl Into<String>) -> Self {
        Self::Transient(detail.into())
    }

    /// Malformed input that will not get better by retrying.
    pub fn invalid_input(detail: impl Into<String>) -> Self {
        Self::InvalidInput(detail.into())
    }

    /// A call or action this connector does not support.
    pub fn unsupported(detail: impl Into<String>) -> Self {
        Self::Unsupported(detail.into())
    }

    /// The channel's rules forbid this now; `detail` says which rule.
    pub fn not_allowed(detail: impl Into<String>) -> Self {
        Self::NotAllowed(detail.into())
    }

    /// The channel asked to wait `retry_after_ms` milliseconds from now.
    pub fn rate_limited(retry_after_ms: u64, detail: impl Into<String>) -> Self {
        Self::RateLimited(RateLimit {
            retry_after_ms,
            detail: detail.into(),
        })
    }

    /// The credentials are missing or wrong.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Unauthorized(AuthProblem {
            detail: detail.into(),
            expired: false,
            missing_scope: None,
        })
    }

    /// The credentials were valid once and have expired or been revoked.
    pub fn auth_expired(detail: impl Into<String>) -> Self {
        Self::Unauthorized(AuthProblem {
            detail: detail.into(),
            expired: true,
            missing_scope: None,
        })
    }

    /// The credentials are valid but lack the permission or scope `scope`.
    pub fn missing_scope(scope: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Unauthorized(AuthProblem {
            detail: detail.into(),
            expired: false,
            missing_scope: Some(scope.into()),
        })
    }

    /// The human-readable detail, whatever the case.
    pub fn detail(&self) -> &str {
        match self {
            Self::RateLimited(limit) => &limit.detail,
            Self::Unauthorized(problem) => &problem.detail,
            Self::Transient(detail)
            | Self::InvalidInput(detail)
            | Self::Unsupported(detail)
            | Self::NotAllowed(detail) => detail,
        }
    }

    /// True for the cases the host retries by itself (rate limits and
    /// transient faults).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited(_) | Self::Transient(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RateLimited(limit) => write!(
                f,
                "rate limited, retry after {} ms: {}",
                limit.retry_after_ms, limit.detail
            ),
            Self::Unauthorized(problem) => {
                write!(f, "unauthorized: {}", problem.detail)?;
                if problem.expired {
                    f.write_str(" (credentials expired)")?;
                }
                if let Some(scope) = &problem.missing_scope {
                    write!(f, " (missing scope: {scope})")?;
                }
                Ok(())
            }
            Self::Transient(detail) => write!(f, "transient failure: {detail}"),
            Self::InvalidInput(detail) => write!(f, "invalid input: {detail}"),
            Self::Unsupported(detail) => write!(f, "unsupported: {detail}"),
            Self::NotAllowed(detail) => write!(f, "not allowed: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

/// JSON that does not parse (or does not fit the expected shape) is invalid
/// input: retrying the same bytes will not help.
impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::invalid_input(format!("malformed JSON: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn constructors_pick_the_right_case() {
        assert!(matches!(Error::transient("x"), Error::Transient(d) if d == "x"));
        assert!(matches!(Error::invalid_input("x"), Error::InvalidInput(_)));
        assert!(matches!(Error::unsupported("x"), Error::Unsupported(_)));
        assert!(matches!(Error::not_allowed("x"), Error::NotAllowed(_)));
        match Error::rate_limited(1500, "slow down") {
            Error::RateLimited(limit) => assert_eq!(limit.retry_after_ms, 1500),
            other => panic!("unexpected {other:?}"),
        }
        match Error::auth_expired("old token") {
            Error::Unauthorized(problem) => assert!(problem.expired),
            other => panic!("unexpected {other:?}"),
        }
        match Error::missing_scope("tweet.write", "cannot post") {
            Error::Unauthorized(problem) => {
                assert!(!problem.expired);
                assert_eq!(problem.missing_scope.as_deref(), Some("tweet.write"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn display_names_the_case_and_the_detail() {
        assert_eq!(
            Error::rate_limited(2000, "429 from api").to_string(),
            "rate limited, retry after 2000 ms: 429 from api"
        );
        assert_eq!(
            Error::missing_scope("dm.write", "403").to_string(),
            "unauthorized: 403 (missing scope: dm.write)"
        );
        assert_eq!(
            Error::auth_expired("401").to_string(),
            "unauthorized: 401 (credentials expired)"
        );
        assert_eq!(Error::transient("reset").detail(), "reset");
        assert!(Error::transient("reset").is_retryable());
        assert!(!Error::invalid_input("bad").is_retryable());
    }

    #[test]
    fn serde_errors_are_invalid_input() {
        let error: Error = serde_json::from_str::<u32>("\"text\"").unwrap_err().into();
        assert!(
            matches!(error, Error::InvalidInput(detail) if detail.starts_with("malformed JSON"))
        );
    }
}
