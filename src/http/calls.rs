//! Calls from the agent's side: the agent's state switch, the supervisors'
//! view of agents, the call log, dispositions, wrap-up notes, picking the
//! card of a call from shared-number candidates, and click-to-call.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Json, Path, Query};
use super::{AppState, optional_text, parse_time};
use crate::calls::Disposition as Outcome;
use crate::crm::index::Party;
use crate::presence::{AgentState, AgentView, QueueView};
use crate::store::activities::{Activity, NewActivity};
use crate::store::calls::{Call, CallFilter, CallScope, WrapUp};
use crate::telephony::ami::client::ClientError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_state, set_my_state))
        .routes(routes!(agents))
        .routes(routes!(list_calls))
        .routes(routes!(get_call))
        .routes(routes!(dispositions))
        .routes(routes!(wrap_up))
        .routes(routes!(link_call))
        .routes(routes!(dial))
}

#[derive(Serialize, ToSchema)]
pub struct StateView {
    pub state: AgentState,
    pub reason: Option<String>,
    /// Why no phone of the agent can ring (`none`, `unreachable`,
    /// `unregistered`, `unavailable`); absent when one can.
    pub phone: Option<String>,
    /// The PBX queues the agent is in, and whether paused in each.
    pub queues: Vec<QueueView>,
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
    let v = state.presence.view_of(&user.0);
    Ok(Json(StateView {
        state: v.state,
        reason: v.reason,
        phone: v.phone,
        queues: v.queues,
    }))
}

/// The agent's own switch: available, or paused with a reason. It ends a
/// wrap-up; while a call rings or talks at the agent it is refused with 409.
/// The pause goes to each PBX queue member that is the agent's; when the
/// PBX refuses one, 502 `pause_refused` says why and the state stays what
/// the PBX has.
#[utoipa::path(put, path = "/api/v1/me/state", tag = "calls", request_body = StateInput,
    responses((status = 200, body = StateView), (status = 400, body = super::error::ErrorBody),
               (status = 409, description = "a call rings (`ringing`) or talks (`on_call`) at the agent", body = super::error::ErrorBody),
               (status = 502, description = "the PBX refused the pause (`pause_refused`)", body = super::error::ErrorBody)))]
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
    // Not while a call rings or talks at the agent: the state is the call's.
    // Choosing a state in wrap-up ends the wrap-up.
    if let Some(busy) = state.presence.busy(user.id()) {
        return Err(busy_error(busy));
    }
    // The PBX's queues follow the switch, so a paused agent is not rung:
    // each queue member that is the agent's, by its own interface; before
    // the PBX has told its members, each device of the agent.
    if let Some(pbx) = state.pbx.as_ref().filter(|p| p.is_connected()) {
        let members = state.presence.members_of(user.id());
        if members.is_empty() {
            for interface in state.extensions.devices_of(&user.0) {
                if let Err(e) = pbx
                    .queue_pause(&interface, None, reason.is_some(), reason.as_deref())
                    .await
                {
                    tracing::warn!(%interface, error = %e, "the PBX did not take the pause");
                }
            }
        } else {
            let mut refused = Vec::new();
            for (queue, interface) in &members {
                if let Err(e) = pbx
                    .queue_pause(interface, Some(queue), reason.is_some(), reason.as_deref())
                    .await
                {
                    tracing::warn!(%interface, queue, error = %e, "the PBX refused the pause");
                    let why = match e {
                        ClientError::Rejected { message, .. } => message,
                        e => e.to_string(),
                    };
                    refused.push(format!("{interface} in queue {queue}: {why}"));
                }
            }
            if !refused.is_empty() {
                // The state stays what the PBX has: its own events say it.
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "pause_refused",
                    format!(
                        "the phone system refused to {} {}",
                        if reason.is_some() { "pause" } else { "unpause" },
                        refused.join("; ")
                    ),
                ));
            }
        }
    }
    if let Err(busy) = state.presence.choose(user.id(), reason.clone()).await {
        return Err(busy_error(busy));
    }
    my_state(State(state), user).await
}

fn busy_error(busy: AgentState) -> ApiError {
    let (code, message) = match busy {
        AgentState::Ringing => (
            "ringing",
            "a call is ringing for you; answer it or let it go, then change your state",
        ),
        _ => (
            "on_call",
            "you are on a call; change your state when the call is over",
        ),
    };
    ApiError::new(StatusCode::CONFLICT, code, message)
}

