//! Agent states and the frames of a call that moves between agents, from the
//! outside: the real server, CTI webhooks or a fake Asterisk replaying AMI
//! transcripts, and real WebSocket tabs.

mod support;

use std::time::Duration;

use ringside::telephony::ami::fake::{DropPoint, FakeAmi, FakeScript, FakeState, Pace};
use serde_json::{Value, json};
use support::{Tab, TestApp};

const WAIT: Duration = Duration::from_secs(20);
const CTI_TOKEN: &str = "cti-secret-0123456789";

fn script(trace: &str, speed: f64, hold: Duration) -> FakeScript {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/");
    let ami = std::fs::read(format!("{dir}{trace}.ami")).unwrap();
    let times = std::fs::read_to_string(format!("{dir}{trace}.times")).unwrap();
    let mut script = FakeScript::from_transcript(&ami, &times);
    script.pace = Pace::Recorded { speed };
    let shift = (hold.as_secs_f64() * speed * 1e9) as u64;
    for (t, _) in script.events.iter_mut().skip(1) {
        *t += shift;
    }
    script
}

/// A fake Asterisk playing `trace` at twice the recorded pace, `hold` after
/// the server logs in (time to open the tabs).
async fn fake_pbx(trace: &str, hold: Duration) -> FakeAmi {
    FakeAmi::start_on(
        "127.0.0.1:0".parse().unwrap(),
        FakeState::new(script(trace, 2.0, hold)),
    )
    .await
    .unwrap()
}

fn of_type<'a>(msgs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    msgs.iter().filter(|m| m["type"] == kind).collect()
}

fn states(msgs: &[Value]) -> Vec<String> {
    of_type(msgs, "agent.state")
        .iter()
        .filter_map(|m| m["state"].as_str().map(str::to_owned))
        .collect()
}

/// Reads the tab until `user_id`'s `agent.state` says `state`; returns what came.
async fn until_state(tab: &mut Tab, state: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let got = tab.until("agent.state", WAIT).await;
        let done = got.last().is_some_and(|m| m["state"] == state);
        seen.extend(got);
        if done {
            return seen;
        }
    }
}

/// Like `until_state`, unless `got` (read already) ends in that state.
async fn state_after(tab: &mut Tab, got: &[Value], state: &str) {
    if states(got).last().map(String::as_str) != Some(state) {
        until_state(tab, state).await;
    }
}

async fn my_state(app: &TestApp, token: &str) -> String {
    let (s, v) = app.get(token, "/api/v1/me/state").await;
    assert_eq!(s, 200, "{v}");
    v["state"].as_str().unwrap_or_default().to_owned()
}

async fn cti(app: &TestApp, body: Value) {
    let (s, v) = app.post(CTI_TOKEN, "/api/v1/cti/events", body).await;
    assert_eq!(s, 202, "{v}");
}

