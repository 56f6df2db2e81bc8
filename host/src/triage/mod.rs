//! Triage per brand policy: for each incoming message, whether to ignore it,
//! how urgent it is and why, whether it gets an automatic acknowledgement,
//! and which team it goes to.
//!
//! - [`sentiment`]: the [`Sentiment`] interface and the built-in
//!   [`LexiconSentiment`] for English and Dutch.
//! - [`priority`]: the score, bucket and reasons.
//! - [`policy`]: the brand's [`TriagePolicy`], read from `[brand.triage]`.
//!
//! [`Triage::decide`] puts them together. Nothing calls it yet: the service
//! stores messages as before, and wiring decisions into cases comes with
//! the case workflow (see `docs/triage.md`).

pub mod policy;
pub mod priority;
pub mod sentiment;

use std::sync::Arc;

use jiff::Timestamp;

use crate::model::{Direction, Message};
pub use policy::TriagePolicy;
pub use priority::{Bucket, Priority, Reason};
pub use sentiment::{LexiconSentiment, Sentiment, SentimentScore};

/// What triage decided about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct TriageDecision {
    /// Leave the message out of the care queue; `reasons` says why.
    pub ignore: bool,
    pub priority: Priority,
    /// Why the message got its priority (and, when ignored, why it was).
    pub reasons: Vec<Reason>,
    /// The acknowledgement template to answer with, if any.
    pub acknowledge: Option<String>,
    /// The team the message goes to; `None`: the brand's shared queue.
    pub team: Option<String>,
    /// The sentiment the priority was computed with.
    pub sentiment: SentimentScore,
}

/// A brand's triage: its policy and a sentiment scorer.
#[derive(Clone)]
pub struct Triage {
    policy: TriagePolicy,
    sentiment: Arc<dyn Sentiment>,
}

impl Triage {
    /// Triage with the built-in [`LexiconSentiment`].
    pub fn new(policy: TriagePolicy) -> Self {
        Self::with_sentiment(policy, LexiconSentiment::builtin())
    }

    /// Triage with another scorer (a processor plugin, later).
    pub fn with_sentiment(policy: TriagePolicy, sentiment: Arc<dyn Sentiment>) -> Self {
        Triage { policy, sentiment }
    }

    pub fn policy(&self) -> &TriagePolicy {
        &self.policy
    }

    /// Triages `message`, which came in on `channel` (the connector id), as
    /// of `now`.
    pub fn decide(&self, message: &Message, channel: &str, now: Timestamp) -> TriageDecision {
        let policy = &self.policy;
        let text = match &message.subject {
            Some(subject) => format!("{subject}\n{}", message.text),
            None => message.text.clone(),
        };
        let words = sentiment::tokens(&text);
        let sentiment = self.sentiment.score(&text, message.language.as_deref());
        let scored = priority::priority(message, channel, &words, &sentiment, policy, now);
        let mut reasons = scored.reasons;

        let crisis = policy.crisis_keywords.iter().any(|k| k.occurs_in(&words));
        let followers = message.author.followers.unwrap_or(0);
        let ignored_because = if message.direction == Direction::Outbound {
            Some("sent by the brand itself".to_string())
        } else if !message.addressed_to_brand
            && followers < policy.ignore_proactive_below_followers
            && !crisis
        {
            Some(format!(
                "ignored: not addressed to the brand and the author has fewer than {} followers",
                policy.ignore_proactive_below_followers
            ))
        } else {
            None
        };
        let ignore = ignored_because.is_some();
        if let Some(text) = ignored_because {
            reasons.insert(0, Reason { points: 0, text });
        }

        let acknowledge = (!ignore)
            .then(|| {
                policy
                    .acknowledge
                    .iter()
                    .find(|rule| rule.matches(message.kind, channel))
                    .map(|rule| rule.template.clone())
            })
            .flatten();
        let team = policy
            .routes
            .iter()
            .find(|rule| rule.matches(&words, channel))
            .map(|rule| rule.team.clone())
            .or_else(|| policy.default_team.clone());

        TriageDecision {
            ignore,
            priority: scored.priority,
            reasons,
            acknowledge,
            team,
            sentiment,
        }
    }
}

