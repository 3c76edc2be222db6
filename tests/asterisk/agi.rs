//! FastAGI routing with the shipped `dialplans/extensions_ringside.conf`
//! loaded into Asterisk: the caller's owner first, the queue when the
//! owner is busy, the queue when Ringside is down.

use serde_json::json;

use crate::harness::{Conf, Pbx, Ringside, Tap};
use crate::require_asterisk;

/// A line the carrier calls that goes to `[ringside-inbound]`.
const ROUTED: &str = "74951239999";

#[tokio::test]
async fn fastagi_routes_owner_first_then_the_queue() {
    require_asterisk!();
    let mut conf = Conf::shipped();
    let pbx = Pbx::start("fastagi", &conf).await;
    let tap = Tap::start(&pbx).await;
    let rs = Ringside::start(&pbx, &[("RINGSIDE_AGI_BIND", "127.0.0.1:0")]).await;
    let agi = rs
        .app
        .agi
        .clone()
        .expect("Ringside reports its FastAGI address");
    conf.with_ringside_dialplan(&agi).replace(
        "extensions.conf",
        "exten => _[+0-9].,1,NoOp(Unknown DID",
        &format!(
            "exten => {ROUTED},1,Goto(ringside-inbound,${{EXTEN}},1)\n\nexten => _[+0-9].,1,NoOp(Unknown DID"
        ),
    );
    pbx.write_conf(&conf);
    let mark = pbx.log_mark();
    let out = pbx.cli("dialplan reload").await;
    assert!(out.contains("Dialplan reloaded"), "{out}");
    let shown = pbx.cli("dialplan show ringside-inbound").await;
    assert!(shown.contains("AGI(${RINGSIDE_AGI},${EXTEN})"), "{shown}");
    let errors = pbx.errors_since(mark);
    assert!(errors.is_empty(), "the reload logged errors: {errors:#?}");

    // owner first; anna (101) owns the caller
    let (s, v) = rs
        .app
        .post(
            &rs.manager.token,
            "/api/v1/routing/rules",
            json!({"kind": "sticky", "name": "Owner first", "priority": 10}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let anna = rs.agent("101");
    let (s, c) = rs
        .app
        .post(
            &anna.token,
            "/api/v1/contacts",
            json!({"name": "Hans Mueller", "phones": [{"number": "+4930123456"}]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");

    // 1. the owner's phone rings first and answers
    let mut p101 = pbx.phone("101", "agent_answer_hangup_3s", 1);
    let mut caller = pbx.call(ROUTED, "+4930123456", "Hans Mueller");
    let ring = anna.wait_frame("call.ringing", |_| true).await;
    let first = ring["call_id"].as_str().unwrap().to_owned();
    assert!(p101.finished().await && caller.finished().await);
    let row = rs.wait_call(&first).await;
    assert_eq!(row["agent"], "101", "{row}");
    assert!(
        rs.agent("102").of("call.ringing").is_empty()
            && rs.agent("103").of("call.ringing").is_empty(),
        "only the owner rang"
    );

    // 2. the owner's phone is busy: the support queue (102, 103) takes the call
    rs.wait_agent_state("101", "available").await;
    let mut p101 = pbx.phone("101", "agent_busy", 1);
    let _p102 = pbx.phone("102", "agent_answer_hangup_3s", 1);
    let _p103 = pbx.phone("103", "agent_answer_hangup_3s", 1);
    let mut caller = pbx.call(ROUTED, "+4930123456", "Hans Mueller");
    let ring = anna
        .wait_frame("call.ringing", |v| v["call_id"] != first.as_str())
        .await;
    let second = ring["call_id"].as_str().unwrap().to_owned();
    assert!(p101.finished().await, "101 refused busy");
    assert!(caller.finished().await, "the carrier");
    let row = rs.wait_call(&second).await;
    assert_eq!(row["disposition"], "answered", "{row}");
    assert!(row["agent"] == "102" || row["agent"] == "103", "{row}");
    assert_eq!(row["queue"], "support", "{row}");
    drop(_p102);
    drop(_p103);

    // 3. Ringside is down: Asterisk cannot reach FastAGI and queues the call
    drop(rs);
    let mark = pbx.log_mark();
    let _p102 = pbx.phone("102", "agent_answer_hangup_3s", 1);
    let _p103 = pbx.phone("103", "agent_answer_hangup_3s", 1);
    let mut caller = pbx.call(ROUTED, "+4930123456", "Hans Mueller");
    tap.wait_event("QueueCallerJoin", |e| {
        e.get("Queue").is_some_and(|q| q == "support")
            && e.get("CallerIDNum").is_some_and(|n| n == "+4930123456")
            && tap_joined_after(&tap, 2)
    })
    .await;
    tap.wait_event("AgentConnect", |e| {
        e.get("Queue").is_some_and(|q| q == "support")
    })
    .await;
    assert!(
        caller.finished().await,
        "the caller was answered by the queue"
    );
    let log = pbx.full_log();
    let since = &log[mark..];
    assert!(
        since
            .lines()
            .any(|l| l.contains("ringside-inbound:4] GotoIf(") && l.contains("\"1?queue\")")),
        "AGISTATUS was not SUCCESS, so the dialplan went to the queue:\n{since}"
    );
}

/// Whether the tap has seen at least `n` QueueCallerJoin events to support.
fn tap_joined_after(tap: &Tap, n: usize) -> bool {
    tap.events()
        .iter()
        .filter(|(_, e)| {
            e.get("Event").is_some_and(|v| v == "QueueCallerJoin")
                && e.get("Queue").is_some_and(|q| q == "support")
        })
        .count()
        >= n
}
