//! AMI events → PBX-neutral `CallEvent`s.
//!
//! Owns the Asterisk knowledge: which channel belongs to which call
//! (`Linkedid`, which Asterisk moves to the oldest call when bridges merge),
//! which channel is an agent's phone, and what queue, dial, transfer, hold and
//! MixMonitor events mean. An attended transfer made with the transfer
//! feature (`atxfer`, `*2`) calls the target over a Local channel inside the
//! same call (same `Linkedid`): that consultation is not the target answering
//! the caller (the target is `Consulting` on the call until their phone
//! leaves it, `ConsultationEnded`); the target takes the caller over at
//! `AttendedTransfer`. The
//! caller's own music on hold (`MusicOnHoldStart`/`Stop` on the outside
//! party's channel) marks the hold, since Asterisk sends no `Unhold` when a
//! transfer ends it. A call whose first channel is a Local channel was
//! originated (click-to-dial by any tool: Originate into `Local/…` that rings
//! the phone, then dials out): its start is held back until the first phone
//! rings, which is the agent who placed it, and in it only real phones (not
//! the Local channels routing to them) are agents. Asterisk 13 reports an
//! attended transfer between two bridges as `DestType: Bridge` (or `Link`)
//! without `TransferTarget*` headers: the target is the other phone of the
//! second transferer's call. It keeps only per-channel bookkeeping; the meaning
//! of a whole call (disposition, durations) belongs to `calls::CallTracker`.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::codec::Message;
use crate::calls::{CallEvent, CallEventKind, HangupCause, Party, RingOutcome, TransferKind};

/// Site rules the mapper cannot guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapperConfig {
    /// A channel is an agent's phone when its endpoint name is all digits and
    /// at most this long (`PJSIP/101-…`, `Local/101@…`); `PJSIP/trunk-…` is not.
    pub max_extension_digits: usize,
    /// Channel variable the dialplan sets to the dialled DID (`Set(CRM_DID=…)`).
    pub did_variable: String,
    /// Channel variable MixMonitor sets to the recording path.
    pub recording_variable: String,
}

impl Default for MapperConfig {
    fn default() -> Self {
        MapperConfig {
            max_extension_digits: 6,
            did_variable: "CRM_DID".into(),
            recording_variable: "MIXMONITOR_FILENAME".into(),
        }
    }
}

impl MapperConfig {
    /// Site rules from the app settings: `phones.internal_max_digits` says
    /// how long an extension can be.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let mut cfg = MapperConfig::default();
        if let Some(n) = config.phones.internal_max_digits {
            cfg.max_extension_digits = n;
        }
        cfg
    }
}

/// Channel technology and endpoint: `PJSIP/101-0000001a` → (`PJSIP`, `101`),
/// `Local/101@from-queue-00000003;1` → (`Local`, `101`), `SIP/trunk-0a1` →
/// (`SIP`, `trunk`). Also accepts interfaces without a suffix (`PJSIP/101`).
pub fn endpoint(channel: &str) -> Option<(&str, &str)> {
    let (tech, rest) = channel.split_once('/')?;
    if tech.eq_ignore_ascii_case("Local") {
        let name = rest.split(['@', ';', '/']).next().unwrap_or(rest);
        return Some((tech, name));
    }
    let rest = rest.split(['@', ';']).next().unwrap_or(rest);
    let name = match rest.rsplit_once('-') {
        Some((name, suffix))
            if suffix.len() >= 4 && suffix.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            name
        }
        _ => rest,
    };
    Some((tech, name))
}

#[derive(Debug, Clone)]
struct Chan {
    linkedid: String,
    external: bool,
    /// The agent extension of a channel that is a phone (not a Local channel).
    device: Option<String>,
}

/// The start of an originated call, held back until the agent who placed it
/// is known, with the call's events seen meanwhile.
#[derive(Debug, Clone)]
struct HeldStart {
    started: CallEvent,
    events: Vec<CallEvent>,
    agent: Option<String>,
}

#[derive(Debug, Clone)]
struct CallCtx {
    live: u32,
    first: String,
    cause: Option<HangupCause>,
    merged_into: Option<String>,
    /// An agent (or outside party) has answered: later music on hold is a
    /// hold, not the caller waiting in a queue.
    answered: bool,
    /// The first channel is a Local channel: an originated call.
    via_local: bool,
}

/// Stateful translator; one per AMI connection (it survives reconnects).
#[derive(Debug, Default)]
pub struct Mapper {
    cfg: MapperConfig,
    chans: HashMap<String, Chan>,
    calls: HashMap<String, CallCtx>,
    /// Calls whose every channel moved to another call: (old id, new id).
    merged: Vec<(String, String)>,
    /// Local channel pairs (`Local/102@ctx-0000001`, without `;1`/`;2`) that
    /// Asterisk itself dialled in an answered call: attended-transfer
    /// consultations.
    consultations: std::collections::HashSet<String>,
    /// Local channel pairs a channel dialled (a queue's Local members, a
    /// dialplan `Dial(Local/…)`).
    dialled_locals: std::collections::HashSet<String>,
    /// Channels (`Uniqueid`) of agents who picked up a consultation and have
    /// not taken the caller over, with the agent's extension.
    consulting: HashMap<String, String>,
    /// The users' devices: a channel whose endpoint is one is an agent's
    /// phone whatever its name; the digits rule is only the fallback.
    devices: Option<std::sync::Arc<crate::extensions::Extensions>>,
    /// Originated calls whose start waits for the placing agent.
    held: HashMap<String, HeldStart>,
}

/// Header name for a channel field under a prefix (`Dest` + `Uniqueid`),
/// without allocating for the common ones.
fn key(prefix: &str, name: &'static str) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow;
    match (prefix, name) {
        ("", n) => Cow::Borrowed(n),
        ("Dest", "Uniqueid") => Cow::Borrowed("DestUniqueid"),
        ("Dest", "Linkedid") => Cow::Borrowed("DestLinkedid"),
        (p, n) => Cow::Owned(format!("{p}{n}")),
    }
}

fn unknown(v: &str) -> bool {
    v.is_empty() || v == "<unknown>"
}

fn is_local(channel: &str) -> bool {
    channel
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("Local/"))
}

fn clean_name(v: &str) -> Option<String> {
    // AMI escapes single quotes in names (`\'`); the rest arrives raw.
    (!unknown(v)).then(|| v.replace("\\'", "'"))
}

fn cause_of(m: &Message) -> HangupCause {
    HangupCause {
        code: m.get("Cause").and_then(|c| c.parse().ok()).unwrap_or(0),
        text: m.get("Cause-txt").unwrap_or_default().to_owned(),
    }
}

