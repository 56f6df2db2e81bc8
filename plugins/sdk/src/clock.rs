//! Wall-clock time from the host (`clock.now`).

use crate::TimestampMs;
use crate::bindings::webcare::connector::clock;

/// Milliseconds since the Unix epoch, UTC, as the host sees it.
pub fn now_ms() -> TimestampMs {
    clock::now()
}
