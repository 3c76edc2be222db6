//! Users, teams and the audit log. Only admins change accounts.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, ClientAddr, Json, Path, Query};
use super::{AppState, required_text};
use crate::store::audit::AuditEntry;
use crate::store::users::{Device, LOCALES, NewUser, ROLES, Team, User, UserChanges};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(list_teams, create_team))
        .routes(routes!(update_team))
        .routes(routes!(audit_log))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    pub login: String,
    pub name: String,
    /// agent | supervisor | manager | admin
    pub role: String,
    pub password: String,
    pub team_id: Option<i64>,
    #[serde(default)]
    pub extensions: Vec<String>,
    /// The user's phones as Asterisk names the endpoints
    /// (`{"device": "PJSIP/anna-desk", "extension": "101"}`); without any,
    /// `[pbx] device` names the phone of each extension.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// The number the customer sees on this user's click-to-calls.
    pub presented_number: Option<String>,
    /// en | ru | uk | de (default en)
    pub locale: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub name: Option<String>,
    pub role: Option<String>,
    /// `null` removes the user from their team.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub team_id: Option<Option<i64>>,
    pub extensions: Option<Vec<String>>,
    /// Replaces the user's devices.
    pub devices: Option<Vec<Device>>,
    /// `null` falls back to the team's number, then `[pbx] presented_number`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub presented_number: Option<Option<String>>,
    pub locale: Option<String>,
    pub active: Option<bool>,
    pub password: Option<String>,
}

/// Distinguishes an absent field from an explicit `null`.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub fn check_role(role: &str) -> Result<(), ApiError> {
    if ROLES.contains(&role) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "role must be one of {}",
            ROLES.join(", ")
        )))
    }
}

fn check_locale(locale: &str) -> Result<(), ApiError> {
    if LOCALES.contains(&locale) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "locale must be one of {}",
            LOCALES.join(", ")
        )))
    }
}