impl Mapper {
    pub fn new(cfg: MapperConfig) -> Self {
        Mapper {
            cfg,
            chans: HashMap::new(),
            calls: HashMap::new(),
            merged: Vec::new(),
            consultations: std::collections::HashSet::new(),
            dialled_locals: std::collections::HashSet::new(),
            consulting: HashMap::new(),
            devices: None,
            held: HashMap::new(),
        }
    }

    /// The same, recognising the users' devices (`crate::extensions`).
    pub fn with_devices(
        mut self,
        devices: Option<std::sync::Arc<crate::extensions::Extensions>>,
    ) -> Self {
        self.devices = devices;
        self
    }

    fn mark_answered(&mut self, call: &str) {
        if let Some(ctx) = self.calls.get_mut(call) {
            ctx.answered = true;
        }
    }

    /// Whether this Dial event belongs to an attended-transfer consultation:
    /// in an answered call, the second half of a Local channel that no
    /// channel dialled (Asterisk's transfer feature made it) dials the
    /// target's phone; Asterisk's own Dial events towards the first half
    /// (without a `Channel`) belong to it too. A Local channel a caller or a
    /// queue dialled (`DialBegin` from a channel) is a real answer path.
    fn consultation_dial(&mut self, m: &Message, call: &str) -> bool {
        match m.get("Channel") {
            Some(chan) => {
                let Some(pair) = chan
                    .strip_suffix(";2")
                    .filter(|_| local_pair(chan).is_some())
                else {
                    return false;
                };
                if self.consultations.contains(pair) {
                    return true;
                }
                let answered = self.calls.get(call).is_some_and(|c| c.answered);
                if answered && !self.dialled_locals.contains(pair) {
                    self.consultations.insert(pair.to_owned());
                    return true;
                }
                false
            }
            None => m
                .get("DestChannel")
                .and_then(local_pair)
                .is_some_and(|p| self.consultations.contains(p)),
        }
    }

    /// The agent extension of a channel name, if it is an agent's phone.
    pub fn agent_of(&self, channel: &str) -> Option<String> {
        if let Some(key) = self.devices.as_ref().and_then(|d| d.phone_of(channel)) {
            return Some(key);
        }
        let (_, name) = endpoint(channel)?;
        let max = self.cfg.max_extension_digits;
        (!name.is_empty() && name.len() <= max && name.bytes().all(|b| b.is_ascii_digit()))
            .then(|| name.to_owned())
    }

    /// Number of calls with live channels.
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Translates one AMI message received at `at`, appending to `out`.
    pub fn map(&mut self, m: &Message, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        let from = out.len();
        self.map_event(m, at, out);
        self.flush_merged(at, out);
        if !self.held.is_empty() {
            self.hold_back(from, out);
        }
    }

    /// Keeps the events of originated calls whose agent is not known yet;
    /// releases a call's start (with its agent) and its kept events once the
    /// agent's phone rang or the call ended.
    fn hold_back(&mut self, from: usize, out: &mut Vec<CallEvent>) {
        let fresh: Vec<CallEvent> = out.drain(from..).collect();
        for e in fresh {
            match self.held.get_mut(&e.call_id) {
                Some(h) => h.events.push(e),
                None => out.push(e),
            }
        }
        let ready: Vec<String> = self
            .held
            .iter()
            .filter(|(call, h)| h.agent.is_some() || !self.calls.contains_key(*call))
            .map(|(call, _)| call.clone())
            .collect();
        for call in ready {
            let Some(mut h) = self.held.remove(&call) else {
                continue;
            };
            if let CallEventKind::Started { agent, caller, .. } = &mut h.started.kind {
                *agent = h.agent.take();
                // The placing phone is the caller others see ringing.
                if caller.number.is_empty()
                    && let Some(a) = agent
                {
                    caller.number = a.clone();
                }
            }
            out.push(h.started);
            out.append(&mut h.events);
        }
    }

    /// The agent of a channel in `call`: in an originated call only phones
    /// count, not the Local channels that route to them.
    fn agent_in(&self, call: &str, channel: &str) -> Option<String> {
        if is_local(channel) && self.calls.get(call).is_some_and(|c| c.via_local) {
            return None;
        }
        self.agent_of(channel)
    }

    fn flush_merged(&mut self, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        for (old, into) in self.merged.drain(..) {
            out.push(ev(old, at, CallEventKind::Merged { into }));
        }
    }

    fn map_event(&mut self, m: &Message, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        let Some(event) = m.event() else {
            return;
        };
        match event {
            "Newchannel" => self.on_channel(m, at, out),
            "Hangup" => self.on_hangup(m, at, out),
            "DialBegin" | "DialEnd" => self.on_dial(m, event == "DialEnd", at, out),
            "VarSet" => self.on_varset(m, at, out),
            // Only `Newchannel` (and resync) create channels: a late event
            // for a channel already hung up must not resurrect it.
            "BridgeEnter" | "Newstate" => {
                let _ = self.call_of(m, "");
            }
            "QueueCallerJoin" => {
                if let (Some(call), Some(q)) = (self.call_of(m, ""), m.get("Queue")) {
                    out.push(ev(call, at, CallEventKind::Queued { queue: q.into() }));
                }
            }
            "AgentCalled" | "AgentConnect" | "AgentRingNoAnswer" => {
                self.on_agent(m, event, at, out)
            }
            "QueueCallerAbandon" => {
                if let Some(call) = self.call_of(m, "") {
                    let queue = m.get("Queue").map(str::to_owned);
                    out.push(ev(call, at, CallEventKind::Abandoned { queue }));
                }
            }
            "BlindTransfer" => self.on_blind(m, at, out),
            "Pickup" => {
                // Another phone picked up a ringing call (directed or group pickup).
                let agent = m.get("Channel").and_then(|c| self.agent_of(c));
                if let (Some(call), Some(agent)) = (self.call_of(m, "Target"), agent) {
                    self.mark_answered(&call);
                    out.push(ev(call, at, CallEventKind::Answered { agent: Some(agent) }));
                }
            }
            "AttendedTransfer" => self.on_attended(m, at, out),
            "OriginateResponse" => {
                // Ties a click-to-call request (its ActionID) to the call.
                let ok = m
                    .response()
                    .is_some_and(|r| r.eq_ignore_ascii_case("Success"));
                if !ok {
                    // Queued, then not placed: the phone was unreachable,
                    // busy or not answered.
                    let reason = m.get("Reason").unwrap_or_default();
                    tracing::warn!(
                        channel = m.get("Channel").unwrap_or_default(),
                        context = m.get("Context").unwrap_or_default(),
                        exten = m.get("Exten").unwrap_or_default(),
                        reason,
                        meaning = originate_reason(reason),
                        "the PBX could not place an originated call"
                    );
                }
                let call = m
                    .get("Uniqueid")
                    .and_then(|u| self.chans.get(u))
                    .map(|c| c.linkedid.clone());
                if let (true, Some(call), Some(id)) = (ok, call, m.action_id()) {
                    let kind = CallEventKind::Originated {
                        request_id: id.to_owned(),
                    };
                    out.push(ev(call, at, kind));
                }
            }
            "MusicOnHoldStart" | "MusicOnHoldStop" => self.on_moh(m, event, at, out),
            "Hold" | "Unhold" => {
                if let Some(call) = self.call_of(m, "") {
                    let by = m.get("Channel").and_then(|c| self.agent_of(c));
                    let kind = if event == "Hold" {
                        CallEventKind::Held { by }
                    } else {
                        CallEventKind::Unheld { by }
                    };
                    out.push(ev(call, at, kind));
                }
            }
            _ => {}
        }
    }

