//! Screen pops from the outside: the real server connected to a fake
//! Asterisk replaying captured AMI traffic, and real WebSocket tabs.

mod support;

use std::time::Duration;

use ringside::telephony::ami::fake::{FakeAmi, FakeScript, FakeState, Pace};
use serde_json::{Value, json};
use support::{Tab, TestApp};

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(300);

/// A fake Asterisk playing `trace` at twice the recorded pace, holding the
/// call back `hold` after login so the tabs can connect first.
async fn fake_pbx(trace: &str, hold: Duration) -> FakeAmi {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/");
    let ami = std::fs::read(format!("{dir}{trace}.ami")).unwrap();
    let times = std::fs::read_to_string(format!("{dir}{trace}.times")).unwrap();
    let mut script = FakeScript::from_transcript(&ami, &times);
    script.pace = Pace::Recorded { speed: 2.0 };
    let shift = hold.as_nanos() as u64 * 2;
    for (t, _) in script.events.iter_mut().skip(1) {
        *t += shift;
    }
    FakeAmi::start_on("127.0.0.1:0".parse().unwrap(), FakeState::new(script))
        .await
        .unwrap()
}

async fn contact(app: &TestApp, token: &str, name: &str, number: &str) -> i64 {
    let (s, c) = app
        .post(
            token,
            "/api/v1/contacts",
            json!({"name": name, "phones": [{"number": number}]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    c["id"].as_i64().unwrap()
}

fn of_type<'a>(msgs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    msgs.iter().filter(|m| m["type"] == kind).collect()
}

fn seqs(msgs: &[Value]) -> Vec<u64> {
    msgs.iter().filter_map(|m| m["seq"].as_u64()).collect()
}

#[tokio::test]
async fn a_queue_call_pops_on_every_rung_agent_and_closes_when_one_answers() {
    let fake = fake_pbx("queue_answered", Duration::from_secs(2)).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("boris", "agent", None, &["102"]).await;
    app.add_user("clara", "agent", None, &["103"]).await;
    let anna = app.login("anna").await;
    let hans = contact(&app, &anna, "Hans Mueller", "+49 30 123456").await;
    let mut anna1 = Tab::open(&app, &anna, None).await;
    let mut anna2 = Tab::open(&app, &anna, None).await;
    let mut boris = Tab::open(&app, &app.login("boris").await, None).await;
    let mut clara = Tab::open(&app, &app.login("clara").await, None).await;

    let a1 = anna1.until("call.ended", WAIT).await;
    let a2 = anna2.until("call.ended", WAIT).await;
    let b = boris.until("call.ended", WAIT).await;
    for tab in [&a1, &a2, &b] {
        let ringing = of_type(tab, "call.ringing");
        assert_eq!(ringing.len(), 1, "{tab:?}");
        let pop = ringing[0];
        assert_eq!(pop["match"], "exact");
        assert_eq!(pop["contact"]["id"], hans);
        assert_eq!(pop["contact"]["name"], "Hans Mueller");
        assert_eq!(pop["caller"]["e164"], "+4930123456");
        assert_eq!(pop["caller"]["name"], "Hans Mueller");
        assert_eq!(pop["queue"], "sales");
        let answered = of_type(tab, "call.answered");
        assert_eq!(answered.len(), 1);
        assert_eq!(answered[0]["agent"], "102");
        assert_eq!(of_type(tab, "call.ended")[0]["disposition"], "answered");
        // ringing → answered → ended, in order.
        let order: Vec<&str> = tab
            .iter()
            .filter_map(|m| m["type"].as_str().filter(|t| t.starts_with("call.")))
            .collect();
        assert_eq!(order, ["call.ringing", "call.answered", "call.ended"]);
    }
    assert_eq!(of_type(&a1, "call.answered")[0]["by_you"], false);
    assert_eq!(of_type(&b, "call.answered")[0]["by_you"], true);
    // Both tabs of one user see the same stream (the second tab opened after
    // the first one's `agent.state`, so compare from the pop on).
    let from_pop = |msgs: &[Value]| -> Vec<u64> {
        let first = of_type(msgs, "call.ringing")[0]["seq"].as_u64().unwrap();
        seqs(msgs).into_iter().filter(|s| *s >= first).collect()
    };
    assert_eq!(from_pop(&a1), from_pop(&a2));
    let states: Vec<&str> = of_type(&b, "agent.state")
        .iter()
        .filter_map(|m| m["state"].as_str())
        .collect();
    assert!(
        states.contains(&"ringing") && states.contains(&"on_call"),
        "{states:?}"
    );
    // Clara's phone never rang: no call messages for her.
    let c = clara.drain(QUIET).await;
    assert!(
        c.iter()
            .all(|m| !m["type"].as_str().unwrap_or("").starts_with("call.")),
        "{c:?}"
    );

    // The call is on Hans's timeline once.
    let (_, timeline) = app
        .get(&anna, &format!("/api/v1/contacts/{hans}/activities"))
        .await;
    let calls: Vec<&Value> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "call")
        .collect();
    assert_eq!(calls.len(), 1, "{timeline}");
    assert_eq!(calls[0]["payload"]["agent"], "102");
}

#[tokio::test]
async fn a_tab_that_reconnects_with_after_gets_what_it_missed_once() {
    let fake = fake_pbx("direct_answered", Duration::from_secs(2)).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let ivan = contact(&app, &anna, "Иван Петров", "8 916 123-45-67").await;
    let mut tab = Tab::open(&app, &anna, None).await;
    let hello = tab.next(WAIT).await.unwrap();
    assert_eq!(hello["type"], "hello");
    // Read up to the pop, then drop off while the phone rings.
    let before = tab.until("call.ringing", WAIT).await;
    let last = *seqs(&before).last().unwrap();
    assert_eq!(before.last().unwrap()["contact"]["id"], ivan);
    tab.close().await;
    tokio::time::sleep(Duration::from_secs(4)).await; // answered and ended meanwhile
    let mut back = Tab::open(&app, &anna, Some(last - 1)).await;
    let after = back.drain(Duration::from_secs(2)).await;
    assert_eq!(after[0]["type"], "hello");
    let got = seqs(&after);
    // The pop once more (it was after `last - 1`), then what came later, each once, no gaps.
    assert_eq!(got[0], last);
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    assert_eq!(of_type(&after, "call.ringing").len(), 1);
    assert_eq!(of_type(&after, "call.answered").len(), 1);
    assert_eq!(of_type(&after, "call.ended").len(), 1);
    // Without `after`, a new tab starts from now.
    let mut fresh = Tab::open(&app, &anna, None).await;
    let now = fresh.drain(QUIET).await;
    assert!(now.iter().all(|m| m["seq"].is_null()), "{now:?}");
}

#[tokio::test]
async fn hostile_names_arrive_as_plain_text() {
    let fake = fake_pbx("cnam_special_chars", Duration::from_secs(2)).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let evil = "<img src=x onerror=alert(1)>";
    contact(&app, &anna, evil, "+79161234567").await;
    let mut tab = Tab::open(&app, &anna, None).await;
    let msgs = tab.until("call.ringing", WAIT).await;
    let pop = msgs.last().unwrap();
    assert_eq!(pop["contact"]["name"], evil);
    let cnam = pop["caller"]["name"].as_str().unwrap();
    assert!(
        cnam.contains("<script>alert(") && cnam.contains("Иван Петров"),
        "{cnam}"
    );
}

#[tokio::test]
async fn an_agent_can_pause_and_the_supervisor_sees_it() {
    let app = TestApp::spawn().await;
    app.add_user("anna", "agent", Some("Sales"), &["101"]).await;
    app.add_user("sam", "supervisor", Some("Sales"), &[]).await;
    let anna = app.login("anna").await;
    let sam = app.login("sam").await;
    let mut sup = Tab::open(&app, &sam, None).await;
    let mut tab = Tab::open(&app, &anna, None).await;
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
    let seen = sup.until("agent.state", WAIT).await;
    let mut last = seen.last().unwrap().clone();
    while last["state"] != "paused" {
        last = sup.until("agent.state", WAIT).await.last().unwrap().clone();
    }
    assert_eq!(last["login"], "anna");
    assert_eq!(last["reason"], "lunch");
    let mine = tab.until("agent.state", WAIT).await;
    assert!(!mine.is_empty());
    let (_, agents) = app.get(&sam, "/api/v1/agents").await;
    assert_eq!(agents[0]["state"], "paused", "{agents}");
    let (s, _) = app.get(&anna, "/api/v1/agents").await;
    assert_eq!(s, 403);
    let (s, _) = app
        .send("PUT", &anna, "/api/v1/me/state", json!({"state": "asleep"}))
        .await;
    assert_eq!(s, 400);
    // No token, no socket.
    let url = format!("{}/ws", app.base.replace("http://", "ws://"));
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[tokio::test]
async fn a_pop_seen_by_one_node_reaches_a_tab_on_another_through_redis() {
    let redis = match std::env::var("RINGSIDE_TEST_REDIS") {
        Ok(r) if !r.is_empty() => r,
        _ => {
            eprintln!("RINGSIDE_TEST_REDIS not set: the two-node test needs a Redis server");
            return;
        }
    };
    // Start from a clean slate: earlier runs replayed the same call ids.
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("ringside:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    for k in keys {
        let _: () = redis::cmd("DEL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let fake = fake_pbx("direct_answered", Duration::from_secs(7)).await;
    let node_a = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_REDIS_URL", &redis),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
    ])
    .await;
    let node_b = TestApp::spawn_beside(
        &node_a,
        &[
            ("RINGSIDE_REDIS_URL", &redis),
            ("RINGSIDE_DEFAULT_REGION", "RU"),
        ],
    )
    .await;
    node_a.add_user("anna", "agent", None, &["101"]).await;
    let anna = node_b.login("anna").await;
    contact(&node_b, &anna, "Иван Петров", "+79161234567").await;
    let mut on_b = Tab::open(&node_b, &anna, None).await;
    let msgs = on_b.until("call.ended", WAIT).await;
    let pop = of_type(&msgs, "call.ringing");
    assert_eq!(pop.len(), 1, "{msgs:?}");
    assert_eq!(pop[0]["contact"]["name"], "Иван Петров");
    let got = seqs(&msgs);
    assert!(
        got.windows(2).all(|w| w[1] == w[0] + 1),
        "gap-free: {got:?}"
    );
}

#[tokio::test]
async fn pausing_in_the_console_pauses_the_agent_in_the_pbx_queues() {
    let fake = fake_pbx("direct_answered", Duration::from_secs(30)).await;
    let app = TestApp::spawn_with(&[("RINGSIDE_AMI_URL", &fake.url())]).await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    // Wait for the PBX link.
    let deadline = tokio::time::Instant::now() + WAIT;
    let paused = loop {
        let (s, v) = app
            .send(
                "PUT",
                &anna,
                "/api/v1/me/state",
                json!({"state": "paused", "reason": "lunch"}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let actions = fake.state().actions();
        if let Some(a) = actions
            .iter()
            .find(|a| a.get("Action") == Some("QueuePause"))
        {
            break a.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no QueuePause sent");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(paused.get("Interface"), Some("PJSIP/101"));
    assert_eq!(paused.get("Paused"), Some("true"));
    assert_eq!(paused.get("Reason"), Some("lunch"));
}

#[tokio::test]
async fn an_idle_tab_is_pinged_and_its_pong_keeps_it_open() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let app = TestApp::spawn().await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let url = format!("{}/ws?token={anna}", app.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Every tab is pinged once per 20 s; the first tab of a fresh server
    // sooner (its group is the clock's first).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let mut pings = 0;
    while pings < 1 {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("no ping within 25 s")
            .expect("the server closed the tab")
            .unwrap();
        if let Message::Ping(p) = msg {
            pings += 1;
            ws.send(Message::Pong(p)).await.unwrap();
        }
    }
    // Still open and still delivering after the pong.
    let (s, v) = app
        .send(
            "PUT",
            &anna,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no agent.state after the pong")
            .expect("the server closed the tab")
            .unwrap();
        if let Message::Text(t) = msg
            && t.as_str().contains("\"paused\"")
        {
            break;
        }
    }
}

#[tokio::test]
async fn nodes_with_another_redis_prefix_do_not_see_the_pops() {
    let redis = match std::env::var("RINGSIDE_TEST_REDIS") {
        Ok(r) if !r.is_empty() => r,
        _ => {
            eprintln!("RINGSIDE_TEST_REDIS not set: the redis prefix test needs a Redis server");
            return;
        }
    };
    // Fresh names: nothing from earlier runs (sequences, sent-once marks).
    let tag: u64 = rand::random();
    let ours = format!("t{tag:x}-ours");
    let theirs = format!("t{tag:x}-theirs");
    let fake = fake_pbx("direct_answered", Duration::from_secs(7)).await;
    let node_a = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_REDIS_URL", &redis),
        ("RINGSIDE_REDIS_PREFIX", &ours),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
    ])
    .await;
    let same = TestApp::spawn_beside(
        &node_a,
        &[
            ("RINGSIDE_REDIS_URL", &redis),
            ("RINGSIDE_REDIS_PREFIX", &ours),
            ("RINGSIDE_DEFAULT_REGION", "RU"),
        ],
    )
    .await;
    let other = TestApp::spawn_beside(
        &node_a,
        &[
            ("RINGSIDE_REDIS_URL", &redis),
            ("RINGSIDE_REDIS_PREFIX", &theirs),
            ("RINGSIDE_DEFAULT_REGION", "RU"),
        ],
    )
    .await;
    node_a.add_user("anna", "agent", None, &["101"]).await;
    let anna = same.login("anna").await;
    contact(&same, &anna, "Иван Петров", "+79161234567").await;
    let mut on_same = Tab::open(&same, &anna, None).await;
    let mut on_other = Tab::open(&other, &anna, None).await;
    let msgs = on_same.until("call.ended", WAIT).await;
    assert_eq!(of_type(&msgs, "call.ringing").len(), 1, "{msgs:?}");
    let seen = on_other.drain(Duration::from_secs(1)).await;
    assert!(
        seen.iter()
            .all(|m| !m["type"].as_str().unwrap_or("").starts_with("call.")),
        "a node of another deployment got its pops: {seen:?}"
    );
    // The keys carry the prefix; clean them up.
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for prefix in [&ours, &theirs] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if prefix == &ours {
            assert!(
                keys.iter().any(|k| k.starts_with(&format!("{ours}:seq:"))),
                "{keys:?}"
            );
        }
        for k in keys {
            let _: () = redis::cmd("DEL")
                .arg(k)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}
