//! The AMI client against the fake Asterisk over real TCP: each captured
//! transcript gives the same calls as the offline replay, and a connection
//! or server lost mid-call still logs the call exactly once.

mod support;

use std::time::Duration;

use ringside::calls::{CallRecord, CallSession, Disposition};
use ringside::crm::phones::PhoneNormalizer;
use ringside::telephony::ami::client::{self, AmiClient, CallFeed, ClientConfig};
use ringside::telephony::ami::fake::{DropPoint, FakeAmi, FakeScript, FakeState, Pace};
use ringside::telephony::ami::replay;

const FIXTURES: &[&str] = &[
    "anonymous_caller",
    "attended_no_answer",
    "attended_transfer",
    "blind_transfer",
    "click_to_call",
    "cnam_special_chars",
    "core_restart_call_up",
    "direct_answered",
    "direct_busy",
    "direct_busy_e2e",
    "direct_no_answer",
    "hold_unhold",
    "queue_abandoned",
    "queue_abandoned_e2e",
    "queue_answered",
    "queue_ringall_answered",
    "synthetic_attended_transfer",
    "synthetic_blind_transfer",
    "synthetic_internal_call",
    "synthetic_outbound_busy",
    "synthetic_queue_local_members",
];

fn fixture(name: &str) -> (Vec<u8>, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/");
    let ami = std::fs::read(format!("{dir}{name}.ami")).expect("fixture transcript");
    let times = std::fs::read_to_string(format!("{dir}{name}.times")).expect("fixture times");
    (ami, times)
}

fn config(url: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(url.parse().expect("fake URL"));
    cfg.reconnect_min = Duration::from_millis(20);
    cfg.reconnect_max = Duration::from_millis(200);
    cfg.action_timeout = Duration::from_secs(2);
    cfg
}

/// The fields that do not depend on the clock.
fn outcome(r: &CallRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("record serializes");
    if let Some(o) = v.as_object_mut() {
        for k in [
            "started_at",
            "answered_at",
            "ended_at",
            "ring_s",
            "talk_s",
            "hold_s",
        ] {
            o.remove(k);
        }
        // Who talked, in order; when depends on the pace of the replay.
        if let Some(serde_json::Value::Array(segments)) = o.get_mut("segments") {
            for g in segments.iter_mut() {
                if let Some(g) = g.as_object_mut() {
                    g.retain(|k, _| k == "agent");
                }
            }
        }
    }
    v
}

fn record(s: &CallSession) -> CallRecord {
    let phones = PhoneNormalizer::new("RU").expect("region");
    s.to_record(Some(&phones))
}

async fn next_finished(feed: &mut CallFeed, within: Duration) -> Option<CallSession> {
    tokio::time::timeout(within, feed.finished.recv())
        .await
        .ok()
        .flatten()
}

async fn no_more(feed: &mut CallFeed) {
    if let Some(s) = next_finished(feed, Duration::from_millis(300)).await {
        panic!("a call was reported twice or wrongly: {s:?}");
    }
}

async fn collect(client: &AmiClient, feed: &mut CallFeed, n: usize) -> Vec<CallRecord> {
    let mut out = Vec::new();
    while out.len() < n {
        match next_finished(feed, Duration::from_secs(10)).await {
            Some(s) => out.push(record(&s)),
            None => panic!(
                "only {} of {n} calls finished (connected: {})",
                out.len(),
                client.is_connected()
            ),
        }
    }
    out
}

