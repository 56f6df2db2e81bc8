//! Service-level arithmetic in working time: how much of the brand's
//! working hours lies between two instants, and when a target measured in
//! working time runs out.
//!
//! Working hours are civil times in the brand's IANA zone, so each day's
//! open ranges are turned into instants with that day's offset. That makes
//! a day on which the clocks change as long as it really is: an
//! `00:00-24:00` Sunday in Europe/Amsterdam lasts 23 hours on 2026-03-29 and
//! 25 hours on 2026-10-25. A range boundary that falls into a gap (a local
//! time that does not exist, such as 02:30 on the spring-forward night) is
//! moved to the transition itself, so the missing hour counts as no time; a
//! boundary in a fold (a local time that occurs twice) is read as its first
//! occurrence, so a range ending in the fold ends at its first occurrence.

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use super::WorkingHours;

impl WorkingHours {
    /// Working time in `[start, end)`: the length of the part of that span
    /// that lies within these hours, read in `tz`. Zero when `end` is not
    /// after `start`.
    pub fn working_time_between(
        &self,
        tz: &TimeZone,
        start: Timestamp,
        end: Timestamp,
    ) -> Duration {
        if end <= start {
            return Duration::ZERO;
        }
        let mut total = SignedDuration::ZERO;
        for (open, close) in self.open_spans(tz, start) {
            if open >= end {
                break;
            }
            let (from, to) = (open.max(start), close.min(end));
            if to > from {
                total += to.duration_since(from);
            }
        }
        Duration::try_from(total).unwrap_or(Duration::ZERO)
    }

    /// When `target` of working time, counted from `start`, runs out: the
    /// instant `due` for which `working_time_between(start, due) == target`,
    /// the earliest such one (so a target that ends exactly at closing time
    /// is due at closing time, not at the next opening). A zero target is
    /// due at `start`. Saturates at the end of jiff's time range.
    pub fn due_at(&self, tz: &TimeZone, start: Timestamp, target: Duration) -> Timestamp {
        let Ok(mut remaining) = SignedDuration::try_from(target) else {
            return Timestamp::MAX;
        };
        if remaining.is_zero() {
            return start;
        }
        for (open, close) in self.open_spans(tz, start) {
            let from = open.max(start);
            if close <= from {
                continue;
            }
            let available = close.duration_since(from);
            if remaining <= available {
                return from.checked_add(remaining).unwrap_or(Timestamp::MAX);
            }
            remaining -= available;
        }
        // The spans only end at the end of jiff's calendar.
        Timestamp::MAX
    }

    /// The open ranges as instants, in order, from the local day of `from`
    /// on (ranges that ended before `from` on that day included). Endless
    /// but for the end of the calendar; every week has some open time, as
    /// working hours have at least one part.
    fn open_spans<'a>(
        &'a self,
        tz: &'a TimeZone,
        from: Timestamp,
    ) -> impl Iterator<Item = (Timestamp, Timestamp)> + 'a {
        let first = tz.to_datetime(from).date();
        std::iter::successors(Some(first), |day| day.tomorrow().ok()).flat_map(move |day| {
            self.open_minutes(day.weekday())
                .into_iter()
                .filter_map(move |(start, end)| {
                    let open = instant(tz, day, start)?;
                    let close = instant(tz, day, end)?;
                    (close > open).then_some((open, close))
                })
        })
    }
}

