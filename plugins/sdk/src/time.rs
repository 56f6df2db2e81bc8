//! Timestamps: the contract's [`TimestampMs`] is
//! milliseconds since the Unix epoch, UTC; channels mostly speak RFC 3339.
//!
//! ```
//! use webcare_plugin::time;
//!
//! let ms = time::parse_rfc3339("2024-05-01T14:00:00.250+02:00")?;
//! assert_eq!(ms, 1_714_564_800_250);
//! assert_eq!(time::format_rfc3339(ms)?, "2024-05-01T12:00:00.25Z");
//! # Ok::<(), webcare_plugin::Error>(())
//! ```

use ::time::format_description::well_known::Rfc3339;
use ::time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::{Error, Result, TimestampMs};

/// Nanoseconds per millisecond.
const NANOS_PER_MS: i128 = 1_000_000;

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00Z`, any offset, any
/// fraction of a second) into milliseconds since the epoch; sub-millisecond
/// digits are dropped (rounded towards the past). Anything else is
/// [`Error::InvalidInput`].
pub fn parse_rfc3339(text: &str) -> Result<TimestampMs> {
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|error| {
        Error::invalid_input(format!("`{text}` is not an RFC 3339 timestamp: {error}"))
    })?;
    Ok(to_ms(at))
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC
/// (`2024-05-01T12:00:00Z`, with a fraction only when there is one). Fails
/// for instants outside the years 0000 to 9999.
pub fn format_rfc3339(ms: TimestampMs) -> Result<String> {
    let out_of_range =
        || Error::invalid_input(format!("{ms} ms is outside the years 0000 to 9999"));
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * NANOS_PER_MS)
        .map_err(|_| out_of_range())?;
    at.format(&Rfc3339).map_err(|_| out_of_range())
}

/// Parses an HTTP-date in the preferred IMF-fixdate form
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110) into milliseconds since the
/// epoch, as used by `Retry-After`, `Date` and `Last-Modified`. The obsolete
/// RFC 850 and asctime forms are refused.
pub fn parse_http_date(text: &str) -> Result<TimestampMs> {
    parse_imf_fixdate(text.trim())
        .map(to_ms)
        .ok_or_else(|| Error::invalid_input(format!("`{text}` is not an HTTP-date")))
}

/// Parses `Sun, 06 Nov 1994 08:49:37 GMT`; the weekday name is checked for
/// form, not against the date.
fn parse_imf_fixdate(text: &str) -> Option<OffsetDateTime> {
    const WEEKDAYS: [&str; 7] = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut fields = text.split(' ');
    let (Some(weekday), Some(day), Some(month), Some(year), Some(clock), Some("GMT"), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return None;
    };
    if !WEEKDAYS.contains(&weekday) {
        return None;
    }
    let month = MONTHS.iter().position(|name| *name == month)?;
    let month = Month::try_from(u8::try_from(month + 1).ok()?).ok()?;
    let date = Date::from_calendar_date(digits(year, 4)?, month, digits(day, 2)?).ok()?;
    let mut hms = clock.split(':');
    let (Some(hour), Some(minute), Some(second), None) =
        (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return None;
    };
    let time = Time::from_hms(digits(hour, 2)?, digits(minute, 2)?, digits(second, 2)?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// `text` as a number if it is exactly `len` ASCII digits.
fn digits<T: std::str::FromStr>(text: &str, len: usize) -> Option<T> {
    if text.len() != len || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Milliseconds since the epoch, rounded towards the past.
fn to_ms(at: OffsetDateTime) -> TimestampMs {
    let ms = at.unix_timestamp_nanos().div_euclid(NANOS_PER_MS);
    // Every instant `time` represents (years ±9999) fits an i64 of ms.
    TimestampMs::try_from(ms).unwrap_or(if ms < 0 {
        TimestampMs::MIN
    } else {
        TimestampMs::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00Z").unwrap(),
            1_714_564_800_000
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T14:00:00+02:00").unwrap(),
            1_714_564_800_000
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.123456Z").unwrap(),
            1_714_564_800_123
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.9995Z").unwrap(), -1);
    }

    #[test]
    fn rfc3339_rejects_other_formats() {
        for text in ["2024-05-01", "2024-05-01 12:00:00", "yesterday", ""] {
            let error = parse_rfc3339(text).unwrap_err();
            assert!(matches!(error, Error::InvalidInput(_)), "{text}");
        }
    }

    #[test]
    fn rfc3339_formats_in_utc_and_round_trips() {
        assert_eq!(format_rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(1_714_564_800_007).unwrap(),
            "2024-05-01T12:00:00.007Z"
        );
        for ms in [-86_400_001, 0, 1, 1_714_564_800_999] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms).unwrap()).unwrap(), ms);
        }
        assert!(format_rfc3339(i64::MAX).is_err());
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap(),
            784_111_777_000
        );
        assert_eq!(
            parse_http_date(" Thu, 29 Feb 2024 23:59:59 GMT ").unwrap(),
            1_709_251_199_000
        );
        for text in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Thu, 29 Feb 2024 23:59:60 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
        ] {
            assert!(parse_http_date(text).is_err(), "{text}");
        }
    }
}
