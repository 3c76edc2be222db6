//! Call events and the call tracker: a pure state machine that folds
//! PBX-neutral `CallEvent`s into one `CallSession` per call and says what
//! happened (`Moment`s, finished sessions with their disposition).
//!
//! Owns the meaning of a call (who rang, who answered, how it ended). It must
//! not know any PBX protocol: adapters in `telephony` translate into these
//! events, and everything downstream reads sessions and records from here.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::crm::phones::PhoneNormalizer;

/// The PBX's id for the whole call (Asterisk: `Linkedid`).
pub type CallId = String;

/// Who started the call, as far as the PBX knows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Party {
    pub number: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
}

impl Direction {
    /// The name used in records and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Answered,
    Abandoned,
    NoAnswer,
    Busy,
    Failed,
}

impl Disposition {
    pub const ALL: [Disposition; 5] = [
        Disposition::Answered,
        Disposition::Abandoned,
        Disposition::NoAnswer,
        Disposition::Busy,
        Disposition::Failed,
    ];

    /// The name used in records and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Abandoned => "abandoned",
            Disposition::NoAnswer => "no_answer",
            Disposition::Busy => "busy",
            Disposition::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferKind {
    Blind,
    Attended,
}

/// How an agent takes part in a call at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Their phone rings for the call.
    Ringing,
    /// They are on the call: connected to the caller, or placing their own call.
    Talking,
}

/// How one ringing phone stopped ringing without being answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingOutcome {
    /// Someone else answered or the caller gave up.
    Cancelled,
    NoAnswer,
    Busy,
    /// The phone could not be reached (unavailable, congestion).
    Failed,
}

/// Why the call ended, as the PBX reported it (Q.850 cause for Asterisk).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HangupCause {
    pub code: u16,
    pub text: String,
}

impl HangupCause {
    pub const NORMAL_CLEARING: u16 = 16;
    pub const USER_BUSY: u16 = 17;
    pub const NO_USER_RESPONSE: u16 = 18;
    pub const NO_ANSWER: u16 = 19;
}

/// One fact about a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    pub call_id: CallId,
    pub at: DateTime<Utc>,
    pub kind: CallEventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallEventKind {
    /// The first leg appeared. `agent` is set when an agent's own phone
    /// started the call (outbound, internal, click-to-call).
    Started {
        caller: Party,
        agent: Option<String>,
        /// What was dialled first (a DID for inbound calls), if known.
        dialed: Option<String>,
    },
    /// The number the customer dialled (the DID) became known.
    Did {
        did: String,
    },
    /// The call dialled a party outside the PBX (an outbound callee).
    DialedOut {
        number: String,
    },
    Queued {
        queue: String,
    },
    Ringing {
        agent: String,
    },
    RingEnded {
        agent: String,
        outcome: RingOutcome,
    },
    /// `agent` is None when an external party answered an agent's call.
    Answered {
        agent: Option<String>,
    },
    /// `agent`'s phone is connected in the call but not to the caller: they
    /// picked up the consultation of an attended transfer. They are on the
    /// call (not ringing) until they take the caller over (`Transferred`) or
    /// leave (`ConsultationEnded`); it is no answer to the caller.
    Consulting {
        agent: String,
    },
    /// `agent`'s consultation ended without them taking the caller.
    ConsultationEnded {
        agent: String,
    },
    /// The caller left a queue without being answered.
    Abandoned {
        queue: Option<String>,
    },
    Transferred {
        from: Option<String>,
        to: String,
        kind: TransferKind,
    },
    Held {
        by: Option<String>,
    },
    Unheld {
        by: Option<String>,
    },
    Recording {
        path: String,
    },
    /// The PBX confirmed a call the CRM asked for (click-to-call);
    /// `request_id` is the id the request was sent with.
    Originated {
        request_id: String,
    },
    /// The call was folded into `into` (the consultation leg of an attended
    /// transfer); its own session is dropped, its rung phones join `into`'s.
    Merged {
        into: CallId,
    },
    Ended {
        cause: HangupCause,
    },
    /// The call ended while the link to the PBX was down, at a moment not
    /// known: after `at` (the last moment the call was known to be up) and
    /// before the link came back. Its times are lower bounds.
    Lost {
        cause: HangupCause,
    },
    /// What follows for this call was read from the PBX's own records (its
    /// CDR) after the link came back, not seen as it happened.
    Recovered,
}

/// Where a call's times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallTimes {
    /// Seen as it happened.
    #[default]
    Live,
    /// Completed from the PBX's own records after the link was down.
    Recovered,
    /// The call ended while the link was down and the PBX's records did not
    /// say when: `ended_at` is the last moment it was known up, durations are
    /// lower bounds.
    Uncertain,
}

impl CallTimes {
    /// The name used in records and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CallTimes::Live => "live",
            CallTimes::Recovered => "recovered",
            CallTimes::Uncertain => "uncertain",
        }
    }
}

