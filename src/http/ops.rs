//! Health and Prometheus metrics for operators.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

#[derive(Default, Debug)]
pub struct Metrics {
    /// Responses by status class: 1xx..5xx.
    pub responses: [AtomicU64; 5],
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_blocked: AtomicU64,
}

impl Metrics {
    pub fn count_status(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// `{"status": "ok|degraded", "database": "ok|<error>", "ami": {...}}`: 503
/// when the database is down; a PBX link that is down or works only in part
/// (`ami.status` `disconnected` / `degraded`, with `ami.reason`) makes the
/// whole `degraded` but keeps 200, since the node still serves its users.
/// An Asterisk whose AMI version is not supported is `degraded` (the reason
/// names the version) rather than `disconnected`: retrying will not help.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let db = sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&state.db.pool)
        .await;
    let mut body = serde_json::json!({"status": "ok", "database": "ok"});
    let mut code = StatusCode::OK;
    if let Err(e) = db {
        body["status"] = "degraded".into();
        body["database"] = e.to_string().into();
        code = StatusCode::SERVICE_UNAVAILABLE;
    }
    if let Some(pbx) = &state.pbx {
        let s = pbx.status();
        let (status, reason) = match (&s.degraded, s.connected) {
            _ if s.unsupported.is_some() => ("degraded", s.unsupported.clone().unwrap_or_default()),
            (_, false) => (
                "disconnected",
                s.last_error.clone().unwrap_or_else(|| "connecting".into()),
            ),
            (Some(why), true) => ("degraded", why.clone()),
            (None, true) => ("ok", String::new()),
        };
        if status != "ok" {
            body["status"] = "degraded".into();
        }
        let mut ami = serde_json::json!({"status": status, "logins": s.logins});
        if !reason.is_empty() {
            ami["reason"] = reason.into();
        }
        if let Some(v) = &s.version {
            ami["version"] = v.as_str().into();
        }
        body["ami"] = ami;
    }
    (code, axum::Json(body))
}

async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(want) = &state.config.access.metrics_token {
        let given = super::extract::request_token(&headers).unwrap_or_default();
        if !crate::auth::constant_eq(&given, want) {
            return super::error::ApiError::unauthorized(
                "send Authorization: Bearer <RINGSIDE_METRICS_TOKEN>",
            )
            .into_response();
        }
    }
    let m = &state.metrics;
    let mut out = String::new();
    out.push_str("# HELP ringside_http_responses_total HTTP responses by status class.\n");
    out.push_str("# TYPE ringside_http_responses_total counter\n");
    for (i, c) in m.responses.iter().enumerate() {
        let _ = writeln!(
            out,
            "ringside_http_responses_total{{class=\"{}xx\"}} {}",
            i + 1,
            c.load(Ordering::Relaxed)
        );
    }
    out.push_str("# HELP ringside_logins_total Login attempts by outcome.\n");
    out.push_str("# TYPE ringside_logins_total counter\n");
    for (outcome, c) in [
        ("ok", &m.logins_ok),
        ("failed", &m.logins_failed),
        ("blocked", &m.logins_blocked),
    ] {
        let _ = writeln!(
            out,
            "ringside_logins_total{{outcome=\"{outcome}\"}} {}",
            c.load(Ordering::Relaxed)
        );
    }
    out.push_str("# HELP ringside_caller_index_numbers Distinct numbers in the caller index.\n");
    out.push_str("# TYPE ringside_caller_index_numbers gauge\n");
    let _ = writeln!(out, "ringside_caller_index_numbers {}", state.callers.len());
    out.push_str(
        "# HELP ringside_caller_index_rebuilds_total Full re-reads of the caller index.\n",
    );
    out.push_str("# TYPE ringside_caller_index_rebuilds_total counter\n");
    let _ = writeln!(
        out,
        "ringside_caller_index_rebuilds_total {}",
        state.callers.rebuilds()
    );
    if let Some(pbx) = &state.pbx {
        let s = pbx.status();
        out.push_str("# HELP ringside_ami_connected Whether the AMI link is logged in.\n");
        out.push_str("# TYPE ringside_ami_connected gauge\n");
        let _ = writeln!(out, "ringside_ami_connected {}", u8::from(s.connected));
        out.push_str(
            "# HELP ringside_ami_degraded Whether the AMI link works only in part (see /healthz).\n",
        );
        out.push_str("# TYPE ringside_ami_degraded gauge\n");
        let _ = writeln!(
            out,
            "ringside_ami_degraded {}",
            u8::from(s.degraded.is_some() || s.unsupported.is_some())
        );
        if let Some(v) = &s.version {
            out.push_str(
                "# HELP ringside_ami_version_supported The AMI version Asterisk announced, and whether Ringside follows it (AMI 2.0 or newer).\n",
            );
            out.push_str("# TYPE ringside_ami_version_supported gauge\n");
            let v: String = v
                .chars()
                .filter(|c| !matches!(c, '"' | '\\' | '\n'))
                .collect();
            let _ = writeln!(
                out,
                "ringside_ami_version_supported{{version=\"{v}\"}} {}",
                u8::from(s.unsupported.is_none())
            );
        }
        out.push_str(
            "# HELP ringside_ami_events_dropped_total Call moments (rings, answers, who is on a call) the queue to the screen pops had no room for.\n",
        );
        out.push_str("# TYPE ringside_ami_events_dropped_total counter\n");
        let _ = writeln!(out, "ringside_ami_events_dropped_total {}", s.dropped);
        out.push_str(
            "# HELP ringside_ami_overflow_resyncs_total Resyncs run after that queue overflowed (they send the live calls again).\n",
        );
        out.push_str("# TYPE ringside_ami_overflow_resyncs_total counter\n");
        let _ = writeln!(
            out,
            "ringside_ami_overflow_resyncs_total {}",
            s.overflow_resyncs
        );
        out.push_str("# HELP ringside_ami_event_queue_capacity Size of the queue to the screen pops (ami_event_queue).\n");
        out.push_str("# TYPE ringside_ami_event_queue_capacity gauge\n");
        let _ = writeln!(
            out,
            "ringside_ami_event_queue_capacity {}",
            s.queue_capacity
        );
        out.push_str(
            "# HELP ringside_ami_event_queue_peak The most that queue has held since start.\n",
        );
        out.push_str("# TYPE ringside_ami_event_queue_peak gauge\n");
        let _ = writeln!(out, "ringside_ami_event_queue_peak {}", s.queue_peak);
        out.push_str("# HELP ringside_ami_logins_total AMI logins since start.\n");
        out.push_str("# TYPE ringside_ami_logins_total counter\n");
        let _ = writeln!(out, "ringside_ami_logins_total {}", s.logins);
        out.push_str(
            "# HELP ringside_ami_refused_total AMI actions refused for want of a privilege class.\n",
        );
        out.push_str("# TYPE ringside_ami_refused_total counter\n");
        let _ = writeln!(out, "ringside_ami_refused_total {}", s.refused);
    }
    let pool = &state.db.pool;
    out.push_str("# HELP ringside_db_connections Open database connections.\n");
    out.push_str("# TYPE ringside_db_connections gauge\n");
    let _ = writeln!(out, "ringside_db_connections {}", pool.size());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
