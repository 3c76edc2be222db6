//! What happens when the call tracker says something: screen pops to the
//! users whose phones ring, `call.answered` / `call.ended` to close them,
//! agent states, and the finished call on the caller's timeline.
//!
//! Owns the hand-off from tracker output to the outputs (push, presence,
//! timeline). Input is PBX-neutral (`Moment`, `CallEvent`, `CallSession`);
//! every call gets its own worker so its messages keep their order while
//! calls proceed independently.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::calls::{CallEvent, CallEventKind, CallSession, Moment};
use crate::crm::directory::{Identified, identify};
use crate::crm::index::Party;
use crate::http::AppState;
use crate::store::activities::NewActivity;

/// What one call's worker is told, in order.
enum Work {
    Moment(Moment),
    RingEnded(String),
    Finished(Box<CallSession>),
}

/// Calls in progress, as the API sees them (for wrap-up and linking).
#[derive(Default)]
pub struct LiveCalls {
    calls: Mutex<HashMap<String, LiveCall>>,
}

#[derive(Debug, Clone, Default)]
pub struct LiveCall {
    /// The card the call goes on (an exact match, or the pick from candidates).
    pub party: Option<Party>,
    /// Users whose phones rang for this call.
    pub users: Vec<i64>,
}

impl LiveCalls {
    pub fn get(&self, call_id: &str) -> Option<LiveCall> {
        self.lock().get(call_id).cloned()
    }

    /// Puts the call on this card's timeline (an agent's pick among candidates).
    pub fn link(&self, call_id: &str, party: Party) -> bool {
        match self.lock().get_mut(call_id) {
            Some(c) => {
                c.party = Some(party);
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveCall>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side: adapters (the AMI client, the CTI API) feed it.
#[derive(Clone)]
pub struct Dispatch {
    tx: mpsc::UnboundedSender<Input>,
}

enum Input {
    Moment(Moment),
    Event(CallEvent),
    Finished(Box<CallSession>),
}

impl Dispatch {
    /// Starts the dispatcher task.
    pub fn start(state: AppState) -> Dispatch {
        let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
        tokio::spawn(async move {
            let mut workers: HashMap<String, mpsc::UnboundedSender<Work>> = HashMap::new();
            while let Some(input) = rx.recv().await {
                let (call_id, work) = match input {
                    Input::Moment(Moment::Finished(s)) => (s.call_id.clone(), Work::Finished(s)),
                    Input::Moment(m) => (moment_call(&m).to_owned(), Work::Moment(m)),
                    Input::Event(e) => match e.kind {
                        CallEventKind::RingEnded { agent, .. } => {
                            (e.call_id, Work::RingEnded(agent))
                        }
                        _ => continue,
                    },
                    Input::Finished(s) => (s.call_id.clone(), Work::Finished(s)),
                };
                let last = matches!(work, Work::Finished(_));
                let worker = workers.entry(call_id.clone()).or_insert_with(|| {
                    let (wtx, wrx) = mpsc::unbounded_channel();
                    tokio::spawn(run_call(state.clone(), call_id.clone(), wrx));
                    wtx
                });
                let _ = worker.send(work);
                if last {
                    workers.remove(&call_id);
                }
            }
        });
        Dispatch { tx }
    }

    pub fn moment(&self, m: Moment) {
        let _ = self.tx.send(Input::Moment(m));
    }

    pub fn event(&self, e: CallEvent) {
        let _ = self.tx.send(Input::Event(e));
    }

    pub fn finished(&self, s: CallSession) {
        let _ = self.tx.send(Input::Finished(Box::new(s)));
    }

    /// Forwards everything an AMI connection yields, moments first so a
    /// call's pop never trails its own end.
    pub fn follow_ami(&self, mut feed: crate::telephony::ami::client::CallFeed) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    Some(m) = feed.moments.recv() => me.moment(m),
                    Some(s) = feed.finished.recv() => me.finished(s),
                    Some(e) = feed.events.recv() => me.event(e),
                    else => break,
                }
            }
        });
    }
}

fn moment_call(m: &Moment) -> &str {
    match m {
        Moment::Ringing { call_id, .. }
        | Moment::Answered { call_id, .. }
        | Moment::Transferred { call_id, .. } => call_id,
        Moment::Finished(s) => &s.call_id,
    }
}

