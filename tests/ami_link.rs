//! The AMI link when it breaks, from the outside: a running server against a
//! fake Asterisk that refuses an action for want of a privilege class (one
//! login, degraded in /healthz and /metrics, live calls still logged), and
//! one that is down while calls end or happen (their real times read from
//! Asterisk's CDR file, the calls inside the outage logged once with their
//! lead and callback; without a CDR file the times are marked uncertain).

mod support;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use ringside::telephony::ami::fake::{DropPoint, FakeAmi, FakeScript, FakeState};
use serde_json::{Value, json};
use support::TestApp;

const WAIT: Duration = Duration::from_secs(20);

fn fixture(name: &str) -> FakeScript {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/");
    let ami = std::fs::read(format!("{dir}{name}.ami")).unwrap();
    let times = std::fs::read_to_string(format!("{dir}{name}.times")).unwrap();
    FakeScript::from_transcript(&ami, &times)
}

async fn wait_until<F: Fn() -> bool>(what: &str, ok: F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn health(app: &TestApp) -> Value {
    app.client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .unwrap_or_else(|_| panic!("a time: {v}"))
        .with_timezone(&Utc)
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

#[tokio::test]
async fn an_account_without_the_resync_class_logs_in_once_reports_why_and_still_logs_calls() {
    let mut script = fixture("direct_answered");
    script.refusals = vec![("CoreShowChannels".into(), "Permission denied".into())];
    let fake = FakeAmi::start(script).await.unwrap();
    let state = fake.state();
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", &fake.url()),
    ])
    .await;
    app.add_user("maria", "manager", None, &[]).await;
    let token = app.login("maria").await;
    let calls = wait_for(&app, &token, "/api/v1/calls", |v| {
        v["items"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    assert_eq!(calls["items"][0]["disposition"], "answered");
    assert_eq!(calls["items"][0]["times"], "live");
    // The resync is asked again on the backoff, all on the first login.
    wait_until("three refused resyncs", || {
        state.count("CoreShowChannels") >= 3
    })
    .await;
    assert_eq!(state.count("Login"), 1, "no login storm");
    let h = health(&app).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["ami"]["status"], "degraded", "{h}");
    assert_eq!(h["ami"]["logins"], 1, "{h}");
    let reason = h["ami"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("CoreShowChannels") && reason.contains("`reporting`"),
        "{h}"
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ringside_ami_degraded 1"), "{metrics}");
    assert!(metrics.contains("ringside_ami_logins_total 1"), "{metrics}");
    assert_eq!(state.count("Login"), 1, "still one login");
}

/// A line as `dialplans/cdr_custom.conf` makes Asterisk write it.
#[allow(clippy::too_many_arguments)]
fn cdr_line(
    linkedid: &str,
    src: &str,
    dst: &str,
    channel: &str,
    dstchannel: &str,
    start: DateTime<Utc>,
    answer: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    disposition: &str,
) -> String {
    let v = json!({
        "linkedid": linkedid, "uniqueid": linkedid, "sequence": 7,
        "clid": format!("\"\" <{src}>"), "src": src, "dst": dst, "dcontext": "from-trunk",
        "channel": channel, "dstchannel": dstchannel, "lastapp": "Dial",
        "lastdata": "PJSIP/101,20,tT",
        "start": secs(start), "answer": answer.map_or(0.0, secs), "end": secs(end),
        "disposition": disposition,
    });
    format!("{v}\n")
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A fake playing `direct_answered` that goes down once the call is
/// answered; the rest of the call happens while it is down.
fn cut_after_answer() -> (FakeScript, usize) {
    let mut script = fixture("direct_answered");
    let cut = script
        .events
        .iter()
        .position(|(_, m)| m.event() == Some("BridgeEnter"))
        .unwrap()
        + 1;
    let rest = script.events.len() - cut;
    script.drops = vec![DropPoint {
        after_events: cut,
        lose_events: rest,
    }];
    (script, cut + rest)
}

const UP_CALL: &str = "1795426662.2";
const INSIDE_CALL: &str = "1795499999.50";

#[tokio::test]
async fn calls_that_end_or_happen_while_the_link_is_down_get_their_times_from_the_cdr_once() {
    let dir = tempfile::tempdir().unwrap();
    let cdr = dir.path().join("ringside-cdr.json");
    std::fs::write(&cdr, "").unwrap();
    let (script, lost) = cut_after_answer();
    let state = FakeState::new(script);
    let fake = FakeAmi::start_on("127.0.0.1:0".parse().unwrap(), state.clone())
        .await
        .unwrap();
    let addr = fake.addr();
    let url = fake.url();
    let cdr_path = cdr.display().to_string();
    let env = [
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", url.as_str()),
        ("RINGSIDE_AMI_CDR_FILE", cdr_path.as_str()),
    ];
    let app = TestApp::spawn_with(&env).await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let maria = app.add_user("maria", "manager", None, &[]).await;
    let token = app.login("maria").await;
    let (s, v) = app
        .post(
            &token,
            "/api/v1/routing/rules",
            json!({"kind": "prefix", "name": "Germany", "prefix": "+49", "target": {"user_id": maria}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // The link goes down with the call up; it ends, and a second call comes
    // and goes, before the link is back.
    let deadline = tokio::time::Instant::now() + WAIT;
    while state.position() < lost {
        assert!(tokio::time::Instant::now() < deadline, "the fake never cut");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fake.shutdown().await;
    let t0 = Utc::now();
    let up_end = t0;
    let up_line = cdr_line(
        UP_CALL,
        "+79161234567",
        "74957654321",
        "PJSIP/trunk-00000002",
        "PJSIP/101-00000003",
        t0 - TimeDelta::seconds(9),
        Some(t0 - TimeDelta::seconds(7)),
        up_end,
        "ANSWERED",
    );
    let inside_start = t0 + TimeDelta::milliseconds(50);
    let inside_line = cdr_line(
        INSIDE_CALL,
        "+4930555111",
        "74957654321",
        "PJSIP/trunk-000000a0",
        "PJSIP/101-000000a1",
        inside_start,
        None,
        inside_start + TimeDelta::milliseconds(4_250),
        "NO ANSWER",
    );
    append(&cdr, &format!("{up_line}{inside_line}"));
    let fake = FakeAmi::start_on(addr, state.clone()).await.unwrap();
    let calls = wait_for(&app, &token, "/api/v1/calls", |v| {
        v["items"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    let items = calls["items"].as_array().unwrap();
    let up = items.iter().find(|c| c["call_id"] == UP_CALL).unwrap();
    assert_eq!(up["times"], "recovered", "{up}");
    assert_eq!(up["disposition"], "answered", "{up}");
    assert_eq!(
        time(&up["ended_at"]).timestamp_millis(),
        up_end.timestamp_millis(),
        "the CDR's end, not the reconnect: {up}"
    );
    let talk = (up_end - time(&up["answered_at"])).num_milliseconds() as f64 / 1000.0;
    assert!((up["talk_s"].as_f64().unwrap() - talk).abs() < 0.01, "{up}");
    let inside = items.iter().find(|c| c["call_id"] == INSIDE_CALL).unwrap();
    assert_eq!(inside["times"], "recovered", "{inside}");
    assert_eq!(inside["disposition"], "no_answer", "{inside}");
    assert_eq!(inside["caller"], "+4930555111", "{inside}");
    assert_eq!(inside["rang"], json!(["101"]), "{inside}");
    assert!(
        (inside["ring_s"].as_f64().unwrap() - 4.25).abs() < 0.01,
        "{inside}"
    );
    let leads = wait_for(&app, &token, "/api/v1/leads", |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|l| l["phone_e164"] == "+4930555111"))
    })
    .await;
    let lead: Vec<&Value> = leads
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["phone_e164"] == "+4930555111")
        .collect();
    assert_eq!(lead.len(), 1, "{leads}");
    assert_eq!(lead[0]["manager_id"], maria);
    assert_eq!(inside["lead_id"], lead[0]["id"], "{inside}");
    let tasks = wait_for(&app, &token, "/api/v1/tasks?done=false", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{tasks}");
    assert_eq!(tasks[0]["call_id"], INSIDE_CALL, "{tasks}");

    // A second outage, with the records written again (a rotated file, an
    // admin's copy), and Ringside started a second time on the same
    // database: the calls stay logged once. A new call inside this outage
    // is the sign that the records were read.
    let (before, resyncs) = (state.count("Login"), state.count("CoreShowChannels"));
    let again = TestApp::spawn_beside(&app, &env).await;
    wait_until("the second node logs in and resyncs", || {
        state.count("Login") > before && state.count("CoreShowChannels") > resyncs
    })
    .await;
    fake.shutdown().await;
    let t1 = Utc::now();
    let third = cdr_line(
        "1795499999.60",
        "+4930555222",
        "74957654321",
        "PJSIP/trunk-000000b0",
        "PJSIP/101-000000b1",
        t1,
        Some(t1 + TimeDelta::seconds(1)),
        t1 + TimeDelta::seconds(3),
        "ANSWERED",
    );
    append(&cdr, &format!("{up_line}{inside_line}{third}"));
    let (logins, resyncs) = (state.count("Login"), state.count("CoreShowChannels"));
    let fake = FakeAmi::start_on(addr, state.clone()).await.unwrap();
    wait_until("both nodes reconnect and resync", || {
        state.count("Login") >= logins + 2 && state.count("CoreShowChannels") >= resyncs + 2
    })
    .await;
    wait_for(&app, &token, "/api/v1/calls", |v| {
        v["items"].as_array().is_some_and(|a| a.len() == 3)
    })
    .await;
    for a in [&app, &again] {
        // A call's activity and lead are written just after its row.
        let deadline = tokio::time::Instant::now() + WAIT;
        while (count(a, "SELECT COUNT(*) FROM activities WHERE kind = 'call'").await < 3
            || count(a, "SELECT COUNT(*) FROM leads").await < 3)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(count(a, "SELECT COUNT(*) FROM calls").await, 3);
        assert_eq!(
            count(a, "SELECT COUNT(*) FROM activities WHERE kind = 'call'").await,
            3
        );
        // The callers of the three calls, each once.
        assert_eq!(count(a, "SELECT COUNT(*) FROM leads").await, 3);
        assert_eq!(count(a, "SELECT COUNT(*) FROM tasks").await, 1);
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn without_a_cdr_file_a_call_that_ended_in_an_outage_has_uncertain_times() {
    let (script, lost) = cut_after_answer();
    let state = FakeState::new(script);
    let fake = FakeAmi::start_on("127.0.0.1:0".parse().unwrap(), state.clone())
        .await
        .unwrap();
    let addr = fake.addr();
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", &fake.url()),
    ])
    .await;
    app.add_user("maria", "manager", None, &[]).await;
    let token = app.login("maria").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while state.position() < lost {
        assert!(tokio::time::Instant::now() < deadline, "the fake never cut");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fake.shutdown().await;
    let down = Utc::now();
    let fake = FakeAmi::start_on(addr, state.clone()).await.unwrap();
    let calls = wait_for(&app, &token, "/api/v1/calls", |v| {
        v["items"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    let call = &calls["items"][0];
    assert_eq!(call["times"], "uncertain", "{call}");
    // The last moment the call was known up, not the reconnect.
    let ended = time(&call["ended_at"]);
    assert!(ended <= down, "{call}");
    assert!(ended >= time(&call["answered_at"]), "{call}");
    fake.shutdown().await;
}
