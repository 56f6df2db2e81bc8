//! A brand's triage policy: the keywords, thresholds and weights priority is
//! computed with, and the rules that decide what is ignored, what gets an
//! automatic acknowledgement and which team a message goes to.
//!
//! It is read from the brand's optional `[brand.triage]` table (see
//! `crate::config`); every key has a default, so a brand without the table
//! gets [`TriagePolicy::default`].

use std::collections::BTreeMap;
use std::fmt;

use crate::model::MessageKind;

use super::sentiment::tokens;

/// How a brand triages its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct TriagePolicy {
    /// Words that ask for haste ("urgent", "spoed").
    pub urgency_keywords: Vec<Keyword>,
    /// Words of a possible crisis: safety, health, legal, data leaks. A
    /// crisis keyword also keeps a message from being ignored.
    pub crisis_keywords: Vec<Keyword>,
    /// From this many followers an author counts as having a large reach.
    pub high_reach_followers: u64,
    /// Proactive hits (messages not addressed to the brand) from authors
    /// with fewer followers are ignored; 0 ignores none.
    pub ignore_proactive_below_followers: u64,
    pub weights: Weights,
    /// Lowest scores of the buckets above `low`.
    pub buckets: Buckets,
    /// Extra points (may be negative) per channel, by connector id.
    pub channel_points: BTreeMap<String, i32>,
    /// The first rule that matches names the acknowledgement template.
    pub acknowledge: Vec<AcknowledgeRule>,
    /// The first rule that matches names the team.
    pub routes: Vec<RouteRule>,
    /// The team of messages no route matches; `None`: the shared queue.
    pub default_team: Option<String>,
}

/// Points each signal adds to a message's priority score (0..=100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    /// What every message starts with.
    pub base: u32,
    /// The message is addressed to the brand (a mention, reply, DM).
    pub addressed: u32,
    /// The author has at least `high_reach_followers` followers.
    pub reach: u32,
    /// The author's account is verified.
    pub verified: u32,
    /// An urgency keyword occurs (counted once).
    pub urgency: u32,
    /// A crisis keyword occurs (counted once).
    pub crisis: u32,
    /// At sentiment -1.0; proportionally less for milder negativity.
    pub negative: u32,
    /// The message came in privately (DM, e-mail): a customer who needs
    /// something, not a passer-by.
    pub private: u32,
    /// Per full hour the message has waited ...
    pub waiting_per_hour: u32,
    /// ... up to this many points.
    pub waiting_max: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            base: 10,
            addressed: 20,
            reach: 15,
            verified: 10,
            urgency: 15,
            crisis: 40,
            negative: 20,
            private: 10,
            waiting_per_hour: 2,
            waiting_max: 10,
        }
    }
}

/// The lowest score of each bucket; below `normal` is `low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    pub urgent: u32,
    pub high: u32,
    pub normal: u32,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            urgent: 75,
            high: 50,
            normal: 25,
        }
    }
}

/// A keyword or phrase, matched as whole words in order ("data breach"
/// matches "a data-breach!" but not "databreach").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword {
    /// As the operator wrote it, for reasons.
    pub text: String,
    tokens: Vec<String>,
}

impl Keyword {
    /// `None` when `text` has no words to match (only punctuation).
    pub fn new(text: &str) -> Option<Keyword> {
        let tokens = tokens(text);
        (!tokens.is_empty()).then(|| Keyword {
            text: text.trim().to_string(),
            tokens,
        })
    }

    /// Does the keyword occur in `words` (a text's [`tokens`])?
    pub fn occurs_in(&self, words: &[String]) -> bool {
        words.windows(self.tokens.len()).any(|w| w == self.tokens)
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'", self.text)
    }
}

/// Acknowledge messages of these kinds on these channels with a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcknowledgeRule {
    /// Empty: any kind.
    pub kinds: Vec<MessageKind>,
    /// Connector ids; empty: any channel.
    pub channels: Vec<String>,
    /// The name of the acknowledgement template to send.
    pub template: String,
}

impl AcknowledgeRule {
    pub fn matches(&self, kind: MessageKind, channel: &str) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&kind))
            && (self.channels.is_empty() || self.channels.iter().any(|c| c == channel))
    }
}

/// Send messages with one of these keywords, or on one of these channels,
/// to a team. With both given, a message needs a keyword *and* a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// Empty: any text.
    pub keywords: Vec<Keyword>,
    /// Connector ids; empty: any channel.
    pub channels: Vec<String>,
    pub team: String,
}

