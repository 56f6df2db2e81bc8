//! The file as written: serde structs that mirror the TOML, with spans on
//! every value that is checked later, and a deserializer pass that reports
//! every schema problem instead of only the first.
//!
//! Every field is optional here: which keys are required, and what the
//! defaults are, is decided in [`super::validate`], where a missing key can
//! be reported together with all the other problems.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub host: Option<RawHost>,
    pub storage: Option<RawStorage>,
    pub stream: Option<Spanned<RawStream>>,
    #[serde(default)]
    pub brand: Vec<Spanned<RawBrand>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    pub data_dir: Option<Spanned<String>>,
    pub listen: Option<Spanned<String>>,
    pub component_cache: Option<Spanned<String>>,
    pub shutdown_grace: Option<Spanned<String>>,
    pub id: Option<Spanned<String>>,
    pub lease_time: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub kind: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    /// A string or a secret reference table; checked in validate.
    pub url: Option<Spanned<toml::Value>>,
    pub pool_size: Option<Spanned<u64>>,
    pub ca_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStream {
    pub kind: Option<Spanned<String>>,
    /// A string or a secret reference table; checked in validate.
    pub url: Option<Spanned<toml::Value>>,
    pub stream: Option<Spanned<String>>,
    pub subject_prefix: Option<Spanned<String>>,
    pub duplicate_window_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBrand {
    pub id: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub time_zone: Option<Spanned<String>>,
    pub working_hours: Option<Spanned<String>>,
    pub first_response_target: Option<Spanned<String>>,
    pub triage: Option<Spanned<RawTriage>>,
    pub crisis: Option<Spanned<RawCrisis>>,
    /// Saved replies and acknowledgement templates: name → text.
    #[serde(default)]
    pub replies: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub connector: Vec<Spanned<RawConnector>>,
}

/// `[brand.crisis]`: see [`crate::care::crisis::CrisisPolicy`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCrisis {
    pub enabled: Option<Spanned<bool>>,
    pub window: Option<Spanned<String>>,
    pub baseline: Option<Spanned<String>>,
    pub factor: Option<Spanned<f64>>,
    pub min_messages: Option<Spanned<u64>>,
    pub team: Option<Spanned<String>>,
    pub webhook_url: Option<Spanned<String>>,
}