async fn run_call(state: AppState, call_id: String, mut rx: mpsc::UnboundedReceiver<Work>) {
    let mut pop: Option<Arc<Identified>> = None;
    // user → the extension that rang them
    let mut rung: BTreeMap<i64, String> = BTreeMap::new();
    while let Some(work) = rx.recv().await {
        match work {
            Work::Moment(Moment::Ringing {
                agent,
                caller,
                queue,
                ..
            }) => {
                let users = match state.db.users_for_extension(&agent).await {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot find who has extension {agent}");
                        continue;
                    }
                };
                if users.is_empty() {
                    continue;
                }
                if pop.is_none() {
                    match identify(&state.db, &state.callers, caller.number.trim()).await {
                        Ok(found) => {
                            let mut calls = state.live_calls.lock();
                            let entry = calls.entry(call_id.clone()).or_default();
                            if entry.party.is_none() {
                                entry.party = found.party().or_else(|| {
                                    // Shared number: the most recently active card
                                    // until the agent picks one.
                                    found
                                        .candidates
                                        .iter()
                                        .max_by_key(|c| c.activities.first().map(|a| a.at))
                                        .map(|c| Party::Contact(c.id))
                                });
                            }
                            pop = Some(Arc::new(found));
                        }
                        Err(e) => tracing::warn!(error = %e, "caller lookup failed"),
                    }
                }
                let mut payload = match pop.as_deref() {
                    Some(found) => serde_json::to_value(found).unwrap_or(Value::Null),
                    None => json!({"match": "none"}),
                };
                if let Some(obj) = payload.as_object_mut() {
                    obj.remove("number");
                    obj.insert("call_id".into(), json!(call_id));
                    obj.insert("agent".into(), json!(agent));
                    obj.insert(
                        "caller".into(),
                        json!({
                            "number": caller.number,
                            "e164": pop.as_ref().and_then(|p| p.number.e164.clone()),
                            "name": caller.name,
                        }),
                    );
                    obj.insert("queue".into(), json!(queue));
                    obj.insert("did".into(), Value::Null);
                }
                for u in users {
                    rung.insert(u, agent.clone());
                    {
                        let mut calls = state.live_calls.lock();
                        let entry = calls.entry(call_id.clone()).or_default();
                        if !entry.users.contains(&u) {
                            entry.users.push(u);
                        }
                    }
                    let once = format!("{call_id}:ringing:{u}:{agent}");
                    state
                        .push
                        .send(u, "call.ringing", payload.clone(), Some(&once))
                        .await;
                    state.presence.ringing(u, &call_id).await;
                }
            }
            Work::RingEnded(agent) => {
                let stopped: Vec<i64> = rung
                    .iter()
                    .filter(|(_, ext)| **ext == agent)
                    .map(|(u, _)| *u)
                    .collect();
                for u in stopped {
                    state.presence.ring_stopped(u, &call_id).await;
                }
            }
            Work::Moment(Moment::Answered { agent, .. }) => {
                let Some(agent) = agent else { continue };
                let answerers = state
                    .db
                    .users_for_extension(&agent)
                    .await
                    .unwrap_or_default();
                for u in &answerers {
                    state.presence.answered(*u, &call_id).await;
                }
                for (u, _) in rung.iter() {
                    let by_you = answerers.contains(u);
                    let once = format!("{call_id}:answered:{u}:{agent}");
                    state
                        .push
                        .send(
                            *u,
                            "call.answered",
                            json!({"call_id": call_id, "agent": agent, "by_you": by_you}),
                            Some(&once),
                        )
                        .await;
                    if !by_you {
                        state.presence.ring_stopped(*u, &call_id).await;
                    }
                }
            }
            Work::Moment(Moment::Transferred { .. }) => {}
            Work::Moment(Moment::Finished(s)) | Work::Finished(s) => {
                let disposition = s.disposition();
                for u in rung.keys() {
                    let once = format!("{call_id}:ended:{u}");
                    state
                        .push
                        .send(
                            *u,
                            "call.ended",
                            json!({"call_id": call_id, "disposition": disposition}),
                            Some(&once),
                        )
                        .await;
                    state.presence.call_over(*u, &call_id).await;
                }
                let live = state.live_calls.lock().remove(&call_id);
                log_call(&state, &s, live.and_then(|l| l.party)).await;
                break;
            }
        }
    }
}

