//! Asterisk's own call records (CDR), read after the AMI link was down: the
//! real end (and answer) of calls that ended during the outage, and the calls
//! that started and ended entirely inside it.
//!
//! Owns reading the file `cdr_custom` writes with the mapping shipped in
//! `dialplans/cdr_custom.conf` (JSON lines: `linkedid`, `uniqueid`,
//! `sequence`, `clid`, `src`, `dst`, `channel`, `dstchannel`, `lastapp`,
//! `lastdata`, `start`/`answer`/`end` as Unix seconds, `disposition`) and
//! turning a call's rows into PBX-neutral `CallEvent`s. It keeps its place in
//! the file; it never writes anything, and what the events mean is the
//! tracker's.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::mapper::Mapper;
use crate::calls::{CallEvent, CallEventKind, HangupCause, Party, RingOutcome};

/// At most this much of the file's tail is read at once: the calls of an
/// outage are the last lines.
const MAX_READ: u64 = 32 * 1024 * 1024;

/// One CDR: one pair of parties (the caller and one phone it dialled).
#[derive(Debug, Clone, PartialEq)]
pub struct CdrRow {
    pub linkedid: String,
    pub uniqueid: String,
    pub sequence: i64,
    pub clid: String,
    pub src: String,
    pub dst: String,
    pub channel: String,
    pub dstchannel: String,
    pub lastapp: String,
    pub lastdata: String,
    pub start: DateTime<Utc>,
    pub answer: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
    /// `ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED`, `CONGESTION`.
    pub disposition: String,
}

fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        // The same cleaning as the AMI link's: NUL and control characters go.
        Some(Value::String(s)) => crate::text::clean(s).into_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn number(v: &Value, k: &str) -> Option<f64> {
    match v.get(k)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn epoch(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() || secs <= 0.0 {
        return None;
    }
    DateTime::from_timestamp_micros((secs * 1e6).round() as i64)
}

impl CdrRow {
    /// One line of the file; `None` for a line that is not a usable record.
    pub fn parse(line: &str) -> Option<CdrRow> {
        let v: Value = serde_json::from_str(line.trim()).ok()?;
        let linkedid = text(&v, "linkedid");
        let start = epoch(number(&v, "start")?)?;
        if linkedid.is_empty() {
            return None;
        }
        let end = number(&v, "end").and_then(epoch).unwrap_or(start);
        Some(CdrRow {
            uniqueid: text(&v, "uniqueid"),
            sequence: number(&v, "sequence").unwrap_or(0.0) as i64,
            clid: text(&v, "clid"),
            src: text(&v, "src"),
            dst: text(&v, "dst"),
            channel: text(&v, "channel"),
            dstchannel: text(&v, "dstchannel"),
            lastapp: text(&v, "lastapp"),
            lastdata: text(&v, "lastdata"),
            answer: number(&v, "answer").and_then(epoch),
            end: end.max(start),
            disposition: text(&v, "disposition").to_ascii_uppercase(),
            start,
            linkedid,
        })
    }

    fn answered(&self) -> bool {
        self.disposition == "ANSWERED" && self.answer.is_some()
    }
}

/// The caller's name in a CDR `clid` (`"Hans Mueller" <+4930123456>`).
fn clid_name(clid: &str) -> Option<String> {
    let name = clid.split('<').next()?.trim().trim_matches('"').trim();
    (!name.is_empty() && name != "<unknown>").then(|| name.to_owned())
}

/// The file `cdr_custom` appends to, read from where the last read stopped.
#[derive(Debug)]
pub struct CdrFile {
    path: PathBuf,
    offset: Option<u64>,
}

impl CdrFile {
    pub fn new(path: impl AsRef<Path>) -> Self {
        CdrFile {
            path: path.as_ref().to_owned(),
            offset: None,
        }
    }

    /// Skips what the file holds now (calls before this start are not ours
    /// to recover).
    pub async fn skip_to_end(&mut self) {
        let len = tokio::fs::metadata(&self.path)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        self.offset = Some(len);
    }

    /// The records appended since the last read, grouped by call (`linkedid`).
    /// A missing or unreadable file is no records (logged); a line still
    /// being written is left for the next read.
    pub async fn read_new(&mut self) -> HashMap<String, Vec<CdrRow>> {
        let mut out: HashMap<String, Vec<CdrRow>> = HashMap::new();
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the CDR file");
                return out;
            }
        };
        let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let mut from = self.offset.unwrap_or(0);
        if from > len {
            // Rotated or truncated: start over.
            from = 0;
        }
        let skip_partial = len - from > MAX_READ;
        if skip_partial {
            from = len - MAX_READ;
        }
        if file.seek(SeekFrom::Start(from)).await.is_err() {
            return out;
        }
        let mut buf = Vec::with_capacity((len - from) as usize);
        if let Err(e) = (&mut file).take(len - from).read_to_end(&mut buf).await {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot read the CDR file");
            return out;
        }
        // Up to the last complete line.
        let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset = Some(from + complete as u64);
        let mut lines = buf[..complete].split(|&b| b == b'\n');
        if skip_partial {
            lines.next();
        }
        for line in lines {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            if line.trim().is_empty() {
                continue;
            }
            match CdrRow::parse(line) {
                Some(row) => out.entry(row.linkedid.clone()).or_default().push(row),
                None => tracing::debug!("skipping a CDR line that is not a record"),
            }
        }
        for rows in out.values_mut() {
            rows.sort_by(|a, b| a.start.cmp(&b.start).then(a.sequence.cmp(&b.sequence)));
        }
        out
    }
}

