//! `GET /ws`: one browser tab's connection to its user's stream. Token from
//! `?token=` (browsers cannot set headers on a WebSocket) or the session
//! cookie; `?after=SEQ` replays what the tab missed, each message once.
//!
//! Buffers are kept small (an idle tab should cost a few KB, not the 128 KiB
//! tungstenite reserves by default): frames to a tab are small JSON objects,
//! and tabs send nothing but pongs.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::request_token;
use crate::store::users::User;

/// How often the server pings an idle tab.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A tab silent for this long (no pong) is closed.
const DEAD_AFTER: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
    after: Option<u64>,
}

pub async fn handler(
    State(state): State<AppState>,
    Query(q): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let token = q.token.or_else(|| request_token(&headers));
    let Some(token) = token.filter(|t| !t.is_empty() && t.len() <= 256) else {
        return ApiError::unauthorized("log in first: /ws?token=<token>").into_response();
    };
    let user = match state
        .db
        .session_user(&crate::auth::token_hash(&token))
        .await
    {
        Ok(Some(u)) => u,
        Ok(None) => {
            return ApiError::unauthorized("the token is not valid or has expired").into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    upgrade
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(16 * 1024)
        .max_frame_size(16 * 1024)
        .on_upgrade(move |socket| serve(state, user, q.after, socket))
}

async fn serve(state: AppState, user: User, after: Option<u64>, mut socket: WebSocket) {
    let hub = state.push.clone();
    // Boxed: these futures would otherwise live inline in every idle
    // connection's task for its whole life.
    let sub = Box::pin(hub.subscribe(user.id, after)).await;
    if hub.connected(user.id) == 1 {
        Box::pin(state.presence.tab_opened(&user)).await;
    }
    let hello = json!({
        "type": "hello",
        "last_seq": sub.last_seq,
        "user": {"id": user.id, "login": user.login, "name": user.name, "role": user.role,
                 "extension": user.extensions.first()},
        "state": state.presence.state_of(user.id).as_str(),
    });
    let mut ok = socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_ok();
    if ok && let Some(oldest) = sub.gap {
        let gap = json!({"type": "replay.gap", "after": after, "oldest": oldest});
        ok = socket
            .send(Message::Text(gap.to_string().into()))
            .await
            .is_ok();
    }
    let mut sent = match after {
        Some(a) if a > sub.last_seq => 0, // a reset stream: everything kept
        Some(a) => a,
        None => sub.last_seq,
    };
    for f in sub.missed {
        if !ok {
            break;
        }
        if f.seq > sent {
            ok = socket.send(Message::Text(f.text)).await.is_ok();
            sent = f.seq;
        }
    }
    let mut live = sub.live;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = tokio::time::Instant::now();
    while ok {
        tokio::select! {
            got = live.recv() => match got {
                Ok(f) if f.seq > sent => {
                    sent = f.seq;
                    ok = socket.send(Message::Text(f.text)).await.is_ok();
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    // Too slow to keep up: tell the tab to resume from `sent`.
                    tracing::warn!(user = user.id, lagged = n, "tab lagged behind its stream");
                    let _ = socket
                        .send(Message::Text(json!({"type": "replay.gap", "after": sent}).to_string().into()))
                        .await;
                    break;
                }
                Err(RecvError::Closed) => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => heard = tokio::time::Instant::now(),
            },
            _ = ping.tick() => {
                if heard.elapsed() > DEAD_AFTER {
                    break;
                }
                ok = socket.send(Message::Ping(Default::default())).await.is_ok();
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    if hub.disconnected(user.id) == 0 {
        Box::pin(state.presence.tab_closed(&user)).await;
    }
}