/// The instant of `minute` after local midnight of `day` (1440 being the
/// next midnight) in `tz`; see the module docs for gaps and folds. `None`
/// only at the ends of jiff's calendar.
fn instant(tz: &TimeZone, day: Date, minute: u16) -> Option<Timestamp> {
    let midnight = day.to_datetime(jiff::civil::Time::midnight());
    let at: DateTime = midnight
        .checked_add(SignedDuration::from_mins(i64::from(minute)))
        .ok()?;
    let ambiguous = tz.to_ambiguous_timestamp(at);
    match ambiguous.offset() {
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the later offset, the time lies before the
            // transition; the transition is where the missing hour starts.
            let before_transition = after.to_timestamp(at).ok()?;
            tz.following(before_transition)
                .next()
                .map(|transition| transition.timestamp())
        }
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => {
            ambiguous.earlier().ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(text: &str) -> WorkingHours {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn amsterdam() -> TimeZone {
        TimeZone::get("Europe/Amsterdam").unwrap()
    }

    /// A local time in Amsterdam as an instant (unambiguous times only).
    fn ams(text: &str) -> Timestamp {
        let dt: DateTime = text.parse().unwrap();
        amsterdam()
            .to_ambiguous_timestamp(dt)
            .unambiguous()
            .unwrap()
    }

    fn h(hours: u64) -> Duration {
        Duration::from_secs(hours * 3600)
    }

    fn m(minutes: u64) -> Duration {
        Duration::from_secs(minutes * 60)
    }

    #[test]
    fn across_a_weekend() {
        let office = hours("mon-fri 09:00-17:00");
        let tz = amsterdam();
        // Friday 2026-05-15 16:00 + 2h of working time: 1h on Friday, 1h on
        // Monday morning.
        let start = ams("2026-05-15T16:00");
        assert_eq!(office.due_at(&tz, start, h(2)), ams("2026-05-18T10:00"));
        assert_eq!(
            office.working_time_between(&tz, start, ams("2026-05-18T10:00")),
            h(2)
        );
        // The weekend itself counts nothing.
        assert_eq!(
            office.working_time_between(&tz, ams("2026-05-15T17:00"), ams("2026-05-18T09:00")),
            Duration::ZERO
        );
        // A whole week: five days of eight hours.
        assert_eq!(
            office.working_time_between(&tz, ams("2026-05-11T00:00"), ams("2026-05-18T00:00")),
            h(40)
        );
        // A target ending exactly at closing time is due then.
        assert_eq!(
            office.due_at(&tz, ams("2026-05-15T09:00"), h(8)),
            ams("2026-05-15T17:00")
        );
    }

    #[test]
    fn a_start_outside_working_hours_waits_for_the_opening() {
        let hours = hours("mon-fri 09:00-17:00, sat 10:00-14:00");
        let tz = amsterdam();
        // Saturday evening → Monday 09:30.
        assert_eq!(
            hours.due_at(&tz, ams("2026-05-16T20:00"), m(30)),
            ams("2026-05-18T09:30")
        );
        // Saturday before opening → Saturday 10:30.
        assert_eq!(
            hours.due_at(&tz, ams("2026-05-16T07:00"), m(30)),
            ams("2026-05-16T10:30")
        );
        // Working time from a Sunday start.
        assert_eq!(
            hours.working_time_between(&tz, ams("2026-05-17T12:00"), ams("2026-05-18T09:45")),
            m(45)
        );
        assert_eq!(
            hours.working_time_between(&tz, ams("2026-05-18T12:00"), ams("2026-05-18T11:00")),
            Duration::ZERO
        );
    }

    #[test]
    fn across_the_spring_dst_change() {
        let tz = amsterdam();
        // Clocks go from 02:00 to 03:00 on Sunday 2026-03-29: the day is
        // 23 hours long.
        let always = WorkingHours::always();
        assert_eq!(
            always.working_time_between(&tz, ams("2026-03-29T00:00"), ams("2026-03-30T00:00")),
            h(23)
        );
        // Saturday 23:00 + 4h of round-the-clock time: 04:00, not 03:00.
        assert_eq!(
            always.due_at(&tz, ams("2026-03-28T23:00"), h(4)),
            ams("2026-03-29T04:00")
        );
        // Office hours on Friday and Monday are untouched by the change.
        let office = hours("mon-fri 09:00-17:00");
        assert_eq!(
            office.due_at(&tz, ams("2026-03-27T16:00"), h(2)),
            ams("2026-03-30T10:00")
        );
        // A night shift across the missing hour: 01:00-05:00 local is only
        // three hours of working time.
        let night = hours("sun 01:00-05:00");
        assert_eq!(
            night.working_time_between(&tz, ams("2026-03-29T00:00"), ams("2026-03-29T12:00")),
            h(3)
        );
        // A part that lies wholly in the missing hour has no time at all.
        let ghost = hours("sun 02:00-02:30, mon 09:00-10:00");
        assert_eq!(
            ghost.working_time_between(&tz, ams("2026-03-29T00:00"), ams("2026-03-30T00:00")),
            Duration::ZERO
        );
        assert_eq!(
            ghost.due_at(&tz, ams("2026-03-29T00:00"), m(10)),
            ams("2026-03-30T09:10")
        );
    }

    #[test]
    fn across_the_autumn_dst_change() {
        let tz = amsterdam();
        // Clocks go from 03:00 back to 02:00 on Sunday 2026-10-25: 25 hours.
        let always = WorkingHours::always();
        assert_eq!(
            always.working_time_between(&tz, ams("2026-10-25T00:00"), ams("2026-10-26T00:00")),
            h(25)
        );
        assert_eq!(
            always.due_at(&tz, ams("2026-10-24T23:00"), h(4)),
            // 02:00 for the second time (CET), i.e. 01:00 UTC.
            "2026-10-25T01:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            always.due_at(&tz, ams("2026-10-24T23:00"), h(5)),
            ams("2026-10-25T03:00")
        );
        let night = hours("sun 01:00-05:00");
        assert_eq!(
            night.working_time_between(&tz, ams("2026-10-25T00:00"), ams("2026-10-25T12:00")),
            h(5)
        );
        // Weekday hours in the week of the change: Friday 16:00 (CEST) + 2h
        // is Monday 10:00 (CET).
        let office = hours("mon-fri 09:00-17:00");
        assert_eq!(
            office.due_at(&tz, ams("2026-10-23T16:00"), h(2)),
            ams("2026-10-26T10:00")
        );
    }

    #[test]
    fn round_the_clock_is_wall_clock_time() {
        let always = WorkingHours::always();
        let tz = TimeZone::get("Asia/Tokyo").unwrap();
        let start: Timestamp = "2026-05-15T22:17:03Z".parse().unwrap();
        assert_eq!(
            always.due_at(&tz, start, m(90)),
            start + SignedDuration::from_mins(90)
        );
        let end = start + SignedDuration::from_hours(100);
        assert_eq!(always.working_time_between(&tz, start, end), h(100));
    }

    #[test]
    fn overnight_and_overlapping_parts() {
        let tz = TimeZone::UTC;
        let shifts =
            hours("mon-fri 22:00-24:00, tue-sat 00:00-06:00, mon 08:00-12:00, mon 10:00-14:00");
        // Monday 2026-05-18: 08:00-14:00 (overlap merged) and 22:00-24:00.
        let monday: Timestamp = "2026-05-18T00:00Z".parse().unwrap();
        let tuesday = monday + SignedDuration::from_hours(24);
        assert_eq!(shifts.working_time_between(&tz, monday, tuesday), h(8));
        // Monday 23:00 + 3h runs past midnight into Tuesday's shift.
        let start = monday + SignedDuration::from_hours(23);
        assert_eq!(
            shifts.due_at(&tz, start, h(3)),
            tuesday + SignedDuration::from_hours(2)
        );
    }

    #[test]
    fn due_at_inverts_working_time_between() {
        let zones = ["Europe/Amsterdam", "America/New_York", "Asia/Tokyo", "UTC"];
        let calendars = [
            "mon-fri 09:00-17:00",
            "mon-fri 08:00-18:00, sat 10:00-14:00",
            "mon-fri 22:00-24:00, tue-sat 00:00-06:00",
            "sun 01:00-05:00, wed 12:00-12:30",
            "mon-sun 00:00-24:00",
        ];
        // Starts every 17h 13m from a week before spring DST to a week after
        // autumn DST (2026), so they land on every weekday and time of day.
        let first: Timestamp = "2026-03-22T00:00Z".parse().unwrap();
        let last: Timestamp = "2026-11-08T00:00Z".parse().unwrap();
        let step = SignedDuration::from_mins(17 * 60 + 13);
        let targets = [m(1), m(30), h(1), h(4) + m(7), h(9), h(30)];
        let mut checked = 0;
        for zone in zones {
            let tz = TimeZone::get(zone).unwrap();
            for calendar in calendars {
                let hours = hours(calendar);
                let mut start = first;
                while start < last {
                    for target in targets {
                        let due = hours.due_at(&tz, start, target);
                        assert!(due > start, "{zone} {calendar} {start} {target:?}");
                        assert_eq!(
                            hours.working_time_between(&tz, start, due),
                            target,
                            "{zone} {calendar} from {start} due {due}"
                        );
                        // Earliest: a minute earlier the target is not met.
                        let before = due - SignedDuration::from_mins(1);
                        assert!(hours.working_time_between(&tz, start, before) < target);
                        checked += 1;
                    }
                    start += step;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }
}
