//! Case transitions as pure functions: the stored case, an operation and
//! who does it in; the changed case and its audit event out — or why the
//! operation is not allowed. Stores only persist what comes out (with a
//! compare-and-swap on [`Case::version`]), so every backend follows the same
//! rules. The table is in `docs/care.md`.

use serde_json::json;

use super::{Actor, Case, Escalation, NewEvent, Role};
use crate::model::TimestampMs;
use crate::queue::CaseStatus;

/// An operation on one case.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Claim,
    Release,
    AssignAgent(String),
    AssignTeam(String),
    /// An answer (`reply`, `private_reply`) went out: action `action_id`.
    Answered {
        kind: &'static str,
        action_id: i64,
    },
    /// A reaction (or hide/unhide) went out; the status does not change.
    Acted {
        kind: &'static str,
        action_id: i64,
        reason: Option<String>,
    },
    /// An answer could not be sent; recorded, the case is unchanged.
    ActionFailed {
        action_id: i64,
        error: String,
    },
    Escalate {
        team: String,
        question: String,
    },
    AnswerEscalation {
        answer: String,
    },
    Note(String),
    Close,
    Reopen,
}

/// Why an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The case is in a state that does not allow it (409).
    #[error("{0}")]
    Conflict(String),
    /// The actor's role does not allow it (403).
    #[error("{0}")]
    Forbidden(String),
    /// The request itself is wrong (400).
    #[error("{0}")]
    Invalid(String),
}

/// Longest note, question or answer text, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;

/// Longest agent or team name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Checks whether `actor` may send an answer on `case` now (before the
/// channel is called; [`Op::Answered`] records it afterwards).
pub fn may_answer(case: &Case, actor: &Actor) -> Result<(), Refusal> {
    require_role(actor, &[Role::Agent, Role::Admin], "answer customers")?;
    not_closed(case, "answer")?;
    match &case.assignee {
        Some(owner) if owner != &actor.name && actor.role != Role::Admin => Err(Refusal::Conflict(
            format!("case {} is owned by {owner}", case.id),
        )),
        _ => Ok(()),
    }
}

