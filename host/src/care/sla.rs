//! Service levels of cases, in the brand's working hours and time zone.
//!
//! The arithmetic (working time between two instants, when a target runs
//! out, across weekends and clock changes) is
//! [`crate::config::WorkingHours`]'; this module applies it to cases.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::Case;
use crate::config::{BrandConfig, WorkingHours};
use crate::model::TimestampMs;
use crate::queue::CaseStatus;

/// A brand's service-level policy.
#[derive(Debug, Clone)]
pub struct ServiceLevels {
    pub time_zone: TimeZone,
    pub working_hours: WorkingHours,
    /// Working time a customer may wait for an answer.
    pub first_response: Duration,
}

impl Default for ServiceLevels {
    /// Around the clock, in UTC, one hour.
    fn default() -> Self {
        ServiceLevels {
            time_zone: TimeZone::UTC,
            working_hours: WorkingHours::always(),
            first_response: Duration::from_secs(3600),
        }
    }
}

impl ServiceLevels {
    pub fn of_brand(brand: &BrandConfig) -> Self {
        ServiceLevels {
            time_zone: brand.time_zone.clone(),
            working_hours: brand.working_hours.clone(),
            first_response: brand.first_response_target,
        }
    }

    /// Working time in `[start, end)`, in milliseconds.
    pub fn working_ms(&self, start: TimestampMs, end: TimestampMs) -> u64 {
        let (Some(start), Some(end)) = (instant(start), instant(end)) else {
            return 0;
        };
        let d = self
            .working_hours
            .working_time_between(&self.time_zone, start, end);
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    /// When an answer to a message that came in at `since` is due.
    pub fn due(&self, since: TimestampMs) -> TimestampMs {
        let Some(start) = instant(since) else {
            return since;
        };
        self.working_hours
            .due_at(&self.time_zone, start, self.first_response)
            .as_millisecond()
    }

    /// Where `case` stands against these service levels at `now`.
    pub fn clock(&self, case: &Case, now: TimestampMs) -> SlaClock {
        let first_response_ms = case
            .first_response_at
            .map(|at| self.working_ms(case.first_message_at, at));
        let waiting = case
            .waiting_since
            .filter(|_| case.status != CaseStatus::Closed);
        let due_at = waiting.map(|since| self.due(since));
        SlaClock {
            target_ms: u64::try_from(self.first_response.as_millis()).unwrap_or(u64::MAX),
            due_at,
            overdue: due_at.is_some_and(|due| now > due),
            waiting_ms: waiting.map(|since| self.working_ms(since, now)),
            first_response_ms,
            first_response_met: first_response_ms
                .map(|ms| u128::from(ms) <= self.first_response.as_millis()),
            resolution_ms: case
                .closed_at
                .map(|at| self.working_ms(case.first_message_at, at)),
        }
    }
}

fn instant(ms: TimestampMs) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

/// A case's service-level clock. Durations are working time (the brand's
/// hours, its zone), in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlaClock {
    /// The first-response target.
    pub target_ms: u64,
    /// When the customer's waiting message must be answered; `None`:
    /// nothing waits.
    pub due_at: Option<TimestampMs>,
    /// Past `due_at` and still unanswered.
    pub overdue: bool,
    /// How long the customer has waited so far.
    pub waiting_ms: Option<u64>,
    /// From the case's first message to the brand's first answer.
    pub first_response_ms: Option<u64>,
    /// Whether that first answer was within the target.
    pub first_response_met: Option<bool>,
    /// From the case's first message to its closing.
    pub resolution_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::Bucket;

    const HOUR: i64 = 3_600_000;

    fn office() -> ServiceLevels {
        ServiceLevels {
            time_zone: TimeZone::get("Europe/Amsterdam").unwrap(),
            working_hours: "mon-fri 09:00-17:00".parse().unwrap(),
            first_response: Duration::from_secs(2 * 3600),
        }
    }

    fn ms(text: &str) -> TimestampMs {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn case(first: TimestampMs) -> Case {
        Case {
            id: 1,
            brand: "acme".into(),
            connector: "x".into(),
            channel: "twitter".into(),
            thread_id: "t".into(),
            status: CaseStatus::New,
            assignee: None,
            team: None,
            priority: 0,
            bucket: Bucket::Low,
            reasons: Vec::new(),
            sentiment: 0.0,
            message_count: 1,
            first_message_at: first,
            last_message_at: first,
            author: "a".into(),
            preview: "p".into(),
            waiting_since: Some(first),
            first_response_at: None,
            closed_at: None,
            escalation: None,
            version: 0,
        }
    }

    #[test]
    fn a_friday_afternoon_message_is_due_on_monday_morning() {
        // Friday 2026-11-20 16:00 CET; one hour left on Friday, one on Monday.
        let friday = ms("2026-11-20T15:00:00Z");
        let sla = office();
        let clock = sla.clock(&case(friday), ms("2026-11-21T12:00:00Z"));
        assert_eq!(
            clock.due_at,
            Some(ms("2026-11-23T09:00:00Z")),
            "Mon 10:00 CET"
        );
        assert!(!clock.overdue, "the weekend does not count");
        assert_eq!(clock.waiting_ms, Some(HOUR as u64));
        let late = sla.clock(&case(friday), ms("2026-11-23T09:30:00Z"));
        assert!(late.overdue);
        assert_eq!(late.waiting_ms, Some(150 * 60_000));
    }

    #[test]
    fn first_response_and_resolution_count_working_time_across_dst() {
        // Saturday 2026-10-24 before the autumn clock change; answered on
        // Monday 2026-10-26 10:00 CET (09:00Z), closed 11:30 CET.
        let sla = office();
        let mut c = case(ms("2026-10-24T10:00:00Z"));
        c.first_response_at = Some(ms("2026-10-26T09:00:00Z"));
        c.waiting_since = None;
        c.status = CaseStatus::Closed;
        c.closed_at = Some(ms("2026-10-26T10:30:00Z"));
        let clock = sla.clock(&c, ms("2026-10-27T00:00:00Z"));
        assert_eq!(
            clock.first_response_ms,
            Some(HOUR as u64),
            "09:00→10:00 CET"
        );
        assert_eq!(clock.first_response_met, Some(true));
        assert_eq!(clock.resolution_ms, Some(150 * 60_000));
        assert_eq!(clock.due_at, None);
        assert!(!clock.overdue);
    }

    #[test]
    fn closed_cases_are_never_overdue() {
        let sla = office();
        let mut c = case(ms("2026-11-23T08:00:00Z"));
        c.status = CaseStatus::Closed;
        let clock = sla.clock(&c, ms("2026-11-30T08:00:00Z"));
        assert!(!clock.overdue);
        assert_eq!(clock.waiting_ms, None);
    }
}