/// Everything known about one call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSession {
    pub call_id: CallId,
    pub caller: Party,
    /// The agent whose phone started the call, for outbound and internal calls.
    pub originator: Option<String>,
    pub dialed: Option<String>,
    pub external_callee: Option<String>,
    pub did: Option<String>,
    pub queue: Option<String>,
    /// The extension that finally talked to the caller.
    pub agent: Option<String>,
    /// Extensions whose phones rang, first ring first, no repeats.
    pub rang: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub transfers: Vec<Transfer>,
    pub recording: Option<String>,
    /// The id of the CRM request that placed this call (click-to-call).
    pub request_id: Option<String>,
    pub on_hold: bool,
    pub abandoned: bool,
    pub last_ring_outcome: Option<RingOutcome>,
    pub ringing_now: Vec<String>,
    /// Agents on the call but not with the caller (a consultation).
    pub consulting: Vec<String>,
    pub cause: Option<HangupCause>,
    /// Who was connected to the caller when, across transfers, in order.
    pub segments: Vec<TalkSegment>,
    /// Time the caller spent on hold, summed over every hold.
    pub hold: chrono::TimeDelta,
    /// Since when the caller is on hold, while they are.
    pub held_since: Option<DateTime<Utc>>,
    /// The originating agent handed the call on and is no longer on it.
    pub originator_left: bool,
    /// The agents last announced as on this call (`Moment::Parties`).
    pub shown_parties: Vec<(String, Part)>,
    /// Whether the times were seen live, recovered or are uncertain.
    pub times: CallTimes,
}

/// One agent's stretch of a call: opened when they answer (or take the call
/// over in a transfer), closed when they hand it on or the call ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalkSegment {
    pub agent: String,
    pub started_at: DateTime<Utc>,
    /// `None` while the agent is still on the call.
    pub ended_at: Option<DateTime<Utc>>,
}

