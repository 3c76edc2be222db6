//! `GET /ws`: one browser tab's connection to its user's stream. Token from
//! `?token=` (browsers cannot set headers on a WebSocket) or the session
//! cookie; `?after=SEQ` replays what the tab missed, each message once.
//!
//! Owns the tab's life: opening (hello, replay), the idle loop, keep-alive
//! pings, closing. An idle tab should cost a few KB, so: buffers are small
//! (frames to a tab are small JSON objects, and tabs send nothing but pongs);
//! opening and closing run in boxed futures that are gone once they are
//! done, so only the idle loop's state stays in the connection's task; and
//! one shared clock pings the tabs instead of a timer per tab.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::futures::Notified;

use super::{Frame, Hub};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::request_token;
use crate::presence::Presence;
use crate::store::users::User;

/// How often the server pings an idle tab.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// A tab silent for this long (no pong) is closed.
pub const DEAD_AFTER: Duration = Duration::from_secs(60);
/// Read buffer of a tab's socket: a pong with its largest payload fits.
const READ_BUFFER: usize = 128;
/// Groups the ping clock spreads the tabs over, one group per tick.
const PING_GROUPS: usize = 20;

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
    // One pointer in the upgrade's task instead of the state and the user:
    // what a task captures stays in it for the task's whole life.
    let opening = Box::new(Opening {
        state,
        user,
        after: q.after,
    });
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(16 * 1024)
        .max_frame_size(16 * 1024)
        .on_upgrade(move |socket| serve(opening, socket))
}

/// What opening a tab needs; dropped once the tab is open.
struct Opening {
    state: AppState,
    user: User,
    after: Option<u64>,
}

/// What an open tab keeps while it idles.
struct Tab {
    user: i64,
    live: broadcast::Receiver<Frame>,
    /// The newest `seq` the tab has been sent.
    sent: u64,
    hub: Hub,
    presence: Presence,
    pings: Arc<PingClock>,
    group: usize,
}

/// Not an `async fn`: those keep each argument twice for the future's whole
/// life (as passed and as the body's local), and the socket is 368 bytes.
#[allow(clippy::manual_async_fn)]
fn serve(opening: Box<Opening>, mut socket: WebSocket) -> impl Future<Output = ()> + Send {
    async move {
        let (mut tab, ok) = Box::pin(open(opening, &mut socket)).await;
        if ok {
            tab.idle(&mut socket).await;
        }
        let _ = socket.send(Message::Close(None)).await;
        Box::pin(tab.close()).await;
    }
}

/// Subscribes, says hello and sends what the tab missed; false when the
/// socket failed on the way.
async fn open(o: Box<Opening>, socket: &mut WebSocket) -> (Tab, bool) {
    let Opening { state, user, after } = *o;
    let hub = state.push.clone();
    let sub = hub.subscribe(user.id, after).await;
    if hub.connected(user.id) == 1 {
        state.presence.tab_opened(&user).await;
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
    let pings = state.pings.clone();
    let group = pings.join();
    let tab = Tab {
        user: user.id,
        live: sub.live,
        sent,
        hub,
        presence: state.presence.clone(),
        pings,
        group,
    };
    (tab, ok)
}

impl Tab {
    /// Forwards the user's stream to the socket until either side ends or
    /// the tab stops answering pings.
    async fn idle(&mut self, socket: &mut WebSocket) {
        let mut heard = tokio::time::Instant::now();
        loop {
            let ok = tokio::select! {
                got = self.live.recv() => match got {
                    Ok(f) if f.seq > self.sent => {
                        self.sent = f.seq;
                        // The account's sessions ended: say so, then close.
                        let ends = f.ends_session();
                        socket.send(Message::Text(f.text)).await.is_ok() && !ends
                    }
                    Ok(_) => true,
                    Err(RecvError::Lagged(n)) => {
                        // Too slow to keep up: tell the tab to resume from `sent`.
                        tracing::warn!(user = self.user, lagged = n, "tab lagged behind its stream");
                        let gap = json!({"type": "replay.gap", "after": self.sent});
                        let _ = socket.send(Message::Text(gap.to_string().into())).await;
                        false
                    }
                    Err(RecvError::Closed) => false,
                },
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => false,
                    Some(Ok(_)) => {
                        heard = tokio::time::Instant::now();
                        true
                    }
                },
                () = self.pings.tick(self.group) => {
                    heard.elapsed() <= DEAD_AFTER
                        && socket.send(Message::Ping(Default::default())).await.is_ok()
                }
            };
            if !ok {
                break;
            }
        }
    }

    async fn close(self) {
        if self.hub.disconnected(self.user) == 0 {
            self.presence.tab_closed(self.user).await;
        }
    }
}

/// One clock for every tab's keep-alive ping. Tabs join one of
/// `PING_GROUPS` groups in turn and each tick wakes one group, so every tab
/// is pinged once per `PING_EVERY`, the pings are spread over the interval,
/// and 20,000 tabs cost one timer instead of 20,000.
pub struct PingClock {
    every: Duration,
    groups: Vec<Notify>,
    joined: AtomicUsize,
    started: Once,
}

impl Default for PingClock {
    fn default() -> Self {
        PingClock::new(PING_EVERY)
    }
}

impl PingClock {
    /// A clock that pings each tab once per `every`.
    pub fn new(every: Duration) -> Self {
        PingClock {
            every,
            groups: (0..PING_GROUPS).map(|_| Notify::new()).collect(),
            joined: AtomicUsize::new(0),
            started: Once::new(),
        }
    }

    /// Puts a tab in a group (starting the clock with the first tab).
    fn join(self: &Arc<Self>) -> usize {
        self.started.call_once(|| {
            let clock = Arc::downgrade(self);
            let step = self.every / PING_GROUPS as u32;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(step);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                for group in (0..PING_GROUPS).cycle() {
                    tick.tick().await;
                    let Some(clock) = clock.upgrade() else { break };
                    clock.groups[group].notify_waiters();
                }
            });
        });
        self.joined.fetch_add(1, Ordering::Relaxed) % PING_GROUPS
    }

    /// Resolves at the group's next ping time.
    fn tick(&self, group: usize) -> Notified<'_> {
        self.groups[group % PING_GROUPS].notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a function returns, without calling it.
    fn future_size<F, A, B, R>(_: &F) -> usize
    where
        F: FnOnce(A, B) -> R,
    {
        std::mem::size_of::<R>()
    }

    #[test]
    fn an_idle_tab_keeps_little_in_its_task() {
        // The connection's task holds this future for the tab's whole life:
        // 808 bytes, of which the socket is 368; it was 1,912 with opening
        // and closing inline and the socket kept twice.
        let size = future_size(&serve);
        assert!(size <= 900, "serve's future is {size} bytes");
    }

    #[tokio::test]
    async fn the_ping_clock_reaches_every_group_once_per_interval() {
        let every = Duration::from_millis(400);
        let clock = Arc::new(PingClock::new(every));
        let groups: Vec<usize> = (0..PING_GROUPS).map(|_| clock.join()).collect();
        assert_eq!(groups, (0..PING_GROUPS).collect::<Vec<_>>());
        assert_eq!(clock.join(), 0, "the 21st tab shares the first group");
        let started = tokio::time::Instant::now();
        for g in groups {
            tokio::time::timeout(every, clock.tick(g))
                .await
                .unwrap_or_else(|_| panic!("group {g} not pinged within {every:?}"));
        }
        // One group per tick, in turn: all twenty within about one interval.
        let took = started.elapsed();
        assert!(took < every * 2, "took {took:?}");
    }
}
