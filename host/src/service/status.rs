//! What an operator sees of each connector on `GET /status`: healthy or
//! not, whether it needs a person (credentials refused or expired, with the
//! missing scope when the channel named it), its last error and its last
//! success. The scheduler and the webhook route keep it current; metrics
//! carry the same facts as numbers.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::scheduler::UNHEALTHY_AFTER;
use crate::model::{ConnectorError, TimestampMs};
use crate::runtime::PluginError;

/// One connector's state, as `/status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConnectorStatus {
    /// False after [`UNHEALTHY_AFTER`] failures in a row, or at once when the
    /// credentials were refused.
    pub healthy: bool,
    /// The channel refused the credentials: retrying will not help, an
    /// operator must renew or fix them.
    pub needs_attention: bool,
    pub consecutive_failures: u32,
    /// Last successful poll commit or webhook delivery (ms since the epoch).
    pub last_success_at: Option<TimestampMs>,
    pub last_error: Option<LastError>,
}

/// The most recent failure of a connector.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LastError {
    pub at: TimestampMs,
    /// `unauthorized`, `rate-limited`, `transient`, `cpu budget`, ... (the
    /// same kinds as the `webcare_connector_errors_total` metric).
    pub kind: String,
    /// The error as logged (secrets redacted).
    pub detail: String,
    /// Credentials that worked once and expired or were revoked.
    pub expired: bool,
    /// The permission or scope the channel says is missing.
    pub missing_scope: Option<String>,
}

impl Default for ConnectorStatus {
    fn default() -> Self {
        ConnectorStatus {
            healthy: true,
            needs_attention: false,
            consecutive_failures: 0,
            last_success_at: None,
            last_error: None,
        }
    }
}

fn now_ms() -> TimestampMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl ConnectorStatus {
    /// A poll committed or a delivery was accepted.
    pub fn succeeded(&mut self) {
        self.healthy = true;
        self.needs_attention = false;
        self.consecutive_failures = 0;
        self.last_success_at = Some(now_ms());
    }

    /// A webhook delivery was accepted. It says nothing about the
    /// connector's polling or its credentials for calls to the channel (a
    /// signed delivery arrives even when the page token has expired), so
    /// only the time is kept.
    pub fn delivered(&mut self) {
        self.last_success_at = Some(now_ms());
    }

    /// A call failed with `error` (or, for `None`, the commit did).
    pub fn failed(&mut self, error: Option<&PluginError>) {
        let (kind, detail) = match error {
            Some(error) => (error.kind().to_string(), error.to_string()),
            None => ("storage".to_string(), "the commit failed".to_string()),
        };
        let (expired, missing_scope, unauthorized, rate_limited) = match error {
            Some(PluginError::Connector(ConnectorError::Unauthorized {
                expired,
                missing_scope,
                ..
            })) => (*expired, missing_scope.clone(), true, false),
            Some(PluginError::Connector(ConnectorError::RateLimited { .. })) => {
                (false, None, false, true)
            }
            _ => (false, None, false, false),
        };
        self.last_error = Some(LastError {
            at: now_ms(),
            kind,
            detail,
            expired,
            missing_scope,
        });
        if rate_limited {
            // The channel's pace, not the connector's fault.
            return;
        }
        self.consecutive_failures += 1;
        self.needs_attention = unauthorized;
        if unauthorized || self.consecutive_failures >= UNHEALTHY_AFTER {
            self.healthy = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unauthorized(expired: bool) -> PluginError {
        PluginError::Connector(ConnectorError::Unauthorized {
            detail: "token revoked".into(),
            expired,
            missing_scope: Some("dm.read".into()),
        })
    }

    #[test]
    fn refused_credentials_need_attention_at_once() {
        let mut status = ConnectorStatus::default();
        status.failed(Some(&unauthorized(true)));
        assert!(!status.healthy);
        assert!(status.needs_attention);
        let error = status.last_error.clone().unwrap();
        assert!(error.expired);
        assert_eq!(error.missing_scope.as_deref(), Some("dm.read"));
        assert_eq!(error.kind, "unauthorized");
        status.succeeded();
        assert!(status.healthy && !status.needs_attention);
        assert!(status.last_success_at.is_some());
        assert!(status.last_error.is_some(), "the last error stays visible");
    }

    #[test]
    fn passing_faults_count_and_rate_limits_do_not() {
        let mut status = ConnectorStatus::default();
        let limited = PluginError::Connector(ConnectorError::RateLimited {
            retry_after_ms: 1000,
            detail: "slow down".into(),
        });
        for _ in 0..5 {
            status.failed(Some(&limited));
        }
        assert!(status.healthy);
        assert_eq!(status.consecutive_failures, 0);
        let transient = PluginError::Connector(ConnectorError::Transient {
            detail: "502".into(),
        });
        for _ in 0..UNHEALTHY_AFTER {
            assert!(status.healthy);
            status.failed(Some(&transient));
        }
        assert!(!status.healthy);
        assert!(!status.needs_attention);
    }
}
