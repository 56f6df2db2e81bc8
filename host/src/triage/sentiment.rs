//! Sentiment of a customer's message: the [`Sentiment`] interface, so that a
//! processor plugin can replace the scorer later, and [`LexiconSentiment`],
//! a word-list scorer for English and Dutch that is enough to start with.
//!
//! The lexicons are data files in `lexicon/` (`en.txt`, `nl.txt`,
//! `emoji.txt`), written for this project; their header explains the
//! format. The scorer adds up the weights of the words it knows, with three
//! refinements: a negator ("not", "niet", "geen") flips the next sentiment
//! word within three words and the same clause and weakens it ("not bad"
//! is mildly positive), a booster ("very", "heel") scales the word right
//! after it, emoji count as they are, and each
//! exclamation mark (up to three) strengthens the whole. The sum is squashed
//! into -1.0..=1.0 with `s / sqrt(s² + 15)`, as VADER does, so that one
//! strong word gives about ±0.6 and a pile of them approaches ±1.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

/// Scores a text's sentiment; implemented by [`LexiconSentiment`] and, later,
/// by processor plugins.
pub trait Sentiment: Send + Sync {
    /// `language` is the message's BCP 47 tag when the channel reported one
    /// (`"nl"`, `"en-GB"`); the scorer may guess it otherwise.
    fn score(&self, text: &str, language: Option<&str>) -> SentimentScore;
}

/// How positive (up to 1.0) or negative (down to -1.0) a text is, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentScore {
    /// -1.0..=1.0; 0.0 is neutral or unknown.
    pub score: f64,
    /// The language the text was read as (primary subtag, e.g. `nl`);
    /// `None` when it could not be told.
    pub language: Option<String>,
    /// The terms that made the score, in text order.
    pub evidence: Vec<Evidence>,
}

impl SentimentScore {
    /// No sentiment found.
    pub fn neutral(language: Option<String>) -> Self {
        SentimentScore {
            score: 0.0,
            language,
            evidence: Vec::new(),
        }
    }
}

/// One scored term: a word with the negator or booster before it
/// (`"not happy"`, `"heel slecht"`) or an emoji, and what it contributed
/// before squashing.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub term: String,
    pub weight: f64,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' ({:+.1})", self.term, self.weight)
    }
}

/// How much a negated word keeps of its weight, with the sign flipped.
const NEGATION: f64 = -0.75;
/// How many words after a negator it still applies to.
const NEGATION_SCOPE: usize = 3;
/// Extra strength per exclamation mark, for at most three of them.
const EXCLAMATION: f64 = 0.1;
/// The squashing constant: `s / sqrt(s² + ALPHA)`.
const ALPHA: f64 = 15.0;

/// What a lexicon says about one word.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Entry {
    /// Sentiment from -3.0 to 3.0.
    Weight(f64),
    /// Flips the next sentiment word.
    Negator,
    /// Scales the next word.
    Boost(f64),
    /// No sentiment; a frequent word that tells the language.
    Common,
}

/// One language's word list.
#[derive(Debug, Clone)]
pub struct Lexicon {
    language: String,
    entries: HashMap<String, Entry>,
}

impl Lexicon {
    /// Reads a lexicon in the format described in `lexicon/en.txt`. The
    /// error names the line.
    pub fn parse(language: &str, text: &str) -> Result<Lexicon, String> {
        let mut entries = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("{language} lexicon line {}: {why}: {line:?}", n + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            let (term, entry) = match words.as_slice() {
                [term, "negator"] => (*term, Entry::Negator),
                [term, "common"] => (*term, Entry::Common),
                [term, "boost", factor] => {
                    let factor: f64 = factor.parse().map_err(|_| bad("boost is not a number"))?;
                    if !(0.1..=3.0).contains(&factor) {
                        return Err(bad("boost must be from 0.1 to 3"));
                    }
                    (*term, Entry::Boost(factor))
                }
                [term, weight] => {
                    let weight: f64 = weight.parse().map_err(|_| bad("weight is not a number"))?;
                    if !(-3.0..=3.0).contains(&weight) {
                        return Err(bad("weight must be from -3 to 3"));
                    }
                    (*term, Entry::Weight(weight))
                }
                _ => return Err(bad("expected <word> <weight|negator|common|boost n>")),
            };
            // A term the tokeniser would split or change could never match.
            if tokens(term) != [term] {
                return Err(bad("the term is not one lower-case word or emoji"));
            }
            if entries.insert(term.to_string(), entry).is_some() {
                return Err(bad("the term is listed twice"));
            }
        }
        Ok(Lexicon {
            language: language.to_string(),
            entries,
        })
    }

