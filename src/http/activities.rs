//! The timeline of a contact, lead or deal (newest first, cursor-paged), and notes.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Json, Path, Query};
use super::{AppState, required_text};
use crate::store::activities::{Activity, NewActivity, Timeline};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_note))
        .routes(routes!(contact_timeline))
        .routes(routes!(lead_timeline))
        .routes(routes!(deal_timeline))
}

#[derive(Deserialize, IntoParams)]
pub struct TimelineQuery {
    /// 1–200, default 20.
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TimelinePage {
    pub items: Vec<Activity>,
    /// Pass as `before` to read older items; absent on the last page.
    pub next: Option<String>,
}

async fn page(state: &AppState, of: Timeline, q: TimelineQuery) -> ApiResult<Json<TimelinePage>> {
    let limit = super::page_limit(q.limit, 20, 200)?;
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(c) => {
            let (t, id) = c
                .split_once('.')
                .and_then(|(t, id)| Some((t.parse().ok()?, id.parse().ok()?)))
                .ok_or_else(|| {
                    ApiError::bad_request("before: not a cursor returned by this API")
                })?;
            Some((t, id))
        }
    };
    let items = state.db.timeline(of, before, limit + 1).await?;
    let mut items = items;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|a| format!("{}.{}", a.occurred_at, a.id))
    } else {
        None
    };
    Ok(Json(TimelinePage { items, next }))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}/activities", tag = "timeline", params(TimelineQuery),
    responses((status = 200, body = TimelinePage)))]
async fn contact_timeline(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Query(q): Query<TimelineQuery>,
) -> ApiResult<Json<TimelinePage>> {
    super::contacts::visible_contact(&state, &user, id).await?;
    page(&state, Timeline::Contact(id), q).await
}

#[utoipa::path(get, path = "/api/v1/leads/{id}/activities", tag = "timeline", params(TimelineQuery),
    responses((status = 200, body = TimelinePage)))]
async fn lead_timeline(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Query(q): Query<TimelineQuery>,
) -> ApiResult<Json<TimelinePage>> {
    super::leads::visible_lead(&state, &user, id).await?;
    page(&state, Timeline::Lead(id), q).await
}

#[utoipa::path(get, path = "/api/v1/deals/{id}/activities", tag = "timeline", params(TimelineQuery),
    responses((status = 200, body = TimelinePage)))]
async fn deal_timeline(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Query(q): Query<TimelineQuery>,
) -> ApiResult<Json<TimelinePage>> {
    super::deals::visible_deal(&state, &user, id).await?;
    page(&state, Timeline::Deal(id), q).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    pub body: String,
    pub contact_id: Option<i64>,
    pub lead_id: Option<i64>,
    pub deal_id: Option<i64>,
}

/// Adds a note to a contact's, lead's or deal's timeline.
#[utoipa::path(post, path = "/api/v1/notes", tag = "timeline", request_body = NoteInput,
    responses((status = 201, body = Activity)))]
async fn create_note(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<NoteInput>,
) -> ApiResult<(StatusCode, Json<Activity>)> {
    let body = required_text("body", &req.body, 10_000)?;
    if req.contact_id.is_none() && req.lead_id.is_none() && req.deal_id.is_none() {
        return Err(ApiError::bad_request(
            "a note needs contact_id, lead_id or deal_id",
        ));
    }
    if let Some(id) = req.contact_id {
        super::contacts::visible_contact(&state, &user, id).await?;
    }
    if let Some(id) = req.lead_id {
        super::leads::visible_lead(&state, &user, id).await?;
    }
    let mut contact_id = req.contact_id;
    if let Some(id) = req.deal_id {
        let d = super::deals::visible_deal(&state, &user, id).await?;
        contact_id = contact_id.or(d.contact_id);
    }
    let a = state
        .db
        .add_activity(&NewActivity {
            kind: "note".into(),
            contact_id,
            lead_id: req.lead_id,
            deal_id: req.deal_id,
            author_id: Some(user.id()),
            body,
            payload: serde_json::json!({}),
            occurred_at: None,
            call_id: None,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(a)))
}