impl TalkSegment {
    pub fn seconds(&self) -> f64 {
        self.ended_at
            .map(|e| seconds(e - self.started_at))
            .unwrap_or(0.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub from: Option<String>,
    pub to: String,
    pub kind: TransferKind,
}

impl CallSession {
    fn new(call_id: CallId, at: DateTime<Utc>) -> Self {
        CallSession {
            call_id,
            caller: Party::default(),
            originator: None,
            dialed: None,
            external_callee: None,
            did: None,
            queue: None,
            agent: None,
            rang: Vec::new(),
            started_at: at,
            answered_at: None,
            ended_at: None,
            transfers: Vec::new(),
            recording: None,
            request_id: None,
            on_hold: false,
            abandoned: false,
            last_ring_outcome: None,
            ringing_now: Vec::new(),
            consulting: Vec::new(),
            cause: None,
            segments: Vec::new(),
            hold: chrono::TimeDelta::zero(),
            held_since: None,
            originator_left: false,
            shown_parties: Vec::new(),
            times: CallTimes::Live,
        }
    }

    /// The agents on this call now: the originator while they have not
    /// handed it on, the agent connected to the caller, the agents in a
    /// consultation, and the phones ringing for it; each agent once, talking
    /// before ringing.
    pub fn parties(&self) -> impl Iterator<Item = (&str, Part)> {
        let originator = self.originator.as_deref().filter(|_| !self.originator_left);
        let connected = self
            .segments
            .last()
            .filter(|g| g.ended_at.is_none())
            .map(|g| g.agent.as_str())
            .filter(move |a| Some(*a) != originator);
        let consulting = self
            .consulting
            .iter()
            .map(String::as_str)
            .filter(move |a| Some(*a) != originator && Some(*a) != connected);
        let ringing = self
            .ringing_now
            .iter()
            .map(String::as_str)
            .filter(move |a| {
                Some(*a) != originator
                    && Some(*a) != connected
                    && !self.consulting.iter().any(|c| c == a)
            });
        originator
            .into_iter()
            .chain(connected)
            .chain(consulting)
            .map(|a| (a, Part::Talking))
            .chain(ringing.map(|a| (a, Part::Ringing)))
    }

    /// `Moment::Parties` when who is on the call changed since last said.
    fn announce_parties(&mut self, out: &mut Vec<Moment>) {
        let same = self
            .parties()
            .eq(self.shown_parties.iter().map(|(a, p)| (a.as_str(), *p)));
        if !same {
            self.shown_parties = self.parties().map(|(a, p)| (a.to_owned(), p)).collect();
            out.push(Moment::Parties {
                call_id: self.call_id.clone(),
                parties: self.shown_parties.clone(),
            });
        }
    }

    /// `agent` takes over the caller at `at`: the open segment (someone
    /// else's) closes and the agent's opens. Nothing changes when the agent
    /// is the one already connected; returns whether the agent is new.
    fn connect(&mut self, agent: &str, at: DateTime<Utc>) -> bool {
        if let Some(open) = self.segments.last().filter(|s| s.ended_at.is_none())
            && open.agent == agent
        {
            return false;
        }
        self.disconnect(at);
        self.segments.push(TalkSegment {
            agent: agent.to_owned(),
            started_at: at,
            ended_at: None,
        });
        true
    }

    /// The connected agent leaves the caller at `at` (a blind transfer, the end).
    fn disconnect(&mut self, at: DateTime<Utc>) {
        if let Some(open) = self.segments.last_mut().filter(|s| s.ended_at.is_none()) {
            open.ended_at = Some(at.max(open.started_at));
            if self.originator.as_deref() == Some(open.agent.as_str()) {
                // The agent who placed the call handed it on.
                self.originator_left = true;
            }
        }
    }

    fn unhold(&mut self, at: DateTime<Utc>) {
        if let Some(since) = self.held_since.take() {
            self.hold += (at - since).max(chrono::TimeDelta::zero());
        }
        self.on_hold = false;
    }

    pub fn direction(&self) -> Direction {
        match (&self.originator, &self.external_callee) {
            (None, _) => Direction::Inbound,
            (Some(_), Some(_)) => Direction::Outbound,
            (Some(_), None) => Direction::Internal,
        }
    }

    /// The outcome, derived from what rang and how it stopped.
    pub fn disposition(&self) -> Disposition {
        if self.answered_at.is_some() {
            return Disposition::Answered;
        }
        if self.abandoned {
            return Disposition::Abandoned;
        }
        let code = self.cause.as_ref().map(|c| c.code);
        let outbound = self.direction() != Direction::Inbound;
        if self.queue.is_some() && !outbound {
            // The caller never left the queue by hanging up (that is
            // `abandoned`): the queue gave up on them.
            return Disposition::NoAnswer;
        }
        match self.last_ring_outcome {
            Some(RingOutcome::Busy) => Disposition::Busy,
            Some(RingOutcome::NoAnswer) => Disposition::NoAnswer,
            Some(RingOutcome::Failed) => Disposition::Failed,
            Some(RingOutcome::Cancelled) if outbound => Disposition::NoAnswer,
            Some(RingOutcome::Cancelled) => Disposition::Abandoned,
            None if !self.ringing_now.is_empty() && !outbound => Disposition::Abandoned,
            None if !self.ringing_now.is_empty() => Disposition::NoAnswer,
            None => match code {
                Some(HangupCause::USER_BUSY) => Disposition::Busy,
                Some(HangupCause::NO_ANSWER | HangupCause::NO_USER_RESPONSE) => {
                    Disposition::NoAnswer
                }
                // Nothing rang and the line cleared normally: an inbound
                // caller gave up (IVR, announcement); an agent's call never
                // reached anyone.
                Some(0 | HangupCause::NORMAL_CLEARING) | None if !outbound => {
                    Disposition::Abandoned
                }
                _ => Disposition::Failed,
            },
        }
    }

    pub fn ring_seconds(&self) -> f64 {
        let until = self
            .answered_at
            .or(self.ended_at)
            .unwrap_or(self.started_at);
        seconds(until - self.started_at)
    }

    /// From the first answer to the end, transfers and holds included.
    pub fn talk_seconds(&self) -> f64 {
        match (self.answered_at, self.ended_at) {
            (Some(a), Some(e)) => seconds(e - a),
            _ => 0.0,
        }
    }

    pub fn hold_seconds(&self) -> f64 {
        seconds(self.hold)
    }

    /// The stable JSON shape other programs read (see DESIGN.md).
    /// Without a normalizer (no valid default region) numbers stay raw.
    pub fn to_record(&self, phones: Option<&PhoneNormalizer>) -> CallRecord {
        let external = |raw: &str| match phones.map(|p| p.normalize(raw)) {
            Some(Ok(e)) => e.to_string(),
            _ => raw.to_owned(),
        };
        let direction = self.direction();
        let caller = match direction {
            Direction::Inbound => external(&self.caller.number),
            _ => self
                .originator
                .clone()
                .unwrap_or_else(|| self.caller.number.clone()),
        };
        let callee = match direction {
            Direction::Outbound => self.external_callee.as_deref().map(external),
            Direction::Inbound => self.did.clone().or_else(|| self.dialed.clone()),
            Direction::Internal => self.rang.first().cloned().or_else(|| self.dialed.clone()),
        };
        CallRecord {
            call_id: self.call_id.clone(),
            direction,
            caller,
            caller_name: self.caller.name.clone(),
            callee,
            did: match direction {
                Direction::Inbound => self.did.clone().or_else(|| self.dialed.clone()),
                _ => self.did.clone(),
            },
            queue: self.queue.clone(),
            agent: self.agent.clone(),
            rang: self.rang.clone(),
            started_at: rfc3339(self.started_at),
            answered_at: self.answered_at.map(rfc3339),
            ended_at: self.ended_at.map(rfc3339),
            ring_s: self.ring_seconds(),
            talk_s: self.talk_seconds(),
            disposition: self.disposition(),
            transfers: self.transfers.clone(),
            recording: self.recording.clone(),
            segments: self
                .segments
                .iter()
                .map(|g| SegmentRecord {
                    agent: g.agent.clone(),
                    started_at: rfc3339(g.started_at),
                    ended_at: g.ended_at.map(rfc3339),
                    talk_s: g.seconds(),
                })
                .collect(),
            hold_s: self.hold_seconds(),
            cause: self.cause.clone(),
            times: self.times,
        }
    }
}

fn seconds(d: chrono::TimeDelta) -> f64 {
    (d.num_milliseconds().max(0) as f64) / 1000.0
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One finished call as printed by `ringside ami-replay` and stored as an
/// activity. Field names are a public contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    pub call_id: String,
    pub direction: Direction,
    pub caller: String,
    pub caller_name: Option<String>,
    pub callee: Option<String>,
    pub did: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub rang: Vec<String>,
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub ring_s: f64,
    pub talk_s: f64,
    pub disposition: Disposition,
    pub transfers: Vec<Transfer>,
    pub recording: Option<String>,
    /// Who talked to the caller when, in order (one per agent stretch).
    pub segments: Vec<SegmentRecord>,
    /// Seconds the caller spent on hold.
    pub hold_s: f64,
    /// How the PBX said the call ended (the caller's leg).
    pub cause: Option<HangupCause>,
    /// `live`, `recovered` (from the PBX's CDR after an outage) or
    /// `uncertain` (ended during an outage, end not known).
    pub times: CallTimes,
}

/// One agent's stretch of a call in a `CallRecord`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentRecord {
    pub agent: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub talk_s: f64,
}

/// What the rest of the app reacts to (screen pops, timeline, routing).
#[derive(Debug, Clone, PartialEq)]
pub enum Moment {
    /// A call from outside reached the PBX: the caller is known before any
    /// phone rings, which leaves time to look them up.
    Arrived {
        call_id: CallId,
        caller: Party,
    },
    Ringing {
        call_id: CallId,
        agent: String,
        caller: Party,
        queue: Option<String>,
    },
    Answered {
        call_id: CallId,
        agent: Option<String>,
    },
    /// The call moved from one agent to another (announced by the PBX, or
    /// seen when a second agent picked it up).
    Transferred {
        call_id: CallId,
        transfer: Transfer,
    },
    /// Who is on the call changed: every agent ringing or talking on it now
    /// (empty: nobody). The whole list each time, so a consumer that missed
    /// one is put right by the next.
    Parties {
        call_id: CallId,
        parties: Vec<(String, Part)>,
    },
    /// The call was folded into `into` (the consultation of an attended
    /// transfer): it ends here without being logged on its own.
    Merged {
        call_id: CallId,
        into: CallId,
        disposition: Disposition,
    },
    Finished(Box<CallSession>),
}

/// Folds events into sessions. Pure: no clock, no I/O.
#[derive(Debug, Default)]
pub struct CallTracker {
    live: HashMap<CallId, CallSession>,
}

impl CallTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls in progress.
    pub fn live(&self) -> impl Iterator<Item = &CallSession> {
        self.live.values()
    }