    /// Call id for the channel described by headers with `prefix`
    /// (`""`, `Dest`, `Transferer`…), noticing `Linkedid` moves on the way.
    fn call_of(&mut self, m: &Message, prefix: &str) -> Option<String> {
        let lid = m.get(&key(prefix, "Linkedid"))?;
        if let Some(uid) = m.get(&key(prefix, "Uniqueid")) {
            self.relink(uid, lid);
        }
        Some(lid.to_owned())
    }

    /// Asterisk gives every channel in a bridge the oldest `Linkedid` when
    /// bridges merge (transfers): follow the channel to its new call.
    fn relink(&mut self, uid: &str, lid: &str) {
        // Only into a call still alive: late events of a merged call may
        // still name its old id.
        if !self.calls.contains_key(lid) {
            return;
        }
        let Some(chan) = self.chans.get_mut(uid) else {
            return;
        };
        if chan.linkedid == lid {
            return;
        }
        let old = std::mem::replace(&mut chan.linkedid, lid.to_owned());
        if let Some(ctx) = self.calls.get_mut(lid) {
            ctx.live += 1;
        }
        if let Some(ctx) = self.calls.get_mut(&old) {
            ctx.live = ctx.live.saturating_sub(1);
            ctx.merged_into = Some(lid.to_owned());
            if ctx.live == 0 {
                self.calls.remove(&old);
                // A call that lent a channel to `old` earlier and now takes
                // all of `old` in is no longer merged into it.
                if let Some(ctx) = self.calls.get_mut(lid)
                    && ctx.merged_into.as_deref() == Some(old.as_str())
                {
                    ctx.merged_into = None;
                }
                self.merged.push((old, lid.to_owned()));
            }
        }
    }

    /// Registers the channel in `m` if new; starts its call if the call is new.
    fn on_channel(&mut self, m: &Message, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        let field = |k: &str| m.get(k);
        let (Some(uid), Some(lid), Some(name)) =
            (field("Uniqueid"), field("Linkedid"), field("Channel"))
        else {
            return;
        };
        if self.chans.contains_key(uid) {
            self.relink(uid, lid);
            return;
        }
        let ext = self.agent_of(name);
        let local = is_local(name);
        let external = ext.is_none() && !local;
        self.chans.insert(
            uid.to_owned(),
            Chan {
                linkedid: lid.to_owned(),
                external,
                device: ext.clone().filter(|_| !local),
            },
        );
        if let Some(ctx) = self.calls.get_mut(lid) {
            ctx.live += 1;
            return;
        }
        self.calls.insert(
            lid.to_owned(),
            CallCtx {
                live: 1,
                first: uid.to_owned(),
                cause: None,
                merged_into: None,
                answered: false,
                via_local: local,
            },
        );
        let caller = Party {
            number: field("CallerIDNum")
                .filter(|n| !unknown(n))
                .unwrap_or_default()
                .to_owned(),
            name: field("CallerIDName").and_then(clean_name),
        };
        if local {
            // Originated into a Local channel: its extension is the route
            // to the phone, not a number anyone dialled.
            let started = CallEventKind::Started {
                caller,
                agent: None,
                dialed: None,
            };
            let h = HeldStart {
                started: ev(lid.to_owned(), at, started),
                events: Vec::new(),
                agent: None,
            };
            self.held.insert(lid.to_owned(), h);
            return;
        }
        let dialed = field("Exten")
            .filter(|e| !e.is_empty() && *e != "s")
            .map(str::to_owned);
        out.push(ev(
            lid.to_owned(),
            at,
            CallEventKind::Started {
                caller,
                agent: ext.clone(),
                dialed: dialed.clone(),
            },
        ));
        if ext.is_none()
            && let Some(did) = dialed
        {
            out.push(ev(lid.to_owned(), at, CallEventKind::Did { did }));
        }
    }

    fn on_hangup(&mut self, m: &Message, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        let Some(uid) = m.get("Uniqueid") else {
            return;
        };
        if let Some(lid) = m.get("Linkedid") {
            self.relink(uid, lid);
        }
        if let Some(pair) = m.get("Channel").and_then(local_pair) {
            self.consultations.remove(pair);
            self.dialled_locals.remove(pair);
        }
        let Some(chan) = self.chans.remove(uid) else {
            return;
        };
        if let Some(agent) = self.consulting.remove(uid)
            && !self.consulting.values().any(|a| *a == agent)
        {
            // The consultation ended without the hand-over.
            let kind = CallEventKind::ConsultationEnded { agent };
            out.push(ev(chan.linkedid.clone(), at, kind));
        }
        self.leave(&chan.linkedid, uid, cause_of(m), at, out);
    }

    /// A channel of call `lid` is gone; ends the call with its last channel.
    fn leave(
        &mut self,
        lid: &str,
        uid: &str,
        cause: HangupCause,
        at: DateTime<Utc>,
        out: &mut Vec<CallEvent>,
    ) {
        let Some(ctx) = self.calls.get_mut(lid) else {
            return;
        };
        ctx.live = ctx.live.saturating_sub(1);
        if ctx.first == uid {
            ctx.cause = Some(cause.clone());
        }
        if ctx.live > 0 {
            return;
        }
        let Some(ctx) = self.calls.remove(lid) else {
            return;
        };
        let kind = match ctx.merged_into {
            Some(into) => CallEventKind::Merged { into },
            None => CallEventKind::Ended {
                cause: ctx.cause.unwrap_or(cause),
            },
        };
        out.push(ev(lid.to_owned(), at, kind));
    }

