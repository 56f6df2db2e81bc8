//! The connector's secrets for this brand (API tokens, passwords), declared
//! with [`SettingSpec::secret`](crate::SettingSpec::secret). Never log a
//! secret or put it in an error; the helpers here never do.

use crate::bindings::webcare::connector::config;
use crate::{Error, Result};

/// The secret `name`, or `None` if the operator did not configure it.
pub fn get(name: &str) -> Option<String> {
    config::get_secret(name)
}

/// The secret `name`; a missing secret is [`Error::InvalidInput`] naming the
/// key (never a value).
pub fn require(name: &str) -> Result<String> {
    get(name).ok_or_else(|| Error::invalid_input(format!("secret `{name}` is not configured")))
}