    fn get(&self, token: &str) -> Option<Entry> {
        self.entries.get(token).copied()
    }

    /// Tokens of the text this lexicon knows: its vote for the language.
    fn hits(&self, tokens: &[String]) -> usize {
        tokens
            .iter()
            .filter(|t| self.entries.contains_key(*t))
            .count()
    }
}

/// The built-in scorer: English and Dutch word lists plus emoji.
#[derive(Debug, Clone)]
pub struct LexiconSentiment {
    /// In order of preference when the language is a tie.
    languages: Vec<Lexicon>,
    emoji: Lexicon,
}

/// Parsed once per process: every brand's triage shares it.
static BUILTIN: LazyLock<Arc<LexiconSentiment>> = LazyLock::new(|| {
    let parse = |language, text| {
        Lexicon::parse(language, text).unwrap_or_else(|e| panic!("built-in lexicon: {e}"))
    };
    Arc::new(LexiconSentiment {
        languages: vec![
            parse("en", include_str!("lexicon/en.txt")),
            parse("nl", include_str!("lexicon/nl.txt")),
        ],
        emoji: parse("emoji", include_str!("lexicon/emoji.txt")),
    })
});

impl LexiconSentiment {
    /// The English and Dutch lexicons that ship with webcare, shared.
    pub fn builtin() -> Arc<Self> {
        Arc::clone(&BUILTIN)
    }

    /// A scorer with other word lists (the first language wins ties when
    /// the language is guessed).
    pub fn new(languages: Vec<Lexicon>, emoji: Lexicon) -> Self {
        LexiconSentiment { languages, emoji }
    }

    /// The lexicon for the message's language tag, or the one with the most
    /// hits when there is no tag. `Err` carries an unsupported tag.
    fn lexicon_for(&self, text: &str, language: Option<&str>) -> Result<Option<&Lexicon>, String> {
        match language {
            Some(tag) => {
                let primary = tag.split(['-', '_']).next().unwrap_or(tag).to_lowercase();
                self.languages
                    .iter()
                    .find(|l| l.language == primary)
                    .map(Some)
                    .ok_or(primary)
            }
            None => {
                // Only a text of unknown language is read twice.
                let tokens = tokens(text);
                Ok(self
                    .languages
                    .iter()
                    .map(|l| (l.hits(&tokens), l))
                    .filter(|(hits, _)| *hits > 0)
                    // max_by_key keeps the last of equals; reverse keeps the first.
                    .rev()
                    .max_by_key(|(hits, _)| *hits)
                    .map(|(_, l)| l))
            }
        }
    }
}

impl Sentiment for LexiconSentiment {
    fn score(&self, text: &str, language: Option<&str>) -> SentimentScore {
        let lexicon = match self.lexicon_for(text, language) {
            Ok(lexicon) => lexicon,
            // A language without a word list: saying "neutral" is honest,
            // guessing from another language's words is not.
            Err(unsupported) => return SentimentScore::neutral(Some(unsupported)),
        };
        // Emoji are scored as they are: "niemand reageert 😡" is angry,
        // not the opposite, so negators and boosters skip them.
        let lookup = |token: &str| match lexicon.and_then(|l| l.get(token)) {
            Some(entry) => Some((entry, false)),
            None => self.emoji.get(token).map(|entry| (entry, true)),
        };
        let mut evidence = Vec::new();
        // A negator or booster does not reach past the end of its clause:
        // in "nobody answers. Very disappointed" the disappointment stands.
        for clause in text.split(['.', '!', '?', ';', ':', ',', '\n']) {
            let tokens = tokens(clause);
            // Words of the current phrase ("not", "very") and how far a
            // negator still reaches.
            let mut phrase: Vec<&str> = Vec::new();
            let mut negated = false;
            let mut scope = 0;
            let mut boost = 1.0;
            for token in &tokens {
                let entry = lookup(token);
                if scope > 0 {
                    scope -= 1;
                    if scope == 0 {
                        negated = false;
                        phrase.clear();
                    }
                }
                match entry {
                    Some((Entry::Weight(weight), true)) => {
                        evidence.push(Evidence {
                            term: token.clone(),
                            weight,
                        });
                    }
                    Some((Entry::Negator, _)) => {
                        negated = true;
                        scope = NEGATION_SCOPE + 1;
                        phrase = vec![token];
                        boost = 1.0;
                        continue;
                    }
                    Some((Entry::Boost(factor), _)) => {
                        boost = factor;
                        phrase.push(token);
                        continue;
                    }
                    Some((Entry::Weight(weight), false)) => {
                        let mut value = weight * boost;
                        if negated {
                            value *= NEGATION;
                        }
                        phrase.push(token);
                        evidence.push(Evidence {
                            term: phrase.join(" "),
                            weight: value,
                        });
                        negated = false;
                        scope = 0;
                        phrase.clear();
                    }
                    Some((Entry::Common, _)) | None => {
                        // Keep a negator's words ("not at all happy"), drop a
                        // booster that did not reach a sentiment word.
                        if !negated {
                            phrase.clear();
                        } else {
                            phrase.push(token);
                        }
                    }
                }
                boost = 1.0;
            }
        }
        let sum: f64 = evidence.iter().map(|e| e.weight).sum();
        let exclamations = text.matches('!').count().min(3) as f64;
        let sum = sum * (1.0 + EXCLAMATION * exclamations);
        SentimentScore {
            score: sum / (sum * sum + ALPHA).sqrt(),
            language: lexicon.map(|l| l.language.clone()),
            evidence,
        }
    }
}

