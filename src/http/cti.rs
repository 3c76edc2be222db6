//! `POST /api/v1/cti/events`: call events from PBXs that are not Asterisk
//! (3CX, FreePBX webhooks, Yeastar, carriers), fed to the same call tracker
//! and dispatcher as the AMI link. Each integration has its own token
//! (`RINGSIDE_CTI_TOKENS=name=token,…`), sent as a bearer token.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{Json, request_token};
use super::{AppState, optional_text};
use crate::calls::{CallEvent, CallEventKind, HangupCause, Party};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_event))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CtiEvent {
    /// newCall | answer | hangup
    pub event: String,
    /// The PBX's id for the whole call.
    pub call_id: String,
    /// The caller's number (newCall).
    pub from: Option<String>,
    /// The dialled number (newCall).
    pub to: Option<String>,
    /// The caller's name, if the PBX knows it.
    pub name: Option<String>,
    /// inbound | outbound (newCall; default inbound).
    pub direction: Option<String>,
    /// The agent's extension: rung (newCall), answering (answer), calling (outbound newCall).
    pub extension: Option<String>,
    /// Q.850 cause code (hangup; default 16 normal clearing).
    pub cause: Option<u16>,
}

/// Feeds one call event; `newCall` may be sent again for each extension rung.
#[utoipa::path(post, path = "/api/v1/cti/events", tag = "calls", request_body = CtiEvent,
    security(("bearer" = [])),
    responses((status = 202, description = "accepted"), (status = 400, body = super::error::ErrorBody),
              (status = 401, body = super::error::ErrorBody)))]
async fn post_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(ev): Json<CtiEvent>,
) -> ApiResult<StatusCode> {
    let token = request_token(&headers).unwrap_or_default();
    let Some((integration, _)) = state
        .config
        .cti_tokens
        .iter()
        .find(|(_, t)| !token.is_empty() && crate::auth::constant_eq(t, &token))
    else {
        return Err(ApiError::unauthorized(
            "send the integration's token as a bearer token",
        ));
    };
    // Text from the integration is cleaned, not refused: a NUL or another
    // control character in a name must not lose the call.
    let raw_id = crate::text::clean(&ev.call_id);
    let call_id = optional_text("call_id", raw_id.trim(), 200)?;
    if call_id.is_empty() {
        return Err(ApiError::bad_request("call_id must not be empty"));
    }
    let call_id = format!("cti:{integration}:{call_id}");
    let text = |field: &str, v: &Option<String>| -> ApiResult<Option<String>> {
        match v {
            Some(s) => {
                let s = crate::text::clean(s);
                Ok(Some(optional_text(field, s.trim(), 200)?.to_owned()).filter(|s| !s.is_empty()))
            }
            None => Ok(None),
        }
    };
    let (from, to, name, ext) = (
        text("from", &ev.from)?,
        text("to", &ev.to)?,
        text("name", &ev.name)?,
        text("extension", &ev.extension)?,
    );
    let now = Utc::now();
    let mut kinds = Vec::new();
    let known = {
        let t = state.cti_tracker.lock().unwrap_or_else(|p| p.into_inner());
        t.get(&call_id).is_some()
    };
    match ev.event.as_str() {
        "newCall" => {
            let outbound = match ev.direction.as_deref().unwrap_or("inbound") {
                "inbound" => false,
                "outbound" => true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "direction: `{other}` is not inbound or outbound"
                    )));
                }
            };
            if !known {
                if outbound {
                    let Some(ext) = ext.clone() else {
                        return Err(ApiError::bad_request("an outbound newCall needs extension"));
                    };
                    kinds.push(CallEventKind::Started {
                        caller: Party {
                            number: ext.clone(),
                            name: None,
                        },
                        agent: Some(ext),
                        dialed: to.clone(),
                    });
                    if let Some(to) = to.clone() {
                        kinds.push(CallEventKind::DialedOut { number: to });
                    }
                } else {
                    let Some(from) = from else {
                        return Err(ApiError::bad_request("an inbound newCall needs from"));
                    };
                    kinds.push(CallEventKind::Started {
                        caller: Party { number: from, name },
                        agent: None,
                        dialed: to.clone(),
                    });
                    if let Some(to) = to {
                        kinds.push(CallEventKind::Did { did: to });
                    }
                }
            }
            if !outbound && let Some(ext) = ext {
                kinds.push(CallEventKind::Ringing { agent: ext });
            }
        }
        "answer" => {
            if !known {
                return Err(ApiError::not_found("call (send newCall first)"));
            }
            kinds.push(CallEventKind::Answered { agent: ext });
        }
        "hangup" => {
            if !known {
                return Err(ApiError::not_found("call (send newCall first)"));
            }
            let code = ev.cause.unwrap_or(HangupCause::NORMAL_CLEARING);
            kinds.push(CallEventKind::Ended {
                cause: HangupCause {
                    code,
                    text: String::new(),
                },
            });
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "event: `{other}` is not one of newCall, answer, hangup"
            )));
        }
    }
    let moments = {
        let mut t = state.cti_tracker.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for kind in kinds {
            t.feed_into(
                CallEvent {
                    call_id: call_id.clone(),
                    at: now,
                    kind,
                },
                &mut out,
            );
        }
        out
    };
    if let Some(d) = state.dispatch.get() {
        for m in moments {
            d.moment(m);
        }
    }
    Ok(StatusCode::ACCEPTED)
}
