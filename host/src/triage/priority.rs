//! A message's priority: a score from 0 to 100, the bucket it falls in, and
//! the reasons that made it, each with its points.
//!
//! The score is the policy's `base` plus the points of each signal that
//! applies (see [`super::policy::Weights`] for the defaults), clamped to
//! 0..=100. It depends only on the message, the channel, the policy, the
//! sentiment and `now`, so the same inputs always give the same priority.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::policy::TriagePolicy;
use super::sentiment::SentimentScore;
use crate::model::{Message, Visibility};

/// A coarse priority for queues and alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Low,
    Normal,
    High,
    Urgent,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Low => "low",
            Bucket::Normal => "normal",
            Bucket::High => "high",
            Bucket::Urgent => "urgent",
        }
    }

    pub fn parse(text: &str) -> Option<Bucket> {
        Some(match text {
            "low" => Bucket::Low,
            "normal" => Bucket::Normal,
            "high" => Bucket::High,
            "urgent" => Bucket::Urgent,
            _ => return None,
        })
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bucket::Low => "low",
            Bucket::Normal => "normal",
            Bucket::High => "high",
            Bucket::Urgent => "urgent",
        })
    }
}

/// A message's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Priority {
    /// 0..=100.
    pub score: u8,
    pub bucket: Bucket,
}

/// Why a message got (some of) its priority, for the agent to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Points added (negative: taken off); 0 for reasons that are
    /// information only (why a message is ignored, say).
    pub points: i32,
    pub text: String,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.points == 0 {
            f.write_str(&self.text)
        } else {
            write!(f, "{} ({:+})", self.text, self.points)
        }
    }
}

/// What [`priority`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scored {
    pub priority: Priority,
    pub reasons: Vec<Reason>,
}

/// The priority of `message` on `channel` (a connector id) at `now`;
/// `words` are the [`super::sentiment::tokens`] of its subject and text.
pub fn priority(
    message: &Message,
    channel: &str,
    words: &[String],
    sentiment: &SentimentScore,
    policy: &TriagePolicy,
    now: Timestamp,
) -> Scored {
    let w = &policy.weights;
    let mut reasons = Vec::new();
    let mut add = |points: u32, text: String| {
        let points = i32::try_from(points).unwrap_or(i32::MAX);
        if points != 0 {
            reasons.push(Reason { points, text });
        }
    };

    if message.addressed_to_brand {
        add(w.addressed, "addressed to the brand".into());
    }

    let author = &message.author;
    let high_reach = author
        .followers
        .is_some_and(|f| f >= policy.high_reach_followers);
    match (author.followers, high_reach, author.verified) {
        (Some(followers), true, verified) => add(
            w.reach + if verified { w.verified } else { 0 },
            format!(
                "author has {} followers{}",
                thousands(followers),
                if verified { " (verified)" } else { "" }
            ),
        ),
        (_, _, true) => add(w.verified, "verified author".into()),
        _ => {}
    }

    let found = |list: &[super::policy::Keyword]| -> Vec<String> {
        list.iter()
            .filter(|k| k.occurs_in(words))
            .map(ToString::to_string)
            .collect()
    };
    let crisis = found(&policy.crisis_keywords);
    if !crisis.is_empty() {
        add(w.crisis, format!("crisis keyword: {}", crisis.join(", ")));
    }
    let urgency = found(&policy.urgency_keywords);
    if !urgency.is_empty() {
        add(
            w.urgency,
            format!("urgency keyword: {}", urgency.join(", ")),
        );
    }

    if sentiment.score < 0.0 {
        let points = (-sentiment.score * f64::from(w.negative)).round() as u32;
        let terms: Vec<String> = sentiment
            .evidence
            .iter()
            .filter(|e| e.weight < 0.0)
            .map(|e| format!("'{}'", e.term))
            .collect();
        // U+2212 MINUS SIGN: reads as a minus, not a hyphen.
        let score = format!("{:.1}", sentiment.score).replace('-', "\u{2212}");
        add(
            points,
            format!("negative sentiment {score}: {}", terms.join(", ")),
        );
    }

    if message.visibility == Visibility::Private {
        add(w.private, "private channel".into());
    }

    let waited = now
        .as_millisecond()
        .saturating_sub(message.created_at)
        .max(0);
    let hours = u32::try_from(waited / 3_600_000).unwrap_or(u32::MAX);
    if hours > 0 {
        add(
            hours.saturating_mul(w.waiting_per_hour).min(w.waiting_max),
            format!("waiting {hours} h"),
        );
    }

    if let Some(&points) = policy.channel_points.get(channel)
        && points != 0
    {
        reasons.push(Reason {
            points,
            text: format!("channel {channel}"),
        });
    }

    let total = i64::from(w.base) + reasons.iter().map(|r| i64::from(r.points)).sum::<i64>();
    let score = u8::try_from(total.clamp(0, 100)).unwrap_or(100);
    let b = &policy.buckets;
    let bucket = match u32::from(score) {
        s if s >= b.urgent => Bucket::Urgent,
        s if s >= b.high => Bucket::High,
        s if s >= b.normal => Bucket::Normal,
        _ => Bucket::Low,
    };
    Scored {
        priority: Priority { score, bucket },
        reasons,
    }
}

/// `48210` → `"48,210"`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(48_210), "48,210");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn reasons_show_their_points() {
        let r = Reason {
            points: 20,
            text: "addressed to the brand".into(),
        };
        assert_eq!(r.to_string(), "addressed to the brand (+20)");
        let r = Reason {
            points: -5,
            text: "channel rss".into(),
        };
        assert_eq!(r.to_string(), "channel rss (-5)");
        assert!(Bucket::Urgent > Bucket::High && Bucket::Normal > Bucket::Low);
    }
}
