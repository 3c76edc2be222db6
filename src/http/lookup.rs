//! `GET /api/v1/lookup`: whose card a phone number opens, in any format a
//! PBX or a person writes it.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Json, Query};
use super::{AppState, optional_text};
use crate::crm::directory::{Identified, identify};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(lookup))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    /// The number as received: `89161234567`, `+7 (916) 123-45-67`,
    /// `sip:+4930123456@pbx`, `anonymous`, an extension…
    pub number: String,
}

/// Finds the card(s) for a phone number: `exact` (one card), `candidates`
/// (several contacts share it — all of them) or `none` with a reason
/// (anonymous, internal, own_number, not_a_number, unknown).
#[utoipa::path(get, path = "/api/v1/lookup", tag = "contacts", params(LookupQuery),
    responses((status = 200, body = Identified), (status = 400, body = super::error::ErrorBody)))]
async fn lookup(
    State(state): State<AppState>,
    _user: AuthUser,
    Query(q): Query<LookupQuery>,
) -> ApiResult<Json<Identified>> {
    let raw = optional_text("number", q.number.trim(), 256)?;
    if raw.is_empty() {
        return Err(ApiError::bad_request("number must not be empty"));
    }
    Ok(Json(identify(&state.db, &state.callers, raw).await?))
}
