//! Contacts with several phones: list/search/filter, create, change, delete,
//! and the audited bulk export (managers and admins only).

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, ClientAddr, Json, Path, Query};
use super::{AppState, optional_text, required_text};
use crate::crm::index::Party;
use crate::store::contacts::{Contact, ContactData, ContactFilter, Phone};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, create_contact))
        .routes(routes!(export_contacts))
        .routes(routes!(get_contact, update_contact, delete_contact))
}

#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct PhoneInput {
    /// Any format: `8 (916) 123-45-67`, `+49 30 1234567`, `tel:+380…`.
    pub number: String,
    /// mobile | work | home | fax | other (default mobile)
    pub kind: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub name: String,
    pub company_id: Option<i64>,
    /// A company name: found (any case) or created.
    pub company: Option<String>,
    /// Defaults to the creating user.
    pub owner_id: Option<i64>,
    pub email: Option<String>,
    pub notes: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub phones: Vec<PhoneInput>,
}

/// Only the fields sent are changed; `phones` and `tags` replace the lists.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactUpdate {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "super::users::double_option")]
    #[schema(value_type = Option<i64>)]
    pub company_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::users::double_option")]
    #[schema(value_type = Option<i64>)]
    pub owner_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::users::double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    pub notes: Option<String>,
    pub tags: Option<Vec<String>>,
    pub phones: Option<Vec<PhoneInput>>,
}

#[derive(Deserialize, IntoParams)]
pub struct ContactQuery {
    /// Part of the name, e-mail or company name, any case.
    pub q: Option<String>,
    /// A number in any format: contacts having it.
    pub phone: Option<String>,
    pub tag: Option<String>,
    pub owner_id: Option<i64>,
    pub company_id: Option<i64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

const PHONE_KINDS: [&str; 5] = ["mobile", "work", "home", "fax", "other"];

pub fn normalize_phones(state: &AppState, input: &[PhoneInput]) -> ApiResult<Vec<Phone>> {
    if input.len() > 20 {
        return Err(ApiError::bad_request(
            "at most 20 phone numbers per contact",
        ));
    }
    let mut out: Vec<Phone> = Vec::with_capacity(input.len());
    for (i, p) in input.iter().enumerate() {
        let raw = p.number.trim();
        let e164 = state
            .phones
            .normalize(raw)
            .map_err(|e| ApiError::bad_request(format!("phones[{i}]: {e}")))?;
        let kind = p.kind.clone().unwrap_or_else(|| "mobile".to_owned());
        if !PHONE_KINDS.contains(&kind.as_str()) {
            return Err(ApiError::bad_request(format!(
                "phones[{i}].kind must be one of {}",
                PHONE_KINDS.join(", ")
            )));
        }
        if out.iter().all(|o| o.e164 != e164.as_str()) {
            out.push(Phone {
                raw: raw.to_owned(),
                e164: e164.as_str().to_owned(),
                kind,
            });
        }
    }
    Ok(out)
}

pub fn clean_tags(tags: &[String]) -> ApiResult<Vec<String>> {
    if tags.len() > 50 {
        return Err(ApiError::bad_request("at most 50 tags"));
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = optional_text("tags", t.trim(), 50)?.to_lowercase();
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

fn clean_email(email: Option<&str>) -> ApiResult<Option<String>> {
    match email.map(str::trim).filter(|e| !e.is_empty()) {
        None => Ok(None),
        Some(e) => {
            optional_text("email", e, 254)?;
            if !e.contains('@') || e.contains(char::is_whitespace) {
                return Err(ApiError::bad_request(format!(
                    "email: `{e}` is not an e-mail address"
                )));
            }
            Ok(Some(e.to_owned()))
        }
    }
}

/// The contact, when the caller may see it (404 when it does not exist, 403 when hidden).
pub async fn visible_contact(state: &AppState, user: &AuthUser, id: i64) -> ApiResult<Contact> {
    let c = state.db.contact(id).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => ApiError::not_found("contact"),
        e => e.into(),
    })?;
    if !user.scope().allows(&state.db, c.owner_id).await? {
        return Err(ApiError::forbidden());
    }
    Ok(c)
}

/// Agents and supervisors may only hand contacts to themselves or their team.
async fn check_owner(state: &AppState, user: &AuthUser, owner: Option<i64>) -> ApiResult<()> {
    check_assignee(state, user, "owner_id", owner).await
}

/// A record handed to user `to` (`field` names it in errors): 400 when the
/// user does not exist, 403 when an agent or supervisor hands it outside
/// their team.
pub async fn check_assignee(
    state: &AppState,
    user: &AuthUser,
    field: &str,
    to: Option<i64>,
) -> ApiResult<()> {
    if let Some(o) = to {
        state
            .db
            .user(o)
            .await
            .map_err(|_| ApiError::bad_request(format!("{field}: user {o} does not exist")))?;
        if !user.scope().allows(&state.db, Some(o)).await? {
            return Err(ApiError::forbidden());
        }
    }
    Ok(())
}

async fn company_id(
    state: &AppState,
    id: Option<i64>,
    name: Option<&str>,
) -> ApiResult<Option<i64>> {
    match (id, name.map(str::trim).filter(|n| !n.is_empty())) {
        (Some(id), _) => Ok(Some(id)),
        (None, Some(name)) => {
            optional_text("company", name, 200)?;
            Ok(Some(state.db.company_by_name_or_create(name).await?))
        }
        (None, None) => Ok(None),
    }
}

/// Contacts the caller may see, filtered and searched.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ContactQuery),
    responses((status = 200, body = Vec<Contact>)))]
