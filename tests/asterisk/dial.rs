//! Click-to-call refused by the bundled PBX: a context it does not have is
//! reported as the PBX's refusal, not as a missing PBX. (Click-to-call from
//! the agents' context, `from-agents`, is in `calls.rs`.)

use serde_json::{Value, json};

use crate::harness::{Conf, Pbx, Ringside, wait_for};
use crate::require_asterisk;

/// Posts a click-to-call as `token` until Ringside's AMI link is up (503
/// until then); returns the first other answer.
async fn dial(rs: &Ringside, token: &str, number: &str) -> (u16, Value) {
    wait_for(
        "an answer other than 503 pbx_unavailable to the click-to-call",
        || async {
            let (s, v) = rs
                .app
                .post(token, "/api/v1/calls/dial", json!({ "number": number }))
                .await;
            (s != 503).then_some((s, v))
        },
    )
    .await
}

#[tokio::test]
async fn click_to_call_into_a_context_the_pbx_lacks_is_refused_by_the_pbx() {
    require_asterisk!();
    let pbx = Pbx::start("click_to_call_refused", &Conf::shipped()).await;
    // The default context, from-internal, is not in the bundled dialplan.
    let rs = Ringside::start(&pbx, &[]).await;
    let anna = rs.agent("101");
    let (s, v) = dial(&rs, &anna.token, "+7 903 111 22 33").await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["code"], "dial_refused", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Extension does not exist") && message.contains("from-internal"),
        "{message}"
    );

    // The link is fine: the agent's pause reaches the queues.
    let (s, v) = rs
        .app
        .send(
            "PUT",
            &anna.token,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    wait_for("101 paused in the sales queue", || async {
        let out = pbx.cli("queue show sales").await;
        out.lines()
            .any(|l| l.contains("PJSIP/101") && l.contains("paused"))
            .then_some(())
    })
    .await;
}
