//! Who may see and change what, from the outside: two teams and every role
//! (agent, supervisor, manager, admin) against the real server; the login
//! limiter behind a trusted proxy; input checks and response headers.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{PASSWORD, Tab, TestApp};

const WAIT: Duration = Duration::from_secs(20);
const CTI: &str = "cti-secret-0123456789";

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error shape>")
}

/// Sales: anna, boris (agents), sam (supervisor). Support: clara (agent),
/// sue (supervisor). maria is a manager, root the admin.
struct Org {
    app: TestApp,
    anna: String,
    boris: String,
    sam: String,
    clara: String,
    sue: String,
    maria: String,
    root: String,
    ids: std::collections::HashMap<&'static str, i64>,
}

async fn org(env: &[(&str, &str)]) -> Org {
    let mut all = vec![
        ("RINGSIDE_DEFAULT_REGION", "DE"),
        ("RINGSIDE_CTI_TOKENS", "threecx=cti-secret-0123456789"),
    ];
    all.extend_from_slice(env);
    let app = TestApp::spawn_with(&all).await;
    let mut ids = std::collections::HashMap::new();
    for (login, role, team, ext) in [
        ("anna", "agent", Some("Sales"), Some("101")),
        ("boris", "agent", Some("Sales"), Some("102")),
        ("sam", "supervisor", Some("Sales"), None),
        ("clara", "agent", Some("Support"), Some("103")),
        ("sue", "supervisor", Some("Support"), None),
        ("maria", "manager", None, None),
        ("root", "admin", None, None),
    ] {
        let exts: Vec<&str> = ext.into_iter().collect();
        ids.insert(login, app.add_user(login, role, team, &exts).await);
    }
    Org {
        anna: app.login("anna").await,
        boris: app.login("boris").await,
        sam: app.login("sam").await,
        clara: app.login("clara").await,
        sue: app.login("sue").await,
        maria: app.login("maria").await,
        root: app.login("root").await,
        app,
        ids,
    }
}