fn ev(call_id: &str, at: DateTime<Utc>, kind: CallEventKind) -> CallEvent {
    CallEvent {
        call_id: call_id.to_owned(),
        at,
        kind,
    }
}

/// How the call ended, in the words the tracker reads.
fn cause_of(rows: &[CdrRow]) -> HangupCause {
    let disp = if rows.iter().any(CdrRow::answered) {
        "ANSWERED"
    } else {
        rows.last().map_or("", |r| r.disposition.as_str())
    };
    let code = match disp {
        "ANSWERED" => HangupCause::NORMAL_CLEARING,
        "BUSY" => HangupCause::USER_BUSY,
        "NO ANSWER" => HangupCause::NO_ANSWER,
        "CONGESTION" => 34,
        "FAILED" => 41,
        _ => 0,
    };
    HangupCause {
        code,
        text: format!("from the CDR: {}", disp.to_ascii_lowercase()),
    }
}

/// The rest of a call the tracker had live when the link went down: who
/// answered or stopped ringing, and when it really ended.
pub fn finish(call_id: &str, rows: &[CdrRow], mapper: &Mapper, out: &mut Vec<CallEvent>) {
    let Some(end) = rows.iter().map(|r| r.end).max() else {
        return;
    };
    out.push(ev(call_id, end, CallEventKind::Recovered));
    legs(call_id, rows, mapper, false, out);
    out.push(ev(
        call_id,
        end,
        CallEventKind::Ended {
            cause: cause_of(rows),
        },
    ));
}

/// A call that started and ended while the link was down, from its records.
pub fn replay_call(call_id: &str, rows: &[CdrRow], mapper: &Mapper, out: &mut Vec<CallEvent>) {
    let (Some(first), Some(end)) = (rows.first(), rows.iter().map(|r| r.end).max()) else {
        return;
    };
    let agent = mapper.agent_of(&first.channel);
    let dialed = Some(first.dst.clone()).filter(|d| !d.is_empty() && d != "s");
    let caller = Party {
        number: Some(first.src.clone())
            .filter(|s| s != "<unknown>")
            .unwrap_or_default(),
        name: clid_name(&first.clid),
    };
    let start = first.start;
    out.push(ev(
        call_id,
        start,
        CallEventKind::Started {
            caller,
            agent: agent.clone(),
            dialed: dialed.clone(),
        },
    ));
    out.push(ev(call_id, start, CallEventKind::Recovered));
    if agent.is_none()
        && let Some(did) = dialed
    {
        out.push(ev(call_id, start, CallEventKind::Did { did }));
    }
    legs(call_id, rows, mapper, true, out);
    out.push(ev(
        call_id,
        end,
        CallEventKind::Ended {
            cause: cause_of(rows),
        },
    ));
}

