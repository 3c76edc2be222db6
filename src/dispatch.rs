//! What happens when the call tracker says something: screen pops to the
//! users whose phones ring, `call.answered` / `call.ended` to close them,
//! agent states, and the finished call: claimed in the call log, then its
//! lead, callback and place on the caller's timeline.
//!
//! Owns the hand-off from tracker output to the outputs (push, presence,
//! call log, timeline). Input is PBX-neutral (`Moment`, `CallSession`);
//! every call gets its own worker so its messages keep their order while
//! calls proceed independently. A worker sends each frame once (keyed as
//! Redis keys it across nodes), so a moment told again — the AMI client's
//! catch-up after its queue overflowed sends the live calls' state again —
//! shows nothing twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::calls::{CallRecord, CallSession, Direction, Disposition, Moment, Part, Transfer};
use crate::crm::directory::{Card, Reason, identify};
use crate::crm::index::{Lookup, NoMatch, Party};
use crate::http::AppState;
use crate::store::StoreError;
use crate::store::activities::NewActivity;
use crate::store::calls::{NewCall, NewSegment, WrapUp};

/// What one call's worker is told, in order.
enum Work {
    Moment(Moment),
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
    /// Users whose phones rang for this call, and those it was transferred to.
    pub users: Vec<i64>,
    /// The caller's number (E.164), once the caller is looked up.
    pub caller: Option<String>,
    /// The agent's wrap-up, when given before the call was logged.
    pub wrapup: Option<WrapUp>,
}

impl LiveCalls {
    pub fn get(&self, call_id: &str) -> Option<LiveCall> {
        self.lock().get(call_id).cloned()
    }

    /// Keeps a wrap-up for the call's log row; `false` when the call is not
    /// live (it is logged, or unknown). An absent code or note keeps the
    /// earlier one, as on the logged call.
    pub fn wrap_up(&self, call_id: &str, w: WrapUp) -> bool {
        match self.lock().get_mut(call_id) {
            Some(c) => {
                let old = c.wrapup.take();
                c.wrapup = Some(WrapUp {
                    code: w.code.or_else(|| old.as_ref().and_then(|o| o.code.clone())),
                    note: w.note.or_else(|| old.and_then(|o| o.note)),
                    ..w
                });
                true
            }
            None => false,
        }
    }

    /// Whether a live call from `e164` rang (or is with) this user.
    pub fn rang_from(&self, user: i64, e164: &str) -> bool {
        self.lock()
            .values()
            .any(|c| c.caller.as_deref() == Some(e164) && c.users.contains(&user))
    }

