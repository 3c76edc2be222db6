//! Finished calls from the outside: captured Asterisk traffic replayed into
//! the running server leaves one timeline entry per call, turns unknown
//! callers into leads for the right manager, missed calls into one callback
//! task, and a later call that reaches the customer closes that task.

mod support;

use std::time::Duration;

use ringside::telephony::ami::fake::{FakeAmi, FakeScript, FakeState, Pace};
use serde_json::{Value, json};
use support::{Tab, TestApp};

const WAIT: Duration = Duration::from_secs(20);

/// A fake Asterisk playing `traces` one after the other at four times the
/// recorded pace, two seconds after the server logs in (time to set up cards).
async fn pbx(traces: &[&str]) -> FakeAmi {
    let speed = 4.0;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/");
    let mut script: Option<FakeScript> = None;
    for t in traces {
        let ami = std::fs::read(format!("{dir}{t}.ami")).unwrap();
        let times = std::fs::read_to_string(format!("{dir}{t}.times")).unwrap();
        let mut next = FakeScript::from_transcript(&ami, &times);
        match script.as_mut() {
            None => {
                let hold = (2.0 * speed * 1e9) as u64;
                for (t, _) in next.events.iter_mut().skip(1) {
                    *t += hold;
                }
                next.pace = Pace::Recorded { speed };
                script = Some(next)
            }
            Some(s) => {
                let base = s.events.last().map_or(0, |e| e.0) + 1_000_000_000;
                s.events
                    .extend(next.events.into_iter().skip(1).map(|(t, m)| (t + base, m)));
            }
        }
    }
    FakeAmi::start_on(
        "127.0.0.1:0".parse().unwrap(),
        FakeState::new(script.unwrap()),
    )
    .await
    .unwrap()
}