#[tokio::test]
async fn a_call_handed_on_through_cti_is_answered_by_its_target_and_leaves_the_first_agent() {
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "DE"),
        ("RINGSIDE_CTI_TOKENS", &format!("pbx={CTI_TOKEN}")),
        // Long enough to be seen; choosing a state ends it.
        ("RINGSIDE_WRAP_UP_SECONDS", "600"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("clara", "agent", None, &["103"]).await;
    let anna = app.login("anna").await;
    let clara = app.login("clara").await;
    let mut a = Tab::open(&app, &anna, None).await;
    let mut c = Tab::open(&app, &clara, None).await;
    until_state(&mut a, "available").await;
    until_state(&mut c, "available").await;

    cti(
        &app,
        json!({"event": "newCall", "call_id": "t-1", "from": "+4930123456", "extension": "101"}),
    )
    .await;
    a.until("call.ringing", WAIT).await;
    cti(
        &app,
        json!({"event": "answer", "call_id": "t-1", "extension": "101"}),
    )
    .await;
    let got = a.until("call.answered", WAIT).await;
    assert_eq!(got.last().unwrap()["by_you"], true);
    state_after(&mut a, &got, "on_call").await;
    assert_eq!(my_state(&app, &anna).await, "on_call");

    // On a call, a pause is refused with a reason, not answered with 200.
    let (s, v) = app
        .send(
            "PUT",
            &anna,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "on_call", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );

    // The call goes on to 103, who answers.
    cti(
        &app,
        json!({"event": "newCall", "call_id": "t-1", "from": "+4930123456", "extension": "103"}),
    )
    .await;
    let ring = c.until("call.ringing", WAIT).await;
    assert_eq!(ring.last().unwrap()["caller"]["e164"], "+4930123456");
    state_after(&mut c, &ring, "ringing").await;
    cti(
        &app,
        json!({"event": "answer", "call_id": "t-1", "extension": "103"}),
    )
    .await;

    // The target: told it is theirs, on a call.
    let got = c.until("call.answered", WAIT).await;
    let answered = got.last().unwrap();
    assert_eq!(answered["call_id"], "cti:pbx:t-1");
    assert_eq!(answered["agent"], "103");
    assert_eq!(answered["by_you"], true);
    let transferred = of_type(&got, "call.transferred");
    assert_eq!(transferred.len(), 1, "{got:?}");
    assert_eq!(transferred[0]["from"], "101");
    assert_eq!(transferred[0]["to"], "103");
    assert_eq!(transferred[0]["by_you"], true);
    state_after(&mut c, &got, "on_call").await;
    assert_eq!(my_state(&app, &clara).await, "on_call");

    // The first agent: told the call left them, in wrap-up while 103 talks.
    let got = a.until("call.answered", WAIT).await;
    let answered = got.last().unwrap();
    assert_eq!(answered["agent"], "103");
    assert_eq!(answered["by_you"], false);
    let transferred = of_type(&got, "call.transferred");
    assert_eq!(transferred.len(), 1, "{got:?}");
    assert_eq!(transferred[0]["by_you"], false);
    assert_eq!(transferred[0]["kind"], "blind");
    state_after(&mut a, &got, "wrap_up").await;
    assert_eq!(my_state(&app, &anna).await, "wrap_up");

    // Choosing a state ends the wrap-up and sticks.
    let (s, v) = app
        .send(
            "PUT",
            &anna,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "paused");
    assert_eq!(v["reason"], "lunch");

    cti(&app, json!({"event": "hangup", "call_id": "t-1"})).await;
    let got = c.until("call.ended", WAIT).await;
    assert_eq!(got.last().unwrap()["disposition"], "answered");
    until_state(&mut c, "wrap_up").await;
    let got = a.until("call.ended", WAIT).await;
    assert_eq!(got.last().unwrap()["call_id"], "cti:pbx:t-1");
    assert_eq!(my_state(&app, &anna).await, "paused");
    let (s, v) = app
        .send(
            "PUT",
            &clara,
            "/api/v1/me/state",
            json!({"state": "available"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "available");
}

#[tokio::test]
async fn a_blind_transfer_through_asterisk_puts_the_target_on_the_call() {
    let fake = fake_pbx("synthetic_blind_transfer", Duration::from_secs(3)).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_WRAP_UP_SECONDS", "600"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("boris", "agent", None, &["102"]).await;
    let anna = app.login("anna").await;
    let boris = app.login("boris").await;
    let mut a = Tab::open(&app, &anna, None).await;
    let mut b = Tab::open(&app, &boris, None).await;

    let from_a = a.until("call.ended", WAIT).await;
    let from_b = b.until("call.ended", WAIT).await;
    let kinds = |msgs: &[Value]| -> Vec<String> {
        msgs.iter()
            .filter_map(|m| m["type"].as_str())
            .filter(|t| t.starts_with("call."))
            .map(str::to_owned)
            .collect()
    };

    // 101 answered, handed the caller on, and was told 102 has them; their
    // wrap-up began when they left the caller, before the call ended.
    assert_eq!(
        kinds(&from_a),
        [
            "call.ringing",
            "call.answered",
            "call.transferred",
            "call.answered",
            "call.ended"
        ],
        "{from_a:?}"
    );
    let answered = of_type(&from_a, "call.answered");
    assert_eq!(
        (&answered[0]["agent"], &answered[0]["by_you"]),
        (&json!("101"), &json!(true))
    );
    assert_eq!(
        (&answered[1]["agent"], &answered[1]["by_you"]),
        (&json!("102"), &json!(false))
    );
    let t = of_type(&from_a, "call.transferred")[0];
    assert_eq!(
        (&t["from"], &t["to"], &t["kind"], &t["by_you"]),
        (&json!("101"), &json!("102"), &json!("blind"), &json!(false))
    );
    let wrap_at = from_a
        .iter()
        .position(|m| m["type"] == "agent.state" && m["state"] == "wrap_up")
        .expect("101 goes to wrap-up");
    let ended_at = from_a
        .iter()
        .position(|m| m["type"] == "call.ended")
        .unwrap();
    assert!(wrap_at < ended_at, "{from_a:?}");

    // 102 rang with the caller's card, answered and talked until the end.
    assert_eq!(
        kinds(&from_b),
        [
            "call.transferred",
            "call.ringing",
            "call.answered",
            "call.ended"
        ],
        "{from_b:?}"
    );
    assert_eq!(of_type(&from_b, "call.transferred")[0]["by_you"], true);
    let answered = of_type(&from_b, "call.answered")[0];
    assert_eq!(
        (&answered["agent"], &answered["by_you"]),
        (&json!("102"), &json!(true))
    );
    let mut seen = states(&from_b);
    if seen.last().map(String::as_str) != Some("wrap_up") {
        seen.extend(states(&until_state(&mut b, "wrap_up").await));
    }
    let on_call = seen.iter().position(|s| s == "on_call").expect("on_call");
    let ringing = seen.iter().position(|s| s == "ringing").expect("ringing");
    assert!(ringing < on_call, "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("wrap_up"), "{seen:?}");
    assert_eq!(my_state(&app, &boris).await, "wrap_up");
    assert_eq!(my_state(&app, &anna).await, "wrap_up");
}

#[tokio::test]
async fn after_a_click_to_call_the_agent_is_free_again_and_a_pause_sticks() {
    let fake = fake_pbx("click_to_call", Duration::from_secs(3)).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_WRAP_UP_SECONDS", "1"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let mut a = Tab::open(&app, &anna, None).await;

    let mut seen = until_state(&mut a, "on_call").await;
    seen.extend(until_state(&mut a, "wrap_up").await);
    seen.extend(until_state(&mut a, "available").await);
    assert_eq!(my_state(&app, &anna).await, "available");
    let (s, v) = app
        .send(
            "PUT",
            &anna,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "paused");
    until_state(&mut a, "paused").await;
    assert_eq!(my_state(&app, &anna).await, "paused");
}

#[tokio::test]
async fn a_call_rebuilt_after_a_reconnect_that_is_gone_after_a_restart_frees_the_agent() {
    // The call starts and is answered while the link is down: it is rebuilt
    // from CoreShowChannels at the reconnect. Asterisk then restarts, and the
    // call is gone.
    let mut s = script("direct_answered", 2.0, Duration::from_secs(4));
    let bridged = s
        .events
        .iter()
        .position(|(_, m)| m.event() == Some("BridgeEnter"))
        .unwrap()
        + 1;
    let mut after_restart = s.clone();
    after_restart.events.truncate(1);
    s.events.truncate(bridged);
    // The greeting at login and one event after the hold are seen.
    s.drops = vec![DropPoint {
        after_events: 2,
        lose_events: bridged - 2,
    }];
    let state = FakeState::new(s);
    let fake = FakeAmi::start_on("127.0.0.1:0".parse().unwrap(), state.clone())
        .await
        .unwrap();
    let addr = fake.addr();
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_WRAP_UP_SECONDS", "1"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let mut a = Tab::open(&app, &anna, None).await;

    until_state(&mut a, "on_call").await;
    assert_eq!(my_state(&app, &anna).await, "on_call");
    fake.shutdown().await;
    let fake = FakeAmi::start_on(addr, FakeState::new(after_restart))
        .await
        .unwrap();
    until_state(&mut a, "wrap_up").await;
    until_state(&mut a, "available").await;
    let (s, v) = app
        .send(
            "PUT",
            &anna,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "paused");
    fake.shutdown().await;
}

#[tokio::test]
async fn an_attended_transfer_hands_the_caller_card_to_the_target_and_frees_both_agents() {
    let fake = fake_pbx("synthetic_attended_transfer", Duration::from_secs(3)).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_WRAP_UP_SECONDS", "1"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("boris", "agent", None, &["102"]).await;
    let anna = app.login("anna").await;
    let boris = app.login("boris").await;
    let mut a = Tab::open(&app, &anna, None).await;
    let mut b = Tab::open(&app, &boris, None).await;
    let call = "1795427200.60";

    let from_b = {
        let mut seen = Vec::new();
        while !seen
            .iter()
            .any(|m: &Value| m["type"] == "call.ended" && m["call_id"] == call)
        {
            seen.extend(b.until("call.ended", WAIT).await);
        }
        seen
    };
    // 102 took the caller over from 101: the caller's card came with it, and
    // the consultation's pop closed when it became part of the call.
    let t = of_type(&from_b, "call.transferred");
    assert_eq!(t.len(), 1, "{from_b:?}");
    assert_eq!(
        (&t[0]["call_id"], &t[0]["from"], &t[0]["to"], &t[0]["kind"]),
        (
            &json!(call),
            &json!("101"),
            &json!("102"),
            &json!("attended")
        )
    );
    assert_eq!(t[0]["by_you"], true);
    assert_eq!(t[0]["caller"]["e164"], "+4930123456");
    let mine: Vec<&Value> = of_type(&from_b, "call.answered")
        .into_iter()
        .filter(|m| m["call_id"] == call)
        .collect();
    assert_eq!(mine.len(), 1, "{from_b:?}");
    assert_eq!(mine[0]["by_you"], true);
    let consultation: Vec<&Value> = of_type(&from_b, "call.ended")
        .into_iter()
        .filter(|m| m["call_id"] != call)
        .collect();
    assert_eq!(consultation.len(), 1, "{from_b:?}");
    assert_eq!(consultation[0]["merged_into"], call);

    let from_a = a.until("call.ended", WAIT).await;
    let answered = of_type(&from_a, "call.answered");
    assert_eq!(
        answered.last().map(|m| (&m["agent"], &m["by_you"])),
        Some((&json!("102"), &json!(false))),
        "{from_a:?}"
    );
    // Nobody is left on a call that is over.
    state_after(&mut a, &from_a, "available").await;
    until_state(&mut b, "available").await;
    assert_eq!(my_state(&app, &anna).await, "available");
    assert_eq!(my_state(&app, &boris).await, "available");
}

/// A server with 101 (anna) and 102 (boris) and their tabs open, listening
/// to a fake Asterisk replaying the real capture `trace` at four times its
/// pace; wrap-ups of a second.
async fn two_agents_on(trace: &str) -> (FakeAmi, TestApp, [String; 2], Tab, Tab) {
    let fake = FakeAmi::start_on(
        "127.0.0.1:0".parse().unwrap(),
        FakeState::new(script(trace, 4.0, Duration::from_secs(3))),
    )
    .await
    .unwrap();
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "DE"),
        ("RINGSIDE_WRAP_UP_SECONDS", "1"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("boris", "agent", None, &["102"]).await;
    let anna = app.login("anna").await;
    let boris = app.login("boris").await;
    let a = Tab::open(&app, &anna, None).await;
    let b = Tab::open(&app, &boris, None).await;
    (fake, app, [anna, boris], a, b)
}

/// Everything the tab gets until `call` ends.
async fn until_ended(tab: &mut Tab, call: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|m: &Value| m["type"] == "call.ended" && m["call_id"] == call)
    {
        seen.extend(tab.until("call.ended", WAIT).await);
    }
    seen
}

/// The call frames and agent states of a tab, in order, as short words
/// (`call.answered`, `on_call`…).
fn story(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m["type"].as_str() {
            Some("agent.state") => m["state"].as_str().map(str::to_owned),
            Some(t) if t.starts_with("call.") => Some(t.to_owned()),
            _ => None,
        })
        .collect()
}

/// The last agent state the tab showed before the first frame of `kind`.
fn state_before(msgs: &[Value], kind: &str) -> Option<String> {
    let at = msgs.iter().position(|m| m["type"] == kind)?;
    states(&msgs[..at]).last().cloned()
}

/// The agent states the tab showed after the first frame of `kind`.
fn state_after_frame(msgs: &[Value], kind: &str) -> Vec<String> {
    let at = msgs
        .iter()
        .position(|m| m["type"] == kind)
        .unwrap_or(msgs.len());
    states(&msgs[at..])
}

/// Both agents back to `available` once their wrap-ups are over, by the
/// API (each agent's own state, and the manager's list of all).
async fn both_free_after(app: &TestApp, tokens: &[String; 2]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    for t in tokens {
        while my_state(app, t).await != "available" {
            assert!(tokio::time::Instant::now() < deadline, "never available");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    app.add_user("maria", "manager", None, &[]).await;
    let manager = app.login("maria").await;
    let (s, v) = app.get(&manager, "/api/v1/agents").await;
    assert_eq!(s, 200, "{v}");
    let list = v.as_array().cloned().unwrap_or_default();
    assert!(list.len() >= 2, "{v}");
    for agent in &list {
        assert!(
            !matches!(agent["state"].as_str(), Some("ringing" | "on_call")),
            "{v}"
        );
    }
}

#[tokio::test]
async fn in_a_real_attended_transfer_the_target_is_on_the_call_from_the_consultation() {
    let (_fake, app, tokens, mut a, mut b) = two_agents_on("attended_transfer").await;
    let call = "1796305660.0";
    let from_b = until_ended(&mut b, call).await;
    let from_a = until_ended(&mut a, call).await;

    // 102 picked up the consultation: on a call with 101, not ringing, until
    // 101 handed the caller over.
    let seen = story(&from_b);
    let ringing = seen.iter().position(|s| s == "ringing");
    let handed = seen.iter().position(|s| s == "call.transferred");
    assert!(ringing.is_some() && ringing < handed, "{seen:?}");
    assert_eq!(
        state_before(&from_b, "call.transferred").as_deref(),
        Some("on_call"),
        "{seen:?}"
    );
    // At the hand-over: the caller's card with the transfer, the answer as
    // theirs, still on the call; wrap-up only after the end.
    let t = of_type(&from_b, "call.transferred");
    assert_eq!(t.len(), 1, "{seen:?}");
    assert_eq!(
        (&t[0]["call_id"], &t[0]["from"], &t[0]["to"], &t[0]["kind"]),
        (
            &json!(call),
            &json!("101"),
            &json!("102"),
            &json!("attended")
        )
    );
    assert_eq!(t[0]["by_you"], true);
    assert_eq!(t[0]["caller"]["e164"], "+4930123456");
    let mine: Vec<&Value> = of_type(&from_b, "call.answered")
        .into_iter()
        .filter(|m| m["agent"] == "102")
        .collect();
    assert_eq!(mine.len(), 1, "{seen:?}");
    assert_eq!(mine[0]["by_you"], true);
    let after = &seen[handed.unwrap()..];
    let end = after.iter().position(|s| s == "call.ended").unwrap();
    assert!(
        after[..end]
            .iter()
            .all(|s| s.starts_with("call.") || s == "on_call"),
        "{seen:?}"
    );
    assert_eq!(
        state_before(&from_b, "call.ended").as_deref(),
        Some("on_call"),
        "{seen:?}"
    );

    // 101 held the caller through the consultation (on the call), and left
    // it at the hand-over: wrap-up before the call ended.
    let seen = story(&from_a);
    assert_eq!(
        state_before(&from_a, "call.transferred").as_deref(),
        Some("on_call"),
        "{seen:?}"
    );
    let t = of_type(&from_a, "call.transferred");
    assert_eq!(t.len(), 1, "{seen:?}");
    assert_eq!(t[0]["by_you"], false);
    assert_eq!(
        state_after_frame(&from_a, "call.transferred")
            .first()
            .map(String::as_str),
        Some("wrap_up"),
        "{seen:?}"
    );
    state_after(&mut b, &from_b, "wrap_up").await;
    both_free_after(&app, &tokens).await;
}

#[tokio::test]
async fn in_a_real_blind_transfer_the_first_agent_wraps_up_and_the_target_answers() {
    let (_fake, app, tokens, mut a, mut b) = two_agents_on("blind_transfer").await;
    let call = "1796305707.0";
    let from_b = until_ended(&mut b, call).await;
    let from_a = until_ended(&mut a, call).await;

    let seen = story(&from_a);
    assert_eq!(
        state_before(&from_a, "call.transferred").as_deref(),
        Some("on_call"),
        "{seen:?}"
    );
    let t = of_type(&from_a, "call.transferred");
    assert_eq!(t.len(), 1, "{seen:?}");
    assert_eq!(
        (&t[0]["from"], &t[0]["to"], &t[0]["kind"], &t[0]["by_you"]),
        (&json!("101"), &json!("102"), &json!("blind"), &json!(false))
    );
    assert_eq!(
        state_after_frame(&from_a, "call.transferred")
            .first()
            .map(String::as_str),
        Some("wrap_up"),
        "{seen:?}"
    );

    let seen = story(&from_b);
    let mine: Vec<&Value> = of_type(&from_b, "call.answered")
        .into_iter()
        .filter(|m| m["agent"] == "102")
        .collect();
    assert_eq!(mine.len(), 1, "{seen:?}");
    assert_eq!(mine[0]["by_you"], true);
    assert_eq!(
        state_before(&from_b, "call.answered").as_deref(),
        Some("ringing"),
        "{seen:?}"
    );
    assert_eq!(
        state_before(&from_b, "call.ended").as_deref(),
        Some("on_call"),
        "{seen:?}"
    );
    state_after(&mut b, &from_b, "wrap_up").await;
    both_free_after(&app, &tokens).await;
}

#[tokio::test]
async fn a_real_consultation_nobody_answers_leaves_the_target_free_and_the_call_with_its_agent() {
    let (_fake, app, tokens, mut a, mut b) = two_agents_on("attended_no_answer").await;
    let call = "1796307847.0";
    // 102 rang for the consultation and is free again once it is cancelled,
    // while the call still goes on with 101.
    let rang = until_state(&mut b, "ringing").await;
    assert_eq!(of_type(&rang, "call.ringing").len(), 1, "{rang:?}");
    until_state(&mut b, "available").await;
    assert_eq!(my_state(&app, &tokens[1]).await, "available");
    assert_eq!(my_state(&app, &tokens[0]).await, "on_call");

    let from_a = until_ended(&mut a, call).await;
    let seen = story(&from_a);
    assert!(of_type(&from_a, "call.transferred").is_empty(), "{seen:?}");
    assert_eq!(
        state_before(&from_a, "call.ended").as_deref(),
        Some("on_call"),
        "{seen:?}"
    );
    let ended = of_type(&from_a, "call.ended");
    assert_eq!(ended[0]["disposition"], "answered", "{seen:?}");
    let from_b = until_ended(&mut b, call).await;
    assert!(of_type(&from_b, "call.transferred").is_empty());
    assert!(
        !states(&from_b).iter().any(|s| s != "available"),
        "{from_b:?}"
    );
    both_free_after(&app, &tokens).await;
}

#[tokio::test]
async fn a_real_hold_keeps_the_agent_on_the_call() {
    let (_fake, app, tokens, mut a, _b) = two_agents_on("hold_unhold").await;
    let from_a = until_ended(&mut a, "1796304908.0").await;
    let seen = story(&from_a);
    let answered = seen.iter().position(|s| s == "call.answered");
    let on = seen.iter().position(|s| s == "on_call");
    assert!(answered.is_some() && on.is_some(), "{seen:?}");
    // From the answer to the end, through the hold: on the call.
    let from = answered.min(on).unwrap();
    assert!(
        seen[from..]
            .iter()
            .all(|s| s.starts_with("call.") || s == "on_call"),
        "{seen:?}"
    );
    state_after(&mut a, &from_a, "wrap_up").await;
    both_free_after(&app, &tokens).await;
}

/// A fake Asterisk playing `events` (`(seconds after login, headers)`) at
/// the given times, refusing `refusals`.
async fn fake_events(events: &[(f64, &[(&str, &str)])], refusals: &[(&str, &str)]) -> FakeAmi {
    let mut script = FakeScript::from_transcript(b"", "");
    script.pace = Pace::Recorded { speed: 1.0 };
    // The fake plays its times from the first event: one at 0 s.
    let boot = ringside::telephony::ami::codec::Message::from_pairs([
        ("Event", "FullyBooted"),
        ("Status", "Fully Booted"),
    ]);
    script.events = std::iter::once((0, boot))
        .chain(events.iter().map(|(t, headers)| {
            (
                (t * 1e9) as u64,
                ringside::telephony::ami::codec::Message::from_pairs(headers.iter().copied()),
            )
        }))
        .collect();
    script.refusals = refusals
        .iter()
        .map(|(a, m)| (a.to_string(), m.to_string()))
        .collect();
    FakeAmi::start_on("127.0.0.1:0".parse().unwrap(), FakeState::new(script))
        .await
        .unwrap()
}

/// Reads the tab until an `agent.state` for which `done` holds.
async fn until_frame(tab: &mut Tab, done: impl Fn(&Value) -> bool) -> Value {
    loop {
        let got = tab.until("agent.state", WAIT).await;
        let last = got.last().unwrap().clone();
        if done(&last) {
            return last;
        }
    }
}

async fn until_api(app: &TestApp, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (s, v) = app.get(token, "/api/v1/me/state").await;
        assert_eq!(s, 200, "{v}");
        if done(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "state never matched: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const LOCAL_MEMBER: &[(&str, &str)] = &[
    ("Event", "QueueMemberAdded"),
    ("Queue", "sales"),
    ("MemberName", "Anna Ivanova"),
    ("Interface", "Local/101@from-queue/n"),
    ("StateInterface", "PJSIP/101"),
    ("Paused", "0"),
];

#[tokio::test]
async fn a_pause_made_on_the_pbx_is_the_agents_state_and_a_pause_here_reaches_each_member() {
    let pause: &[(&str, &str)] = &[
        ("Event", "QueueMemberPause"),
        ("Queue", "sales"),
        ("MemberName", "Anna Ivanova"),
        ("Interface", "Local/101@from-queue/n"),
        ("StateInterface", "PJSIP/101"),
        ("Paused", "1"),
        ("PausedReason", "phonebreak"),
    ];
    let unpause: &[(&str, &str)] = &[
        ("Event", "QueueMemberPause"),
        ("Queue", "sales"),
        ("Interface", "Local/101@from-queue/n"),
        ("StateInterface", "PJSIP/101"),
        ("Paused", "0"),
    ];
    let pjsip_member: &[(&str, &str)] = &[
        ("Event", "QueueMemberAdded"),
        ("Queue", "support"),
        ("Interface", "PJSIP/101"),
        ("StateInterface", "PJSIP/101"),
        ("Paused", "0"),
    ];
    let fake = fake_events(
        &[
            // After the fake's (empty) answer to QueueStatus on connect.
            (1.5, LOCAL_MEMBER),
            (1.5, pjsip_member),
            (3.0, pause),
            (5.0, unpause),
        ],
        &[],
    )
    .await;
    let app = TestApp::spawn_with(&[("RINGSIDE_AMI_URL", &fake.url())]).await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let mut a = Tab::open(&app, &anna, None).await;

    // Asterisk's pause: the agent's state, with its reason, on the tab and in the API.
    let f = until_frame(&mut a, |f| f["state"] == "paused").await;
    assert_eq!(f["reason"], "phonebreak", "{f}");
    let sales = f["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "sales")
        .cloned()
        .expect("sales membership");
    assert_eq!(sales["paused"], true, "{f}");
    assert_eq!(sales["interface"], "Local/101@from-queue/n");
    let v = until_api(&app, &anna, |v| v["state"] == "paused").await;
    assert_eq!(v["reason"], "phonebreak", "{v}");
    // And its unpause.
    until_frame(&mut a, |f| f["state"] == "available").await;
    let v = until_api(&app, &anna, |v| v["state"] == "available").await;
    assert_eq!(v["queues"].as_array().unwrap().len(), 2, "{v}");

    // Ringside's pause goes to each member by its own interface and queue.
    let (s, v) = app
        .send(
            "PUT",
            &anna,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let pauses: Vec<(String, String, String)> = fake
        .state()
        .actions()
        .iter()
        .filter(|m| m.get("Action") == Some("QueuePause"))
        .map(|m| {
            (
                m.get("Interface").unwrap_or_default().to_owned(),
                m.get("Queue").unwrap_or_default().to_owned(),
                m.get("Paused").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        pauses.contains(&(
            "Local/101@from-queue/n".into(),
            "sales".into(),
            "true".into()
        )),
        "{pauses:?}"
    );
    assert!(
        pauses.contains(&("PJSIP/101".into(), "support".into(), "true".into())),
        "{pauses:?}"
    );
}

#[tokio::test]
async fn a_pause_the_pbx_refuses_is_answered_with_its_reason_and_the_state_stays() {
    let fake = fake_events(
        &[(1.5, LOCAL_MEMBER)],
        &[("QueuePause", "Interface not found")],
    )
    .await;
    let app = TestApp::spawn_with(&[("RINGSIDE_AMI_URL", &fake.url())]).await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let _a = Tab::open(&app, &anna, None).await;
    until_api(&app, &anna, |v| {
        v["state"] == "available" && v["queues"].as_array().is_some_and(|q| q.len() == 1)
    })
    .await;
    let (s, v) = app
        .send(
            "PUT",
            &anna,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["code"], "pause_refused", "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("Interface not found"), "{msg}");
    assert!(msg.contains("Local/101@from-queue/n"), "{msg}");
    assert_eq!(my_state(&app, &anna).await, "available");
}

#[tokio::test]
async fn a_phone_the_pbx_cannot_reach_makes_the_agent_unreachable_until_it_is_back() {
    let down: &[(&str, &str)] = &[
        ("Event", "ContactStatus"),
        ("URI", "sip:101@127.0.0.1:5070"),
        ("ContactStatus", "Unreachable"),
        ("AOR", "101"),
        ("EndpointName", "101"),
    ];
    let up: &[(&str, &str)] = &[
        ("Event", "ContactStatus"),
        ("URI", "sip:101@127.0.0.1:5070"),
        ("ContactStatus", "Reachable"),
        ("AOR", "101"),
        ("EndpointName", "101"),
    ];
    let fake = fake_events(&[(3.0, down), (5.0, up)], &[]).await;
    let app = TestApp::spawn_with(&[("RINGSIDE_AMI_URL", &fake.url())]).await;
    app.add_user("anna", "agent", Some("Sales"), &["101"]).await;
    app.add_user("sam", "supervisor", Some("Sales"), &[]).await;
    let anna = app.login("anna").await;
    let sam = app.login("sam").await;
    let mut a = Tab::open(&app, &anna, None).await;
    let mut s = Tab::open(&app, &sam, None).await;
    let f = until_frame(&mut a, |f| f["state"] == "unreachable").await;
    assert_eq!(f["phone"], "unreachable", "{f}");
    let f = until_frame(&mut s, |f| {
        f["login"] == "anna" && f["state"] == "unreachable"
    })
    .await;
    assert_eq!(f["phone"], "unreachable", "{f}");
    until_frame(&mut a, |f| f["state"] == "available").await;
    let v = until_api(&app, &anna, |v| v["state"] == "available").await;
    assert!(v["phone"].is_null(), "{v}");
}

#[tokio::test]
async fn agents_lists_every_agent_offline_when_logged_out_and_no_phone_is_never_available() {
    let app = TestApp::spawn().await;
    app.add_user("maria", "manager", None, &[]).await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("olga", "agent", None, &[]).await;
    app.add_user("ivan", "supervisor", None, &["109"]).await;
    let maria = app.login("maria").await;
    let olga = app.login("olga").await;
    let mut o = Tab::open(&app, &olga, None).await;
    let f = until_frame(&mut o, |f| f["login"] == "olga").await;
    assert_eq!(f["state"], "unreachable", "{f}");
    assert_eq!(f["phone"], "none", "{f}");
    let (s, v) = app.get(&maria, "/api/v1/agents").await;
    assert_eq!(s, 200, "{v}");
    let by = |login: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|a| a["login"] == login)
            .cloned()
    };
    assert!(
        by("maria").is_none(),
        "a manager without a phone is no agent: {v}"
    );
    assert_eq!(by("anna").expect("anna listed")["state"], "offline", "{v}");
    assert_eq!(
        by("ivan").expect("a user with an extension")["state"],
        "offline"
    );
    assert_eq!(
        by("olga").expect("olga listed")["state"],
        "unreachable",
        "{v}"
    );
}

/// A transcript with the phones renamed (`PJSIP/101` → `PJSIP/anna-desk`).
fn renamed(trace: &str, names: &[(&str, &str)], hold: Duration) -> FakeScript {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/");
    let mut ami = std::fs::read_to_string(format!("{dir}{trace}.ami")).unwrap();
    for (from, to) in names {
        ami = ami.replace(from, to);
    }
    let times = std::fs::read_to_string(format!("{dir}{trace}.times")).unwrap();
    let mut script = FakeScript::from_transcript(ami.as_bytes(), &times);
    script.pace = Pace::Recorded { speed: 2.0 };
    let shift = (hold.as_secs_f64() * 2.0 * 1e9) as u64;
    for (t, _) in script.events.iter_mut().skip(1) {
        *t += shift;
    }
    script
}

#[tokio::test]
async fn a_user_with_two_named_devices_is_popped_on_both_and_the_call_is_theirs() {
    let script = renamed(
        "queue_ringall_answered",
        &[
            ("PJSIP/101", "PJSIP/anna-desk"),
            ("PJSIP/102", "PJSIP/anna-mobile"),
        ],
        Duration::from_secs(3),
    );
    let fake = FakeAmi::start_on("127.0.0.1:0".parse().unwrap(), FakeState::new(script))
        .await
        .unwrap();
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "DE"),
    ])
    .await;
    app.add_user("root", "admin", None, &[]).await;
    let root = app.login("root").await;
    let (s, v) = app
        .post(
            &root,
            "/api/v1/users",
            json!({"login": "anna", "name": "Anna Ivanova", "role": "agent",
                   "password": support::PASSWORD,
                   "devices": [{"device": "PJSIP/anna-desk"}, {"device": "PJSIP/anna-mobile"}]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["devices"].as_array().unwrap().len(), 2, "{v}");
    let anna_id = v["id"].as_i64().unwrap();
    let anna = app.login("anna").await;
    let mut a = Tab::open(&app, &anna, None).await;
    let mut agents = Vec::new();
    while agents.len() < 2 {
        let got = a.until("call.ringing", WAIT).await;
        agents.push(got.last().unwrap()["agent"].as_str().unwrap().to_owned());
    }
    agents.sort();
    assert_eq!(agents, ["PJSIP/anna-desk", "PJSIP/anna-mobile"]);
    // The call log row is hers: the desk phone answered.
    let deadline = tokio::time::Instant::now() + WAIT;
    let row = loop {
        let (_, v) = app.get(&root, "/api/v1/calls").await;
        if let Some(c) = v["items"].as_array().and_then(|i| i.first()).cloned() {
            break c;
        }
        assert!(tokio::time::Instant::now() < deadline, "no call logged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row["agent"], "PJSIP/anna-desk", "{row}");
    assert_eq!(row["agent_user_id"], anna_id, "{row}");
    assert_eq!(row["direction"], "inbound", "{row}");
}