/// Splits `text` into lower-case words and emoji: letters and digits make
/// words (in any script), apostrophes inside a word are dropped ("don't" →
/// "dont"), each emoji is a token of its own, everything else separates.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(text.len() / 5);
    let mut word = String::new();
    for c in text.chars() {
        // Most text is ASCII: lower-casing it needs no Unicode tables.
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if matches!(c, '\'' | '’') && !word.is_empty() {
            // Part of the word: "don't", "auto's".
        } else if is_emoji_modifier(c) {
            // Variation selectors, joiners and skin tones belong to the
            // emoji before them; the base emoji is what carries meaning.
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if is_emoji(c) {
                out.push(c.to_string());
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The Unicode blocks emoji live in: pictographs, symbols and dingbats.
/// Coarse but enough to keep them as tokens; whether one carries sentiment
/// is the lexicon's business.
fn is_emoji(c: char) -> bool {
    matches!(u32::from(c),
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0x2190..=0x21FF | 0x2300..=0x23FF)
}

/// Code points that modify the emoji before them.
fn is_emoji_modifier(c: char) -> bool {
    matches!(u32::from(c), 0xFE00..=0xFE0F | 0x200D | 0x20E3 | 0x1F3FB..=0x1F3FF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(text: &str, language: Option<&str>) -> SentimentScore {
        LexiconSentiment::builtin().score(text, language)
    }

    fn terms(s: &SentimentScore) -> Vec<&str> {
        s.evidence.iter().map(|e| e.term.as_str()).collect()
    }

    #[test]
    fn the_builtin_lexicons_are_sizeable() {
        let builtin = LexiconSentiment::builtin();
        for lexicon in &builtin.languages {
            let weighted = lexicon
                .entries
                .values()
                .filter(|e| matches!(e, Entry::Weight(_)))
                .count();
            assert!(weighted >= 200, "{}: {weighted}", lexicon.language);
        }
        assert!(builtin.emoji.entries.len() >= 40);
    }

    #[test]
    fn tokens_are_lower_case_words_and_emoji() {
        assert_eq!(
            tokens("Don't!! Waarom is mijn PAKKET (nr. 123) nog niet er? 😡😡 ❤️ 👍🏽"),
            [
                "dont", "waarom", "is", "mijn", "pakket", "nr", "123", "nog", "niet", "er", "😡",
                "😡", "❤", "👍"
            ]
        );
        assert_eq!(
            tokens("Geïrriteerd, café—Ünïcode"),
            ["geïrriteerd", "café", "ünïcode"]
        );
        assert!(tokens("  ...  ").is_empty());
    }

    #[test]
    fn english_complaints_are_negative() {
        let s = score(
            "Absolutely ridiculous. Third time my order is late and your support is useless!",
            None,
        );
        assert_eq!(s.language.as_deref(), Some("en"));
        assert!(s.score < -0.7, "{s:?}");
        assert_eq!(terms(&s), ["absolutely ridiculous", "late", "useless"]);
        let s = score(
            "My internet has been down since this morning, really frustrating",
            None,
        );
        assert!(s.score < -0.5, "{s:?}");
    }

    #[test]
    fn dutch_complaints_are_negative() {
        let s = score(
            "Wat een waardeloze service. Al drie weken wachten op mijn pakket en niemand reageert 😡",
            None,
        );
        assert_eq!(s.language.as_deref(), Some("nl"));
        assert!(s.score < -0.6, "{s:?}");
        let s = score(
            "Jullie monteur was heel onbeschoft, echt schandalig",
            Some("nl-NL"),
        );
        assert!(s.score < -0.8, "{s:?}");
        assert_eq!(terms(&s), ["heel onbeschoft", "echt schandalig"]);
    }

    #[test]
    fn praise_is_positive() {
        let s = score(
            "Thanks so much, the new router works great! Super helpful team 👍",
            None,
        );
        assert!(s.score > 0.7, "{s:?}");
        let s = score(
            "Top geholpen door Sanne, bedankt! Heel vriendelijk en snel.",
            None,
        );
        assert_eq!(s.language.as_deref(), Some("nl"));
        assert!(s.score > 0.7, "{s:?}");
    }

    #[test]
    fn neutral_questions_are_neutral() {
        for (text, language) in [
            ("What are your opening hours on Saturday?", "en"),
            ("Hoe kan ik mijn adres wijzigen in de app?", "nl"),
            ("Can I change the delivery address of my order?", "en"),
            ("Wanneer wordt mijn bestelling bezorgd?", "nl"),
        ] {
            let s = score(text, None);
            assert_eq!(s.score, 0.0, "{text}: {s:?}");
            assert_eq!(s.language.as_deref(), Some(language), "{text}");
        }
    }

    #[test]
    fn negations_flip_and_weaken() {
        let s = score("I am not happy with this at all", None);
        assert!(s.score < 0.0, "{s:?}");
        assert_eq!(terms(&s), ["not happy"]);
        let s = score("Het eten was niet goed", Some("nl"));
        assert!(s.score < 0.0, "{s:?}");
        assert_eq!(terms(&s), ["niet goed"]);
        // "not bad" is positive, but less so than "good".
        let not_bad = score("not bad", Some("en")).score;
        assert!(not_bad > 0.0 && not_bad < score("good", Some("en")).score);
        // The negator reaches three words, and only the first sentiment word.
        assert_eq!(
            terms(&score("not at all happy, great", Some("en"))),
            ["not at all happy", "great"]
        );
        let far = score("not one of the happy ones", Some("en"));
        assert!(far.score > 0.0, "{far:?}");
        // Negation ends with the clause.
        let s = score("Nobody answers. Very disappointed", Some("en"));
        assert_eq!(terms(&s), ["very disappointed"]);
        // "geen probleem" is a friendly reply, not a complaint.
        assert!(score("Geen probleem!", Some("nl")).score > 0.0);
    }

    #[test]
    fn boosters_and_exclamations_strengthen() {
        let plain = score("bad", Some("en")).score;
        let very = score("very bad", Some("en")).score;
        let shouted = score("very bad!!!", Some("en")).score;
        assert!(shouted < very && very < plain && plain < 0.0);
        let slightly = score("slightly annoyed", Some("en")).score;
        assert!(slightly > score("annoyed", Some("en")).score);
        // A booster only reaches the next word.
        assert_eq!(terms(&score("very much bad", Some("en"))), ["bad"]);
    }

    #[test]
    fn the_language_tag_picks_the_lexicon() {
        // "slecht" is Dutch; read as English it means nothing.
        assert!(score("slecht", Some("nl")).score < 0.0);
        assert_eq!(score("slecht", Some("en")).score, 0.0);
        // Unsupported languages are neutral, emoji included, and say so.
        let s = score("C'est vraiment nul 😡", Some("fr-FR"));
        assert_eq!(s, SentimentScore::neutral(Some("fr".into())));
        // No words known: emoji still count, the language stays unknown.
        let s = score("😡😡", None);
        assert!(s.score < -0.8, "{s:?}");
        assert_eq!(s.language, None);
    }

    #[test]
    fn scores_stay_in_range() {
        let s = score(&"terrible awful worst! ".repeat(50), None);
        assert!((-1.0..=-0.99).contains(&s.score), "{}", s.score);
        let s = score(&"great 😍 ".repeat(50), None);
        assert!((0.99..=1.0).contains(&s.score), "{}", s.score);
    }

    #[test]
    fn bad_lexicon_lines_are_named() {
        for (text, says) in [
            ("good 4", "line 1: weight must be from -3 to 3"),
            ("# c\ngood x", "line 2: weight is not a number"),
            ("good 1\ngood 2", "line 2: the term is listed twice"),
            ("Good 1", "not one lower-case word"),
            ("fed-up -1", "not one lower-case word"),
            ("very boost 9", "boost must be from 0.1 to 3"),
            ("good", "expected <word>"),
        ] {
            let e = Lexicon::parse("en", text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