async fn wait_for<F: Fn(&Value) -> bool>(app: &TestApp, token: &str, path: &str, ok: F) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, v) = app.get(token, path).await;
        if ok(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{path}: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_unknown_caller_who_gave_up_becomes_one_lead_with_one_callback() {
    let fake = pbx(&["queue_abandoned"]).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", &fake.url()),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("boris", "agent", None, &["102"]).await;
    let maria = app.add_user("maria", "manager", None, &["110"]).await;
    let admin = app.login("maria").await;
    let (s, v) = app
        .post(&admin, "/api/v1/routing/rules",
              json!({"kind": "prefix", "name": "Russia", "prefix": "+7", "target": {"user_id": maria}}))
        .await;
    assert_eq!(s, 201, "{v}");
    let mut maria_tab = Tab::open(&app, &admin, None).await;
    fake.state().finished().await;

    let leads = wait_for(&app, &admin, "/api/v1/leads", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(leads.as_array().unwrap().len(), 1, "{leads}");
    let lead = &leads[0];
    assert_eq!(lead["phone_e164"], "+79031112233");
    assert_eq!(lead["manager_id"], maria);
    assert_eq!(lead["source"], "call");
    let id = lead["id"].as_i64().unwrap();
    let tasks = wait_for(&app, &admin, "/api/v1/tasks?done=false", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let tasks = tasks.as_array().unwrap();
    assert_eq!(
        tasks.len(),
        1,
        "one callback, not one per rung agent: {tasks:?}"
    );
    assert_eq!(tasks[0]["lead_id"], id);
    assert_eq!(tasks[0]["assignee_id"], maria);
    assert!(tasks[0]["due_at"].is_string());
    let msgs = maria_tab.until("task.created", WAIT).await;
    let assigned: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["type"] == "lead.assigned")
        .collect();
    assert_eq!(assigned.len(), 1, "{msgs:?}");
    assert_eq!(assigned[0]["lead"]["id"], id);
    let (_, timeline) = app
        .get(&admin, &format!("/api/v1/leads/{id}/activities"))
        .await;
    let calls: Vec<&Value> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "call")
        .collect();
    assert_eq!(calls.len(), 1, "{timeline}");
    assert_eq!(calls[0]["payload"]["disposition"], "abandoned");
}

#[tokio::test]
async fn the_same_calls_twice_change_nothing_and_a_reached_customer_closes_the_callback() {
    // A missed call from Ivan, then an answered one: the second closes the first's task.
    let fake = pbx(&["direct_no_answer", "direct_answered"]).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", &fake.url()),
    ])
    .await;
    let anna_id = app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let (_, c) = app
        .post(
            &anna,
            "/api/v1/contacts",
            json!({"name": "Иван Петров", "phones": [{"number": "89161234567"}]}),
        )
        .await;
    let ivan = c["id"].as_i64().unwrap();
    fake.state().finished().await;
    let path = format!("/api/v1/contacts/{ivan}/activities");
    let timeline = wait_for(&app, &anna, &path, |v| {
        v["items"]
            .as_array()
            .is_some_and(|a| a.iter().filter(|x| x["kind"] == "call").count() == 2)
    })
    .await;
    let (_, tasks) = app
        .get(&anna, &format!("/api/v1/tasks?contact_id={ivan}"))
        .await;
    let tasks = tasks.as_array().unwrap().clone();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["assignee_id"], anna_id, "the owner calls back");
    assert_eq!(tasks[0]["done"], true, "closed by the answered call");
    let answered = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "call" && a["payload"]["disposition"] == "answered")
        .unwrap()
        .clone();
    assert_eq!(
        answered["payload"]["callbacks_closed"][0]["task_id"],
        tasks[0]["id"]
    );

    // The same transcript again (a reconnect replaying history): nothing new.
    drop(fake);
    let again = pbx(&["direct_no_answer", "direct_answered"]).await;
    let second = TestApp::spawn_beside(
        &app,
        &[
            ("RINGSIDE_DEFAULT_REGION", "RU"),
            ("RINGSIDE_AMI_URL", &again.url()),
        ],
    )
    .await;
    again.state().finished().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = second.get(&anna, &path).await;
    assert_eq!(
        after["items"].as_array().unwrap().len(),
        timeline["items"].as_array().unwrap().len(),
        "{after}"
    );
    let (_, tasks) = second
        .get(&anna, &format!("/api/v1/tasks?contact_id={ivan}"))
        .await;
    assert_eq!(tasks.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_pbx_without_ami_posts_call_events_and_gets_the_same_pops_and_log() {
    let token = "cti-secret-0123456789";
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "DE"),
        ("RINGSIDE_CTI_TOKENS", &format!("threecx={token}")),
    ])
    .await;
    app.add_user("clara", "agent", None, &["103"]).await;
    let clara = app.login("clara").await;
    let (_, c) = app
        .post(
            &clara,
            "/api/v1/contacts",
            json!({"name": "Lukas Müller", "phones": [{"number": "030 123456"}]}),
        )
        .await;
    let lukas = c["id"].as_i64().unwrap();
    let mut tab = Tab::open(&app, &clara, None).await;

    // Wrong or missing token, unknown event, hangup of an unknown call.
    let (s, _) = app
        .post(
            "nope",
            "/api/v1/cti/events",
            json!({"event": "newCall", "call_id": "1", "from": "+4930123456"}),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _) = app
        .post(
            &clara,
            "/api/v1/cti/events",
            json!({"event": "newCall", "call_id": "1", "from": "+4930123456"}),
        )
        .await;
    assert_eq!(s, 401, "a user's token is not an integration token");
    let (s, v) = app
        .post(
            token,
            "/api/v1/cti/events",
            json!({"event": "ring", "call_id": "1"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = app
        .post(
            token,
            "/api/v1/cti/events",
            json!({"event": "hangup", "call_id": "nope"}),
        )
        .await;
    assert_eq!(s, 404);

    let (s, v) = app.post(token, "/api/v1/cti/events", json!({"event": "newCall", "call_id": "c-1", "from": "004930123456", "to": "+49301000000", "extension": "103"}))
    .await;
    assert_eq!(s, 202, "{v}");
    let msgs = tab.until("call.ringing", WAIT).await;
    assert_eq!(msgs.last().unwrap()["contact"]["id"], lukas);
    assert_eq!(
        app.post(
            token,
            "/api/v1/cti/events",
            json!({"event": "answer", "call_id": "c-1", "extension": "103"})
        )
        .await
        .0,
        202
    );
    assert_eq!(
        app.post(
            token,
            "/api/v1/cti/events",
            json!({"event": "hangup", "call_id": "c-1"})
        )
        .await
        .0,
        202
    );
    let msgs = tab.until("call.ended", WAIT).await;
    assert_eq!(msgs.last().unwrap()["disposition"], "answered");
    let path = format!("/api/v1/contacts/{lukas}/activities");
    wait_for(&app, &clara, &path, |v| {
        v["items"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["kind"] == "call" && x["payload"]["agent"] == "103")
        })
    })
    .await;
}
