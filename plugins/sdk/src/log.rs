//! Diagnostics into the host's log, tagged with brand and connector.
//!
//! Lines longer than 4 KiB are cut and a call that logs more than 256 lines
//! is throttled by the host. The host redacts the connector's secrets, but
//! do not rely on it: never log a secret. Anything written to stdout or
//! stderr also ends up in the host's log.
//!
//! ```no_run
//! use webcare_plugin::log;
//!
//! log::info("polling");
//! log::warn(format!("skipped {} items without an id", 3));
//! ```

use crate::bindings::webcare::connector::log as host;
pub use crate::bindings::webcare::connector::log::Level;

/// Writes one line at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    host::log(level, message.as_ref());
}

/// Writes one line at [`Level::Trace`].
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message);
}

/// Writes one line at [`Level::Debug`].
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message);
}

/// Writes one line at [`Level::Info`].
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message);
}

/// Writes one line at [`Level::Warn`].
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message);
}

/// Writes one line at [`Level::Error`].
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message);
}