#[tokio::test]
async fn every_fixture_over_tcp_matches_offline_replay() {
    for name in FIXTURES {
        let (ami, times) = fixture(name);
        let offline = replay(&ami, Some(&times), "RU");
        assert!(!offline.is_empty(), "{name}: offline replay found no call");
        let fake = FakeAmi::start(FakeScript::from_transcript(&ami, &times))
            .await
            .expect("fake starts");
        let (client, mut feed) = client::start(config(&fake.url()));
        let live = collect(&client, &mut feed, offline.len()).await;
        // Every agent that rang was announced as a moment, with the caller.
        let mut rang = Vec::new();
        while let Ok(m) = feed.moments.try_recv() {
            if let ringside::calls::Moment::Ringing { agent, caller, .. } = m {
                assert!(
                    !caller.number.is_empty() || *name == "click_to_call",
                    "{name}: caller known at ring time"
                );
                rang.push(agent);
            }
        }
        let expected: Vec<String> = offline.iter().flat_map(|r| r.rang.clone()).collect();
        assert_eq!(rang, expected, "{name}: ringing moments");
        let a: Vec<_> = offline.iter().map(outcome).collect();
        let b: Vec<_> = live.iter().map(outcome).collect();
        assert_eq!(a, b, "{name}: TCP and offline replay disagree");
        fake.state().finished().await;
        no_more(&mut feed).await;
        client.stop();
        fake.shutdown().await;
    }
}

#[tokio::test]
async fn recorded_pace_keeps_durations() {
    let (ami, times) = fixture("direct_answered");
    let mut script = FakeScript::from_transcript(&ami, &times);
    script.pace = Pace::Recorded { speed: 2.0 };
    let fake = FakeAmi::start(script).await.expect("fake starts");
    let (client, mut feed) = client::start(config(&fake.url()));
    let r = collect(&client, &mut feed, 1).await.remove(0);
    assert_eq!(r.disposition, Disposition::Answered);
    // 2 s ring and 5 s talk, played twice as fast.
    assert!((r.ring_s - 1.0).abs() < 0.5, "ring {}", r.ring_s);
    assert!((r.talk_s - 2.5).abs() < 0.5, "talk {}", r.talk_s);
    client.stop();
    fake.shutdown().await;
}

#[tokio::test]
async fn md5_challenge_login_works() {
    let (ami, times) = fixture("direct_busy");
    let fake = FakeAmi::start(FakeScript::from_transcript(&ami, &times))
        .await
        .expect("fake starts");
    let mut cfg = config(&fake.url());
    cfg.auth = client::LoginAuth::Md5;
    let (client, mut feed) = client::start(cfg);
    let r = collect(&client, &mut feed, 1).await.remove(0);
    assert_eq!(r.disposition, Disposition::Busy);
    let actions = fake.state().actions();
    let login = actions
        .iter()
        .find(|a| a.get("Action") == Some("Login"))
        .expect("login sent");
    assert_eq!(
        login.get("Secret"),
        None,
        "the secret never crosses the wire"
    );
    assert_eq!(login.get("AuthType"), Some("md5"));
    client.stop();
    fake.shutdown().await;
}

#[tokio::test]
async fn wrong_secret_never_logs_in() {
    let (ami, times) = fixture("direct_answered");
    let fake = FakeAmi::start(FakeScript::from_transcript(&ami, &times))
        .await
        .expect("fake starts");
    let url = fake.url().replace(":secret@", ":wrong@");
    let (client, mut feed) = client::start(config(&url));
    assert!(
        next_finished(&mut feed, Duration::from_millis(500))
            .await
            .is_none()
    );
    assert!(!client.is_connected());
    assert_eq!(client.connects(), 0);
    assert_eq!(
        fake.state().position(),
        0,
        "no events for an unauthenticated client"
    );
    client.stop();
    fake.shutdown().await;
}