    pub fn get(&self, call_id: &str) -> Option<&CallSession> {
        self.live.get(call_id)
    }

    /// Applies one event. Events for a call that is not live (already ended,
    /// or never started) are ignored, so a repeated `Ended` closes a call once.
    pub fn feed(&mut self, ev: CallEvent) -> Vec<Moment> {
        let mut out = Vec::new();
        self.feed_into(ev, &mut out);
        out
    }

    /// Like `feed`, appending to a caller-owned buffer (no allocation per event).
    pub fn feed_into(&mut self, ev: CallEvent, out: &mut Vec<Moment>) {
        let CallEvent { call_id, at, kind } = ev;
        if let CallEventKind::Started {
            caller,
            agent,
            dialed,
        } = kind
        {
            let new = !self.live.contains_key(&call_id);
            let s = self
                .live
                .entry(call_id.clone())
                .or_insert_with(|| CallSession::new(call_id.clone(), at));
            if new && agent.is_none() {
                out.push(Moment::Arrived {
                    call_id,
                    caller: caller.clone(),
                });
            }
            s.caller = caller;
            s.originator = agent;
            s.dialed = dialed;
            s.announce_parties(out);
            return;
        }
        if let CallEventKind::Lost { cause } = kind {
            if let Some(mut s) = self.live.remove(&call_id) {
                // Never before what was seen of the call.
                let at = at.max(s.started_at).max(s.answered_at.unwrap_or(at));
                s.times = CallTimes::Uncertain;
                s.ended_at = Some(at);
                s.cause = Some(cause);
                s.disconnect(at);
                s.unhold(at);
                out.push(Moment::Finished(Box::new(s)));
            }
            return;
        }
        if let CallEventKind::Ended { cause } = kind {
            if let Some(mut s) = self.live.remove(&call_id) {
                s.ended_at = Some(at);
                s.cause = Some(cause);
                s.disconnect(at);
                s.unhold(at);
                out.push(Moment::Finished(Box::new(s)));
            }
            return;
        }
        if let CallEventKind::Merged { into } = kind {
            if let Some(gone) = self.live.remove(&call_id) {
                out.push(Moment::Merged {
                    call_id,
                    into: into.clone(),
                    disposition: gone.disposition(),
                });
                // The phones that rang for the consultation rang for this call.
                if let Some(s) = self.live.get_mut(&into) {
                    for a in gone.rang {
                        if !s.rang.contains(&a) {
                            s.rang.push(a);
                        }
                    }
                }
            }
            return;
        }
        let Some(s) = self.live.get_mut(&call_id) else {
            return;
        };
        apply(s, call_id, at, kind, out);
        s.announce_parties(out);
    }
}

