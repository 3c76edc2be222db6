//! Agent states (available, ringing, on call, wrap-up, paused, unreachable,
//! offline), derived from the calls the tracker says each agent is on right
//! now (never counted up and down, so they cannot drift), the wrap-up after
//! an agent's part of a call, the pause (the agent's own switch, or a pause
//! made on the PBX), the queues the PBX says the agent is a member of, the
//! phone's own state (reachable or not) and whether a tab is open; each
//! change goes out as `agent.state` to the agent and to the supervisors of
//! the agent's team.
//!
//! Owns the state of each agent on this node, and the queue membership and
//! phone state the PBX reports (`PbxSignal`, PBX-neutral), resolved to users
//! through the device map (`crate::extensions`). Routing asks it who is
//! available; it never asks anything downstream.

use std::collections::{BTreeMap, HashMap};
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
    /// Logged in, but no phone that can ring: the device is unreachable or
    /// unregistered, or the user has none.
    Unreachable,
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
            AgentState::Unreachable => "unreachable",
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
    shown: Option<(AgentState, String)>,
    /// Queue memberships as the PBX reports them, by (queue, interface).
    queues: BTreeMap<(String, String), Membership>,
    /// Devices of the agent the PBX says cannot ring, and why.
    phone_down: BTreeMap<String, PhoneProblem>,
    /// How many devices ring the agent (`crate::extensions`).
    devices: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Membership {
    paused: bool,
    reason: Option<String>,
}

/// Why a phone cannot ring, as the PBX says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhoneProblem {
    /// Registered, but not answering the PBX's qualify checks.
    Unreachable,
    /// Its registration is gone.
    Unregistered,
    /// The PBX says the device is unavailable.
    Unavailable,
}

/// A queue member as the PBX reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMember {
    pub queue: String,
    /// The interface the queue dials (`PJSIP/101`, `Local/101@from-queue/n`).
    pub interface: String,
    /// The device whose state the queue follows (`PJSIP/101`), when given.
    pub state_interface: Option<String>,
    pub paused: bool,
    pub reason: Option<String>,
}

/// What the PBX says about agents besides calls: PBX-neutral, fed by an
/// adapter (the AMI client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbxSignal {
    /// Every queue member there is (the answer to a status request on connect).
    Members(Vec<QueueMember>),
    /// A member added, changed or paused / unpaused.
    Member(QueueMember),
    /// A member removed from a queue.
    MemberGone { queue: String, interface: String },
    /// A device's own state: `None` when it can ring.
    Phone {
        device: String,
        problem: Option<PhoneProblem>,
    },
}

/// One queue an agent is in, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueView {
    pub queue: String,
    /// The member's interface, as the queue names it.
    pub interface: String,
    pub paused: bool,
    pub reason: Option<String>,
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
        } else if self.online && self.phone().is_some() {
            AgentState::Unreachable
        } else if self.online {
            AgentState::Available
        } else {
            AgentState::Offline
        }
    }
}

impl Entry {
    /// Why no phone of the agent can ring: none at all, or every one down.
    fn phone(&self) -> Option<&'static str> {
        if self.devices == 0 {
            return Some("none");
        }
        if self.phone_down.len() >= self.devices {
            return self.phone_down.values().next().map(|p| match p {
                PhoneProblem::Unreachable => "unreachable",
                PhoneProblem::Unregistered => "unregistered",
                PhoneProblem::Unavailable => "unavailable",
            });
        }
        None
    }

    /// A pause made on the PBX, or lifted there, becomes the agent's.
    fn follow_pbx_pause(&mut self, paused: bool, reason: Option<&str>) {
        if paused {
            self.paused = Some(reason.unwrap_or("").to_owned());
            self.wrap_up = None;
        } else if !self.queues.values().any(|m| m.paused) {
            self.paused = None;
        }
    }
}

