//! Transfers made on the phones with the PBX's feature codes: `#1` blind,
//! `*2` attended (`conf/features.conf`).

use crate::calls::DIRECT_101;
use crate::harness::{Conf, Pbx, Ringside, Tap};
use crate::require_asterisk;

fn exts(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["agent"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// 101 answers, presses `#1 102`: 102's phone rings with the caller's card
/// and answers; one call, agent 102, one blind transfer 101 → 102.
#[tokio::test]
async fn blind_transfer_from_101_to_102() {
    require_asterisk!();
    let pbx = Pbx::start("blind_transfer", &Conf::shipped()).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let mut p101 = pbx.phone("101", "agent_blind_transferer", 1);
    let mut p102 = pbx.phone("102", "agent_answer_hangup_6s", 1);
    let mut caller = pbx.call(DIRECT_101, "+4930123456", "Hans Mueller");
    let r1 = rs.agent("101").wait_frame("call.ringing", |_| true).await;
    let call_id = r1["call_id"].as_str().unwrap().to_owned();
    let r2 = rs
        .agent("102")
        .wait_frame("call.ringing", |v| v["call_id"] == call_id.as_str())
        .await;
    assert_eq!(r2["caller"]["number"], "+4930123456", "{r2}");
    rs.agent("102")
        .wait_frame("call.answered", |v| v["call_id"] == call_id.as_str())
        .await;
    assert!(p101.finished().await, "101's phone");
    assert!(p102.finished().await, "102's phone");
    assert!(caller.finished().await, "the carrier");
    let row = rs.wait_call(&call_id).await;
    assert_eq!(row["agent"], "102", "{row}");
    assert_eq!(row["disposition"], "answered", "{row}");
    let t = row["transfers"].as_array().unwrap();
    assert_eq!(t.len(), 1, "{row}");
    assert_eq!(
        (
            t[0]["from"].as_str(),
            t[0]["to"].as_str(),
            t[0]["kind"].as_str()
        ),
        (Some("101"), Some("102"), Some("blind")),
        "{row}"
    );
    assert_eq!(exts(&row["segments"]), ["101", "102"], "{row}");
    assert_eq!(rs.calls().await.len(), 1);
    rs.wait_agent_state("101", "available").await;
    rs.wait_agent_state("102", "available").await;
}

/// 101 answers, presses `*2 102`, consults 102 and hangs up: one call,
/// agent 102, ONE attended transfer, segments 101 then 102, the caller's
/// time on hold (music from the `*2` to the merge) counted.
#[tokio::test]
async fn attended_transfer_from_101_to_102() {
    require_asterisk!();
    let pbx = Pbx::start("attended_transfer", &Conf::shipped()).await;
    let tap = Tap::start(&pbx).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let mut p101 = pbx.phone("101", "agent_attended_transferer", 1);
    let mut p102 = pbx.phone("102", "agent_answer_hangup_12s", 1);
    let mut caller = pbx.call(DIRECT_101, "+4930123456", "Hans Mueller");
    let r1 = rs.agent("101").wait_frame("call.ringing", |_| true).await;
    let call_id = r1["call_id"].as_str().unwrap().to_owned();
    assert!(p101.finished().await, "101's phone");
    assert!(p102.finished().await, "102's phone");
    assert!(caller.finished().await, "the carrier");
    tap.wait_event("AttendedTransfer", |e| {
        e.get("Result").is_some_and(|r| r == "Success")
    })
    .await;
    let row = rs.wait_call(&call_id).await;
    assert_eq!(row["agent"], "102", "{row}");
    let t = row["transfers"].as_array().unwrap();
    assert_eq!(t.len(), 1, "one transfer: {row}");
    assert_eq!(
        (
            t[0]["from"].as_str(),
            t[0]["to"].as_str(),
            t[0]["kind"].as_str()
        ),
        (Some("101"), Some("102"), Some("attended")),
        "{row}"
    );
    assert_eq!(exts(&row["segments"]), ["101", "102"], "{row}");
    let hold = row["hold_s"].as_f64().unwrap_or(0.0);
    assert!(
        hold >= 3.0,
        "the caller heard music during the consultation: {row}"
    );
    assert_eq!(rs.calls().await.len(), 1);
    rs.agent("102")
        .wait_frame("call.ended", |v| v["call_id"] == call_id.as_str())
        .await;
    rs.wait_agent_state("101", "available").await;
    rs.wait_agent_state("102", "available").await;
    tap.save("attended_transfer_e2e");
}
