//! The HTTP API under `/api/v1`: one router per resource, one state, one
//! error shape, and the OpenAPI document generated from the same routes.

pub mod activities;
pub mod auth;
pub mod calls;
pub mod companies;
pub mod contacts;
pub mod cti;
pub mod deals;
pub mod error;
pub mod extract;
pub mod leads;
pub mod lookup;
pub mod ops;
pub mod routing;
pub mod serve;
pub mod tasks;
pub mod users;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::LoginLimiter;
use crate::config::Config;
use crate::crm::directory::Callers;
use crate::crm::index::Party;
use crate::crm::phones::PhoneNormalizer;
use crate::store::Db;
use error::ApiError;

/// Largest request body accepted by the JSON API.
pub const MAX_BODY: usize = 1024 * 1024;

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub phones: Arc<PhoneNormalizer>,
    pub limiter: Arc<LoginLimiter>,
    pub metrics: Arc<ops::Metrics>,
    /// Who owns each phone number (in memory, kept in step with `db`).
    pub callers: Arc<Callers>,
    /// Which users each phone extension rings (in memory, kept in step with `db`).
    pub extensions: Arc<crate::extensions::Extensions>,
    /// Messages to users' browser tabs.
    pub push: crate::push::Hub,
    /// Keep-alive pings of the open browser tabs.
    pub pings: Arc<crate::push::ws::PingClock>,
    /// Agent states.
    pub presence: crate::presence::Presence,
    /// Calls in progress (for linking and wrap-up while they ring or talk).
    pub live_calls: Arc<crate::dispatch::LiveCalls>,
    /// Where adapters hand call events (set once the dispatcher runs).
    pub dispatch: Arc<std::sync::OnceLock<crate::dispatch::Dispatch>>,
    /// The call tracker of PBXs that post events to the CTI API.
    pub cti_tracker: Arc<std::sync::Mutex<crate::calls::CallTracker>>,
    /// The PBX link, when one is configured.
    pub pbx: Option<crate::telephony::ami::client::AmiClient>,
    pub routing: Arc<crate::routing::Routing>,
}

impl AppState {
    /// Loads what the handlers keep in memory (the caller index).
    pub async fn load(db: Db, config: Config) -> anyhow::Result<Self> {
        let phones = PhoneNormalizer::new(&config.default_region)
            .map_err(|e| anyhow::anyhow!("default region: {e}"))?;
        let callers = Callers::load(&db, &config).await?;
        let extensions =
            crate::extensions::Extensions::load_with(&db, config.pbx.device.clone()).await?;
        let push = match config.redis_url.as_deref() {
            Some(url) => crate::push::Hub::with_redis(url, &config.redis_prefix).await?,
            None => crate::push::Hub::local(),
        };
        let extensions = Arc::new(extensions);
        let presence = crate::presence::Presence::new(db.clone(), push.clone())
            .with_wrap_up(config.calls.wrap_up)
            .with_devices(extensions.clone());
        let routing = Arc::new(crate::routing::Routing::new(&config)?);
        Ok(Self {
            push,
            presence,
            pings: Arc::default(),
            live_calls: Arc::default(),
            dispatch: Arc::default(),
            cti_tracker: Arc::default(),
            pbx: None,
            db,
            config: Arc::new(config),
            phones: Arc::new(phones),
            limiter: Arc::new(LoginLimiter::new(Duration::from_secs(15 * 60), 100, 300)),
            metrics: Arc::new(ops::Metrics::default()),
            callers: Arc::new(callers),
            extensions,
            routing,
        })
    }

    /// Tells the caller index a card's numbers after a write.
    pub fn index_numbers<'a>(&self, party: Party, numbers: impl IntoIterator<Item = &'a str>) {
        self.callers.set_numbers(party, numbers);
    }

    /// An open lead's number matches callers; a converted lead's does not.
    pub fn index_lead(&self, lead: &crate::store::leads::Lead) {
        let number = lead
            .phone_e164
            .as_deref()
            .filter(|_| lead.status != "converted");
        self.index_numbers(Party::Lead(lead.id), number);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ringside API",
        description = "Contact-center CRM: contacts, leads, deals, timeline, tasks. \
                       Every call except login takes `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(error::ErrorBody, error::ErrorDetail))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The API router and its OpenAPI document, built from the same route list.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(users::router())
        .merge(companies::router())
        .merge(contacts::router())
        .merge(leads::router())
        .merge(lookup::router())
        .merge(calls::router())
        .merge(cti::router())
        .merge(deals::router())
        .merge(activities::router())
        .merge(tasks::router())
        .merge(routing::router())
        .split_for_parts()
}

/// The whole application: API, OpenAPI document, health and metrics.
pub fn app(state: AppState) -> Router {
    let (api, doc) = api();
    let doc = Arc::new(doc);
    Router::new()
        .merge(api)
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route("/ws", axum::routing::get(crate::push::ws::handler))
        .merge(ops::router())
        .merge(web::router())
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            serve::body_deadline,
        ))
        .layer(middleware::from_fn(refuse_oversized))
        .layer(middleware::from_fn(guard_responses))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    state.metrics.count_status(resp.status().as_u16());
    resp
}

/// Every response: `X-Content-Type-Options: nosniff`; the API's (and the
/// metrics') `Cache-Control: no-store`, since they carry customers' data and
/// tokens; a 405 without a body gets the error shape like every other error.
async fn guard_responses(req: Request, next: Next) -> Response {
    use axum::http::{HeaderValue, StatusCode, header};
    let api = req.uri().path().starts_with("/api/") || req.uri().path() == "/metrics";
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && !resp.headers().contains_key(header::CONTENT_TYPE)
    {
        let allow = resp.headers().get(header::ALLOW).cloned();
        resp = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
        .into_response();
        if let Some(allow) = allow {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
    }
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Answers 413 from the declared length alone, without waiting for the body.
async fn refuse_oversized(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {} KiB", MAX_BODY / 1024),
        )
        .into_response();
    }
    next.run(req).await
}

/// Parses an RFC 3339 time from the API into unix milliseconds.
pub fn parse_time(field: &str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{field}: `{value}` is not a time like 2026-11-23T15:00:00Z"
            ))
        })
}

/// A list's `limit`: `default` when absent, else 1..=`max` (400 outside).
pub fn page_limit(value: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit: {n} is not between 1 and {max}"
        ))),
    }
}

/// A list's `offset`: 0 when absent, never negative (400).
pub fn page_offset(value: Option<i64>) -> Result<i64, ApiError> {
    match value {
        None => Ok(0),
        Some(n) if n >= 0 => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "offset: {n} must not be negative"
        ))),
    }
}

/// Trims `value` and checks it is between 1 and `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::bad_request(format!("{field} must not be empty")));
    }
    optional_text(field, v, max).map(|s| s.to_owned())
}

/// Checks the length limit and rejects control characters.
pub fn optional_text<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ApiError::bad_request(format!(
            "{field} contains control characters"
        )));
    }
    Ok(value)
}