/// `[brand.triage]`: see [`crate::triage::TriagePolicy`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTriage {
    pub urgency_keywords: Option<Vec<Spanned<String>>>,
    pub crisis_keywords: Option<Vec<Spanned<String>>>,
    pub high_reach_followers: Option<Spanned<u64>>,
    pub ignore_proactive_below_followers: Option<Spanned<u64>>,
    pub default_team: Option<Spanned<String>>,
    #[serde(default)]
    pub weights: RawWeights,
    pub buckets: Option<Spanned<RawBuckets>>,
    /// Connector id → points; any TOML integer, range-checked later.
    #[serde(default)]
    pub channel_points: BTreeMap<String, Spanned<i64>>,
    #[serde(default)]
    pub acknowledge: Vec<Spanned<RawAcknowledge>>,
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeights {
    pub base: Option<Spanned<u64>>,
    pub addressed: Option<Spanned<u64>>,
    pub reach: Option<Spanned<u64>>,
    pub verified: Option<Spanned<u64>>,
    pub urgency: Option<Spanned<u64>>,
    pub crisis: Option<Spanned<u64>>,
    pub negative: Option<Spanned<u64>>,
    pub private: Option<Spanned<u64>>,
    pub waiting_per_hour: Option<Spanned<u64>>,
    pub waiting_max: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBuckets {
    pub urgent: Option<Spanned<u64>>,
    pub high: Option<Spanned<u64>>,
    pub normal: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcknowledge {
    #[serde(default)]
    pub kinds: Vec<Spanned<String>>,
    #[serde(default)]
    pub channels: Vec<Spanned<String>>,
    pub template: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    #[serde(default)]
    pub keywords: Vec<Spanned<String>>,
    #[serde(default)]
    pub channels: Vec<Spanned<String>>,
    pub team: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnector {
    pub id: Option<Spanned<String>>,
    pub plugin: Option<Spanned<String>>,
    pub enabled: Option<bool>,
    pub poll: Option<bool>,
    pub poll_interval: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub limits: RawLimits,
    /// Any TOML value, so that a float or an array gets a message about
    /// settings rather than a generic type error.
    #[serde(default)]
    pub settings: BTreeMap<String, Spanned<toml::Value>>,
    /// Any TOML value, so that an inline secret gets its own message.
    #[serde(default)]
    pub secrets: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub memory_mib: Option<Spanned<u64>>,
    pub cpu_ms: Option<Spanned<u64>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub max_messages: Option<Spanned<u64>>,
}

/// One step of a key path: `brand`, `[1]`, `connector`, `[0]`, `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// A problem serde found, located in the document.
#[derive(Debug)]
pub(super) struct SchemaError {
    /// Path of the key that was at fault; empty when it could not be told.
    pub path: Vec<Seg>,
    pub span: Option<Range<usize>>,
    pub message: String,
}

/// Deserializes the document into [`RawConfig`], reporting every key that
/// does not fit: on each error the offending key is dropped from the tree
/// and deserialization starts again, so one pass finds all unknown keys and
/// wrong types. `None` when an error could not be pinned to a key (then
/// nothing further can be trusted).
pub(super) fn deserialize(mut doc: Spanned<DeTable<'_>>) -> (Option<RawConfig>, Vec<SchemaError>) {
    let mut errors = Vec::new();
    loop {
        match RawConfig::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(raw) => return (Some(raw), errors),
            Err(e) => {
                let span = e.span();
                let path = span
                    .as_ref()
                    .and_then(|span| remove_key_at(doc.get_mut(), span.start));
                let found = path.is_some();
                errors.push(SchemaError {
                    path: path.unwrap_or_default(),
                    span,
                    message: friendly(e.message()),
                });
                if !found {
                    return (None, errors);
                }
            }
        }
    }
}

/// Removes the key whose name or value covers byte `at`, descending into
/// sub-tables and arrays of tables; returns its path.
fn remove_key_at(table: &mut DeTable<'_>, at: usize) -> Option<Vec<Seg>> {
    let mut hit = None;
    for (key, value) in table.iter_mut() {
        let name = || Seg::Key(key.get_ref().to_string());
        if key.span().contains(&at) {
            hit = Some(key.clone());
            break;
        }
        // Sub-tables' spans cover only their header, not their keys:
        // search inside them whatever their span.
        match value.get_mut() {
            DeValue::Table(inner) => {
                if let Some(mut path) = remove_key_at(inner, at) {
                    path.insert(0, name());
                    return Some(path);
                }
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let DeValue::Table(inner) = item.get_mut()
                        && let Some(mut path) = remove_key_at(inner, at)
                    {
                        path.splice(0..0, [name(), Seg::Index(i)]);
                        return Some(path);
                    }
                }
            }
            _ => {}
        }
        if value.span().contains(&at) {
            hit = Some(key.clone());
            break;
        }
    }
    let key = hit?;
    table.remove(&key);
    Some(vec![Seg::Key(key.into_inner().to_string())])
}

/// serde's wording, in the operator's terms: "key" not "field", TOML type
/// names not Rust ones, and a likely fix for a misspelt key.
fn friendly(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (found, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let allowed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = allowed
            .iter()
            .filter(|known| {
                edit_distance(found, known) <= 2 || (found.len() >= 3 && known.starts_with(found))
            })
            .min_by_key(|known| edit_distance(found, known))
            .map(|known| format!("did you mean `{known}`? "))
            .unwrap_or_default();
        return if allowed.is_empty() {
            "unknown key; remove it".to_string()
        } else {
            format!("unknown key; {hint}allowed here: {}", allowed.join(", "))
        };
    }
    let mut text = message.to_string();
    for (rust, toml) in [
        ("u64", "a whole number of 0 or more"),
        ("a boolean", "true or false"),
        ("a sequence", "an array"),
        ("a map", "a table"),
    ] {
        text = text.replace(&format!("expected {rust}"), &format!("expected {toml}"));
    }
    if let Some(start) = text.find("expected struct Raw") {
        text.replace_range(start.., "expected a table");
    }
    if text.ends_with("expected a string") {
        format!("{text}; put the value in quotes")
    } else {
        format!("{text}; fix the value")
    }
}

/// Levenshtein distance, for "did you mean" hints on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_get_a_spelling_hint() {
        assert_eq!(
            friendly("unknown field `pol_interval`, expected one of `id`, `poll_interval`"),
            "unknown key; did you mean `poll_interval`? allowed here: id, poll_interval"
        );
        assert_eq!(
            friendly("unknown field `colour`, expected `id`"),
            "unknown key; allowed here: id"
        );
        assert_eq!(
            friendly("invalid type: string \"x\", expected u64"),
            "invalid type: string \"x\", expected a whole number of 0 or more; fix the value"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