/// Anna's contact with a note, a deal with an amount and an open task.
async fn sales_card(o: &Org) -> i64 {
    let app = &o.app;
    let (s, c) = app
        .post(
            &o.anna,
            "/api/v1/contacts",
            json!({"name": "Hans Mueller", "company": "Mueller GmbH", "email": "hans@example.de",
                   "notes": "pays late", "tags": ["vip"], "phones": [{"number": "030 123456"}]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    let (s, p) = app
        .post(
            &o.maria,
            "/api/v1/pipelines",
            json!({"name": "B2B", "stages": [{"name": "New"}, {"name": "Won", "outcome": "won"}]}),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let (s, d) = app
        .post(
            &o.anna,
            "/api/v1/deals",
            json!({"title": "Trucks", "pipeline_id": p["id"], "contact_id": id, "amount_minor": 1250000, "currency": "EUR"}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let (s, n) = app
        .post(
            &o.anna,
            "/api/v1/notes",
            json!({"contact_id": id, "body": "secret terms"}),
        )
        .await;
    assert_eq!(s, 201, "{n}");
    let (s, t) = app
        .post(
            &o.anna,
            "/api/v1/tasks",
            json!({"title": "Send the offer", "contact_id": id}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    id
}

async fn cti(app: &TestApp, body: Value) {
    let (s, v) = app.post(CTI, "/api/v1/cti/events", body).await;
    assert_eq!(s, 202, "{v}");
}

fn is_full(card: &Value) -> bool {
    card["deals"].as_array().is_some_and(|d| !d.is_empty())
        && card["activities"].as_array().is_some_and(|a| !a.is_empty())
        && card["tasks"].as_array().is_some_and(|t| !t.is_empty())
}

fn is_limited(card: &Value) -> bool {
    card["name"] == "Hans Mueller"
        && card["company"]["name"] == "Mueller GmbH"
        && card["owner"]["login"] == "anna"
        && card["limited"] == true
        && card["email"].is_null()
        && ["deals", "activities", "tasks", "tags", "phones"]
            .iter()
            .all(|k| card[k].as_array().is_some_and(|a| a.is_empty()))
}

#[tokio::test]
async fn lookup_shows_a_hidden_card_limited_except_to_the_agent_it_rings() {
    let o = org(&[]).await;
    let app = &o.app;
    let id = sales_card(&o).await;
    let path = "/api/v1/lookup?number=%2B4930123456";
    // The card's team and those who see everything get all of it.
    for t in [&o.anna, &o.boris, &o.sam, &o.maria, &o.root] {
        let (s, v) = app.get(t, path).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["match"], "exact");
        assert!(is_full(&v["contact"]), "{v}");
        assert!(v["contact"].get("limited").is_none(), "{v}");
    }
    // Another team's agent and supervisor get 403 on the contact, and the
    // lookup names it only.
    for t in [&o.clara, &o.sue] {
        assert_eq!(app.get(t, &format!("/api/v1/contacts/{id}")).await.0, 403);
        let (s, v) = app.get(t, path).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["match"], "exact");
        assert_eq!(v["contact"]["id"], id);
        assert!(is_limited(&v["contact"]), "{v}");
    }

    // While the caller rings Clara's phone she sees the card the ring pops.
    let mut tab = Tab::open(app, &o.clara, None).await;
    cti(
        app,
        json!({"event": "newCall", "call_id": "x-1", "from": "+4930123456", "extension": "103"}),
    )
    .await;
    let pop = tab.until("call.ringing", WAIT).await;
    assert!(is_full(&pop.last().unwrap()["contact"]), "{pop:?}");
    let (_, v) = app.get(&o.clara, path).await;
    assert!(is_full(&v["contact"]), "{v}");
    // Sue's phone is not ringing: still limited.
    let (_, v) = app.get(&o.sue, path).await;
    assert!(is_limited(&v["contact"]), "{v}");
    cti(
        app,
        json!({"event": "answer", "call_id": "x-1", "extension": "103"}),
    )
    .await;
    let (_, v) = app.get(&o.clara, path).await;
    assert!(is_full(&v["contact"]), "{v}");
    cti(app, json!({"event": "hangup", "call_id": "x-1"})).await;
    tab.until("call.ended", WAIT).await;
    // Once the call is over, the card is hidden again.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, v) = app.get(&o.clara, path).await;
        if is_limited(&v["contact"]) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn link_and_wrap_up_follow_the_calls_visibility() {
    let o = org(&[]).await;
    let app = &o.app;
    let hans = sales_card(&o).await;
    let (s, c) = app
        .post(
            &o.clara,
            "/api/v1/contacts",
            json!({"name": "Support client", "phones": [{"number": "030 999999"}]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let support = c["id"].as_i64().unwrap();
    let (s, c) = app
        .post(
            &o.anna,
            "/api/v1/contacts",
            json!({"name": "Hans at home", "phones": [{"number": "030 555555"}]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let hans_home = c["id"].as_i64().unwrap();

    // A live call ringing Anna's phone.
    let call = "cti:threecx:s-1";
    let mut tab = Tab::open(app, &o.anna, None).await;
    cti(
        app,
        json!({"event": "newCall", "call_id": "s-1", "from": "+4930123456", "extension": "101"}),
    )
    .await;
    tab.until("call.ringing", WAIT).await;
    let note = json!({"note": "moved", "disposition": "info"});
    let link = |to: i64| json!({ "contact_id": to });
    let wrapup = format!("/api/v1/calls/{call}/wrapup");
    let linkp = format!("/api/v1/calls/{call}/link");
    // Another team's agent and supervisor can neither note nor move it.
    for t in [&o.clara, &o.sue] {
        let (s, v) = app.post(t, &wrapup, note.clone()).await;
        assert_eq!((s, error_code(&v)), (403, "forbidden"), "{v}");
        let (s, v) = app.post(t, &linkp, link(support)).await;
        assert_eq!((s, error_code(&v)), (403, "forbidden"), "{v}");
    }
    // Anna may move it, but only onto a card she may see.
    let (s, v) = app.post(&o.anna, &linkp, link(support)).await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"), "{v}");
    assert_eq!(app.post(&o.anna, &linkp, link(hans)).await.0, 204);
    cti(
        app,
        json!({"event": "answer", "call_id": "s-1", "extension": "101"}),
    )
    .await;
    cti(app, json!({"event": "hangup", "call_id": "s-1"})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.get(&o.maria, &format!("/api/v1/calls/{call}")).await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call is not logged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The logged call: the same rule as GET /calls/{call_id}.
    for t in [&o.clara, &o.sue] {
        assert_eq!(app.get(t, &format!("/api/v1/calls/{call}")).await.0, 403);
        let (s, v) = app.post(t, &wrapup, note.clone()).await;
        assert_eq!((s, error_code(&v)), (403, "forbidden"), "{v}");
        let (s, v) = app.post(t, &linkp, link(support)).await;
        assert_eq!((s, error_code(&v)), (403, "forbidden"), "{v}");
    }
    let (_, logged) = app.get(&o.maria, &format!("/api/v1/calls/{call}")).await;
    assert_eq!(logged["contact_id"], hans, "{logged}");
    assert!(logged["wrapup"].is_null(), "{logged}");
    // The support card got nothing.
    let (_, tl) = app
        .get(&o.clara, &format!("/api/v1/contacts/{support}/activities"))
        .await;
    assert_eq!(tl["items"], json!([]), "{tl}");
    // Boris (same team) and Sam (its supervisor) may.
    let (s, v) = app.post(&o.boris, &wrapup, note.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["contact_id"], hans);
    assert_eq!(app.post(&o.sam, &linkp, link(hans_home)).await.0, 204);
    let (s, v) = app.post(&o.sam, &linkp, link(support)).await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"), "{v}");
    // Unknown calls stay 404.
    let (s, v) = app
        .post(&o.anna, "/api/v1/calls/nope/wrapup", note.clone())
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = app
        .post(&o.anna, "/api/v1/calls/nope/link", link(hans))
        .await;
    assert_eq!(s, 404, "{v}");
}

#[tokio::test]
async fn agents_and_supervisors_stay_within_their_team() {
    let o = org(&[]).await;
    let app = &o.app;
    let (anna, boris, clara) = (o.ids["anna"], o.ids["boris"], o.ids["clara"]);

    // Leads: only to themselves or their team.
    let (s, v) = app
        .post(
            &o.anna,
            "/api/v1/leads",
            json!({"name": "L1", "manager_id": clara}),
        )
        .await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"), "{v}");
    let (s, v) = app
        .post(
            &o.anna,
            "/api/v1/leads",
            json!({"name": "L1", "manager_id": 9999}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, lead) = app
        .post(
            &o.anna,
            "/api/v1/leads",
            json!({"name": "L1", "manager_id": boris}),
        )
        .await;
    assert_eq!(s, 201, "{lead}");
    let lead_path = format!("/api/v1/leads/{}", lead["id"]);
    let (s, v) = app
        .send("PATCH", &o.anna, &lead_path, json!({"manager_id": clara}))
        .await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"), "{v}");
    let (s, v) = app
        .post(
            &o.anna,
            &format!("{lead_path}/convert"),
            json!({"owner_id": clara}),
        )
        .await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"), "{v}");
    let (s, v) = app
        .post(
            &o.maria,
            "/api/v1/leads",
            json!({"name": "L2", "manager_id": clara}),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    // Agent states: a supervisor sees their own team's agents only.
    let tabs = [
        Tab::open(app, &o.anna, None).await,
        Tab::open(app, &o.clara, None).await,
    ];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (s, all) = app.get(&o.maria, "/api/v1/agents").await;
        assert_eq!(s, 200);
        let ids: Vec<i64> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["user_id"].as_i64().unwrap())
            .collect();
        if ids.contains(&anna) && ids.contains(&clara) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{all}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["user_id"].as_i64().or(a["id"].as_i64()).unwrap())
            .collect()
    };
    let (_, sales) = app.get(&o.sam, "/api/v1/agents").await;
    assert!(ids(&sales).contains(&anna), "{sales}");
    assert!(!ids(&sales).contains(&clara), "{sales}");
    let (_, support) = app.get(&o.sue, "/api/v1/agents").await;
    assert_eq!(ids(&support), vec![clara], "{support}");
    assert_eq!(app.get(&o.anna, "/api/v1/agents").await.0, 403);
    for t in tabs {
        t.close().await;
    }

    // Users and teams: agents and supervisors list their own team (and
    // themselves); managers and admins everyone.
    for (t, team) in [(&o.anna, "Sales"), (&o.sam, "Sales"), (&o.clara, "Support")] {
        let (s, users) = app.get(t, "/api/v1/users").await;
        assert_eq!(s, 200);
        assert!(
            users
                .as_array()
                .unwrap()
                .iter()
                .all(|u| u["team_id"] == users[0]["team_id"]),
            "{users}"
        );
        let (_, teams) = app.get(t, "/api/v1/teams").await;
        assert_eq!(teams.as_array().unwrap().len(), 1, "{teams}");
        assert_eq!(teams[0]["name"], team);
    }
    let (_, users) = app.get(&o.anna, "/api/v1/users").await;
    let mut seen = ids(&users);
    seen.sort();
    assert_eq!(seen, vec![anna, boris, o.ids["sam"]], "{users}");
    assert_eq!(
        app.get(&o.anna, &format!("/api/v1/users/{boris}")).await.0,
        200
    );
    let (s, v) = app.get(&o.anna, &format!("/api/v1/users/{clara}")).await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"), "{v}");
    assert_eq!(
        app.get(&o.sue, &format!("/api/v1/users/{anna}")).await.0,
        403
    );
    for t in [&o.maria, &o.root] {
        let (_, users) = app.get(t, "/api/v1/users").await;
        assert_eq!(users.as_array().unwrap().len(), 7, "{users}");
        let (_, teams) = app.get(t, "/api/v1/teams").await;
        assert_eq!(teams.as_array().unwrap().len(), 2, "{teams}");
        assert_eq!(app.get(t, &format!("/api/v1/users/{clara}")).await.0, 200);
    }
}

#[tokio::test]
async fn the_last_admin_stays_and_a_deactivated_user_is_logged_out_everywhere() {
    let o = org(&[]).await;
    let app = &o.app;
    let root = o.ids["root"];
    let me = format!("/api/v1/users/{root}");
    for change in [json!({"role": "manager"}), json!({"active": false})] {
        let (s, v) = app.send("PATCH", &o.root, &me, change).await;
        assert_eq!((s, error_code(&v)), (409, "conflict"), "{v}");
    }
    let (_, v) = app.get(&o.root, "/api/v1/me").await;
    assert_eq!(
        (v["role"].as_str(), v["active"].as_bool()),
        (Some("admin"), Some(true))
    );
    // With a second admin, either may step down.
    let (s, v) = app
        .post(
            &o.root,
            "/api/v1/users",
            json!({"login": "root2", "name": "Root Two", "role": "admin", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .send("PATCH", &o.root, &me, json!({"role": "manager"}))
        .await;
    assert_eq!(s, 200, "{v}");
    let root2 = app.login("root2").await;
    let (s, v) = app
        .send(
            "PATCH",
            &root2,
            &format!("/api/v1/users/{}", v["id"]),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Deactivating Anna closes her open tabs and ends her tokens.
    let mut tab = Tab::open(app, &o.anna, None).await;
    tab.until("hello", WAIT).await;
    let mut other = Tab::open(app, &o.anna, None).await;
    other.until("hello", WAIT).await;
    let (s, v) = app
        .send(
            "PATCH",
            &o.root,
            &format!("/api/v1/users/{}", o.ids["anna"]),
            json!({"active": false}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(tab.closed_within(WAIT).await, "the tab stayed open");
    assert!(
        other.closed_within(WAIT).await,
        "the second tab stayed open"
    );
    assert_eq!(app.get(&o.anna, "/api/v1/me").await.0, 401);
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"login": "anna", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Boris's tab is not touched.
    let mut boris = Tab::open(app, &o.boris, None).await;
    boris.until("hello", WAIT).await;
    assert!(!boris.closed_within(Duration::from_millis(500)).await);
}

async fn login_from(app: &TestApp, login: &str, password: &str, from: &str) -> u16 {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", from)
        .json(&json!({"login": login, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn failed_logins_slow_one_address_without_locking_the_user_or_the_office_out() {
    let app = TestApp::spawn_with(&[("RINGSIDE_TRUSTED_PROXIES", "127.0.0.1/32, ::1")]).await;
    app.add_user("anna", "agent", None, &[]).await;
    app.add_user("boris", "agent", None, &[]).await;
    // Someone guesses Anna's password from one address…
    for _ in 0..5 {
        assert_eq!(
            login_from(&app, "anna", "wrong-password", "203.0.113.5").await,
            401
        );
    }
    // …and is held off there, even with the right password…
    assert_eq!(login_from(&app, "anna", PASSWORD, "203.0.113.5").await, 429);
    // …while Anna at her desk logs in.
    assert_eq!(
        login_from(&app, "anna", PASSWORD, "198.51.100.7").await,
        200
    );
    // The proxy's own hops before it are not trusted: the client is the
    // rightmost address the proxy did not add.
    assert_eq!(
        login_from(&app, "anna", PASSWORD, "198.51.100.7, 203.0.113.5").await,
        429
    );

    // Forty failures from an office's one NAT address, for many logins, do
    // not lock out the colleagues behind it.
    for i in 0..40 {
        let login = format!("nobody{i}");
        assert_eq!(
            login_from(&app, &login, "wrong-password", "192.0.2.10").await,
            401
        );
    }
    assert_eq!(login_from(&app, "boris", PASSWORD, "192.0.2.10").await, 200);
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let app = TestApp::spawn().await;
    app.add_user("anna", "agent", None, &[]).await;
    for i in 0..5 {
        let from = format!("203.0.113.{i}");
        assert_eq!(login_from(&app, "anna", "wrong-password", &from).await, 401);
    }
    // Without trusted proxies the header is the client's word: ignored.
    assert_eq!(
        login_from(&app, "anna", PASSWORD, "198.51.100.7").await,
        429
    );
}

#[tokio::test]
async fn list_limits_amounts_and_websites_are_checked() {
    let o = org(&[]).await;
    let app = &o.app;
    let (_, c) = app
        .post(&o.maria, "/api/v1/contacts", json!({"name": "Limits"}))
        .await;
    let cid = &c["id"];
    for path in [
        "/api/v1/contacts".to_owned(),
        "/api/v1/companies".to_owned(),
        "/api/v1/leads".to_owned(),
        "/api/v1/deals".to_owned(),
        "/api/v1/tasks".to_owned(),
        "/api/v1/calls".to_owned(),
        "/api/v1/audit".to_owned(),
        format!("/api/v1/contacts/{cid}/activities"),
    ] {
        for bad in ["0", "-1", "100000"] {
            let (s, v) = app.get(&o.root, &format!("{path}?limit={bad}")).await;
            assert_eq!(
                (s, error_code(&v)),
                (400, "bad_request"),
                "{path} limit={bad}: {v}"
            );
        }
        let (s, v) = app.get(&o.root, &format!("{path}?limit=1")).await;
        assert_eq!(s, 200, "{path}: {v}");
    }
    for path in ["/api/v1/contacts", "/api/v1/leads", "/api/v1/tasks"] {
        let (s, v) = app.get(&o.root, &format!("{path}?offset=-1")).await;
        assert_eq!(s, 400, "{path}: {v}");
    }

    let (_, p) = app
        .post(
            &o.maria,
            "/api/v1/pipelines",
            json!({"name": "B2B", "stages": [{"name": "New"}, {"name": "Won", "outcome": "won"}]}),
        )
        .await;
    for amount in [json!(-1), json!(1_000_000_000_000_000_000i64)] {
        let (s, v) = app
            .post(
                &o.maria,
                "/api/v1/deals",
                json!({"title": "T", "pipeline_id": p["id"], "amount_minor": amount}),
            )
            .await;
        assert_eq!((s, error_code(&v)), (400, "bad_request"), "{amount}: {v}");
    }
    let (s, d) = app
        .post(
            &o.maria,
            "/api/v1/deals",
            json!({"title": "T", "pipeline_id": p["id"], "amount_minor": 0}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let (s, v) = app
        .send(
            "PATCH",
            &o.maria,
            &format!("/api/v1/deals/{}", d["id"]),
            json!({"amount_minor": -5}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (_, lead) = app
        .post(&o.maria, "/api/v1/leads", json!({"name": "Deal lead"}))
        .await;
    let (s, v) = app
        .post(
            &o.maria,
            &format!("/api/v1/leads/{}/convert", lead["id"]),
            json!({"deal": {"title": "T", "pipeline_id": p["id"], "amount_minor": -100}}),
        )
        .await;
    assert_eq!(s, 400, "{v}");

    for bad in [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "ftp://x.example",
        "http://",
    ] {
        let (s, v) = app
            .post(
                &o.maria,
                "/api/v1/companies",
                json!({"name": "Acme", "website": bad}),
            )
            .await;
        assert_eq!((s, error_code(&v)), (400, "bad_request"), "{bad}: {v}");
    }
    let (s, co) = app
        .post(
            &o.maria,
            "/api/v1/companies",
            json!({"name": "Acme", "website": "https://acme.example/about"}),
        )
        .await;
    assert_eq!(s, 201, "{co}");
    let (s, v) = app
        .send(
            "PATCH",
            &o.maria,
            &format!("/api/v1/companies/{}", co["id"]),
            json!({"name": "Acme", "website": "javascript:alert(1)"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn responses_carry_safe_headers_and_errors_keep_their_shape() {
    let app = TestApp::spawn().await;
    app.add_user("anna", "agent", None, &[]).await;
    let token = app.login("anna").await;
    let r = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = app
        .client
        .get(app.url("/api/v1/contacts/12345"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["cache-control"], "no-store");

    // A method a route does not have: 405 in the error shape.
    let r = app
        .client
        .delete(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some());
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), "method_not_allowed", "{body}");

    // Plain HTTP by default: no Secure flag.
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"login": "anna", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && !cookie.contains("Secure"),
        "{cookie}"
    );
    // A proxy that is not trusted does not turn it on.
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"login": "anna", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Metrics are open without a token configured.
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn secure_cookies_and_a_metrics_token_when_configured() {
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_TRUSTED_PROXIES", "127.0.0.1"),
        ("RINGSIDE_METRICS_TOKEN", "metrics-token-0123456789"),
    ])
    .await;
    app.add_user("anna", "agent", None, &[]).await;
    let login = |proto: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"login": "anna", "password": PASSWORD}));
        if let Some(p) = proto {
            req = req.header("x-forwarded-proto", p);
        }
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.headers()["set-cookie"].to_str().unwrap().to_owned()
        }
    };
    assert!(login(Some("https")).await.contains("; Secure"));
    let (_, v) = app
        .post(
            "",
            "/api/v1/auth/login",
            json!({"login": "anna", "password": PASSWORD}),
        )
        .await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("x-forwarded-proto", "https")
        .bearer_auth(v["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("; Secure"),
        "{cleared}"
    );
    assert!(!login(Some("http")).await.contains("Secure"));
    assert!(!login(None).await.contains("Secure"));

    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), "unauthorized");
    let r = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("ringside_http_responses_total")
    );

    let app = TestApp::spawn_with(&[("RINGSIDE_COOKIE_SECURE", "true")]).await;
    app.add_user("anna", "agent", None, &[]).await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"login": "anna", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn deactivating_a_user_on_one_node_closes_their_tabs_on_another() {
    let redis = match std::env::var("RINGSIDE_TEST_REDIS") {
        Ok(r) if !r.is_empty() => r,
        _ => {
            eprintln!("RINGSIDE_TEST_REDIS not set: the two-node test needs a Redis server");
            return;
        }
    };
    let prefix = format!("t{:x}-access", rand::random::<u64>());
    let env = [
        ("RINGSIDE_REDIS_URL", redis.as_str()),
        ("RINGSIDE_REDIS_PREFIX", prefix.as_str()),
    ];
    let a = TestApp::spawn_with(&env).await;
    let b = TestApp::spawn_beside(&a, &env).await;
    a.add_user("root", "admin", None, &[]).await;
    let anna = a.add_user("anna", "agent", None, &["101"]).await;
    let root = a.login("root").await;
    let token = b.login("anna").await;
    let mut tab = Tab::open(&b, &token, None).await;
    tab.until("hello", WAIT).await;
    let (s, v) = a
        .send(
            "PATCH",
            &root,
            &format!("/api/v1/users/{anna}"),
            json!({"active": false}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    tab.until("session.ended", WAIT).await;
    assert!(
        tab.closed_within(WAIT).await,
        "the tab on the other node stayed open"
    );
}
