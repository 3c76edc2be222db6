//! Asterisk 13 from the outside: recordings of a hosted Asterisk 13 platform
//! (`tests/fixtures/ami/ast13_*`, chan_sip peers named by 9-digit account
//! ids, `SystemName`-prefixed ids, every phone reached through Local
//! channels) replayed by a fake Asterisk into the real server. Each call
//! leaves the row its notes describe — direction, caller, callee, agent, the
//! phones that rang, disposition, transfers — and no frame or row carries
//! Asterisk's `<unknown>` or a Local channel's route name.

mod support;

use std::time::Duration;

use ringside::telephony::ami::fake::{FakeAmi, FakeScript, FakeState, Pace};
use serde_json::{Value, json};
use support::{Tab, TestApp};

const WAIT: Duration = Duration::from_secs(30);

/// Recorded pace multiplier.
const SPEED: f64 = 4.0;

/// Seconds between login and the first call (users and tabs are set up).
const SETUP_S: f64 = 4.0;

/// A fake Asterisk playing `traces` one after the other, a second apart.
async fn pbx(traces: &[&str]) -> FakeAmi {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/");
    let mut script: Option<FakeScript> = None;
    for t in traces {
        let ami = std::fs::read(format!("{dir}{t}.ami")).unwrap();
        let times = std::fs::read_to_string(format!("{dir}{t}.times")).unwrap();
        let next = FakeScript::from_transcript(&ami, &times);
        match script.as_mut() {
            None => script = Some(next),
            Some(s) => {
                let base = s.events.last().map_or(0, |e| e.0) + 1_000_000_000;
                s.events
                    .extend(next.events.into_iter().map(|(t, m)| (t + base, m)));
            }
        }
    }
    let mut script = script.unwrap();
    script.pace = Pace::Recorded { speed: SPEED };
    let hold = (SETUP_S * SPEED * 1e9) as u64;
    for (t, _) in script.events.iter_mut() {
        *t += hold;
    }
    FakeAmi::start_on("127.0.0.1:0".parse().unwrap(), FakeState::new(script))
        .await
        .unwrap()
}

/// What a recording's notes say its row is: (transcript, call id,
/// direction, caller, callee, agent, rang, disposition, transfers).
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    fn() -> Value,
);

const ROWS: [Row; 8] = [
    (
        "ast13_queue_ringall_local",
        "195176c06ab8-1529938920.367",
        "inbound",
        "+31150010001",
        "+31150010004",
        "150010002",
        &["150010003", "150010002"],
        "answered",
        || json!([]),
    ),
    (
        "ast13_internal_call",
        "195176c06ab8-1529936170.42",
        "internal",
        "150010001",
        "150010002",
        "150010002",
        &["150010002"],
        "answered",
        || json!([]),
    ),
    (
        "ast13_attended_transfer",
        "195176c06ab8-1529941338.663",
        "internal",
        "150010001",
        "150010002",
        "150010003",
        &["150010002", "150010003"],
        "answered",
        || json!([{"from": "150010002", "to": "150010003", "kind": "attended"}]),
    ),
    (
        "ast13_attended_transfer_second_older",
        "c4061ca6474c-1531994176.1772",
        "internal",
        "150010002",
        "150010001",
        "150010003",
        &["150010001"],
        "answered",
        || json!([{"from": "150010001", "to": "150010003", "kind": "attended"}]),
    ),
    (
        "ast13_blind_transfer",
        "07b796be1962-1529998959.65",
        "internal",
        "150010001",
        "150010002",
        "150010003",
        &["150010002", "150010003"],
        "answered",
        || json!([{"from": "150010002", "to": "150010003", "kind": "blind"}]),
    ),
    (
        "ast13_pickup",
        "59b750c14f20-1538125952.414",
        "internal",
        "150010001",
        "150010002",
        "150010003",
        &["150010002", "150010003"],
        "answered",
        || json!([]),
    ),
    (
        "ast13_click_to_dial_local",
        "c4061ca6474c-1531990515.302",
        "outbound",
        "150010001",
        "+31260010001",
        "150010001",
        &[],
        "answered",
        || json!([]),
    ),
    (
        "ast13_click_to_dial_internal",
        "c4061ca6474c-1531990397.86",
        "internal",
        "150010001",
        "150010002",
        "150010002",
        &["150010002"],
        "answered",
        || json!([]),
    ),
];

/// Text that must never reach a row or a frame: Asterisk's marker for an
/// absent caller ID and the names of the Local channels' routes.
fn junk(text: &str) -> Option<&'static str> {
    ["<unknown>", "ID4003", "ID7301", "ID5503"]
        .into_iter()
        .find(|j| text.contains(j))
}