    fn remove(&self, call_id: &str) -> Option<LiveCall> {
        self.lock().remove(call_id)
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

/// The sending side: adapters (the AMI client, the CTI API) feed it. Each
/// input goes straight to its call's worker, in the caller's task: no task
/// in between for a ring to wait on.
#[derive(Clone)]
pub struct Dispatch {
    inner: Arc<Workers>,
}

struct Workers {
    state: AppState,
    calls: Mutex<HashMap<String, mpsc::UnboundedSender<Work>>>,
}

impl Dispatch {
    /// Starts dispatching to per-call workers.
    pub fn start(state: AppState) -> Dispatch {
        Dispatch {
            inner: Arc::new(Workers {
                state,
                calls: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn to_call(&self, call_id: String, work: Work) {
        let last = matches!(
            work,
            Work::Finished(_) | Work::Moment(Moment::Merged { .. })
        );
        let mut calls = self.inner.calls.lock().unwrap_or_else(|p| p.into_inner());
        let worker = calls.entry(call_id.clone()).or_insert_with(|| {
            let (wtx, wrx) = mpsc::unbounded_channel();
            tokio::spawn(run_call(self.inner.state.clone(), call_id.clone(), wrx));
            wtx
        });
        let _ = worker.send(work);
        if last {
            calls.remove(&call_id);
        }
    }

    pub fn moment(&self, m: Moment) {
        match m {
            Moment::Finished(s) => self.to_call(s.call_id.clone(), Work::Finished(s)),
            m => self.to_call(moment_call(&m).to_owned(), Work::Moment(m)),
        }
    }

    pub fn finished(&self, s: CallSession) {
        self.to_call(s.call_id.clone(), Work::Finished(Box::new(s)));
    }

    /// Forwards everything an AMI connection yields, moments first so a
    /// call's pop never trails its own end. Nothing here waits: each input
    /// goes to its call's worker at once.
    pub fn follow_ami(&self, mut feed: crate::telephony::ami::client::CallFeed) {
        let mut agents = feed.agents;
        let presence = self.inner.state.presence.clone();
        tokio::spawn(async move {
            while let Some(s) = agents.recv().await {
                presence.pbx(s).await;
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    Some(m) = feed.moments.recv() => me.moment(m),
                    Some(s) = feed.finished.recv() => me.finished(s),
                    Some(m) = feed.merged.recv() => me.moment(m),
                    else => break,
                }
            }
        });
    }
}

fn moment_call(m: &Moment) -> &str {
    match m {
        Moment::Arrived { call_id, .. }
        | Moment::Ringing { call_id, .. }
        | Moment::Answered { call_id, .. }
        | Moment::Transferred { call_id, .. }
        | Moment::Parties { call_id, .. }
        | Moment::Merged { call_id, .. } => call_id,
        Moment::Finished(s) => &s.call_id,
    }
}

/// The caller's side of a call's pops, serialized once and looked up again
/// only when the caller index says something else about the number (a lead
/// made for the caller while the call waits in a queue): the lookup's
/// fields without `number`.
struct CallerCard {
    /// The caller ID the card was looked up for.
    number: String,
    /// What the caller index said about it then.
    found: Lookup,
    e164: Option<String>,
    /// `"match":…,"contact":…,"lead":…,"company":…,"candidates":…,"reason":…`
    fields: String,
}

#[derive(Serialize)]
struct CardFields<'a> {
    #[serde(rename = "match")]
    matched: &'static str,
    contact: &'a Option<Card>,
    lead: &'a Option<Card>,
    company: &'a Option<Card>,
    candidates: &'a [Card],
    reason: &'a Option<Reason>,
}

/// What a `call.ringing` says besides the caller's cards.
#[derive(Serialize)]
struct RingingFields<'a> {
    call_id: &'a str,
    agent: &'a str,
    caller: RingingCaller<'a>,
    queue: &'a Option<String>,
    did: Option<&'a str>,
}

#[derive(Serialize)]
struct RingingCaller<'a> {
    number: &'a str,
    e164: Option<&'a str>,
    name: &'a Option<String>,
}

/// The inside of the JSON object `value` serializes to (`"a":1,"b":2`).
fn object_fields(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string(value).unwrap_or_default();
    if text.starts_with('{') && text.ends_with('}') {
        text.pop();
        text.remove(0);
        text
    } else {
        String::new()
    }
}

/// The caller's card(s) for a call, and the card the call goes on until an
/// agent picks one.
async fn caller_card(state: &AppState, call_id: &str, number: &str) -> Option<CallerCard> {
    // Read before the cards: a change after it makes the next ring look again.
    let indexed = state.callers.lookup(number);
    let found = match identify(&state.db, &state.callers, number).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "caller lookup failed");
            return None;
        }
    };
    {
        let mut calls = state.live_calls.lock();
        let entry = calls.entry(call_id.to_owned()).or_default();
        entry.caller.clone_from(&found.number.e164);
        if entry.party.is_none() {
            entry.party = found.party().or_else(|| {
                // Shared number: the most recently active card until the
                // agent picks one.
                found
                    .candidates
                    .iter()
                    .max_by_key(|c| c.activities.first().map(|a| a.at))
                    .map(Card::party)
            });
        }
    }
    Some(CallerCard {
        number: number.to_owned(),
        found: indexed,
        fields: object_fields(&CardFields {
            matched: found.matched,
            contact: &found.contact,
            lead: &found.lead,
            company: &found.company,
            candidates: &found.candidates,
            reason: &found.reason,
        }),
        e164: found.number.e164,
    })
}

