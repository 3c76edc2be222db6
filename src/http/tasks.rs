//! Tasks: create, list (mine, overdue first), change, mark done (which lands on the timeline).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Json, Path, Query};
use super::{AppState, parse_time, required_text};
use crate::store::activities::NewActivity;
use crate::store::tasks::{Task, TaskData};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks, create_task))
        .routes(routes!(get_task, update_task))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    pub title: String,
    /// RFC 3339, e.g. 2026-11-23T15:00:00+03:00
    pub due_at: Option<String>,
    /// Defaults to the creating user.
    pub assignee_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub lead_id: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskUpdate {
    pub title: Option<String>,
    pub due_at: Option<String>,
    pub assignee_id: Option<i64>,
    pub done: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
pub struct TaskQuery {
    /// Only the caller's tasks.
    pub mine: Option<bool>,
    pub assignee_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub done: Option<bool>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

async fn visible_task(state: &AppState, user: &AuthUser, id: i64) -> ApiResult<Task> {
    let t = state.db.task(id).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => ApiError::not_found("task"),
        e => e.into(),
    })?;
    if !user.scope().allows(&state.db, t.assignee_id).await? {
        return Err(ApiError::forbidden());
    }
    Ok(t)
}

async fn check_assignee(state: &AppState, user: &AuthUser, id: i64) -> ApiResult<()> {
    state
        .db
        .user(id)
        .await
        .map_err(|_| ApiError::bad_request(format!("assignee_id: user {id} does not exist")))?;
    if !user.scope().allows(&state.db, Some(id)).await? {
        return Err(ApiError::forbidden());
    }
    Ok(())
}

/// Open tasks first, by due time (overdue first), then done ones.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(TaskQuery), responses((status = 200, body = Vec<Task>)))]
async fn list_tasks(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<TaskQuery>,
) -> ApiResult<Json<Vec<Task>>> {
    let assignee = if q.mine == Some(true) {
        Some(user.id())
    } else {
        q.assignee_id
    };
    let limit = super::page_limit(q.limit, 50, 500)?;
    let offset = super::page_offset(q.offset)?;
    Ok(Json(
        state
            .db
            .tasks(user.scope(), assignee, q.contact_id, q.done, limit, offset)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = TaskInput, responses((status = 201, body = Task)))]
async fn create_task(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<TaskInput>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    let assignee = req.assignee_id.unwrap_or(user.id());
    check_assignee(&state, &user, assignee).await?;
    if let Some(c) = req.contact_id {
        super::contacts::visible_contact(&state, &user, c).await?;
    }
    if let Some(l) = req.lead_id {
        super::leads::visible_lead(&state, &user, l).await?;
    }
    let data = TaskData {
        title: required_text("title", &req.title, 300)?,
        due_at: req
            .due_at
            .as_deref()
            .map(|t| parse_time("due_at", t))
            .transpose()?,
        assignee_id: Some(assignee),
        contact_id: req.contact_id,
        lead_id: req.lead_id,
    };
    Ok((
        StatusCode::CREATED,
        Json(state.db.create_task(&data, Some(user.id())).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", responses((status = 200, body = Task)))]
async fn get_task(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Task>> {
    Ok(Json(visible_task(&state, &user, id).await?))
}

/// Changes a task; `done: true` closes it and writes `task_done` on the timeline.
#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "tasks", request_body = TaskUpdate, responses((status = 200, body = Task)))]
async fn update_task(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Json(req): Json<TaskUpdate>,
) -> ApiResult<Json<Task>> {
    let t = visible_task(&state, &user, id).await?;
    if req.title.is_some() || req.due_at.is_some() || req.assignee_id.is_some() {
        if let Some(a) = req.assignee_id {
            check_assignee(&state, &user, a).await?;
        }
        let data = TaskData {
            title: match &req.title {
                Some(x) => required_text("title", x, 300)?,
                None => t.title.clone(),
            },
            due_at: match &req.due_at {
                Some(x) => Some(parse_time("due_at", x)?),
                None => t.due_at,
            },
            assignee_id: req.assignee_id.or(t.assignee_id),
            contact_id: t.contact_id,
            lead_id: t.lead_id,
        };
        state.db.update_task(id, &data).await?;
    }
    if let Some(done) = req.done {
        let (task, changed) = state.db.set_task_done(id, done).await?;
        if changed && done && (task.contact_id.is_some() || task.lead_id.is_some()) {
            state
                .db
                .add_activity(&NewActivity {
                    kind: "task_done".into(),
                    contact_id: task.contact_id,
                    lead_id: task.lead_id,
                    author_id: Some(user.id()),
                    body: task.title.clone(),
                    payload: serde_json::json!({"task_id": task.id}),
                    ..Default::default()
                })
                .await?;
        }
    }
    Ok(Json(state.db.task(id).await?))
}
