//! Agent states (available, ringing, on call, wrap-up, paused, offline),
//! derived from the calls the tracker says each agent is on right now (never
//! counted up and down, so they cannot drift), the wrap-up after an agent's
//! part of a call, the agent's own pause switch and whether a tab is open; each change goes out as `agent.state` to the agent and to the
//! supervisors of the agent's team.
//!
//! Owns the state of each agent on this node. Routing asks it who is
//! available; it never asks anything downstream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::calls::Part;
use crate::push::Hub;
use crate::store::Db;
use crate::store::users::User;

/// How long an agent stays in wrap-up after their part of a call ends
/// before routing counts them available again, unless `[calls]
/// wrap_up_seconds` says otherwise.
pub const WRAP_UP: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Available,
    Ringing,
    OnCall,
    WrapUp,
    Paused,
    Offline,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Available => "available",
            AgentState::Ringing => "ringing",
            AgentState::OnCall => "on_call",
            AgentState::WrapUp => "wrap_up",
            AgentState::Paused => "paused",
            AgentState::Offline => "offline",
        }
    }
}

#[derive(Default)]
struct Entry {
    login: String,
    name: String,
    extension: Option<String>,
    online: bool,
    paused: Option<String>,
    /// The calls the agent is on now, as the call tracker last said.
    calls: HashMap<String, Part>,
    /// The wrap-up running, by the number its timer carries.
    wrap_up: Option<u64>,
    shown: Option<AgentState>,
}

impl Entry {
    fn state(&self) -> AgentState {
        if self.calls.values().any(|p| *p == Part::Talking) {
            AgentState::OnCall
        } else if !self.calls.is_empty() {
            AgentState::Ringing
        } else if self.wrap_up.is_some() {
            AgentState::WrapUp
        } else if self.paused.is_some() {
            AgentState::Paused
        } else if self.online {
            AgentState::Available
        } else {
            AgentState::Offline
        }
    }
}

#[derive(Default)]
struct Agents {
    by_user: HashMap<i64, Entry>,
    /// Who is on each call, the other way round.
    by_call: HashMap<String, Vec<i64>>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Presence {
    db: Db,
    hub: Hub,
    agents: Arc<Mutex<Agents>>,
    wrap_up: Duration,
    wrap_ups: Arc<AtomicU64>,
}

/// One agent's state as the API and `agent.state` show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentView {
    pub user_id: i64,
    pub login: String,
    pub name: String,
    pub extension: Option<String>,
    pub state: AgentState,
    pub reason: Option<String>,
}

impl Presence {
    pub fn new(db: Db, hub: Hub) -> Presence {
        Presence {
            db,
            hub,
            agents: Arc::default(),
            wrap_up: WRAP_UP,
            wrap_ups: Arc::default(),
        }
    }