/// A phone rings: the caller's card pops on the screens of the users on that
/// extension. Nothing here waits for the database but the card itself, read
/// once per call: who has the extension comes from memory, the message is
/// serialized once for all of them, and agent states change after every
/// screen has its pop.
#[allow(clippy::too_many_arguments)]
async fn ring(
    state: &AppState,
    call_id: &str,
    agent: &str,
    caller: &crate::calls::Party,
    queue: Option<String>,
    card: &mut Option<CallerCard>,
    rung: &mut BTreeMap<i64, String>,
    sent: &mut HashSet<String>,
) {
    let users = match state.extensions.users(&state.db, agent).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "cannot find who has extension {agent}");
            return;
        }
    };
    let once = |u: &i64| format!("{call_id}:ringing:{u}:{agent}");
    // Told again (a catch-up after an overflow): those who have it keep it.
    let users: Vec<i64> = users
        .into_iter()
        .filter(|u| !sent.contains(&once(u)))
        .collect();
    if users.is_empty() {
        return;
    }
    let number = caller.number.trim();
    // One look at the in-memory index per ring keeps a queue's later rings
    // current without reading the database again.
    if card
        .as_ref()
        .is_none_or(|c| c.number != number || state.callers.lookup(number) != c.found)
    {
        *card = caller_card(state, call_id, number).await;
    }
    let head = object_fields(&RingingFields {
        call_id,
        agent,
        caller: RingingCaller {
            number: &caller.number,
            e164: card.as_ref().and_then(|c| c.e164.as_deref()),
            name: &caller.name,
        },
        queue: &queue,
        did: None,
    });
    let cards = card
        .as_ref()
        .map_or("\"match\":\"none\"", |c| c.fields.as_str());
    let fields = format!("{head},{cards}");
    {
        let mut calls = state.live_calls.lock();
        let entry = calls.entry(call_id.to_owned()).or_default();
        for u in &users {
            if !entry.users.contains(u) {
                entry.users.push(*u);
            }
        }
    }
    for &u in &users {
        rung.insert(u, agent.to_owned());
        let once = once(&u);
        state
            .push
            .send_fields(u, "call.ringing", &fields, Some(&once))
            .await;
        sent.insert(once);
    }
}

/// What a `call.transferred` says besides the caller's cards.
#[derive(Serialize)]
struct TransferredFields<'a> {
    call_id: &'a str,
    from: &'a Option<String>,
    to: &'a str,
    kind: crate::calls::TransferKind,
    caller: RingingCaller<'a>,
}

/// The call moves to another agent: the target's users join the people the
/// call is about (they get its `call.answered` and `call.ended`), and
/// everyone gets `call.transferred` with the caller's card, so a target
/// whose phone never rang for this call (an attended transfer) has it too.
async fn transfer(
    state: &AppState,
    call_id: &str,
    t: &Transfer,
    caller: &crate::calls::Party,
    card: &Option<CallerCard>,
    rung: &mut BTreeMap<i64, String>,
    sent: &mut HashSet<String>,
) {
    let targets = state
        .extensions
        .users(&state.db, &t.to)
        .await
        .unwrap_or_default();
    for &u in &targets {
        rung.entry(u).or_insert_with(|| t.to.clone());
    }
    if !targets.is_empty() {
        let mut calls = state.live_calls.lock();
        let entry = calls.entry(call_id.to_owned()).or_default();
        for u in &targets {
            if !entry.users.contains(u) {
                entry.users.push(*u);
            }
        }
    }
    let head = object_fields(&TransferredFields {
        call_id,
        from: &t.from,
        to: &t.to,
        kind: t.kind,
        caller: RingingCaller {
            number: &caller.number,
            e164: card.as_ref().and_then(|c| c.e164.as_deref()),
            name: &caller.name,
        },
    });
    let cards = card
        .as_ref()
        .map_or("\"match\":\"none\"", |c| c.fields.as_str());
    for &u in rung.keys() {
        let by_you = targets.contains(&u);
        let fields = format!("{head},\"by_you\":{by_you},{cards}");
        let from = t.from.as_deref().unwrap_or("");
        let once = format!("{call_id}:transferred:{u}:{from}:{}", t.to);
        if !sent.insert(once.clone()) {
            continue;
        }
        state
            .push
            .send_fields(u, "call.transferred", &fields, Some(&once))
            .await;
    }
}

