//! New callers and missed calls through a real Asterisk: whose lead it is
//! (a `did` rule, else the managers in turn), one callback per caller
//! however often they miss us, and a queue's later rings carrying a lead
//! made while the caller waits.

use serde_json::{Value, json};

use crate::harness::{Conf, Pbx, Ringside, wait_for};
use crate::require_asterisk;
use crate::support::Tab;

const DIRECT_101: &str = "74957654321";
const SUPPORT: &str = "74951230000";

/// The shipped PBX with 101's direct line giving up after 3 s of ringing.
fn short_ringing() -> Conf {
    let mut conf = Conf::shipped();
    conf.replace(
        "extensions.conf",
        "Dial(PJSIP/101,20,tT)",
        "Dial(PJSIP/101,3,tT)",
    );
    conf
}

/// A second manager, created after maria (so a turn among managers starts
/// with maria), with an open tab.
async fn second_manager(rs: &Ringside) -> (i64, Tab) {
    let id = rs.app.add_user("zoe", "manager", None, &[]).await;
    let token = rs.app.login("zoe").await;
    (id, Tab::open(&rs.app, &token, None).await)
}

async fn lead_for(rs: &Ringside, e164: &str) -> Value {
    let leads = rs
        .wait_api("/api/v1/leads", |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|l| l["phone_e164"] == e164))
        })
        .await;
    leads
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["phone_e164"] == e164)
        .unwrap()
        .clone()
}

async fn open_callbacks_of_lead(rs: &Ringside, lead: &Value, missed: i64) -> Vec<Value> {
    let v = rs
        .wait_api("/api/v1/tasks?done=false", |v| {
            v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|t| t["lead_id"] == lead["id"] && t["missed_calls"] == missed)
            })
        })
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["lead_id"] == lead["id"])
        .cloned()
        .collect()
}

/// One unanswered call from `number` to 101's direct line.
async fn missed_on_the_direct_line(pbx: &Pbx, number: &str) {
    let mut phone = pbx.phone("101", "agent_ring_unanswered", 1);
    let mut caller = pbx.carrier("carrier_missed", DIRECT_101, number, "", &[]);
    assert!(caller.finished().await, "the carrier's scenario");
    assert!(phone.finished().await, "101's phone scenario");
}

#[tokio::test]
async fn an_unknown_caller_to_a_did_line_is_the_rules_managers_lead_with_a_callback() {
    require_asterisk!();
    let pbx = Pbx::start("leads_did", &short_ringing()).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let (zoe, mut zoe_tab) = second_manager(&rs).await;
    let (s, v) = rs
        .app
        .post(
            &rs.manager.token,
            "/api/v1/routing/rules",
            json!({"kind": "did", "name": "Direct line", "did": DIRECT_101, "target": {"user_id": zoe}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    missed_on_the_direct_line(&pbx, "+79265550101").await;
    let lead = lead_for(&rs, "+79265550101").await;
    assert_eq!(lead["manager_id"], zoe, "{lead}");
    let told = zoe_tab
        .until("lead.assigned", crate::harness::WAIT)
        .await
        .pop()
        .unwrap();
    assert_eq!(told["lead"]["id"], lead["id"], "{told}");
    let tasks = open_callbacks_of_lead(&rs, &lead, 1).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["assignee_id"], zoe, "{tasks:?}");
}

#[tokio::test]
async fn without_rules_new_callers_go_to_the_managers_in_turn() {
    require_asterisk!();
    let pbx = Pbx::start("leads_turn", &short_ringing()).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let (zoe, mut zoe_tab) = second_manager(&rs).await;

    missed_on_the_direct_line(&pbx, "+79265550201").await;
    let first = lead_for(&rs, "+79265550201").await;
    missed_on_the_direct_line(&pbx, "+79265550202").await;
    let second = lead_for(&rs, "+79265550202").await;
    assert_eq!(first["manager_id"], rs.manager.id, "{first}");
    assert_eq!(second["manager_id"], zoe, "{second}");
    rs.manager
        .wait_frame("lead.assigned", |v| v["lead"]["id"] == first["id"])
        .await;
    let told = zoe_tab
        .until("lead.assigned", crate::harness::WAIT)
        .await
        .pop()
        .unwrap();
    assert_eq!(told["lead"]["id"], second["id"], "{told}");
    for lead in [&first, &second] {
        let tasks = open_callbacks_of_lead(&rs, lead, 1).await;
        assert_eq!(tasks[0]["assignee_id"], lead["manager_id"], "{tasks:?}");
    }
}

#[tokio::test]
async fn a_caller_missing_three_times_at_once_has_one_callback_counting_three() {
    require_asterisk!();
    let pbx = Pbx::start("leads_three_misses", &short_ringing()).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let mut phone = pbx.phone("101", "agent_ring_unanswered", 3);
    let mut caller = pbx.carrier(
        "carrier_missed",
        DIRECT_101,
        "+79265550303",
        "",
        &["-m", "3", "-l", "3", "-r", "3"],
    );
    assert!(caller.finished().await, "the carrier's scenario");
    assert!(phone.finished().await, "101's phone scenario");
    rs.wait_calls(3).await;
    let lead = lead_for(&rs, "+79265550303").await;
    let tasks = open_callbacks_of_lead(&rs, &lead, 3).await;
    assert_eq!(tasks.len(), 1, "one callback: {tasks:?}");
    assert_eq!(tasks[0]["missed_calls"], 3, "{tasks:?}");
    let leads = rs.get("/api/v1/leads").await;
    assert_eq!(leads.as_array().unwrap().len(), 1, "{leads}");
}

/// The `support` queue (rrmemory, 102 and 103) rings one member at a time;
/// a lead made for the caller after the first ring is on the next one.
#[tokio::test]
async fn a_lead_made_while_the_caller_waits_in_the_queue_is_on_the_next_ring() {
    require_asterisk!();
    let mut conf = Conf::shipped();
    conf.replace(
        "queues.conf",
        "timeout = 15\nretry = 2",
        "timeout = 3\nretry = 1",
    );
    let pbx = Pbx::start("leads_queue_card", &conf).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let _p102 = pbx.phone("102", "agent_ring_unanswered", 0);
    let _p103 = pbx.phone("103", "agent_ring_unanswered", 0);
    let _caller = pbx.call(SUPPORT, "+79265550404", "");
    let (first_ext, first) = wait_for("the queue's first ring", || async {
        ["102", "103"].into_iter().find_map(|ext| {
            rs.agent(ext)
                .of("call.ringing")
                .into_iter()
                .next()
                .map(|v| (ext, v))
        })
    })
    .await;
    assert_eq!(first["match"], "none", "{first}");
    let (s, lead) = rs
        .app
        .post(
            &rs.manager.token,
            "/api/v1/leads",
            json!({"name": "Waiting in the queue", "phone": "+7 926 555-04-04"}),
        )
        .await;
    assert_eq!(s, 201, "{lead}");
    let next_ext = if first_ext == "102" { "103" } else { "102" };
    let call_id = first["call_id"].clone();
    let later = rs
        .agent(next_ext)
        .wait_frame("call.ringing", |v| v["call_id"] == call_id)
        .await;
    assert_eq!(later["lead"]["id"], lead["id"], "{later}");
    assert_eq!(later["match"], "exact", "{later}");
}
