//! Pipelines with their stages, deals, and moving deals between stages
//! (each move closes the stay in the old stage and lands on the timeline).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Json, Path, Query};
use super::{AppState, required_text};
use crate::store::activities::NewActivity;
use crate::store::deals::{Deal, DealData, Pipeline, StageStay};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_pipelines, create_pipeline))
        .routes(routes!(get_pipeline))
        .routes(routes!(list_deals, create_deal))
        .routes(routes!(get_deal, update_deal))
        .routes(routes!(move_deal))
        .routes(routes!(deal_stages))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineInput {
    pub name: String,
    /// In order; at least one.
    pub stages: Vec<StageInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    pub name: String,
    /// open | won | lost (default open)
    pub outcome: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/pipelines", tag = "deals", responses((status = 200, body = Vec<Pipeline>)))]
async fn list_pipelines(
    State(state): State<AppState>,
    _user: AuthUser,
) -> ApiResult<Json<Vec<Pipeline>>> {
    Ok(Json(state.db.pipelines().await?))
}

/// Creates a pipeline with ordered stages (managers and admins).
#[utoipa::path(post, path = "/api/v1/pipelines", tag = "deals", request_body = PipelineInput,
    responses((status = 201, body = Pipeline)))]
async fn create_pipeline(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<PipelineInput>,
) -> ApiResult<(StatusCode, Json<Pipeline>)> {
    user.require_manager()?;
    let name = required_text("name", &req.name, 100)?;
    if req.stages.is_empty() || req.stages.len() > 30 {
        return Err(ApiError::bad_request("a pipeline needs 1 to 30 stages"));
    }
    let mut stages = Vec::new();
    for (i, s) in req.stages.iter().enumerate() {
        let outcome = s.outcome.clone().unwrap_or_else(|| "open".to_owned());
        if !["open", "won", "lost"].contains(&outcome.as_str()) {
            return Err(ApiError::bad_request(format!(
                "stages[{i}].outcome must be open, won or lost"
            )));
        }
        stages.push((
            required_text(&format!("stages[{i}].name"), &s.name, 100)?,
            outcome,
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(state.db.create_pipeline(&name, &stages).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/pipelines/{id}", tag = "deals", responses((status = 200, body = Pipeline)))]
async fn get_pipeline(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Pipeline>> {
    Ok(Json(state.db.pipeline(id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealInput {
    pub title: String,
    pub pipeline_id: i64,
    pub contact_id: Option<i64>,
    /// Defaults to the creating user.
    pub owner_id: Option<i64>,
    #[serde(default)]
    pub amount_minor: i64,
    /// ISO 4217, default RUB.
    pub currency: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealUpdate {
    pub title: Option<String>,
    pub contact_id: Option<i64>,
    pub owner_id: Option<i64>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct DealQuery {
    pub contact_id: Option<i64>,
    /// open | won | lost
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// The largest deal amount taken, in minor units (ten trillion in a
/// currency with cents): beyond it is a typo or an attack, not a deal.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;

/// A deal amount in minor units: not negative, at most [`MAX_AMOUNT_MINOR`].
pub fn check_amount(field: &str, amount: i64) -> ApiResult<i64> {
    if (0..=MAX_AMOUNT_MINOR).contains(&amount) {
        Ok(amount)
    } else {
        Err(ApiError::bad_request(format!(
            "{field} must be between 0 and {MAX_AMOUNT_MINOR} (minor units)"
        )))
    }
}

fn check_currency(c: &str) -> ApiResult<()> {
    if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "currency must be a 3-letter ISO code such as RUB, UAH, EUR",
        ))
    }
}

pub async fn visible_deal(state: &AppState, user: &AuthUser, id: i64) -> ApiResult<Deal> {
    let deal = state.db.deal(id).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => ApiError::not_found("deal"),
        e => e.into(),
    })?;
    if !user.scope().allows(&state.db, deal.owner_id).await? {
        return Err(ApiError::forbidden());
    }
    Ok(deal)
}

#[utoipa::path(get, path = "/api/v1/deals", tag = "deals", params(DealQuery), responses((status = 200, body = Vec<Deal>)))]
async fn list_deals(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<DealQuery>,
) -> ApiResult<Json<Vec<Deal>>> {
    let limit = super::page_limit(q.limit, 50, 500)?;
    let offset = super::page_offset(q.offset)?;
    Ok(Json(
        state
            .db
            .deals(
                user.scope(),
                q.contact_id,
                q.status.as_deref(),
                limit,
                offset,
            )
            .await?,
    ))
}

/// Opens a deal in the first stage of its pipeline.
#[utoipa::path(post, path = "/api/v1/deals", tag = "deals", request_body = DealInput, responses((status = 201, body = Deal)))]
async fn create_deal(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<DealInput>,
) -> ApiResult<(StatusCode, Json<Deal>)> {
    let currency = req.currency.unwrap_or_else(|| "RUB".to_owned());
    check_currency(&currency)?;
    if let Some(c) = req.contact_id {
        super::contacts::visible_contact(&state, &user, c).await?;
    }
    if req.owner_id.is_some() {
        super::contacts::check_assignee(&state, &user, "owner_id", req.owner_id).await?;
    }
    let data = DealData {
        title: required_text("title", &req.title, 200)?,
        contact_id: req.contact_id,
        owner_id: req.owner_id.or(Some(user.id())),
        amount_minor: check_amount("amount_minor", req.amount_minor)?,
        currency,
    };
    Ok((
        StatusCode::CREATED,
        Json(state.db.create_deal(req.pipeline_id, &data).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/deals/{id}", tag = "deals", responses((status = 200, body = Deal)))]
async fn get_deal(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Deal>> {
    Ok(Json(visible_deal(&state, &user, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/deals/{id}", tag = "deals", request_body = DealUpdate, responses((status = 200, body = Deal)))]
async fn update_deal(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Json(req): Json<DealUpdate>,
) -> ApiResult<Json<Deal>> {
    let d = visible_deal(&state, &user, id).await?;
    let currency = req.currency.unwrap_or(d.currency);
    check_currency(&currency)?;
    if let Some(c) = req.contact_id.filter(|c| Some(*c) != d.contact_id) {
        super::contacts::visible_contact(&state, &user, c).await?;
    }
    if req.owner_id.is_some() && req.owner_id != d.owner_id {
        super::contacts::check_assignee(&state, &user, "owner_id", req.owner_id).await?;
    }
    let data = DealData {
        title: match req.title {
            Some(t) => required_text("title", &t, 200)?,
            None => d.title,
        },
        contact_id: req.contact_id.or(d.contact_id),
        owner_id: req.owner_id.or(d.owner_id),
        amount_minor: match req.amount_minor {
            Some(a) => check_amount("amount_minor", a)?,
            None => d.amount_minor,
        },
        currency,
    };
    Ok(Json(state.db.update_deal(id, &data).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveInput {
    pub stage_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct MoveResult {
    pub deal: Deal,
    /// Seconds the deal spent in the stage it left.
    pub seconds_in_previous_stage: i64,
}

/// Moves a deal to another stage of its pipeline; a won/lost stage closes it.
#[utoipa::path(post, path = "/api/v1/deals/{id}/move", tag = "deals", request_body = MoveInput,
    responses((status = 200, body = MoveResult)))]
async fn move_deal(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Json(req): Json<MoveInput>,
) -> ApiResult<Json<MoveResult>> {
    let before = visible_deal(&state, &user, id).await?;
    let (deal, from) = state.db.move_deal(id, req.stage_id).await?;
    let seconds = (deal.stage_entered_at - before.stage_entered_at) / 1000;
    state
        .db
        .add_activity(&NewActivity {
            kind: "stage_change".into(),
            contact_id: deal.contact_id,
            deal_id: Some(deal.id),
            author_id: Some(user.id()),
            body: format!("{} → {}", from.name, deal.stage_name),
            payload: serde_json::json!({
                "from_stage_id": from.id, "from": from.name,
                "to_stage_id": deal.stage_id, "to": deal.stage_name,
                "seconds_in_previous_stage": seconds,
            }),
            ..Default::default()
        })
        .await?;
    Ok(Json(MoveResult {
        deal,
        seconds_in_previous_stage: seconds,
    }))
}

/// Every stay of the deal in a stage, with the time spent there.
#[utoipa::path(get, path = "/api/v1/deals/{id}/stages", tag = "deals", responses((status = 200, body = Vec<StageStay>)))]
async fn deal_stages(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<StageStay>>> {
    visible_deal(&state, &user, id).await?;
    Ok(Json(state.db.deal_history(id).await?))
}