/// Who the tracker says is on the call, as users: presence follows it.
async fn parties(state: &AppState, call_id: &str, parties: &[(String, Part)]) {
    let mut users: Vec<(i64, Part)> = Vec::new();
    for (ext, part) in parties {
        let found = match state.extensions.users(&state.db, ext).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "cannot find who has extension {ext}");
                Vec::new()
            }
        };
        for u in found {
            match users.iter_mut().find(|(x, _)| *x == u) {
                Some((_, p)) if *part == Part::Talking => *p = Part::Talking,
                Some(_) => {}
                None => users.push((u, *part)),
            }
        }
    }
    state.presence.on_call(call_id, &users).await;
}

async fn run_call(state: AppState, call_id: String, mut rx: mpsc::UnboundedReceiver<Work>) {
    let mut card: Option<CallerCard> = None;
    let mut caller = crate::calls::Party::default();
    // user → the extension that rang them (or took the call over)
    let mut rung: BTreeMap<i64, String> = BTreeMap::new();
    // The `once` keys of the frames sent for this call.
    let mut sent: HashSet<String> = HashSet::new();
    while let Some(work) = rx.recv().await {
        match work {
            // Looked up as the call arrives, so the card is ready (or nearly)
            // by the time a phone rings: the PBX takes a few milliseconds to
            // ring a direct line, longer through a queue or a greeting.
            Work::Moment(Moment::Arrived { caller: c, .. }) => {
                if card.is_none() {
                    card = caller_card(&state, &call_id, c.number.trim()).await;
                }
                caller = c;
            }
            Work::Moment(Moment::Ringing {
                agent,
                caller: c,
                queue,
                ..
            }) => {
                ring(
                    &state, &call_id, &agent, &c, queue, &mut card, &mut rung, &mut sent,
                )
                .await;
                caller = c;
            }
            // Agent states change after the frames that explain them.
            Work::Moment(Moment::Parties { parties: p, .. }) => {
                parties(&state, &call_id, &p).await;
            }
            Work::Moment(Moment::Answered { agent, .. }) => {
                let Some(agent) = agent else { continue };
                let answerers = state
                    .extensions
                    .users(&state.db, &agent)
                    .await
                    .unwrap_or_default();
                for (u, _) in rung.iter() {
                    let by_you = answerers.contains(u);
                    let once = format!("{call_id}:answered:{u}:{agent}");
                    if !sent.insert(once.clone()) {
                        continue;
                    }
                    state
                        .push
                        .send(
                            *u,
                            "call.answered",
                            json!({"call_id": call_id, "agent": agent, "by_you": by_you}),
                            Some(&once),
                        )
                        .await;
                }
            }
            Work::Moment(Moment::Transferred { transfer: t, .. }) => {
                transfer(&state, &call_id, &t, &caller, &card, &mut rung, &mut sent).await;
            }
            Work::Moment(Moment::Merged {
                into, disposition, ..
            }) => {
                // A consultation folded into the call it transferred: its
                // pops close, it is logged as part of `into`.
                for u in rung.keys() {
                    let once = format!("{call_id}:ended:{u}");
                    state
                        .push
                        .send(
                            *u,
                            "call.ended",
                            json!({"call_id": call_id, "disposition": disposition, "merged_into": into}),
                            Some(&once),
                        )
                        .await;
                }
                state.presence.on_call(&call_id, &[]).await;
                state.live_calls.remove(&call_id);
                break;
            }
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
                }
                state.presence.on_call(&call_id, &[]).await;
                log_call(&state, &s).await;
                break;
            }
        }
    }
}

