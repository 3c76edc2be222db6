//! Click-to-call through the bundled PBX, whose agents dial out from
//! `from-agents`: Ringside rings the agent's phone, Asterisk dials the
//! customer over the trunk once the agent answers, and the agent is free for
//! the next call afterwards. A context the PBX does not have is reported as
//! the PBX's refusal, not as a missing PBX.

use serde_json::{Value, json};

use crate::calls::DIRECT_101;
use crate::harness::{Conf, Pbx, Ringside, Tap, wait_for};
use crate::require_asterisk;

/// Posts a click-to-call as `token` until Ringside's AMI link is up (503
/// until then); returns the first other answer.
async fn dial(rs: &Ringside, token: &str, number: &str) -> (u16, Value) {
    wait_for(
        "an answer other than 503 pbx_unavailable to the click-to-call",
        || async {
            let (s, v) = rs
                .app
                .post(token, "/api/v1/calls/dial", json!({ "number": number }))
                .await;
            (s != 503).then_some((s, v))
        },
    )
    .await
}

#[tokio::test]
async fn click_to_call_from_the_agents_context_rings_the_agent_then_the_customer() {
    require_asterisk!();
    let pbx = Pbx::start("click_to_call", &Conf::shipped()).await;
    let tap = Tap::start(&pbx).await;
    let rs = Ringside::start(
        &pbx,
        &[
            ("RINGSIDE_PBX_ORIGINATE_CONTEXT", "from-agents"),
            ("RINGSIDE_WRAP_UP_SECONDS", "1"),
        ],
    )
    .await;
    let anna = rs.agent("101");

    // The agent answers after 2 s; the customer answers after 2 s, talks
    // 6 s and hangs up, and Asterisk hangs up the agent.
    let mut phone = pbx.phone("101", "agent_answer_hangup_12s", 1);
    let mut customer = pbx.trunk("agent_answer_hangup_6s", 1);
    let (s, v) = dial(&rs, &anna.token, "8 (903) 111-22-33").await;
    assert_eq!(s, 202, "{v}");

    tap.wait_event("OriginateResponse", |e| {
        e.get("Response").map(String::as_str) == Some("Success")
    })
    .await;
    assert!(customer.finished().await, "the customer's side");
    assert!(phone.finished().await, "101's phone");
    let invite = customer.messages();
    assert!(
        invite.contains("INVITE sip:+79031112233@"),
        "the trunk is asked for the dialled number:\n{invite}"
    );

    let rows = rs.wait_calls(1).await;
    let row = &rows[0];
    assert_eq!(row["direction"], "outbound", "{row}");
    assert_eq!(row["agent"], "101", "{row}");
    assert_eq!(row["agent_user_id"], anna.id, "{row}");
    assert_eq!(row["callee"], "+79031112233", "{row}");
    assert_eq!(row["disposition"], "answered", "{row}");
    let first = row["call_id"].as_str().unwrap().to_owned();
    rs.wait_agent_state("101", "available").await;

    // The next inbound call pops on the agent's screen.
    let mut phone = pbx.phone("101", "agent_answer_hangup_6s", 1);
    let mut caller = pbx.call(DIRECT_101, "+4930123456", "Hans Mueller");
    let ring = anna
        .wait_frame("call.ringing", |v| v["call_id"] != first.as_str())
        .await;
    assert_eq!(ring["agent"], "101", "{ring}");
    assert!(phone.finished().await && caller.finished().await);
    assert_eq!(rs.wait_calls(2).await.len(), 2, "both calls logged once");
    tap.save("click_to_call_e2e");
}

#[tokio::test]
async fn click_to_call_into_a_context_the_pbx_lacks_is_refused_by_the_pbx() {
    require_asterisk!();
    let pbx = Pbx::start("click_to_call_refused", &Conf::shipped()).await;
    // The default context, from-internal, is not in the bundled dialplan.
    let rs = Ringside::start(&pbx, &[]).await;
    let anna = rs.agent("101");
    let (s, v) = dial(&rs, &anna.token, "+7 903 111 22 33").await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["code"], "dial_refused", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Extension does not exist") && message.contains("from-internal"),
        "{message}"
    );

    // The link is fine: the agent's pause reaches the queues.
    let (s, v) = rs
        .app
        .send(
            "PUT",
            &anna.token,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    wait_for("101 paused in the sales queue", || async {
        let out = pbx.cli("queue show sales").await;
        out.lines()
            .any(|l| l.contains("PJSIP/101") && l.contains("paused"))
            .then_some(())
    })
    .await;
}
