//! Click-to-call and queue pauses from the outside: the real server connected
//! to a fake Asterisk, which records the actions it is sent and answers them
//! as Asterisk does, refusals included.

mod support;

use std::time::{Duration, Instant};

use ringside::telephony::ami::codec::Message;
use ringside::telephony::ami::fake::{FakeAmi, FakeScript, Pace};
use serde_json::{Value, json};
use support::TestApp;

const WAIT: Duration = Duration::from_secs(20);

/// A fake Asterisk with no calls, refusing `refusals` (action, message).
async fn quiet_pbx(refusals: &[(&str, &str)]) -> FakeAmi {
    let mut script = FakeScript::from_transcript(b"", "");
    script.pace = Pace::Full;
    script.refusals = refusals
        .iter()
        .map(|(a, m)| ((*a).to_owned(), (*m).to_owned()))
        .collect();
    FakeAmi::start(script).await.expect("fake starts")
}

/// Posts a click-to-call, retrying while the server is still connecting to
/// the PBX (503); returns the first other answer.
async fn dial(app: &TestApp, token: &str, number: &str) -> (u16, Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (s, v) = app
            .post(token, "/api/v1/calls/dial", json!({ "number": number }))
            .await;
        if s != 503 || Instant::now() > deadline {
            return (s, v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The actions named `name` the fake has been sent, once there are `n`.
async fn sent(fake: &FakeAmi, name: &str, n: usize) -> Vec<Message> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got: Vec<Message> = fake
            .state()
            .actions()
            .into_iter()
            .filter(|m| {
                m.get("Action")
                    .is_some_and(|a| a.eq_ignore_ascii_case(name))
            })
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            assert!(got.len() >= n, "the PBX was sent {} {name}", got.len());
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn headers<'a>(m: &'a Message, keys: &[&str]) -> Vec<Option<&'a str>> {
    keys.iter().map(|k| m.get(k)).collect()
}

#[tokio::test]
async fn click_to_call_rings_the_configured_device_and_dials_from_the_configured_context() {
    let fake = quiet_pbx(&[]).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_PBX_DEVICE", "SIP/150{ext}"),
        ("RINGSIDE_PBX_ORIGINATE_CONTEXT", "from-agents"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;

    let (s, v) = dial(&app, &anna, "8 (903) 111-22-33").await;
    assert_eq!(s, 202, "{v}");
    assert!(
        v["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{v}"
    );
    let originate = &sent(&fake, "Originate", 1).await[0];
    assert_eq!(
        headers(originate, &["Channel", "Context", "Exten", "Priority"]),
        [
            Some("SIP/150101"),
            Some("from-agents"),
            Some("+79031112233"),
            Some("1")
        ],
        "{originate:?}"
    );

    // The queues are told about the same device.
    let (s, v) = app
        .send(
            "PUT",
            &anna,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let pause = &sent(&fake, "QueuePause", 1).await[0];
    assert_eq!(
        headers(pause, &["Interface", "Paused", "Reason"]),
        [Some("SIP/150101"), Some("true"), Some("lunch")],
        "{pause:?}"
    );
}

#[tokio::test]
async fn without_settings_click_to_call_dials_pjsip_from_from_internal() {
    let fake = quiet_pbx(&[]).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_DEFAULT_REGION", "RU"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let (s, v) = dial(&app, &anna, "+7 903 111 22 33").await;
    assert_eq!(s, 202, "{v}");
    let originate = &sent(&fake, "Originate", 1).await[0];
    assert_eq!(
        headers(originate, &["Channel", "Context"]),
        [Some("PJSIP/101"), Some("from-internal")],
        "{originate:?}"
    );
}

#[tokio::test]
async fn the_channel_technology_alone_still_names_the_device() {
    let fake = quiet_pbx(&[]).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_ROUTING_CHANNEL_TECH", "IAX2"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let (s, v) = dial(&app, &anna, "+7 903 111 22 33").await;
    assert_eq!(s, 202, "{v}");
    let originate = &sent(&fake, "Originate", 1).await[0];
    assert_eq!(originate.get("Channel"), Some("IAX2/101"), "{originate:?}");
}

#[tokio::test]
async fn an_originate_the_pbx_refuses_is_dial_refused_with_its_reason_not_pbx_unavailable() {
    let fake = quiet_pbx(&[("Originate", "Extension does not exist.")]).await;
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_AMI_URL", &fake.url()),
        ("RINGSIDE_PBX_ORIGINATE_CONTEXT", "from-nowhere"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let anna = app.login("anna").await;
    let (s, v) = dial(&app, &anna, "+7 903 111 22 33").await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["code"], "dial_refused", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    for needle in ["Extension does not exist.", "from-nowhere", "PJSIP/101"] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    // Refused, the link stays up: the next request is refused the same way.
    let (s, v) = dial(&app, &anna, "+7 903 111 22 33").await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (502, &json!("dial_refused")),
        "{v}"
    );
}

#[tokio::test]
async fn click_to_call_without_a_pbx_or_an_extension_says_so() {
    let app = TestApp::spawn().await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("boris", "agent", None, &[]).await;
    let anna = app.login("anna").await;
    let boris = app.login("boris").await;
    let body = json!({ "number": "+7 903 111 22 33" });
    let (s, v) = app.post(&anna, "/api/v1/calls/dial", body.clone()).await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (503, &json!("pbx_unavailable")),
        "{v}"
    );
    let (s, v) = app.post(&boris, "/api/v1/calls/dial", body).await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn routing_sends_a_caller_to_the_owner_s_device_by_the_same_pattern() {
    let app = TestApp::spawn_with(&[("RINGSIDE_PBX_DEVICE", "SIP/150{ext}")]).await;
    app.add_user("boss", "manager", None, &["101"]).await;
    let anna = app.add_user("anna", "agent", None, &["102"]).await;
    let token = app.login("boss").await;
    let (s, v) = app
        .post(
            &token,
            "/api/v1/contacts",
            json!({"name": "Jens", "owner_id": anna, "phones": [{"number": "+49 30 1234567"}]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .post(
            &token,
            "/api/v1/routing/rules",
            json!({"kind": "sticky", "name": "Owner first", "priority": 10}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .get(&token, "/api/v1/route?caller=%2B49301234567&did=")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["target"], "SIP/150102", "{v}");
}