/// Agents' states now: every active user with the agent role or a phone
/// (`offline` when logged out), every one for managers and admins, their
/// own team's for supervisors (not for agents).
#[utoipa::path(get, path = "/api/v1/agents", tag = "calls", responses((status = 200, body = Vec<AgentView>)))]
async fn agents(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<AgentView>>> {
    if user.role() == "agent" {
        return Err(ApiError::forbidden());
    }
    let users = state.db.users().await?;
    let all = users
        .iter()
        .filter(|u| u.active != 0)
        .filter(|u| u.role == "agent" || !u.extensions.is_empty() || !u.devices.is_empty())
        .filter(|u| super::users::sees_user(&user, u))
        .map(|u| state.presence.view_of(u))
        .collect();
    Ok(Json(all))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CallQuery {
    /// Calls on this contact's card.
    pub contact_id: Option<i64>,
    /// Calls on this lead's card.
    pub lead_id: Option<i64>,
    /// Calls that rang this user's phone or that they answered, placed or talked on.
    pub user_id: Option<i64>,
    /// inbound | outbound | internal
    pub direction: Option<String>,
    /// What the PBX says happened: answered | abandoned | no_answer | busy | failed
    pub disposition: Option<String>,
    /// The agent's wrap-up code.
    pub wrapup: Option<String>,
    /// Calls started at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Calls started before this time (RFC 3339).
    pub until: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CallPage {
    pub items: Vec<Call>,
    /// Pass as `before` to read older calls; absent on the last page.
    pub next: Option<String>,
}

/// Managers and admins read every call, supervisors their team's, agents
/// the calls their phones rang; everyone the calls on cards they may see.
fn call_scope(user: &AuthUser) -> CallScope {
    let (user_id, team_id) = (user.id(), user.0.team_id);
    match user.role() {
        _ if user.sees_all() => CallScope::All,
        "supervisor" => CallScope::Supervisor { user_id, team_id },
        _ => CallScope::Agent { user_id, team_id },
    }
}

fn one_of(field: &str, value: Option<String>, allowed: &[&str]) -> ApiResult<Option<String>> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_owned())),
        Some(v) => Err(ApiError::bad_request(format!(
            "{field}: `{}` is not one of {}",
            v.escape_default(),
            allowed.join(", ")
        ))),
    }
}

/// The call log, newest first.
#[utoipa::path(get, path = "/api/v1/calls", tag = "calls", params(CallQuery),
    responses((status = 200, body = CallPage), (status = 400, body = super::error::ErrorBody)))]
async fn list_calls(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<CallQuery>,
) -> ApiResult<Json<CallPage>> {
    let limit = super::page_limit(q.limit, 50, 200)?;
    let time = |field: &str, v: Option<String>| -> ApiResult<Option<i64>> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => parse_time(field, v).map(Some),
            None => Ok(None),
        }
    };
    let since = time("since", q.since)?;
    let until = time("until", q.until)?;
    if let (Some(a), Some(b)) = (since, until)
        && a >= b
    {
        return Err(ApiError::bad_request("since must be earlier than until"));
    }
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            c.split_once('.')
                .and_then(|(t, id)| Some((t.parse().ok()?, id.parse().ok()?)))
                .ok_or_else(|| {
                    ApiError::bad_request("before: not a cursor returned by this API")
                })?,
        ),
    };
    let outcomes: Vec<&str> = Outcome::ALL.iter().map(|d| d.as_str()).collect();
    let wrapup = match q.wrapup.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) if w.len() <= 64 => Some(w.to_owned()),
        Some(_) => return Err(ApiError::bad_request("wrapup: not a disposition code")),
        None => None,
    };
    let filter = CallFilter {
        contact_id: q.contact_id,
        lead_id: q.lead_id,
        user_id: q.user_id,
        direction: one_of(
            "direction",
            q.direction,
            &["inbound", "outbound", "internal"],
        )?,
        disposition: one_of("disposition", q.disposition, &outcomes)?,
        wrapup,
        since,
        until,
        before,
        limit: limit + 1,
    };
    let mut items = state.db.calls(call_scope(&user), &filter).await?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|c| format!("{}.{}", c.started_at, c.id))
    } else {
        None
    };
    Ok(Json(CallPage { items, next }))
}

