//! Extractors: JSON, path and query parsing that fail in the API's error
//! shape, and the authenticated user (bearer token or session cookie).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::store::Scope;
use crate::store::users::User;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match status.as_u16() {
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            _ => "bad_request",
        };
        ApiError::new(status, code, r.body_text())
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(r.status(), "bad_request", r.body_text())
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(r.status(), "bad_request", r.body_text())
    }
}

pub const SESSION_COOKIE: &str = "ringside_session";

/// The user behind the request's bearer token (or session cookie).
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

impl AuthUser {
    pub fn role(&self) -> &str {
        &self.0.role
    }
    pub fn id(&self) -> i64 {
        self.0.id
    }
    pub fn is_admin(&self) -> bool {
        self.role() == "admin"
    }
    /// Managers and admins see everything; agents and supervisors their team.
    pub fn sees_all(&self) -> bool {
        matches!(self.role(), "manager" | "admin")
    }
    pub fn scope(&self) -> Scope {
        if self.sees_all() {
            Scope::All
        } else {
            Scope::Team {
                user_id: self.0.id,
                team_id: self.0.team_id,
            }
        }
    }
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
    pub fn require_manager(&self) -> Result<(), ApiError> {
        if self.sees_all() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// The raw token a request carries, if any.
pub fn request_token(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(|t| t.trim().to_owned());
    }
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == SESSION_COOKIE).then(|| v.to_owned())
    })
}

impl<S> FromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = request_token(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("log in first: send Authorization: Bearer <token>")
        })?;
        if token.len() > 256 {
            return Err(ApiError::unauthorized("the token is not valid"));
        }
        let hash = crate::auth::token_hash(&token);
        match state.db.session_user(&hash).await? {
            Some(user) => Ok(AuthUser(user)),
            None => Err(ApiError::unauthorized(
                "the token is not valid or has expired",
            )),
        }
    }
}

/// The client's address: the socket's peer, or — when the peer is one of
/// the configured trusted proxies — the rightmost `X-Forwarded-For` entry
/// that is not itself a trusted proxy (what the client sent before reaching
/// our proxies is its own word and is not believed).
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

fn peer_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| crate::config::canonical_ip(c.0.ip()))
}

/// The client's IP address as [`ClientAddr`] describes it.
pub fn client_ip(
    parts: &Parts,
    access: &crate::config::AccessSettings,
) -> Option<std::net::IpAddr> {
    let peer = peer_ip(parts)?;
    if !access.trusts(peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                client = crate::config::canonical_ip(ip);
                if !access.trusts(client) {
                    break;
                }
            }
            // Garbage in the chain: the last hop we could read is the client.
            Err(_) => break,
        }
    }
    Some(client)
}

impl<S> FromRequestParts<S> for ClientAddr
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let addr = client_ip(parts, &state.config.access)
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(ClientAddr(addr))
    }
}

/// Whether the session cookie goes out `Secure`: `cookie_secure` is set, or
/// a trusted proxy says the client came over HTTPS (`X-Forwarded-Proto`).
#[derive(Debug, Clone, Copy)]
pub struct SecureCookie(pub bool);

impl<S> FromRequestParts<S> for SecureCookie
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let access = &state.config.access;
        if access.cookie_secure {
            return Ok(SecureCookie(true));
        }
        let proxied_https = peer_ip(parts).is_some_and(|p| access.trusts(p))
            && parts
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next_back())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        Ok(SecureCookie(proxied_https))
    }
}
