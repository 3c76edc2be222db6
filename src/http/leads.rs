//! Leads: list, create, change status or manager, convert into a contact (and deal).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Json, Path, Query};
use super::{AppState, optional_text};
use crate::crm::index::Party;
use crate::store::activities::NewActivity;
use crate::store::contacts::{Contact, ContactData, Phone};
use crate::store::deals::{Deal, DealData};
use crate::store::leads::{LEAD_STATUSES, Lead, LeadData};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_leads, create_lead))
        .routes(routes!(get_lead, update_lead))
        .routes(routes!(convert_lead))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    #[serde(default)]
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// call | web | import | manual (default manual)
    pub source: Option<String>,
    /// new | qualified | lost (default new; use /convert to convert)
    pub status: Option<String>,
    pub manager_id: Option<i64>,
    pub notes: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct LeadQuery {
    pub status: Option<String>,
    pub manager_id: Option<i64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

fn lead_data(state: &AppState, req: LeadInput, base: Option<&Lead>) -> ApiResult<LeadData> {
    let status = req
        .status
        .or_else(|| base.map(|b| b.status.clone()))
        .unwrap_or_else(|| "new".to_owned());
    if !LEAD_STATUSES.contains(&status.as_str()) {
        return Err(ApiError::bad_request(format!(
            "status must be one of {}",
            LEAD_STATUSES.join(", ")
        )));
    }
    if status == "converted" && base.is_none_or(|b| b.status != "converted") {
        return Err(ApiError::bad_request(
            "convert a lead with POST /api/v1/leads/{id}/convert",
        ));
    }
    let (phone_raw, phone_e164) = match req
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(raw) => {
            let e = state
                .phones
                .normalize(raw)
                .map_err(|e| ApiError::bad_request(format!("phone: {e}")))?;
            (Some(raw.to_owned()), Some(e.as_str().to_owned()))
        }
        None => match base {
            Some(b) => (b.phone_raw.clone(), b.phone_e164.clone()),
            None => (None, None),
        },
    };
    Ok(LeadData {
        name: optional_text("name", req.name.trim(), 200)?.to_owned(),
        phone_raw,
        phone_e164,
        email: req.email.or_else(|| base.and_then(|b| b.email.clone())),
        source: req
            .source
            .or_else(|| base.map(|b| b.source.clone()))
            .unwrap_or_else(|| "manual".to_owned()),
        status,
        manager_id: req.manager_id.or_else(|| base.and_then(|b| b.manager_id)),
        notes: optional_text("notes", req.notes.as_deref().unwrap_or(""), 10_000)?.to_owned(),
    })
}

pub async fn visible_lead(state: &AppState, user: &AuthUser, id: i64) -> ApiResult<Lead> {
    let lead = state.db.lead(id).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => ApiError::not_found("lead"),
        e => e.into(),
    })?;
    if !user.scope().allows(&state.db, lead.manager_id).await? {
        return Err(ApiError::forbidden());
    }
    Ok(lead)
}

#[utoipa::path(get, path = "/api/v1/leads", tag = "leads", params(LeadQuery),
    responses((status = 200, body = Vec<Lead>)))]