/// Each record's phone: rung, then answered or not.
fn legs(call_id: &str, rows: &[CdrRow], mapper: &Mapper, ring: bool, out: &mut Vec<CallEvent>) {
    let mut events: Vec<CallEvent> = Vec::new();
    for r in rows {
        if r.lastapp.eq_ignore_ascii_case("Queue")
            && let Some(q) = r.lastdata.split(',').next().filter(|q| !q.is_empty())
        {
            events.push(ev(
                call_id,
                r.start,
                CallEventKind::Queued { queue: q.into() },
            ));
        }
        if r.dstchannel.is_empty() {
            continue;
        }
        let agent = mapper.agent_of(&r.dstchannel);
        let local = r
            .dstchannel
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("Local/"));
        match &agent {
            Some(a) if ring => events.push(ev(
                call_id,
                r.start,
                CallEventKind::Ringing { agent: a.clone() },
            )),
            None if !local && ring => events.push(ev(
                call_id,
                r.start,
                CallEventKind::DialedOut {
                    number: r.dst.clone(),
                },
            )),
            _ => {}
        }
        if r.answered()
            && let Some(at) = r.answer
        {
            events.push(ev(call_id, at, CallEventKind::Answered { agent }));
        } else if let Some(a) = agent.or_else(|| (!local).then(|| r.dst.clone())) {
            let outcome = match r.disposition.as_str() {
                "BUSY" => RingOutcome::Busy,
                "FAILED" | "CONGESTION" => RingOutcome::Failed,
                _ => RingOutcome::NoAnswer,
            };
            events.push(ev(
                call_id,
                r.end,
                CallEventKind::RingEnded { agent: a, outcome },
            ));
        }
    }
    // In time order, rings before answers at the same moment.
    events.sort_by_key(|e| e.at);
    out.extend(events);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::{CallTracker, Disposition, Moment};
    use crate::telephony::ami::mapper::MapperConfig;

    fn row(json: &str) -> CdrRow {
        CdrRow::parse(json).expect("a record")
    }

    #[test]
    fn a_call_inside_the_outage_is_rebuilt_from_its_records() {
        let rows = vec![row(
            r#"{"linkedid":"9.1","uniqueid":"9.1","sequence":3,"clid":"\"Hans\" <+4930123456>","src":"+4930123456","dst":"74957654321","channel":"PJSIP/trunk-00000001","dstchannel":"PJSIP/101-00000002","lastapp":"Dial","lastdata":"PJSIP/101,20","start":1700000000.250000,"answer":1700000002.5,"end":1700000007.75,"disposition":"ANSWERED"}"#,
        )];
        let mapper = Mapper::new(MapperConfig::default());
        let mut events = Vec::new();
        replay_call("9.1", &rows, &mapper, &mut events);
        let mut tracker = CallTracker::new();
        let mut finished = None;
        for e in events {
            for m in tracker.feed(e) {
                if let Moment::Finished(s) = m {
                    finished = Some(s);
                }
            }
        }
        let s = finished.expect("the call finishes");
        assert_eq!(s.disposition(), Disposition::Answered);
        assert_eq!(s.agent.as_deref(), Some("101"));
        assert_eq!(s.caller.name.as_deref(), Some("Hans"));
        assert_eq!(s.did.as_deref(), Some("74957654321"));
        assert_eq!(s.times, crate::calls::CallTimes::Recovered);
        assert!((s.talk_seconds() - 5.25).abs() < 0.001);
        assert!((s.ring_seconds() - 2.25).abs() < 0.001);
    }

    #[test]
    fn bad_lines_are_not_records() {
        assert!(CdrRow::parse("not json").is_none());
        assert!(CdrRow::parse(r#"{"linkedid":"","start":1}"#).is_none());
        assert!(CdrRow::parse(r#"{"linkedid":"1.1","start":0}"#).is_none());
        let r = row(r#"{"linkedid":"1.1","start":"1700000000","answer":0,"end":1699999999}"#);
        assert_eq!(r.answer, None);
        assert_eq!(r.end, r.start, "an end before the start is the start");
    }
}
