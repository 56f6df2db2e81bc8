//! A brand's working hours, as an operator writes them:
//! `mon-fri 09:00-17:00, sat 10:00-14:00`.
//!
//! Each comma-separated part is a day or a day range (`sat-mon` wraps over
//! the week end) and a time range in the brand's local time; `24:00` ends a
//! day. Parts may overlap: the hours are their union. Overnight shifts are
//! written as two parts (`mon-fri 22:00-24:00, tue-sat 00:00-06:00`) so that
//! every part reads the same way: from a time to a later time on one day.

use std::fmt;
use std::str::FromStr;

use jiff::civil::DateTime;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u16 = 24 * 60;

/// When a brand's care team is at work; first-response targets count only
/// these hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    /// Bit `n` set: open on day `n`, Monday being 0.
    days: u8,
    /// Minutes after midnight, `start < end <= 24:00`.
    start: u16,
    end: u16,
}

impl WorkingHours {
    /// Round the clock, every day: what a brand gets without `working_hours`.
    pub fn always() -> Self {
        WorkingHours {
            parts: vec![Part {
                days: 0x7f,
                start: 0,
                end: MINUTES_PER_DAY,
            }],
        }
    }

    /// Is `at` (a local time in the brand's zone) within working hours?
    pub fn is_open(&self, at: DateTime) -> bool {
        let day = u8::try_from(at.weekday().to_monday_zero_offset()).unwrap_or(0);
        let minute = u16::try_from(i32::from(at.hour()) * 60 + i32::from(at.minute())).unwrap_or(0);
        self.parts
            .iter()
            .any(|p| p.days & (1 << day) != 0 && p.start <= minute && minute < p.end)
    }

    /// The open ranges of `weekday` in minutes after local midnight,
    /// sorted and with overlapping or touching parts merged.
    pub(super) fn open_minutes(&self, weekday: jiff::civil::Weekday) -> Vec<(u16, u16)> {
        let day = weekday.to_monday_zero_offset();
        let mut ranges: Vec<(u16, u16)> = self
            .parts
            .iter()
            .filter(|p| p.days & (1 << day) != 0)
            .map(|p| (p.start, p.end))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }
}

impl FromStr for WorkingHours {
    type Err = String;

    /// The error says what is wrong with which part, for the operator.
    fn from_str(text: &str) -> Result<Self, String> {
        let parts = text
            .split(',')
            .map(|part| parse_part(part.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WorkingHours { parts })
    }
}

fn parse_part(part: &str) -> Result<Part, String> {
    let mut words = part.split_whitespace();
    let (Some(days), Some(times), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!(
            "{part:?} is not of the form \"<days> <from>-<to>\", e.g. \"mon-fri 09:00-17:00\""
        ));
    };
    let days = match days.split_once('-') {
        Some((first, last)) => {
            let (first, last) = (day(first)?, day(last)?);
            // `sat-mon` wraps over the end of the week.
            let count = (last + 7 - first) % 7 + 1;
            (0..count).fold(0u8, |bits, i| bits | 1 << ((first + i) % 7))
        }
        None => 1 << day(days)?,
    };
    let (start, end) = times
        .split_once('-')
        .ok_or_else(|| format!("{times:?} is not a time range; write e.g. 09:00-17:00"))?;
    let (start, end) = (time(start)?, time(end)?);
    if start >= end {
        return Err(format!(
            "{times:?} ends before it starts; a range stays within one day \
             (split overnight hours: \"mon 22:00-24:00, tue 00:00-06:00\")"
        ));
    }
    Ok(Part { days, start, end })
}

fn day(name: &str) -> Result<u8, String> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .map(|i| i as u8)
        .ok_or_else(|| format!("{name:?} is not a day; use {}", DAYS.join(", ")))
}

/// `HH:MM` from `00:00` to `24:00`, in minutes after midnight.
fn time(text: &str) -> Result<u16, String> {
    let bad = || format!("{text:?} is not a time; use HH:MM from 00:00 to 24:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let minutes = h * 60 + m;
    if m >= 60 || minutes > MINUTES_PER_DAY {
        return Err(bad());
    }
    Ok(minutes)
}

impl fmt::Display for WorkingHours {
    /// The canonical form: days as ranges where they are consecutive.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let days: Vec<usize> = (0..7).filter(|d| part.days & (1 << d) != 0).collect();
            let runs = days.chunk_by(|a, b| b - a == 1).map(|run| match run {
                [one] => DAYS[*one].to_string(),
                [first, .., last] => format!("{}-{}", DAYS[*first], DAYS[*last]),
                [] => String::new(),
            });
            let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
            // Several runs (a wrapped range such as `sat-mon`) are written
            // as several parts, which read back to the same hours.
            for (j, run) in runs.enumerate() {
                if j > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{run} {}-{}", hm(part.start), hm(part.end))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn hours(text: &str) -> WorkingHours {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn office_hours_and_weekend_shifts() {
        let h = hours("mon-fri 08:00-18:00, sat 10:00-14:00");
        // 2024-05-06 is a Monday.
        assert!(h.is_open(date(2024, 5, 6).at(8, 0, 0, 0)));
        assert!(!h.is_open(date(2024, 5, 6).at(18, 0, 0, 0)));
        assert!(h.is_open(date(2024, 5, 11).at(13, 59, 0, 0)));
        assert!(!h.is_open(date(2024, 5, 12).at(12, 0, 0, 0)));
        assert_eq!(h.to_string(), "mon-fri 08:00-18:00, sat 10:00-14:00");
    }

    #[test]
    fn round_the_clock_and_wrapping_day_ranges() {
        let h = hours("MON-SUN 00:00-24:00");
        assert_eq!(h, WorkingHours::always());
        assert!(h.is_open(date(2024, 5, 12).at(23, 59, 59, 0)));
        let h = hours("sat-mon 9:00-17:00");
        assert!(h.is_open(date(2024, 5, 12).at(9, 0, 0, 0)));
        assert!(!h.is_open(date(2024, 5, 7).at(9, 0, 0, 0)));
        assert_eq!(h.to_string(), "mon 09:00-17:00, sat-sun 09:00-17:00");
        assert_eq!(
            hours(&h.to_string()),
            hours("mon 09:00-17:00, sat-sun 09:00-17:00")
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            ("", "is not of the form"),
            ("mon-fri", "is not of the form"),
            ("mon-fri 09:00-17:00 extra", "is not of the form"),
            ("mon-fry 09:00-17:00", "\"fry\" is not a day"),
            ("mon-fri 09:00", "not a time range"),
            ("mon-fri 9-17", "\"9\" is not a time"),
            ("mon-fri 09:60-17:00", "not a time"),
            ("mon-fri 09:00-24:01", "not a time"),
            ("mon-fri 17:00-09:00", "ends before it starts"),
            ("mon-fri 09:00-17:00,", "is not of the form"),
        ] {
            let e = text.parse::<WorkingHours>().unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
