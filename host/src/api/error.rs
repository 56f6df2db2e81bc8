//! API errors: a status code and `{"error": "..."}` (plus the action, when
//! a channel call failed, so the client can retry it).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::care::CareError;
use crate::care::workflow::Refusal;
use crate::queue::StorageError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    action: Option<serde_json::Value>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            action: None,
        }
    }

    pub fn bad_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    pub fn from_storage(error: StorageError) -> Self {
        // The detail goes to the log; the client learns only that the
        // queue is unavailable.
        tracing::error!("api: {error}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the care queue is unavailable; try again",
        )
    }
}

impl From<CareError> for ApiError {
    fn from(error: CareError) -> Self {
        match error {
            CareError::NotFound => ApiError::not_found(),
            CareError::Refused(Refusal::Conflict(m)) => Self::new(StatusCode::CONFLICT, m),
            CareError::Refused(Refusal::Forbidden(m)) => Self::new(StatusCode::FORBIDDEN, m),
            CareError::Refused(Refusal::Invalid(m)) => Self::new(StatusCode::BAD_REQUEST, m),
            CareError::ChannelFailed(record) => {
                let message = format!(
                    "the channel did not take it: {}; retry with POST .../actions/{}/retry",
                    record.error.as_deref().unwrap_or("unknown error"),
                    record.id
                );
                ApiError {
                    status: StatusCode::BAD_GATEWAY,
                    message,
                    action: serde_json::to_value(&*record).ok(),
                }
            }
            e @ CareError::Unsupported(_) => Self::new(StatusCode::NOT_IMPLEMENTED, e.to_string()),
            CareError::Storage(e) => Self::from_storage(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(action) = self.action {
            body["action"] = action;
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