async fn list_leads(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<LeadQuery>,
) -> ApiResult<Json<Vec<Lead>>> {
    let limit = super::page_limit(q.limit, 50, 500)?;
    let offset = super::page_offset(q.offset)?;
    Ok(Json(
        state
            .db
            .leads(
                user.scope(),
                q.status.as_deref(),
                q.manager_id,
                limit,
                offset,
            )
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/leads", tag = "leads", request_body = LeadInput,
    responses((status = 201, body = Lead)))]
async fn create_lead(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<LeadInput>,
) -> ApiResult<(StatusCode, Json<Lead>)> {
    let mut data = lead_data(&state, req, None)?;
    if data.name.is_empty() && data.phone_raw.is_none() && data.email.is_none() {
        return Err(ApiError::bad_request(
            "a lead needs a name, a phone or an e-mail",
        ));
    }
    if data.manager_id.is_none() {
        data.manager_id = Some(user.id());
    }
    super::contacts::check_assignee(&state, &user, "manager_id", data.manager_id).await?;
    let lead = state.db.create_lead(&data).await?;
    state.index_lead(&lead);
    Ok((StatusCode::CREATED, Json(lead)))
}

#[utoipa::path(get, path = "/api/v1/leads/{id}", tag = "leads", responses((status = 200, body = Lead)))]
async fn get_lead(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Lead>> {
    Ok(Json(visible_lead(&state, &user, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/leads/{id}", tag = "leads", request_body = LeadInput,
    responses((status = 200, body = Lead)))]
async fn update_lead(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Json(req): Json<LeadInput>,
) -> ApiResult<Json<Lead>> {
    let lead = visible_lead(&state, &user, id).await?;
    let mut req = req;
    if req.name.is_empty() {
        req.name = lead.name.clone();
    }
    if req.notes.is_none() {
        req.notes = Some(lead.notes.clone());
    }
    let data = lead_data(&state, req, Some(&lead))?;
    if data.manager_id != lead.manager_id {
        super::contacts::check_assignee(&state, &user, "manager_id", data.manager_id).await?;
    }
    let lead = state.db.update_lead(id, &data).await?;
    state.index_lead(&lead);
    Ok(Json(lead))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertInput {
    /// Defaults to the lead's name.
    pub name: Option<String>,
    pub company: Option<String>,
    /// Defaults to the lead's manager.
    pub owner_id: Option<i64>,
    /// Opens a deal for the new contact.
    pub deal: Option<ConvertDeal>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertDeal {
    pub title: String,
    pub pipeline_id: i64,
    #[serde(default)]
    pub amount_minor: i64,
    pub currency: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Conversion {
    pub lead: Lead,
    pub contact: Contact,
    pub deal: Option<Deal>,
}

/// Turns a lead into a contact (with the lead's number) and optionally a deal.
#[utoipa::path(post, path = "/api/v1/leads/{id}/convert", tag = "leads", request_body = ConvertInput,
    responses((status = 200, body = Conversion), (status = 409, body = super::error::ErrorBody)))]
async fn convert_lead(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Json(req): Json<ConvertInput>,
) -> ApiResult<Json<Conversion>> {
    let lead = visible_lead(&state, &user, id).await?;
    if lead.status == "converted" {
        return Err(ApiError::conflict("the lead is already converted"));
    }
    let name = req.name.unwrap_or_else(|| lead.name.clone());
    let name = if name.trim().is_empty() {
        lead.phone_raw
            .clone()
            .unwrap_or_else(|| format!("Lead {}", lead.id))
    } else {
        super::required_text("name", &name, 200)?
    };
    let company_id = match req
        .company
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(c) => Some(state.db.company_by_name_or_create(c).await?),
        None => None,
    };
    let owner_id = req.owner_id.or(lead.manager_id).or(Some(user.id()));
    if req.owner_id.is_some() {
        super::contacts::check_assignee(&state, &user, "owner_id", owner_id).await?;
    }
    let phones = match (&lead.phone_raw, &lead.phone_e164) {
        (Some(raw), Some(e164)) => vec![Phone {
            raw: raw.clone(),
            e164: e164.clone(),
            kind: "mobile".to_owned(),
        }],
        _ => vec![],
    };
    let contact = state
        .db
        .create_contact(&ContactData {
            name,
            company_id,
            owner_id,
            email: lead.email.clone(),
            notes: lead.notes.clone(),
            tags: vec![],
            phones,
        })
        .await?;
    let deal = match req.deal {
        Some(d) => Some(
            state
                .db
                .create_deal(
                    d.pipeline_id,
                    &DealData {
                        title: super::required_text("deal.title", &d.title, 200)?,
                        contact_id: Some(contact.id),
                        owner_id,
                        amount_minor: super::deals::check_amount(
                            "deal.amount_minor",
                            d.amount_minor,
                        )?,
                        currency: d.currency.unwrap_or_else(|| "RUB".to_owned()),
                    },
                )
                .await?,
        ),
        None => None,
    };
    let lead = state
        .db
        .mark_lead_converted(id, contact.id, deal.as_ref().map(|d| d.id))
        .await?;
    state.index_lead(&lead);
    state.index_numbers(
        Party::Contact(contact.id),
        contact.phones.iter().map(|p| p.e164.as_str()),
    );
    state
        .db
        .add_activity(&NewActivity {
            kind: "lead_converted".into(),
            contact_id: Some(contact.id),
            lead_id: Some(lead.id),
            deal_id: deal.as_ref().map(|d| d.id),
            author_id: Some(user.id()),
            payload: serde_json::json!({"lead_id": lead.id}),
            ..Default::default()
        })
        .await?;
    Ok(Json(Conversion {
        lead,
        contact,
        deal,
    }))
}
