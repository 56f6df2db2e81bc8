//! Bearer-token authentication and brand scope.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::care::store::TokenRecord;
use crate::care::{Actor, Role, tokens};
use crate::service::Shared;

/// The holder of a valid, unrevoked token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token: TokenRecord,
}

impl Principal {
    /// The actor for work on `brand`, or 404 when the token may not see it
    /// (the answer a brand that does not exist gets too).
    pub fn actor_for(&self, brand: &str) -> Result<Actor, ApiError> {
        match &self.token.brand {
            Some(own) if own == brand => {}
            // Agency tokens are admins of every brand.
            None if self.token.role == Role::Admin => {}
            _ => return Err(ApiError::not_found()),
        }
        Ok(Actor::new(self.token.name.clone(), self.token.role))
    }
}

impl FromRequestParts<Arc<Shared>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is required"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be Bearer"))?;
        let store = shared.desk.care_store()?;
        let record = store
            .token_by_hash(&tokens::hash(token))
            .await
            .map_err(ApiError::from_storage)?;
        match record {
            Some(record) if record.revoked_at.is_none() => Ok(Principal { token: record }),
            Some(_) => Err(ApiError::unauthorized("this token was revoked")),
            None => Err(ApiError::unauthorized("unknown token")),
        }
    }
}