async fn list_contacts(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ContactQuery>,
) -> ApiResult<Json<Vec<Contact>>> {
    let e164 = match q.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(
            state
                .phones
                .normalize(p)
                .map_err(|e| ApiError::bad_request(format!("phone: {e}")))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let filter = ContactFilter {
        q: q.q,
        tag: q.tag,
        owner_id: q.owner_id,
        company_id: q.company_id,
        e164,
        limit: super::page_limit(q.limit, 50, 500)?,
        offset: super::page_offset(q.offset)?,
    };
    Ok(Json(state.db.contacts(user.scope(), &filter).await?))
}

#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", request_body = ContactInput,
    responses((status = 201, body = Contact), (status = 400, body = super::error::ErrorBody)))]
async fn create_contact(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<ContactInput>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    let owner_id = req.owner_id.or(Some(user.id()));
    check_owner(&state, &user, owner_id).await?;
    let data = ContactData {
        name: required_text("name", &req.name, 200)?,
        company_id: company_id(&state, req.company_id, req.company.as_deref()).await?,
        owner_id,
        email: clean_email(req.email.as_deref())?,
        notes: optional_text("notes", req.notes.as_deref().unwrap_or(""), 10_000)?.to_owned(),
        tags: clean_tags(&req.tags)?,
        phones: normalize_phones(&state, &req.phones)?,
    };
    let c = state.db.create_contact(&data).await?;
    state.index_numbers(
        Party::Contact(c.id),
        c.phones.iter().map(|p| p.e164.as_str()),
    );
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts",
    responses((status = 200, body = Contact), (status = 403, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
async fn get_contact(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Contact>> {
    Ok(Json(visible_contact(&state, &user, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", request_body = ContactUpdate,
    responses((status = 200, body = Contact)))]
async fn update_contact(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Json(req): Json<ContactUpdate>,
) -> ApiResult<Json<Contact>> {
    let c = visible_contact(&state, &user, id).await?;
    let owner_id = req.owner_id.unwrap_or(c.owner_id);
    if owner_id != c.owner_id {
        check_owner(&state, &user, owner_id).await?;
    }
    let data = ContactData {
        name: match req.name {
            Some(n) => required_text("name", &n, 200)?,
            None => c.name,
        },
        company_id: req.company_id.unwrap_or(c.company_id),
        owner_id,
        email: match req.email {
            Some(e) => clean_email(e.as_deref())?,
            None => c.email,
        },
        notes: match req.notes {
            Some(n) => optional_text("notes", &n, 10_000)?.to_owned(),
            None => c.notes,
        },
        tags: match req.tags {
            Some(t) => clean_tags(&t)?,
            None => c.tags,
        },
        phones: match req.phones {
            Some(p) => normalize_phones(&state, &p)?,
            None => c.phones,
        },
    };
    let c = state.db.update_contact(id, &data).await?;
    state.index_numbers(
        Party::Contact(c.id),
        c.phones.iter().map(|p| p.e164.as_str()),
    );
    Ok(Json(c))
}

/// Deletes a contact and its timeline (managers and admins).
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts",
    responses((status = 204, description = "deleted")))]
async fn delete_contact(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    user.require_manager()?;
    state.db.delete_contact(id).await?;
    state.callers.remove(Party::Contact(id));
    Ok(StatusCode::NO_CONTENT)
}

/// All contacts as CSV (managers and admins; every export is written to the audit log).
#[utoipa::path(get, path = "/api/v1/contacts/export", tag = "contacts",
    responses((status = 200, description = "text/csv: name, company, owner, email, phones, tags", content_type = "text/csv"),
              (status = 403, body = super::error::ErrorBody)))]
async fn export_contacts(
    State(state): State<AppState>,
    user: AuthUser,
    ClientAddr(addr): ClientAddr,
) -> ApiResult<Response> {
    user.require_manager()?;
    state
        .db
        .audit(
            Some(user.id()),
            "contacts.export",
            "all contacts as CSV",
            Some(&addr),
        )
        .await?;
    tracing::warn!(user = %user.0.login, %addr, "bulk export of contacts");
    let db = state.db.clone();
    let header_row = csv_row(&["id", "name", "company", "owner", "email", "phones", "tags"]);
    let pages = futures::stream::unfold((db, 0i64, false), |(db, after, done)| async move {
        if done {
            return None;
        }
        match db.contacts_after(after, 1000).await {
            Ok(page) if page.is_empty() => None,
            Ok(page) => {
                let last = page.last().map(|c| c.id).unwrap_or(after);
                let mut buf = String::new();
                for c in &page {
                    let phones: Vec<&str> = c.phones.iter().map(|p| p.e164.as_str()).collect();
                    buf.push_str(&csv_row(&[
                        &c.id.to_string(),
                        &c.name,
                        c.company_name.as_deref().unwrap_or(""),
                        c.owner_name.as_deref().unwrap_or(""),
                        c.email.as_deref().unwrap_or(""),
                        &phones.join(";"),
                        &c.tags.join(";"),
                    ]));
                }
                Some((Ok::<_, std::io::Error>(buf), (db, last, false)))
            }
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), (db, after, true))),
        }
    });
    let body = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::io::Error>(header_row) }),
        pages,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"contacts.csv\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

fn csv_row(fields: &[&str]) -> String {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    // Cells starting with = - @ are prefixed so spreadsheets do not run them as formulas
    // (`+` is left alone: every E.164 number starts with it).
    let safe: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.starts_with(['=', '-', '@']) {
                format!("'{f}")
            } else {
                (*f).to_owned()
            }
        })
        .collect();
    let _ = w.write_record(&safe);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