pub fn check_extensions(exts: &[String]) -> Result<(), ApiError> {
    for e in exts {
        if e.is_empty()
            || e.len() > 32
            || !e
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ApiError::bad_request(format!(
                "extension `{}` must be 1–32 letters, digits, - or _",
                e.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// Devices as Asterisk names endpoints: `TECH/name`, one word each, the
/// extension (if any) like a user's extensions.
pub fn check_devices(devices: &[Device]) -> Result<(), ApiError> {
    for d in devices {
        let ok = d.device.split_once('/').is_some_and(|(tech, name)| {
            !tech.is_empty()
                && tech.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.is_empty()
                && name.bytes().all(|b| {
                    b.is_ascii_graphic()
                        && !matches!(
                            b,
                            b',' | b'&'
                                | b'|'
                                | b'('
                                | b')'
                                | b'{'
                                | b'}'
                                | b'"'
                                | b'\\'
                                | b'\''
                                | b';'
                        )
                })
        }) && d.device.len() <= 120;
        if !ok {
            return Err(ApiError::bad_request(format!(
                "device `{}` is not an endpoint as Asterisk names it, such as PJSIP/anna-desk \
                 or SIP/150010002 (TECH/name, at most 120 characters)",
                d.device
                    .chars()
                    .take(40)
                    .collect::<String>()
                    .escape_default()
            )));
        }
        if let Some(e) = &d.extension {
            check_extensions(std::slice::from_ref(e))?;
        }
    }
    for (i, d) in devices.iter().enumerate() {
        if devices[..i]
            .iter()
            .any(|o| o.device.eq_ignore_ascii_case(&d.device))
        {
            return Err(ApiError::bad_request(format!(
                "device `{}` is given twice",
                d.device
            )));
        }
    }
    Ok(())
}

fn presented(n: Option<&str>) -> Result<Option<String>, ApiError> {
    match n.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => crate::config::check_presented_number(n)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("presented_number: {e}"))),
        None => Ok(None),
    }
}

fn check_login(login: &str) -> Result<(), ApiError> {
    if login.is_empty()
        || login.len() > 64
        || !login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    {
        return Err(ApiError::bad_request(
            "login must be 1–64 letters, digits, . _ - or @",
        ));
    }
    Ok(())
}

/// Whether `user` may see the account `other`: managers and admins every
/// account, agents and supervisors themselves and their team's members.
pub fn sees_user(user: &AuthUser, other: &User) -> bool {
    user.sees_all()
        || other.id == user.id()
        || (user.0.team_id.is_some() && other.team_id == user.0.team_id)
}

/// The users the caller may see (names, roles, extensions; never password
/// hashes): everyone for managers and admins, their own team for agents and
/// supervisors.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = Vec<User>)))]
async fn list_users(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<User>>> {
    let mut users = state.db.users().await?;
    users.retain(|u| sees_user(&user, u));
    Ok(Json(users))
}

/// Creates a user (admins only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserInput,
    responses((status = 201, body = User), (status = 403, body = super::error::ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    user: AuthUser,
    ClientAddr(addr): ClientAddr,
    Json(req): Json<UserInput>,
) -> ApiResult<(StatusCode, Json<User>)> {
    user.require_admin()?;
    check_login(&req.login)?;
    let name = required_text("name", &req.name, 200)?;
    check_role(&req.role)?;
    check_extensions(&req.extensions)?;
    check_devices(&req.devices)?;
    let presented_number = presented(req.presented_number.as_deref())?;
    let locale = req.locale.unwrap_or_else(|| "en".to_owned());
    check_locale(&locale)?;
    crate::auth::check_password_policy(&req.password)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let hash = super::auth::hash_blocking(req.password).await;
    let created = state
        .db
        .create_user(NewUser {
            login: &req.login,
            name: &name,
            role: &req.role,
            team_id: req.team_id,
            locale: &locale,
            password_hash: &hash,
            extensions: &req.extensions,
        })
        .await?;
    let created = if req.devices.is_empty() && presented_number.is_none() {
        created
    } else {
        state
            .db
            .set_user_phones(
                created.id,
                Some(&req.devices),
                Some(presented_number.as_deref()),
            )
            .await?
    };
    state.extensions.set_user(&created);
    state
        .db
        .audit(
            Some(user.id()),
            "user.create",
            &format!("{} ({})", created.login, created.role),
            Some(&addr),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One user (agents and supervisors: of their own team).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    responses((status = 200, body = User), (status = 403, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<User>> {
    let other = state.db.user(id).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => ApiError::not_found("user"),
        e => e.into(),
    })?;
    if !sees_user(&user, &other) {
        return Err(ApiError::forbidden());
    }
    Ok(Json(other))
}

/// Changes a user's name, role, team, extensions, locale, password or deactivates them (admins only).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserUpdate,
    responses((status = 200, body = User)))]
async fn update_user(
    State(state): State<AppState>,
    user: AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<i64>,
    Json(req): Json<UserUpdate>,
) -> ApiResult<Json<User>> {
    user.require_admin()?;
    let mut c = UserChanges::default();
    if let Some(n) = req.name {
        c.name = Some(required_text("name", &n, 200)?);
    }
    if let Some(r) = req.role {
        check_role(&r)?;
        c.role = Some(r);
    }
    c.team_id = req.team_id;
    if let Some(e) = req.extensions {
        check_extensions(&e)?;
        c.extensions = Some(e);
    }
    if let Some(d) = req.devices {
        check_devices(&d)?;
        c.devices = Some(d);
    }
    if let Some(n) = req.presented_number {
        c.presented_number = Some(presented(n.as_deref())?);
    }
    if let Some(l) = req.locale {
        check_locale(&l)?;
        c.locale = Some(l);
    }
    c.active = req.active;
    if let Some(p) = req.password {
        crate::auth::check_password_policy(&p).map_err(|e| ApiError::bad_request(e.to_string()))?;
        c.password_hash = Some(super::auth::hash_blocking(p).await);
    }
    let target = state.db.user(id).await?;
    let stays_admin = c.role.as_deref().is_none_or(|r| r == "admin") && c.active != Some(false);
    if target.role == "admin" && target.active != 0 && !stays_admin {
        // Someone must be left to manage accounts.
        if state.db.active_admins().await? <= 1 {
            return Err(ApiError::conflict(
                "this is the last active admin; make another user admin first",
            ));
        }
    }
    let ends_sessions = c.active == Some(false) || c.password_hash.is_some();
    let updated = state.db.update_user(id, c).await?;
    if ends_sessions {
        // Their tokens are gone with the change; their open tabs close too.
        state.push.end_sessions(id).await;
    }
    state.extensions.set_user(&updated);
    state
        .db
        .audit(Some(user.id()), "user.update", &updated.login, Some(&addr))
        .await?;
    Ok(Json(updated))
}

/// The teams: every team for managers and admins, their own for agents and
/// supervisors.
#[utoipa::path(get, path = "/api/v1/teams", tag = "users", responses((status = 200, body = Vec<Team>)))]
async fn list_teams(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<Team>>> {
    let mut teams = state.db.teams().await?;
    if !user.sees_all() {
        teams.retain(|t| Some(t.id) == user.0.team_id);
    }
    Ok(Json(teams))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamInput {
    pub name: String,
    /// The number the customer sees on the members' click-to-calls.
    pub presented_number: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamUpdate {
    /// `null` falls back to `[pbx] presented_number`.
    #[schema(value_type = Option<String>)]
    pub presented_number: Option<String>,
}

/// Creates a team (admins only).
#[utoipa::path(post, path = "/api/v1/teams", tag = "users", request_body = TeamInput,
    responses((status = 201, body = Team)))]
async fn create_team(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<TeamInput>,
) -> ApiResult<(StatusCode, Json<Team>)> {
    user.require_admin()?;
    let name = required_text("name", &req.name, 100)?;
    let number = presented(req.presented_number.as_deref())?;
    let mut team = state.db.create_team(&name).await?;
    if number.is_some() {
        team = state
            .db
            .set_team_presented_number(team.id, number.as_deref())
            .await?;
    }
    Ok((StatusCode::CREATED, Json(team)))
}

/// Sets the number a team's click-to-calls present to customers (admins only).
#[utoipa::path(patch, path = "/api/v1/teams/{id}", tag = "users", request_body = TeamUpdate,
    responses((status = 200, body = Team), (status = 404, body = super::error::ErrorBody)))]
async fn update_team(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Json(req): Json<TeamUpdate>,
) -> ApiResult<Json<Team>> {
    user.require_admin()?;
    let number = presented(req.presented_number.as_deref())?;
    match state
        .db
        .set_team_presented_number(id, number.as_deref())
        .await
    {
        Ok(t) => Ok(Json(t)),
        Err(crate::store::StoreError::NotFound) => Err(ApiError::not_found("team")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    pub limit: Option<i64>,
}

/// The newest audit entries: exports, account changes (admins only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "users", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>)))]
async fn audit_log(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    user.require_admin()?;
    Ok(Json(
        state
            .db
            .audit_entries(super::page_limit(q.limit, 100, 1000)?)
            .await?,
    ))
}
