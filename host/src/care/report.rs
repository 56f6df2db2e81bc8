//! A brand's report for a period: volume, response rate, first-response
//! and resolution times (working time, median and p90), sentiment per day
//! and the words customers used most — overall and per channel.
//!
//! The store hands over the period's raw rows ([`ReportRows`]); everything
//! is computed here, so every backend reports the same numbers.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::sla::ServiceLevels;
use crate::model::TimestampMs;

/// A case opened in the period.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportCase {
    pub connector: String,
    pub channel: String,
    pub first_message_at: TimestampMs,
    pub first_response_at: Option<TimestampMs>,
    pub closed_at: Option<TimestampMs>,
}

/// An inbound message written in the period.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportMessage {
    pub connector: String,
    pub created_at: TimestampMs,
    pub text: String,
    /// From its triage; `None` when it was not triaged.
    pub sentiment: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportRows {
    pub cases: Vec<ReportCase>,
    pub messages: Vec<ReportMessage>,
}

/// Median and 90th percentile of a duration, in milliseconds (`None`
/// without data).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub median_ms: Option<u64>,
    pub p90_ms: Option<u64>,
}

impl Percentiles {
    fn of(mut values: Vec<u64>) -> Self {
        values.sort_unstable();
        Percentiles {
            median_ms: nearest_rank(&values, 50),
            p90_ms: nearest_rank(&values, 90),
        }
    }
}

