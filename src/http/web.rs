//! The agent console: HTML pages and static assets from `web/`, embedded in
//! the binary so `ringside serve` needs nothing beside it.
//!
//! Assets live under `/static/<version>/...`, where the version is a hash of
//! every embedded file: a page always names the assets it was built with, so
//! they are cached for a year and a new build changes every URL at once. An
//! old version in the URL is still answered (with the current file) but only
//! revalidated by ETag. Every response carries a strict Content-Security-Policy:
//! the pages have no inline script, style or event handlers.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;
use super::extract::request_token;

/// The policy sent with every page and asset.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'";

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!("../../web/static/", $path)) as &[u8])),*]
    };
}

/// Every file under `web/static/`, by its path below that folder.
const FILES: &[(&str, &[u8])] = embed![
    "css/app.css",
    "img/bell.svg",
    "img/logo.svg",
    "js/api.js",
    "js/app.js",
    "js/card.js",
    "js/dom.js",
    "js/i18n.js",
    "js/login.js",
    "js/socket.js",
    "js/sound.js",
    "js/views.js",
    "i18n/de.js",
    "i18n/en.js",
    "i18n/ru.js",
    "i18n/uk.js",
];

const LOGIN_HTML: &str = include_str!("../../web/login.html");
const APP_HTML: &str = include_str!("../../web/app.html");

struct Asset {
    body: &'static [u8],
    mime: &'static str,
    etag: String,
}

struct Bundle {
    version: String,
    assets: HashMap<&'static str, Asset>,
    login: String,
    app: String,
}

static BUNDLE: LazyLock<Bundle> = LazyLock::new(|| {
    let mut all = Sha256::new();
    let mut assets = HashMap::new();
    for (path, body) in FILES {
        all.update(path.as_bytes());
        all.update(body);
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(body))[..20]);
        assets.insert(
            *path,
            Asset {
                body,
                mime: mime_of(path),
                etag,
            },
        );
    }
    let version = hex::encode(all.finalize())[..12].to_owned();
    let base = format!("/static/{version}");
    Bundle {
        login: LOGIN_HTML.replace("{{static}}", &base),
        app: APP_HTML.replace("{{static}}", &base),
        version,
        assets,
    }
});

fn mime_of(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// The version segment of asset URLs in this build.
pub fn asset_version() -> &'static str {
    &BUNDLE.version
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/login", get(login_page))
        .route("/app", get(app_page))
        .route("/app/{*rest}", get(app_page))
        .route("/static/{version}/{*path}", get(asset))
        .layer(middleware::from_fn(security_headers))
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = request_token(headers).filter(|t| t.len() <= 256) else {
        return false;
    };
    let hash = crate::auth::token_hash(&token);
    matches!(state.db.session_user(&hash).await, Ok(Some(_)))
}

async fn root(State(state): State<AppState>, headers: HeaderMap) -> Redirect {
    if signed_in(&state, &headers).await {
        Redirect::to("/app")
    } else {
        Redirect::to("/login")
    }
}

fn page(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// The login form; a browser that is signed in already goes on to the
/// console (to `next` when that is a console address), so the page never
/// has to ask the API who is signed in and be told 401.
async fn login_page(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    if signed_in(&state, &headers).await {
        let next = query
            .ok()
            .and_then(|Query(mut q)| q.remove("next"))
            .filter(|n| console_path(n))
            .unwrap_or_else(|| "/app".to_owned());
        return Redirect::to(&next).into_response();
    }
    page(&BUNDLE.login)
}

/// A path inside the console, never an address elsewhere (as the login page checks it).
fn console_path(p: &str) -> bool {
    (p == "/app" || p.starts_with("/app/") || p.starts_with("/app?"))
        && !p.contains(['\\', '\r', '\n'])
        && p.bytes().all(|b| b.is_ascii_graphic())
}

/// The console; without a session, the login page with a way back here.
async fn app_page(State(state): State<AppState>, req: Request) -> Response {
    if !signed_in(&state, req.headers()).await {
        let back = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/app");
        let mut to = String::from("/login?next=");
        for b in back.bytes() {
            if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
                to.push(b as char);
            } else {
                to.push_str(&format!("%{b:02X}"));
            }
        }
        return Redirect::to(&to).into_response();
    }
    page(&BUNDLE.app)
}

async fn asset(Path((version, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let Some(a) = BUNDLE.assets.get(path.as_str()) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let cache = if version == BUNDLE.version {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.mime)], a.body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&a.etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_name_their_assets_and_carry_no_inline_code() {
        for html in [&BUNDLE.login, &BUNDLE.app] {
            assert!(!html.contains("{{static}}"));
            assert!(html.contains(&format!("/static/{}/", BUNDLE.version)));
            let lower = html.to_ascii_lowercase();
            // Every script is an external module; no handler attributes, no inline style.
            for (i, _) in lower.match_indices("<script") {
                let tag_end = lower[i..].find('>').map(|e| i + e).unwrap();
                assert!(lower[i..tag_end].contains(" src="), "inline script in page");
            }
            assert!(!lower.contains(" onclick=") && !lower.contains(" onload="));
            assert!(!lower.contains("<style") && !lower.contains(" style="));
        }
    }

    #[test]
    fn every_asset_a_page_names_is_embedded() {
        for html in [&BUNDLE.login, &BUNDLE.app] {
            let prefix = format!("/static/{}/", BUNDLE.version);
            for (i, _) in html.match_indices(&prefix) {
                let rest = &html[i + prefix.len()..];
                let end = rest.find('"').unwrap();
                assert!(
                    BUNDLE.assets.contains_key(&rest[..end]),
                    "{} is not embedded",
                    &rest[..end]
                );
            }
        }
    }

    #[test]
    fn modules_import_only_embedded_files() {
        for (path, body) in FILES.iter().filter(|(p, _)| p.ends_with(".js")) {
            let text = std::str::from_utf8(body).unwrap();
            let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.rsplit_once(" from ").map(|(_, s)| s).unwrap_or(line);
                let spec = spec
                    .trim_start_matches("import ")
                    .trim()
                    .trim_end_matches(';')
                    .trim_matches(['\'', '"']);
                let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(
                    BUNDLE.assets.contains_key(target.as_str()),
                    "{path} imports {spec}, which is not embedded"
                );
            }
        }
    }
}