/// The finished call's outputs: an unknown inbound caller becomes a lead
/// (one per number: a repeat caller reuses the open one) assigned by the
/// routing rules; a missed inbound call becomes one callback task; a call
/// that reaches the customer closes their open callbacks; and the call goes
/// on the card's timeline once per PBX call id.
async fn log_call(state: &AppState, s: &CallSession, party: Option<Party>) {
    match state.db.call_party(&s.call_id).await {
        Ok(Some(_)) => return, // already logged: a replay, a reconnect, another node
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(call_id = %s.call_id, error = %e, "cannot check the call log");
            return;
        }
    }
    let record = s.to_record(Some(state.phones.as_ref()));
    let direction = s.direction();
    let customer = match direction {
        crate::calls::Direction::Inbound => s.caller.number.trim().to_owned(),
        crate::calls::Direction::Outbound => record.callee.clone().unwrap_or_default(),
        crate::calls::Direction::Internal => return,
    };
    let found = state.callers.lookup(&customer);
    let mut party = party.or(match &found {
        crate::crm::index::Lookup::Exact(p) => Some(*p),
        _ => None,
    });
    if party.is_none()
        && direction == crate::calls::Direction::Inbound
        && let crate::crm::index::Lookup::None {
            reason: crate::crm::index::NoMatch::Unknown(e164),
        } = &found
    {
        party = new_lead(state, s, e164.as_str()).await.map(Party::Lead);
    }
    let Some(party) = party else { return };
    let (contact_id, lead_id) = match party {
        Party::Contact(id) => (Some(id), None),
        Party::Lead(id) => (None, Some(id)),
        Party::Company(_) => return,
    };
    let author_id = match s.agent.as_deref().or(s.originator.as_deref()) {
        Some(ext) => state
            .db
            .users_for_extension(ext)
            .await
            .ok()
            .and_then(|u| u.first().copied()),
        None => None,
    };
    let disposition = s.disposition();
    let mut payload = serde_json::to_value(&record).unwrap_or(Value::Null);
    let at = s.ended_at.unwrap_or(s.started_at).timestamp_millis();
    if disposition == crate::calls::Disposition::Answered {
        match state.db.close_callbacks(contact_id, lead_id, at).await {
            Ok(closed) if !closed.is_empty() => {
                let waited: Vec<Value> = closed
                    .iter()
                    .map(|(id, created)| json!({"task_id": id, "time_to_callback_s": (at - created) / 1000}))
                    .collect();
                if let Some(obj) = payload.as_object_mut() {
                    obj.insert("callbacks_closed".into(), Value::Array(waited));
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot close callbacks"),
        }
    } else if direction == crate::calls::Direction::Inbound {
        let owner = state
            .db
            .party_owner(
                if contact_id.is_some() {
                    "contact"
                } else {
                    "lead"
                },
                party.id(),
            )
            .await
            .ok()
            .flatten();
        let assignee = match owner {
            Some(o) => Some(o),
            None => state.routing.assign_lead(state, &customer).await,
        };
        let who = s
            .caller
            .name
            .clone()
            .filter(|n| !n.is_empty() && n != "<unknown>")
            .unwrap_or_else(|| customer.clone());
        // `[callbacks]`: so many minutes of working time after the call.
        let due = state
            .config
            .callbacks
            .due(s.ended_at.unwrap_or(s.started_at))
            .timestamp_millis();
        match state
            .db
            .create_callback_task(
                &s.call_id,
                &format!("Call back {who}"),
                due,
                assignee,
                contact_id,
                lead_id,
            )
            .await
        {
            Ok(Some(task_id)) => {
                if let (Some(a), Ok(task)) = (assignee, state.db.task(task_id).await) {
                    state
                        .push
                        .send(
                            a,
                            "task.created",
                            json!({"task": task}),
                            Some(&format!("{}:task", s.call_id)),
                        )
                        .await;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot create the callback task"),
        }
    }
    let body = format!(
        "{} call, {}",
        serde_json::to_value(record.direction)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        serde_json::to_value(record.disposition)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    let activity = NewActivity {
        kind: "call".into(),
        contact_id,
        lead_id,
        author_id,
        call_id: Some(s.call_id.clone()),
        body,
        payload,
        occurred_at: Some(s.started_at.timestamp_millis()),
        ..Default::default()
    };
    if let Err(e) = state.db.add_activity(&activity).await {
        tracing::debug!(call_id = %s.call_id, error = %e, "call already on the timeline");
    }
}

/// A lead for an unknown caller, assigned by the routing rules and announced
/// to its manager.
async fn new_lead(state: &AppState, s: &CallSession, e164: &str) -> Option<i64> {
    let manager = state.routing.assign_lead(state, e164).await;
    let name = s
        .caller
        .name
        .clone()
        .filter(|n| !n.is_empty() && n != "<unknown>")
        .unwrap_or_default();
    let lead = match state
        .db
        .create_lead(&crate::store::leads::LeadData {
            name,
            phone_raw: Some(s.caller.number.clone()),
            phone_e164: Some(e164.to_owned()),
            email: None,
            source: "call".into(),
            status: "new".into(),
            manager_id: manager,
            notes: String::new(),
        })
        .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create a lead for a new caller");
            return None;
        }
    };
    state.index_lead(&lead);
    if let Some(m) = manager
        && let Ok(Some(card)) = crate::crm::directory::card(&state.db, Party::Lead(lead.id)).await
    {
        state
            .push
            .send(
                m,
                "lead.assigned",
                json!({"lead": card, "call_id": s.call_id}),
                Some(&format!("{}:lead", s.call_id)),
            )
            .await;
    }
    Some(lead.id)
}