/// The nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Volume and times of one slice (all channels, or one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub cases: u64,
    pub inbound_messages: u64,
    /// Cases with an answer.
    pub answered: u64,
    /// `answered / cases`; `None` without cases.
    pub response_rate: Option<f64>,
    /// Answered within the first-response target.
    pub within_target: u64,
    pub first_response: Percentiles,
    pub resolution: Percentiles,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelFigures {
    pub connector: String,
    pub channel: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Sentiment of one day (in the brand's zone).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentimentDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub messages: u64,
    /// Mean over triaged messages; `None` if none was.
    pub mean: Option<f64>,
    /// Share of triaged messages with a negative score.
    pub negative_share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Keyword {
    pub word: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub brand: String,
    pub from: TimestampMs,
    pub to: TimestampMs,
    pub time_zone: String,
    /// The first-response target the figures are measured against.
    pub first_response_target_ms: u64,
    pub totals: Figures,
    pub channels: Vec<ChannelFigures>,
    pub sentiment: Vec<SentimentDay>,
    pub top_keywords: Vec<Keyword>,
}

/// How many keywords a report lists.
pub const TOP_KEYWORDS: usize = 20;

/// Words that say nothing about what customers write about (English and
/// Dutch function words).
const STOPWORDS: &[&str] = &[
    "the", "and", "for", "you", "your", "are", "was", "with", "this", "that", "have", "has", "not",
    "but", "from", "they", "will", "what", "when", "can", "just", "been", "our", "out", "all",
    "any", "get", "got", "its", "it's", "than", "then", "there", "their", "about", "would",
    "could", "should", "still", "also", "very", "how", "why", "who", "here", "please", "een",
    "het", "van", "dat", "die", "voor", "met", "niet", "zijn", "maar", "ook", "nog", "wel", "bij",
    "naar", "heb", "hebben", "wat", "als", "dan", "door", "over", "mijn", "jullie", "ik", "je",
    "jij", "wij", "we", "er", "is", "op", "te", "en", "de", "om", "aan", "uit", "kan", "moet",
    "geen", "meer", "dit", "deze", "hoe", "waar", "wordt", "word", "al", "nu", "toch", "zo",
    "graag", "hallo", "hoi", "hey", "dank", "thanks",
];

/// Computes the report of `rows` for `brand` in `[from, to)`.
pub fn build(
    brand: &str,
    from: TimestampMs,
    to: TimestampMs,
    levels: &ServiceLevels,
    rows: &ReportRows,
) -> Report {
    let mut per_channel: BTreeMap<(String, String), (Vec<&ReportCase>, u64)> = BTreeMap::new();
    for case in &rows.cases {
        per_channel
            .entry((case.connector.clone(), case.channel.clone()))
            .or_default()
            .0
            .push(case);
    }
    let channel_of: HashMap<&str, &str> = rows
        .cases
        .iter()
        .map(|c| (c.connector.as_str(), c.channel.as_str()))
        .collect();
    for m in &rows.messages {
        let channel = channel_of.get(m.connector.as_str()).copied().unwrap_or("");
        per_channel
            .entry((m.connector.clone(), channel.to_string()))
            .or_default()
            .1 += 1;
    }
    let all: Vec<&ReportCase> = rows.cases.iter().collect();
    let totals = figures(&all, rows.messages.len() as u64, levels);
    let channels = per_channel
        .into_iter()
        .map(|((connector, channel), (cases, inbound))| ChannelFigures {
            connector,
            channel,
            figures: figures(&cases, inbound, levels),
        })
        .collect();
    Report {
        brand: brand.to_string(),
        from,
        to,
        time_zone: levels.time_zone.iana_name().unwrap_or("UTC").to_string(),
        first_response_target_ms: u64::try_from(levels.first_response.as_millis())
            .unwrap_or(u64::MAX),
        totals,
        channels,
        sentiment: sentiment_days(&rows.messages, levels),
        top_keywords: top_keywords(&rows.messages, TOP_KEYWORDS),
    }
}

fn figures(cases: &[&ReportCase], inbound: u64, levels: &ServiceLevels) -> Figures {
    let target = u64::try_from(levels.first_response.as_millis()).unwrap_or(u64::MAX);
    let first: Vec<u64> = cases
        .iter()
        .filter_map(|c| {
            c.first_response_at
                .map(|at| levels.working_ms(c.first_message_at, at))
        })
        .collect();
    let resolution: Vec<u64> = cases
        .iter()
        .filter_map(|c| {
            c.closed_at
                .map(|at| levels.working_ms(c.first_message_at, at))
        })
        .collect();
    let answered = first.len() as u64;
    Figures {
        cases: cases.len() as u64,
        inbound_messages: inbound,
        answered,
        response_rate: (!cases.is_empty()).then(|| answered as f64 / cases.len() as f64),
        within_target: first.iter().filter(|&&ms| ms <= target).count() as u64,
        first_response: Percentiles::of(first),
        resolution: Percentiles::of(resolution),
    }
}

fn sentiment_days(messages: &[ReportMessage], levels: &ServiceLevels) -> Vec<SentimentDay> {
    // day → (messages, triaged, sum, negatives)
    let mut days: BTreeMap<String, (u64, u64, f64, u64)> = BTreeMap::new();
    for m in messages {
        let Ok(at) = jiff::Timestamp::from_millisecond(m.created_at) else {
            continue;
        };
        let day = at
            .to_zoned_datetime(levels.time_zone.clone())
            .date()
            .to_string();
        let entry = days.entry(day).or_default();
        entry.0 += 1;
        if let Some(s) = m.sentiment {
            entry.1 += 1;
            entry.2 += s;
            if s < 0.0 {
                entry.3 += 1;
            }
        }
    }
    days.into_iter()
        .map(|(day, (messages, triaged, sum, negatives))| SentimentDay {
            day,
            messages,
            mean: (triaged > 0).then(|| sum / triaged as f64),
            negative_share: (triaged > 0).then(|| negatives as f64 / triaged as f64),
        })
        .collect()
}

/// The `n` words customers used most (each counted once per message),
/// without function words, numbers or words under three letters.
pub fn top_keywords(messages: &[ReportMessage], n: usize) -> Vec<Keyword> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for m in messages {
        let mut words = crate::triage::sentiment::tokens(&m.text);
        words.sort_unstable();
        words.dedup();
        for word in words {
            if word.chars().count() < 3
                || word.chars().all(|c| c.is_numeric())
                || !word.chars().any(char::is_alphabetic)
                || STOPWORDS.contains(&word.as_str())
            {
                continue;
            }
            *counts.entry(word).or_default() += 1;
        }
    }
    let mut list: Vec<Keyword> = counts
        .into_iter()
        .map(|(word, count)| Keyword { word, count })
        .collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    list.truncate(n);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn case(connector: &str, first: i64, answer: Option<i64>, close: Option<i64>) -> ReportCase {
        ReportCase {
            connector: connector.into(),
            channel: connector.into(),
            first_message_at: first,
            first_response_at: answer.map(|a| first + a * MIN),
            closed_at: close.map(|c| first + c * MIN),
        }
    }

    fn message(connector: &str, at: i64, text: &str, sentiment: Option<f64>) -> ReportMessage {
        ReportMessage {
            connector: connector.into(),
            created_at: at,
            text: text.into(),
            sentiment,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=10).collect());
        assert_eq!((p.median_ms, p.p90_ms), (Some(5), Some(9)));
        let p = Percentiles::of(vec![7]);
        assert_eq!((p.median_ms, p.p90_ms), (Some(7), Some(7)));
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
    }

    #[test]
    fn figures_per_channel_and_in_total() {
        let t0 = 1_795_000_000_000;
        let rows = ReportRows {
            cases: vec![
                case("x", t0, Some(10), Some(60)),
                case("x", t0, Some(90), None),
                case("x", t0, None, None),
                case("email", t0, Some(30), Some(120)),
            ],
            messages: vec![
                message("x", t0, "Mijn factuur klopt niet, factuur 12", Some(-0.5)),
                message("x", t0 + 1, "De factuur is te hoog", Some(-0.2)),
                message(
                    "email",
                    t0 + 2,
                    "Bedankt voor de snelle levering",
                    Some(0.6),
                ),
                message("email", t0 + 86_400_000, "levering", None),
            ],
        };
        let levels = ServiceLevels::default(); // always open, 1 h
        let r = build("acme", t0, t0 + 2 * 86_400_000, &levels, &rows);
        assert_eq!(r.totals.cases, 4);
        assert_eq!(r.totals.answered, 3);
        assert_eq!(r.totals.response_rate, Some(0.75));
        assert_eq!(r.totals.within_target, 2);
        assert_eq!(r.totals.first_response.median_ms, Some(30 * MIN as u64));
        assert_eq!(r.totals.first_response.p90_ms, Some(90 * MIN as u64));
        let x = r.channels.iter().find(|c| c.connector == "x").unwrap();
        assert_eq!((x.figures.cases, x.figures.inbound_messages), (3, 2));
        assert_eq!(x.figures.resolution.median_ms, Some(60 * MIN as u64));
        assert_eq!(r.sentiment.len(), 2);
        assert_eq!(r.sentiment[0].messages, 3);
        assert_eq!(r.sentiment[0].negative_share, Some(2.0 / 3.0));
        assert_eq!(r.sentiment[1].mean, None);
        assert_eq!(
            r.top_keywords[..2],
            [
                Keyword {
                    word: "factuur".into(),
                    count: 2
                },
                Keyword {
                    word: "levering".into(),
                    count: 2
                },
            ]
        );
        assert!(
            r.top_keywords
                .iter()
                .all(|k| k.word != "12" && k.word != "de")
        );
    }
}