#[derive(Default)]
struct Agents {
    by_user: HashMap<i64, Entry>,
    /// Who is on each call, the other way round.
    by_call: HashMap<String, Vec<i64>>,
    /// Whose each queue member is, by (queue, interface).
    members: HashMap<(String, String), Vec<i64>>,
    /// Members nobody was found for yet (their user may be added later).
    unowned: HashMap<(String, String), QueueMember>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Presence {
    db: Db,
    hub: Hub,
    agents: Arc<Mutex<Agents>>,
    wrap_up: Duration,
    wrap_ups: Arc<AtomicU64>,
    devices: Arc<crate::extensions::Extensions>,
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
    /// Why no phone of the agent can ring (`none`, `unreachable`,
    /// `unregistered`, `unavailable`); absent when one can.
    pub phone: Option<String>,
    /// The PBX queues the agent is a member of, and whether paused in each.
    pub queues: Vec<QueueView>,
}

impl Presence {
    pub fn new(db: Db, hub: Hub) -> Presence {
        Presence {
            db,
            hub,
            agents: Arc::default(),
            wrap_up: WRAP_UP,
            wrap_ups: Arc::default(),
            devices: Arc::default(),
        }
    }

    /// The same, finding users' devices in `devices`.
    pub fn with_devices(self, devices: Arc<crate::extensions::Extensions>) -> Presence {
        Presence { devices, ..self }
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

    /// Available for a new call: a tab open, not paused, not busy, a phone
    /// that can ring.
    pub fn is_available(&self, user: i64) -> bool {
        self.state_of(user) == AgentState::Available
    }

    /// Whether a phone of the agent can ring, as far as the PBX has said
    /// (an agent never heard of is taken to have one).
    pub fn phone_reachable(&self, user: i64) -> bool {
        self.lock()
            .by_user
            .get(&user)
            .is_none_or(|e| e.devices == 0 || e.phone_down.len() < e.devices)
    }

    /// The queue members of the agent, as (queue, interface).
    pub fn members_of(&self, user: i64) -> Vec<(String, String)> {
        self.lock()
            .by_user
            .get(&user)
            .map(|e| e.queues.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A call rings or talks at the agent: their state is the call's.
    pub fn busy(&self, user: i64) -> Option<AgentState> {
        self.lock()
            .by_user
            .get(&user)
            .filter(|e| !e.calls.is_empty())
            .map(Entry::state)
    }

    /// Calls ringing or talking at this agent now.
    pub fn active_calls(&self, user: i64) -> usize {
        self.lock().by_user.get(&user).map_or(0, |e| e.calls.len())
    }

    pub fn view(&self, user: i64) -> Option<AgentView> {
        self.lock().by_user.get(&user).map(|e| view(user, e))
    }

    /// The agent's view, `offline` when this node has not seen them.
    pub fn view_of(&self, u: &User) -> AgentView {
        if let Some(v) = self.view(u.id) {
            return v;
        }
        let mut e = Entry::default();
        fill(&mut e, u, self.devices.devices_of(u).len());
        view(u.id, &e)
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
                fill(&mut e, &u, self.devices.devices_of(&u).len());
            }
            let r = f(&mut agents, &mut e);
            let v = view(user, &e);
            let shown = (v.state, shown_key(&v));
            let changed = (e.shown.as_ref() != Some(&shown)).then(|| {
                e.shown = Some(shown);
                v
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
            "phone": v.phone, "queues": v.queues,
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
        let devices = self.devices.devices_of(user).len();
        self.change(user.id, move |_, e| {
            fill(e, &u, devices);
            e.online = true;
        })
        .await;
        // Members the PBX named before this user was known may be theirs.
        let unowned: Vec<QueueMember> = self.lock().unowned.values().cloned().collect();
        for m in unowned {
            self.member(m).await;
        }
    }

    pub async fn tab_closed(&self, user: i64) {
        self.change(user, |_, e| e.online = false).await;
    }

    /// What the PBX says about queue members and phones.
    pub async fn pbx(&self, signal: PbxSignal) {
        match signal {
            PbxSignal::Members(all) => {
                let listed: std::collections::HashSet<(String, String)> = all
                    .iter()
                    .map(|m| (m.queue.clone(), m.interface.clone()))
                    .collect();
                let gone: Vec<(String, String)> = {
                    let mut agents = self.lock();
                    agents.unowned.retain(|k, _| listed.contains(k));
                    agents
                        .members
                        .keys()
                        .filter(|k| !listed.contains(*k))
                        .cloned()
                        .collect()
                };
                for (queue, interface) in gone {
                    self.member_gone(queue, interface).await;
                }
                for m in all {
                    self.member(m).await;
                }
            }
            PbxSignal::Member(m) => self.member(m).await,
            PbxSignal::MemberGone { queue, interface } => self.member_gone(queue, interface).await,
            PbxSignal::Phone { device, problem } => {
                let users = self.devices.users_of_interface(&self.db, &device).await;
                for u in users {
                    let device = device.clone();
                    self.change(u, move |_, e| match problem {
                        Some(p) => {
                            // The more telling reason stays when Asterisk
                            // follows it with a plain "unavailable".
                            let keep = p == PhoneProblem::Unavailable
                                && e.phone_down.contains_key(&device);
                            if !keep {
                                e.phone_down.insert(device, p);
                            }
                        }
                        None => {
                            e.phone_down.remove(&device);
                        }
                    })
                    .await;
                }
            }
        }
    }

    async fn member(&self, m: QueueMember) {
        let mut users = Vec::new();
        if let Some(si) = m.state_interface.as_deref().filter(|s| !s.is_empty()) {
            users = self.devices.users_of_interface(&self.db, si).await;
        }
        if users.is_empty() {
            users = self
                .devices
                .users_of_interface(&self.db, &m.interface)
                .await;
        }
        let key = (m.queue.clone(), m.interface.clone());
        let before = {
            let mut agents = self.lock();
            if users.is_empty() {
                agents.unowned.insert(key.clone(), m.clone());
                agents.members.remove(&key)
            } else {
                agents.unowned.remove(&key);
                agents.members.insert(key.clone(), users.clone())
            }
        }
        .unwrap_or_default();
        for u in before.into_iter().filter(|u| !users.contains(u)) {
            let key = key.clone();
            self.change(u, move |_, e| {
                e.queues.remove(&key);
            })
            .await;
        }
        let reason = m.reason.filter(|r| !r.trim().is_empty());
        for u in users {
            let key = key.clone();
            let reason = reason.clone();
            self.change(u, move |_, e| {
                let new = Membership {
                    paused: m.paused,
                    reason: reason.clone(),
                };
                let old = e.queues.insert(key, new);
                let pause_changed = match &old {
                    Some(o) => o.paused != m.paused || (m.paused && o.reason != reason),
                    None => m.paused,
                };
                if pause_changed {
                    e.follow_pbx_pause(m.paused, reason.as_deref());
                }
            })
            .await;
        }
    }

    async fn member_gone(&self, queue: String, interface: String) {
        let key = (queue, interface);
        let users = {
            let mut agents = self.lock();
            agents.unowned.remove(&key);
            agents.members.remove(&key).unwrap_or_default()
        };
        for u in users {
            let key = key.clone();
            self.change(u, move |_, e| {
                e.queues.remove(&key);
            })
            .await;
        }
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

fn fill(e: &mut Entry, u: &User, devices: usize) {
    e.devices = devices;
    e.login = u.login.clone();
    e.name = u.name.clone();
    e.extension = u
        .extensions
        .first()
        .or_else(|| u.devices.first().map(|d| &d.device))
        .cloned();
}

/// What besides the state makes an `agent.state` worth sending again.
fn shown_key(v: &AgentView) -> String {
    let mut k = format!("{:?}|{:?}", v.reason, v.phone);
    for q in &v.queues {
        k.push_str(&format!(
            "|{}:{}:{}:{:?}",
            q.queue, q.interface, q.paused, q.reason
        ));
    }
    k
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
        phone: e.phone().map(str::to_owned),
        queues: e
            .queues
            .iter()
            .map(|((queue, interface), m)| QueueView {
                queue: queue.clone(),
                interface: interface.clone(),
                paused: m.paused,
                reason: m.reason.clone(),
            })
            .collect(),
    }
}