/// Applies `op` by `actor` at `now` to `case`: the case as it should be
/// stored, and the event that says what happened.
pub fn apply(
    case: &Case,
    op: &Op,
    actor: &Actor,
    now: TimestampMs,
) -> Result<(Case, NewEvent), Refusal> {
    let mut next = case.clone();
    next.version = case.version + 1;
    let event = |kind: &'static str, detail: serde_json::Value| NewEvent {
        at: now,
        actor: actor.name.clone(),
        kind,
        channel: None,
        detail,
    };
    let work_roles = [Role::Agent, Role::Admin];
    let ev = match op {
        Op::Claim => {
            require_role(actor, &work_roles, "claim cases")?;
            not_closed(case, "claim")?;
            match &case.assignee {
                Some(owner) if owner == &actor.name => {
                    return Err(Refusal::Conflict(format!(
                        "case {} is already yours",
                        case.id
                    )));
                }
                Some(owner) => {
                    return Err(Refusal::Conflict(format!(
                        "case {} is owned by {owner}",
                        case.id
                    )));
                }
                None => {}
            }
            next.assignee = Some(actor.name.clone());
            if case.status == CaseStatus::New {
                next.status = CaseStatus::Open;
            }
            event("claimed", json!({}))
        }
        Op::Release => {
            require_role(actor, &work_roles, "release cases")?;
            match &case.assignee {
                None => {
                    return Err(Refusal::Conflict(format!(
                        "case {} is not owned by anyone",
                        case.id
                    )));
                }
                Some(owner) if owner != &actor.name && actor.role != Role::Admin => {
                    return Err(Refusal::Conflict(format!(
                        "case {} is owned by {owner}; only they or an admin can release it",
                        case.id
                    )));
                }
                Some(_) => {}
            }
            next.assignee = None;
            if case.status == CaseStatus::Open {
                next.status = CaseStatus::New;
            }
            event("released", json!({ "from": case.assignee }))
        }
        Op::AssignAgent(agent) => {
            require_role(actor, &work_roles, "hand cases over")?;
            not_closed(case, "hand over")?;
            check_name(agent, "agent")?;
            if case.assignee.as_deref() == Some(agent.as_str()) {
                return Err(Refusal::Conflict(format!(
                    "case {} is already owned by {agent}",
                    case.id
                )));
            }
            next.assignee = Some(agent.clone());
            if case.status == CaseStatus::New {
                next.status = CaseStatus::Open;
            }
            event(
                "assigned",
                json!({ "from": case.assignee, "to_agent": agent }),
            )
        }
        Op::AssignTeam(team) => {
            require_role(actor, &work_roles, "hand cases over")?;
            not_closed(case, "hand over")?;
            check_name(team, "team")?;
            next.team = Some(team.clone());
            next.assignee = None;
            if case.status == CaseStatus::Open {
                next.status = CaseStatus::New;
            }
            event(
                "assigned",
                json!({ "from": case.assignee, "from_team": case.team, "to_team": team }),
            )
        }
        Op::Answered { kind, action_id } => {
            // The channel already took the answer: record it whatever the
            // case looks like now (a colleague may have closed it meanwhile).
            if next.assignee.is_none() {
                next.assignee = Some(actor.name.clone());
            }
            if case.status != CaseStatus::Closed {
                next.status = CaseStatus::Pending;
            }
            next.waiting_since = None;
            next.first_response_at = case.first_response_at.or(Some(now));
            let mut e = event(kind, json!({ "action_id": action_id }));
            e.channel = Some(case.connector.clone());
            e
        }
        Op::Acted {
            kind,
            action_id,
            reason,
        } => {
            let mut detail = json!({ "action_id": action_id });
            if let Some(reason) = reason {
                detail["reason"] = json!(reason);
            }
            let mut e = event(kind, detail);
            e.channel = Some(case.connector.clone());
            e
        }
        Op::ActionFailed { action_id, error } => {
            let mut e = event(
                "action_failed",
                json!({ "action_id": action_id, "error": error }),
            );
            e.channel = Some(case.connector.clone());
            e
        }
        Op::Escalate { team, question } => {
            require_role(actor, &work_roles, "escalate cases")?;
            not_closed(case, "escalate")?;
            check_name(team, "team")?;
            check_text(question, "question")?;
            if case.escalation.as_ref().is_some_and(Escalation::is_open) {
                return Err(Refusal::Conflict(format!(
                    "case {} already waits on an answer from {}",
                    case.id,
                    case.escalation.as_ref().map_or("", |e| e.team.as_str())
                )));
            }
            next.status = CaseStatus::Escalated;
            next.escalation = Some(Escalation {
                team: team.clone(),
                question: question.clone(),
                asked_by: actor.name.clone(),
                asked_at: now,
                answer: None,
                answered_by: None,
                answered_at: None,
            });
            event("escalated", json!({ "team": team, "question": question }))
        }
        Op::AnswerEscalation { answer } => {
            require_role(
                actor,
                &[Role::SecondLine, Role::Admin],
                "answer escalations",
            )?;
            check_text(answer, "answer")?;
            let Some(open) = case.escalation.as_ref().filter(|e| e.is_open()) else {
                return Err(Refusal::Conflict(format!(
                    "case {} has no open escalation",
                    case.id
                )));
            };
            let mut answered = open.clone();
            answered.answer = Some(answer.clone());
            answered.answered_by = Some(actor.name.clone());
            answered.answered_at = Some(now);
            next.escalation = Some(answered);
            if case.status == CaseStatus::Escalated {
                next.status = if case.assignee.is_some() {
                    CaseStatus::Open
                } else {
                    CaseStatus::New
                };
            }
            event(
                "escalation_answered",
                json!({ "team": open.team, "answer": answer }),
            )
        }
        Op::Note(text) => {
            check_text(text, "note")?;
            event("noted", json!({ "text": text }))
        }
        Op::Close => {
            require_role(actor, &work_roles, "close cases")?;
            not_closed(case, "close")?;
            next.status = CaseStatus::Closed;
            next.waiting_since = None;
            next.closed_at = Some(now);
            event("closed", json!({ "from": case.status }))
        }
        Op::Reopen => {
            require_role(actor, &work_roles, "reopen cases")?;
            if case.status != CaseStatus::Closed {
                return Err(Refusal::Conflict(format!(
                    "case {} is {}, not closed",
                    case.id,
                    case.status.as_str()
                )));
            }
            next.status = if case.assignee.is_some() {
                CaseStatus::Open
            } else {
                CaseStatus::New
            };
            next.closed_at = None;
            event("reopened", json!({}))
        }
    };
    Ok((next, ev))
}

