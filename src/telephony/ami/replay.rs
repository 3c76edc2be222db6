//! Offline replay of a raw AMI transcript into finished call records, as
//! `ringside ami-replay FILE` prints them.
//!
//! Owns the choice of clock for a transcript. With `FILE.times` beside it
//! (`<ns since capture start> <byte offset>` per message) a message's time
//! is the capture's wall-clock start plus its offset. The capture start is
//! taken from the first `Timestamp:` (epoch seconds) or `EventTV:` header
//! minus that message's offset; a capture with neither is anchored at the
//! Unix epoch, so times still give exact durations. Without `.times`,
//! `Timestamp:` headers are used when Asterisk sends them, else the moment
//! of replay.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use chrono::{DateTime, TimeDelta, Utc};

use super::codec::{Decoder, Frame, Message};
use super::mapper::{Mapper, MapperConfig};
use crate::calls::{CallRecord, CallSession, CallTracker, Moment};
use crate::crm::phones::PhoneNormalizer;

/// Parses a `.times` file; malformed lines are skipped.
pub fn parse_times(times: &str) -> Vec<(u64, usize)> {
    let mut out: Vec<(u64, usize)> = times
        .lines()
        .filter_map(|l| {
            let mut it = l.split_ascii_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect();
    out.sort_by_key(|&(_, off)| off);
    out
}

/// The wall-clock time a message says it was sent, if it says so.
pub fn message_time(m: &Message) -> Option<DateTime<Utc>> {
    if let Some(ts) = m.get("Timestamp").and_then(|t| t.parse::<f64>().ok())
        && ts.is_finite()
        && ts >= 0.0
    {
        let micros = (ts * 1e6) as i64;
        return DateTime::from_timestamp_micros(micros);
    }
    let tv = m.get("EventTV")?;
    DateTime::parse_from_str(tv, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The messages of a transcript, each with its capture time in ns when a
/// `.times` text is given (the entry at or before the message's bytes).
pub fn timed_messages(ami: &[u8], times: Option<&str>) -> Vec<(Option<u64>, Message)> {
    let times = times.map(parse_times).filter(|t| !t.is_empty());
    let mut buf = BytesMut::from(ami);
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(Frame::Message(m))) => {
                let end = ami.len() - buf.len();
                let ns = times.as_ref().and_then(|t| {
                    let i = t.partition_point(|&(_, off)| off < end);
                    i.checked_sub(1).map(|i| t[i].0)
                });
                out.push((ns, m));
            }
            Ok(Some(Frame::Banner(_))) => {}
            Ok(None) => break,
            Err(e) => tracing::warn!(error = %e, "skipping an AMI message in the transcript"),
        }
    }
    out
}

/// Replays a transcript and returns the finished calls' sessions in the
/// order they ended.
pub fn replay_sessions(ami: &[u8], times: Option<&str>, cfg: MapperConfig) -> Vec<CallSession> {
    let frames = timed_messages(ami, times);
    let timed = frames.iter().any(|(t, _)| t.is_some());
    let anchor = timed.then(|| {
        frames
            .iter()
            .find_map(|(t, m)| Some(message_time(m)? - ns(t.unwrap_or(0))))
            .unwrap_or(DateTime::UNIX_EPOCH)
    });
    let mut mapper = Mapper::new(cfg);
    let mut tracker = CallTracker::new();
    let mut events = Vec::new();
    let mut moments = Vec::new();
    let mut done = Vec::new();
    for (t, m) in &frames {
        let at = match (anchor, *t) {
            (Some(a), Some(o)) => a + ns(o),
            _ => message_time(m).unwrap_or_else(Utc::now),
        };
        mapper.map(m, at, &mut events);
        for e in events.drain(..) {
            tracker.feed_into(e, &mut moments);
        }
        for mo in moments.drain(..) {
            if let Moment::Finished(s) = mo {
                done.push(*s);
            }
        }
    }
    done
}

fn ns(n: u64) -> TimeDelta {
    TimeDelta::nanoseconds(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Replays a transcript into the records `ringside ami-replay` prints.
/// `region` is the default region for numbers without a country code; an
/// invalid one leaves numbers raw.
pub fn replay(ami: &[u8], times: Option<&str>, region: &str) -> Vec<CallRecord> {
    replay_with(ami, times, region, MapperConfig::default())
}

/// [`replay`] with the site's mapper rules (`phones.internal_max_digits`).
pub fn replay_with(
    ami: &[u8],
    times: Option<&str>,
    region: &str,
    cfg: MapperConfig,
) -> Vec<CallRecord> {
    let phones = PhoneNormalizer::new(region).ok();
    replay_sessions(ami, times, cfg)
        .iter()
        .map(|s| s.to_record(phones.as_ref()))
        .collect()
}

/// The `.times` file beside a transcript: `FILE.times`, else `NAME.times`.
pub fn times_path(path: &Path) -> Option<PathBuf> {
    let mut beside = path.as_os_str().to_owned();
    beside.push(".times");
    let beside = PathBuf::from(beside);
    if beside.is_file() {
        return Some(beside);
    }
    let swapped = path.with_extension("times");
    (swapped != path && swapped.is_file()).then_some(swapped)
}

/// Reads FILE (and its `.times` if present) and writes one JSON line per
/// finished call to `out`.
pub fn run_replay_file(path: &Path, region: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    run_replay_file_with(path, region, MapperConfig::default(), out)
}

/// [`run_replay_file`] with the site's mapper rules.
pub fn run_replay_file_with(
    path: &Path,
    region: &str,
    cfg: MapperConfig,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let ami = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let times = match times_path(path) {
        Some(p) => {
            Some(std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    for rec in replay_with(&ami, times.as_deref(), region, cfg) {
        serde_json::to_writer(&mut *out, &rec)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::{Direction, Disposition, TransferKind};

    macro_rules! fixture {
        ($name:literal) => {
            replay(
                include_bytes!(concat!("../../../tests/fixtures/ami/", $name, ".ami")),
                Some(include_str!(concat!(
                    "../../../tests/fixtures/ami/",
                    $name,
                    ".times"
                ))),
                "RU",
            )
        };
    }

    fn one(mut recs: Vec<CallRecord>) -> CallRecord {
        assert_eq!(recs.len(), 1, "{recs:#?}");
        recs.remove(0)
    }

    /// MixMonitor(${UNIQUEID}.wav) runs on the caller's channel, whose
    /// Uniqueid is the call id.
    fn recorded(r: &CallRecord) {
        let want = format!("/var/spool/asterisk/monitor/{}.wav", r.call_id);
        assert_eq!(r.recording.as_deref(), Some(want.as_str()));
    }

    fn near(actual: f64, expected: f64) {
        assert!((actual - expected).abs() <= 1.0, "{actual} vs {expected}");
    }

    #[test]
    fn direct_answered() {
        let r = one(fixture!("direct_answered"));
        assert_eq!(r.call_id, "1795426662.2");
        assert_eq!(r.direction, Direction::Inbound);
        assert_eq!(r.caller, "+79161234567");
        assert_eq!(r.caller_name, None);
        assert_eq!(r.did.as_deref(), Some("74957654321"));
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("101"));
        assert_eq!(r.rang, ["101"]);
        assert_eq!(r.queue, None);
        near(r.ring_s, 2.0);
        near(r.talk_s, 5.0);
        assert_eq!(
            r.recording.as_deref(),
            Some("/var/spool/asterisk/monitor/1795426662.2.wav")
        );
        assert!(r.transfers.is_empty());
        assert!(r.started_at.starts_with("2026-11-23T"), "{}", r.started_at);
        assert_eq!(r.segments.len(), 1);
        assert_eq!(r.segments[0].agent, "101");
        near(r.segments[0].talk_s, 5.0);
        assert_eq!(
            r.segments[0].started_at,
            r.answered_at.clone().unwrap_or_default()
        );
        assert_eq!(r.hold_s, 0.0);
        assert_eq!(r.cause.map(|c| c.code), Some(16));
    }

    #[test]
    fn direct_busy() {
        let r = one(fixture!("direct_busy"));
        recorded(&r);
        assert_eq!(r.disposition, Disposition::Busy);
        assert_eq!(r.caller, "+4930123456");
        assert_eq!(r.caller_name.as_deref(), Some("Hans Mueller"));
        assert_eq!(r.agent, None);
        assert_eq!(r.answered_at, None);
        assert_eq!(r.rang, ["101"]);
        assert_eq!(r.talk_s, 0.0);
        assert!(r.segments.is_empty());
        let cause = r.cause.expect("a hangup cause");
        assert_eq!((cause.code, cause.text.as_str()), (17, "User busy"));
    }

    #[test]
    fn direct_no_answer() {
        let r = one(fixture!("direct_no_answer"));
        recorded(&r);
        assert_eq!(r.disposition, Disposition::NoAnswer);
        assert_eq!(r.caller, "+79161234567");
        assert_eq!(r.agent, None);
        assert_eq!(r.rang, ["101"]);
        near(r.ring_s, 20.0);
        assert_eq!(r.talk_s, 0.0);
        // The caller's leg clears normally; the agent's (cause 0) is not the call's.
        assert_eq!(r.cause.map(|c| c.code), Some(16));
    }

    #[test]
    fn queue_answered() {
        let r = one(fixture!("queue_answered"));
        assert_eq!(r.call_id, "1795426750.12");
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.queue.as_deref(), Some("sales"));
        assert_eq!(r.agent.as_deref(), Some("102"));
        assert_eq!(r.rang, ["101", "102"]);
        assert_eq!(r.did.as_deref(), Some("74951234567"));
        assert_eq!(r.caller, "+4930123456");
        near(r.ring_s, 3.0);
        near(r.talk_s, 4.0);
        assert_eq!(r.segments.len(), 1);
        assert_eq!(r.segments[0].agent, "102");
        near(r.segments[0].talk_s, 4.0);
        assert_eq!(
            r.recording.as_deref(),
            Some("/var/spool/asterisk/monitor/1795426750.12.wav")
        );
        // The queue's music while the caller waited is not a hold.
        assert_eq!(r.hold_s, 0.0);
    }

    #[test]
    fn queue_abandoned() {
        let r = one(fixture!("queue_abandoned"));
        recorded(&r);
        assert_eq!(r.disposition, Disposition::Abandoned);
        assert_eq!(r.queue.as_deref(), Some("sales"));
        assert_eq!(r.agent, None);
        assert_eq!(r.rang, ["101", "102"]);
        assert_eq!(r.caller, "+79031112233");
        near(r.ring_s, 8.0);
        assert_eq!(r.talk_s, 0.0);
        assert_eq!(r.cause.map(|c| c.code), Some(0));
    }

    #[test]
    fn anonymous_caller() {
        let r = one(fixture!("anonymous_caller"));
        recorded(&r);
        assert_eq!(r.caller, "anonymous");
        assert_eq!(r.caller_name.as_deref(), Some("Anonymous"));
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("101"));
        near(r.ring_s, 2.0);
        near(r.talk_s, 5.0);
    }

    #[test]
    fn cnam_special_chars() {
        let r = one(fixture!("cnam_special_chars"));
        recorded(&r);
        assert_eq!(r.caller, "+79161234567");
        assert_eq!(
            r.caller_name.as_deref(),
            Some("<script>alert('x')</script> Иван Петров")
        );
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("101"));
        near(r.talk_s, 5.0);
    }

    #[test]
    fn click_to_call() {
        let r = one(fixture!("click_to_call"));
        assert_eq!(r.call_id, "1795426942.33");
        let s = replay_sessions(
            include_bytes!("../../../tests/fixtures/ami/click_to_call.ami"),
            None,
            MapperConfig::default(),
        );
        assert_eq!(
            s[0].request_id.as_deref(),
            Some("c2c-1"),
            "the Originate ActionID"
        );
        assert_eq!(r.direction, Direction::Outbound);
        assert_eq!(r.caller, "101");
        assert_eq!(r.callee.as_deref(), Some("+79031112233"));
        assert_eq!(r.agent.as_deref(), Some("101"));
        assert_eq!(r.disposition, Disposition::Answered);
        assert!(r.rang.is_empty(), "{:?}", r.rang);
        near(r.talk_s, 5.0);
        assert_eq!(
            r.recording.as_deref(),
            Some("/var/spool/asterisk/monitor/1795426942.33.wav")
        );
    }

    #[test]
    fn synthetic_blind_transfer() {
        let r = one(fixture!("synthetic_blind_transfer"));
        recorded(&r);
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("102"));
        assert_eq!(r.rang, ["101", "102"]);
        assert_eq!(r.transfers.len(), 1);
        assert_eq!(r.transfers[0].from.as_deref(), Some("101"));
        assert_eq!(r.transfers[0].to, "102");
        assert_eq!(r.transfers[0].kind, TransferKind::Blind);
        near(r.ring_s, 2.0);
        near(r.talk_s, 13.0);
        // 101 from the answer to the transfer, 102 from its answer to the end.
        let seg: Vec<(&str, f64)> = r
            .segments
            .iter()
            .map(|g| (g.agent.as_str(), g.talk_s))
            .collect();
        assert_eq!(seg.len(), 2, "{seg:?}");
        assert_eq!(seg[0].0, "101");
        near(seg[0].1, 4.0);
        assert_eq!(seg[1].0, "102");
        near(seg[1].1, 6.0);
        assert_eq!(r.hold_s, 0.0);
        assert_eq!(r.cause.as_ref().map(|c| c.code), Some(16));
    }

    /// Captured by the real-Asterisk suite (tests/asterisk/), with the
    /// outcomes their notes state.
    #[test]
    fn e2e_queue_ringall_answered() {
        let r = one(fixture!("queue_ringall_answered"));
        assert_eq!(r.direction, Direction::Inbound);
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.queue.as_deref(), Some("sales"));
        assert_eq!(r.agent.as_deref(), Some("101"));
        assert_eq!(r.rang, ["101", "102"]);
        near(r.ring_s, 2.5);
        near(r.talk_s, 6.0);
        assert_eq!(r.segments.len(), 1);
        assert_eq!(r.segments[0].agent, "101");
        assert!(r.transfers.is_empty());
        assert_eq!(r.hold_s, 0.0);
        assert_eq!(r.cause.as_ref().map(|c| c.code), Some(16));
    }

    #[test]
    fn e2e_queue_abandoned() {
        let r = one(fixture!("queue_abandoned_e2e"));
        assert_eq!(r.caller, "+79031112233");
        assert_eq!(r.disposition, Disposition::Abandoned);
        assert_eq!(r.queue.as_deref(), Some("sales"));
        assert_eq!(r.agent, None);
        assert_eq!(r.rang, ["101", "102"]);
        assert_eq!(r.talk_s, 0.0);
        assert!(r.segments.is_empty());
        assert_eq!(r.cause.as_ref().map(|c| c.code), Some(0));
    }

    #[test]
    fn e2e_direct_busy() {
        let r = one(fixture!("direct_busy_e2e"));
        assert_eq!(r.disposition, Disposition::Busy);
        assert_eq!(r.agent, None);
        assert_eq!(r.rang, ["101"]);
        assert_eq!(r.talk_s, 0.0);
        assert_eq!(r.cause.as_ref().map(|c| c.code), Some(17));
    }

    #[test]
    fn e2e_core_restart_with_a_call_up() {
        let r = one(fixture!("core_restart_call_up"));
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("101"));
        assert_eq!(r.rang, ["101"]);
        assert!(r.ended_at.is_some());
        assert!(r.talk_s < 1.0, "ended at the restart: {}", r.talk_s);
        assert_eq!(r.cause.as_ref().map(|c| c.code), Some(16));
    }

    #[test]
    fn synthetic_attended_transfer() {
        let r = one(fixture!("synthetic_attended_transfer"));
        assert_eq!(r.call_id, "1795427200.60");
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.caller, "+4930123456");
        assert_eq!(r.agent.as_deref(), Some("102"));
        assert_eq!(r.transfers.len(), 1);
        assert_eq!(r.transfers[0].from.as_deref(), Some("101"));
        assert_eq!(r.transfers[0].to, "102");
        assert_eq!(r.transfers[0].kind, TransferKind::Attended);
        assert_eq!(r.rang, ["101", "102"]);
        near(r.talk_s, 17.0);
        // 101 keeps the caller (on hold from 5 s) until the transfer at 12 s.
        let seg: Vec<(&str, f64)> = r
            .segments
            .iter()
            .map(|g| (g.agent.as_str(), g.talk_s))
            .collect();
        assert_eq!(seg.len(), 2, "{seg:?}");
        assert_eq!(seg[0].0, "101");
        near(seg[0].1, 10.0);
        assert_eq!(seg[1].0, "102");
        near(seg[1].1, 7.0);
        near(r.hold_s, 7.0);
    }

    #[test]
    fn synthetic_hold() {
        let r = one(fixture!("synthetic_hold"));
        recorded(&r);
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("101"));
        near(r.ring_s, 2.0);
        near(r.talk_s, 15.0);
        near(r.hold_s, 6.0);
        assert!(r.hold_s > 5.5 && r.hold_s < 6.5, "{}", r.hold_s);
        assert_eq!(r.segments.len(), 1);
        near(r.segments[0].talk_s, 15.0);
        let s = replay_sessions(
            include_bytes!("../../../tests/fixtures/ami/synthetic_hold.ami"),
            Some(include_str!(
                "../../../tests/fixtures/ami/synthetic_hold.times"
            )),
            MapperConfig::default(),
        );
        assert!(!s[0].on_hold && s[0].held_since.is_none());
    }

    /// Segments as (agent, talk_s), checked to follow one another: each
    /// starts where the one before ended, the first at the answer, the last
    /// ending with the call.
    fn chained_segments(r: &CallRecord) -> Vec<(&str, f64)> {
        let segs = &r.segments;
        assert!(!segs.is_empty(), "{r:#?}");
        assert_eq!(Some(&segs[0].started_at), r.answered_at.as_ref());
        assert_eq!(segs[segs.len() - 1].ended_at, r.ended_at);
        for w in segs.windows(2) {
            assert!(
                w[0].ended_at.as_ref() <= Some(&w[1].started_at),
                "{segs:#?}"
            );
        }
        segs.iter().map(|g| (g.agent.as_str(), g.talk_s)).collect()
    }

    /// The captures from `sip/capture.sh` keep the spool under the run's
    /// temporary state directory.
    fn recorded_in_spool(r: &CallRecord) {
        let want = format!("/spool/monitor/{}.wav", r.call_id);
        let path = r.recording.as_deref().unwrap_or_default();
        assert!(path.ends_with(&want), "{path}");
    }

    fn close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() <= 0.05, "{actual} vs {expected}");
    }

    #[test]
    fn attended_transfer_through_asterisk_22() {
        // Captured: 101 answers at 2.48 s, presses *2 and dials 102 at 5.92 s
        // (the caller on music on hold), 102 answers the consultation at
        // 10.30 s, 101 hangs up at 17.71 s and the bridges merge; 102 talks
        // to the caller until 29.72 s.
        let r = one(fixture!("attended_transfer"));
        recorded_in_spool(&r);
        assert_eq!(r.call_id, "1796305660.0");
        assert_eq!(r.caller, "+4930123456");
        assert_eq!(r.caller_name.as_deref(), Some("Hans Mueller"));
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("102"));
        assert_eq!(r.rang, ["101", "102"]);
        assert_eq!(r.transfers.len(), 1, "{:?}", r.transfers);
        assert_eq!(r.transfers[0].from.as_deref(), Some("101"));
        assert_eq!(r.transfers[0].to, "102");
        assert_eq!(r.transfers[0].kind, TransferKind::Attended);
        close(r.ring_s, 2.476 - 0.472);
        close(r.talk_s, 29.719 - 2.476);
        // 101 has the caller until the transfer completes; 102 from then on,
        // their consultation with 101 is not talk with the caller.
        let seg = chained_segments(&r);
        assert_eq!(seg.len(), 2, "{seg:?}");
        assert_eq!(seg[0].0, "101");
        close(seg[0].1, 17.712 - 2.476);
        assert_eq!(seg[1].0, "102");
        close(seg[1].1, 29.719 - 17.712);
        assert_eq!(
            r.segments[0].ended_at.as_ref(),
            Some(&r.segments[1].started_at)
        );
        // Music on hold from the *2 to the merge, not to the end of the call.
        close(r.hold_s, 17.712 - 5.920);
        assert_eq!(r.cause.as_ref().map(|c| c.code), Some(16));
    }

    #[test]
    fn attended_transfer_nobody_answers_through_asterisk_22() {
        // Captured: 101 presses *2 and dials 102 at 5.88 s, 102 rings and
        // never answers; at 23.25 s Asterisk gives 101 the caller back; 101
        // hangs up at 43.26 s.
        let r = one(fixture!("attended_no_answer"));
        assert_eq!(r.call_id, "1796307847.0");
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("101"));
        assert_eq!(r.rang, ["101", "102"]);
        assert!(r.transfers.is_empty(), "{:?}", r.transfers);
        let seg = chained_segments(&r);
        assert_eq!(seg.len(), 1, "{seg:?}");
        assert_eq!(seg[0].0, "101");
        close(seg[0].1, 43.258 - 2.437);
        close(r.hold_s, 23.252 - 5.882);
    }

    #[test]
    fn blind_transfer_through_asterisk_22() {
        // Captured: 101 answers at 2.66 s, presses #1 at 6.10 s (the caller on
        // music on hold while 101 dials), 102 at 8.47 s; 101's leg hangs up,
        // the caller's channel rings 102, who answers at 10.48 s and hangs up
        // at 16.49 s.
        let r = one(fixture!("blind_transfer"));
        recorded_in_spool(&r);
        assert_eq!(r.call_id, "1796305707.0");
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("102"));
        assert_eq!(r.rang, ["101", "102"]);
        assert_eq!(r.transfers.len(), 1, "{:?}", r.transfers);
        assert_eq!(r.transfers[0].from.as_deref(), Some("101"));
        assert_eq!(r.transfers[0].to, "102");
        assert_eq!(r.transfers[0].kind, TransferKind::Blind);
        close(r.talk_s, 16.490 - 2.657);
        let seg = chained_segments(&r);
        assert_eq!(seg.len(), 2, "{seg:?}");
        assert_eq!(seg[0].0, "101");
        close(seg[0].1, 8.471 - 2.657);
        assert_eq!(seg[1].0, "102");
        close(seg[1].1, 16.490 - 10.482);
        close(r.hold_s, 8.471 - 6.100);
    }

    #[test]
    fn hold_and_unhold_through_asterisk_22() {
        // Captured: 101 answers at 2.47 s, holds the caller (re-INVITE
        // sendonly) at 5.47 s, takes them back at 9.48 s, hangs up at 12.49 s.
        let r = one(fixture!("hold_unhold"));
        recorded_in_spool(&r);
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("101"));
        assert!(r.transfers.is_empty());
        close(r.talk_s, 12.486 - 2.468);
        let seg = chained_segments(&r);
        assert_eq!(seg.len(), 1, "{seg:?}");
        assert_eq!(seg[0].0, "101");
        close(seg[0].1, 12.486 - 2.468);
        close(r.hold_s, 9.481 - 5.473);
    }

    #[test]
    fn synthetic_queue_local_members() {
        let r = one(fixture!("synthetic_queue_local_members"));
        recorded(&r);
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.queue.as_deref(), Some("support"));
        assert_eq!(r.did.as_deref(), Some("74951230000"));
        assert_eq!(r.agent.as_deref(), Some("103"));
        assert_eq!(r.rang, ["102", "103"]);
        assert!(r.transfers.is_empty());
        near(r.ring_s, 18.0);
        near(r.talk_s, 6.0);
    }

    #[test]
    fn synthetic_internal_call() {
        let r = one(fixture!("synthetic_internal_call"));
        assert_eq!(r.direction, Direction::Internal);
        assert_eq!(r.caller, "101");
        assert_eq!(r.callee.as_deref(), Some("102"));
        assert_eq!(r.agent.as_deref(), Some("102"));
        assert_eq!(r.disposition, Disposition::Answered);
        near(r.ring_s, 4.0);
        near(r.talk_s, 8.0);
    }

    #[test]
    fn synthetic_outbound_busy() {
        let r = one(fixture!("synthetic_outbound_busy"));
        recorded(&r);
        assert_eq!(r.direction, Direction::Outbound);
        assert_eq!(r.caller, "102");
        assert_eq!(r.callee.as_deref(), Some("+79031112233"));
        assert_eq!(r.disposition, Disposition::Busy);
        assert!(r.rang.is_empty());
        assert_eq!(r.answered_at, None);
        assert_eq!(r.talk_s, 0.0);
    }

    #[test]
    fn timestamp_headers_give_times_without_a_times_file() {
        // Asterisk with `timestampevents = yes`: every event carries epoch seconds.
        let ami = include_bytes!("../../../tests/fixtures/ami/direct_answered.ami");
        let times = include_str!("../../../tests/fixtures/ami/direct_answered.times");
        let mut out = Vec::new();
        for (t, m) in timed_messages(ami, Some(times)) {
            let secs = 1_795_426_662.0 + t.unwrap_or(0) as f64 / 1e9;
            let mut first = true;
            for (k, v) in m.headers() {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                if first {
                    out.extend_from_slice(format!("Timestamp: {secs:.6}\r\n").as_bytes());
                    first = false;
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        let r = one(replay(&out, None, "RU"));
        assert_eq!(r.disposition, Disposition::Answered);
        assert!(r.started_at.starts_with("2026-11-23T"), "{}", r.started_at);
        near(r.ring_s, 2.0);
        near(r.talk_s, 5.0);
    }

    #[test]
    fn replay_file_prints_one_json_line_per_call() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("capture.ami");
        let src = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ami/queue_abandoned"
        );
        std::fs::copy(format!("{src}.ami"), &path).expect("copy transcript");
        std::fs::copy(format!("{src}.times"), dir.path().join("capture.times"))
            .expect("copy times");
        let mut out = Vec::new();
        run_replay_file(&path, "RU", &mut out).expect("replay");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!(v["disposition"], "abandoned");
        assert_eq!(v["direction"], "inbound");
        assert_eq!(v["queue"], "sales");
        assert_eq!(v["caller"], "+79031112233");
        assert_eq!(v["rang"], serde_json::json!(["101", "102"]));
        assert!(v["agent"].is_null());
        assert!((v["ring_s"].as_f64().unwrap_or(0.0) - 8.0).abs() <= 1.0);
        assert_eq!(v["segments"], serde_json::json!([]));
        assert_eq!(v["hold_s"], 0.0);
        assert_eq!(
            v["cause"],
            serde_json::json!({"code": 0, "text": "Unknown"})
        );
        for k in [
            "call_id",
            "callee",
            "did",
            "started_at",
            "answered_at",
            "ended_at",
            "talk_s",
            "transfers",
            "recording",
            "segments",
            "hold_s",
            "cause",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert!(run_replay_file(&dir.path().join("missing.ami"), "RU", &mut Vec::new()).is_err());
    }

    #[test]
    fn replay_file_prints_one_attended_transfer_for_asterisk_22() {
        // What `ringside ami-replay attended_transfer.ami` prints.
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ami/attended_transfer.ami"
        ));
        let mut out = Vec::new();
        run_replay_file(path, "RU", &mut out).expect("replay");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!(
            v["transfers"],
            serde_json::json!([{"from": "101", "to": "102", "kind": "attended"}])
        );
        let agents: Vec<&str> = v["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .filter_map(|g| g["agent"].as_str())
            .collect();
        assert_eq!(agents, ["101", "102"]);
        assert_eq!(v["segments"][0]["started_at"], v["answered_at"]);
        assert_eq!(v["segments"][0]["ended_at"], v["segments"][1]["started_at"]);
        assert_eq!(v["segments"][1]["ended_at"], v["ended_at"]);
        let secs = |k: &serde_json::Value| k.as_f64().unwrap_or(f64::NAN);
        assert!(
            (secs(&v["segments"][1]["talk_s"]) - 12.007).abs() < 0.05,
            "{v}"
        );
        assert!((secs(&v["hold_s"]) - 11.792).abs() < 0.05, "{v}");
    }

    #[test]
    fn without_times_uses_replay_clock_and_keeps_outcome() {
        let recs = replay(
            include_bytes!("../../../tests/fixtures/ami/queue_answered.ami"),
            None,
            "RU",
        );
        let r = one(recs);
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.agent.as_deref(), Some("102"));
        assert!(r.talk_s < 1.0);
    }
}

