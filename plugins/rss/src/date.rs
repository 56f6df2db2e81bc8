//! Feed dates: RFC 822/2822 (`pubDate` of RSS 2.0) and RFC 3339 (Atom
//! `published`/`updated`, `dc:date`).

use webcare_plugin::{TimestampMs, time};

/// Parses a feed date in either format, as milliseconds since the epoch.
/// `None` for text that is neither (feeds in the wild carry all sorts).
pub fn parse_feed_date(text: &str) -> Option<TimestampMs> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    // RFC 3339 starts with a four-digit year and a dash.
    if text.len() > 4
        && text.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && text.as_bytes()[4] == b'-'
    {
        return time::parse_rfc3339(text).ok();
    }
    parse_rfc822(text)
}

/// Parses an RFC 822/2822 date such as `Wed, 20 Nov 2026 09:15:00 GMT` or
/// `20 Nov 26 10:15 +0100`: optional weekday, one- or two-digit day,
/// two- or four-digit year, optional seconds, a numeric offset or a named
/// zone (`GMT`, `UT`, `UTC`, `Z`, the US zones, military letters).
pub fn parse_rfc822(text: &str) -> Option<TimestampMs> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    // The weekday, if any, ends with a comma; some feeds forget the comma.
    let text = match text.find(',') {
        Some(at) => &text[at + 1..],
        None => text,
    };
    let mut fields = text.split_whitespace();
    let mut first = fields.next()?;
    if first.parse::<u32>().is_err() {
        // A weekday without its comma.
        first = fields.next()?;
    }
    let day: u32 = first.parse().ok()?;
    let month_name = fields.next()?.to_ascii_lowercase();
    let month = MONTHS
        .iter()
        .position(|name| month_name.starts_with(name))?;
    let year_text = fields.next()?;
    let mut year: i64 = year_text.parse().ok()?;
    if year_text.len() == 2 {
        // RFC 2822 §4.3: 00-49 are 2000-2049, 50-99 are 1950-1999.
        year += if year < 50 { 2000 } else { 1900 };
    }
    let mut clock = fields.next()?.split(':');
    let hour: i64 = clock.next()?.parse().ok()?;
    let minute: i64 = clock.next()?.parse().ok()?;
    let second: i64 = clock.next().map_or(Some(0), |s| s.parse().ok())?;
    if clock.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset_minutes = fields.next().map_or(Some(0), zone_offset_minutes)?;
    let days = days_from_civil(year, u32::try_from(month).ok()? + 1, day)?;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000)
}

/// The offset of a zone from UTC in minutes: `+0100`, `-05:30`, or a name.
fn zone_offset_minutes(zone: &str) -> Option<i64> {
    if let Some(sign) = zone.chars().next().filter(|c| *c == '+' || *c == '-') {
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hours: i64 = digits[..2].parse().ok()?;
        let minutes: i64 = digits[2..].parse().ok()?;
        let total = hours * 60 + minutes;
        return Some(if sign == '-' { -total } else { total });
    }
    let hours = match zone.to_ascii_uppercase().as_str() {
        "GMT" | "UT" | "UTC" | "Z" => 0,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        "CET" => 1,
        "CEST" => 2,
        // RFC 2822 §4.3: other military zones are to be read as +0000.
        name if name.len() == 1 && name.chars().all(|c| c.is_ascii_alphabetic()) => 0,
        _ => return None,
    };
    Some(hours * 60)
}

/// Days since 1970-01-01 of a proleptic Gregorian date, checking the day
/// exists.
fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day == 0 || day > month_days[month as usize - 1] {
        return None;
    }
    // Count from 1 March so the leap day ends the year.
    let (y, m) = if month <= 2 {
        (year - 1, i64::from(month) + 9)
    } else {
        (year, i64::from(month) - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-20T09:15:00Z.
    const AT: i64 = 1_795_166_100_000;

    #[test]
    fn rfc822_dates_in_their_many_forms() {
        for text in [
            "Fri, 20 Nov 2026 09:15:00 GMT",
            "Fri, 20 Nov 2026 09:15:00 +0000",
            "Fri, 20 Nov 2026 10:15:00 +0100",
            "Fri, 20 Nov 2026 04:15:00 EST",
            "20 Nov 2026 09:15 UT",
            "Fri,20 Nov 26 09:15:00 Z",
            "Friday, 20 November 2026 09:15:00 GMT",
            "Fri, 20 Nov 2026 01:15:00 PST",
        ] {
            assert_eq!(parse_feed_date(text), Some(AT), "{text}");
        }
        assert_eq!(
            parse_feed_date("Sat, 1 Jan 2000 00:00:00 GMT"),
            Some(946_684_800_000)
        );
        assert_eq!(
            parse_feed_date("Thu, 01 Jan 1970 00:00:00 -0130"),
            Some(5_400_000)
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(parse_feed_date("2026-11-20T10:15:00+01:00"), Some(AT));
        assert_eq!(parse_feed_date("2026-11-20T09:15:00Z"), Some(AT));
    }

    #[test]
    fn nonsense_is_none() {
        for text in [
            "",
            "yesterday",
            "Fri, 31 Nov 2026 09:15:00 GMT",
            "Fri, 20 Foo 2026 09:15:00 GMT",
            "Fri, 20 Nov 2026 25:15:00 GMT",
            "Fri, 20 Nov 2026 09:15:00 +01",
            "Fri, 20 Nov 2026 09:15:00 XYZ",
        ] {
            assert_eq!(parse_feed_date(text), None, "{text}");
        }
    }

    #[test]
    fn days_from_civil_matches_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(1969, 12, 31), Some(-1));
        assert_eq!(days_from_civil(2024, 2, 29), Some(19_782));
        assert_eq!(days_from_civil(2023, 2, 29), None);
    }
}