    fn on_dial(&mut self, m: &Message, end: bool, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        let call = match self.call_of(m, "") {
            Some(c) => c,
            None => match self.call_of(m, "Dest") {
                Some(c) => c,
                None => return,
            },
        };
        let Some(dest_uid) = m.get("DestUniqueid") else {
            return;
        };
        if !end
            && m.get("Channel").is_some()
            && let Some(pair) = m.get("DestChannel").and_then(local_pair)
        {
            self.dialled_locals.insert(pair.to_owned());
        }
        // The originated agent leg (click-to-call) is not the call being dialled.
        if self.calls.get(&call).is_some_and(|c| c.first == dest_uid) {
            return;
        }
        let dest = m.get("DestChannel").unwrap_or_default();
        let agent = self.agent_in(&call, dest);
        if !end
            && let (Some(a), Some(h)) = (&agent, self.held.get_mut(&call))
            && h.agent.is_none()
        {
            // The first phone an originated call rings is its agent's.
            h.agent = Some(a.clone());
        }
        let external = match &agent {
            Some(_) => false,
            None => {
                self.chans.get(dest_uid).is_none_or(|c| c.external) && !dest.starts_with("Local/")
            }
        };
        if agent.is_none() && !external {
            return;
        }
        // The target picking up the consultation is not an answer to the
        // caller: the `AttendedTransfer` hands the caller over. They are on
        // the call, aside from the caller, until then.
        if end && m.get("DialStatus") == Some("ANSWER") && self.consultation_dial(m, &call) {
            if let Some(agent) = agent {
                self.consulting.insert(dest_uid.to_owned(), agent.clone());
                out.push(ev(call, at, CallEventKind::Consulting { agent }));
            }
            return;
        }
        if !end {
            self.consultation_dial(m, &call);
        }
        let number = || {
            m.get("DestCallerIDNum")
                .filter(|n| !unknown(n))
                .or_else(|| m.get("DialString").and_then(|d| d.split('@').next()))
                .unwrap_or_default()
                .to_owned()
        };
        if !end {
            let kind = match agent {
                Some(agent) => CallEventKind::Ringing { agent },
                None => CallEventKind::DialedOut { number: number() },
            };
            out.push(ev(call, at, kind));
            return;
        }
        let outcome = match m.get("DialStatus").unwrap_or_default() {
            "ANSWER" => {
                self.mark_answered(&call);
                out.push(ev(call, at, CallEventKind::Answered { agent }));
                return;
            }
            "CANCEL" => RingOutcome::Cancelled,
            "BUSY" => RingOutcome::Busy,
            "NOANSWER" => RingOutcome::NoAnswer,
            "CHANUNAVAIL" | "CONGESTION" | "INVALIDARGS" | "DONTCALL" | "TORTURE" => {
                RingOutcome::Failed
            }
            _ => return,
        };
        let agent = agent.unwrap_or_else(number);
        out.push(ev(call, at, CallEventKind::RingEnded { agent, outcome }));
    }

    fn on_varset(&mut self, m: &Message, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        let Some(var) = m.get("Variable") else {
            return;
        };
        let kind = if var == self.cfg.recording_variable {
            match m.get("Value").filter(|v| !v.is_empty()) {
                Some(path) => CallEventKind::Recording { path: path.into() },
                None => return,
            }
        } else if var == self.cfg.did_variable {
            match m.get("Value").filter(|v| !v.is_empty()) {
                Some(did) => CallEventKind::Did { did: did.into() },
                None => return,
            }
        } else {
            return;
        };
        if let Some(call) = self.call_of(m, "") {
            out.push(ev(call, at, kind));
        }
    }

    fn on_agent(&mut self, m: &Message, event: &str, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        let Some(call) = self.call_of(m, "") else {
            return;
        };
        let agent = m
            .get("DestChannel")
            .and_then(|c| self.agent_of(c))
            .or_else(|| m.get("Interface").and_then(|c| self.agent_of(c)));
        let Some(agent) = agent else {
            return;
        };
        let kind = match event {
            "AgentCalled" => {
                if let Some(q) = m.get("Queue") {
                    out.push(ev(
                        call.clone(),
                        at,
                        CallEventKind::Queued { queue: q.into() },
                    ));
                }
                CallEventKind::Ringing { agent }
            }
            "AgentConnect" => {
                self.mark_answered(&call);
                CallEventKind::Answered { agent: Some(agent) }
            }
            _ => CallEventKind::RingEnded {
                agent,
                outcome: RingOutcome::NoAnswer,
            },
        };
        out.push(ev(call, at, kind));
    }

    /// Music on hold on the outside party's channel of an answered call: the
    /// caller is on hold from its start to its stop (queue music before an
    /// answer is waiting, not hold).
    fn on_moh(&mut self, m: &Message, event: &str, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        let Some(call) = self.call_of(m, "") else {
            return;
        };
        let outside = m
            .get("Uniqueid")
            .and_then(|u| self.chans.get(u))
            .is_some_and(|c| c.external);
        if !outside || !self.calls.get(&call).is_some_and(|c| c.answered) {
            return;
        }
        let kind = if event == "MusicOnHoldStart" {
            CallEventKind::Held { by: None }
        } else {
            CallEventKind::Unheld { by: None }
        };
        out.push(ev(call, at, kind));
    }

    fn on_blind(&mut self, m: &Message, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        if m.get("Result") != Some("Success") {
            return;
        }
        let Some(call) = self
            .call_of(m, "Transferee")
            .or_else(|| self.call_of(m, "Transferer"))
        else {
            return;
        };
        let Some(to) = m.get("Extension").filter(|e| !e.is_empty()) else {
            return;
        };
        let from = m.get("TransfererChannel").and_then(|c| self.agent_of(c));
        let kind = CallEventKind::Transferred {
            from,
            to: to.into(),
            kind: TransferKind::Blind,
        };
        out.push(ev(call, at, kind));
    }

