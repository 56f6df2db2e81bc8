//! The agent API: JSON under `/api/v1`, on the host's HTTP listener.
//!
//! Every route but the OpenAPI document needs `Authorization: Bearer
//! <token>`. Routes under `/api/v1/brands/{brand}` first check that the
//! token may see that brand and answer 404 otherwise — the same answer as
//! for a brand that does not exist, so a token never learns other brands'
//! names. The operations themselves are [`crate::care::CareDesk`]'s; this
//! module only maps HTTP to them and their errors to status codes, and
//! tells live subscribers ([`events`]) what changed.

mod auth;
mod error;
pub mod events;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::care::CareError;
use crate::care::desk::AnswerRequest;
use crate::care::sla::SlaClock;
use crate::care::workflow::Op;
use crate::care::{Actor, CaseQuery};
use crate::model::{ActionKind, Outgoing};
use crate::queue::CaseStatus;
use crate::service::{LiveEvent, Shared};
pub use auth::Principal;
use error::ApiError;

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/me", get(me))
        .route("/api/v1/brands/{brand}/cases", get(list_cases))
        .route("/api/v1/brands/{brand}/cases/{id}", get(case_detail))
        .route("/api/v1/brands/{brand}/cases/{id}/claim", post(claim))
        .route("/api/v1/brands/{brand}/cases/{id}/release", post(release))
        .route("/api/v1/brands/{brand}/cases/{id}/assign", post(assign))
        .route("/api/v1/brands/{brand}/cases/{id}/reply", post(reply))
        .route("/api/v1/brands/{brand}/cases/{id}/react", post(react))
        .route("/api/v1/brands/{brand}/cases/{id}/hide", post(hide))
        .route("/api/v1/brands/{brand}/cases/{id}/unhide", post(unhide))
        .route("/api/v1/brands/{brand}/cases/{id}/escalate", post(escalate))
        .route(
            "/api/v1/brands/{brand}/cases/{id}/escalation/answer",
            post(answer_escalation),
        )
        .route("/api/v1/brands/{brand}/cases/{id}/notes", post(note))
        .route("/api/v1/brands/{brand}/cases/{id}/close", post(close))
        .route("/api/v1/brands/{brand}/cases/{id}/reopen", post(reopen))
        .route(
            "/api/v1/brands/{brand}/actions/{id}/retry",
            post(retry_action),
        )
        .route("/api/v1/brands/{brand}/search", get(search))
        .route("/api/v1/brands/{brand}/report", get(report))
        .route(
            "/api/v1/brands/{brand}/cases/{id}/customer",
            get(case_customer),
        )
        .route("/api/v1/brands/{brand}/customers/{id}", get(customer))
        .route("/api/v1/brands/{brand}/customers/link", post(link))
        .route("/api/v1/brands/{brand}/alerts", get(alerts))
        .route("/api/v1/brands/{brand}/replies", get(saved_replies))
        .route("/api/v1/brands/{brand}/customers/unlink", post(unlink))
        .route("/api/v1/brands/{brand}/events", get(events::events))
        .with_state(shared)
}

type Ctx = State<Arc<Shared>>;

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Parses a JSON body, with an error that says what is wrong.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

async fn openapi() -> Response {
    ([("content-type", "application/json")], OPENAPI).into_response()
}

async fn me(principal: Principal) -> Response {
    json(StatusCode::OK, &principal.token)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    assignee: Option<String>,
    #[serde(default)]
    unassigned: bool,
    team: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    offset: usize,
}

async fn list_cases(
    State(shared): Ctx,
    principal: Principal,
    Path(brand): Path<String>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    principal.actor_for(&brand)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            CaseStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown status {s:?}; one of new, open, pending, escalated, closed"
                ))
            })
        })
        .transpose()?;
    let cases = shared
        .desk
        .list(&CaseQuery {
            brand: brand.clone(),
            status,
            assignee: params.assignee,
            unassigned: params.unassigned,
            team: params.team,
            limit: params.limit,
            offset: params.offset,
        })
        .await?;
    let levels = shared.service_levels(&brand);
    let now = now_ms();
    let cases: Vec<CaseView> = cases
        .into_iter()
        .map(|case| CaseView {
            sla: levels.clock(&case, now),
            case,
        })
        .collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "cases": cases })))
}