/// One logged call: who rang and talked when, hold, how it ended, its card and wrap-up.
#[utoipa::path(get, path = "/api/v1/calls/{call_id}", tag = "calls",
    responses((status = 200, body = Call), (status = 403, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
async fn get_call(
    State(state): State<AppState>,
    user: AuthUser,
    Path(call_id): Path<String>,
) -> ApiResult<Json<Call>> {
    if call_id.len() > 128 {
        return Err(ApiError::not_found("call"));
    }
    if let Some(c) = state.db.call(call_scope(&user), &call_id).await? {
        return Ok(Json(c));
    }
    if state.db.call_exists(&call_id).await? {
        Err(ApiError::forbidden())
    } else {
        Err(ApiError::not_found("call"))
    }
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

/// Whether the user may see the card a call is on.
async fn sees_party(state: &AppState, user: &AuthUser, party: Option<Party>) -> ApiResult<bool> {
    let owner = match party {
        Some(Party::Contact(id)) => state.db.party_owner("contact", id).await?,
        Some(Party::Lead(id)) => state.db.party_owner("lead", id).await?,
        _ => return Ok(false),
    };
    Ok(user.scope().allows(&state.db, owner).await?)
}

/// 404 for an unknown call, 403 for one the user may not see: the rule of
/// `GET /calls/{call_id}`. A live call is seen by the users it rang (and
/// their team's supervisor) and by those who may see its card.
async fn visible_call(state: &AppState, user: &AuthUser, call_id: &str) -> ApiResult<()> {
    if call_id.len() > 128 {
        return Err(ApiError::not_found("call"));
    }
    if let Some(live) = state.live_calls.get(call_id) {
        if user.sees_all() || live.users.contains(&user.id()) {
            return Ok(());
        }
        if user.role() == "supervisor"
            && let Some(team) = user.0.team_id
        {
            for u in &live.users {
                if state.db.user(*u).await.ok().and_then(|u| u.team_id) == Some(team) {
                    return Ok(());
                }
            }
        }
        return if sees_party(state, user, live.party).await? {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        };
    }
    if state.db.call(call_scope(user), call_id).await?.is_some() {
        Ok(())
    } else if state.db.call_exists(call_id).await? {
        Err(ApiError::forbidden())
    } else {
        Err(ApiError::not_found("call"))
    }
}

/// Note and disposition of a call, during or after it; lands on the call's card.
#[utoipa::path(post, path = "/api/v1/calls/{call_id}/wrapup", tag = "calls", request_body = WrapUpInput,
    responses((status = 201, body = Activity), (status = 403, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
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
    visible_call(&state, &user, &call_id).await?;
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
    // On the call's log row too: kept with the live call until it is logged.
    let w = WrapUp {
        code: disposition,
        note: (!note.is_empty()).then_some(note),
        by: user.id(),
        at: a.occurred_at,
    };
    if !state.live_calls.wrap_up(&call_id, w.clone()) {
        state.db.wrap_up_call(&call_id, &w).await?;
    }
    Ok((StatusCode::CREATED, Json(a)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    pub contact_id: i64,
}

/// Puts a call on one contact's timeline (a pick among shared-number
/// candidates); after the call its log row and timeline entry move there.
#[utoipa::path(post, path = "/api/v1/calls/{call_id}/link", tag = "calls", request_body = LinkInput,
    responses((status = 204, description = "linked"), (status = 403, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
async fn link_call(
    State(state): State<AppState>,
    user: AuthUser,
    Path(call_id): Path<String>,
    Json(req): Json<LinkInput>,
) -> ApiResult<StatusCode> {
    visible_call(&state, &user, &call_id).await?;
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

/// A name as it may stand in a caller ID header: no quotes, angle brackets
/// or control characters, at most 40 characters.
fn caller_id_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | '\\'))
        .take(40)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The number a user's click-to-calls present: theirs, else their team's,
/// else `[pbx] presented_number`.
async fn presented_number(state: &AppState, user: &AuthUser) -> Option<String> {
    if let Some(n) = &user.0.presented_number {
        return Some(n.clone());
    }
    if let Some(team) = user.0.team_id
        && let Ok(teams) = state.db.teams().await
        && let Some(n) = teams
            .into_iter()
            .find(|t| t.id == team)
            .and_then(|t| t.presented_number)
    {
        return Some(n);
    }
    state.config.pbx.presented_number.clone()
}

/// Click-to-call: rings the agent's phone (their first device, else
/// `[pbx] device` of their extension) showing the number being called and
/// the contact's name, then, once they answer, dials the number from
/// `[pbx] originate_context` with `RINGSIDE_PRESENTED` (the number to show
/// the customer: the user's, the team's or `[pbx] presented_number`, empty
/// when none is set) and `RINGSIDE_AGENT` (the agent's extension).
#[utoipa::path(post, path = "/api/v1/calls/dial", tag = "calls", request_body = DialInput,
    responses((status = 202, body = DialView), (status = 400, body = super::error::ErrorBody),
              (status = 502, description = "the PBX refused the call (`dial_refused`), e.g. the number is not in the originate context", body = super::error::ErrorBody),
              (status = 503, description = "no link to the PBX (`pbx_unavailable`)", body = super::error::ErrorBody)))]
async fn dial(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<DialInput>,
) -> ApiResult<(StatusCode, Json<DialView>)> {
    let number = state
        .phones
        .normalize(req.number.trim())
        .map_err(|e| ApiError::bad_request(format!("number: {e}")))?;
    let Some(device) = state.extensions.devices_of(&user.0).into_iter().next() else {
        return Err(ApiError::bad_request(
            "you have no extension or device to call from",
        ));
    };
    let Some(pbx) = state.pbx.as_ref().filter(|p| p.is_connected()) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pbx_unavailable",
            "the phone system is not connected",
        ));
    };
    let request_id = crate::auth::random_password();
    let context = state.config.pbx.originate_context.as_str();
    let exten = number.as_str();
    // The agent's phone shows whom they are calling (the card's name when
    // they may see it); the customer sees the presented number, which the
    // dialplan sets from RINGSIDE_PRESENTED.
    let name = match crate::crm::directory::identify(&state.db, &state.callers, exten).await {
        Ok(found) => {
            let card = found.contact.as_ref().or(found.lead.as_ref()).cloned();
            match card {
                Some(c)
                    if sees_party(&state, &user, Some(c.party()))
                        .await
                        .unwrap_or(false) =>
                {
                    Some(c.name)
                }
                _ => None,
            }
        }
        Err(_) => None,
    };
    let caller_id = match name
        .as_deref()
        .map(caller_id_name)
        .filter(|n| !n.is_empty())
    {
        Some(n) => format!("\"{n}\" <{exten}>"),
        None => format!("<{exten}>"),
    };
    let presented = presented_number(&state, &user).await;
    let agent_ext = user
        .0
        .devices
        .iter()
        .find(|d| d.device == device)
        .and_then(|d| d.extension.clone())
        .or_else(|| user.0.extensions.first().cloned())
        .unwrap_or_default();
    let variables = [
        ("RINGSIDE_REQUEST", request_id.as_str()),
        ("RINGSIDE_PRESENTED", presented.as_deref().unwrap_or("")),
        ("RINGSIDE_AGENT", agent_ext.as_str()),
    ];
    match pbx
        .originate_click_to_call(&device, exten, context, &caller_id, &variables)
        .await
    {
        Ok(_) => Ok((StatusCode::ACCEPTED, Json(DialView { request_id }))),
        // Asterisk answered, and said no: the link is fine, the call is not.
        Err(ClientError::Rejected { message, .. }) => {
            let message = message.trim();
            let message = if message.is_empty() {
                "Originate failed"
            } else {
                message
            };
            tracing::warn!(
                user = user.id(),
                %device,
                context,
                exten,
                reason = message,
                "the PBX refused the click-to-call"
            );
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "dial_refused",
                format!(
                    "the phone system refused to call {exten} from {device} in context \
                     `{context}`: {message}"
                ),
            ))
        }
        Err(e) => {
            tracing::warn!(user = user.id(), %device, context, exten, error = %e, "click-to-call not placed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "pbx_unavailable",
                format!("the phone system did not take the call: {e}"),
            ))
        }
    }
}
