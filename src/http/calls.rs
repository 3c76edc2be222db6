//! Calls from the agent's side: the agent's state switch, the supervisors'
//! view of agents, dispositions, wrap-up notes, picking the card of a call
//! from shared-number candidates, and click-to-call.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Json, Path};
use super::{AppState, optional_text};
use crate::crm::index::Party;
use crate::presence::{AgentState, AgentView};
use crate::store::activities::{Activity, NewActivity};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_state, set_my_state))
        .routes(routes!(agents))
        .routes(routes!(dispositions))
        .routes(routes!(wrap_up))
        .routes(routes!(link_call))
        .routes(routes!(dial))
}

#[derive(Serialize, ToSchema)]
pub struct StateView {
    pub state: AgentState,
    pub reason: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateInput {
    /// available | paused
    pub state: String,
    pub reason: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/me/state", tag = "calls", responses((status = 200, body = StateView)))]
async fn my_state(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<StateView>> {
    let v = state.presence.view(user.id());
    Ok(Json(StateView {
        state: state.presence.state_of(user.id()),
        reason: v.and_then(|v| v.reason),
    }))
}

/// The agent's own switch: available, or paused with a reason.
#[utoipa::path(put, path = "/api/v1/me/state", tag = "calls", request_body = StateInput,
    responses((status = 200, body = StateView), (status = 400, body = super::error::ErrorBody)))]
async fn set_my_state(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<StateInput>,
) -> ApiResult<Json<StateView>> {
    let reason = match req.state.as_str() {
        "available" => None,
        "paused" => Some(
            optional_text("reason", req.reason.as_deref().unwrap_or("").trim(), 100)?.to_owned(),
        ),
        other => {
            return Err(ApiError::bad_request(format!(
                "state: `{other}` is not one of available, paused"
            )));
        }
    };
    // The PBX's queues follow the switch, so a paused agent is not rung.
    if let Some(pbx) = state.pbx.as_ref().filter(|p| p.is_connected()) {
        for ext in &user.0.extensions {
            let interface = format!("PJSIP/{ext}");
            if let Err(e) = pbx
                .queue_pause(&interface, None, reason.is_some(), reason.as_deref())
                .await
            {
                tracing::warn!(%interface, error = %e, "the PBX did not take the pause");
            }
        }
    }
    state.presence.set_paused(user.id(), reason).await;
    my_state(State(state), user).await
}

/// Every agent's state now (supervisors, managers, admins).
#[utoipa::path(get, path = "/api/v1/agents", tag = "calls", responses((status = 200, body = Vec<AgentView>)))]
async fn agents(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<AgentView>>> {
    if user.role() == "agent" {
        return Err(ApiError::forbidden());
    }
    Ok(Json(state.presence.all()))
}

#[derive(Serialize, ToSchema)]
pub struct Disposition {
    pub code: String,
    pub label: String,
}

/// The wrap-up codes agents pick from after a call (`[calls] dispositions`).
#[utoipa::path(get, path = "/api/v1/dispositions", tag = "calls", responses((status = 200, body = Vec<Disposition>)))]
async fn dispositions(State(state): State<AppState>, _user: AuthUser) -> Json<Vec<Disposition>> {
    Json(
        state
            .config
            .calls
            .dispositions
            .iter()
            .map(|d| Disposition {
                code: d.code.clone(),
                label: d.label.clone(),
            })
            .collect(),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WrapUpInput {
    pub note: Option<String>,
    pub disposition: Option<String>,
}

/// The card a call belongs on: the live call's, else its logged activity's.
async fn call_party(state: &AppState, call_id: &str) -> ApiResult<Option<Party>> {
    if let Some(live) = state.live_calls.get(call_id) {
        return Ok(live.party);
    }
    Ok(state.db.call_party(call_id).await?)
}

/// Note and disposition of a call, during or after it; lands on the call's card.
#[utoipa::path(post, path = "/api/v1/calls/{call_id}/wrapup", tag = "calls", request_body = WrapUpInput,
    responses((status = 201, body = Activity), (status = 404, body = super::error::ErrorBody)))]
async fn wrap_up(
    State(state): State<AppState>,
    user: AuthUser,
    Path(call_id): Path<String>,
    Json(req): Json<WrapUpInput>,
) -> ApiResult<(StatusCode, Json<Activity>)> {
    let note = optional_text("note", req.note.as_deref().unwrap_or("").trim(), 10_000)?.to_owned();
    let codes = &state.config.calls;
    let disposition = match req.disposition.as_deref().filter(|d| !d.is_empty()) {
        Some(d) if codes.disposition(d).is_some() => Some(d.to_owned()),
        Some(d) => {
            return Err(ApiError::bad_request(format!(
                "disposition: `{d}` is not a known code (GET /api/v1/dispositions)"
            )));
        }
        None => None,
    };
    if note.is_empty() && disposition.is_none() {
        return Err(ApiError::bad_request("send a note, a disposition or both"));
    }
    let (contact_id, lead_id) = match call_party(&state, &call_id).await? {
        Some(Party::Contact(id)) => (Some(id), None),
        Some(Party::Lead(id)) => (None, Some(id)),
        _ => return Err(ApiError::not_found("call with a card")),
    };
    let label = disposition
        .as_deref()
        .and_then(|d| codes.disposition(d))
        .map(|d| d.label.as_str());
    let body = match (label, note.is_empty()) {
        (Some(l), true) => l.to_owned(),
        (Some(l), false) => format!("{l}: {note}"),
        (None, _) => note.clone(),
    };
    let a = state
        .db
        .add_activity(&NewActivity {
            kind: "note".into(),
            contact_id,
            lead_id,
            author_id: Some(user.id()),
            body,
            payload: serde_json::json!({"call_id": call_id, "disposition": disposition, "note": note}),
            ..Default::default()
        })
        .await?;
    Ok((StatusCode::CREATED, Json(a)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    pub contact_id: i64,
}

/// Puts a call on one contact's timeline (a pick among shared-number candidates).
#[utoipa::path(post, path = "/api/v1/calls/{call_id}/link", tag = "calls", request_body = LinkInput,
    responses((status = 204, description = "linked"), (status = 404, body = super::error::ErrorBody)))]
async fn link_call(
    State(state): State<AppState>,
    user: AuthUser,
    Path(call_id): Path<String>,
    Json(req): Json<LinkInput>,
) -> ApiResult<StatusCode> {
    super::contacts::visible_contact(&state, &user, req.contact_id).await?;
    if state
        .live_calls
        .link(&call_id, Party::Contact(req.contact_id))
    {
        return Ok(StatusCode::NO_CONTENT);
    }
    if state.db.relink_call(&call_id, req.contact_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("call"))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialInput {
    pub number: String,
}

#[derive(Serialize, ToSchema)]
pub struct DialView {
    pub request_id: String,
}

/// Click-to-call: rings the agent's phone, then dials the number.
#[utoipa::path(post, path = "/api/v1/calls/dial", tag = "calls", request_body = DialInput,
    responses((status = 202, body = DialView), (status = 503, body = super::error::ErrorBody)))]
async fn dial(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<DialInput>,
) -> ApiResult<(StatusCode, Json<DialView>)> {
    let number = state
        .phones
        .normalize(req.number.trim())
        .map_err(|e| ApiError::bad_request(format!("number: {e}")))?;
    let Some(ext) = user.0.extensions.first().cloned() else {
        return Err(ApiError::bad_request("you have no extension to call from"));
    };
    let Some(pbx) = state.pbx.as_ref().filter(|p| p.is_connected()) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pbx_unavailable",
            "the phone system is not connected",
        ));
    };
    let request_id = crate::auth::random_password();
    let channel = format!("PJSIP/{ext}");
    pbx.originate_click_to_call(
        &channel,
        number.as_str(),
        "from-internal",
        &ext,
        &[("RINGSIDE_REQUEST", request_id.as_str())],
    )
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pbx_unavailable",
            format!("the phone system refused the call: {e}"),
        )
    })?;
    Ok((StatusCode::ACCEPTED, Json(DialView { request_id })))
}