/// The finished call's outputs. The call is claimed first: its `calls` row
/// is written unless someone wrote it already (a replay, a reconnect,
/// another node), and only the claimant goes on. An unknown inbound caller
/// becomes a lead (one per number: a repeat caller reuses the open one)
/// assigned by the routing rules; a missed inbound call becomes one callback
/// task, due after `[callbacks]` working time; a call that reaches the
/// customer closes their open callbacks; and the call goes on the card's
/// timeline. The live call stays known until then, so a wrap-up or a pick of
/// the card made meanwhile lands on the logged call.
async fn log_call(state: &AppState, s: &CallSession) {
    let live = state.live_calls.get(&s.call_id).unwrap_or_default();
    let record = s.to_record(Some(state.phones.as_ref()));
    let direction = s.direction();
    let customer = match direction {
        Direction::Inbound => s.caller.number.trim().to_owned(),
        Direction::Outbound => record.callee.clone().unwrap_or_default(),
        Direction::Internal => String::new(),
    };
    let found = (direction != Direction::Internal).then(|| state.callers.lookup(&customer));
    let party = live.party.or(match &found {
        Some(Lookup::Exact(p)) => Some(*p),
        _ => None,
    });
    let (mut contact_id, mut lead_id) = card_of(party);
    let row = call_row(state, s, &record, contact_id, lead_id, live.wrapup.clone()).await;
    // Who the call reached first, then who it rang, in order.
    let mut users: Vec<i64> = row.agent_user_id.into_iter().collect();
    for (_, rung) in &row.rings {
        for u in rung {
            if !users.contains(u) {
                users.push(*u);
            }
        }
    }
    let lead_call = crate::routing::LeadCall {
        caller: &customer,
        did: record.did.as_deref(),
        users: &users,
    };
    match state.db.claim_call(&row).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(call_id = %s.call_id, "call logged already");
            state.live_calls.remove(&s.call_id);
            return;
        }
        Err(e) => {
            tracing::warn!(call_id = %s.call_id, error = %e, "cannot log the call");
            state.live_calls.remove(&s.call_id);
            return;
        }
    }
    if party.is_none()
        && direction == Direction::Inbound
        && let Some(Lookup::None {
            reason: NoMatch::Unknown(e164),
        }) = &found
        && let Some(lead) = new_lead(state, s, e164.as_str(), &lead_call).await
    {
        lead_id = Some(lead);
        contact_id = None;
        if let Err(e) = state.db.set_call_card(&s.call_id, None, lead_id).await {
            tracing::warn!(call_id = %s.call_id, error = %e, "cannot put the call on the lead");
        }
    }
    if contact_id.is_some() || lead_id.is_some() {
        call_outputs(state, s, &record, &lead_call, contact_id, lead_id).await;
    }
    // A wrap-up or a card picked while the call was being logged.
    if let Some(now) = state.live_calls.remove(&s.call_id) {
        if now.wrapup != live.wrapup
            && let Some(w) = &now.wrapup
            && let Err(e) = state.db.wrap_up_call(&s.call_id, w).await
        {
            tracing::warn!(call_id = %s.call_id, error = %e, "cannot store the wrap-up");
        }
        if now.party != live.party
            && let Some(Party::Contact(id)) = now.party
            && let Err(e) = state.db.relink_call(&s.call_id, id).await
        {
            tracing::warn!(call_id = %s.call_id, error = %e, "cannot move the call");
        }
    }
}

/// The columns of a card: a contact or a lead (a company's number puts no
/// card on the call).
fn card_of(party: Option<Party>) -> (Option<i64>, Option<i64>) {
    match party {
        Some(Party::Contact(id)) => (Some(id), None),
        Some(Party::Lead(id)) => (None, Some(id)),
        Some(Party::Company(_)) | None => (None, None),
    }
}

