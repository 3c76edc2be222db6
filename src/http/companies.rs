//! Companies: list, search by name, create, change, delete.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{AuthUser, Json, Path, Query};
use super::{AppState, optional_text, required_text};
use crate::crm::index::Party;
use crate::store::companies::{Company, CompanyData};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_companies, create_company))
        .routes(routes!(get_company, update_company, delete_company))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyInput {
    pub name: String,
    /// The office number, in any format.
    pub phone: Option<String>,
    pub website: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct CompanyQuery {
    /// Part of the name, any case.
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A website is an http(s) address with a host: anything else (`javascript:`,
/// `data:`) would run or open something when the console links it.
fn check_website(w: &str) -> ApiResult<String> {
    let ok = url::Url::parse(w).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    if ok {
        Ok(w.to_owned())
    } else {
        Err(super::error::ApiError::bad_request(format!(
            "website: `{}` is not an http:// or https:// address",
            w.chars().take(80).collect::<String>().escape_default()
        )))
    }
}

fn company_data(state: &AppState, req: CompanyInput) -> ApiResult<CompanyData> {
    let name = required_text("name", &req.name, 200)?;
    let (phone_raw, phone_e164) = match req
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(raw) => {
            let e164 = state
                .phones
                .normalize(raw)
                .map_err(|e| super::error::ApiError::bad_request(format!("phone: {e}")))?;
            (Some(raw.to_owned()), Some(e164.as_str().to_owned()))
        }
        None => (None, None),
    };
    let website = match req.website.as_deref().map(str::trim) {
        Some("") | None => None,
        Some(w) => Some(check_website(optional_text("website", w, 300)?)?),
    };
    Ok(CompanyData {
        name,
        phone_raw,
        phone_e164,
        website,
    })
}

#[utoipa::path(get, path = "/api/v1/companies", tag = "companies", params(CompanyQuery),
    responses((status = 200, body = Vec<Company>)))]
async fn list_companies(
    State(state): State<AppState>,
    _user: AuthUser,
    Query(q): Query<CompanyQuery>,
) -> ApiResult<Json<Vec<Company>>> {
    let limit = super::page_limit(q.limit, 50, 500)?;
    let offset = super::page_offset(q.offset)?;
    Ok(Json(
        state.db.companies(q.q.as_deref(), limit, offset).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/companies", tag = "companies", request_body = CompanyInput,
    responses((status = 201, body = Company)))]
async fn create_company(
    State(state): State<AppState>,
    _user: AuthUser,
    Json(req): Json<CompanyInput>,
) -> ApiResult<(StatusCode, Json<Company>)> {
    let data = company_data(&state, req)?;
    let c = state.db.create_company(&data).await?;
    state.index_numbers(Party::Company(c.id), c.phone_e164.as_deref());
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(get, path = "/api/v1/companies/{id}", tag = "companies",
    responses((status = 200, body = Company), (status = 404, body = super::error::ErrorBody)))]
async fn get_company(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Company>> {
    Ok(Json(state.db.company(id).await?))
}

#[utoipa::path(patch, path = "/api/v1/companies/{id}", tag = "companies", request_body = CompanyInput,
    responses((status = 200, body = Company)))]
async fn update_company(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
    Json(req): Json<CompanyInput>,
) -> ApiResult<Json<Company>> {
    let data = company_data(&state, req)?;
    let c = state.db.update_company(id, &data).await?;
    state.index_numbers(Party::Company(c.id), c.phone_e164.as_deref());
    Ok(Json(c))
}

/// Deletes a company (managers and admins); its contacts stay, without a company.
#[utoipa::path(delete, path = "/api/v1/companies/{id}", tag = "companies",
    responses((status = 204, description = "deleted")))]
async fn delete_company(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    user.require_manager()?;
    state.db.delete_company(id).await?;
    state.callers.remove(Party::Company(id));
    Ok(StatusCode::NO_CONTENT)
}
