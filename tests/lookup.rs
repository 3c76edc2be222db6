//! Caller-ID lookup from the outside: the whole corpus through
//! `GET /api/v1/lookup`, the index following API writes and writes made by
//! other processes, bad input, and the `ringside lookup` command.

mod support;

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use support::{TestApp, run_cli};

#[derive(serde::Deserialize)]
struct Setup {
    phones: toml::Value,
    party: Vec<SetupCard>,
}

#[derive(serde::Deserialize)]
struct SetupCard {
    kind: String,
    id: i64,
    name: String,
    numbers: Vec<String>,
}

/// Undoes the corpus escapes: `\t`, `\n`, `\\`, `\u{HEX}`, and quotes.
fn unescape(field: &str) -> String {
    let field = field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field);
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('u') => {
                let hex: String = chars
                    .by_ref()
                    .skip_while(|&c| c == '{')
                    .take_while(|&c| c != '}')
                    .collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
            }
            other => panic!("unknown escape \\{other:?}"),
        }
    }
    out
}

/// Creates the corpus cards through the API; returns corpus id → real id.
async fn create_cards(app: &TestApp, token: &str, setup: &Setup) -> HashMap<(String, i64), i64> {
    let mut ids = HashMap::new();
    for card in &setup.party {
        let (path, body) = match card.kind.as_str() {
            "contact" => (
                "/api/v1/contacts",
                json!({"name": card.name,
                       "phones": card.numbers.iter().map(|n| json!({"number": n})).collect::<Vec<_>>()}),
            ),
            "company" => {
                assert_eq!(card.numbers.len(), 1, "a company has one number");
                (
                    "/api/v1/companies",
                    json!({"name": card.name, "phone": card.numbers[0]}),
                )
            }
            "lead" => {
                assert_eq!(card.numbers.len(), 1, "a lead has one number");
                (
                    "/api/v1/leads",
                    json!({"name": card.name, "phone": card.numbers[0]}),
                )
            }
            other => panic!("unknown kind {other}"),
        };
        let (status, body) = app.post(token, path, body).await;
        assert_eq!(status, 201, "{path}: {body}");
        ids.insert((card.kind.clone(), card.id), body["id"].as_i64().unwrap());
    }
    ids
}

fn parties(detail: &str, ids: &HashMap<(String, i64), i64>) -> Vec<(String, i64)> {
    detail
        .split(',')
        .map(|p| {
            let (kind, id) = p.split_once(':').unwrap();
            let real = ids[&(kind.to_owned(), id.parse::<i64>().unwrap())];
            (kind.to_owned(), real)
        })
        .collect()
}