    fn on_attended(&mut self, m: &Message, at: DateTime<Utc>, out: &mut Vec<CallEvent>) {
        if m.get("Result") != Some("Success") {
            return;
        }
        let Some(orig) = m
            .get("OrigTransfererLinkedid")
            .or_else(|| m.get("TransfereeLinkedid"))
            .map(str::to_owned)
        else {
            return;
        };
        // The two calls become one under the older Linkedid, as Asterisk
        // does: usually the transferer's first call, but the second when it
        // is older (the transferer was called twice and hands one caller to
        // the other).
        let second = m
            .get("SecondTransfererLinkedid")
            .filter(|s| *s != orig)
            .map(str::to_owned);
        let swap = second.as_deref().is_some_and(|s| older(s, &orig));
        let (call, gone, kept, left, target) = match second {
            Some(s) if swap => (s, Some(orig), "Second", "Orig", "TransfereeChannel"),
            s => (orig, s, "Orig", "Second", "TransferTargetChannel"),
        };
        let from = m
            .get(&format!("{kept}TransfererChannel"))
            .and_then(|c| self.agent_of(c));
        let to = m
            .get(target)
            .and_then(|c| self.agent_of(c))
            .or_else(|| {
                let transferer = m
                    .get(&format!("{left}TransfererUniqueid"))
                    .unwrap_or_default();
                self.other_phone(gone.as_deref()?, transferer, from.as_deref())
            })
            .or_else(|| {
                m.get(&format!("{left}TransfererConnectedLineNum"))
                    .filter(|n| !unknown(n))
                    .map(str::to_owned)
            });
        if let Some(to) = to {
            // The target has the caller now: their channels leaving later
            // end the call, not a consultation.
            self.consulting.retain(|_, a| *a != to);
            let kind = CallEventKind::Transferred {
                from,
                to,
                kind: TransferKind::Attended,
            };
            out.push(ev(call.clone(), at, kind));
        }
        // The other call becomes part of the transferred one.
        let Some(gone) = gone else {
            return;
        };
        let moving: Vec<String> = self
            .chans
            .iter()
            .filter(|(_, c)| c.linkedid == gone)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in moving {
            self.relink(&uid, &call);
        }
    }

    /// Asterisk 13's bridge-to-bridge attended transfer (`DestType: Bridge`
    /// or `Link`) names no target: it is the phone in the other call than
    /// its transferer's own channel (the first by channel id if several).
    fn other_phone(&self, call: &str, transferer: &str, from: Option<&str>) -> Option<String> {
        let mut phones: Vec<(&String, &String)> = self
            .chans
            .iter()
            .filter(|(uid, c)| c.linkedid == call && uid.as_str() != transferer)
            .filter_map(|(uid, c)| Some((uid, c.device.as_ref()?)))
            .filter(|(_, d)| Some(d.as_str()) != from)
            .collect();
        phones.sort();
        phones.first().map(|(_, d)| (*d).clone())
    }

    /// The call a channel (`Uniqueid`) belongs to, while it is up.
    pub fn call_of_channel(&self, uid: &str) -> Option<&str> {
        self.chans.get(uid).map(|c| c.linkedid.as_str())
    }

    /// Ids (`Uniqueid`) of the channels the mapper believes are up.
    pub fn channel_ids(&self) -> impl Iterator<Item = &str> {
        self.chans.keys().map(String::as_str)
    }

    /// Rebuilds channel state from a `CoreShowChannels` answer after a
    /// reconnect. `known` are the channels believed up before the list was
    /// asked for: those missing from it hung up meanwhile (their calls are
    /// closed once). Channels not seen before are registered (starting their
    /// calls), and agents' phones among them that are up or ringing are
    /// reported so. Channels learned from events while the list was on its
    /// way are left alone.
    pub fn resync(
        &mut self,
        channels: &[Message],
        known: &std::collections::HashSet<String>,
        at: DateTime<Utc>,
        out: &mut Vec<CallEvent>,
    ) {
        let from = out.len();
        let present: std::collections::HashSet<&str> =
            channels.iter().filter_map(|c| c.get("Uniqueid")).collect();
        for c in channels {
            let Some(uid) = c.get("Uniqueid") else {
                continue;
            };
            if self.chans.contains_key(uid) {
                continue;
            }
            let started = c
                .get("Duration")
                .and_then(parse_duration)
                .map(|d| at - d)
                .unwrap_or(at);
            self.on_channel(c, started, out);
            let (Some(call), Some(name)) = (self.call_of(c, ""), c.get("Channel")) else {
                continue;
            };
            let Some(agent) = self.agent_of(name) else {
                continue;
            };
            if self.calls.get(&call).is_some_and(|ctx| ctx.first == uid) {
                continue;
            }
            match c.get("ChannelState") {
                Some("6") => {
                    self.mark_answered(&call);
                    out.push(ev(call, at, CallEventKind::Answered { agent: Some(agent) }))
                }
                Some("5") => out.push(ev(call, at, CallEventKind::Ringing { agent })),
                _ => {}
            }
        }
        let lost = HangupCause {
            code: 0,
            text: "ended while the AMI link was down".into(),
        };
        for uid in known {
            if present.contains(uid.as_str()) {
                continue;
            }
            if let Some(chan) = self.chans.remove(uid) {
                self.leave(&chan.linkedid, uid, lost.clone(), at, out);
            }
        }
        // An originated call found up: the first phone listed in it placed it.
        let placers: Vec<(String, String)> = self
            .held
            .iter()
            .filter(|(_, h)| h.agent.is_none())
            .filter_map(|(call, _)| {
                let agent = channels
                    .iter()
                    .filter(|c| c.get("Linkedid") == Some(call.as_str()))
                    .filter_map(|c| c.get("Channel"))
                    .filter(|n| !is_local(n))
                    .find_map(|n| self.agent_of(n))?;
                Some((call.clone(), agent))
            })
            .collect();
        for (call, agent) in placers {
            if let Some(h) = self.held.get_mut(&call) {
                h.agent = Some(agent);
            }
        }
        self.flush_merged(at, out);
        if !self.held.is_empty() {
            self.hold_back(from, out);
        }
    }
}

/// The pair name of a Local channel half: `Local/102@from-agents-00000000;1`
/// → `Local/102@from-agents-00000000`; None for other channels.
fn local_pair(channel: &str) -> Option<&str> {
    let local = channel
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("Local/"));
    if !local {
        return None;
    }
    Some(channel.rsplit_once(';').map_or(channel, |(pair, _)| pair))
}

/// Whether Uniqueid `a` was made before `b`: `[SystemName-]SECONDS.SEQ`,
/// compared as numbers; false when either is not of that shape.
fn older(a: &str, b: &str) -> bool {
    fn order(id: &str) -> Option<(u64, u64)> {
        let tail = id.rsplit_once('-').map_or(id, |(_, t)| t);
        let (secs, seq) = tail.split_once('.')?;
        Some((secs.parse().ok()?, seq.parse().ok()?))
    }
    matches!((order(a), order(b)), (Some(x), Some(y)) if x < y)
}

/// `HH:MM:SS` as CoreShowChannels reports it.
fn parse_duration(s: &str) -> Option<TimeDelta> {
    let mut parts = s.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    TimeDelta::try_seconds(h * 3600 + m * 60 + sec)
}

fn ev(call_id: String, at: DateTime<Utc>, kind: CallEventKind) -> CallEvent {
    CallEvent { call_id, at, kind }
}

