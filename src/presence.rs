//! Agent states (available, ringing, on call, wrap-up, paused, offline),
//! derived from call moments, the agent's own pause switch and whether a tab
//! is open; each change goes out as `agent.state` to the agent and to the
//! supervisors of the agent's team.
//!
//! Owns the state of each agent on this node. Routing asks it who is
//! available; it never asks anything downstream.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::push::Hub;
use crate::store::Db;
use crate::store::users::User;

/// How long an agent stays in wrap-up after a call before routing counts
/// them available again.
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
    ringing: HashSet<String>,
    talking: HashSet<String>,
    wrap_up_calls: HashSet<String>,
    shown: Option<AgentState>,
}

impl Entry {
    fn state(&self) -> AgentState {
        if !self.talking.is_empty() {
            AgentState::OnCall
        } else if !self.ringing.is_empty() {
            AgentState::Ringing
        } else if !self.wrap_up_calls.is_empty() {
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

/// Cheap to clone.
#[derive(Clone)]
pub struct Presence {
    db: Db,
    hub: Hub,
    agents: Arc<Mutex<HashMap<i64, Entry>>>,
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
            agents: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        self.agents.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state_of(&self, user: i64) -> AgentState {
        self.lock()
            .get(&user)
            .map_or(AgentState::Offline, Entry::state)
    }

    /// Available for a new call: a tab open, not paused, not busy.
    pub fn is_available(&self, user: i64) -> bool {
        self.state_of(user) == AgentState::Available
    }

    /// Calls ringing or talking at this agent now.
    pub fn active_calls(&self, user: i64) -> usize {
        self.lock()
            .get(&user)
            .map_or(0, |e| e.ringing.len() + e.talking.len())
    }

    pub fn view(&self, user: i64) -> Option<AgentView> {
        self.lock().get(&user).map(|e| view(user, e))
    }

    /// Every agent this node knows about.
    pub fn all(&self) -> Vec<AgentView> {
        let mut v: Vec<AgentView> = self.lock().iter().map(|(id, e)| view(*id, e)).collect();
        v.sort_by_key(|a| a.user_id);
        v
    }

    async fn change(&self, user: i64, f: impl FnOnce(&mut Entry)) {
        let needs_name = !self.lock().contains_key(&user);
        let known = if needs_name {
            self.db.user(user).await.ok()
        } else {
            None
        };
        let changed = {
            let mut agents = self.lock();
            let e = agents.entry(user).or_default();
            if let Some(u) = known {
                fill(e, &u);
            }
            f(e);
            let now = e.state();
            (e.shown != Some(now)).then(|| {
                e.shown = Some(now);
                view(user, e)
            })
        };
        if let Some(v) = changed {
            self.announce(v).await;
        }
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
        self.change(user.id, move |e| {
            fill(e, &u);
            e.online = true;
        })
        .await;
    }

    pub async fn tab_closed(&self, user: i64) {
        self.change(user, |e| e.online = false).await;
    }

    /// The agent's own switch: `None` = available, `Some(reason)` = paused.
    pub async fn set_paused(&self, user: i64, reason: Option<String>) {
        self.change(user, move |e| e.paused = reason).await;
    }

    pub async fn ringing(&self, user: i64, call: &str) {
        let call = call.to_owned();
        self.change(user, move |e| {
            e.ringing.insert(call);
        })
        .await;
    }

    pub async fn ring_stopped(&self, user: i64, call: &str) {
        self.change(user, |e| {
            e.ringing.remove(call);
        })
        .await;
    }

    pub async fn answered(&self, user: i64, call: &str) {
        let call = call.to_owned();
        self.change(user, move |e| {
            e.ringing.remove(&call);
            e.talking.insert(call);
        })
        .await;
    }

    /// The call is over for `user`: wrap-up if they talked, then available.
    pub async fn call_over(&self, user: i64, call: &str) {
        let talked = {
            let agents = self.lock();
            agents.get(&user).is_some_and(|e| e.talking.contains(call))
        };
        let c = call.to_owned();
        self.change(user, move |e| {
            e.ringing.remove(&c);
            if e.talking.remove(&c) {
                e.wrap_up_calls.insert(c);
            }
        })
        .await;
        if talked {
            let me = self.clone();
            let call = call.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(WRAP_UP).await;
                me.change(user, |e| {
                    e.wrap_up_calls.remove(&call);
                })
                .await;
            });
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
