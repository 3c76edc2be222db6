//! Many calls at once and an Asterisk restart under a live call.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use crate::calls::DIRECT_101;
use crate::harness::{Conf, Pbx, Ringside, Tap, items, wait_for};
use crate::require_asterisk;

/// 30 callers at 5 calls/s on 101's direct line, each answered: every call
/// is logged exactly once, 101 got one card per call, nobody else any.
/// Prints the pop latency from Asterisk's `DialBegin` (as the tap saw it
/// arrive) to 101's `call.ringing` frame.
#[tokio::test]
async fn burst_of_30_calls_at_5_per_second() {
    require_asterisk!();
    const N: usize = 30;
    let pbx = Pbx::start("burst", &Conf::shipped()).await;
    let tap = Tap::start(&pbx).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let csv = pbx.sipp_dir().join("callers.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    writeln!(f, "SEQUENTIAL").unwrap();
    for i in 0..N {
        writeln!(f, "+49301000{i:03};Caller {i}").unwrap();
    }
    drop(f);
    let _p101 = pbx.phone("101", "agent_answer_hangup_3s", 0);
    let csv = csv.to_string_lossy().into_owned();
    let mut carrier = pbx.carrier(
        "carrier_inf",
        DIRECT_101,
        "",
        "",
        &["-inf", &csv, "-r", "5", "-m", &N.to_string(), "-l", "40"],
    );
    assert!(carrier.finished().await, "every call of the burst passed");
    let rows = rs.wait_calls(N).await;
    let ids: BTreeSet<&str> = rows.iter().filter_map(|r| r["call_id"].as_str()).collect();
    assert_eq!(ids.len(), N, "each call once");
    assert_eq!(rows.len(), N, "no call twice");
    let callers: BTreeSet<&str> = rows.iter().filter_map(|r| r["caller"].as_str()).collect();
    assert_eq!(callers.len(), N, "{callers:?}");
    assert!(
        rows.iter()
            .all(|r| r["disposition"] == "answered" && r["agent"] == "101")
    );
    let anna = rs.agent("101");
    wait_for("101's last call to end", || async {
        (anna.of("call.ended").len() >= N).then_some(())
    })
    .await;
    let rung: BTreeSet<String> = anna
        .of("call.ringing")
        .iter()
        .filter_map(|v| v["call_id"].as_str().map(str::to_owned))
        .collect();
    let logged: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
    assert_eq!(rung, logged, "a card for every call that rang 101");
    for ext in ["102", "103"] {
        assert!(
            rs.agent(ext).of("call.ringing").is_empty(),
            "{ext} not rung"
        );
    }
    rs.wait_agent_state("101", "available").await;

    // DialBegin to PJSIP/101 (tap arrival) → first call.ringing frame for the call
    let mut dial = BTreeMap::new();
    for (at, e) in tap.events() {
        if e.get("Event").is_some_and(|n| n == "DialBegin")
            && e.get("DestChannel")
                .is_some_and(|c| c.starts_with("PJSIP/101-"))
            && let Some(id) = e.get("DestLinkedid")
        {
            dial.entry(id.clone()).or_insert(at);
        }
    }
    let mut lat: Vec<Duration> = Vec::new();
    for fr in anna.frames() {
        if fr.v["type"] == "call.ringing"
            && let Some(at) = fr.v["call_id"].as_str().and_then(|id| dial.remove(id))
        {
            lat.push(fr.at.saturating_duration_since(at));
        }
    }
    assert_eq!(lat.len(), N, "a DialBegin for every card");
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    let _ = writeln!(
        std::io::stderr(),
        "pop latency DialBegin → call.ringing over {N} calls: p50 {:?}, p95 {:?}, max {:?}",
        p(0.5),
        p(0.95),
        lat[lat.len() - 1]
    );
    tap.save("burst_30_at_5ps");
}

/// `core restart now` while 101 talks to a caller: Asterisk hangs the call
/// up and re-executes; Ringside logs the call once, ended, and 101 is
/// available again.
#[tokio::test]
async fn core_restart_with_a_call_up() {
    require_asterisk!();
    let pbx = Pbx::start("core_restart", &Conf::shipped()).await;
    let tap = Tap::start(&pbx).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let _p101 = pbx.phone("101", "agent_answer_await_bye", 1);
    let _caller = pbx.call(DIRECT_101, "+4930123456", "Hans Mueller");
    let anna = rs.agent("101");
    let ring = anna.wait_frame("call.ringing", |_| true).await;
    let call_id = ring["call_id"].as_str().unwrap().to_owned();
    anna.wait_frame("call.answered", |v| v["call_id"] == call_id.as_str())
        .await;
    rs.wait_agent_state("101", "on_call").await;
    pbx.restart_now().await;
    rs.wait_ami_up(&pbx).await;
    let row = rs.wait_call(&call_id).await;
    assert!(row["ended_at"].is_string(), "{row}");
    assert_eq!(row["agent"], "101", "{row}");
    assert_eq!(row["disposition"], "answered", "{row}");
    anna.wait_frame("call.ended", |v| v["call_id"] == call_id.as_str())
        .await;
    rs.wait_agent_state("101", "available").await;
    let rows = items(&rs.get("/api/v1/calls?limit=200").await);
    assert_eq!(rows.len(), 1, "logged once: {rows:?}");
    assert_eq!(anna.of_call("call.ended", &call_id).len(), 1);
    tap.save("core_restart_call_up");
}