async fn wait_position(state: &FakeState, n: usize) {
    for _ in 0..2000 {
        if state.position() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the fake never reached event {n}");
}

/// Index of the first event of `name` in the fake's script.
fn index_of(script: &FakeScript, name: &str) -> usize {
    script
        .events
        .iter()
        .position(|(_, m)| m.event() == Some(name))
        .expect("event in script")
}

#[tokio::test]
async fn dropped_connection_mid_call_logs_the_call_once() {
    let (ami, times) = fixture("queue_answered");
    let mut script = FakeScript::from_transcript(&ami, &times);
    let cut = index_of(&script, "AgentConnect") + 1;
    script.drops = vec![DropPoint {
        after_events: cut,
        lose_events: 0,
    }];
    let fake = FakeAmi::start(script).await.expect("fake starts");
    let (client, mut feed) = client::start(config(&fake.url()));
    let r = collect(&client, &mut feed, 1).await.remove(0);
    assert_eq!(r.disposition, Disposition::Answered);
    assert_eq!(r.agent.as_deref(), Some("102"));
    assert_eq!(r.queue.as_deref(), Some("sales"));
    assert!(client.connects() >= 2, "the client reconnected");
    no_more(&mut feed).await;
    client.stop();
    fake.shutdown().await;
}

#[tokio::test]
async fn call_that_ends_while_asterisk_is_down_is_closed_once_at_resync() {
    let (ami, times) = fixture("queue_answered");
    let mut script = FakeScript::from_transcript(&ami, &times);
    let cut = index_of(&script, "AgentConnect") + 1;
    // Everything after the answer (talk, hangups) happens while we are away.
    let rest = script.events.len() - cut;
    script.drops = vec![DropPoint {
        after_events: cut,
        lose_events: rest,
    }];
    let state = FakeState::new(script);
    let fake = FakeAmi::start_on("127.0.0.1:0".parse().expect("addr"), state.clone())
        .await
        .expect("fake starts");
    let addr = fake.addr();
    let url = fake.url();
    let mut cfg = config(&url);
    // Slow enough that the server is surely down when the client retries.
    cfg.reconnect_min = Duration::from_millis(400);
    let (client, mut feed) = client::start(cfg);
    // Kill the server as soon as the connection is cut.
    wait_position(&state, cut + rest).await;
    fake.shutdown().await;
    assert!(
        next_finished(&mut feed, Duration::from_millis(100))
            .await
            .is_none()
    );
    assert_eq!(
        client.live_calls().len(),
        1,
        "the call is still believed up"
    );
    let fake = FakeAmi::start_on(addr, state.clone())
        .await
        .expect("fake restarts");
    let r = collect(&client, &mut feed, 1).await.remove(0);
    assert_eq!(r.call_id, "1795426750.12");
    assert_eq!(r.disposition, Disposition::Answered);
    assert_eq!(r.agent.as_deref(), Some("102"));
    assert!(client.live_calls().is_empty());
    no_more(&mut feed).await;
    client.stop();
    fake.shutdown().await;
}

#[tokio::test]
async fn call_still_up_after_restart_carries_on() {
    let (ami, times) = fixture("direct_answered");
    let mut script = FakeScript::from_transcript(&ami, &times);
    let cut = index_of(&script, "BridgeEnter") + 1;
    script.drops = vec![DropPoint {
        after_events: cut,
        lose_events: 0,
    }];
    let state = FakeState::new(script);
    let fake = FakeAmi::start_on("127.0.0.1:0".parse().expect("addr"), state.clone())
        .await
        .expect("fake starts");
    let addr = fake.addr();
    let (client, mut feed) = client::start(config(&fake.url()));
    // Kill the server at the cut, then start it again before the call ends.
    wait_position(&state, cut).await;
    fake.shutdown().await;
    let fake = FakeAmi::start_on(addr, state.clone())
        .await
        .expect("fake restarts");
    let r = collect(&client, &mut feed, 1).await.remove(0);
    assert_eq!(r.disposition, Disposition::Answered);
    assert_eq!(r.agent.as_deref(), Some("101"));
    assert_eq!(
        r.recording.as_deref(),
        Some("/var/spool/asterisk/monitor/1795426662.2.wav")
    );
    no_more(&mut feed).await;
    client.stop();
    fake.shutdown().await;
}

#[tokio::test]
async fn actions_are_correlated_and_lists_collected() {
    let (ami, times) = fixture("queue_answered");
    let mut script = FakeScript::from_transcript(&ami, &times);
    // Hold the stream mid-call so the channel list is not empty.
    let cut = index_of(&script, "AgentConnect") + 1;
    script.events.truncate(cut);
    let fake = FakeAmi::start(script).await.expect("fake starts");
    let (client, _feed) = client::start(config(&fake.url()));
    for _ in 0..200 {
        if client.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fake.state().finished().await;
    let pong = client
        .action(ringside::telephony::ami::codec::Action::new("Ping"))
        .await
        .expect("pong");
    assert_eq!(pong.get("Ping"), Some("Pong"));
    let list = client
        .list(ringside::telephony::ami::codec::Action::new(
            "CoreShowChannels",
        ))
        .await
        .expect("channel list");
    let mut names: Vec<_> = list.items.iter().filter_map(|m| m.get("Channel")).collect();
    names.sort();
    assert_eq!(names, ["PJSIP/102-0000000e", "PJSIP/trunk-0000000c"]);
    client
        .originate_click_to_call(
            "PJSIP/101",
            "89031112233",
            "from-agents",
            "\"CRM\" <74951234567>",
            &[("CRM_TASK_ID", "t-1")],
        )
        .await
        .expect("originate queued");
    client
        .spy("PJSIP/103", "PJSIP/101", client::SpyMode::Whisper)
        .await
        .expect("spy");
    let actions = fake.state().actions();
    let originate = actions
        .iter()
        .find(|a| a.get("Action") == Some("Originate"))
        .expect("originate sent");
    assert_eq!(originate.get("Exten"), Some("89031112233"));
    assert_eq!(originate.get("Variable"), Some("CRM_TASK_ID=t-1"));
    let spy = actions
        .iter()
        .rfind(|a| a.get("Action") == Some("Originate"))
        .expect("spy sent");
    assert_eq!(spy.get("Application"), Some("ChanSpy"));
    assert_eq!(spy.get("Data"), Some("PJSIP/101,qw"));
    let queues = client
        .list(ringside::telephony::ami::codec::Action::new("QueueStatus"))
        .await
        .expect("queue status");
    assert!(queues.items.is_empty());
    assert_eq!(queues.response.get("EventList"), Some("start"));
    let login = &actions[0];
    assert_eq!(login.get("Action"), Some("Login"));
    assert_eq!(login.get("Events"), Some("on"));
    client.stop();
    fake.shutdown().await;
}

/// Waits for `ok`, failing after `within`.
async fn wait_until(what: &str, within: Duration, ok: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_full_queue_never_stalls_the_reader_and_a_catch_up_sends_every_live_call_again() {
    // 10,000 messages at once: 300 calls left ringing three agents.
    let burst = support::burst::ringing(300, &["101", "102", "103"], 10_000);
    assert!(burst.events.len() >= 9_900, "{}", burst.events.len());
    let mut script = FakeScript::from_transcript(b"", "");
    script.events = burst.events;
    let fake = FakeAmi::start(script).await.expect("fake starts");
    let state = fake.state();
    let mut cfg = config(&fake.url());
    cfg.event_capacity = client::MIN_EVENT_QUEUE;
    let (client, mut feed) = client::start(cfg);
    // Nobody reads the moments yet: the reader still reads the whole burst
    // and the tracker sees every call.
    wait_until(
        "the tracker has every call",
        Duration::from_secs(30),
        || client.live_calls().len() == 300,
    )
    .await;
    let s = client.status();
    assert!(s.dropped > 0, "the overflow is counted: {s:?}");
    assert_eq!(s.queue_capacity, client::MIN_EVENT_QUEUE);
    assert_eq!(s.queue_peak, client::MIN_EVENT_QUEUE, "{s:?}");
    // Once the moments are read, the catch-up sends each call's ring again.
    let mut rang: std::collections::HashMap<String, String> = Default::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rang.len() < burst.rings.len() {
        let m = tokio::time::timeout_at(deadline, feed.moments.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of 300 rings came", rang.len()))
            .expect("feed open");
        if let ringside::calls::Moment::Ringing { call_id, agent, .. } = m {
            rang.insert(call_id, agent);
        }
    }
    for (call, ext) in &burst.rings {
        assert_eq!(rang.get(call), Some(ext), "{call}");
    }
    let s = client.status();
    assert!(s.overflow_resyncs >= 1, "{s:?}");
    assert!(
        state.count("CoreShowChannels") >= 2,
        "the catch-up asks Asterisk"
    );
    assert!(state.count("QueueStatus") >= 1, "and the queues");
    assert_eq!(state.count("Login"), 1, "on the same login");
    assert_eq!(client.live_calls().len(), 300);
    client.stop();
    fake.shutdown().await;
}

#[tokio::test]
async fn an_asterisk_13_greeting_logs_in_and_an_asterisk_11_one_is_refused_before_login() {
    let (ami, times) = fixture("direct_answered");
    let mut script = FakeScript::from_transcript(&ami, &times);
    script.banner = "Asterisk Call Manager/2.10.4".into();
    let fake = FakeAmi::start(script).await.expect("fake starts");
    let (client, mut feed) = client::start(config(&fake.url()));
    let r = collect(&client, &mut feed, 1).await.remove(0);
    assert_eq!(r.agent.as_deref(), Some("101"));
    let s = client.status();
    assert_eq!(s.version.as_deref(), Some("2.10.4"));
    assert_eq!(s.unsupported, None);
    client.stop();
    fake.shutdown().await;

    let mut script = FakeScript::from_transcript(&ami, &times);
    script.banner = "Asterisk Call Manager/1.3".into();
    let fake = FakeAmi::start(script).await.expect("fake starts");
    let state = fake.state();
    let (client, mut feed) = client::start(config(&fake.url()));
    // Asked again on the backoff, never logged in to.
    wait_until("three connections", Duration::from_secs(20), || {
        state.connections() >= 3
    })
    .await;
    assert_eq!(state.count("Login"), 0, "no login to AMI 1.x");
    assert!(state.actions().is_empty(), "{:?}", state.actions());
    assert_eq!(client.connects(), 0);
    let s = client.status();
    assert!(!s.connected);
    assert_eq!(s.version.as_deref(), Some("1.3"));
    let why = s.unsupported.expect("the reason");
    assert!(
        why.contains("AMI 1.3") && why.contains("Asterisk 11 or older") && why.contains("13 to 22"),
        "{why}"
    );
    assert!(s.last_error.is_some_and(|e| e.contains("AMI 1.3")));
    assert!(
        next_finished(&mut feed, Duration::from_millis(200))
            .await
            .is_none()
    );
    client.stop();
    fake.shutdown().await;
}

#[tokio::test]
async fn a_refused_resync_keeps_the_link_and_its_live_calls_without_a_login_storm() {
    let (ami, times) = fixture("queue_answered");
    let mut script = FakeScript::from_transcript(&ami, &times);
    // An account whose `write` lacks `system` and `reporting`.
    script.refusals = vec![("CoreShowChannels".into(), "Permission denied".into())];
    script.pace = Pace::Recorded { speed: 4.0 };
    let fake = FakeAmi::start(script).await.expect("fake starts");
    let (client, mut feed) = client::start(config(&fake.url()));
    // The live call is still logged from the events that flow.
    let r = collect(&client, &mut feed, 1).await.remove(0);
    assert_eq!(r.disposition, Disposition::Answered);
    assert_eq!(r.agent.as_deref(), Some("102"));
    // The refused resync is asked again on the backoff, on the same login.
    let state = fake.state();
    for _ in 0..2000 {
        if state.count("CoreShowChannels") >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(state.count("CoreShowChannels") >= 3, "resync retried");
    assert_eq!(state.count("Login"), 1, "one login, no storm");
    assert_eq!(client.connects(), 1);
    let status = client.status();
    assert!(status.connected);
    assert!(status.refused >= 3);
    let why = status.degraded.expect("degraded while refused");
    assert!(
        why.contains("CoreShowChannels") && why.contains("`reporting`") && why.contains("`system`"),
        "{why}"
    );
    client.stop();
    fake.shutdown().await;
}