/// The `calls` row of a finished session, with the users behind its extensions.
async fn call_row(
    state: &AppState,
    s: &CallSession,
    record: &CallRecord,
    contact_id: Option<i64>,
    lead_id: Option<i64>,
    wrapup: Option<WrapUp>,
) -> NewCall {
    let mut users: HashMap<String, Vec<i64>> = HashMap::new();
    let exts = s
        .rang
        .iter()
        .chain(&s.agent)
        .chain(&s.originator)
        .chain(s.segments.iter().map(|g| &g.agent));
    for ext in exts {
        if !users.contains_key(ext) {
            let found = match state.extensions.users(&state.db, ext).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot find who has extension {ext}");
                    Vec::new()
                }
            };
            users.insert(ext.clone(), found);
        }
    }
    let first = |ext: &Option<String>| {
        ext.as_ref()
            .and_then(|e| users.get(e))
            .and_then(|u| u.first().copied())
    };
    let ms = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis();
    let end = s.ended_at.unwrap_or(s.started_at);
    NewCall {
        call_id: s.call_id.clone(),
        direction: record.direction.as_str().to_owned(),
        caller: record.caller.clone(),
        caller_name: record.caller_name.clone(),
        callee: record.callee.clone(),
        did: record.did.clone(),
        queue: record.queue.clone(),
        originator: s.originator.clone(),
        originator_user_id: first(&s.originator),
        agent: s.agent.clone(),
        agent_user_id: first(&s.agent),
        disposition: record.disposition.as_str().to_owned(),
        cause: s
            .cause
            .as_ref()
            .map(|c| (i64::from(c.code), c.text.clone())),
        recording: record.recording.clone(),
        transfers: serde_json::to_value(&record.transfers).unwrap_or(Value::Null),
        started_at: ms(s.started_at),
        answered_at: s.answered_at.map(ms),
        ended_at: s.ended_at.map(ms),
        ring_ms: (s.answered_at.unwrap_or(end) - s.started_at)
            .num_milliseconds()
            .max(0),
        talk_ms: s
            .answered_at
            .map_or(0, |a| (end - a).num_milliseconds().max(0)),
        hold_ms: s.hold.num_milliseconds().max(0),
        contact_id,
        lead_id,
        rings: s
            .rang
            .iter()
            .map(|ext| (ext.clone(), users.get(ext).cloned().unwrap_or_default()))
            .collect(),
        segments: s
            .segments
            .iter()
            .map(|g| NewSegment {
                extension: g.agent.clone(),
                user_id: first(&Some(g.agent.clone())),
                started_at: ms(g.started_at),
                ended_at: ms(g.ended_at.unwrap_or(end)),
            })
            .collect(),
        wrapup,
        times: s.times.as_str().to_owned(),
    }
}

