//! Lenient JSON leaves of Graph payloads: ids that arrive as strings or as
//! numbers, and times that arrive as Unix seconds, Unix milliseconds or ISO
//! 8601 text.
//!
//! Older Messenger payloads carry numeric ids (`"id": 12345654332`); the
//! contract wants every id as a string, and a `u64` id must never pass
//! through `f64`, so numbers are turned into text digit for digit.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use webcare_plugin::{Error, Result, TimestampMs, time};

/// A Graph id, as text, whether the payload sent a string or a number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Id(pub String);

impl Id {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;

        impl Visitor<'_> for IdVisitor {
            type Value = Id;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id as a string or an integer")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Id, E> {
                Ok(Id(value.to_owned()))
            }

            fn visit_string<E: de::Error>(self, value: String) -> Result<Id, E> {
                Ok(Id(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Id, E> {
                Ok(Id(value.to_string()))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Id, E> {
                Ok(Id(value.to_string()))
            }
        }

        deserializer.deserialize_any(IdVisitor)
    }
}

/// A point in time as Graph writes it, in milliseconds since the epoch.
///
/// Numbers below 10^11 are Unix seconds (feed `created_time`, entry `time`);
/// larger ones are milliseconds (Messenger `timestamp`). Text is ISO 8601
/// as the Graph API returns it (`2024-05-01T12:00:00+0000`: an offset
/// without a colon, which RFC 3339 parsers refuse) or RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GraphTime(pub TimestampMs);

/// Below this, a number is a count of seconds: 10^11 seconds is the year
/// 5138, 10^11 milliseconds is March 1973, before Facebook existed.
const SECONDS_BELOW: i64 = 100_000_000_000;

impl GraphTime {
    /// A number from the payload as seconds or milliseconds (see the type).
    pub fn from_number(value: i64) -> Self {
        if value.abs() < SECONDS_BELOW {
            Self(value.saturating_mul(1000))
        } else {
            Self(value)
        }
    }

    /// Parses Graph's ISO 8601 text (`+0000` offsets accepted).
    pub fn parse(text: &str) -> Result<Self> {
        if let Ok(ms) = time::parse_rfc3339(text) {
            return Ok(Self(ms));
        }
        // `...+0000` / `...-0130`: put the colon RFC 3339 wants in the offset.
        // `get` rather than slicing: the text is channel data and may not be
        // ASCII where the offset should be.
        let split = text.len().saturating_sub(5);
        if let (Some(head), Some(offset)) = (text.get(..split), text.get(split..))
            && let [sign @ (b'+' | b'-'), digits @ ..] = offset.as_bytes()
            && digits.len() == 4
            && digits.iter().all(u8::is_ascii_digit)
        {
            let (hours, minutes) = offset[1..].split_at(2);
            let fixed = format!("{head}{}{hours}:{minutes}", char::from(*sign));
            if let Ok(ms) = time::parse_rfc3339(&fixed) {
                return Ok(Self(ms));
            }
        }
        Err(Error::invalid_input(format!(
            "`{text}` is not a Graph API timestamp"
        )))
    }
}

impl<'de> Deserialize<'de> for GraphTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;

        impl Visitor<'_> for TimeVisitor {
            type Value = GraphTime;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Unix time in seconds or milliseconds, or ISO 8601 text")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<GraphTime, E> {
                i64::try_from(value)
                    .map(GraphTime::from_number)
                    .map_err(|_| E::custom(format!("time {value} is out of range")))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<GraphTime, E> {
                Ok(GraphTime::from_number(value))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<GraphTime, E> {
                if value.is_finite() && value.abs() < 1e15 {
                    // Fractional seconds (rare): keep the milliseconds.
                    #[allow(clippy::cast_possible_truncation)]
                    let whole = value.trunc() as i64;
                    if whole.abs() < SECONDS_BELOW {
                        #[allow(clippy::cast_possible_truncation)]
                        return Ok(GraphTime((value * 1000.0).floor() as i64));
                    }
                    return Ok(GraphTime(whole));
                }
                Err(E::custom(format!("time {value} is out of range")))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<GraphTime, E> {
                GraphTime::parse(value).map_err(|error| E::custom(error.detail()))
            }
        }

        deserializer.deserialize_any(TimeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_strings_and_numbers() {
        let ids: Vec<Id> =
            serde_json::from_str(r#"["12_34", 12345654332, -7, 18446744073709551615]"#).unwrap();
        let texts: Vec<&str> = ids.iter().map(Id::as_str).collect();
        assert_eq!(
            texts,
            ["12_34", "12345654332", "-7", "18446744073709551615"]
        );
        assert!(serde_json::from_str::<Id>("{}").is_err());
    }

    #[test]
    fn times_accept_seconds_millis_and_graph_text() {
        let times: Vec<GraphTime> = serde_json::from_str(
            r#"[1449135003, 1457764197627, "2024-05-01T12:00:00+0000", "2024-05-01T14:00:00+02:00", "2024-05-01T12:30:00-0130"]"#,
        )
        .unwrap();
        assert_eq!(
            times,
            [
                GraphTime(1_449_135_003_000),
                GraphTime(1_457_764_197_627),
                GraphTime(1_714_564_800_000),
                GraphTime(1_714_564_800_000),
                GraphTime(1_714_572_000_000),
            ]
        );
        assert!(serde_json::from_str::<GraphTime>(r#""yesterday""#).is_err());
        assert!(serde_json::from_str::<GraphTime>(r#""2024-05-01T12:00:00+00""#).is_err());
        for text in [
            "",
            "+0000",
            "ééééé",
            "2024-05-01T12:00:00é0000",
            "2024-05-01T12:00:00+ü00",
        ] {
            assert!(GraphTime::parse(text).is_err(), "{text}");
        }
    }
}
