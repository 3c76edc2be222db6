//! Inbound calls through the bundled PBX's lines: the direct line of 101,
//! the ring-all `sales` queue, unanswered and busy phones.

use serde_json::json;

use crate::harness::{Conf, Pbx, Ringside, Tap};
use crate::require_asterisk;

/// The bundled PBX's lines (`conf/extensions.conf`).
pub const DIRECT_101: &str = "74957654321";
pub const SALES: &str = "74951234567";

/// A known caller on 101's direct line: only 101's phone rings, the card
/// names the contact, the call is logged once as answered by 101 with its
/// talk time, and MixMonitor's file is in the spool.
#[tokio::test]
async fn known_caller_on_the_direct_line_is_answered() {
    require_asterisk!();
    let pbx = Pbx::start("direct_answered", &Conf::shipped()).await;
    let tap = Tap::start(&pbx).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let anna = rs.agent("101");
    let (s, contact) = rs
        .app
        .post(
            &anna.token,
            "/api/v1/contacts",
            json!({"name": "Hans Mueller", "phones": [{"number": "+4930123456"}]}),
        )
        .await;
    assert_eq!(s, 201, "{contact}");

    let mut phone = pbx.phone("101", "agent_answer_hangup_6s", 1);
    let mut caller = pbx.call(DIRECT_101, "+4930123456", "Hans Mueller");

    let ring = anna.wait_frame("call.ringing", |_| true).await;
    assert_eq!(ring["agent"], "101", "{ring}");
    assert_eq!(ring["contact"]["id"], contact["id"], "the card: {ring}");
    let call_id = ring["call_id"].as_str().unwrap().to_owned();
    anna.wait_frame("call.answered", |v| v["call_id"] == call_id.as_str())
        .await;
    assert!(phone.finished().await, "101's phone scenario");
    assert!(caller.finished().await, "the carrier's scenario");
    let ended = anna
        .wait_frame("call.ended", |v| v["call_id"] == call_id.as_str())
        .await;
    assert_eq!(ended["disposition"], "answered", "{ended}");

    let row = rs.wait_call(&call_id).await;
    assert_eq!(row["direction"], "inbound", "{row}");
    assert_eq!(row["agent"], "101", "{row}");
    assert_eq!(row["disposition"], "answered", "{row}");
    let talk = row["talk_s"].as_f64().unwrap();
    assert!((4.0..12.0).contains(&talk), "talk {talk}: {row}");
    assert_eq!(rs.calls().await.len(), 1, "logged once");
    for ext in ["102", "103"] {
        assert!(
            rs.agent(ext).of("call.ringing").is_empty(),
            "{ext} was not rung and gets no card"
        );
    }
    let rec = pbx.recordings();
    assert!(
        rec.iter().any(|p| p.to_string_lossy().ends_with(".wav")),
        "MixMonitor's file in {}: {rec:?}",
        pbx.monitor_dir().display()
    );
    rs.wait_agent_state("101", "available").await;
    tap.save("direct_answered_e2e");
}