/// What a claimed call on a card leads to: its callbacks closed or one
/// made, and its timeline entry.
async fn call_outputs(
    state: &AppState,
    s: &CallSession,
    record: &CallRecord,
    call: &crate::routing::LeadCall<'_>,
    contact_id: Option<i64>,
    lead_id: Option<i64>,
) {
    let author_id = match s.agent.as_deref().or(s.originator.as_deref()) {
        Some(ext) => state
            .extensions
            .users(&state.db, ext)
            .await
            .ok()
            .and_then(|u| u.first().copied()),
        None => None,
    };
    let disposition = s.disposition();
    let mut payload = serde_json::to_value(record).unwrap_or(Value::Null);
    let ended = s.ended_at.unwrap_or(s.started_at);
    if disposition == Disposition::Answered {
        // The customer was reached when the call was answered.
        let at = s.answered_at.unwrap_or(ended).timestamp_millis();
        match state.db.close_callbacks(contact_id, lead_id, at).await {
            Ok(closed) if !closed.is_empty() => {
                let waited: Vec<Value> = closed
                    .iter()
                    .map(|(id, missed)| json!({"task_id": id, "time_to_callback_s": (at - missed).max(0) / 1000}))
                    .collect();
                if let Some(obj) = payload.as_object_mut() {
                    obj.insert("callbacks_closed".into(), Value::Array(waited));
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot close callbacks"),
        }
    } else if s.direction() == Direction::Inbound {
        callback(state, s, call, contact_id, lead_id, ended).await;
    }
    let activity = NewActivity {
        kind: "call".into(),
        contact_id,
        lead_id,
        author_id,
        call_id: Some(s.call_id.clone()),
        body: format!(
            "{} call, {}",
            record.direction.as_str(),
            record.disposition.as_str()
        ),
        payload,
        occurred_at: Some(s.started_at.timestamp_millis()),
        ..Default::default()
    };
    if let Err(e) = state.db.add_activity(&activity).await {
        tracing::warn!(call_id = %s.call_id, error = %e, "cannot put the call on the timeline");
    }
}

/// Who calls back a customer who missed us: the owner of their contact (or
/// the manager of their lead), else the one user the call rang (a direct
/// line), else whoever a new lead from the call would go to (the routing
/// rules, then the managers in turn); users who are no longer active are
/// passed over. `None` (logged) only when nobody at all can take it.
async fn callback_assignee(
    state: &AppState,
    call: &crate::routing::LeadCall<'_>,
    contact_id: Option<i64>,
    lead_id: Option<i64>,
) -> Option<i64> {
    let active = |id: i64| async move { state.db.user_is_active(id).await.unwrap_or(false) };
    let owner = match (contact_id, lead_id) {
        (Some(id), _) => state.db.party_owner("contact", id).await,
        (None, Some(id)) => state.db.party_owner("lead", id).await,
        (None, None) => Ok(None),
    }
    .ok()
    .flatten();
    if let Some(o) = owner
        && active(o).await
    {
        return Some(o);
    }
    if let [only] = call.users
        && active(*only).await
    {
        return Some(*only);
    }
    state.routing.assign_lead(state, call).await
}

/// The callback of a missed inbound call: one open callback per customer
/// (contact or lead), made by their first missed call and due after
/// `[callbacks]` working time from it; each later miss adds to its count of
/// missed calls. The assignee is told with `task.created` the first time
/// and `task.updated` after.
async fn callback(
    state: &AppState,
    s: &CallSession,
    call: &crate::routing::LeadCall<'_>,
    contact_id: Option<i64>,
    lead_id: Option<i64>,
    ended: chrono::DateTime<chrono::Utc>,
) {
    let assignee = callback_assignee(state, call, contact_id, lead_id).await;
    if assignee.is_none() {
        tracing::warn!(call_id = %s.call_id, "missed call: nobody can take the callback (no owner, no active manager)");
    }
    let who = s
        .caller
        .name
        .clone()
        .filter(|n| !n.is_empty() && n != "<unknown>")
        .unwrap_or_else(|| call.caller.to_owned());
    // `[callbacks]`: so many minutes of working time after the call.
    let due = state.config.callbacks.due(ended).timestamp_millis();
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
        Ok(Some(missed)) => {
            let Ok(task) = state.db.task(missed.task_id).await else {
                return;
            };
            let (kind, once) = if missed.missed_calls <= 1 {
                ("task.created", format!("{}:task", s.call_id))
            } else {
                (
                    "task.updated",
                    format!("{}:task:{}", s.call_id, missed.missed_calls),
                )
            };
            if let Some(a) = task.assignee_id {
                state
                    .push
                    .send(a, kind, json!({"task": task}), Some(&once))
                    .await;
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot create the callback task"),
    }
}

/// A lead for an unknown caller, assigned by the routing rules (else the
/// managers in turn) and announced to its manager. A lead another writer made for the number meanwhile (the
/// caller index catches up with other nodes every few seconds) is reused.
async fn new_lead(
    state: &AppState,
    s: &CallSession,
    e164: &str,
    call: &crate::routing::LeadCall<'_>,
) -> Option<i64> {
    match state.db.open_lead_for(e164).await {
        Ok(Some(lead)) => {
            state.index_lead(&lead);
            return Some(lead.id);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot look for an open lead"),
    }
    let manager = state.routing.assign_lead(state, call).await;
    // Written for people, as a contact's number would be, not as the PBX sent it.
    let formatted = crate::crm::phones::E164::from_stored(e164)
        .map(|n| n.international())
        .unwrap_or_else(|_| s.caller.number.clone());
    // A caller who sent no name is named by their number until someone names them.
    let name = s
        .caller
        .name
        .clone()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty() && n != "<unknown>")
        .unwrap_or_else(|| formatted.clone());
    let lead = match state
        .db
        .create_lead(&crate::store::leads::LeadData {
            name,
            phone_raw: Some(formatted),
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
        Err(StoreError::Conflict(_)) => {
            // Another call from the number made its lead a moment ago.
            return match state.db.open_lead_for(e164).await {
                Ok(Some(lead)) => {
                    state.index_lead(&lead);
                    Some(lead.id)
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the caller's lead");
                    None
                }
            };
        }
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