    /// The same with wrap-ups lasting `wrap_up`.
    pub fn with_wrap_up(self, wrap_up: Duration) -> Presence {
        Presence { wrap_up, ..self }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Agents> {
        self.agents.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state_of(&self, user: i64) -> AgentState {
        self.lock()
            .by_user
            .get(&user)
            .map_or(AgentState::Offline, Entry::state)
    }

    /// Available for a new call: a tab open, not paused, not busy.
    pub fn is_available(&self, user: i64) -> bool {
        self.state_of(user) == AgentState::Available
    }

    /// Calls ringing or talking at this agent now.
    pub fn active_calls(&self, user: i64) -> usize {
        self.lock().by_user.get(&user).map_or(0, |e| e.calls.len())
    }

    pub fn view(&self, user: i64) -> Option<AgentView> {
        self.lock().by_user.get(&user).map(|e| view(user, e))
    }

    /// Every agent this node knows about.
    pub fn all(&self) -> Vec<AgentView> {
        let mut v: Vec<AgentView> = self
            .lock()
            .by_user
            .iter()
            .map(|(id, e)| view(*id, e))
            .collect();
        v.sort_by_key(|a| a.user_id);
        v
    }

    async fn change<R>(&self, user: i64, f: impl FnOnce(&mut Agents, &mut Entry) -> R) -> R {
        let needs_name = !self.lock().by_user.contains_key(&user);
        let known = if needs_name {
            self.db.user(user).await.ok()
        } else {
            None
        };
        let (r, changed) = {
            let mut agents = self.lock();
            let mut e = agents.by_user.remove(&user).unwrap_or_default();
            if let Some(u) = known {
                fill(&mut e, &u);
            }
            let r = f(&mut agents, &mut e);
            let now = e.state();
            let changed = (e.shown != Some(now)).then(|| {
                e.shown = Some(now);
                view(user, &e)
            });
            agents.by_user.insert(user, e);
            (r, changed)
        };
        if let Some(v) = changed {
            self.announce(v).await;
        }
        r
    }

    async fn announce(&self, v: AgentView) {
        let payload = json!({
            "user_id": v.user_id, "login": v.login, "name": v.name,
            "extension": v.extension, "state": v.state, "reason": v.reason,
        });
        let mut to = vec![v.user_id];
        match self.db.supervisors_of(v.user_id).await {
            Ok(s) => to.extend(s),
            Err(e) => tracing::warn!(error = %e, "cannot find supervisors"),
        }
        for u in to {
            self.hub.send(u, "agent.state", payload.clone(), None).await;
        }
    }

    pub async fn tab_opened(&self, user: &User) {
        let u = user.clone();
        self.change(user.id, move |_, e| {
            fill(e, &u);
            e.online = true;
        })
        .await;
    }

    pub async fn tab_closed(&self, user: i64) {
        self.change(user, |_, e| e.online = false).await;
    }

    /// The agent's own switch: `None` = available, `Some(reason)` = paused.
    /// It ends a wrap-up (the agent says they are done with the last call).
    /// Refused while a call rings or talks at the agent: the state the
    /// agent is in is returned, and nothing changes.
    pub async fn choose(&self, user: i64, reason: Option<String>) -> Result<(), AgentState> {
        self.change(user, move |_, e| {
            if !e.calls.is_empty() {
                return Err(e.state());
            }
            e.paused = reason;
            e.wrap_up = None;
            Ok(())
        })
        .await
    }

    /// Who is on `call` now (the call tracker's word for it, users behind
    /// the extensions): everyone else leaves it. An agent who talked on it
    /// and leaves (handed the call on, or it ended) goes to wrap-up; an
    /// empty list ends the call for everyone.
    pub async fn on_call(&self, call: &str, parties: &[(i64, Part)]) {
        let before = self.lock().by_call.get(call).cloned().unwrap_or_default();
        let mut users: Vec<i64> = parties.iter().map(|(u, _)| *u).collect();
        for u in before {
            if !users.contains(&u) {
                users.push(u);
            }
        }
        for u in users {
            let part = parties.iter().find(|(p, _)| *p == u).map(|(_, part)| *part);
            let wrap = self.change(u, |agents, e| {
                let users = agents.by_call.entry(call.to_owned()).or_default();
                match part {
                    Some(p) => {
                        if !users.contains(&u) {
                            users.push(u);
                        }
                        e.calls.insert(call.to_owned(), p);
                        None
                    }
                    None => {
                        users.retain(|x| *x != u);
                        if users.is_empty() {
                            agents.by_call.remove(call);
                        }
                        (e.calls.remove(call) == Some(Part::Talking)).then(|| {
                            let n = self.wrap_ups.fetch_add(1, Ordering::Relaxed) + 1;
                            e.wrap_up = Some(n);
                            n
                        })
                    }
                }
            });
            if let Some(n) = wrap.await {
                let me = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(me.wrap_up).await;
                    // Only this wrap-up: a later one runs its own time.
                    me.change(u, |_, e| {
                        if e.wrap_up == Some(n) {
                            e.wrap_up = None;
                        }
                    })
                    .await;
                });
            }
        }
    }
}

fn fill(e: &mut Entry, u: &User) {
    e.login = u.login.clone();
    e.name = u.name.clone();
    e.extension = u.extensions.first().cloned();
}

fn view(user: i64, e: &Entry) -> AgentView {
    let state = e.state();
    AgentView {
        user_id: user,
        login: e.login.clone(),
        name: e.name.clone(),
        extension: e.extension.clone(),
        state,
        reason: if state == AgentState::Paused {
            e.paused.clone()
        } else {
            None
        },
    }
}
