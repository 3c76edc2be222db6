//! Routing from the outside: rules through the API and CLI, decisions through
//! `GET /api/v1/route`, and the FastAGI endpoint spoken to over TCP exactly
//! as Asterisk speaks it.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Tab, TestApp, run_cli};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error shape>")
}

/// An app with a manager (ext 101) who writes rules.
async fn app_with(env: &[(&str, &str)]) -> (TestApp, String, i64) {
    let app = TestApp::spawn_with(env).await;
    let boss = app.add_user("boss", "manager", None, &["101"]).await;
    let token = app.login("boss").await;
    (app, token, boss)
}

async fn add_rule(app: &TestApp, token: &str, body: Value) -> Value {
    let (s, v) = app.post(token, "/api/v1/routing/rules", body.clone()).await;
    assert_eq!(s, 201, "{body} → {v}");
    v
}

async fn route(app: &TestApp, token: &str, caller: &str, did: &str) -> Value {
    let (s, v) = app
        .get(
            token,
            &format!(
                "/api/v1/route?caller={}&did={}",
                urlencode(caller),
                urlencode(did)
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn team_id(app: &TestApp, name: &str) -> i64 {
    app.db
        .teams()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap()
        .id
}

#[tokio::test]
async fn sticky_sends_known_callers_to_their_owner_and_lead_callers_to_their_manager() {
    let (app, token, boss) =
        app_with(&[("RINGSIDE_ROUTING_DEFAULT_TARGET", "Queue/support")]).await;
    let anna = app.add_user("anna", "agent", None, &["102"]).await;
    let (s, contact) = app
        .post(
            &token,
            "/api/v1/contacts",
            json!({"name": "Jens", "owner_id": anna, "phones": [{"number": "+49 30 1234567"}]}),
        )
        .await;
    assert_eq!(s, 201, "{contact}");
    let (s, lead) = app
        .post(
            &token,
            "/api/v1/leads",
            json!({"name": "Unknown", "phone": "+7 916 123-45-67", "manager_id": boss}),
        )
        .await;
    assert_eq!(s, 201, "{lead}");
    let rule = add_rule(
        &app,
        &token,
        json!({"kind": "sticky", "name": "Owner first", "priority": 10}),
    )
    .await;

    let v = route(&app, &token, "004930 1234567", "").await;
    assert_eq!(v["target"], "PJSIP/102", "{v}");
    assert_eq!(v["user"]["login"], "anna");
    assert_eq!(v["user"]["extension"], "102");
    assert_eq!(v["rule"]["id"], rule["id"]);
    assert_eq!(v["rule"]["kind"], "sticky");
    assert_eq!(v["contact_id"], contact["id"]);
    assert_eq!(v["owner_id"], anna);

    let v = route(&app, &token, "89161234567", "").await;
    assert_eq!(v["target"], "PJSIP/101", "{v}");
    assert_eq!(v["lead_id"], lead["id"]);
    assert_eq!(v["owner_id"], boss);

    // Two contacts share a number: no owner is guessed.
    for (name, owner) in [("Ute", anna), ("Uwe", boss)] {
        let (s, v) = app
            .post(
                &token,
                "/api/v1/contacts",
                json!({"name": name, "owner_id": owner, "phones": [{"number": "+49 40 5555555"}]}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let v = route(&app, &token, "+49405555555", "").await;
    assert_eq!(v["target"], "Queue/support", "{v}");
    assert_eq!(v["owner_id"], Value::Null);

    // A stranger: no owner, the default target.
    let v = route(&app, &token, "+4940999999", "").await;
    assert_eq!(v["target"], "Queue/support", "{v}");
    assert_eq!(v["rule"], Value::Null);
    assert_eq!(v["contact_id"], Value::Null);
}

#[tokio::test]
async fn prefix_rule_routes_by_the_callers_country() {
    let (app, token, _) = app_with(&[]).await;
    add_rule(
        &app,
        &token,
        json!({"kind": "prefix", "name": "Germany", "prefix": "+49", "target": {"pbx": "Queue/german"}}),
    )
    .await;
    assert_eq!(
        route(&app, &token, "+49 30 1234567", "").await["target"],
        "Queue/german"
    );
    assert_eq!(
        route(&app, &token, "0049301234567", "").await["target"],
        "Queue/german"
    );
    let other = route(&app, &token, "+7 916 123-45-67", "").await;
    assert_eq!(
        other["target"],
        Value::Null,
        "no default configured: {other}"
    );
    assert!(
        other["reason"]
            .as_str()
            .unwrap()
            .contains("no rule matched"),
        "{other}"
    );
    // Withheld numbers never match a prefix.
    assert_eq!(
        route(&app, &token, "anonymous", "").await["target"],
        Value::Null
    );
}

#[tokio::test]
async fn did_rule_routes_by_the_dialled_number() {
    let (app, token, boss) =
        app_with(&[("RINGSIDE_ROUTING_DEFAULT_TARGET", "Queue/support")]).await;
    add_rule(
        &app,
        &token,
        json!({"kind": "did", "name": "Sales line", "did": "+7 495 100-00-00", "target": {"user_id": boss}}),
    )
    .await;
    add_rule(
        &app,
        &token,
        json!({"kind": "did", "name": "Internal 4000", "did": "4000", "target": {"pbx": "Queue/hotline"}}),
    )
    .await;
    let v = route(&app, &token, "+4930123456", "84951000000").await;
    assert_eq!(v["target"], "PJSIP/101", "{v}");
    assert_eq!(v["rule"]["name"], "Sales line");
    assert_eq!(
        route(&app, &token, "+4930123456", "4000").await["target"],
        "Queue/hotline"
    );
    assert_eq!(
        route(&app, &token, "+4930123456", "4001").await["target"],
        "Queue/support"
    );
}

/// Clock settings that put the server at several times of a Monday (UTC):
/// around midnight, the evening hour whose window used to end at 00:00, noon.
const CLOCKS: &[&str] = &[
    "2026-12-07T00:00:00Z",
    "2026-12-07T06:15:00Z",
    "2026-12-07T12:00:00Z",
    "2026-12-07T17:30:00Z",
    "2026-12-07T22:45:00Z",
    "2026-12-07T23:59:00Z",
];

#[tokio::test]
async fn hours_rule_sends_calls_inside_and_outside_the_window_apart() {
    for clock in CLOCKS {
        hours_rule_at(clock).await;
    }
}

async fn hours_rule_at(clock: &str) {
    let (app, token, _) = app_with(&[
        ("RINGSIDE_ROUTING_DEFAULT_TARGET", "Queue/support"),
        ("RINGSIDE_ROUTING_CLOCK", clock),
    ])
    .await;
    let hour = chrono::DateTime::parse_from_rfc3339(clock)
        .unwrap()
        .format("%H")
        .to_string()
        .parse::<u32>()
        .unwrap();
    // A window six hours away from now: certainly outside.
    let closed = add_rule(
        &app,
        &token,
        json!({"kind": "hours", "name": "Far window", "priority": 1,
               "schedule": {"timezone": "UTC", "days": ["mon-sun"],
                            "from": format!("{:02}:00", (hour + 6) % 24),
                            "to": format!("{:02}:00", (hour + 7) % 24)},
               "outside_target": {"pbx": "Queue/night"}}),
    )
    .await;
    let v = route(&app, &token, "+4930123456", "").await;
    assert_eq!(v["target"], "Queue/night", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("outside hours"),
        "{v}"
    );

    // Only an inside target now, and an all-day window in Berlin: inside.
    let (s, _) = app
        .send(
            "PATCH",
            &token,
            &format!("/api/v1/routing/rules/{}", closed["id"]),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(s, 200);
    add_rule(
        &app,
        &token,
        json!({"kind": "hours", "name": "Always open", "priority": 2,
               "schedule": {"timezone": "Europe/Berlin", "days": ["mon-sun"], "from": "00:00", "to": "24:00"},
               "target": {"pbx": "Queue/day"}}),
    )
    .await;
    let v = route(&app, &token, "+4930123456", "").await;
    assert_eq!(v["target"], "Queue/day", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("inside hours"),
        "{v}"
    );
}

#[tokio::test]
async fn a_window_closing_at_midnight_or_past_it_applies() {
    // (clock, from, to, inside?)
    let cases = [
        ("2026-12-07T23:30:00Z", "22:00", "00:00", true),
        ("2026-12-07T23:59:00Z", "17:00", "00:00", true),
        ("2026-12-07T21:59:00Z", "22:00", "00:00", false),
        ("2026-12-08T00:00:00Z", "22:00", "00:00", false),
        ("2026-12-08T03:00:00Z", "22:00", "06:00", true),
        ("2026-12-07T23:00:00Z", "22:00", "06:00", true),
        ("2026-12-08T06:00:00Z", "22:00", "06:00", false),
        ("2026-12-07T12:00:00Z", "22:00", "06:00", false),
    ];
    for (clock, from, to, inside) in cases {
        let (app, token, _) = app_with(&[("RINGSIDE_ROUTING_CLOCK", clock)]).await;
        let rule = add_rule(
            &app,
            &token,
            json!({"kind": "hours", "name": "Evening", "priority": 1,
                   "schedule": {"timezone": "UTC", "days": ["mon-sun"], "from": from, "to": to},
                   "target": {"pbx": "Queue/evening"}, "outside_target": {"pbx": "Queue/day"}}),
        )
        .await;
        let v = route(&app, &token, "+4930123456", "").await;
        let want = if inside { "Queue/evening" } else { "Queue/day" };
        assert_eq!(v["target"], want, "{from}-{to} at {clock}: {v}");
        assert_eq!(v["rule"]["id"], rule["id"], "{from}-{to} at {clock}: {v}");
    }
}

#[tokio::test]
async fn round_robin_takes_turns_and_skips_users_who_cannot_answer() {
    let (app, token, _) = app_with(&[]).await;
    let admin = app.add_user("root", "admin", None, &[]).await;
    let _ = admin;
    let admin_token = app.login("root").await;
    let a = app.add_user("a", "agent", Some("sales"), &["201"]).await;
    let b = app.add_user("b", "agent", Some("sales"), &["202"]).await;
    let c = app.add_user("c", "agent", Some("sales"), &["203"]).await;
    // No extension: cannot ring, never picked for a call.
    app.add_user("d", "agent", Some("sales"), &[]).await;
    let team = team_id(&app, "sales").await;
    add_rule(
        &app,
        &token,
        json!({"kind": "round_robin", "name": "Sales in turn", "target": {"team_id": team}}),
    )
    .await;
    let mut picks = Vec::new();
    for _ in 0..6 {
        picks.push(
            route(&app, &token, "+4930123456", "").await["user"]["id"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(picks, [a, b, c, a, b, c]);

    // b is deactivated: the turn skips them once the change is seen.
    let (s, v) = app
        .send(
            "PATCH",
            &admin_token,
            &format!("/api/v1/users/{b}"),
            json!({"active": false}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        let id = route(&app, &token, "+4930123456", "").await["user"]["id"]
            .as_i64()
            .unwrap();
        seen.push(id);
        if seen.len() >= 4 && seen[seen.len() - 4..].iter().all(|&x| x != b) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tail = &seen[seen.len() - 4..];
    assert!(tail.iter().all(|&x| x != b), "{seen:?}");
    assert!(tail.contains(&a) && tail.contains(&c), "{seen:?}");
    for w in tail.windows(2) {
        assert_ne!(w[0], w[1], "turns alternate: {seen:?}");
    }
}

#[tokio::test]
async fn a_paused_agent_is_passed_over_until_they_are_available_again() {
    let (app, token, _) = app_with(&[]).await;
    let a = app.add_user("a", "agent", Some("desk"), &["401"]).await;
    let b = app.add_user("b", "agent", Some("desk"), &["402"]).await;
    let desk = team_id(&app, "desk").await;
    add_rule(
        &app,
        &token,
        json!({"kind": "round_robin", "name": "Desk in turn", "target": {"team_id": desk}}),
    )
    .await;
    let b_token = app.login("b").await;
    let (s, v) = app
        .send(
            "PUT",
            &b_token,
            "/api/v1/me/state",
            json!({"state": "paused", "reason": "lunch"}),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("paused")), "{v}");
    for _ in 0..4 {
        let v = route(&app, &token, "+4930123456", "").await;
        assert_eq!(v["user"]["id"].as_i64(), Some(a), "b is paused: {v}");
    }
    let (s, _) = app
        .send(
            "PUT",
            &b_token,
            "/api/v1/me/state",
            json!({"state": "available"}),
        )
        .await;
    assert_eq!(s, 200);
    let picks: Vec<Option<i64>> = [
        route(&app, &token, "+4930123456", "").await,
        route(&app, &token, "+4930123456", "").await,
    ]
    .iter()
    .map(|v| v["user"]["id"].as_i64())
    .collect();
    assert!(picks.contains(&Some(b)), "b is back in turn: {picks:?}");
}

#[tokio::test]
async fn least_loaded_picks_a_free_member_and_falls_through_when_nobody_can() {
    let (app, token, _) = app_with(&[("RINGSIDE_ROUTING_DEFAULT_TARGET", "Queue/support")]).await;
    let a = app.add_user("a", "agent", Some("care"), &["301"]).await;
    let b = app.add_user("b", "agent", Some("care"), &["302"]).await;
    app.add_user("x", "agent", Some("empty"), &[]).await;
    let care = team_id(&app, "care").await;
    let empty = team_id(&app, "empty").await;
    add_rule(
        &app,
        &token,
        json!({"kind": "least_loaded", "name": "Nobody", "priority": 1, "target": {"team_id": empty}}),
    )
    .await;
    add_rule(
        &app,
        &token,
        json!({"kind": "least_loaded", "name": "Care", "priority": 2, "target": {"team_id": care}}),
    )
    .await;
    let first = route(&app, &token, "+4930123456", "").await;
    assert_eq!(first["rule"]["name"], "Care", "{first}");
    assert!(
        first["reason"].as_str().unwrap().contains("0 active calls"),
        "{first}"
    );
    let second = route(&app, &token, "+4930123456", "").await;
    let ids = [first["user"]["id"].as_i64(), second["user"]["id"].as_i64()];
    assert_eq!(ids, [Some(a), Some(b)], "equal load: in turn");
    assert_eq!(second["target"], "PJSIP/302");
}

#[tokio::test]
async fn rules_are_validated_and_only_managers_change_them() {
    let (app, token, boss) = app_with(&[]).await;
    app.add_user("agent", "agent", None, &["150"]).await;
    let agent = app.login("agent").await;
    let body =
        json!({"kind": "prefix", "name": "UK", "prefix": "+44", "target": {"pbx": "Queue/uk"}});
    let (s, v) = app
        .post(&agent, "/api/v1/routing/rules", body.clone())
        .await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"));
    let r = app
        .client
        .get(app.url("/api/v1/routing/rules"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.url("/api/v1/route?caller=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    for (bad, needle) in [
        (
            json!({"name": "x", "prefix": "+44", "target": {"pbx": "Q"}}),
            "kind is required",
        ),
        (
            json!({"kind": "prefix", "name": "x", "prefix": "44", "target": {"pbx": "Q"}}),
            "prefix",
        ),
        (
            json!({"kind": "prefix", "name": "x", "prefix": "+44"}),
            "needs a target",
        ),
        (
            json!({"kind": "prefix", "name": "x", "prefix": "+44", "target": {"pbx": "Queue/a,b"}}),
            "may not contain",
        ),
        (
            json!({"kind": "did", "name": "x", "did": "abc", "target": {"pbx": "Q"}}),
            "did",
        ),
        (
            json!({"kind": "prefix", "name": "x", "prefix": "+44", "target": {"user_id": 9999}}),
            "no user",
        ),
        (
            json!({"kind": "round_robin", "name": "x", "target": {"team_id": 9999}}),
            "no team",
        ),
        (
            json!({"kind": "round_robin", "name": "x", "target": {"user_id": boss}}),
            "team",
        ),
        (
            json!({"kind": "sticky", "name": "x", "prefix": "+44"}),
            "does not apply",
        ),
        (json!({"kind": "sticky", "name": " "}), "name"),
        (
            json!({"kind": "sticky", "name": "x", "priority": -1}),
            "priority",
        ),
        (
            json!({"kind": "hours", "name": "x", "schedule": {"timezone": "Europe/Berlin", "days": ["mon"], "from": "25:00", "to": "18:00"}, "target": {"pbx": "Q"}}),
            "from",
        ),
        (
            json!({"kind": "hours", "name": "x", "schedule": {"timezone": "Nowhere/City", "days": ["mon"], "from": "09:00", "to": "18:00"}, "target": {"pbx": "Q"}}),
            "time zone",
        ),
        (
            json!({"kind": "hours", "name": "x", "schedule": {"timezone": "UTC", "days": ["funday"], "from": "09:00", "to": "18:00"}, "target": {"pbx": "Q"}}),
            "day",
        ),
        (
            json!({"kind": "hours", "name": "x", "schedule": {"timezone": "UTC", "days": ["ab€"], "from": "09:00", "to": "18:00"}, "target": {"pbx": "Q"}}),
            "day",
        ),
        (
            json!({"kind": "hours", "name": "x", "schedule": {"timezone": "UTC", "days": ["mon"], "from": "9:0€", "to": "18:00"}, "target": {"pbx": "Q"}}),
            "from",
        ),
    ] {
        let (s, v) = app.post(&token, "/api/v1/routing/rules", bad.clone()).await;
        assert_eq!((s, error_code(&v)), (400, "bad_request"), "{bad} → {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{bad}: `{msg}` lacks `{needle}`");
    }
    // Unknown fields and bad JSON keep the API's error shape.
    let (s, v) = app
        .post(
            &token,
            "/api/v1/routing/rules",
            json!({"kind": "sticky", "name": "x", "colour": "red"}),
        )
        .await;
    assert!(s == 400 || s == 422, "{s} {v}");
    assert_ne!(error_code(&v), "<no error shape>");

    let created = add_rule(&app, &token, body).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["enabled"], true);
    assert_eq!(created["target"], json!({"pbx": "Queue/uk"}));
    let (s, list) = app.get(&agent, "/api/v1/routing/rules").await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);

    let path = format!("/api/v1/routing/rules/{id}");
    let (s, v) = app
        .send("PATCH", &agent, &path, json!({"priority": 1}))
        .await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"));
    let (s, v) = app
        .send(
            "PATCH",
            &token,
            &path,
            json!({"priority": 5, "target": {"user_id": boss}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["priority"], 5);
    assert_eq!(v["prefix"], "+44");
    assert_eq!(
        route(&app, &token, "+442071234567", "").await["target"],
        "PJSIP/101"
    );
    // Changing the kind drops the old parameters and needs the new ones.
    let (s, v) = app
        .send("PATCH", &token, &path, json!({"kind": "did"}))
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = app
        .send("PATCH", &token, &path, json!({"kind": "sticky"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["prefix"], Value::Null);
    assert_eq!(v["target"], Value::Null);

    let (s, v) = app.send("DELETE", &agent, &path, json!({})).await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"));
    let (s, _) = app.send("DELETE", &token, &path, json!({})).await;
    assert_eq!(s, 204);
    let (s, v) = app.send("DELETE", &token, &path, json!({})).await;
    assert_eq!((s, error_code(&v)), (404, "not_found"));
    let (s, v) = app
        .send("PATCH", &token, &path, json!({"priority": 1}))
        .await;
    assert_eq!((s, error_code(&v)), (404, "not_found"));

    // The route question refuses what is not a line of text.
    let (s, v) = app.get(&token, "/api/v1/route?caller=%0A1").await;
    assert_eq!((s, error_code(&v)), (400, "bad_request"));
    let long = "1".repeat(101);
    let (s, _) = app
        .get(&token, &format!("/api/v1/route?caller={long}"))
        .await;
    assert_eq!(s, 400);
    // And the routes are in the OpenAPI document.
    let (_, doc) = app.get(&token, "/api/v1/openapi.json").await;
    assert!(doc["paths"]["/api/v1/route"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/routing/rules/{id}"]["patch"].is_object());
}

#[tokio::test]
async fn cli_rules_reach_the_running_server() {
    let (app, token, _) = app_with(&[]).await;
    app.add_user("eve", "agent", Some("night"), &["401"]).await;
    let (ok, out, err) = run_cli(
        &app.db_url,
        &[
            "routing",
            "add",
            "--kind",
            "prefix",
            "--name",
            "France",
            "--priority",
            "7",
            "--prefix",
            "+33",
            "--target",
            "user:eve",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("added, id"), "{out}");
    let (ok, _, err) = run_cli(
        &app.db_url,
        &[
            "routing",
            "add",
            "--kind",
            "round_robin",
            "--name",
            "x",
            "--target",
            "team:nope",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("no team named `nope`"), "{err}");
    let (ok, _, err) = run_cli(
        &app.db_url,
        &[
            "routing", "add", "--kind", "hours", "--name", "x", "--tz", "UTC", "--target",
            "Queue/a",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("--from"), "{err}");
    let (ok, out, _) = run_cli(&app.db_url, &["routing", "list"], None);
    assert!(ok);
    assert!(
        out.contains("France") && out.contains("+33") && out.contains("prefix"),
        "{out}"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        let v = route(&app, &token, "+33 1 23 45 67 89", "").await;
        if v["target"] == "PJSIP/401" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server never saw the rule: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let id = app.db.routing_rules().await.unwrap()[0].id.to_string();
    let (ok, out, _) = run_cli(&app.db_url, &["routing", "rm", &id], None);
    assert!(ok, "{out}");
    let (ok, _, err) = run_cli(&app.db_url, &["routing", "rm", &id], None);
    assert!(!ok);
    assert!(err.contains("no routing rule"), "{err}");
}

// ---- FastAGI over TCP ----

/// What Asterisk 22 sends for `AGI(agi://127.0.0.1:PORT/route)`.
fn agi_headers(addr: &str, callerid: &str, dnid: &str) -> String {
    format!(
        "agi_network: yes\nagi_network_script: route\nagi_request: agi://{addr}/route\n\
         agi_channel: PJSIP/trunk-00000007\nagi_language: en\nagi_type: PJSIP\n\
         agi_uniqueid: 1732370000.7\nagi_version: 22.0.0\nagi_callerid: {callerid}\n\
         agi_calleridname: unknown\nagi_callingpres: 0\nagi_callingani2: 0\nagi_callington: 0\n\
         agi_callingtns: 0\nagi_dnid: {dnid}\nagi_rdnis: unknown\nagi_context: from-trunk\n\
         agi_extension: {dnid}\nagi_priority: 2\nagi_enhanced: 0.0\nagi_accountcode: \n\
         agi_threadid: 140000000000000\n\n"
    )
}

/// Plays Asterisk: sends the headers, answers each command `200 result=1`,
/// returns the commands received until the server closes.
async fn speak_agi(addr: &str, headers: &str) -> Vec<String> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    wr.write_all(headers.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), rd.read_line(&mut line))
            .await
            .expect("server answered in time")
            .unwrap();
        if n == 0 {
            return got;
        }
        got.push(line.trim_end_matches('\n').to_owned());
        wr.write_all(b"200 result=1\n").await.unwrap();
    }
}

async fn agi_app() -> (TestApp, String, String) {
    let (app, token, _) = app_with(&[
        ("RINGSIDE_AGI_BIND", "127.0.0.1:0"),
        ("RINGSIDE_ROUTING_DEFAULT_TARGET", "Queue/support"),
    ])
    .await;
    let addr = app
        .agi
        .clone()
        .expect("the server reports its FastAGI address");
    (app, token, addr)
}

#[tokio::test]
async fn fastagi_sets_the_channel_variables_asterisk_dials_with() {
    let (app, token, addr) = agi_app().await;
    let anna = app.add_user("anna", "agent", None, &["102"]).await;
    let (_, contact) = app
        .post(
            &token,
            "/api/v1/contacts",
            json!({"name": "Jens", "owner_id": anna, "phones": [{"number": "+49 30 1234567"}]}),
        )
        .await;
    let rule = add_rule(
        &app,
        &token,
        json!({"kind": "sticky", "name": "Owner first"}),
    )
    .await;

    let cmds = speak_agi(&addr, &agi_headers(&addr, "+49301234567", "4000")).await;
    assert_eq!(
        cmds,
        [
            "SET VARIABLE RINGSIDE_TARGET \"PJSIP/102\"".to_owned(),
            format!("SET VARIABLE RINGSIDE_CONTACT \"{}\"", contact["id"]),
            format!("SET VARIABLE RINGSIDE_OWNER \"{anna}\""),
            format!("SET VARIABLE RINGSIDE_RULE \"{}\"", rule["id"]),
        ]
    );
    // A stranger gets the default target and empty variables.
    let cmds = speak_agi(&addr, &agi_headers(&addr, "unknown", "4000")).await;
    assert_eq!(
        cmds,
        [
            "SET VARIABLE RINGSIDE_TARGET \"Queue/support\"",
            "SET VARIABLE RINGSIDE_CONTACT \"\"",
            "SET VARIABLE RINGSIDE_OWNER \"\"",
            "SET VARIABLE RINGSIDE_RULE \"\"",
        ]
    );
    // The dialled number comes from agi_dnid (or the first argument).
    add_rule(
        &app,
        &token,
        json!({"kind": "did", "name": "Hotline", "priority": 1, "did": "4000", "target": {"pbx": "Queue/hotline"}}),
    )
    .await;
    let cmds = speak_agi(&addr, &agi_headers(&addr, "+49301234567", "4000")).await;
    assert_eq!(cmds[0], "SET VARIABLE RINGSIDE_TARGET \"Queue/hotline\"");
    let with_arg = agi_headers(&addr, "+49301234567", "unknown")
        .replace("agi_threadid", "agi_arg_1: 4000\nagi_threadid");
    let cmds = speak_agi(&addr, &with_arg).await;
    assert_eq!(cmds[0], "SET VARIABLE RINGSIDE_TARGET \"Queue/hotline\"");
}

#[tokio::test]
async fn fastagi_stops_at_hangup_and_bad_clients_do_not_block_good_ones() {
    let (_app, _token, addr) = agi_app().await;

    // A silent client holds a connection open; others are still served.
    let silent = TcpStream::connect(&addr).await.unwrap();
    // Headers cut off in the middle, never finished.
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"agi_network: yes\nagi_request: agi://x/ro")
        .await
        .unwrap();

    // Garbage instead of headers: closed without a command.
    for garbage in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"\x00\x01\x02 binary\n\n".to_vec(),
        vec![b'a'; 64 * 1024],
    ] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let _ = s.write_all(&garbage).await;
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .expect("closed in time");
        assert!(
            n.is_err() || buf.is_empty(),
            "no commands for garbage: {buf:?}"
        );
    }

    // An unknown script: closed without variables (the dialplan falls back).
    let other = agi_headers(&addr, "+49301234567", "4000")
        .replace("agi_network_script: route", "agi_network_script: billing");
    assert!(speak_agi(&addr, &other).await.is_empty());

    // The channel hangs up: Asterisk says HANGUP and refuses with 511; we stop.
    let stream = TcpStream::connect(&addr).await.unwrap();
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    wr.write_all(agi_headers(&addr, "+49301234567", "4000").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    rd.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("SET VARIABLE RINGSIDE_TARGET"), "{line}");
    wr.write_all(b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n")
        .await
        .unwrap();
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(5), rd.read_to_string(&mut rest))
        .await
        .expect("closed in time")
        .unwrap();
    assert_eq!(rest, "", "nothing more after a hangup");

    // A correct client right after all that, while the silent ones still wait.
    let started = std::time::Instant::now();
    let cmds = speak_agi(&addr, &agi_headers(&addr, "+49301234567", "4000")).await;
    assert_eq!(cmds.len(), 4, "{cmds:?}");
    assert_eq!(cmds[0], "SET VARIABLE RINGSIDE_TARGET \"Queue/support\"");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not held up by the silent clients"
    );

    // The silent clients are dropped after the header deadline, not kept forever.
    let mut silent = silent;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("the server closes a silent client");
    assert!(matches!(n, Ok(0) | Err(_)));
    let n = tokio::time::timeout(Duration::from_secs(10), half.read(&mut buf))
        .await
        .expect("the server closes a half-sent header");
    assert!(matches!(n, Ok(0) | Err(_)));
}

#[tokio::test]
async fn new_leads_go_to_a_person_never_to_a_queue() {
    // In process: the same service the call flow uses to assign a new lead.
    let dir = tempfile::tempdir().unwrap();
    let db_url = support::fresh_database(dir.path()).await;
    let env: Vec<(String, String)> = vec![
        ("RINGSIDE_DATABASE_URL".into(), db_url.clone()),
        (
            "RINGSIDE_ROUTING_DEFAULT_TARGET".into(),
            "Queue/support".into(),
        ),
    ];
    let config = ringside::config::Config::load_from(None, &env).unwrap();
    let db = ringside::startup::open_db(&config).await.unwrap();
    let state = ringside::http::AppState::load(db.clone(), config)
        .await
        .unwrap();
    let team = db.create_team("managers").await.unwrap().id;
    let hash = ringside::auth::hash_password(support::PASSWORD);
    let mut managers = Vec::new();
    for login in ["m1", "m2"] {
        // Managers without a phone still take leads.
        let u = db
            .create_user(ringside::store::users::NewUser {
                login,
                name: login,
                role: "manager",
                team_id: Some(team),
                locale: "en",
                password_hash: &hash,
                extensions: &[],
            })
            .await
            .unwrap();
        managers.push(u.id);
    }
    use ringside::routing::rules::{RuleInput, TargetSpec, build_rule};
    for input in [
        RuleInput {
            kind: Some("prefix".into()),
            name: Some("Everyone to the queue".into()),
            priority: Some(1),
            prefix: Some("+7".into()),
            target: Some(TargetSpec::Pbx("Queue/sales".into())),
            ..Default::default()
        },
        RuleInput {
            kind: Some("round_robin".into()),
            name: Some("Managers in turn".into()),
            priority: Some(2),
            target: Some(TargetSpec::TeamId(team)),
            ..Default::default()
        },
    ] {
        db.create_routing_rule(&build_rule(input, None).unwrap())
            .await
            .unwrap();
    }
    state.routing.reload(&db).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        let call = ringside::routing::LeadCall {
            caller: "+79161234567",
            ..Default::default()
        };
        got.push(state.routing.assign_lead(&state, &call).await);
    }
    let m: Vec<Option<i64>> = managers.iter().map(|&id| Some(id)).collect();
    assert_eq!(got, [m[0], m[1], m[0], m[1]]);
    // The same caller as a call: the queue rule wins, managers have no phone.
    let call = state.routing.route(&state, "+79161234567", "").await;
    assert_eq!(call.target.as_deref(), Some("Queue/sales"));
}

const CTI: &str = "routing-cti-token-0123456789";

/// One missed call from `from` to `did` fed through the CTI API.
async fn missed_call(app: &TestApp, id: &str, from: &str, did: &str) {
    for body in [
        json!({"event": "newCall", "call_id": id, "from": from, "to": did}),
        json!({"event": "hangup", "call_id": id}),
    ] {
        let (s, v) = app.post(CTI, "/api/v1/cti/events", body).await;
        assert_eq!(s, 202, "{v}");
    }
}

/// The open lead for `e164`, once the call that made it is logged.
async fn lead_of(app: &TestApp, token: &str, e164: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, leads) = app.get(token, "/api/v1/leads").await;
        if let Some(l) = leads
            .as_array()
            .and_then(|a| a.iter().find(|l| l["phone_e164"] == e164))
        {
            return l.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no lead for {e164}: {leads}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The open callback of a lead, once made.
async fn callback_of_lead(app: &TestApp, token: &str, lead: &Value) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, tasks) = app.get(token, "/api/v1/tasks?done=false").await;
        if let Some(t) = tasks
            .as_array()
            .and_then(|a| a.iter().find(|t| t["lead_id"] == lead["id"]))
        {
            return t.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no callback for lead {lead}: {tasks}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_did_rule_gives_a_new_callers_lead_and_callback_to_its_manager() {
    let (app, token, _boss) = app_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_CTI_TOKENS", &format!("pbx={CTI}")),
    ])
    .await;
    // Not the first manager, so a turn among managers would not pick her.
    let dina = app.add_user("dina", "manager", None, &["111"]).await;
    add_rule(
        &app,
        &token,
        json!({"kind": "did", "name": "Partner line", "did": "+7 495 765-43-21", "target": {"user_id": dina}}),
    )
    .await;
    assert_eq!(
        route(&app, &token, "+4930555000111", "84957654321").await["user"]["id"],
        dina
    );
    let dina_token = app.login("dina").await;
    let mut tab = Tab::open(&app, &dina_token, None).await;

    missed_call(&app, "d-1", "+49 30 5550001", "84957654321").await;
    let lead = lead_of(&app, &token, "+49305550001").await;
    assert_eq!(lead["manager_id"], dina, "{lead}");
    let msgs = tab.until("lead.assigned", Duration::from_secs(20)).await;
    assert_eq!(msgs.last().unwrap()["lead"]["id"], lead["id"], "{msgs:?}");
    let task = callback_of_lead(&app, &token, &lead).await;
    assert_eq!(task["assignee_id"], dina, "{task}");
}

#[tokio::test]
async fn without_rules_new_callers_go_to_the_managers_in_turn() {
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_CTI_TOKENS", &format!("pbx={CTI}")),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("root", "admin", None, &[]).await;
    let m1 = app.add_user("m1", "manager", None, &[]).await;
    let m2 = app.add_user("m2", "manager", None, &[]).await;
    let gone = app.add_user("gone", "manager", None, &[]).await;
    let admin = app.login("root").await;
    let (s, v) = app
        .send(
            "PATCH",
            &admin,
            &format!("/api/v1/users/{gone}"),
            json!({"active": false}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut tabs = Vec::new();
    for login in ["m1", "m2"] {
        let t = app.login(login).await;
        tabs.push(Tab::open(&app, &t, None).await);
    }
    let mut got = Vec::new();
    for (i, (number, e164)) in [
        ("+49 30 5550001", "+49305550001"),
        ("+49 30 5550002", "+49305550002"),
        ("+49 30 5550003", "+49305550003"),
    ]
    .into_iter()
    .enumerate()
    {
        missed_call(&app, &format!("n-{i}"), number, "84951234567").await;
        let lead = lead_of(&app, &admin, e164).await;
        let task = callback_of_lead(&app, &admin, &lead).await;
        assert_eq!(task["assignee_id"], lead["manager_id"], "{task} {lead}");
        got.push(lead);
    }
    let managers: Vec<&Value> = got.iter().map(|l| &l["manager_id"]).collect();
    assert_eq!(managers, [&json!(m1), &json!(m2), &json!(m1)], "{got:?}");
    // Each manager is told about their own leads, and only those.
    for (tab, (me, mine)) in tabs
        .iter_mut()
        .zip([(m1, vec![&got[0], &got[2]]), (m2, vec![&got[1]])])
    {
        let mut told = Vec::new();
        while told.len() < mine.len() {
            let msgs = tab.until("lead.assigned", Duration::from_secs(20)).await;
            told.push(msgs.last().unwrap()["lead"]["id"].clone());
        }
        let want: Vec<Value> = mine.iter().map(|l| l["id"].clone()).collect();
        assert_eq!(told, want, "manager {me}");
    }
}

#[tokio::test]
async fn without_rules_a_teams_callers_go_to_its_own_managers() {
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_CTI_TOKENS", &format!("pbx={CTI}")),
    ])
    .await;
    let _other = app.add_user("other", "manager", Some("Sales"), &[]).await;
    let lead_of_support = app.add_user("sam", "manager", Some("Support"), &[]).await;
    app.add_user("clara", "agent", Some("Support"), &["103"])
        .await;
    let admin = app.login("sam").await;
    for body in [
        json!({"event": "newCall", "call_id": "t-1", "from": "+49 30 5550007", "extension": "103"}),
        json!({"event": "hangup", "call_id": "t-1"}),
    ] {
        let (s, v) = app.post(CTI, "/api/v1/cti/events", body).await;
        assert_eq!(s, 202, "{v}");
    }
    let lead = lead_of(&app, &admin, "+49305550007").await;
    assert_eq!(lead["manager_id"], lead_of_support, "{lead}");
}