fn card_of(v: &Value) -> (String, i64) {
    (
        v["kind"].as_str().unwrap().to_owned(),
        v["id"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn the_whole_corpus_finds_its_cards_over_http() {
    let setup: Setup =
        toml::from_str(include_str!("fixtures/caller_id_setup.toml")).expect("setup parses");
    let corpus = include_str!("fixtures/caller_id_corpus.tsv");
    let mut by_region: BTreeMap<&str, Vec<(usize, String, &str, &str)>> = BTreeMap::new();
    for (n, line) in corpus.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') || line.starts_with("region\t") {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 4, "line {}", n + 1);
        by_region
            .entry(cols[0])
            .or_default()
            .push((n + 1, unescape(cols[1]), cols[2], cols[3]));
    }
    let config = tempfile::NamedTempFile::new().unwrap();
    let mut file = toml::map::Map::new();
    file.insert("phones".into(), setup.phones.clone());
    std::fs::write(config.path(), toml::to_string(&file).unwrap()).unwrap();
    let config_path = config.path().to_str().unwrap().to_owned();

    let (mut rows, mut failures) = (0, Vec::new());
    for (region, cases) in &by_region {
        let app = TestApp::spawn_with(&[
            ("RINGSIDE_CONFIG", config_path.as_str()),
            ("RINGSIDE_DEFAULT_REGION", region),
        ])
        .await;
        app.add_user("admin", "admin", None, &[]).await;
        let token = app.login("admin").await;
        let ids = create_cards(&app, &token, &setup).await;
        for (line, raw, expected, e164) in cases {
            rows += 1;
            let r = app
                .client
                .get(app.url("/api/v1/lookup"))
                .query(&[("number", raw.as_str())])
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            let (verdict, detail) = expected.split_once(' ').unwrap();
            if status == 400 {
                // Input that is not text at all (control characters, empty)
                // may be refused outright, with a reason, instead of `none`.
                if verdict != "none" || body["error"]["message"].as_str().is_none() {
                    failures.push(format!("line {line}: {region} {raw:?}: 400 {body}"));
                }
                continue;
            }
            let got_match = body["match"].as_str().unwrap_or("?");
            let ok = match verdict {
                "exact" => {
                    let want = &parties(detail, &ids)[0];
                    let card = ["contact", "lead", "company"]
                        .iter()
                        .find_map(|k| body.get(*k).filter(|v| !v.is_null()));
                    got_match == "exact" && card.map(card_of).as_ref() == Some(want)
                }
                "candidates" => {
                    let want = parties(detail, &ids);
                    let got: Vec<_> = body["candidates"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(card_of)
                        .collect();
                    got_match == "candidates" && got == want && body["contact"].is_null()
                }
                _ => got_match == "none" && body["reason"]["code"] == detail,
            };
            let number = body["number"]["e164"].as_str().unwrap_or("-");
            if !ok || number != *e164 {
                failures.push(format!(
                    "line {line}: {region} {raw:?}: want {expected} {e164}, got {body}"
                ));
            }
        }
    }
    assert!(rows >= 200, "only {rows} rows");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_card_shows_owner_company_recent_activity_and_open_work() {
    let app = TestApp::spawn_with(&[("RINGSIDE_DEFAULT_REGION", "RU")]).await;
    let anna = app.add_user("anna", "agent", None, &["101"]).await;
    let token = app.login("anna").await;
    let (_, contact) = app
        .post(
            &token,
            "/api/v1/contacts",
            json!({"name": "Иван Петров", "company": "Ромашка", "tags": ["vip"],
                   "phones": [{"number": "+7 (916) 123-45-67"}]}),
        )
        .await;
    let id = contact["id"].as_i64().unwrap();
    for i in 0..7 {
        let (s, _) = app
            .post(
                &token,
                "/api/v1/notes",
                json!({"contact_id": id, "body": format!("note {i}")}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let (s, _) = app
        .post(
            &token,
            "/api/v1/tasks",
            json!({"title": "Call back", "contact_id": id}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, body) = app
        .get(&token, "/api/v1/lookup?number=8%20916%20123%2045%2067")
        .await;
    assert_eq!(body["match"], "exact", "{body}");
    let card = &body["contact"];
    assert_eq!(card["name"], "Иван Петров");
    assert_eq!(card["company"]["name"], "Ромашка");
    assert_eq!(card["owner"]["id"], anna);
    assert_eq!(card["tags"], json!(["vip"]));
    assert_eq!(body["number"]["e164"], "+79161234567");
    let notes: Vec<&str> = card["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["body"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["note 6", "note 5", "note 4", "note 3", "note 2"]);
    assert_eq!(card["tasks"][0]["title"], "Call back");
}

/// A run of calls does not push the agent's notes off the card: the newest
/// notes are kept among its five activities, and calls say which way they
/// went and how they ended.
#[tokio::test]
async fn the_card_keeps_the_newest_notes_after_a_run_of_calls() {
    let cti = "card-notes-cti-token-0123";
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_CTI_TOKENS", &format!("test={cti}")),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let token = app.login("anna").await;
    let (_, contact) = app
        .post(
            &token,
            "/api/v1/contacts",
            json!({"name": "Иван Петров", "phones": [{"number": "+7 916 123-45-67"}]}),
        )
        .await;
    let id = contact["id"].as_i64().unwrap();
    for body in ["older note", "the last note"] {
        let (s, _) = app
            .post(
                &token,
                "/api/v1/notes",
                json!({"contact_id": id, "body": body}),
            )
            .await;
        assert_eq!(s, 201);
    }
    for i in 0..6 {
        let call = format!("run-{i}");
        for ev in [
            json!({"event": "newCall", "call_id": call, "from": "+79161234567", "to": "4000", "extension": "101"}),
            json!({"event": "answer", "call_id": call, "extension": "101"}),
            json!({"event": "hangup", "call_id": call, "cause": 16}),
        ] {
            let (s, b) = app.post(cti, "/api/v1/cti/events", ev).await;
            assert_eq!(s, 202, "{b}");
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let card = loop {
        let (_, body) = app
            .get(&token, "/api/v1/lookup?number=%2B79161234567")
            .await;
        let card = body["contact"].clone();
        let calls = card["activities"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|a| a["kind"] == "call").count());
        let (_, log) = app.get(&token, "/api/v1/calls?limit=50").await;
        if log["items"].as_array().is_some_and(|i| i.len() == 6) && calls >= 3 {
            break card;
        }
        assert!(std::time::Instant::now() < deadline, "calls logged: {log}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let acts = card["activities"].as_array().unwrap();
    assert_eq!(acts.len(), 5, "{card}");
    let bodies: Vec<&str> = acts
        .iter()
        .filter(|a| a["kind"] == "note")
        .map(|a| a["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["the last note", "older note"], "{card}");
    let calls: Vec<&Value> = acts.iter().filter(|a| a["kind"] == "call").collect();
    assert_eq!(calls.len(), 3, "{card}");
    for c in calls {
        assert_eq!(c["direction"], "inbound");
        assert_eq!(c["disposition"], "answered");
    }
    // Newest first, notes and calls merged by time: the calls came last.
    assert_eq!(acts[0]["kind"], "call");
    assert_eq!(acts[4]["body"], "older note");
}

#[tokio::test]
async fn the_index_follows_every_write() {
    let app = TestApp::spawn_with(&[("RINGSIDE_DEFAULT_REGION", "DE")]).await;
    app.add_user("boss", "manager", None, &[]).await;
    let token = app.login("boss").await;
    let number = "/api/v1/lookup?number=030%20123456";
    let (_, body) = app.get(&token, number).await;
    assert_eq!(body["match"], "none");
    assert_eq!(body["reason"]["code"], "unknown");

    let (_, c) = app
        .post(
            &token,
            "/api/v1/contacts",
            json!({"name": "Lukas", "phones": [{"number": "+49 30 123456"}]}),
        )
        .await;
    let id = c["id"].as_i64().unwrap();
    let (_, body) = app.get(&token, number).await;
    assert_eq!(body["contact"]["id"], id, "created: {body}");

    // A second contact on the same office number: both, never a silent pick.
    let (_, c2) = app
        .post(
            &token,
            "/api/v1/contacts",
            json!({"name": "Greta", "phones": [{"number": "004930123456"}]}),
        )
        .await;
    let (_, body) = app.get(&token, number).await;
    assert_eq!(body["match"], "candidates", "{body}");
    assert_eq!(body["candidates"].as_array().unwrap().len(), 2);

    // Lukas moves to another number: Greta alone has it now.
    let r = app
        .send(
            "PATCH",
            &token,
            &format!("/api/v1/contacts/{id}"),
            json!({"phones": [{"number": "+49 40 999999"}]}),
        )
        .await;
    assert_eq!(r.0, 200);
    let (_, body) = app.get(&token, number).await;
    assert_eq!(body["contact"]["id"], c2["id"], "updated: {body}");
    let (_, body) = app.get(&token, "/api/v1/lookup?number=040999999").await;
    assert_eq!(body["contact"]["id"], id);

    // Deleted: gone from the index at once.
    let r = app
        .send(
            "DELETE",
            &token,
            &format!("/api/v1/contacts/{}", c2["id"]),
            json!(null),
        )
        .await;
    assert_eq!(r.0, 204);
    let (_, body) = app.get(&token, number).await;
    assert_eq!(body["match"], "none", "deleted: {body}");

    // A lead matches until it is converted; then its contact does.
    let (_, lead) = app
        .post(
            &token,
            "/api/v1/leads",
            json!({"name": "New caller", "phone": "0301111111"}),
        )
        .await;
    let (_, body) = app
        .get(&token, "/api/v1/lookup?number=%2B49301111111")
        .await;
    assert_eq!(body["lead"]["id"], lead["id"], "{body}");
    let (s, conv) = app
        .post(
            &token,
            &format!("/api/v1/leads/{}/convert", lead["id"]),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{conv}");
    let (_, body) = app
        .get(&token, "/api/v1/lookup?number=%2B49301111111")
        .await;
    assert_eq!(body["contact"]["id"], conv["contact"]["id"], "{body}");

    // A card the periodic re-sync (every 3 s) has seen is deleted here: the
    // re-sync takes the delete as already applied and does not read the
    // whole index again from scratch.
    let (_, temp) = app
        .post(
            &token,
            "/api/v1/contacts",
            json!({"name": "Temp", "phones": [{"number": "+49 89 777777"}]}),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    let r = app
        .send(
            "DELETE",
            &token,
            &format!("/api/v1/contacts/{}", temp["id"]),
            json!(null),
        )
        .await;
    assert_eq!(r.0, 204);
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ringside_caller_index_rebuilds_total 1\n"),
        "only the build at start: {metrics}"
    );
    let (_, body) = app.get(&token, "/api/v1/lookup?number=040999999").await;
    assert_eq!(body["contact"]["id"], id, "{body}");
}

#[tokio::test]
async fn imports_by_another_process_reach_the_running_index() {
    let app = TestApp::spawn_with(&[("RINGSIDE_DEFAULT_REGION", "RU")]).await;
    app.add_user("admin", "admin", None, &[]).await;
    let token = app.login("admin").await;
    let csv = app.dir.path().join("contacts.csv");
    std::fs::write(&csv, "name,phone\nОльга Смирнова,+7 903 111-22-33\n").unwrap();
    let (ok, out, err) = run_cli(
        &app.db_url,
        &["import", "contacts", csv.to_str().unwrap()],
        None,
    );
    assert!(ok, "{out}{err}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, body) = app.get(&token, "/api/v1/lookup?number=89031112233").await;
        if body["match"] == "exact" {
            assert_eq!(body["contact"]["name"], "Ольга Смирнова");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never indexed: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn bad_numbers_get_none_or_a_clear_400() {
    let app = TestApp::spawn().await;
    app.add_user("anna", "agent", None, &[]).await;
    let token = app.login("anna").await;
    let long = "9".repeat(200);
    let cases: &[(&str, &[u16], Option<&str>)] = &[
        ("hello", &[200], Some("not_a_number")),
        (&long, &[200, 400], Some("not_a_number")),
        ("", &[400], None),
        ("   ", &[400], None),
        ("٨٩١٦١٢٣٤٥٦٧", &[200], None),
        ("89161234567\u{7}", &[400], None),
        ("anonymous", &[200], Some("anonymous")),
        ("101", &[200], Some("internal")),
    ];
    for (raw, statuses, reason) in cases {
        let r = app
            .client
            .get(app.url("/api/v1/lookup"))
            .query(&[("number", raw)])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert!(statuses.contains(&status), "{raw:?}: {status} {body}");
        if status == 400 {
            assert!(body["error"]["message"].as_str().is_some(), "{body}");
        } else {
            assert_eq!(body["match"], "none", "{raw:?}: {body}");
            if let Some(code) = reason {
                assert_eq!(body["reason"]["code"], *code, "{raw:?}: {body}");
            }
        }
    }
    // No token: no lookup.
    let r = app
        .client
        .get(app.url("/api/v1/lookup?number=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_lookup_command_prints_the_card() {
    let app = TestApp::spawn_with(&[("RINGSIDE_DEFAULT_REGION", "RU")]).await;
    app.add_user("anna", "agent", None, &[]).await;
    let token = app.login("anna").await;
    app.post(
        &token,
        "/api/v1/contacts",
        json!({"name": "Иван Петров", "phones": [{"number": "8 916 123-45-67"}]}),
    )
    .await;
    let (ok, out, err) = run_cli(&app.db_url, &["lookup", "+7 (916) 123-45-67"], None);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["match"], "exact");
    assert_eq!(v["contact"]["name"], "Иван Петров");
    let (ok, out, _) = run_cli(&app.db_url, &["lookup", "anonymous"], None);
    assert!(!ok, "no card is exit status 1");
    assert!(out.contains("\"anonymous\""), "{out}");
}

/// The card as the separate store reads make it, for comparing with the
/// one-query card the server pops.
async fn card_from_separate_reads(app: &TestApp, kind: &str, id: i64) -> Value {
    use ringside::store::cards::CardOf;
    let db = &app.db;
    let of = match kind {
        "contact" => CardOf::Contact(id),
        "lead" => CardOf::Lead(id),
        _ => CardOf::Company(id),
    };
    let activities = db.card_activities(of, 5).await.unwrap();
    let deals = db.card_deals(of).await.unwrap();
    let tasks = db.card_tasks(of).await.unwrap();
    let owner = |o: Option<i64>| async move {
        match o {
            Some(o) => db.user_ref(o).await.unwrap(),
            None => None,
        }
    };
    match kind {
        "contact" => {
            let c = db.contact(id).await.unwrap();
            json!({"kind": "contact", "id": id, "name": c.name, "email": c.email,
                   "company": c.company_id.zip(c.company_name).map(|(id, name)| json!({"id": id, "name": name})),
                   "owner": owner(c.owner_id).await, "tags": c.tags,
                   "phones": c.phones.iter().map(|p| json!({"raw": p.raw, "e164": p.e164})).collect::<Vec<_>>(),
                   "activities": activities, "deals": deals, "tasks": tasks})
        }
        "lead" => {
            let l = db.lead(id).await.unwrap();
            json!({"kind": "lead", "id": id, "name": l.name, "email": l.email, "company": null,
                   "owner": owner(l.manager_id).await, "tags": [],
                   "phones": l.phone_raw.zip(l.phone_e164).map(|(raw, e164)| json!({"raw": raw, "e164": e164})).into_iter().collect::<Vec<_>>(),
                   "status": l.status, "source": l.source,
                   "activities": activities, "deals": deals, "tasks": tasks})
        }
        _ => {
            let c = db.company(id).await.unwrap();
            json!({"kind": "company", "id": id, "name": c.name, "email": null, "company": null,
                   "owner": null, "tags": [],
                   "phones": c.phone_raw.zip(c.phone_e164).map(|(raw, e164)| json!({"raw": raw, "e164": e164})).into_iter().collect::<Vec<_>>(),
                   "activities": activities, "deals": deals, "tasks": []})
        }
    }
}

#[tokio::test]
async fn the_card_read_in_one_query_is_the_card_of_the_separate_reads() {
    let app = TestApp::spawn_with(&[("RINGSIDE_DEFAULT_REGION", "RU")]).await;
    let anna = app.add_user("anna", "manager", None, &["101"]).await;
    let token = app.login("anna").await;
    let post = |path: &'static str, body: Value| {
        let (app, token) = (&app, &token);
        async move {
            let (s, v) = app.post(token, path, body).await;
            assert!(s == 200 || s == 201, "{path}: {s} {v}");
            v
        }
    };
    let company = post(
        "/api/v1/companies",
        json!({"name": "Ромашка", "phone": "+7 495 111-22-33"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let contact = post(
        "/api/v1/contacts",
        json!({"name": "Иван Петров", "company_id": company, "tags": ["vip", "b2b", "alpha"],
               "email": "ivan@example.org", "owner_id": anna,
               "phones": [{"number": "+7 (916) 123-45-67"}, {"number": "8 903 000-00-01"}]}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let other = post(
        "/api/v1/contacts",
        json!({"name": "Пётр", "company_id": company, "phones": [{"number": "+7 916 555-00-00"}]}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let lead = post(
        "/api/v1/leads",
        json!({"name": "New caller", "phone": "+7 926 777-88-99", "manager_id": anna}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    for i in 0..7 {
        post(
            "/api/v1/notes",
            json!({"contact_id": contact, "body": format!("note {i}")}),
        )
        .await;
        post(
            "/api/v1/notes",
            json!({"contact_id": other, "body": format!("other {i}")}),
        )
        .await;
    }
    post(
        "/api/v1/notes",
        json!({"lead_id": lead, "body": "lead note"}),
    )
    .await;
    for (title, due) in [
        ("no date", None),
        ("later", Some("2030-01-02T10:00:00Z")),
        ("sooner", Some("2030-01-01T10:00:00Z")),
    ] {
        post(
            "/api/v1/tasks",
            json!({"title": title, "due_at": due, "contact_id": contact}),
        )
        .await;
        post(
            "/api/v1/tasks",
            json!({"title": title, "due_at": due, "lead_id": lead}),
        )
        .await;
    }
    let pipeline = post(
        "/api/v1/pipelines",
        json!({"name": "Sales", "stages": [{"name": "New"}, {"name": "Won", "outcome": "won"}]}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    for (title, who) in [("First", contact), ("Second", contact), ("Theirs", other)] {
        post(
            "/api/v1/deals",
            json!({"title": title, "pipeline_id": pipeline, "contact_id": who, "amount_minor": 12_300}),
        )
        .await;
    }
    for (number, kind, id) in [
        ("8%20916%20123%2045%2067", "contact", contact),
        ("%2B79267778899", "lead", lead),
        ("%2B74951112233", "company", company),
    ] {
        let (_, body) = app
            .get(&token, &format!("/api/v1/lookup?number={number}"))
            .await;
        assert_eq!(body["match"], "exact", "{body}");
        let expected = card_from_separate_reads(&app, kind, id).await;
        assert_eq!(body[kind], expected, "{kind} card");
    }
    // The pieces are really there (not two empty cards agreeing).
    let (_, body) = app
        .get(&token, "/api/v1/lookup?number=8%20916%20123%2045%2067")
        .await;
    let card = &body["contact"];
    assert_eq!(card["tags"], json!(["alpha", "b2b", "vip"]));
    assert_eq!(card["phones"].as_array().unwrap().len(), 2);
    assert_eq!(card["activities"].as_array().unwrap().len(), 5);
    assert_eq!(card["deals"].as_array().unwrap().len(), 2);
    let tasks: Vec<&str> = card["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["sooner", "later", "no date"]);
}

/// A queue rings its members one after another (`rrmemory` moves on when a
/// phone is not answered); a lead made for the caller while they wait is on
/// the pops of the members rung after it.
#[tokio::test]
async fn a_lead_made_while_the_caller_waits_is_on_the_later_rings() {
    let cti = "queue-card-cti-token-0123";
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "DE"),
        ("RINGSIDE_CTI_TOKENS", &format!("pbx={cti}")),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("boris", "agent", None, &["102"]).await;
    app.add_user("boss", "manager", None, &[]).await;
    let boss = app.login("boss").await;
    let mut anna = support::Tab::open(&app, &app.login("anna").await, None).await;
    let mut boris = support::Tab::open(&app, &app.login("boris").await, None).await;
    let wait = std::time::Duration::from_secs(20);
    let ring = |ext: &str| json!({"event": "newCall", "call_id": "q-1", "from": "+49 30 4445556", "to": "+49 30 1000000", "extension": ext});
    let (s, v) = app.post(cti, "/api/v1/cti/events", ring("101")).await;
    assert_eq!(s, 202, "{v}");
    let first = anna.until("call.ringing", wait).await.pop().unwrap();
    assert_eq!(first["match"], "none", "{first}");

    let (s, lead) = app
        .post(
            &boss,
            "/api/v1/leads",
            json!({"name": "Waiting in the queue", "phone": "030 4445556"}),
        )
        .await;
    assert_eq!(s, 201, "{lead}");
    let (s, v) = app.post(cti, "/api/v1/cti/events", ring("102")).await;
    assert_eq!(s, 202, "{v}");
    let later = boris.until("call.ringing", wait).await.pop().unwrap();
    assert_eq!(later["call_id"], first["call_id"]);
    assert_eq!(later["match"], "exact", "{later}");
    assert_eq!(later["lead"]["id"], lead["id"], "{later}");

    // The call goes on that lead, not on a second one made for the number.
    let (s, v) = app
        .post(
            cti,
            "/api/v1/cti/events",
            json!({"event": "hangup", "call_id": "q-1"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (s, call) = app.get(&boss, "/api/v1/calls/cti:pbx:q-1").await;
        if s == 200 {
            assert_eq!(call["lead_id"], lead["id"], "{call}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{call}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, leads) = app.get(&boss, "/api/v1/leads").await;
    assert_eq!(leads.as_array().unwrap().len(), 1, "{leads}");
}