/// One event of a live call (other than its start, end or merge).
fn apply(
    s: &mut CallSession,
    call_id: CallId,
    at: DateTime<Utc>,
    kind: CallEventKind,
    out: &mut Vec<Moment>,
) {
    match kind {
        CallEventKind::Started { .. }
        | CallEventKind::Ended { .. }
        | CallEventKind::Lost { .. }
        | CallEventKind::Merged { .. } => {}
        CallEventKind::Recovered => s.times = CallTimes::Recovered,
        CallEventKind::Did { did } => s.did = Some(did),
        CallEventKind::DialedOut { number } => {
            if s.external_callee.is_none() {
                s.external_callee = Some(number);
            }
        }
        CallEventKind::Queued { queue } => s.queue = Some(queue),
        CallEventKind::Ringing { agent } => {
            if s.originator.as_deref() == Some(agent.as_str()) && s.answered_at.is_none() {
                // The originating agent's own phone ringing (click-to-call).
                return;
            }
            if !s.ringing_now.contains(&agent) {
                s.ringing_now.push(agent.clone());
            }
            if !s.rang.contains(&agent) {
                s.rang.push(agent.clone());
                out.push(Moment::Ringing {
                    call_id,
                    agent,
                    caller: s.caller.clone(),
                    queue: s.queue.clone(),
                });
            }
        }
        CallEventKind::RingEnded { agent, outcome } => {
            if let Some(i) = s.ringing_now.iter().position(|a| *a == agent) {
                s.ringing_now.swap_remove(i);
                s.last_ring_outcome = Some(outcome);
            } else if s.external_callee.as_deref() == Some(agent.as_str()) {
                s.last_ring_outcome = Some(outcome);
            }
        }
        CallEventKind::Answered { agent } => {
            if agent.is_some() && agent == s.originator && s.answered_at.is_none() {
                // The originating agent picked up their own phone
                // (click-to-call through a Local channel): not an answer.
                return;
            }
            let agent = agent.or_else(|| s.originator.clone());
            // Someone has the caller: no phone rings for the call any more.
            s.ringing_now.clear();
            match s.answered_at {
                None => {
                    s.answered_at = Some(at);
                    s.agent = agent.clone();
                    if let Some(a) = &agent {
                        s.connect(a, at);
                    }
                    out.push(Moment::Answered { call_id, agent });
                }
                Some(_) => {
                    // A second agent picked the call up without a transfer
                    // event (AMI Redirect, dialplan transfer): a blind transfer.
                    if let Some(new) = &agent
                        && (s.transfers.iter().any(|t| t.to == *new)
                            || s.agent.as_deref() == Some(new.as_str()))
                    {
                        // The target of an announced transfer picked up, or
                        // the call came back to the agent who had it (a
                        // blind transfer nobody answered).
                        let picked_up = s.connect(new, at);
                        s.agent = agent.clone();
                        if picked_up {
                            out.push(Moment::Answered { call_id, agent });
                        }
                    } else if let Some(new) = &agent
                        && s.segments.last().is_some_and(|g| g.ended_at.is_some())
                        && let Some(t) = s
                            .transfers
                            .last_mut()
                            .filter(|t| t.kind == TransferKind::Blind)
                    {
                        // Blind-transferred to a number that is not a phone
                        // (`203` routed to `SIP/150010003`): the phone that
                        // answers first is the target.
                        t.to = new.clone();
                        s.connect(new, at);
                        s.agent = agent.clone();
                        out.push(Moment::Answered { call_id, agent });
                    } else if let (Some(new), Some(old)) = (agent, s.agent.clone())
                        && new != old
                        && s.originator.as_deref() != Some(new.as_str())
                    {
                        let t = Transfer {
                            from: Some(old),
                            to: new.clone(),
                            kind: TransferKind::Blind,
                        };
                        s.transfers.push(t.clone());
                        s.connect(&new, at);
                        s.agent = Some(new.clone());
                        out.push(Moment::Transferred {
                            call_id: call_id.clone(),
                            transfer: t,
                        });
                        out.push(Moment::Answered {
                            call_id,
                            agent: Some(new),
                        });
                    }
                }
            }
        }
        CallEventKind::Consulting { agent } => {
            s.ringing_now.retain(|a| *a != agent);
            if !s.consulting.contains(&agent) {
                s.consulting.push(agent);
            }
        }
        CallEventKind::ConsultationEnded { agent } => s.consulting.retain(|a| *a != agent),
        CallEventKind::Abandoned { queue } => {
            s.abandoned = true;
            if s.queue.is_none() {
                s.queue = queue;
            }
        }
        CallEventKind::Transferred { from, to, kind } => {
            let t = Transfer { from, to, kind };
            // A consultation's target takes the caller: no longer aside.
            s.consulting.retain(|a| *a != t.to);
            if s.transfers.last() != Some(&t) {
                s.transfers.push(t.clone());
                if t.from.is_some() && t.from == s.originator {
                    s.originator_left = true;
                }
                // An attended target is already talking (they have the
                // caller now); a blind one becomes the agent only when it
                // answers, and the transferer has left the caller already.
                let mut took_over = None;
                if s.answered_at.is_some() {
                    match t.kind {
                        TransferKind::Attended => {
                            // Bridged to the target: off hold, whether or
                            // not the PBX says so.
                            s.unhold(at);
                            if s.connect(&t.to, at) {
                                took_over = Some(t.to.clone());
                            }
                            s.agent = Some(t.to.clone());
                        }
                        TransferKind::Blind => s.disconnect(at),
                    }
                }
                out.push(Moment::Transferred {
                    call_id: call_id.clone(),
                    transfer: t,
                });
                if took_over.is_some() {
                    out.push(Moment::Answered {
                        call_id,
                        agent: took_over,
                    });
                }
            }
        }
        CallEventKind::Originated { request_id } => s.request_id = Some(request_id),
        CallEventKind::Held { .. } => {
            if s.held_since.is_none() {
                s.held_since = Some(at);
            }
            s.on_hold = true;
        }
        CallEventKind::Unheld { .. } => s.unhold(at),
        CallEventKind::Recording { path } => {
            if s.recording.is_none() {
                s.recording = Some(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    fn ev(at: i64, kind: CallEventKind) -> CallEvent {
        CallEvent {
            call_id: "c1".into(),
            at: t(at),
            kind,
        }
    }

    fn started() -> CallEvent {
        ev(
            0,
            CallEventKind::Started {
                caller: Party {
                    number: "+79161234567".into(),
                    name: None,
                },
                agent: None,
                dialed: Some("74957654321".into()),
            },
        )
    }

    fn ended(at: i64, code: u16) -> CallEvent {
        ev(
            at,
            CallEventKind::Ended {
                cause: HangupCause {
                    code,
                    text: String::new(),
                },
            },
        )
    }

    fn finish(events: Vec<CallEvent>) -> CallSession {
        let mut tr = CallTracker::new();
        let mut done = Vec::new();
        for e in events {
            for m in tr.feed(e) {
                if let Moment::Finished(s) = m {
                    done.push(*s);
                }
            }
        }
        assert_eq!(done.len(), 1, "exactly one finished session");
        done.remove(0)
    }

    #[test]
    fn answered_call_has_ring_and_talk_time() {
        let s = finish(vec![
            started(),
            ev(
                0,
                CallEventKind::Ringing {
                    agent: "101".into(),
                },
            ),
            ev(
                2,
                CallEventKind::Answered {
                    agent: Some("101".into()),
                },
            ),
            ended(7, 16),
            ended(8, 16),
        ]);
        assert_eq!(s.disposition(), Disposition::Answered);
        assert_eq!(s.agent.as_deref(), Some("101"));
        assert_eq!(s.ring_seconds(), 2.0);
        assert_eq!(s.talk_seconds(), 5.0);
    }

    #[test]
    fn an_outside_call_says_who_is_calling_before_anything_rings() {
        let mut tr = CallTracker::new();
        let first = tr.feed(started());
        assert_eq!(
            first,
            vec![Moment::Arrived {
                call_id: "c1".into(),
                caller: Party {
                    number: "+79161234567".into(),
                    name: None,
                },
            }]
        );
        // The same start again (a resync) is not a second arrival.
        assert!(tr.feed(started()).is_empty());
        // An agent's own call has no outside caller to look up.
        let mut tr = CallTracker::new();
        let own = tr.feed(ev(
            0,
            CallEventKind::Started {
                caller: Party {
                    number: "101".into(),
                    name: None,
                },
                agent: Some("101".into()),
                dialed: Some("89161234567".into()),
            },
        ));
        // It puts the agent on the call at once.
        assert_eq!(
            own,
            vec![Moment::Parties {
                call_id: "c1".into(),
                parties: vec![("101".into(), Part::Talking)],
            }],
            "{own:?}"
        );
    }

    #[test]
    fn names_match_the_record_json() {
        for d in Disposition::ALL {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
        for d in [Direction::Inbound, Direction::Outbound, Direction::Internal] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
    }

    #[test]
    fn dispositions_follow_ring_outcomes() {
        let case = |outcome, code| {
            finish(vec![
                started(),
                ev(
                    0,
                    CallEventKind::Ringing {
                        agent: "101".into(),
                    },
                ),
                ev(
                    3,
                    CallEventKind::RingEnded {
                        agent: "101".into(),
                        outcome,
                    },
                ),
                ended(3, code),
            ])
            .disposition()
        };
        assert_eq!(case(RingOutcome::Busy, 17), Disposition::Busy);
        assert_eq!(case(RingOutcome::NoAnswer, 16), Disposition::NoAnswer);
        assert_eq!(case(RingOutcome::Cancelled, 16), Disposition::Abandoned);
        assert_eq!(case(RingOutcome::Failed, 34), Disposition::Failed);
    }

    #[test]
    fn queue_abandon_wins_and_answered_elsewhere_is_not_a_miss() {
        let s = finish(vec![
            started(),
            ev(
                0,
                CallEventKind::Queued {
                    queue: "sales".into(),
                },
            ),
            ev(
                0,
                CallEventKind::Ringing {
                    agent: "101".into(),
                },
            ),
            ev(
                0,
                CallEventKind::Ringing {
                    agent: "102".into(),
                },
            ),
            ev(
                8,
                CallEventKind::Abandoned {
                    queue: Some("sales".into()),
                },
            ),
            ended(8, 0),
        ]);
        assert_eq!(s.disposition(), Disposition::Abandoned);
        assert_eq!(s.rang, ["101", "102"]);
    }

    #[test]
    fn queue_timeout_is_no_answer_and_ivr_hangup_is_abandoned() {
        let s = finish(vec![
            started(),
            ev(
                0,
                CallEventKind::Queued {
                    queue: "support".into(),
                },
            ),
            ev(
                0,
                CallEventKind::Ringing {
                    agent: "102".into(),
                },
            ),
            ev(
                30,
                CallEventKind::RingEnded {
                    agent: "102".into(),
                    outcome: RingOutcome::Cancelled,
                },
            ),
            ended(31, 16),
        ]);
        assert_eq!(s.disposition(), Disposition::NoAnswer);
        assert_eq!(
            finish(vec![started(), ended(9, 16)]).disposition(),
            Disposition::Abandoned
        );
        assert_eq!(
            finish(vec![started(), ended(1, 34)]).disposition(),
            Disposition::Failed
        );
    }

    #[test]
    fn second_agent_answering_is_a_transfer() {
        let s = finish(vec![
            started(),
            ev(
                1,
                CallEventKind::Answered {
                    agent: Some("101".into()),
                },
            ),
            ev(
                5,
                CallEventKind::Ringing {
                    agent: "102".into(),
                },
            ),
            ev(
                6,
                CallEventKind::Answered {
                    agent: Some("102".into()),
                },
            ),
            ended(9, 16),
        ]);
        assert_eq!(s.agent.as_deref(), Some("102"));
        assert_eq!(
            s.transfers,
            [Transfer {
                from: Some("101".into()),
                to: "102".into(),
                kind: TransferKind::Blind
            }]
        );
        assert_eq!(s.talk_seconds(), 8.0);
    }

    #[test]
    fn an_attended_transfer_takes_the_caller_off_hold() {
        // 101 holds the caller at 5 to consult 102; the transfer completes at
        // 12 with no Unhold from the PBX: the hold is 7 s, not until the end.
        let s = finish(vec![
            started(),
            ev(
                2,
                CallEventKind::Answered {
                    agent: Some("101".into()),
                },
            ),
            ev(
                5,
                CallEventKind::Held {
                    by: Some("101".into()),
                },
            ),
            ev(
                12,
                CallEventKind::Transferred {
                    from: Some("101".into()),
                    to: "102".into(),
                    kind: TransferKind::Attended,
                },
            ),
            ended(20, 16),
        ]);
        assert_eq!(s.hold_seconds(), 7.0);
        assert!(!s.on_hold);
    }

    #[test]
    fn segments_follow_who_has_the_caller_and_holds_add_up() {
        let answered = |at, a: &str| {
            ev(
                at,
                CallEventKind::Answered {
                    agent: Some(a.into()),
                },
            )
        };
        let held = |at| ev(at, CallEventKind::Held { by: None });
        let unheld = |at| ev(at, CallEventKind::Unheld { by: None });
        // Blind: 101 hands the caller on at 6; 102 picks up at 9. Two holds,
        // a repeated Hold and an Unhold without a Hold count once.
        let s = finish(vec![
            started(),
            ev(
                0,
                CallEventKind::Ringing {
                    agent: "101".into(),
                },
            ),
            answered(2, "101"),
            held(3),
            held(4),
            unheld(5),
            unheld(5),
            ev(
                6,
                CallEventKind::Transferred {
                    from: Some("101".into()),
                    to: "102".into(),
                    kind: TransferKind::Blind,
                },
            ),
            ev(
                6,
                CallEventKind::Ringing {
                    agent: "102".into(),
                },
            ),
            answered(9, "102"),
            held(12),
            ended(15, 16),
        ]);
        let spans: Vec<(&str, i64, Option<i64>)> = s
            .segments
            .iter()
            .map(|g| {
                (
                    g.agent.as_str(),
                    (g.started_at - t(0)).num_seconds(),
                    g.ended_at.map(|e| (e - t(0)).num_seconds()),
                )
            })
            .collect();
        assert_eq!(spans, [("101", 2, Some(6)), ("102", 9, Some(15))]);
        assert_eq!(s.hold_seconds(), 5.0, "2 s, then held until the end (3 s)");
        assert_eq!(
            s.talk_seconds(),
            13.0,
            "talk still runs from the first answer"
        );
        let r = s.to_record(None);
        assert_eq!(r.segments.len(), 2);
        assert_eq!(r.segments[1].talk_s, 6.0);
        assert_eq!(r.hold_s, 5.0);
        assert_eq!(r.cause.map(|c| c.code), Some(16));

        // Attended: the target is already talking when the transfer completes.
        let s = finish(vec![
            started(),
            answered(2, "101"),
            ev(
                12,
                CallEventKind::Transferred {
                    from: Some("101".into()),
                    to: "102".into(),
                    kind: TransferKind::Attended,
                },
            ),
            answered(13, "102"),
            ended(19, 16),
        ]);
        let spans: Vec<(&str, f64)> = s
            .segments
            .iter()
            .map(|g| (g.agent.as_str(), g.seconds()))
            .collect();
        assert_eq!(spans, [("101", 10.0), ("102", 7.0)]);
        assert_eq!(s.agent.as_deref(), Some("102"));

        // Nobody answered: no segment, no hold.
        let s = finish(vec![started(), ended(9, 16)]);
        assert!(s.segments.is_empty());
        assert_eq!(s.hold_seconds(), 0.0);
    }

    #[test]
    fn originator_picking_up_is_not_an_answer() {
        let start = ev(
            0,
            CallEventKind::Started {
                caller: Party {
                    number: "101".into(),
                    name: None,
                },
                agent: Some("101".into()),
                dialed: None,
            },
        );
        let s = finish(vec![
            start,
            ev(
                0,
                CallEventKind::Ringing {
                    agent: "101".into(),
                },
            ),
            ev(
                2,
                CallEventKind::Answered {
                    agent: Some("101".into()),
                },
            ),
            ev(
                2,
                CallEventKind::DialedOut {
                    number: "89031112233".into(),
                },
            ),
            ev(
                5,
                CallEventKind::RingEnded {
                    agent: "89031112233".into(),
                    outcome: RingOutcome::NoAnswer,
                },
            ),
            ended(5, 16),
        ]);
        assert_eq!(s.answered_at, None);
        assert!(s.rang.is_empty());
        assert_eq!(s.direction(), Direction::Outbound);
        assert_eq!(s.disposition(), Disposition::NoAnswer);
    }

    /// The last `Parties` each call said, as (agent, part) pairs.
    fn parties_after(tr: &mut CallTracker, events: Vec<CallEvent>) -> Vec<Moment> {
        let mut out = Vec::new();
        for e in events {
            out.extend(tr.feed(e));
        }
        out
    }

    fn last_parties(moments: &[Moment], call: &str) -> Option<Vec<(String, Part)>> {
        moments.iter().rev().find_map(|m| match m {
            Moment::Parties { call_id, parties } if call_id == call => Some(parties.clone()),
            _ => None,
        })
    }

    #[test]
    fn who_is_on_the_call_follows_rings_answers_and_transfers() {
        let talking = |a: &str| (a.to_owned(), Part::Talking);
        let ringing = |a: &str| (a.to_owned(), Part::Ringing);
        let mut tr = CallTracker::new();
        let out = parties_after(
            &mut tr,
            vec![
                started(),
                ev(
                    0,
                    CallEventKind::Ringing {
                        agent: "101".into(),
                    },
                ),
                ev(
                    0,
                    CallEventKind::Ringing {
                        agent: "102".into(),
                    },
                ),
            ],
        );
        assert_eq!(
            last_parties(&out, "c1"),
            Some(vec![ringing("101"), ringing("102")])
        );
        // 101 answers: 102 stops ringing with it, even without a ring end.
        let out = tr.feed(ev(
            2,
            CallEventKind::Answered {
                agent: Some("101".into()),
            },
        ));
        assert_eq!(last_parties(&out, "c1"), Some(vec![talking("101")]));
        // A second agent picks up (no transfer event): 101 is off the call,
        // told after the transfer and the new agent's answer.
        let out = parties_after(
            &mut tr,
            vec![
                ev(
                    5,
                    CallEventKind::Ringing {
                        agent: "103".into(),
                    },
                ),
                ev(
                    6,
                    CallEventKind::Answered {
                        agent: Some("103".into()),
                    },
                ),
            ],
        );
        assert!(matches!(&out[0], Moment::Ringing { agent, .. } if agent == "103"));
        assert_eq!(
            last_parties(&out[..2], "c1"),
            Some(vec![talking("101"), ringing("103")])
        );
        assert!(matches!(&out[2], Moment::Transferred { transfer, .. } if transfer.to == "103"));
        assert_eq!(
            out[3],
            Moment::Answered {
                call_id: "c1".into(),
                agent: Some("103".into())
            }
        );
        assert_eq!(last_parties(&out, "c1"), Some(vec![talking("103")]));
        // Announced blind transfer: the transferer leaves at once.
        let out = tr.feed(ev(
            8,
            CallEventKind::Transferred {
                from: Some("103".into()),
                to: "104".into(),
                kind: TransferKind::Blind,
            },
        ));
        assert_eq!(last_parties(&out, "c1"), Some(vec![]));
        let out = parties_after(
            &mut tr,
            vec![
                ev(
                    8,
                    CallEventKind::Ringing {
                        agent: "104".into(),
                    },
                ),
                ev(
                    9,
                    CallEventKind::Answered {
                        agent: Some("104".into()),
                    },
                ),
            ],
        );
        assert!(out.contains(&Moment::Answered {
            call_id: "c1".into(),
            agent: Some("104".into())
        }));
        assert_eq!(last_parties(&out, "c1"), Some(vec![talking("104")]));
        // A blind transfer nobody answers comes back to the agent who made it.
        let mut tr = CallTracker::new();
        let out = parties_after(
            &mut tr,
            vec![
                started(),
                ev(
                    0,
                    CallEventKind::Ringing {
                        agent: "101".into(),
                    },
                ),
                ev(
                    1,
                    CallEventKind::Answered {
                        agent: Some("101".into()),
                    },
                ),
                ev(
                    4,
                    CallEventKind::Transferred {
                        from: Some("101".into()),
                        to: "102".into(),
                        kind: TransferKind::Blind,
                    },
                ),
                ev(
                    4,
                    CallEventKind::Ringing {
                        agent: "102".into(),
                    },
                ),
                ev(
                    24,
                    CallEventKind::RingEnded {
                        agent: "102".into(),
                        outcome: RingOutcome::NoAnswer,
                    },
                ),
                ev(
                    24,
                    CallEventKind::Ringing {
                        agent: "101".into(),
                    },
                ),
            ],
        );
        assert_eq!(last_parties(&out, "c1"), Some(vec![ringing("101")]));
        let out = tr.feed(ev(
            26,
            CallEventKind::Answered {
                agent: Some("101".into()),
            },
        ));
        assert!(out.contains(&Moment::Answered {
            call_id: "c1".into(),
            agent: Some("101".into())
        }));
        assert_eq!(last_parties(&out, "c1"), Some(vec![talking("101")]));

        // An agent's own call: the agent is on it from the start until they
        // hand it on; the consultation of an attended transfer folds in.
        let mut tr = CallTracker::new();
        let own = |id: &str, agent: &str, at| CallEvent {
            call_id: id.into(),
            at: t(at),
            kind: CallEventKind::Started {
                caller: Party {
                    number: agent.into(),
                    name: None,
                },
                agent: Some(agent.into()),
                dialed: None,
            },
        };
        let on = |id: &str, at, kind| CallEvent {
            call_id: id.into(),
            at: t(at),
            kind,
        };
        let out = parties_after(
            &mut tr,
            vec![
                own("out", "101", 0),
                on(
                    "out",
                    1,
                    CallEventKind::DialedOut {
                        number: "89031112233".into(),
                    },
                ),
                on("out", 3, CallEventKind::Answered { agent: None }),
                own("consult", "101", 4),
                on(
                    "consult",
                    4,
                    CallEventKind::Ringing {
                        agent: "102".into(),
                    },
                ),
                on(
                    "consult",
                    5,
                    CallEventKind::Answered {
                        agent: Some("102".into()),
                    },
                ),
            ],
        );
        assert_eq!(last_parties(&out, "out"), Some(vec![talking("101")]));
        assert_eq!(
            last_parties(&out, "consult"),
            Some(vec![talking("101"), talking("102")])
        );
        let out = parties_after(
            &mut tr,
            vec![
                on(
                    "out",
                    9,
                    CallEventKind::Transferred {
                        from: Some("101".into()),
                        to: "102".into(),
                        kind: TransferKind::Attended,
                    },
                ),
                on("consult", 9, CallEventKind::Merged { into: "out".into() }),
            ],
        );
        assert!(out.contains(&Moment::Answered {
            call_id: "out".into(),
            agent: Some("102".into())
        }));
        assert_eq!(last_parties(&out, "out"), Some(vec![talking("102")]));
        assert_eq!(
            out.last(),
            Some(&Moment::Merged {
                call_id: "consult".into(),
                into: "out".into(),
                disposition: Disposition::Answered,
            })
        );
        assert_eq!(tr.live().count(), 1);
    }

    #[test]
    fn merged_and_unknown_calls_produce_nothing() {
        let mut tr = CallTracker::new();
        assert!(tr.feed(ended(1, 16)).is_empty());
        tr.feed(started());
        tr.feed(ev(1, CallEventKind::Merged { into: "c0".into() }));
        assert!(tr.feed(ended(2, 16)).is_empty());
        assert_eq!(tr.live().count(), 0);
    }
}
