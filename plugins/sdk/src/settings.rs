//! The connector's settings for this brand, as declared in
//! [`PluginInfo::settings`](crate::PluginInfo) and configured by the
//! operator. The host has already checked required keys and value types and
//! filled in defaults; secrets are read with [`secrets`](crate::secrets).

use std::fmt::Display;
use std::str::FromStr;

use crate::bindings::webcare::connector::config;
use crate::{Error, Result};

/// The value of setting `name`, or `None` if it is not set and has no default.
pub fn get(name: &str) -> Option<String> {
    config::get_setting(name)
}

/// The value of setting `name`; a missing value is [`Error::InvalidInput`]
/// naming the key.
pub fn require(name: &str) -> Result<String> {
    get(name).ok_or_else(|| missing(name))
}

/// The value of setting `name` parsed as `T` (an integer, a `bool`, ...).
/// A missing or unparsable value is [`Error::InvalidInput`] naming the key.
pub fn parse<T>(name: &str) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    parse_value(name, &require(name)?)
}

/// The setting `name` split at commas, each item trimmed, empty items
/// dropped; empty if the setting is not set. For `text-list` settings.
pub fn list(name: &str) -> Vec<String> {
    get(name)
        .map(|value| split_list(&value))
        .unwrap_or_default()
}

/// The error for a missing setting.
fn missing(name: &str) -> Error {
    Error::invalid_input(format!("setting `{name}` is not configured"))
}

/// Parses `value` of setting `name` as `T`.
fn parse_value<T>(name: &str, value: &str) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    value.trim().parse().map_err(|error| {
        Error::invalid_input(format!(
            "setting `{name}` = `{value}` is not valid: {error}"
        ))
    })
}

/// Splits a `text-list` value.
fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_or_name_the_key() {
        assert_eq!(parse_value::<u32>("page_size", " 50 ").unwrap(), 50);
        assert!(parse_value::<bool>("flag", "true").unwrap());
        let error = parse_value::<u32>("page_size", "many").unwrap_err();
        assert!(matches!(error, Error::InvalidInput(detail)
            if detail.starts_with("setting `page_size` = `many` is not valid")));
        assert!(
            matches!(missing("base_url"), Error::InvalidInput(detail) if detail.contains("`base_url`"))
        );
    }

    #[test]
    fn lists_split_at_commas() {
        assert_eq!(split_list(" a, b ,,c "), vec!["a", "b", "c"]);
        assert!(split_list("").is_empty());
    }
}