impl std::fmt::Debug for Triage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Triage")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::policy::{AcknowledgeRule, Keyword, RouteRule};
    use super::*;
    use crate::model::{Author, Engagement, MessageKind, Visibility};

    /// 2026-05-18 12:00 UTC, a Monday.
    fn now() -> Timestamp {
        "2026-05-18T12:00:00Z".parse().unwrap()
    }

    fn message(text: &str) -> Message {
        Message {
            external_id: "m1".into(),
            thread_id: "t1".into(),
            in_reply_to: None,
            kind: MessageKind::Mention,
            visibility: Visibility::Public,
            direction: Direction::Inbound,
            addressed_to_brand: true,
            author: Author {
                id: "u1".into(),
                handle: "klant".into(),
                display_name: "Klant".into(),
                followers: Some(120),
                verified: false,
                profile_url: None,
                email: None,
            },
            text: text.into(),
            html: None,
            subject: None,
            language: None,
            created_at: now().as_millisecond(),
            permalink: None,
            attachments: vec![],
            metrics: Engagement::default(),
            properties: vec![],
        }
    }

    fn texts(decision: &TriageDecision) -> Vec<String> {
        decision.reasons.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_crisis_from_an_influencer_is_urgent_and_says_why() {
        let mut m = message("@acme jullie kachel is gevaarlijk, hij begon te roken. Schandalig!");
        m.author.followers = Some(48_210);
        m.author.verified = true;
        m.created_at -= 3 * 3_600_000 + 59_000;
        let d = Triage::new(TriagePolicy::default()).decide(&m, "x", now());
        assert!(!d.ignore);
        assert_eq!(d.priority.bucket, Bucket::Urgent);
        assert_eq!(d.priority.score, 100);
        let reasons = texts(&d);
        assert_eq!(reasons[0], "addressed to the brand (+20)");
        assert_eq!(reasons[1], "author has 48,210 followers (verified) (+25)");
        assert_eq!(reasons[2], "crisis keyword: 'gevaarlijk' (+40)");
        assert!(
            reasons[3].starts_with("negative sentiment \u{2212}0."),
            "{reasons:?}"
        );
        assert!(reasons[3].contains("'schandalig'"), "{reasons:?}");
        assert_eq!(reasons[4], "waiting 3 h (+6)");
        assert_eq!(reasons.len(), 5);
    }

    #[test]
    fn a_friendly_question_is_normal_and_praise_low() {
        let triage = Triage::new(TriagePolicy::default());
        let d = triage.decide(
            &message("@acme what are your opening hours on Saturday?"),
            "x",
            now(),
        );
        // base 10 + addressed 20.
        assert_eq!(d.priority.score, 30);
        assert_eq!(d.priority.bucket, Bucket::Normal);
        assert_eq!(texts(&d), ["addressed to the brand (+20)"]);

        let mut praise = message("Geweldig geholpen door jullie team, bedankt!");
        praise.addressed_to_brand = false;
        let d = triage.decide(&praise, "x", now());
        assert_eq!(d.priority.score, 10);
        assert_eq!(d.priority.bucket, Bucket::Low);
        assert!(d.reasons.is_empty());
        assert!(d.sentiment.score > 0.5);
    }

    #[test]
    fn private_urgent_complaints_rank_high() {
        let mut m =
            message("URGENT: my account was charged twice and nobody answers. Very disappointed.");
        m.kind = MessageKind::DirectMessage;
        m.visibility = Visibility::Private;
        let d = Triage::new(TriagePolicy::default()).decide(&m, "x", now());
        let reasons = texts(&d);
        assert!(reasons.contains(&"urgency keyword: 'urgent' (+15)".to_string()));
        assert!(reasons.contains(&"private channel (+10)".to_string()));
        assert_eq!(d.priority.bucket, Bucket::High, "{reasons:?}");
    }

    #[test]
    fn policy_tunes_weights_buckets_and_channels() {
        let mut policy = TriagePolicy::default();
        policy.weights.addressed = 0;
        policy.channel_points.insert("rss".into(), -10);
        policy.channel_points.insert("mail".into(), 30);
        policy.buckets.high = 40;
        let triage = Triage::new(policy);
        let m = message("@acme hoe laat gaan jullie open?");
        let rss = triage.decide(&m, "rss", now());
        assert_eq!(rss.priority.score, 0);
        assert_eq!(texts(&rss), ["channel rss (-10)"]);
        let mail = triage.decide(&m, "mail", now());
        assert_eq!(mail.priority.score, 40);
        assert_eq!(mail.priority.bucket, Bucket::High);
    }

    #[test]
    fn small_proactive_hits_are_ignored_unless_a_crisis() {
        let triage = Triage::new(TriagePolicy {
            ignore_proactive_below_followers: 500,
            ..TriagePolicy::default()
        });
        let mut m = message("Net een pakketje van Acme binnen");
        m.addressed_to_brand = false;
        let d = triage.decide(&m, "x", now());
        assert!(d.ignore);
        assert!(texts(&d)[0].contains("fewer than 500 followers"));
        // Addressed to the brand, or from a bigger account: kept.
        m.author.followers = Some(500);
        assert!(!triage.decide(&m, "x", now()).ignore);
        m.author.followers = None;
        assert!(triage.decide(&m, "x", now()).ignore);
        m.addressed_to_brand = true;
        assert!(!triage.decide(&m, "x", now()).ignore);
        // A crisis keyword is never ignored.
        m.addressed_to_brand = false;
        m.text = "Die Acme-oplader is gevaarlijk, hij werd gloeiend heet".into();
        assert!(!triage.decide(&m, "x", now()).ignore);
        // The brand's own messages are.
        let mut own = message("Thanks for reaching out!");
        own.direction = Direction::Outbound;
        let d = triage.decide(&own, "x", now());
        assert!(d.ignore);
        assert_eq!(texts(&d)[0], "sent by the brand itself");
    }

    #[test]
    fn acknowledgement_and_routing_follow_the_first_matching_rule() {
        let policy = TriagePolicy {
            acknowledge: vec![
                AcknowledgeRule {
                    kinds: vec![MessageKind::Email],
                    channels: vec![],
                    template: "ack-mail".into(),
                },
                AcknowledgeRule {
                    kinds: vec![MessageKind::DirectMessage, MessageKind::Email],
                    channels: vec!["x".into()],
                    template: "ack-dm".into(),
                },
            ],
            routes: vec![
                RouteRule {
                    keywords: vec![
                        Keyword::new("factuur").unwrap(),
                        Keyword::new("invoice").unwrap(),
                    ],
                    channels: vec![],
                    team: "billing".into(),
                },
                RouteRule {
                    keywords: vec![],
                    channels: vec!["mail".into()],
                    team: "backoffice".into(),
                },
            ],
            default_team: Some("webcare".into()),
            ignore_proactive_below_followers: 1_000,
            ..TriagePolicy::default()
        };
        let triage = Triage::new(policy);

        let mut dm = message("Mijn factuur klopt niet");
        dm.kind = MessageKind::DirectMessage;
        let d = triage.decide(&dm, "x", now());
        assert_eq!(d.acknowledge.as_deref(), Some("ack-dm"));
        assert_eq!(d.team.as_deref(), Some("billing"));

        let mut mail = message("Where is my parcel?");
        mail.kind = MessageKind::Email;
        mail.subject = Some("Invoice 2026-114".into());
        let d = triage.decide(&mail, "mail", now());
        assert_eq!(d.acknowledge.as_deref(), Some("ack-mail"));
        // The subject counts for keywords.
        assert_eq!(d.team.as_deref(), Some("billing"));
        mail.subject = None;
        assert_eq!(
            triage.decide(&mail, "mail", now()).team.as_deref(),
            Some("backoffice")
        );

        let d = triage.decide(&message("hello"), "x", now());
        assert_eq!((d.acknowledge, d.team.as_deref()), (None, Some("webcare")));

        // Ignored messages are not acknowledged.
        let mut proactive = dm.clone();
        proactive.addressed_to_brand = false;
        let d = triage.decide(&proactive, "x", now());
        assert!(d.ignore);
        assert_eq!(d.acknowledge, None);
    }

    #[test]
    fn another_sentiment_scorer_can_be_plugged_in() {
        struct Gloomy;
        impl Sentiment for Gloomy {
            fn score(&self, _: &str, _: Option<&str>) -> SentimentScore {
                SentimentScore {
                    score: -1.0,
                    language: None,
                    evidence: vec![sentiment::Evidence {
                        term: "everything".into(),
                        weight: -3.0,
                    }],
                }
            }
        }
        let triage = Triage::with_sentiment(TriagePolicy::default(), Arc::new(Gloomy));
        let d = triage.decide(&message("hello"), "x", now());
        assert_eq!(d.priority.score, 50);
        assert!(
            texts(&d).contains(&"negative sentiment \u{2212}1.0: 'everything' (+20)".to_string())
        );
    }
}
