//! Full-text search on PostgreSQL: the words webcare indexes and looks
//! for, and the snippets it shows.
//!
//! PostgreSQL keeps the index (`search_entries.document`, a `tsvector`
//! under a GIN index) and matches and ranks (`@@`, `ts_rank`); webcare
//! decides what a word is. Text is cut into words here, the way SQLite's
//! `unicode61` tokenizer does it (anything not alphanumeric separates
//! words: "e-mail" is "e" and "mail"), lower-cased and stripped of
//! diacritics ("Café" is "cafe"), and only then handed to the `simple`
//! text search configuration. So:
//!
//! * both backends find the same messages for the same words;
//! * diacritics fold without the `unaccent` extension (which a hosted
//!   database may not offer) and whatever the database's locale;
//! * nothing is stemmed and no stop word dropped: the brands write Dutch
//!   and English, often mixed in one thread, and a per-language dictionary
//!   would stem one language wrongly and drop the other's words ("die",
//!   "had" and "is" are words of both). `simple` only lower-cases.
//!
//! Every document also holds one lexeme naming its brand
//! ([`brand_lexeme`]), which no word can be (words have no `:`): a
//! search asks for it with the words, so the GIN index intersects the
//! brand's posting list with the words' instead of collecting every
//! brand's hits first (the same trick as SQLite's indexed `brand` column).
//! The `brand` column is checked as well.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longest word PostgreSQL indexes (its lexeme limit is 2 047 bytes);
/// longer "words" (base64 blobs, say) are left out, on both sides.
const MAX_WORD_BYTES: usize = 2_047;

/// Folded text indexed per document. A `tsvector` may not exceed 1 MiB;
/// 256 KiB of words stays well below that whatever the words are. What a
/// longer message (a long e-mail) holds beyond it is not searchable.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Words a snippet shows.
const SNIPPET_WORDS: usize = 16;

/// One word of a search: `prefix` when the agent ended it with `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Term {
    pub word: String,
    pub prefix: bool,
}

/// `word` lower-cased, without diacritics.
fn fold(word: &str) -> String {
    // Most words are ASCII: nothing to decompose (ingest folds every word
    // of every message).
    if word.is_ascii() {
        return word.to_ascii_lowercase();
    }
    word.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words of `text` with their byte ranges, in order.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
}

/// What `to_tsvector('simple', …)` gets for `text`: its folded words,
/// separated by spaces, at most [`MAX_DOCUMENT_BYTES`].
pub(super) fn document_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DOCUMENT_BYTES));
    for (_, word) in words(text) {
        let word = fold(word);
        if word.len() > MAX_WORD_BYTES {
            continue;
        }
        if out.len() + word.len() + 1 > MAX_DOCUMENT_BYTES {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word);
    }
    out
}

/// The lexeme that marks a document of `brand`: `brand:` and the name's
/// bytes in hex (a lexeme of the name itself could hold any character).
pub(super) fn brand_lexeme(brand: &str) -> String {
    format!("brand:{}", hex::encode(brand.as_bytes()))
}

/// What an agent typed, as words (see the module docs); `*` at the end of
/// an input word makes its last word a prefix. Never query syntax.
pub(super) fn terms(query: &str) -> Vec<Term> {
    let mut terms = Vec::new();
    for raw in query.split_whitespace() {
        let before = terms.len();
        for (_, word) in words(raw) {
            let word = fold(word);
            if word.len() <= MAX_WORD_BYTES {
                terms.push(Term {
                    word,
                    prefix: false,
                });
            }
        }
        if raw.ends_with('*')
            && terms.len() > before
            && let Some(last) = terms.last_mut()
        {
            last.prefix = true;
        }
    }
    terms
}

/// The `to_tsquery('simple', …)` input for `terms`: every word required.
/// Words are alphanumeric, so quoting them is all the escaping there is.
pub(super) fn tsquery(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|t| {
            if t.prefix {
                format!("'{}':*", t.word)
            } else {
                format!("'{}'", t.word)
            }
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// The `tsquery` literal for [`brand_lexeme`] (hex and `:` need no
/// escaping).
pub(super) fn brand_tsquery(brand: &str) -> String {
    format!("'{}'", brand_lexeme(brand))
}

/// Up to [`SNIPPET_WORDS`] words of `text` around its first hit, hits
/// marked `[…]`, `…` where text was left out: what SQLite's `snippet()`
/// shows.
pub(super) fn snippet(text: &str, terms: &[Term]) -> String {
    let words: Vec<(usize, &str)> = words(text).collect();
    let hit = |word: &str| {
        let word = fold(word);
        terms.iter().any(|t| {
            if t.prefix {
                word.starts_with(&t.word)
            } else {
                word == t.word
            }
        })
    };
    let first = words.iter().position(|(_, w)| hit(w)).unwrap_or(0);
    let start = first.saturating_sub(SNIPPET_WORDS / 4);
    let end = (start + SNIPPET_WORDS).min(words.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = words.get(start).map_or(0, |(offset, _)| *offset);
    for &(offset, word) in &words[start..end] {
        out.push_str(&text[at..offset]);
        if hit(word) {
            out.push('[');
            out.push_str(word);
            out.push(']');
        } else {
            out.push_str(word);
        }
        at = offset + word.len();
    }
    if end < words.len() {
        out.push('…');
    } else {
        out.push_str(&text[at..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_like_unicode61() {
        assert_eq!(
            document_text("Mijn koffie in het CAFÉ was koud, e-mail: ça va?"),
            "mijn koffie in het cafe was koud e mail ca va"
        );
        assert_eq!(document_text("  -- ** "), "");
    }

    #[test]
    fn input_is_words_never_syntax() {
        let t = terms("refund NEAR(\"x\") e-mail fact* 'quote' *");
        assert_eq!(
            tsquery(&t),
            "'refund' & 'near' & 'x' & 'e' & 'mail' & 'fact':* & 'quote'"
        );
        assert!(terms("\" * -- ()").is_empty());
        assert_eq!(brand_tsquery("acme"), "'brand:61636d65'");
    }

    #[test]
    fn snippets_mark_hits_around_the_first() {
        let t = terms("cafe");
        assert_eq!(
            snippet("Mijn koffie in het café was koud", &t),
            "Mijn koffie in het [café] was koud"
        );
        let long = (1..=40)
            .map(|n| format!("w{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        let s = snippet(&long, &terms("w2*"));
        assert!(s.starts_with("[w1]") || s.starts_with("w1"), "{s}");
        let s = snippet(&long, &terms("w20"));
        assert_eq!(
            s,
            "…w16 w17 w18 w19 [w20] w21 w22 w23 w24 w25 w26 w27 w28 w29 w30 w31…"
        );
        let s = snippet(&long, &terms("w38"));
        assert!(s.starts_with("…w34 ") && s.ends_with("w40"), "{s}");
    }
}
