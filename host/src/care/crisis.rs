//! Crisis early warning: a spike in a brand's inbound volume, or in its
//! negative messages, measured against that brand's own baseline.
//!
//! Every check compares the last `window` (by the messages' own times, so
//! a replayed history is judged as it happened) with the `baseline` before
//! it, scaled to the window: a spike is at least `min_messages` messages
//! and `factor` times the expected count. A raised alert is stored with the
//! messages behind it, published to the inbox (a banner) and POSTed to the
//! brand's `webhook_url` for the team it names; the same kind of alert is
//! not raised again until the window has passed (no alert storm while the
//! spike lasts).

use std::time::Duration;

use serde::Serialize;

use crate::model::TimestampMs;

/// `[brand.crisis]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CrisisPolicy {
    pub enabled: bool,
    /// The span a spike is measured over.
    pub window: Duration,
    /// The history before the window that sets the normal rate.
    pub baseline: Duration,
    /// How many times the normal count a spike is.
    pub factor: f64,
    /// The fewest messages (or negative messages) that can be a spike.
    pub min_messages: u64,
    /// The team the alert is for.
    pub team: Option<String>,
    /// Where the alert is POSTed (JSON).
    pub webhook_url: Option<String>,
}

impl Default for CrisisPolicy {
    fn default() -> Self {
        CrisisPolicy {
            enabled: true,
            window: Duration::from_secs(15 * 60),
            baseline: Duration::from_secs(7 * 24 * 3600),
            factor: 3.0,
            min_messages: 10,
            team: None,
            webhook_url: None,
        }
    }
}

/// Inbound messages in a span, and how many of them were negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub messages: u64,
    pub negative: u64,
}

/// A spike found by [`detect`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spike {
    /// `volume` or `negative`.
    pub kind: &'static str,
    /// Messages (or negative messages) in the window.
    pub observed: u64,
    /// What the baseline predicts for a window.
    pub expected: f64,
}

/// The spikes in `current` (the window) given `baseline` (the span before
/// it).
pub fn detect(policy: &CrisisPolicy, current: Counts, baseline: Counts) -> Vec<Spike> {
    if !policy.enabled || policy.baseline.is_zero() {
        return Vec::new();
    }
    let scale = policy.window.as_secs_f64() / policy.baseline.as_secs_f64();
    let mut spikes = Vec::new();
    for (kind, observed, history) in [
        ("volume", current.messages, baseline.messages),
        ("negative", current.negative, baseline.negative),
    ] {
        let expected = history as f64 * scale;
        // A brand with almost no history still needs `min_messages` to
        // alarm: one expected message times the factor is not a crisis.
        if observed >= policy.min_messages && observed as f64 >= policy.factor * expected.max(1.0) {
            spikes.push(Spike {
                kind,
                observed,
                expected,
            });
        }
    }
    spikes
}

/// A message behind an alert.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AlertMessage {
    pub case_id: Option<i64>,
    pub connector: String,
    pub external_id: String,
    pub author: String,
    pub text: String,
    pub created_at: TimestampMs,
    pub sentiment: Option<f64>,
}

/// A raised alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub brand: String,
    pub kind: String,
    pub raised_at: TimestampMs,
    pub window_from: TimestampMs,
    pub window_to: TimestampMs,
    pub observed: u64,
    pub expected: f64,
    pub team: Option<String>,
    /// The window's messages (the most negative first for a `negative`
    /// alert, else the newest first), at most [`ALERT_SAMPLE`].
    pub messages: Vec<AlertMessage>,
}

/// Messages kept with an alert.
pub const ALERT_SAMPLE: usize = 50;

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CrisisPolicy {
        CrisisPolicy {
            window: Duration::from_secs(3600),
            baseline: Duration::from_secs(100 * 3600),
            ..CrisisPolicy::default()
        }
    }

    #[test]
    fn normal_traffic_is_no_spike() {
        // 5 an hour is normal; 12 this hour is busy, not a crisis.
        let baseline = Counts {
            messages: 500,
            negative: 100,
        };
        let now = Counts {
            messages: 12,
            negative: 3,
        };
        assert!(detect(&policy(), now, baseline).is_empty());
    }

    #[test]
    fn volume_and_negative_spikes_are_told_apart() {
        let baseline = Counts {
            messages: 500,
            negative: 100,
        };
        let loud = Counts {
            messages: 16,
            negative: 2,
        };
        let spikes = detect(&policy(), loud, baseline);
        assert_eq!(spikes.len(), 1);
        assert_eq!((spikes[0].kind, spikes[0].observed), ("volume", 16));
        assert!((spikes[0].expected - 5.0).abs() < 1e-9);
        let angry = Counts {
            messages: 14,
            negative: 12,
        };
        let kinds: Vec<&str> = detect(&policy(), angry, baseline)
            .iter()
            .map(|s| s.kind)
            .collect();
        assert_eq!(kinds, ["negative"]);
    }

    #[test]
    fn a_quiet_brand_needs_min_messages() {
        let none = Counts::default();
        let few = Counts {
            messages: 9,
            negative: 9,
        };
        assert!(detect(&policy(), few, none).is_empty());
        let ten = Counts {
            messages: 10,
            negative: 0,
        };
        assert_eq!(detect(&policy(), ten, none).len(), 1);
        let off = CrisisPolicy {
            enabled: false,
            ..policy()
        };
        assert!(detect(&off, ten, none).is_empty());
    }
}
