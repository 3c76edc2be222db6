//! Routing rules (managers and admins change them) and the route question a
//! PBX asks: `GET /api/v1/route?caller=…&did=…`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Json, Path, Query};
use super::{AppState, optional_text};
use crate::routing::RouteAnswer;
use crate::routing::rules::{RuleInput, RuleView, build_rule, referenced};
use crate::store::StoreError;
use crate::store::routing::{RuleData, RuleRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(update_rule, delete_rule))
        .routes(routes!(route))
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("routing rule"),
        e => e.into(),
    }
}

/// Users and teams named by the rule must exist.
async fn check_references(state: &AppState, d: &RuleData) -> ApiResult<()> {
    let (users, teams) = referenced(d);
    for id in users {
        match state.db.user(id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(ApiError::bad_request(format!(
                    "target: no user with id {id}"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    for id in teams {
        if !state.db.team_exists(id).await? {
            return Err(ApiError::bad_request(format!(
                "target: no team with id {id}"
            )));
        }
    }
    Ok(())
}

async fn reload(state: &AppState) -> ApiResult<()> {
    state.routing.reload(&state.db).await?;
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/routing/rules", tag = "routing",
    responses((status = 200, body = Vec<RuleView>)))]
async fn list_rules(
    State(state): State<AppState>,
    _user: AuthUser,
) -> ApiResult<Json<Vec<RuleView>>> {
    let rows = state.db.routing_rules().await?;
    Ok(Json(rows.iter().map(RuleView::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/routing/rules", tag = "routing", request_body = RuleInput,
    responses((status = 201, body = RuleView), (status = 400, body = super::error::ErrorBody),
              (status = 403, body = super::error::ErrorBody)))]
async fn create_rule(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<RuleInput>,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    user.require_manager()?;
    let data = build_rule(input, None).map_err(ApiError::bad_request)?;
    check_references(&state, &data).await?;
    let row = state.db.create_routing_rule(&data).await?;
    state
        .db
        .audit(
            Some(user.id()),
            "routing.rule.create",
            &format!("{} ({})", row.name, row.kind),
            None,
        )
        .await?;
    reload(&state).await?;
    Ok((StatusCode::CREATED, Json(RuleView::from(&row))))
}

#[utoipa::path(patch, path = "/api/v1/routing/rules/{id}", tag = "routing", request_body = RuleInput,
    params(("id" = i64, Path)),
    responses((status = 200, body = RuleView), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
async fn update_rule(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Json(input): Json<RuleInput>,
) -> ApiResult<Json<RuleView>> {
    user.require_manager()?;
    let base: RuleRow = state.db.routing_rule(id).await.map_err(not_found)?;
    let data = build_rule(input, Some(&base)).map_err(ApiError::bad_request)?;
    check_references(&state, &data).await?;
    let row = state
        .db
        .update_routing_rule(id, &data)
        .await
        .map_err(not_found)?;
    state
        .db
        .audit(
            Some(user.id()),
            "routing.rule.update",
            &format!("{} ({})", row.name, row.kind),
            None,
        )
        .await?;
    reload(&state).await?;
    Ok(Json(RuleView::from(&row)))
}

#[utoipa::path(delete, path = "/api/v1/routing/rules/{id}", tag = "routing",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
async fn delete_rule(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    user.require_manager()?;
    let row = state.db.routing_rule(id).await.map_err(not_found)?;
    state.db.delete_routing_rule(id).await.map_err(not_found)?;
    state
        .db
        .audit(
            Some(user.id()),
            "routing.rule.delete",
            &format!("{} ({})", row.name, row.kind),
            None,
        )
        .await?;
    reload(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RouteQuery {
    /// The caller ID as the PBX has it (any format).
    pub caller: Option<String>,
    /// The dialled number (DID), as the PBX has it.
    pub did: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/route", tag = "routing", params(RouteQuery),
    responses((status = 200, body = RouteAnswer), (status = 400, body = super::error::ErrorBody)))]
async fn route(
    State(state): State<AppState>,
    _user: AuthUser,
    Query(q): Query<RouteQuery>,
) -> ApiResult<Json<RouteAnswer>> {
    let caller = optional_text("caller", q.caller.as_deref().unwrap_or(""), 100)?;
    let did = optional_text("did", q.did.as_deref().unwrap_or(""), 100)?;
    if caller.contains(['\n', '\r', '\t']) || did.contains(['\n', '\r', '\t']) {
        return Err(ApiError::bad_request(
            "caller and did must be one line of text",
        ));
    }
    Ok(Json(state.routing.route(&state, caller, did).await))
}
