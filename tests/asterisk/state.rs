//! Agent state in step with the PBX: queue pauses both ways for a PJSIP and
//! a Local (FreePBX-style) member, a paused agent not rung by a ring-all
//! queue, a phone that stops answering shown unreachable and skipped by
//! routing, and the numbers a click-to-call shows on each side.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::calls::SALES;
use crate::harness::{Conf, Pbx, Ringside, items, wait_for, wait_within};
use crate::require_asterisk;

/// Whether `queue show QUEUE` lists `member` as paused (or not).
async fn paused_in(pbx: &Pbx, queue: &str, member: &str, paused: bool) -> Option<()> {
    let out = pbx.cli(&format!("queue show {queue}")).await;
    out.lines()
        .any(|l| l.contains(member) && l.contains("paused") == paused)
        .then_some(())
}

async fn set_state(rs: &Ringside, token: &str, body: Value) -> (u16, Value) {
    rs.app.send("PUT", token, "/api/v1/me/state", body).await
}

fn queue<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["queues"].as_array()?.iter().find(|q| q["queue"] == name)
}

#[tokio::test]
async fn pauses_go_both_ways_for_pjsip_and_local_members_and_a_paused_agent_is_not_rung() {
    require_asterisk!();
    let pbx = Pbx::start("pause_both_ways", &Conf::shipped()).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let anna = rs.agent("101");

    // Membership from QueueStatus on connect: the PJSIP and the Local member.
    let me = wait_for("anna's queues from QueueStatus", || async {
        let (_, v) = rs.app.get(&anna.token, "/api/v1/me/state").await;
        (queue(&v, "sales").is_some() && queue(&v, "sales-local").is_some()).then_some(v)
    })
    .await;
    assert_eq!(
        queue(&me, "sales-local").unwrap()["interface"],
        "Local/101@from-queue/n"
    );

    // Ringside's pause reaches both members, each by its own interface.
    let (s, v) = set_state(
        &rs,
        &anna.token,
        json!({"state": "paused", "reason": "lunch"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    wait_for("PJSIP/101 paused in sales", || {
        paused_in(&pbx, "sales", "PJSIP/101", true)
    })
    .await;
    wait_for("the Local member paused in sales-local", || {
        paused_in(&pbx, "sales-local", "Local/101@from-queue/n", true)
    })
    .await;

    // Paused in the ring-all queue: 102 rings and answers, 101 is not rung.
    let mut p102 = pbx.phone("102", "agent_answer_hangup_3s", 1);
    let mut caller = pbx.call(SALES, "+4930123456", "Hans Mueller");
    let ring = rs.agent("102").wait_frame("call.ringing", |_| true).await;
    let call_id = ring["call_id"].as_str().unwrap().to_owned();
    assert!(p102.finished().await && caller.finished().await);
    let row = rs.wait_call(&call_id).await;
    assert_eq!(row["agent"], "102", "{row}");
    assert_eq!(
        row["rang"],
        json!(["102"]),
        "a paused 101 is not rung: {row}"
    );
    assert!(
        anna.of("call.ringing").is_empty(),
        "no pop for the paused agent"
    );

    let (s, v) = set_state(&rs, &anna.token, json!({"state": "available"})).await;
    assert_eq!(s, 200, "{v}");
    wait_for("PJSIP/101 unpaused in sales", || {
        paused_in(&pbx, "sales", "PJSIP/101", false)
    })
    .await;
    wait_for("the Local member unpaused", || {
        paused_in(&pbx, "sales-local", "Local/101@from-queue/n", false)
    })
    .await;
    rs.wait_agent_state("101", "available").await;

    // A pause made on the PBX: the agent's tab and the API within a second.
    for (member, queue_name, reason) in [
        ("PJSIP/101", "sales", "phonebreak"),
        ("Local/101@from-queue/n", "sales-local", "coffee"),
    ] {
        let seen = anna.frames().len();
        pbx.cli(&format!(
            "queue pause member {member} queue {queue_name} reason {reason}"
        ))
        .await;
        let t = Instant::now();
        wait_within(
            Duration::from_secs(1),
            "the PBX's pause on anna's tab",
            || async {
                anna.frames()[seen..]
                    .iter()
                    .any(|f| {
                        f.v["type"] == "agent.state"
                            && f.v["state"] == "paused"
                            && f.v["reason"] == reason
                    })
                    .then_some(())
            },
        )
        .await;
        eprintln!(
            "{member}: PBX pause seen on the tab after {:?}",
            t.elapsed()
        );
        let v = rs
            .wait_api("/api/v1/agents", |v| {
                items(v).iter().any(|a| {
                    a["login"] == "anna" && a["state"] == "paused" && a["reason"] == reason
                })
            })
            .await;
        let a = items(&v)
            .into_iter()
            .find(|a| a["login"] == "anna")
            .unwrap();
        assert_eq!(queue(&a, queue_name).unwrap()["paused"], true, "{a}");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        let seen = anna.frames().len();
        pbx.cli(&format!("queue unpause member {member} queue {queue_name}"))
            .await;
        wait_within(
            Duration::from_secs(1),
            "the PBX's unpause on anna's tab",
            || async {
                anna.frames()[seen..]
                    .iter()
                    .any(|f| f.v["type"] == "agent.state" && f.v["state"] == "available")
                    .then_some(())
            },
        )
        .await;
    }
}

/// The bundled PBX with 101's contact qualified every second.
fn qualified() -> Conf {
    let mut conf = Conf::shipped();
    conf.replace(
        "pjsip.conf",
        "contact = sip:101@127.0.0.1:@PHONE_101@",
        "contact = sip:101@127.0.0.1:@PHONE_101@\nqualify_frequency = 1\nqualify_timeout = 0.5",
    );
    conf
}

#[tokio::test]
async fn a_stopped_phone_is_unreachable_skipped_by_routing_and_back_when_it_answers() {
    require_asterisk!();
    let mut conf = qualified();
    let pbx = Pbx::start("phone_state", &conf).await;
    let mut p101 = pbx.phone("101", "agent_answer_hangup_3s", 0);
    let rs = Ringside::start(&pbx, &[("RINGSIDE_AGI_BIND", "127.0.0.1:0")]).await;
    let agi = rs.app.agi.clone().expect("FastAGI address");
    const ROUTED: &str = "74951239999";
    conf.with_ringside_dialplan(&agi).replace(
        "extensions.conf",
        "exten => _[+0-9].,1,NoOp(Unknown DID",
        &format!(
            "exten => {ROUTED},1,Goto(ringside-inbound,${{EXTEN}},1)\n\nexten => _[+0-9].,1,NoOp(Unknown DID"
        ),
    );
    pbx.write_conf(&conf);
    assert!(
        pbx.cli("dialplan reload")
            .await
            .contains("Dialplan reloaded")
    );
    let anna = rs.agent("101");
    rs.wait_agent_state("101", "available").await;

    // Anna owns the caller and the owner goes first.
    let (s, v) = rs
        .app
        .post(
            &rs.manager.token,
            "/api/v1/routing/rules",
            json!({"kind": "sticky", "name": "Owner first", "priority": 10}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, c) = rs
        .app
        .post(
            &anna.token,
            "/api/v1/contacts",
            json!({"name": "Hans Mueller", "phones": [{"number": "+4930123456"}]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");

    // The phone stops: unreachable on her tab and for the manager.
    let seen = anna.frames().len();
    p101.stop();
    let f = wait_for("anna unreachable after her phone stopped", || async {
        anna.frames()[seen..]
            .iter()
            .find(|f| f.v["type"] == "agent.state" && f.v["phone"] == "unreachable")
            .map(|f| f.v.clone())
    })
    .await;
    assert_eq!(f["state"], "unreachable", "{f}");
    rs.wait_agent_state("101", "unreachable").await;

    // Routing does not offer her: the queue (102, 103) takes the call.
    let _p102 = pbx.phone("102", "agent_answer_hangup_3s", 1);
    let _p103 = pbx.phone("103", "agent_answer_hangup_3s", 1);
    let mut caller = pbx.call(ROUTED, "+4930123456", "Hans Mueller");
    assert!(caller.finished().await, "the carrier");
    let rows = rs.wait_calls(1).await;
    assert!(
        rows[0]["agent"] == "102" || rows[0]["agent"] == "103",
        "{:?}",
        rows[0]
    );
    let rang: Vec<&str> = rows[0]["rang"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !rang.contains(&"101"),
        "the unreachable owner was not dialled: {rang:?}"
    );

    // It answers again: available by itself.
    let _p101 = pbx.phone("101", "agent_answer_hangup_3s", 0);
    let f = anna
        .wait_frame("agent.state", |v| {
            v["state"] == "available" && v["phone"].is_null()
        })
        .await;
    assert!(f["phone"].is_null(), "{f}");
}

#[tokio::test]
async fn click_to_call_shows_the_agent_whom_they_call_and_the_customer_the_presented_number() {
    require_asterisk!();
    let mut conf = Conf::shipped();
    conf.with_ringside_dialplan("127.0.0.1:9").replace(
        "extensions_ringside.conf",
        "RINGSIDE_OUTBOUND=from-internal",
        "RINGSIDE_OUTBOUND=from-agents",
    );
    let pbx = Pbx::start("click_to_call_caller_id", &conf).await;
    let rs = Ringside::start(
        &pbx,
        &[
            ("RINGSIDE_PBX_ORIGINATE_CONTEXT", "ringside-click-to-call"),
            ("RINGSIDE_PBX_PRESENTED_NUMBER", "+74950001122"),
        ],
    )
    .await;
    let anna = rs.agent("101");
    let (s, c) = rs
        .app
        .post(
            &anna.token,
            "/api/v1/contacts",
            json!({"name": "Olga Petrova", "phones": [{"number": "+74951112233"}]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let mut phone = pbx.phone("101", "agent_answer_hangup_3s", 1);
    let mut trunk = pbx.trunk("agent_answer_await_bye", 1);
    let (s, v) = rs
        .app
        .post(
            &anna.token,
            "/api/v1/calls/dial",
            json!({"number": "+74951112233"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert!(trunk.finished().await, "the customer's phone");
    assert!(phone.finished().await, "the agent's phone");
    let to_agent = first_invite(&phone.messages());
    let from = header(&to_agent, "From");
    assert!(
        from.contains("+74951112233") && from.contains("Olga Petrova"),
        "the agent's phone shows whom they call: {from}\n{to_agent}"
    );
    let to_customer = first_invite(&trunk.messages());
    let from = header(&to_customer, "From");
    assert!(
        from.contains("+74950001122") && !from.contains("101"),
        "the customer sees the presented number: {from}\n{to_customer}"
    );
}

/// The first INVITE in a SIPp message trace.
fn first_invite(trace: &str) -> String {
    let start = trace.find("INVITE sip:").expect("an INVITE in the trace");
    let rest = &trace[start..];
    let end = rest
        .find("\n\n")
        .or_else(|| rest.find("\r\n\r\n"))
        .unwrap_or(rest.len());
    rest[..end].to_owned()
}

fn header(msg: &str, name: &str) -> String {
    msg.lines()
        .find(|l| {
            l.split_once(':')
                .is_some_and(|(h, _)| h.trim().eq_ignore_ascii_case(name))
        })
        .unwrap_or_default()
        .to_owned()
}