fn require_role(actor: &Actor, roles: &[Role], what: &str) -> Result<(), Refusal> {
    if roles.contains(&actor.role) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(format!(
            "role {} may not {what}",
            actor.role.as_str()
        )))
    }
}

fn not_closed(case: &Case, what: &str) -> Result<(), Refusal> {
    if case.status == CaseStatus::Closed {
        Err(Refusal::Conflict(format!(
            "case {} is closed; reopen it to {what} it",
            case.id
        )))
    } else {
        Ok(())
    }
}

fn check_name(name: &str, what: &str) -> Result<(), Refusal> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        Err(Refusal::Invalid(format!(
            "{what} name must be 1 to {MAX_NAME_CHARS} printable characters"
        )))
    } else {
        Ok(())
    }
}

fn check_text(text: &str, what: &str) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        Err(Refusal::Invalid(format!("{what} is empty")))
    } else if text.chars().count() > MAX_TEXT_CHARS {
        Err(Refusal::Invalid(format!(
            "{what} is longer than {MAX_TEXT_CHARS} characters"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::Bucket;

    fn case(status: CaseStatus, assignee: Option<&str>) -> Case {
        Case {
            id: 7,
            brand: "acme".into(),
            connector: "x".into(),
            channel: "twitter".into(),
            thread_id: "t1".into(),
            status,
            assignee: assignee.map(str::to_string),
            team: None,
            priority: 40,
            bucket: Bucket::Normal,
            reasons: Vec::new(),
            sentiment: 0.0,
            message_count: 1,
            first_message_at: 1_000,
            last_message_at: 1_000,
            author: "@jan".into(),
            preview: "help".into(),
            waiting_since: Some(1_000),
            first_response_at: None,
            closed_at: None,
            escalation: None,
            version: 3,
        }
    }

    fn agent(name: &str) -> Actor {
        Actor::new(name, Role::Agent)
    }

    #[test]
    fn claim_takes_a_new_case_and_bumps_the_version() {
        let (next, event) =
            apply(&case(CaseStatus::New, None), &Op::Claim, &agent("ann"), 5).unwrap();
        assert_eq!(next.status, CaseStatus::Open);
        assert_eq!(next.assignee.as_deref(), Some("ann"));
        assert_eq!(next.version, 4);
        assert_eq!(event.kind, "claimed");
        assert_eq!(event.actor, "ann");
    }

    #[test]
    fn claim_of_an_owned_case_names_the_owner() {
        let err = apply(
            &case(CaseStatus::Open, Some("bob")),
            &Op::Claim,
            &agent("ann"),
            5,
        )
        .unwrap_err();
        assert_eq!(err, Refusal::Conflict("case 7 is owned by bob".into()));
    }

    #[test]
    fn closed_cases_refuse_work_until_reopened() {
        let closed = case(CaseStatus::Closed, None);
        for op in [
            Op::Claim,
            Op::Close,
            Op::Escalate {
                team: "billing".into(),
                question: "?".into(),
            },
        ] {
            let err = apply(&closed, &op, &agent("ann"), 5).unwrap_err();
            assert!(
                matches!(err, Refusal::Conflict(m) if m.contains("closed")),
                "{op:?}"
            );
        }
        let (open, event) = apply(&closed, &Op::Reopen, &agent("ann"), 5).unwrap();
        assert_eq!(open.status, CaseStatus::New);
        assert_eq!(event.kind, "reopened");
    }

    #[test]
    fn answering_moves_to_pending_and_stamps_the_first_response_once() {
        let open = case(CaseStatus::Open, Some("ann"));
        let answered = Op::Answered {
            kind: "private_replied",
            action_id: 1,
        };
        let (next, event) = apply(&open, &answered, &agent("ann"), 9).unwrap();
        assert_eq!(next.status, CaseStatus::Pending);
        assert_eq!(next.first_response_at, Some(9));
        assert_eq!(next.waiting_since, None);
        assert_eq!(event.channel.as_deref(), Some("x"));
        let (again, _) = apply(&next, &answered, &agent("ann"), 20).unwrap();
        assert_eq!(again.first_response_at, Some(9));
    }

    #[test]
    fn only_the_owner_or_an_admin_may_answer() {
        let owned = case(CaseStatus::Open, Some("bob"));
        assert!(may_answer(&owned, &agent("ann")).is_err());
        assert!(may_answer(&owned, &agent("bob")).is_ok());
        assert!(may_answer(&owned, &Actor::new("boss", Role::Admin)).is_ok());
        assert!(may_answer(&case(CaseStatus::New, None), &agent("ann")).is_ok());
        let second = Actor::new("billing", Role::SecondLine);
        assert!(matches!(
            may_answer(&case(CaseStatus::New, None), &second),
            Err(Refusal::Forbidden(_))
        ));
    }

    #[test]
    fn escalation_round_trip_returns_the_case_to_its_agent() {
        let open = case(CaseStatus::Open, Some("ann"));
        let (escalated, _) = apply(
            &open,
            &Op::Escalate {
                team: "billing".into(),
                question: "was invoice 123 paid?".into(),
            },
            &agent("ann"),
            10,
        )
        .unwrap();
        assert_eq!(escalated.status, CaseStatus::Escalated);
        let twice = apply(
            &escalated,
            &Op::Escalate {
                team: "legal".into(),
                question: "?".into(),
            },
            &agent("ann"),
            11,
        );
        assert!(matches!(twice, Err(Refusal::Conflict(_))));

        let answer = Op::AnswerEscalation {
            answer: "yes, on the 3rd".into(),
        };
        assert!(matches!(
            apply(&escalated, &answer, &agent("ann"), 12),
            Err(Refusal::Forbidden(_))
        ));
        let billing = Actor::new("billing-bo", Role::SecondLine);
        let (back, event) = apply(&escalated, &answer, &billing, 12).unwrap();
        assert_eq!(back.status, CaseStatus::Open);
        assert_eq!(back.assignee.as_deref(), Some("ann"));
        let esc = back.escalation.unwrap();
        assert_eq!(esc.answer.as_deref(), Some("yes, on the 3rd"));
        assert_eq!(esc.answered_by.as_deref(), Some("billing-bo"));
        assert_eq!(event.kind, "escalation_answered");
    }

    #[test]
    fn hand_over_to_a_team_unassigns() {
        let (next, event) = apply(
            &case(CaseStatus::Open, Some("ann")),
            &Op::AssignTeam("billing".into()),
            &agent("ann"),
            3,
        )
        .unwrap();
        assert_eq!(next.team.as_deref(), Some("billing"));
        assert_eq!(next.assignee, None);
        assert_eq!(next.status, CaseStatus::New);
        assert_eq!(event.detail["to_team"], "billing");
    }

    #[test]
    fn empty_and_oversized_texts_are_refused() {
        let open = case(CaseStatus::Open, None);
        assert!(matches!(
            apply(&open, &Op::Note("  ".into()), &agent("a"), 1),
            Err(Refusal::Invalid(_))
        ));
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert!(matches!(
            apply(&open, &Op::Note(long), &agent("a"), 1),
            Err(Refusal::Invalid(_))
        ));
    }
}