impl RouteRule {
    pub fn matches(&self, words: &[String], channel: &str) -> bool {
        (self.keywords.is_empty() || self.keywords.iter().any(|k| k.occurs_in(words)))
            && (self.channels.is_empty() || self.channels.iter().any(|c| c == channel))
    }
}

/// English and Dutch words that ask for haste.
pub const DEFAULT_URGENCY_KEYWORDS: &[&str] = &[
    "urgent",
    "asap",
    "emergency",
    "immediately",
    "right now",
    "as soon as possible",
    "spoed",
    "dringend",
    "met spoed",
    "zo snel mogelijk",
    "noodgeval",
    "acuut",
    "onmiddellijk",
];

/// English and Dutch words of a possible crisis: safety, health, legal,
/// security, public attention.
pub const DEFAULT_CRISIS_KEYWORDS: &[&str] = &[
    "dangerous",
    "unsafe",
    "fire",
    "smoke",
    "explosion",
    "exploded",
    "injured",
    "injury",
    "hospital",
    "food poisoning",
    "poisoned",
    "recall",
    "data breach",
    "data leak",
    "hacked",
    "lawsuit",
    "lawyer",
    "police",
    "journalist",
    "gevaarlijk",
    "onveilig",
    "brandgevaar",
    "in brand",
    "rook",
    "ontploft",
    "explosie",
    "gewond",
    "ziekenhuis",
    "voedselvergiftiging",
    "vergiftigd",
    "terugroepactie",
    "datalek",
    "gehackt",
    "rechtszaak",
    "advocaat",
    "politie",
    "journalist",
];

/// The keywords of `words`, each once (English and Dutch share some).
pub fn keywords(words: &[&str]) -> Vec<Keyword> {
    let mut out: Vec<Keyword> = Vec::new();
    for keyword in words.iter().filter_map(|w| Keyword::new(w)) {
        if !out.iter().any(|k| k.tokens == keyword.tokens) {
            out.push(keyword);
        }
    }
    out
}

impl Default for TriagePolicy {
    fn default() -> Self {
        TriagePolicy {
            urgency_keywords: keywords(DEFAULT_URGENCY_KEYWORDS),
            crisis_keywords: keywords(DEFAULT_CRISIS_KEYWORDS),
            high_reach_followers: 10_000,
            ignore_proactive_below_followers: 0,
            weights: Weights::default(),
            buckets: Buckets::default(),
            channel_points: BTreeMap::new(),
            acknowledge: Vec::new(),
            routes: Vec::new(),
            default_team: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        tokens(text)
    }

    #[test]
    fn keywords_match_whole_words_in_order() {
        let k = Keyword::new("Data breach").unwrap();
        assert!(k.occurs_in(&words("Is this a data-breach?!")));
        assert!(!k.occurs_in(&words("databreach")));
        assert!(!k.occurs_in(&words("breach of data")));
        let fire = Keyword::new("fire").unwrap();
        assert!(!fire.occurs_in(&words("firewall settings")));
        assert!(Keyword::new(" !? ").is_none());
    }

    #[test]
    fn rules_match_on_kind_channel_and_keywords() {
        let ack = AcknowledgeRule {
            kinds: vec![MessageKind::DirectMessage],
            channels: vec![],
            template: "ack".into(),
        };
        assert!(ack.matches(MessageKind::DirectMessage, "x"));
        assert!(!ack.matches(MessageKind::Mention, "x"));
        let route = RouteRule {
            keywords: vec![Keyword::new("factuur").unwrap()],
            channels: vec!["mail".into()],
            team: "billing".into(),
        };
        assert!(route.matches(&words("Mijn factuur klopt niet"), "mail"));
        assert!(!route.matches(&words("Mijn factuur klopt niet"), "x"));
        assert!(!route.matches(&words("Mijn pakket"), "mail"));
    }

    #[test]
    fn default_keyword_lists_have_no_duplicates() {
        let policy = TriagePolicy::default();
        for list in [&policy.crisis_keywords, &policy.urgency_keywords] {
            let mut seen: Vec<&Vec<String>> = list.iter().map(|k| &k.tokens).collect();
            seen.sort();
            let before = seen.len();
            seen.dedup();
            assert_eq!(seen.len(), before);
        }
    }
}