#[tokio::test]
async fn asterisk_13_recordings_leave_the_rows_their_notes_describe() {
    let traces: Vec<&str> = ROWS.iter().map(|r| r.0).collect();
    let fake = pbx(&traces).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ringside.toml");
    // The platform's phones are SIP peers named by 9-digit account ids.
    std::fs::write(&config, "[phones]\ninternal_max_digits = 9\n").unwrap();
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "NL"),
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_CONFIG", config.to_str().unwrap()),
    ])
    .await;
    let mut ids = Vec::new();
    for (login, ext) in [
        ("alice", "150010001"),
        ("bob", "150010002"),
        ("charlie", "150010003"),
    ] {
        ids.push(app.add_user(login, "agent", Some("Sales"), &[ext]).await);
    }
    app.add_user("maria", "manager", None, &[]).await;
    let manager = app.login("maria").await;
    let mut tabs = Vec::new();
    for login in ["alice", "bob", "charlie"] {
        let token = app.login(login).await;
        let mut tab = Tab::open(&app, &token, None).await;
        let hello = tab.next(WAIT).await.expect("hello");
        assert_eq!(hello["type"], "hello");
        tabs.push(tab);
    }

    // Every call logged: wait for the six rows.
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    let calls = loop {
        let (s, v) = app.get(&manager, "/api/v1/calls?limit=100").await;
        assert_eq!(s, 200, "{v}");
        let items = v["items"].as_array().unwrap().clone();
        if items.len() >= ROWS.len() {
            break items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} rows: {items:?}",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(calls.len(), ROWS.len(), "one row per call: {calls:?}");
    for (trace, id, direction, caller, callee, agent, rang, disposition, transfers) in ROWS {
        let c = calls
            .iter()
            .find(|c| c["call_id"] == id)
            .unwrap_or_else(|| panic!("{trace}: no row {id} in {calls:?}"));
        assert_eq!(c["direction"], direction, "{trace}: {c}");
        assert_eq!(c["caller"], caller, "{trace}: {c}");
        assert_eq!(c["callee"], callee, "{trace}: {c}");
        assert_eq!(c["agent"], agent, "{trace}: {c}");
        assert_eq!(c["rang"], json!(rang), "{trace}: {c}");
        assert_eq!(c["disposition"], disposition, "{trace}: {c}");
        assert_eq!(c["transfers"], transfers(), "{trace}: {c}");
        let text = c.to_string();
        assert_eq!(junk(&text), None, "{trace}: {text}");
    }
    // The rows name the users behind the phones.
    let row = |id: &str| calls.iter().find(|c| c["call_id"] == id).unwrap().clone();
    let (alice, bob, charlie) = (ids[0], ids[1], ids[2]);
    assert_eq!(row("195176c06ab8-1529938920.367")["agent_user_id"], bob);
    assert_eq!(row("195176c06ab8-1529941338.663")["agent_user_id"], charlie);
    let ctd = row("c4061ca6474c-1531990515.302");
    assert_eq!(ctd["originator_user_id"], alice, "{ctd}");
    assert_eq!(ctd["agent_user_id"], alice, "{ctd}");
    assert!(ctd["did"].is_null(), "{ctd}");

    // The pops: the ring-all call rang bob and charlie with the caller's
    // number, and no frame anyone got carries junk.
    let mut frames: Vec<Vec<Value>> = Vec::new();
    for tab in tabs.iter_mut() {
        frames.push(tab.drain(Duration::from_millis(500)).await);
    }
    for f in frames.iter().flatten() {
        let text = f.to_string();
        assert_eq!(junk(&text), None, "{text}");
    }
    let rang_for = |i: usize, id: &str| {
        frames[i]
            .iter()
            .find(|f| f["type"] == "call.ringing" && f["call_id"] == id)
            .cloned()
    };
    for i in [1, 2] {
        let f = rang_for(i, "195176c06ab8-1529938920.367").expect("ring-all pop");
        assert_eq!(f["caller"]["number"], "+31150010001", "{f}");
        assert!(f["caller"]["name"].is_null(), "{f}");
    }
    // Alice placed the click-to-dials: her own phone ringing is no pop, and
    // Bob's pop for the internal one names her phone as the caller.
    assert_eq!(rang_for(0, "c4061ca6474c-1531990515.302"), None);
    assert_eq!(rang_for(0, "c4061ca6474c-1531990397.86"), None);
    let f = rang_for(1, "c4061ca6474c-1531990397.86").expect("pop of the internal click-to-dial");
    assert_eq!(f["caller"]["number"], "150010001", "{f}");
    fake.state().finished().await;
}
