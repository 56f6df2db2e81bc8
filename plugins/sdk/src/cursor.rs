//! Typed poll cursors, stored by the host as JSON text.
//!
//! The host keeps a connector's cursor as an opaque string of at most 4 KiB
//! and commits it together with the batch's messages. These helpers let a
//! connector keep a structured cursor instead:
//!
//! ```
//! use webcare_plugin::cursor;
//!
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct Position {
//!     since_id: String,
//! }
//!
//! let text = cursor::encode(&Position { since_id: "42".into() })?;
//! let back: Option<Position> = cursor::decode(Some(text))?;
//! assert_eq!(back, Some(Position { since_id: "42".into() }));
//! assert_eq!(cursor::decode::<Position>(None)?, None);
//! # Ok::<(), webcare_plugin::Error>(())
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The largest cursor the host accepts, in bytes.
pub const MAX_CURSOR_BYTES: usize = 4096;

/// Parses the cursor the host passed to `poll`. `None` (the very first poll)
/// stays `None`; text that is not the JSON of a `T` is
/// [`Error::InvalidInput`].
pub fn decode<T: DeserializeOwned>(cursor: Option<String>) -> Result<Option<T>> {
    cursor
        .map(|text| {
            serde_json::from_str(&text).map_err(|error| {
                Error::invalid_input(format!("the stored cursor is not valid: {error}"))
            })
        })
        .transpose()
}

/// Writes `value` as a cursor for [`Batch::next_cursor`](crate::Batch).
/// Fails with [`Error::InvalidInput`] if it cannot be written as JSON or is
/// longer than [`MAX_CURSOR_BYTES`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let text = serde_json::to_string(value)
        .map_err(|error| Error::invalid_input(format!("cursor cannot be written: {error}")))?;
    if text.len() > MAX_CURSOR_BYTES {
        return Err(Error::invalid_input(format!(
            "cursor is {} bytes, more than the {MAX_CURSOR_BYTES} the host stores",
            text.len()
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Position {
        since: i64,
        token: Option<String>,
    }

    #[test]
    fn cursors_round_trip() {
        let position = Position {
            since: -5,
            token: Some("naïve ✓".into()),
        };
        let text = encode(&position).unwrap();
        assert_eq!(decode::<Position>(Some(text)).unwrap(), Some(position));
        assert_eq!(decode::<Position>(None).unwrap(), None);
    }

    #[test]
    fn bad_cursors_are_invalid_input() {
        let error = decode::<Position>(Some("not json".into())).unwrap_err();
        assert!(
            matches!(error, Error::InvalidInput(detail) if detail.starts_with("the stored cursor"))
        );
        let error = encode(&"x".repeat(MAX_CURSOR_BYTES)).unwrap_err();
        assert!(matches!(error, Error::InvalidInput(_)));
    }
}