#[cfg(test)]
mod burst_tests {
    use super::*;
    use crate::calls::Disposition;
    use crate::telephony::ami::synth::interleave;
    use std::collections::HashMap;

    #[test]
    fn burst_of_interleaved_calls_keeps_every_outcome() {
        let fx = |n: &str| {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/");
            (
                std::fs::read(format!("{dir}{n}.ami")).unwrap_or_default(),
                std::fs::read_to_string(format!("{dir}{n}.times")).unwrap_or_default(),
            )
        };
        let names = [
            "direct_answered",
            "direct_busy",
            "queue_abandoned",
            "queue_answered",
            "synthetic_attended_transfer",
        ];
        let files: Vec<_> = names.iter().map(|n| fx(n)).collect();
        let sources: Vec<(&[u8], &str)> = files.iter().map(|(a, t)| (&a[..], &t[..])).collect();
        // A new call every 50 ms: dozens of calls overlap at any moment.
        let burst = interleave(&sources, 60, 50_000_000);
        let recs = replay(&burst.ami, Some(&burst.times), "RU");
        assert_eq!(recs.len(), 300);
        let mut by_kind: HashMap<(Disposition, Option<String>), usize> = HashMap::new();
        for r in &recs {
            *by_kind.entry((r.disposition, r.agent.clone())).or_default() += 1;
        }
        assert_eq!(by_kind[&(Disposition::Answered, Some("101".into()))], 60);
        assert_eq!(by_kind[&(Disposition::Answered, Some("102".into()))], 120);
        assert_eq!(by_kind[&(Disposition::Busy, None)], 60);
        assert_eq!(by_kind[&(Disposition::Abandoned, None)], 60);
        let transferred = recs.iter().filter(|r| r.transfers.len() == 1).count();
        assert_eq!(transferred, 60);
        let mut ids: Vec<_> = recs.iter().map(|r| r.call_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 300, "every call reported once");
    }
}