/// A case as the API shows it: the case and its service-level clock.
#[derive(serde::Serialize)]
struct CaseView {
    #[serde(flatten)]
    case: crate::care::Case,
    sla: SlaClock,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn case_detail(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    principal.actor_for(&brand)?;
    let detail = shared.desk.detail(&brand, id).await?;
    let sla = shared.service_levels(&brand).clock(&detail.case, now_ms());
    let mut body = serde_json::to_value(&detail)
        .map_err(|e| ApiError::bad_request(format!("cannot show case {id}: {e}")))?;
    body["case"]["sla"] = serde_json::to_value(sla).unwrap_or_default();
    Ok(json(StatusCode::OK, &body))
}

/// Runs one transition and answers with the case as it is now.
async fn transition(
    shared: &Shared,
    principal: &Principal,
    brand: &str,
    id: i64,
    op: impl FnOnce(&Actor) -> Op,
) -> Result<Response, ApiError> {
    let actor = principal.actor_for(brand)?;
    let op = op(&actor);
    let case = shared.desk.transition(brand, id, &actor, op).await?;
    shared.publish(LiveEvent::case(brand, id));
    Ok(json(StatusCode::OK, &case))
}

async fn claim(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    transition(&shared, &principal, &brand, id, |_| Op::Claim).await
}

async fn release(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    transition(&shared, &principal, &brand, id, |_| Op::Release).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    agent: Option<String>,
    team: Option<String>,
}

async fn assign(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let op = match body::<AssignBody>(&bytes)? {
        AssignBody {
            agent: Some(agent),
            team: None,
        } => Op::AssignAgent(agent),
        AssignBody {
            agent: None,
            team: Some(team),
        } => Op::AssignTeam(team),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of \"agent\" or \"team\"".into(),
            ));
        }
    };
    transition(&shared, &principal, &brand, id, |_| op).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    text: String,
    /// Answer in private (DM, private reply, e-mail) instead of in public.
    #[serde(default)]
    private: bool,
    /// The message to answer; default: the customer's latest.
    message: Option<String>,
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReactBody {
    reaction: String,
    message: Option<String>,
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModerateBody {
    reason: String,
    message: Option<String>,
    idempotency_key: Option<String>,
}

/// The idempotency key from the body, else from the `Idempotency-Key`
/// header.
fn idempotency_key(from_body: Option<String>, headers: &HeaderMap) -> Option<String> {
    from_body.or_else(|| {
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    })
}

async fn perform(
    shared: &Shared,
    principal: &Principal,
    brand: &str,
    id: i64,
    request: AnswerRequest,
) -> Result<Response, ApiError> {
    let actor = principal.actor_for(brand)?;
    let result = shared.desk.answer(brand, id, &actor, request).await;
    announce_action(shared, brand, &result);
    Ok(json(StatusCode::OK, &result?))
}

/// Tells live subscribers about an answer or retry that wrote something:
/// a sent action (and its case transition) or a failed one (its audit
/// event), which the inbox shows with a Retry button.
fn announce_action(
    shared: &Shared,
    brand: &str,
    result: &Result<crate::care::ActionRecord, CareError>,
) {
    let case_id = match result {
        Ok(record) => record.case_id,
        Err(CareError::ChannelFailed(record)) => record.case_id,
        Err(_) => return,
    };
    shared.publish(LiveEvent::case(brand, case_id));
}

async fn reply(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let b: ReplyBody = body(&bytes)?;
    let outgoing = Outgoing {
        text: b.text,
        attachments: Vec::new(),
    };
    let request = AnswerRequest {
        action: if b.private {
            ActionKind::PrivateReply(outgoing)
        } else {
            ActionKind::Reply(outgoing)
        },
        message: b.message,
        idempotency_key: idempotency_key(b.idempotency_key, &headers),
        reason: None,
    };
    perform(&shared, &principal, &brand, id, request).await
}

async fn react(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let b: ReactBody = body(&bytes)?;
    let request = AnswerRequest {
        action: ActionKind::React(b.reaction),
        message: b.message,
        idempotency_key: idempotency_key(b.idempotency_key, &headers),
        reason: None,
    };
    perform(&shared, &principal, &brand, id, request).await
}

async fn moderate(
    shared: &Shared,
    principal: &Principal,
    brand: &str,
    id: i64,
    headers: &HeaderMap,
    bytes: &Bytes,
    action: ActionKind,
) -> Result<Response, ApiError> {
    let b: ModerateBody = body(bytes)?;
    let request = AnswerRequest {
        action,
        message: b.message,
        idempotency_key: idempotency_key(b.idempotency_key, headers),
        reason: Some(b.reason),
    };
    perform(shared, principal, brand, id, request).await
}

async fn hide(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    moderate(
        &shared,
        &principal,
        &brand,
        id,
        &headers,
        &bytes,
        ActionKind::Hide,
    )
    .await
}

async fn unhide(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    moderate(
        &shared,
        &principal,
        &brand,
        id,
        &headers,
        &bytes,
        ActionKind::Unhide,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalateBody {
    team: String,
    question: String,
}

async fn escalate(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let b: EscalateBody = body(&bytes)?;
    transition(&shared, &principal, &brand, id, |_| Op::Escalate {
        team: b.team,
        question: b.question,
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    answer: String,
}

async fn answer_escalation(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let b: AnswerBody = body(&bytes)?;
    transition(&shared, &principal, &brand, id, |_| Op::AnswerEscalation {
        answer: b.answer,
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

async fn note(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let b: NoteBody = body(&bytes)?;
    transition(&shared, &principal, &brand, id, |_| Op::Note(b.text)).await
}

async fn close(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    transition(&shared, &principal, &brand, id, |_| Op::Close).await
}

async fn reopen(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    transition(&shared, &principal, &brand, id, |_| Op::Reopen).await
}

async fn retry_action(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let actor = principal.actor_for(&brand)?;
    let result = shared.desk.retry(&brand, id, &actor).await;
    announce_action(&shared, &brand, &result);
    Ok(json(StatusCode::OK, &result?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: String,
    #[serde(default)]
    limit: usize,
}

async fn search(
    State(shared): Ctx,
    principal: Principal,
    Path(brand): Path<String>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    principal.actor_for(&brand)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let hits = shared.desk.search(&brand, &params.q, params.limit).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "hits": hits })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    /// First day (`YYYY-MM-DD`, in the brand's zone) or instant (RFC 3339).
    from: Option<String>,
    /// Last day, included (`YYYY-MM-DD`), or end instant (RFC 3339).
    to: Option<String>,
    /// Only this connector.
    connector: Option<String>,
}

/// Days a report covers when no period is given.
const DEFAULT_REPORT_DAYS: i64 = 7;

/// Reads a report bound: a day in `tz` (its start; with `end`, the start of
/// the day after) or an RFC 3339 instant.
fn report_bound(text: &str, tz: &jiff::tz::TimeZone, end: bool) -> Result<i64, ApiError> {
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at.as_millisecond());
    }
    let date: jiff::civil::Date = text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{text:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 instant"
        ))
    })?;
    let date = if end {
        date.tomorrow()
            .map_err(|e| ApiError::bad_request(format!("{text:?}: {e}")))?
    } else {
        date
    };
    date.to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| ApiError::bad_request(format!("{text:?}: {e}")))
}

async fn report(
    State(shared): Ctx,
    principal: Principal,
    Path(brand): Path<String>,
    params: Result<Query<ReportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    principal.actor_for(&brand)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let levels = shared.service_levels(&brand);
    let now = now_ms();
    let to = match &params.to {
        Some(text) => report_bound(text, &levels.time_zone, true)?,
        None => now,
    };
    let from = match &params.from {
        Some(text) => report_bound(text, &levels.time_zone, false)?,
        None => to - DEFAULT_REPORT_DAYS * 86_400_000,
    };
    if from >= to {
        return Err(ApiError::bad_request("`from` must be before `to`".into()));
    }
    let store = shared.desk.care_store()?;
    let rows = store
        .report_rows(&brand, from, to, params.connector.as_deref())
        .await
        .map_err(ApiError::from_storage)?;
    let report = crate::care::report::build(&brand, from, to, levels, &rows);
    Ok(json(StatusCode::OK, &report))
}

async fn case_customer(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    principal.actor_for(&brand)?;
    let profile = shared.desk.customer_of_case(&brand, id).await?;
    Ok(json(StatusCode::OK, &profile))
}

async fn customer(
    State(shared): Ctx,
    principal: Principal,
    Path((brand, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    principal.actor_for(&brand)?;
    let profile = shared.desk.customer(&brand, id).await?;
    Ok(json(StatusCode::OK, &profile))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    identities: Vec<crate::care::Identity>,
}

async fn link(
    State(shared): Ctx,
    principal: Principal,
    Path(brand): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let actor = principal.actor_for(&brand)?;
    let b: LinkBody = body(&bytes)?;
    let profile = shared.desk.link(&brand, &actor, &b.identities).await?;
    Ok(json(StatusCode::OK, &profile))
}

async fn unlink(
    State(shared): Ctx,
    principal: Principal,
    Path(brand): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let actor = principal.actor_for(&brand)?;
    let identity: crate::care::Identity = body(&bytes)?;
    let profile = shared.desk.unlink(&brand, &actor, &identity).await?;
    Ok(json(StatusCode::OK, &profile))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertParams {
    /// Alerts raised at or after this instant (ms since the epoch);
    /// default: the last 24 hours.
    since: Option<i64>,
}

async fn alerts(
    State(shared): Ctx,
    principal: Principal,
    Path(brand): Path<String>,
    params: Result<Query<AlertParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    principal.actor_for(&brand)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = params.since.unwrap_or_else(|| now_ms() - 86_400_000);
    let store = shared.desk.care_store()?;
    let alerts = store
        .alerts(&brand, since)
        .await
        .map_err(ApiError::from_storage)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "alerts": alerts }),
    ))
}

/// The brand's saved replies (`[brand.replies]`), placeholders unfilled:
/// the client fills `{name}`, `{handle}` and `{agent}` for the case at hand;
/// `{brand}` and `{sla}` are filled here.
async fn saved_replies(
    State(shared): Ctx,
    principal: Principal,
    Path(brand): Path<String>,
) -> Result<Response, ApiError> {
    principal.actor_for(&brand)?;
    let list: Vec<serde_json::Value> = match shared.replies(&brand) {
        Some(r) => {
            let vars = crate::care::replies::Vars {
                name: "{name}",
                handle: "{handle}",
                agent: "{agent}",
                brand: &r.brand_name,
                sla: shared.service_levels(&brand).first_response,
            };
            r.replies
                .iter()
                .map(|(name, text)| {
                    let text = crate::care::replies::render(text, &vars);
                    serde_json::json!({ "name": name, "text": text })
                })
                .collect()
        }
        None => Vec::new(),
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "replies": list }),
    ))
}
