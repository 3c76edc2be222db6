//! Finished calls from the outside: captured Asterisk traffic replayed into
//! the running server leaves one call-log row and one timeline entry per
//! call, turns unknown callers into leads for the right manager, missed calls
//! into one callback task due in working time, and a later call that reaches
//! the customer closes that task; a second node replaying the same calls
//! changes nothing.

mod support;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ringside::telephony::ami::codec::Message;
use ringside::telephony::ami::fake::{FakeAmi, FakeScript, FakeState, Pace};
use serde_json::{Value, json};
use support::{Tab, TestApp};

const WAIT: Duration = Duration::from_secs(20);

/// Seconds between the server's AMI login and the first call: time to set up
/// users, rules and cards, also on a loaded machine.
const SETUP_S: f64 = 5.0;

/// A fake Asterisk playing `traces` one after the other at four times the
/// recorded pace, `SETUP_S` after the server logs in.
async fn pbx(traces: &[&str]) -> FakeAmi {
    pbx_with(traces, 4.0, SETUP_S, None).await
}

/// A fake Asterisk playing `traces` one after the other at `speed` times the
/// recorded pace, `hold_s` seconds after the server logs in. With `stamps`,
/// every event carries a `Timestamp:` header (Asterisk's `timestampevents`)
/// as if the transcripts had been recorded from that moment on, so the
/// server sees the calls' true durations at any speed.
async fn pbx_with(
    traces: &[&str],
    speed: f64,
    hold_s: f64,
    stamps: Option<DateTime<Utc>>,
) -> FakeAmi {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/");
    let mut script: Option<FakeScript> = None;
    for t in traces {
        let ami = std::fs::read(format!("{dir}{t}.ami")).unwrap();
        let times = std::fs::read_to_string(format!("{dir}{t}.times")).unwrap();
        let mut next = FakeScript::from_transcript(&ami, &times);
        match script.as_mut() {
            None => {
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
    let mut script = script.unwrap();
    if let Some(start) = stamps {
        for (t, m) in script.events.iter_mut() {
            let at = start + chrono::TimeDelta::nanoseconds(*t as i64);
            let stamp = format!("{}.{:06}", at.timestamp(), at.timestamp_subsec_micros());
            let mut pairs: Vec<(String, String)> = m
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            pairs.insert(1.min(pairs.len()), ("Timestamp".into(), stamp));
            *m = Message::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
    }
    let hold = (hold_s * speed * 1e9) as u64;
    for (t, _) in script.events.iter_mut().skip(1) {
        *t += hold;
    }
    FakeAmi::start_on("127.0.0.1:0".parse().unwrap(), FakeState::new(script))
        .await
        .unwrap()
}

/// The eight captured calls, in an order where each missed call is followed
/// by a later one that reaches the same customer.
const CAPTURED: [&str; 8] = [
    "direct_answered",
    "direct_busy",
    "direct_no_answer",
    "queue_abandoned",
    "queue_answered",
    "anonymous_caller",
    "cnam_special_chars",
    "click_to_call",
];

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// Rows of the tables a finished call writes to.
async fn footprint(app: &TestApp) -> [i64; 6] {
    [
        count(app, "SELECT COUNT(*) FROM calls").await,
        count(app, "SELECT COUNT(*) FROM call_rings").await,
        count(app, "SELECT COUNT(*) FROM call_segments").await,
        count(app, "SELECT COUNT(*) FROM activities WHERE kind = 'call'").await,
        count(app, "SELECT COUNT(*) FROM leads").await,
        count(app, "SELECT COUNT(*) FROM tasks").await,
    ]
}

fn near(v: &Value, expected: f64, what: &str) {
    let got = v.as_f64().unwrap_or(f64::NAN);
    assert!((got - expected).abs() <= 0.3, "{what}: {got} vs {expected}");
}

/// Every page of `GET path` (which must have no query of its own but `limit`).
async fn all_calls(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before = String::new();
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = format!("/api/v1/calls?{query}{sep}limit=3{before}");
        let (s, page) = app.get(token, &path).await;
        assert_eq!(s, 200, "{path}: {page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => before = format!("&before={n}"),
            None => return out,
        }
    }
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
    // The caller sent no name: the lead is named by the formatted number.
    assert_eq!(lead["name"], lead["phone_raw"], "{lead}");
    assert!(
        lead["name"].as_str().is_some_and(|n| n.starts_with("+7 ")),
        "{lead}"
    );
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
    // Marked as a callback for its call, so a console can word the title in
    // the agent's language; the stored title stays for API clients.
    assert_eq!(tasks[0]["kind"], "callback", "{tasks:?}");
    assert!(tasks[0]["call_id"].is_string(), "{tasks:?}");
    assert!(
        tasks[0]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Call back ")),
        "{tasks:?}"
    );
    let msgs = maria_tab.until("task.created", WAIT).await;
    let created: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["type"] == "task.created")
        .collect();
    assert_eq!(created[0]["task"]["kind"], "callback", "{msgs:?}");
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

/// What each captured call's notes (`tests/fixtures/ami/*.md`) say a CRM
/// should conclude: (transcript, call id, direction, disposition, agent,
/// rang, ring s, talk s, hangup cause).
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [&'static str],
    f64,
    f64,
    i64,
);

const CONCLUSIONS: [Expected; 8] = [
    (
        "direct_answered",
        "1795426662.2",
        "inbound",
        "answered",
        Some("101"),
        &["101"],
        2.0,
        5.0,
        16,
    ),
    (
        "direct_busy",
        "1795426776.18",
        "inbound",
        "busy",
        None,
        &["101"],
        0.0,
        0.0,
        17,
    ),
    (
        "direct_no_answer",
        "1795426781.20",
        "inbound",
        "no_answer",
        None,
        &["101"],
        20.0,
        0.0,
        16,
    ),
    (
        "queue_abandoned",
        "1795426762.15",
        "inbound",
        "abandoned",
        None,
        &["101", "102"],
        8.0,
        0.0,
        0,
    ),
    (
        "queue_answered",
        "1795426750.12",
        "inbound",
        "answered",
        Some("102"),
        &["101", "102"],
        3.0,
        4.0,
        16,
    ),
    (
        "anonymous_caller",
        "1795426987.40",
        "inbound",
        "answered",
        Some("101"),
        &["101"],
        2.0,
        5.0,
        16,
    ),
    (
        "cnam_special_chars",
        "1795426878.31",
        "inbound",
        "answered",
        Some("101"),
        &["101"],
        2.0,
        5.0,
        16,
    ),
    (
        "click_to_call",
        "1795426942.33",
        "outbound",
        "answered",
        Some("101"),
        &[],
        5.0,
        5.0,
        16,
    ),
];

#[tokio::test]
async fn every_captured_call_is_logged_once_on_its_card_and_a_second_node_adds_nothing() {
    let start = Utc::now() - chrono::TimeDelta::hours(1);
    let fake = pbx_with(&CAPTURED, 6.0, SETUP_S, Some(start)).await;
    let env = [
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", &fake.url()),
    ];
    let app = TestApp::spawn_with(&env).await;
    let anna = app.add_user("anna", "agent", Some("Sales"), &["101"]).await;
    let boris = app
        .add_user("boris", "agent", Some("Support"), &["102"])
        .await;
    app.add_user("clara", "agent", Some("Support"), &["103"])
        .await;
    app.add_user("sam", "supervisor", Some("Support"), &[])
        .await;
    let maria = app.add_user("maria", "manager", None, &["110"]).await;
    let manager = app.login("maria").await;
    for (name, prefix) in [("Russia", "+7"), ("Germany", "+49")] {
        let (s, v) = app
            .post(&manager, "/api/v1/routing/rules",
                  json!({"kind": "prefix", "name": name, "prefix": prefix, "target": {"user_id": maria}}))
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let anna_t = app.login("anna").await;
    let (_, c) = app
        .post(
            &anna_t,
            "/api/v1/contacts",
            json!({"name": "Иван Петров", "phones": [{"number": "+7 916 123-45-67"}]}),
        )
        .await;
    let ivan = c["id"].as_i64().unwrap();
    fake.state().finished().await;
    let calls = wait_for(&app, &manager, "/api/v1/calls?limit=200", |v| {
        v["items"].as_array().is_some_and(|a| a.len() == 8)
    })
    .await;
    // The last call's timeline entry is written after its row: wait for it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(&app, "SELECT COUNT(*) FROM activities WHERE kind = 'call'").await < 7 {
        assert!(tokio::time::Instant::now() < deadline, "timeline entries");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let calls = calls["items"].as_array().unwrap().clone();
    let by_id = |id: &str| {
        calls
            .iter()
            .find(|c| c["call_id"] == id)
            .unwrap_or_else(|| panic!("no call {id} in {calls:?}"))
            .clone()
    };

    // Leads only for the two unknown callers: not the anonymous one, not Ivan.
    let (_, leads) = app.get(&manager, "/api/v1/leads").await;
    let leads = leads.as_array().unwrap().clone();
    let mut numbers: Vec<&str> = leads
        .iter()
        .map(|l| l["phone_e164"].as_str().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["+4930123456", "+79031112233"], "{leads:?}");
    let lead_of = |e164: &str| {
        leads.iter().find(|l| l["phone_e164"] == e164).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (hans, unknown) = (lead_of("+4930123456"), lead_of("+79031112233"));
    assert!(
        leads
            .iter()
            .all(|l| l["manager_id"] == maria && l["source"] == "call")
    );
    assert_eq!(
        leads.iter().find(|l| l["id"] == hans).unwrap()["name"],
        "Hans Mueller"
    );

    // One row per call, with what its notes say.
    let users = |ids: &[i64]| json!(ids);
    for (trace, id, direction, disposition, agent, rang, ring, talk, cause) in CONCLUSIONS {
        let c = by_id(id);
        assert_eq!(c["direction"], direction, "{trace}: {c}");
        assert_eq!(c["disposition"], disposition, "{trace}: {c}");
        assert_eq!(c["agent"], json!(agent), "{trace}: {c}");
        assert_eq!(c["rang"], json!(rang), "{trace}: {c}");
        near(&c["ring_s"], ring, trace);
        near(&c["talk_s"], talk, trace);
        assert_eq!(c["cause"]["code"], cause, "{trace}: {c}");
        assert_eq!(c["hold_s"], 0.0, "{trace}");
        let want_agent_user = match agent {
            Some("101") => json!(anna),
            Some("102") => json!(boris),
            _ => Value::Null,
        };
        assert_eq!(c["agent_user_id"], want_agent_user, "{trace}");
        match agent {
            Some(a) => {
                assert_eq!(c["segments"].as_array().unwrap().len(), 1, "{trace}: {c}");
                assert_eq!(c["segments"][0]["agent"], a, "{trace}");
                near(&c["segments"][0]["talk_s"], talk, trace);
            }
            None => assert_eq!(c["segments"], json!([]), "{trace}"),
        }
        // MixMonitor(${UNIQUEID}.wav) on the first channel, whose id is the call's.
        assert_eq!(
            c["recording"],
            format!("/var/spool/asterisk/monitor/{id}.wav"),
            "{trace}"
        );
        assert!(c["wrapup"].is_null());
    }
    let rang_users = |id: &str| by_id(id)["rang_user_ids"].clone();
    assert_eq!(rang_users("1795426750.12"), users(&[anna, boris]));
    assert_eq!(rang_users("1795426776.18"), users(&[anna]));
    assert_eq!(by_id("1795426942.33")["originator_user_id"], anna);
    assert_eq!(by_id("1795426942.33")["callee"], "+79031112233");
    assert_eq!(by_id("1795426776.18")["cause"]["text"], "User busy");
    assert_eq!(by_id("1795426662.2")["caller"], "+79161234567");
    assert_eq!(by_id("1795426987.40")["caller"], "anonymous");
    assert_eq!(
        by_id("1795426878.31")["caller_name"],
        "<script>alert('x')</script> Иван Петров"
    );
    // Times are the PBX's, newest first.
    let started: Vec<&str> = calls
        .iter()
        .map(|c| c["started_at"].as_str().unwrap())
        .collect();
    let mut sorted = started.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(started, sorted);
    assert!(
        started
            .iter()
            .all(|t| *t < Utc::now().to_rfc3339().as_str())
    );

    // Each call on the right card; the anonymous caller on none.
    let card = |id: &str| {
        let c = by_id(id);
        (c["contact_id"].as_i64(), c["lead_id"].as_i64())
    };
    for id in ["1795426662.2", "1795426781.20", "1795426878.31"] {
        assert_eq!(card(id), (Some(ivan), None), "{id}");
    }
    for id in ["1795426776.18", "1795426750.12"] {
        assert_eq!(card(id), (None, Some(hans)), "{id}");
    }
    for id in ["1795426762.15", "1795426942.33"] {
        assert_eq!(card(id), (None, Some(unknown)), "{id}");
    }
    assert_eq!(card("1795426987.40"), (None, None));
    let entries = |path: String| {
        let app = &app;
        let token = manager.clone();
        async move {
            let (_, t) = app.get(&token, &path).await;
            let mut ids: Vec<String> = t["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["kind"] == "call")
                .map(|a| a["payload"]["call_id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(
        entries(format!("/api/v1/contacts/{ivan}/activities")).await,
        ["1795426662.2", "1795426781.20", "1795426878.31"]
    );
    assert_eq!(
        entries(format!("/api/v1/leads/{hans}/activities")).await,
        ["1795426750.12", "1795426776.18"]
    );
    assert_eq!(
        entries(format!("/api/v1/leads/{unknown}/activities")).await,
        ["1795426762.15", "1795426942.33"]
    );

    // Callbacks only for the three missed inbound calls, one for the queue
    // call that rang two agents; each closed by the call that reached the customer.
    let callbacks: Vec<(String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT call_id, done, contact_id, lead_id FROM tasks WHERE kind = 'callback' ORDER BY call_id",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        callbacks,
        [
            ("1795426762.15".to_owned(), 1, None, Some(unknown)),
            ("1795426776.18".to_owned(), 1, None, Some(hans)),
            ("1795426781.20".to_owned(), 1, Some(ivan), None),
        ]
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tasks").await, 3);
    let (_, t) = app
        .get(&manager, &format!("/api/v1/leads/{hans}/activities"))
        .await;
    let answered = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["payload"]["call_id"] == "1795426750.12")
        .unwrap()
        .clone();
    // Missed at the busy call's end, reached when the queue call was answered.
    let waited = answered["payload"]["callbacks_closed"][0]["time_to_callback_s"]
        .as_i64()
        .unwrap();
    let gap = |a: &str, b: &str| {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp();
        t(a) - t(b)
    };
    let expected = gap(
        by_id("1795426750.12")["answered_at"].as_str().unwrap(),
        by_id("1795426776.18")["ended_at"].as_str().unwrap(),
    );
    assert!((waited - expected).abs() <= 1, "{waited} vs {expected}");

    // Who sees what: agents their phones' calls and their cards' calls,
    // supervisors their team's, managers everything.
    let ids = |items: &[Value]| {
        let mut v: Vec<String> = items
            .iter()
            .map(|c| c["call_id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        all_calls(&app, &manager, "").await.len(),
        8,
        "paged in threes"
    );
    assert_eq!(all_calls(&app, &anna_t, "").await.len(), 8);
    let boris_t = app.login("boris").await;
    let boris_calls = ids(&all_calls(&app, &boris_t, "").await);
    assert_eq!(boris_calls, ["1795426750.12", "1795426762.15"]);
    let sam = app.login("sam").await;
    assert_eq!(ids(&all_calls(&app, &sam, "").await), boris_calls);
    let clara = app.login("clara").await;
    assert!(all_calls(&app, &clara, "").await.is_empty());
    let (s, _) = app.get(&clara, "/api/v1/calls/1795426662.2").await;
    assert_eq!(s, 403);
    let (s, v) = app.get(&anna_t, "/api/v1/calls/1795426662.2").await;
    assert_eq!((s, v["agent"].clone()), (200, json!("101")));
    let (s, v) = app.get(&anna_t, "/api/v1/calls/no-such-call").await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["code"], "not_found");

    // Filters.
    let filtered = |q: String| {
        let app = &app;
        let token = manager.clone();
        async move { ids(&all_calls(app, &token, &q).await) }
    };
    assert_eq!(filtered(format!("user_id={boris}")).await, boris_calls);
    assert_eq!(
        filtered("direction=outbound".into()).await,
        ["1795426942.33"]
    );
    assert_eq!(filtered("disposition=busy".into()).await, ["1795426776.18"]);
    assert_eq!(filtered(format!("contact_id={ivan}")).await.len(), 3);
    assert_eq!(
        filtered(format!("lead_id={unknown}&disposition=answered")).await,
        ["1795426942.33"]
    );
    let cnam = by_id("1795426878.31")["started_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let since = filtered(format!("since={}", cnam.replace('+', "%2B"))).await;
    // Replayed in CAPTURED order: the last two calls started at or after cnam's.
    assert_eq!(since, ["1795426878.31", "1795426942.33"]);
    let until = filtered(format!("until={cnam}")).await;
    assert_eq!(until.len(), 6);
    assert!(!until.contains(&"1795426878.31".to_owned()));
    for bad in [
        "direction=sideways",
        "disposition=sale",
        "since=yesterday",
        "before=nope",
        "user_id=abc",
        "usr_id=1",
        "since=2026-11-24T00:00:00Z&until=2026-11-23T00:00:00Z",
    ] {
        let (s, v) = app.get(&manager, &format!("/api/v1/calls?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(v["error"]["message"].is_string(), "{bad}: {v}");
    }

    // The same transcripts again, through a second node on the same database.
    // The callbacks are reopened first (the customers asked to be called
    // again): an old call replayed must not close them a second time.
    let task_ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM tasks ORDER BY id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    for id in &task_ids {
        let (s, v) = app
            .send(
                "PATCH",
                &manager,
                &format!("/api/v1/tasks/{id}"),
                json!({"done": false}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let before = footprint(&app).await;
    assert_eq!(before, [8, 9, 5, 7, 2, 3]);
    drop(fake);
    let again = pbx_with(&CAPTURED, 30.0, 1.0, Some(start)).await;
    let second = TestApp::spawn_beside(
        &app,
        &[
            ("RINGSIDE_DEFAULT_REGION", "RU"),
            ("RINGSIDE_AMI_URL", &again.url()),
        ],
    )
    .await;
    let mut tab = Tab::open(&second, &anna_t, None).await;
    again.state().finished().await;
    // Node two did see every call end (the seven that rang Anna's phone)...
    let mut ended = 0;
    while ended < 7 {
        let msgs = tab.until("call.ended", WAIT).await;
        ended += msgs.iter().filter(|m| m["type"] == "call.ended").count();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // ...and wrote nothing.
    assert_eq!(footprint(&second).await, before);
    assert_eq!(
        count(&second, "SELECT COUNT(*) FROM tasks WHERE done = 0").await,
        3,
        "the reopened callbacks stay open"
    );
    let (_, again_calls) = second.get(&manager, "/api/v1/calls?limit=200").await;
    assert_eq!(again_calls["items"], json!(calls));
}

#[tokio::test]
async fn two_nodes_finishing_the_same_calls_at_once_log_each_once() {
    let traces = [
        "queue_abandoned",
        "direct_busy",
        "direct_no_answer",
        "queue_answered",
    ];
    let start = Utc::now() - chrono::TimeDelta::hours(2);
    let fake_a = pbx_with(&traces, 8.0, SETUP_S, Some(start)).await;
    let a = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", &fake_a.url()),
    ])
    .await;
    let a_ready = std::time::Instant::now();
    a.add_user("anna", "agent", None, &["101"]).await;
    a.add_user("boris", "agent", None, &["102"]).await;
    let maria = a.add_user("maria", "manager", None, &[]).await;
    let manager = a.login("maria").await;
    for (name, prefix) in [("Russia", "+7"), ("Germany", "+49")] {
        let (s, v) = a
            .post(&manager, "/api/v1/routing/rules",
                  json!({"kind": "prefix", "name": name, "prefix": prefix, "target": {"user_id": maria}}))
            .await;
        assert_eq!(s, 201, "{v}");
    }
    // The second node's PBX starts later by as much as the second node did,
    // so both play every call at about the same moment.
    let lag = a_ready.elapsed().as_secs_f64() + 0.3;
    let fake_b = pbx_with(&traces, 8.0, (SETUP_S - lag).max(0.0), Some(start)).await;
    let b = TestApp::spawn_beside(
        &a,
        &[
            ("RINGSIDE_DEFAULT_REGION", "RU"),
            ("RINGSIDE_AMI_URL", &fake_b.url()),
        ],
    )
    .await;
    fake_a.state().finished().await;
    fake_b.state().finished().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(&a, "SELECT COUNT(*) FROM activities WHERE kind = 'call'").await < 4 {
        assert!(tokio::time::Instant::now() < deadline, "timeline entries");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Four calls, three unknown callers (one called twice), three missed calls.
    assert_eq!(footprint(&a).await, [4, 6, 1, 4, 3, 3]);
    assert_eq!(
        count(&a, "SELECT COUNT(*) FROM tasks WHERE done = 1").await,
        1,
        "the busy caller's callback, closed by their queue call"
    );
    let (_, leads) = b.get(&manager, "/api/v1/leads").await;
    assert_eq!(leads.as_array().unwrap().len(), 3, "{leads}");
}

#[tokio::test]
async fn concurrent_claims_of_one_call_have_one_winner() {
    use ringside::store::Db;
    use ringside::store::calls::NewCall;
    let dir = tempfile::tempdir().unwrap();
    let url = support::fresh_database(dir.path()).await;
    let one = Db::connect(&url).await.unwrap();
    one.migrate().await.unwrap();
    let other = Db::connect(&url).await.unwrap();
    for i in 0..40 {
        let call = NewCall {
            call_id: format!("race-{i}"),
            direction: "inbound".into(),
            caller: "+79161234567".into(),
            disposition: "answered".into(),
            transfers: json!([]),
            rings: vec![("101".into(), Vec::new()), ("102".into(), Vec::new())],
            ..Default::default()
        };
        let (x, y) = tokio::join!(one.claim_call(&call), other.claim_call(&call));
        let winners = [x.unwrap(), y.unwrap()].iter().filter(|w| **w).count();
        assert_eq!(winners, 1, "call {i}");
    }
    let n = |sql: &'static str| {
        let db = one.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db.pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(n("SELECT COUNT(*) FROM calls").await, 40);
    assert_eq!(
        n("SELECT COUNT(*) FROM call_rings").await,
        80,
        "the loser wrote no part"
    );
}

#[tokio::test]
async fn transfers_show_who_talked_when_and_holds_add_up() {
    let start = Utc::now() - chrono::TimeDelta::minutes(30);
    let fake = pbx_with(
        &["synthetic_attended_transfer", "synthetic_hold"],
        8.0,
        SETUP_S,
        Some(start),
    )
    .await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", &fake.url()),
    ])
    .await;
    let anna = app.add_user("anna", "agent", None, &["101"]).await;
    let boris = app.add_user("boris", "agent", None, &["102"]).await;
    let token = app.login("anna").await;
    let mut ids = Vec::new();
    for (name, number) in [
        ("Hans Mueller", "+49 30 123456"),
        ("Hans (office)", "+49 30 999999"),
        ("Иван Петров", "+7 916 123-45-67"),
    ] {
        let (_, c) = app
            .post(
                &token,
                "/api/v1/contacts",
                json!({"name": name, "phones": [{"number": number}]}),
            )
            .await;
        ids.push(c["id"].as_i64().unwrap());
    }
    let (hans, office, ivan) = (ids[0], ids[1], ids[2]);
    fake.state().finished().await;
    let path = "/api/v1/calls/1795427500.90";
    wait_for(&app, &token, path, |v| v["call_id"].is_string()).await;

    // Attended: 101 has the caller (on hold from 5 s) until the transfer at
    // 12 s, 102 from then to the end; the consultation is part of the call.
    let (s, c) = app.get(&token, "/api/v1/calls/1795427200.60").await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["agent"], "102");
    assert_eq!(c["agent_user_id"], boris);
    assert_eq!(c["rang"], json!(["101", "102"]));
    assert_eq!(c["rang_user_ids"], json!([anna, boris]));
    assert_eq!(
        c["transfers"],
        json!([{"from": "101", "to": "102", "kind": "attended"}])
    );
    let segments = c["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "{c}");
    assert_eq!(
        (&segments[0]["agent"], &segments[0]["user_id"]),
        (&json!("101"), &json!(anna))
    );
    assert_eq!(
        (&segments[1]["agent"], &segments[1]["user_id"]),
        (&json!("102"), &json!(boris))
    );
    near(&segments[0]["talk_s"], 10.0, "101's part");
    near(&segments[1]["talk_s"], 7.0, "102's part");
    assert_eq!(segments[0]["ended_at"], segments[1]["started_at"]);
    assert_eq!(segments[0]["started_at"], c["answered_at"]);
    assert_eq!(segments[1]["ended_at"], c["ended_at"]);
    near(&c["hold_s"], 7.0, "hold");
    near(&c["talk_s"], 17.0, "talk");
    assert_eq!(c["contact_id"], hans);

    // Two holds on one call add up; one agent, one segment.
    let (_, c) = app.get(&token, path).await;
    near(&c["hold_s"], 6.0, "two holds");
    near(&c["talk_s"], 15.0, "talk");
    assert_eq!(c["segments"].as_array().unwrap().len(), 1);
    near(&c["segments"][0]["talk_s"], 15.0, "101's part");
    assert_eq!(c["contact_id"], ivan);

    // Picked for another card after the call: the row and the entry move.
    let (s, v) = app
        .post(
            &token,
            "/api/v1/calls/1795427200.60/link",
            json!({"contact_id": office}),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, c) = app.get(&token, "/api/v1/calls/1795427200.60").await;
    assert_eq!(c["contact_id"], office);
    let (_, t) = app
        .get(&token, &format!("/api/v1/contacts/{office}/activities"))
        .await;
    assert_eq!(t["items"][0]["payload"]["call_id"], "1795427200.60");
    let (_, t) = app
        .get(&token, &format!("/api/v1/contacts/{hans}/activities"))
        .await;
    assert_eq!(t["items"], json!([]));
    let (s, _) = app
        .post(
            &token,
            "/api/v1/calls/nope/link",
            json!({"contact_id": office}),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn configured_codes_and_a_working_hours_deadline_apply_to_a_call_missed_on_friday_night() {
    let conf = tempfile::tempdir().unwrap();
    let file = conf.path().join("ringside.toml");
    std::fs::write(
        &file,
        r#"
[calls]
dispositions = [{ code = "demo-booked", label = "Demo booked" }, { code = "lost", label = "Lost" }]

[callbacks]
sla_minutes = 30
hours = { timezone = "Europe/Moscow", days = ["mon-fri"], from = "09:00", to = "18:00" }
"#,
    )
    .unwrap();
    // Friday 2026-11-27, 20:00 in Moscow (17:00 UTC): the office closed at 18:00.
    let friday_night = Utc.with_ymd_and_hms(2026, 11, 27, 17, 0, 0).unwrap();
    let fake = pbx_with(&["direct_no_answer"], 8.0, SETUP_S, Some(friday_night)).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_CONFIG", file.to_str().unwrap()),
    ])
    .await;
    let anna = app.add_user("anna", "agent", None, &["101"]).await;
    let token = app.login("anna").await;
    let (_, c) = app
        .post(
            &token,
            "/api/v1/contacts",
            json!({"name": "Иван Петров", "phones": [{"number": "89161234567"}]}),
        )
        .await;
    let ivan = c["id"].as_i64().unwrap();

    let (s, codes) = app.get(&token, "/api/v1/dispositions").await;
    assert_eq!(s, 200);
    assert_eq!(
        codes,
        json!([{"code": "demo-booked", "label": "Demo booked"}, {"code": "lost", "label": "Lost"}])
    );

    fake.state().finished().await;
    let tasks = wait_for(
        &app,
        &token,
        &format!("/api/v1/tasks?contact_id={ivan}"),
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{tasks}");
    assert_eq!(tasks[0]["assignee_id"], anna);
    // Thirty working minutes from Friday night: Monday 09:30 Moscow.
    assert_eq!(tasks[0]["due_at"], "2026-11-30T06:30:00.000Z", "{tasks}");

    let call = "/api/v1/calls/1795426781.20";
    let (_, c) = app.get(&token, call).await;
    assert!(
        c["started_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-27T17:00:"),
        "{c}"
    );
    assert!(c["wrapup"].is_null());
    let wrapup = "/api/v1/calls/1795426781.20/wrapup";
    let (s, v) = app
        .post(&token, wrapup, json!({"disposition": "sale"}))
        .await;
    assert_eq!(s, 400, "a default code that is not configured here: {v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("sale"),
        "{v}"
    );
    let (s, v) = app
        .post(
            &token,
            wrapup,
            json!({"disposition": "demo-booked", "note": "Monday at 10"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["body"], "Demo booked: Monday at 10");
    let (_, c) = app.get(&token, call).await;
    assert_eq!(c["wrapup"]["disposition"], "demo-booked");
    assert_eq!(c["wrapup"]["note"], "Monday at 10");
    assert_eq!(c["wrapup"]["user_id"], anna);
    // A later note alone keeps the code.
    let (s, _) = app
        .post(&token, wrapup, json!({"note": "moved to 11"}))
        .await;
    assert_eq!(s, 201);
    let (_, c) = app.get(&token, call).await;
    assert_eq!(
        (&c["wrapup"]["disposition"], &c["wrapup"]["note"]),
        (&json!("demo-booked"), &json!("moved to 11"))
    );
    let (_, page) = app.get(&token, "/api/v1/calls?wrapup=demo-booked").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (s, _) = app
        .post(
            &token,
            "/api/v1/calls/unknown-call/wrapup",
            json!({"disposition": "lost"}),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn calls_from_one_new_number_ending_together_make_one_lead() {
    let token = "cti-secret-0123456789";
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "DE"),
        ("RINGSIDE_CTI_TOKENS", &format!("threecx={token}")),
    ])
    .await;
    app.add_user("boss", "manager", None, &[]).await;
    let boss = app.login("boss").await;
    let cti = |body: Value| {
        let app = &app;
        async move {
            let (s, v) = app.post(token, "/api/v1/cti/events", body).await;
            assert_eq!(s, 202, "{v}");
        }
    };
    // Eight missed calls from a number nobody knows, all ending at once.
    for i in 0..8 {
        cti(json!({"event": "newCall", "call_id": format!("n-{i}"), "from": "+49 30 999888"}))
            .await;
    }
    futures::future::join_all(
        (0..8).map(|i| cti(json!({"event": "hangup", "call_id": format!("n-{i}")}))),
    )
    .await;
    let calls = {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let calls = all_calls(&app, &boss, "").await;
            if calls.len() == 8 && calls.iter().all(|c| !c["lead_id"].is_null()) {
                break calls;
            }
            assert!(tokio::time::Instant::now() < deadline, "{calls:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (_, leads) = app.get(&boss, "/api/v1/leads").await;
    let leads = leads.as_array().unwrap();
    assert_eq!(
        leads.len(),
        1,
        "one lead, however the calls raced: {leads:?}"
    );
    let lead = leads[0]["id"].clone();
    assert!(calls.iter().all(|c| c["lead_id"] == lead), "{calls:?}");

    // A second open lead for the number, typed in by hand: the next call's
    // pop offers both, and the call goes on one of them (not on a contact
    // that does not exist).
    app.add_user("clara", "agent", None, &["103"]).await;
    let clara = app.login("clara").await;
    let (s, other) = app
        .post(
            &boss,
            "/api/v1/leads",
            json!({"name": "Same number, typed in", "phone": "030 999888"}),
        )
        .await;
    assert_eq!(s, 201, "{other}");
    let mut tab = Tab::open(&app, &clara, None).await;
    cti(json!({"event": "newCall", "call_id": "n-8", "from": "+4930999888", "extension": "103"}))
        .await;
    let msgs = tab.until("call.ringing", WAIT).await;
    let pop = msgs.last().unwrap();
    assert_eq!(pop["match"], "candidates", "{pop}");
    cti(json!({"event": "hangup", "call_id": "n-8"})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (s, call) = app.get(&boss, "/api/v1/calls/cti:threecx:n-8").await;
        if s == 200 {
            assert!(call["contact_id"].is_null(), "{call}");
            assert!(
                call["lead_id"] == lead || call["lead_id"] == other["id"],
                "{call}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "n-8 not logged: {call}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn real_asterisk_transfers_and_holds_in_the_call_log() {
    // Captured from Asterisk 22 (see the fixtures' .md): an attended
    // transfer with *2 over a Local channel, a blind one with #1, and a hold
    // with re-INVITEs, all from 101 on the direct line.
    let start = Utc::now() - chrono::TimeDelta::minutes(30);
    let fake = pbx_with(
        &["attended_transfer", "blind_transfer", "hold_unhold"],
        8.0,
        SETUP_S,
        Some(start),
    )
    .await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", &fake.url()),
    ])
    .await;
    let anna = app.add_user("anna", "agent", None, &["101"]).await;
    let boris = app.add_user("boris", "agent", None, &["102"]).await;
    let token = app.login("anna").await;
    fake.state().finished().await;
    wait_for(&app, &token, "/api/v1/calls/1796304908.0", |v| {
        v["call_id"].is_string()
    })
    .await;
    let chained = |c: &Value| {
        let segs = c["segments"].as_array().unwrap().clone();
        assert_eq!(segs[0]["started_at"], c["answered_at"], "{c}");
        assert_eq!(segs[segs.len() - 1]["ended_at"], c["ended_at"], "{c}");
        segs
    };

    // Attended: one transfer; 101 until it completes, 102 from then on, the
    // consultation between them not counted; hold from *2 to the merge.
    let (s, c) = app.get(&token, "/api/v1/calls/1796305660.0").await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["agent"], "102");
    assert_eq!(c["agent_user_id"], boris);
    assert_eq!(c["rang"], json!(["101", "102"]));
    assert_eq!(
        c["transfers"],
        json!([{"from": "101", "to": "102", "kind": "attended"}])
    );
    let segs = chained(&c);
    assert_eq!(segs.len(), 2, "{c}");
    assert_eq!(
        (&segs[0]["agent"], &segs[0]["user_id"]),
        (&json!("101"), &json!(anna))
    );
    assert_eq!(
        (&segs[1]["agent"], &segs[1]["user_id"]),
        (&json!("102"), &json!(boris))
    );
    assert_eq!(segs[0]["ended_at"], segs[1]["started_at"]);
    near(&segs[0]["talk_s"], 15.24, "101's part");
    near(&segs[1]["talk_s"], 12.01, "102's part");
    near(&c["talk_s"], 27.24, "talk");
    near(&c["hold_s"], 11.79, "hold");

    // Blind: 101 until the transfer, 102 from its answer; hold while 101 dialled.
    let (_, c) = app.get(&token, "/api/v1/calls/1796305707.0").await;
    assert_eq!(
        c["transfers"],
        json!([{"from": "101", "to": "102", "kind": "blind"}])
    );
    let segs = chained(&c);
    assert_eq!(segs.len(), 2, "{c}");
    assert_eq!(
        (&segs[0]["agent"], &segs[1]["agent"]),
        (&json!("101"), &json!("102"))
    );
    near(&segs[0]["talk_s"], 5.81, "101's part");
    near(&segs[1]["talk_s"], 6.01, "102's part");
    near(&c["hold_s"], 2.37, "hold");

    // Hold and unhold: one segment, the 4 s on music on hold.
    let (_, c) = app.get(&token, "/api/v1/calls/1796304908.0").await;
    assert_eq!(c["agent"], "101");
    assert_eq!(c["transfers"], json!([]));
    let segs = chained(&c);
    assert_eq!(segs.len(), 1, "{c}");
    near(&segs[0]["talk_s"], 10.02, "101's part");
    near(&c["hold_s"], 4.01, "hold");
}

/// Open callbacks of a card (`contact_id=` or the lead's), once `ok` holds.
async fn open_callbacks<F: Fn(&[Value]) -> bool>(
    app: &TestApp,
    token: &str,
    field: &str,
    id: &Value,
    ok: F,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, tasks) = app.get(token, "/api/v1/tasks?done=false").await;
        let mine: Vec<Value> = tasks
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "callback" && t[field] == *id)
            .cloned()
            .collect();
        if ok(&mine) {
            return mine;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{field} {id}: {tasks}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_caller_who_misses_us_again_and_again_has_one_callback_counting_the_misses() {
    let token = "cti-secret-0123456789";
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "DE"),
        ("RINGSIDE_CTI_TOKENS", &format!("threecx={token}")),
    ])
    .await;
    let anna = app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("boss", "manager", None, &[]).await;
    let boss = app.login("boss").await;
    let anna_token = app.login("anna").await;
    let (s, c) = app
        .post(
            &boss,
            "/api/v1/contacts",
            json!({"name": "Jens Weber", "owner_id": anna, "phones": [{"number": "030 7654321"}]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let jens = c["id"].clone();
    let mut tab = Tab::open(&app, &anna_token, None).await;
    let cti = |body: Value| {
        let app = &app;
        async move {
            let (s, v) = app.post(token, "/api/v1/cti/events", body).await;
            assert_eq!(s, 202, "{v}");
        }
    };
    // Three misses, one after the other.
    let mut first: Option<Value> = None;
    for i in 1..=3 {
        cti(json!({"event": "newCall", "call_id": format!("j-{i}"), "from": "+49 30 7654321", "extension": "101"})).await;
        cti(json!({"event": "hangup", "call_id": format!("j-{i}")})).await;
        let open = open_callbacks(&app, &boss, "contact_id", &jens, |t| {
            t.len() > 1 || t.iter().any(|x| x["missed_calls"] == i)
        })
        .await;
        assert_eq!(open.len(), 1, "one open callback: {open:?}");
        let task = &open[0];
        assert_eq!(task["missed_calls"], i, "{task}");
        assert_eq!(task["assignee_id"], anna, "{task}");
        match &first {
            None => first = Some(task.clone()),
            Some(f) => {
                assert_eq!(task["id"], f["id"], "{task}");
                assert_eq!(
                    task["due_at"], f["due_at"],
                    "due from the first miss: {task}"
                );
                assert_eq!(task["call_id"], "cti:threecx:j-1", "{task}");
            }
        }
    }
    let msgs = tab.until("task.updated", WAIT).await;
    let created = msgs.iter().filter(|m| m["type"] == "task.created").count();
    assert_eq!(created, 1, "{msgs:?}");
    let mut last = msgs.last().unwrap().clone();
    while last["task"]["missed_calls"] != 3 {
        last = tab.until("task.updated", WAIT).await.pop().unwrap();
    }
    assert_eq!(last["task"]["id"], first.as_ref().unwrap()["id"]);

    // Reached: the callback closes, and a miss after that starts a new one.
    cti(
        json!({"event": "newCall", "call_id": "j-4", "from": "+49 30 7654321", "extension": "101"}),
    )
    .await;
    cti(json!({"event": "answer", "call_id": "j-4", "extension": "101"})).await;
    cti(json!({"event": "hangup", "call_id": "j-4"})).await;
    open_callbacks(&app, &boss, "contact_id", &jens, |t| t.is_empty()).await;
    cti(
        json!({"event": "newCall", "call_id": "j-5", "from": "+49 30 7654321", "extension": "101"}),
    )
    .await;
    cti(json!({"event": "hangup", "call_id": "j-5"})).await;
    let open = open_callbacks(&app, &boss, "contact_id", &jens, |t| !t.is_empty()).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["missed_calls"], 1, "{open:?}");
    assert_ne!(open[0]["id"], first.as_ref().unwrap()["id"]);
    // Reopening the old one while the new one is open is refused, not a 500.
    let old = first.as_ref().unwrap()["id"].as_i64().unwrap();
    let (s, v) = app
        .send(
            "PATCH",
            &boss,
            &format!("/api/v1/tasks/{old}"),
            json!({"done": false}),
        )
        .await;
    assert_eq!(s, 409, "{v}");

    // Misses of a new caller logged all at once: one lead, one callback.
    for i in 0..6 {
        cti(json!({"event": "newCall", "call_id": format!("p-{i}"), "from": "+49 30 999777", "extension": "101"})).await;
    }
    futures::future::join_all(
        (0..6).map(|i| cti(json!({"event": "hangup", "call_id": format!("p-{i}")}))),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let lead = loop {
        let (_, leads) = app.get(&boss, "/api/v1/leads").await;
        if let Some(l) = leads.as_array().unwrap().first() {
            break l["id"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no lead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let open = open_callbacks(&app, &boss, "lead_id", &lead, |t| {
        t.len() > 1 || t.iter().any(|x| x["missed_calls"] == 6)
    })
    .await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["missed_calls"], 6, "{open:?}");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM tasks WHERE kind = 'callback' AND done = 0"
        )
        .await,
        2
    );
}
