//! `POST /api/v1/auth/login`, logout and the caller's own account.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, ClientAddr, Json, SESSION_COOKIE, SecureCookie, request_token};
use crate::store::users::{LOCALES, User, UserChanges};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me, update_me))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`; also set as an HttpOnly cookie for the web pages.
    pub token: String,
    pub expires_at: String,
    pub user: User,
}

/// Exchanges a login and password for a bearer token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = super::error::ErrorBody),
              (status = 429, description = "too many failed attempts", body = super::error::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    SecureCookie(secure): SecureCookie,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    if let Some(wait) = state.limiter.blocked(&req.login, &addr) {
        state.metrics.logins_blocked.fetch_add(1, Ordering::Relaxed);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many failed logins; try again in {} minutes",
                wait.as_secs().div_ceil(60)
            ),
        );
        e.retry_after = Some(wait.as_secs().max(1));
        return Err(e);
    }
    let creds = if req.login.len() <= 200 {
        state.db.credentials(&req.login).await?
    } else {
        None
    };
    let password = req.password.clone();
    // Verify against a dummy hash for unknown logins so timing does not tell which logins exist.
    let hash = creds
        .as_ref()
        .map(|c| c.1.clone())
        .unwrap_or_else(|| DUMMY_HASH.clone());
    let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let user_id = match (ok, creds) {
        (true, Some((id, _))) => id,
        _ => {
            state.limiter.failed(&req.login, &addr);
            state.metrics.logins_failed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(login = %req.login.chars().take(64).collect::<String>(), %addr, "failed login");
            return Err(ApiError::unauthorized("wrong login or password"));
        }
    };
    state.limiter.succeeded_from(&req.login, &addr);
    state.metrics.logins_ok.fetch_add(1, Ordering::Relaxed);
    let (token, token_hash) = crate::auth::new_token();
    let ttl_ms = state.config.token_ttl_hours * 3_600_000;
    let expires = state
        .db
        .create_session(&token_hash, user_id, ttl_ms)
        .await?;
    let user = state.db.user(user_id).await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl_ms / 1000,
        if secure { "; Secure" } else { "" }
    );
    let mut resp = Json(LoginResponse {
        token,
        expires_at: crate::store::fmt_time(expires),
        user,
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// An Argon2 hash of a random string, verified against when the login is unknown.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::auth::hash_password(&crate::auth::random_password()));

/// Ends the session of the token used.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "logged out")))]
async fn logout(
    State(state): State<AppState>,
    _user: AuthUser,
    SecureCookie(secure): SecureCookie,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(token) = request_token(&headers) {
        state
            .db
            .delete_session(&crate::auth::token_hash(&token))
            .await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(if secure {
            "ringside_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
        } else {
            "ringside_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        }),
    );
    Ok(resp)
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = User)))]
async fn me(user: AuthUser) -> Json<User> {
    Json(user.0)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeUpdate {
    /// en | ru | uk | de
    pub locale: Option<String>,
    pub password: Option<String>,
    /// Required when changing the password.
    pub current_password: Option<String>,
}

/// Changes the caller's own locale or password.
#[utoipa::path(patch, path = "/api/v1/me", tag = "auth", request_body = MeUpdate,
    responses((status = 200, body = User)))]
async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<MeUpdate>,
) -> ApiResult<Json<User>> {
    let mut changes = UserChanges::default();
    if let Some(locale) = req.locale {
        if !LOCALES.contains(&locale.as_str()) {
            return Err(ApiError::bad_request(format!(
                "locale must be one of {}",
                LOCALES.join(", ")
            )));
        }
        changes.locale = Some(locale);
    }
    if let Some(password) = req.password {
        let current = req.current_password.unwrap_or_default();
        let creds = state.db.credentials(&user.0.login).await?;
        let ok = match creds {
            Some((_, hash)) => {
                tokio::task::spawn_blocking(move || crate::auth::verify_password(&current, &hash))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        if !ok {
            return Err(ApiError::unauthorized("current_password is wrong"));
        }
        crate::auth::check_password_policy(&password)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        changes.password_hash = Some(hash_blocking(password).await);
    }
    Ok(Json(state.db.update_user(user.id(), changes).await?))
}

pub async fn hash_blocking(password: String) -> String {
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .unwrap_or_default()
}