/// What the `Reason` of an `OriginateResponse` says (Asterisk's control codes).
fn originate_reason(code: &str) -> &'static str {
    match code.trim() {
        "0" => "no such device, or it could not be called",
        "1" => "hung up",
        "3" => "rang, not answered",
        "4" => "answered",
        "5" => "busy",
        "8" => "congestion",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_agents() {
        let m = Mapper::new(MapperConfig::default());
        assert_eq!(endpoint("PJSIP/101-0000001a"), Some(("PJSIP", "101")));
        assert_eq!(endpoint("SIP/trunk-00000a1f"), Some(("SIP", "trunk")));
        assert_eq!(
            endpoint("Local/101@from-queue-0000003;1"),
            Some(("Local", "101"))
        );
        assert_eq!(endpoint("PJSIP/101"), Some(("PJSIP", "101")));
        assert_eq!(endpoint("PJSIP/my-phone"), Some(("PJSIP", "my-phone")));
        assert_eq!(endpoint("garbage"), None);
        assert_eq!(m.agent_of("PJSIP/102-0000000e").as_deref(), Some("102"));
        assert_eq!(
            m.agent_of("Local/103@from-agents-00000001;2").as_deref(),
            Some("103")
        );
        assert_eq!(m.agent_of("PJSIP/trunk-0000000c"), None);
        assert_eq!(m.agent_of("PJSIP/89031112233-0000000c"), None);
        let narrow = Mapper::new(MapperConfig {
            max_extension_digits: 2,
            ..MapperConfig::default()
        });
        assert_eq!(narrow.agent_of("PJSIP/101-0000001a"), None);
    }

    use proptest::prelude::*;

    fn header() -> impl Strategy<Value = (String, String)> {
        let names = prop_oneof![
            Just("Event"),
            Just("Channel"),
            Just("DestChannel"),
            Just("Uniqueid"),
            Just("Linkedid"),
            Just("DestUniqueid"),
            Just("DestLinkedid"),
            Just("DialStatus"),
            Just("Variable"),
            Just("Value"),
            Just("Cause"),
            Just("Queue"),
            Just("Result"),
            Just("Extension"),
            Just("ChannelState"),
            Just("Duration"),
            Just("Interface"),
            Just("SecondTransfererLinkedid"),
            Just("OrigTransfererLinkedid"),
            Just("CallerIDNum"),
        ];
        let values = prop_oneof![
            Just("Newchannel".to_owned()),
            Just("Hangup".to_owned()),
            Just("DialBegin".to_owned()),
            Just("DialEnd".to_owned()),
            Just("AgentConnect".to_owned()),
            Just("AttendedTransfer".to_owned()),
            Just("BlindTransfer".to_owned()),
            Just("VarSet".to_owned()),
            Just("BridgeEnter".to_owned()),
            Just("ANSWER".to_owned()),
            Just("Success".to_owned()),
            Just("PJSIP/101-0000001a".to_owned()),
            Just("Local/1é@x;1".to_owned()),
            Just("MIXMONITOR_FILENAME".to_owned()),
            "[0-9]{1,2}".prop_map(|s| format!("1.{s}")),
            ".{0,12}",
        ];
        (names, values).prop_map(|(n, v)| (n.to_owned(), v))
    }

    proptest! {
        #[test]
        fn any_event_sequence_is_safe_and_calls_end_once(
            msgs in proptest::collection::vec(proptest::collection::vec(header(), 1..8), 0..60),
            resync_at in 0usize..60,
        ) {
            let mut m = Mapper::new(MapperConfig::default());
            let mut tracker = crate::calls::CallTracker::new();
            let mut out = Vec::new();
            let mut ended = std::collections::HashSet::new();
            for (i, hs) in msgs.iter().enumerate() {
                let msg = Message::from_pairs(hs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                if i == resync_at {
                    let known = m.channel_ids().map(str::to_owned).collect();
                    m.resync(std::slice::from_ref(&msg), &known, Utc::now(), &mut out);
                } else {
                    m.map(&msg, Utc::now(), &mut out);
                }
                for e in out.drain(..) {
                    for mo in tracker.feed(e) {
                        if let crate::calls::Moment::Finished(s) = mo {
                            // A call id may come back only as a new call.
                            prop_assert!(ended.insert((s.call_id.clone(), s.started_at, i)));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bridged_calls_merge_into_the_oldest_and_end_once() {
        let mut m = Mapper::new(MapperConfig::default());
        let mut out = Vec::new();
        let msg = |pairs: &[(&str, &str)]| Message::from_pairs(pairs.iter().copied());
        let chan = |ev: &str, name: &str, uid: &str, lid: &str| {
            msg(&[
                ("Event", ev),
                ("Channel", name),
                ("Uniqueid", uid),
                ("Linkedid", lid),
                ("CallerIDNum", "1"),
            ])
        };
        let now = Utc::now();
        for e in [
            chan("Newchannel", "PJSIP/trunk-00000001", "1.1", "1.1"),
            chan("Newchannel", "PJSIP/101-00000002", "1.2", "1.1"),
            chan("Newchannel", "PJSIP/101-00000003", "2.3", "2.3"),
            chan("Newchannel", "PJSIP/102-00000004", "2.4", "2.3"),
            // No transfer event: both consultation channels join the first call.
            chan("BridgeEnter", "PJSIP/102-00000004", "2.4", "1.1"),
            chan("BridgeEnter", "PJSIP/101-00000003", "2.3", "1.1"),
        ] {
            m.map(&e, now, &mut out);
        }
        assert!(
            out.iter()
                .any(|e| e.call_id == "2.3"
                    && e.kind == CallEventKind::Merged { into: "1.1".into() })
        );
        out.clear();
        for (name, uid) in [
            ("PJSIP/101-00000002", "1.2"),
            ("PJSIP/101-00000003", "2.3"),
            ("PJSIP/102-00000004", "2.4"),
            ("PJSIP/trunk-00000001", "1.1"),
        ] {
            m.map(&chan("Hangup", name, uid, "2.3"), now, &mut out);
        }
        let ends: Vec<_> = out
            .iter()
            .filter(|e| matches!(e.kind, CallEventKind::Ended { .. }))
            .collect();
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].call_id, "1.1");
        assert_eq!(m.live_calls(), 0);
    }

    #[test]
    fn hold_and_unhold_name_the_agent_whose_phone_held() {
        let ami = include_bytes!("../../../tests/fixtures/ami/synthetic_hold.ami");
        let mut m = Mapper::new(MapperConfig::default());
        let mut out = Vec::new();
        for (_, msg) in super::super::replay::timed_messages(ami, None) {
            m.map(&msg, Utc::now(), &mut out);
        }
        let holds: Vec<&CallEventKind> = out
            .iter()
            .filter(|e| e.call_id == "1795427500.90")
            .map(|e| &e.kind)
            .filter(|k| matches!(k, CallEventKind::Held { .. } | CallEventKind::Unheld { .. }))
            .collect();
        let by = Some("101".to_owned());
        assert_eq!(
            holds,
            [
                &CallEventKind::Held { by: by.clone() },
                &CallEventKind::Unheld { by: by.clone() },
                &CallEventKind::Held { by: by.clone() },
                &CallEventKind::Unheld { by },
            ]
        );
    }

    /// Finished calls of `msgs` (each a list of headers), phones up to 9 digits.
    fn records(msgs: &[Vec<(&str, &str)>]) -> Vec<crate::calls::CallRecord> {
        let mut m = Mapper::new(MapperConfig {
            max_extension_digits: 9,
            ..MapperConfig::default()
        });
        let mut tracker = crate::calls::CallTracker::new();
        let mut out = Vec::new();
        let mut done = Vec::new();
        let t0 = Utc::now();
        for (i, hs) in msgs.iter().enumerate() {
            let msg = Message::from_pairs(hs.iter().copied());
            m.map(&msg, t0 + TimeDelta::seconds(i as i64), &mut out);
            for e in out.drain(..) {
                for mo in tracker.feed(e) {
                    if let crate::calls::Moment::Finished(s) = mo {
                        done.push(s.to_record(None));
                    }
                }
            }
        }
        assert_eq!(m.live_calls(), 0);
        done
    }

    fn chan<'a>(
        event: &'a str,
        name: &'a str,
        uid: &'a str,
        lid: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("Event", event),
            ("Channel", name),
            ("Uniqueid", uid),
            ("Linkedid", lid),
            ("CallerIDNum", "<unknown>"),
            ("CallerIDName", "<unknown>"),
            ("Exten", "s"),
            ("Cause", "16"),
        ]
    }

    fn dial<'a>(
        end: Option<&'a str>,
        from: Option<(&'a str, &'a str)>,
        to: (&'a str, &'a str),
        lid: &'a str,
        number: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        let mut h = vec![(
            "Event",
            if end.is_some() {
                "DialEnd"
            } else {
                "DialBegin"
            },
        )];
        if let Some((name, uid)) = from {
            h.extend([("Channel", name), ("Uniqueid", uid), ("Linkedid", lid)]);
        }
        h.extend([
            ("DestChannel", to.0),
            ("DestUniqueid", to.1),
            ("DestLinkedid", lid),
            ("DestCallerIDNum", number),
        ]);
        if let Some(status) = end {
            h.push(("DialStatus", status));
        }
        h
    }

    const L1: &str = "Local/201@agents-00000001;1";
    const L2: &str = "Local/201@agents-00000001;2";
    const PHONE: &str = "SIP/150010001-00000002";
    const TRUNK: &str = "SIP/trunk-00000003";

    #[test]
    fn originate_into_a_local_channel_with_an_application_is_the_rung_phone_s_outbound_call() {
        // Originate Channel=Local/201@agents Application=Dial Data=SIP/trunk/+31260010001
        let msgs = vec![
            chan("Newchannel", L1, "9.1", "9.1"),
            chan("Newchannel", L2, "9.2", "9.1"),
            dial(None, None, (L1, "9.1"), "9.1", "<unknown>"),
            chan("Newchannel", PHONE, "9.3", "9.1"),
            dial(None, Some((L2, "9.2")), (PHONE, "9.3"), "9.1", "201"),
            dial(
                Some("ANSWER"),
                Some((L2, "9.2")),
                (PHONE, "9.3"),
                "9.1",
                "201",
            ),
            dial(Some("ANSWER"), None, (L1, "9.1"), "9.1", "<unknown>"),
            chan("Newchannel", TRUNK, "9.4", "9.1"),
            dial(
                None,
                Some((L1, "9.1")),
                (TRUNK, "9.4"),
                "9.1",
                "+31260010001",
            ),
            dial(
                Some("ANSWER"),
                Some((L1, "9.1")),
                (TRUNK, "9.4"),
                "9.1",
                "+31260010001",
            ),
            chan("Hangup", TRUNK, "9.4", "9.1"),
            chan("Hangup", L1, "9.1", "9.1"),
            chan("Hangup", L2, "9.2", "9.1"),
            chan("Hangup", PHONE, "9.3", "9.1"),
        ];
        let r = records(&msgs);
        assert_eq!(r.len(), 1, "{r:?}");
        let r = &r[0];
        assert_eq!(r.direction, crate::calls::Direction::Outbound, "{r:?}");
        assert_eq!(r.caller, "150010001");
        assert_eq!(r.agent.as_deref(), Some("150010001"));
        assert_eq!(r.callee.as_deref(), Some("+31260010001"));
        assert!(r.rang.is_empty(), "{r:?}");
        assert_eq!(r.did, None);
        assert_eq!(r.caller_name, None);
        assert_eq!(r.disposition, crate::calls::Disposition::Answered);
        assert!(!format!("{r:?}").contains("<unknown>"), "{r:?}");
    }

    #[test]
    fn originate_that_dials_the_customer_first_is_still_the_agent_s_outbound_call() {
        // Originate Channel=Local/+31260010001@out Exten=201 Context=agents:
        // the customer is dialled and answers before the agent's phone rings.
        let (l1, l2) = (
            "Local/+31260010001@out-00000001;1",
            "Local/+31260010001@out-00000001;2",
        );
        let msgs = vec![
            chan("Newchannel", l1, "9.1", "9.1"),
            chan("Newchannel", l2, "9.2", "9.1"),
            dial(None, None, (l1, "9.1"), "9.1", "<unknown>"),
            chan("Newchannel", TRUNK, "9.4", "9.1"),
            dial(
                None,
                Some((l2, "9.2")),
                (TRUNK, "9.4"),
                "9.1",
                "+31260010001",
            ),
            dial(
                Some("ANSWER"),
                Some((l2, "9.2")),
                (TRUNK, "9.4"),
                "9.1",
                "+31260010001",
            ),
            dial(Some("ANSWER"), None, (l1, "9.1"), "9.1", "<unknown>"),
            chan("Newchannel", PHONE, "9.3", "9.1"),
            dial(None, Some((l1, "9.1")), (PHONE, "9.3"), "9.1", "201"),
            dial(
                Some("ANSWER"),
                Some((l1, "9.1")),
                (PHONE, "9.3"),
                "9.1",
                "201",
            ),
            chan("Hangup", PHONE, "9.3", "9.1"),
            chan("Hangup", l1, "9.1", "9.1"),
            chan("Hangup", l2, "9.2", "9.1"),
            chan("Hangup", TRUNK, "9.4", "9.1"),
        ];
        let r = records(&msgs);
        assert_eq!(r.len(), 1, "{r:?}");
        let r = &r[0];
        assert_eq!(r.direction, crate::calls::Direction::Outbound, "{r:?}");
        assert_eq!(r.agent.as_deref(), Some("150010001"), "{r:?}");
        assert_eq!(r.caller, "150010001");
        assert_eq!(r.callee.as_deref(), Some("+31260010001"));
        assert_eq!(r.disposition, crate::calls::Disposition::Answered);
    }

    #[test]
    fn originate_from_a_phone_with_an_application_is_its_outbound_call() {
        // Originate Channel=SIP/150010001 Application=Dial Data=SIP/trunk/+31260010001
        let msgs = vec![
            chan("Newchannel", PHONE, "9.3", "9.3"),
            dial(None, None, (PHONE, "9.3"), "9.3", "<unknown>"),
            dial(Some("ANSWER"), None, (PHONE, "9.3"), "9.3", "<unknown>"),
            chan("Newchannel", TRUNK, "9.4", "9.3"),
            dial(
                None,
                Some((PHONE, "9.3")),
                (TRUNK, "9.4"),
                "9.3",
                "<unknown>",
            ),
            dial(
                Some("ANSWER"),
                Some((PHONE, "9.3")),
                (TRUNK, "9.4"),
                "9.3",
                "<unknown>",
            ),
            chan("Hangup", TRUNK, "9.4", "9.3"),
            chan("Hangup", PHONE, "9.3", "9.3"),
        ];
        let mut msgs = msgs;
        // Without a callee number on the trunk leg, the dial string names it.
        for m in msgs
            .iter_mut()
            .filter(|m| m.contains(&("DestChannel", TRUNK)))
        {
            m.push(("DialString", "+31260010001@trunk"));
        }
        let r = records(&msgs);
        assert_eq!(r.len(), 1, "{r:?}");
        let r = &r[0];
        assert_eq!(r.direction, crate::calls::Direction::Outbound, "{r:?}");
        assert_eq!(r.agent.as_deref(), Some("150010001"));
        assert_eq!(r.caller, "150010001");
        assert_eq!(r.callee.as_deref(), Some("+31260010001"));
        assert!(!format!("{r:?}").contains("<unknown>"), "{r:?}");
    }

    #[test]
    fn an_originate_that_rings_no_phone_is_logged_once_without_junk() {
        let msgs = vec![
            chan("Newchannel", L1, "9.1", "9.1"),
            chan("Newchannel", L2, "9.2", "9.1"),
            chan("Hangup", L2, "9.2", "9.1"),
            chan("Hangup", L1, "9.1", "9.1"),
        ];
        let r = records(&msgs);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(!format!("{r:?}").contains("<unknown>"), "{r:?}");
        assert!(!format!("{r:?}").contains("201"), "{r:?}");
    }

    #[test]
    fn asterisk_13_attended_transfer_through_a_link_names_the_second_call_s_phone() {
        let t = "PJSIP/trunk-00000001";
        let (a1, a2, b) = (
            "PJSIP/101-00000002",
            "PJSIP/101-00000003",
            "PJSIP/102-00000004",
        );
        let mut msgs = vec![
            chan("Newchannel", t, "1.1", "1.1"),
            chan("Newchannel", a1, "1.2", "1.1"),
            dial(None, Some((t, "1.1")), (a1, "1.2"), "1.1", "101"),
            dial(Some("ANSWER"), Some((t, "1.1")), (a1, "1.2"), "1.1", "101"),
            chan("Newchannel", a2, "2.3", "2.3"),
            chan("Newchannel", b, "2.4", "2.3"),
            dial(None, Some((a2, "2.3")), (b, "2.4"), "2.3", "102"),
            dial(Some("ANSWER"), Some((a2, "2.3")), (b, "2.4"), "2.3", "102"),
        ];
        msgs.push(vec![
            ("Event", "AttendedTransfer"),
            ("Result", "Success"),
            ("DestType", "Link"),
            ("OrigTransfererChannel", a1),
            ("OrigTransfererUniqueid", "1.2"),
            ("OrigTransfererLinkedid", "1.1"),
            ("SecondTransfererChannel", a2),
            ("SecondTransfererUniqueid", "2.3"),
            ("SecondTransfererLinkedid", "2.3"),
            ("SecondTransfererConnectedLineNum", "<unknown>"),
            ("LocalOneChannel", "Local/attended@transfer-00000005;1"),
            ("LocalTwoChannel", "Local/attended@transfer-00000005;2"),
        ]);
        msgs.extend([
            chan("Hangup", a1, "1.2", "1.1"),
            chan("Hangup", a2, "2.3", "2.3"),
            chan("Hangup", b, "2.4", "1.1"),
            chan("Hangup", t, "1.1", "1.1"),
        ]);
        let r = records(&msgs);
        assert_eq!(r.len(), 1, "{r:?}");
        let r = &r[0];
        assert_eq!(r.call_id, "1.1");
        assert_eq!(r.agent.as_deref(), Some("102"), "{r:?}");
        assert_eq!(
            r.transfers,
            [crate::calls::Transfer {
                from: Some("101".into()),
                to: "102".into(),
                kind: TransferKind::Attended,
            }]
        );
    }

    #[test]
    fn an_originate_through_local_found_up_after_a_reconnect_is_its_phone_s() {
        let mut m = Mapper::new(MapperConfig {
            max_extension_digits: 9,
            ..MapperConfig::default()
        });
        let mut tracker = crate::calls::CallTracker::new();
        let row = |name: &'static str, uid: &'static str| {
            Message::from_pairs([
                ("Event", "CoreShowChannel"),
                ("Channel", name),
                ("Uniqueid", uid),
                ("Linkedid", "9.1"),
                ("CallerIDNum", "<unknown>"),
                ("ChannelState", "6"),
                ("Duration", "00:00:05"),
            ])
        };
        let list = [row(L1, "9.1"), row(L2, "9.2"), row(PHONE, "9.3")];
        let mut out = Vec::new();
        let now = Utc::now();
        m.resync(&list, &Default::default(), now, &mut out);
        for (name, uid) in [(L2, "9.2"), (L1, "9.1"), (PHONE, "9.3")] {
            m.map(
                &Message::from_pairs(chan("Hangup", name, uid, "9.1")),
                now,
                &mut out,
            );
        }
        let mut done = Vec::new();
        for e in out {
            for mo in tracker.feed(e) {
                if let crate::calls::Moment::Finished(s) = mo {
                    done.push(s.to_record(None));
                }
            }
        }
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(done[0].caller, "150010001", "{done:?}");
        assert!(!format!("{done:?}").contains("<unknown>"), "{done:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("01:02:03"), TimeDelta::try_seconds(3723));
        assert_eq!(parse_duration("x"), None);
    }
}
