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
/// (anonymous, internal, own_number, not_a_number, unknown). A card the
/// user may not see (`GET /contacts/{id}` answers 403) comes `limited`: its
/// name, company and owner only — unless a live call from this number is
/// ringing (or talking to) the user, who then sees the card the ring pops.
#[utoipa::path(get, path = "/api/v1/lookup", tag = "contacts", params(LookupQuery),
    responses((status = 200, body = Identified), (status = 400, body = super::error::ErrorBody)))]
async fn lookup(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<LookupQuery>,
) -> ApiResult<Json<Identified>> {
    let raw = optional_text("number", q.number.trim(), 256)?;
    if raw.is_empty() {
        return Err(ApiError::bad_request("number must not be empty"));
    }
    let mut found = identify(&state.db, &state.callers, raw).await?;
    if user.sees_all() {
        return Ok(Json(found));
    }
    let ringing = found
        .number
        .e164
        .as_deref()
        .is_some_and(|e| state.live_calls.rang_from(user.id(), e));
    if ringing {
        return Ok(Json(found));
    }
    let scope = user.scope();
    let cards = found
        .contact
        .iter_mut()
        .chain(found.lead.iter_mut())
        .chain(found.candidates.iter_mut());
    for card in cards {
        // Contacts follow their owner, leads their manager.
        let owner = card.owner.as_ref().map(|o| o.id);
        if !scope.allows(&state.db, owner).await? {
            card.limit();
        }
    }
    // A company is everyone's, but its card gathers the timelines and deals
    // of all its contacts, whichever team owns them.
    if let Some(company) = found.company.as_mut() {
        company.activities.clear();
        company.deals.clear();
        company.limited = true;
    }
    Ok(Json(found))
}
