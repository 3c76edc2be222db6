//! The HTTP API from the outside: the real server on a random port, a fresh
//! database per test (SQLite, or PostgreSQL with RINGSIDE_TEST_POSTGRES).

mod support;

use serde_json::{Value, json};
use support::{PASSWORD, TestApp, run_cli};

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error shape>")
}

#[tokio::test]
async fn login_issues_tokens_and_rejects_bad_passwords_then_rate_limits() {
    let app = TestApp::spawn().await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let token = app.login("anna").await;
    let (s, me) = app.get(&token, "/api/v1/me").await;
    assert_eq!(s, 200);
    assert_eq!(me["login"], "anna");
    assert_eq!(me["extensions"], json!(["101"]));
    assert!(me.get("password_hash").is_none());

    let (s, body) = app.get("not-a-token", "/api/v1/contacts").await;
    assert_eq!((s, error_code(&body)), (401, "unauthorized"));

    for _ in 0..5 {
        let (s, body) = app
            .post(
                "",
                "/api/v1/auth/login",
                json!({"login": "anna", "password": "wrong-password"}),
            )
            .await;
        assert_eq!((s, error_code(&body)), (401, "unauthorized"));
    }
    // The sixth failure in the window is refused even with the right password.
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"login": "anna", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), "too_many_attempts");

    // Logging out ends the token.
    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.get(&token, "/api/v1/me").await.0, 401);
}

#[tokio::test]
async fn roles_limit_what_each_user_sees_and_does() {
    let app = TestApp::spawn().await;
    app.add_user("admin", "admin", None, &[]).await;
    app.add_user("maria", "manager", None, &[]).await;
    app.add_user("anna", "agent", Some("Sales"), &["101"]).await;
    app.add_user("boris", "agent", Some("Sales"), &["102"])
        .await;
    app.add_user("clara", "agent", Some("Support"), &["103"])
        .await;
    let anna = app.login("anna").await;
    let boris = app.login("boris").await;
    let clara = app.login("clara").await;
    let maria = app.login("maria").await;
    let admin = app.login("admin").await;

    let (s, c) = app
        .post(
            &anna,
            "/api/v1/contacts",
            json!({"name": "Sales client", "phones": [{"number": "+7 916 000-00-01"}]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    // A teammate sees it, another team's agent does not.
    assert_eq!(
        app.get(&boris, &format!("/api/v1/contacts/{id}")).await.0,
        200
    );
    let (s, body) = app.get(&clara, &format!("/api/v1/contacts/{id}")).await;
    assert_eq!((s, error_code(&body)), (403, "forbidden"));
    let (_, list) = app.get(&clara, "/api/v1/contacts").await;
    assert!(list.as_array().unwrap().iter().all(|c| c["id"] != id));
    assert_eq!(
        app.send(
            "PATCH",
            &clara,
            &format!("/api/v1/contacts/{id}"),
            json!({"name": "x"})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        app.get(&maria, &format!("/api/v1/contacts/{id}")).await.0,
        200
    );

    // Only admins manage users.
    let new_user =
        json!({"login": "eve", "name": "Eve", "role": "admin", "password": "longenough1"});
    let (s, body) = app.post(&anna, "/api/v1/users", new_user.clone()).await;
    assert_eq!((s, error_code(&body)), (403, "forbidden"));
    assert_eq!(
        app.post(&maria, "/api/v1/users", new_user.clone()).await.0,
        403
    );
    let (s, created) = app.post(&admin, "/api/v1/users", new_user).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(
        app.send(
            "PATCH",
            &anna,
            &format!("/api/v1/users/{}", created["id"]),
            json!({"active": false})
        )
        .await
        .0,
        403
    );

    // Bulk export: managers only, and audited.
    assert_eq!(app.get(&anna, "/api/v1/contacts/export").await.0, 403);
    let r = app
        .client
        .get(app.url("/api/v1/contacts/export"))
        .bearer_auth(&maria)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("id,name,company,owner,email,phones,tags"));
    assert!(
        csv.contains("Sales client") && csv.contains("+79160000001"),
        "{csv}"
    );
    let (s, audit) = app.get(&admin, "/api/v1/audit").await;
    assert_eq!(s, 200);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "contacts.export"),
        "{audit}"
    );
    assert_eq!(app.get(&maria, "/api/v1/audit").await.0, 403);
    // Agents may not delete contacts; managers may.
    assert_eq!(
        app.send(
            "DELETE",
            &anna,
            &format!("/api/v1/contacts/{id}"),
            json!({})
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn contacts_keep_several_phones_normalized_and_are_searchable() {
    let app = TestApp::spawn().await;
    app.add_user("maria", "manager", None, &[]).await;
    let t = app.login("maria").await;
    let (s, c) = app
        .post(
            &t,
            "/api/v1/contacts",
            json!({
            "name": "Иван Петров", "company": "ООО «Ромашка»", "email": "ivan@example.com",
            "tags": ["VIP", "wholesale", "vip"],
            "phones": [
                {"number": "8 (916) 123-45-67", "kind": "mobile"},
                {"number": "+380 44 123 4567", "kind": "work"},
                {"number": "004930123456", "kind": "other"}
            ]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    let e164: Vec<&str> = c["phones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["e164"].as_str().unwrap())
        .collect();
    assert_eq!(e164, ["+79161234567", "+380441234567", "+4930123456"]);
    assert_eq!(c["phones"][0]["raw"], "8 (916) 123-45-67");
    assert_eq!(c["tags"], json!(["vip", "wholesale"]));
    assert_eq!(c["company_name"], "ООО «Ромашка»");

    // Found by a number written another way, by name in another case, by tag.
    let (_, found) = app
        .get(&t, "/api/v1/contacts?phone=%2B7%20916%201234567")
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, found) = app
        .get(&t, "/api/v1/contacts?q=%D0%B8%D0%B2%D0%B0%D0%BD")
        .await; // "иван"
    assert_eq!(found[0]["id"], id);
    let (_, found) = app
        .get(
            &t,
            "/api/v1/contacts?q=%D1%80%D0%BE%D0%BC%D0%B0%D1%88%D0%BA%D0%B0",
        )
        .await; // company "ромашка"
    assert_eq!(found[0]["id"], id);
    let (_, found) = app.get(&t, "/api/v1/contacts?tag=VIP").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, found) = app.get(&t, "/api/v1/contacts?q=%25").await; // a literal % matches nothing
    assert_eq!(found.as_array().unwrap().len(), 0);

    // Replace the phones; a bad number is refused with its position.
    let (s, body) = app
        .send(
            "PATCH",
            &t,
            &format!("/api/v1/contacts/{id}"),
            json!({"phones": [{"number": "12ab"}]}),
        )
        .await;
    assert_eq!((s, error_code(&body)), (400, "bad_request"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("phones[0]")
    );
    let (s, c) = app
        .send(
            "PATCH",
            &t,
            &format!("/api/v1/contacts/{id}"),
            json!({"phones": [{"number": "+7 495 123-45-67", "kind": "work"}], "email": null}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(c["phones"].as_array().unwrap().len(), 1);
    assert_eq!(c["phones"][0]["e164"], "+74951234567");
    assert_eq!(c["email"], Value::Null);
    assert_eq!(c["name"], "Иван Петров");
    assert_eq!(
        app.get(&t, "/api/v1/contacts?phone=89161234567")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        0
    );

    assert_eq!(
        app.send("DELETE", &t, &format!("/api/v1/contacts/{id}"), json!({}))
            .await
            .0,
        204
    );
    let (s, body) = app.get(&t, &format!("/api/v1/contacts/{id}")).await;
    assert_eq!((s, error_code(&body)), (404, "not_found"));
}

#[tokio::test]
async fn a_deal_moves_through_stages_with_time_in_stage_recorded() {
    let app = TestApp::spawn().await;
    app.add_user("maria", "manager", None, &[]).await;
    let t = app.login("maria").await;
    let (s, p) = app
        .post(
            &t,
            "/api/v1/pipelines",
            json!({"name": "B2B", "stages": [
            {"name": "New"}, {"name": "Proposal"}, {"name": "Won", "outcome": "won"}]}),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let stages: Vec<i64> = p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    let (_, c) = app
        .post(&t, "/api/v1/contacts", json!({"name": "Buyer"}))
        .await;
    let (s, d) = app
        .post(&t, "/api/v1/deals", json!({"title": "Trucks", "pipeline_id": p["id"], "contact_id": c["id"], "amount_minor": 1250000, "currency": "EUR"}))
        .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["stage_id"], stages[0]);
    assert_eq!(d["status"], "open");
    let id = d["id"].as_i64().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, m) = app
        .post(
            &t,
            &format!("/api/v1/deals/{id}/move"),
            json!({"stage_id": stages[1]}),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert!(m["seconds_in_previous_stage"].as_i64().unwrap() >= 1);
    let (s, m) = app
        .post(
            &t,
            &format!("/api/v1/deals/{id}/move"),
            json!({"stage_id": stages[2]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(m["deal"]["status"], "won");
    assert!(m["deal"]["closed_at"].is_string());
    // A stage of another pipeline is refused.
    let (s, body) = app
        .post(
            &t,
            &format!("/api/v1/deals/{id}/move"),
            json!({"stage_id": 99999}),
        )
        .await;
    assert_eq!((s, error_code(&body)), (422, "invalid"));

    let (_, hist) = app.get(&t, &format!("/api/v1/deals/{id}/stages")).await;
    let hist = hist.as_array().unwrap();
    assert_eq!(hist.len(), 3);
    assert_eq!(hist[0]["stage_name"], "New");
    assert!(hist[0]["left_at"].is_string() && hist[0]["seconds"].as_i64().unwrap() >= 1);
    assert!(hist[2]["left_at"].is_null());
    // Each move is on the deal's and the contact's timeline.
    let (_, tl) = app
        .get(&t, &format!("/api/v1/contacts/{}/activities", c["id"]))
        .await;
    let kinds: Vec<&str> = tl["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["stage_change", "stage_change"]);
    assert_eq!(tl["items"][0]["payload"]["to"], "Won");
}

#[tokio::test]
async fn tasks_and_notes_land_on_the_timeline_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    app.add_user("anna", "agent", Some("Sales"), &["101"]).await;
    let t = app.login("anna").await;
    let (_, c) = app
        .post(&t, "/api/v1/contacts", json!({"name": "Client"}))
        .await;
    let cid = c["id"].as_i64().unwrap();
    for i in 0..5 {
        let (s, _) = app
            .post(
                &t,
                "/api/v1/notes",
                json!({"contact_id": cid, "body": format!("note {i}")}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let (s, task) = app
        .post(
            &t,
            "/api/v1/tasks",
            json!({"title": "Call back", "due_at": "2026-11-23T15:00:00+03:00", "contact_id": cid}),
        )
        .await;
    assert_eq!(s, 201, "{task}");
    assert_eq!(task["due_at"], "2026-11-23T12:00:00.000Z");
    assert_eq!(task["done"], false);
    let (s, later) = app
        .post(
            &t,
            "/api/v1/tasks",
            json!({"title": "Later", "due_at": "2027-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, mine) = app.get(&t, "/api/v1/tasks?mine=true&done=false").await;
    let titles: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Call back", "Later"]);
    let (s, done) = app
        .send(
            "PATCH",
            &t,
            &format!("/api/v1/tasks/{}", task["id"]),
            json!({"done": true}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(done["done"], true);
    assert!(done["done_at"].is_string());
    let (_, open) = app.get(&t, "/api/v1/tasks?mine=true&done=false").await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["id"], later["id"]);
    let (s, body) = app
        .post(
            &t,
            "/api/v1/tasks",
            json!({"title": "x", "due_at": "tomorrow"}),
        )
        .await;
    assert_eq!((s, error_code(&body)), (400, "bad_request"));

    let (_, page1) = app
        .get(&t, &format!("/api/v1/contacts/{cid}/activities?limit=4"))
        .await;
    let bodies: Vec<&str> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["Call back", "note 4", "note 3", "note 2"]);
    assert_eq!(page1["items"][0]["kind"], "task_done");
    let next = page1["next"].as_str().unwrap();
    let (_, page2) = app
        .get(
            &t,
            &format!("/api/v1/contacts/{cid}/activities?limit=4&before={next}"),
        )
        .await;
    let bodies: Vec<&str> = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["note 1", "note 0"]);
    assert!(page2["next"].is_null());
    assert_eq!(
        app.get(&t, &format!("/api/v1/contacts/{cid}/activities?before=zz"))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn leads_convert_into_a_contact_and_a_deal() {
    let app = TestApp::spawn().await;
    app.add_user("maria", "manager", None, &[]).await;
    let t = app.login("maria").await;
    let (s, lead) = app
        .post(
            &t,
            "/api/v1/leads",
            json!({"name": "Unknown caller", "phone": "8 903 111 22 33", "source": "call"}),
        )
        .await;
    assert_eq!(s, 201, "{lead}");
    assert_eq!(lead["phone_e164"], "+79031112233");
    assert_eq!(lead["status"], "new");
    let (_, p) = app
        .post(
            &t,
            "/api/v1/pipelines",
            json!({"name": "P", "stages": [{"name": "New"}]}),
        )
        .await;
    let (s, conv) = app
        .post(&t, &format!("/api/v1/leads/{}/convert", lead["id"]), json!({"name": "Олег Сидоров", "company": "Volga Tech", "deal": {"title": "First order", "pipeline_id": p["id"]}}))
        .await;
    assert_eq!(s, 200, "{conv}");
    assert_eq!(conv["lead"]["status"], "converted");
    assert_eq!(conv["contact"]["phones"][0]["e164"], "+79031112233");
    assert_eq!(conv["deal"]["contact_id"], conv["contact"]["id"]);
    assert_eq!(conv["lead"]["contact_id"], conv["contact"]["id"]);
    let (s, body) = app
        .post(
            &t,
            &format!("/api/v1/leads/{}/convert", lead["id"]),
            json!({}),
        )
        .await;
    assert_eq!((s, error_code(&body)), (409, "conflict"));
    let (s, _) = app
        .send(
            "PATCH",
            &t,
            &format!("/api/v1/leads/{}", lead["id"]),
            json!({"status": "bogus"}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn bad_input_gets_clear_4xx_and_html_is_stored_as_text() {
    let app = TestApp::spawn().await;
    app.add_user("maria", "manager", None, &[]).await;
    let t = app.login("maria").await;
    let r = app
        .client
        .post(app.url("/api/v1/contacts"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.json::<Value>().await.unwrap()), "bad_request");
    let (s, body) = app
        .post(
            &t,
            "/api/v1/contacts",
            json!({"name": "x", "colour": "red"}),
        )
        .await;
    assert!(s == 422 || s == 400, "{s}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    // An oversized body is refused from its Content-Length, before it is read.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
            .await
            .unwrap();
        let head = format!(
            "POST /api/v1/contacts HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {t}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{{\"name\": \"",
            2 * 1024 * 1024
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = sock.read(&mut buf).await.unwrap();
        let resp = String::from_utf8_lossy(&buf[..n]);
        assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
        assert!(resp.contains("payload_too_large"), "{resp}");
    }
    let (s, _) = app
        .post(&t, "/api/v1/contacts", json!({"name": "   "}))
        .await;
    assert_eq!(s, 400);
    let (s, _) = app.get(&t, "/api/v1/contacts/abc").await;
    assert_eq!(s, 400);
    let (s, _) = app.get(&t, "/api/v1/contacts?limit=abc").await;
    assert_eq!(s, 400);
    let r = app
        .client
        .post(app.url("/api/v1/contacts"))
        .bearer_auth(&t)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let evil = "<img src=x onerror=alert(1)>'; DROP TABLE contacts; --";
    let (s, c) = app
        .post(&t, "/api/v1/contacts", json!({"name": evil}))
        .await;
    assert_eq!(s, 201);
    let (_, back) = app.get(&t, &format!("/api/v1/contacts/{}", c["id"])).await;
    assert_eq!(back["name"], evil);
    let (s, found) = app.get(&t, "/api/v1/contacts?q=%27%3B%20DROP").await;
    assert_eq!(s, 200);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(app.get(&t, "/api/v1/no/such/route").await.0, 404);
}

#[tokio::test]
async fn openapi_lists_exactly_the_served_routes() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{}", paths.len());
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "1");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app
                .client
                .request(m, app.url(&concrete))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            // Every documented route exists: unauthenticated calls get 401 (login: 4xx for bad body), never 404/405.
            assert!(
                r.status() != 404 && r.status() != 405,
                "{method} {path} -> {}",
                r.status()
            );
        }
    }
    let health: Value = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
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
        metrics.contains("ringside_http_responses_total{class=\"4xx\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn csv_import_keeps_good_rows_reports_bad_ones_and_merges_duplicates() {
    let app = TestApp::spawn().await;
    app.add_user("anna", "agent", Some("Sales"), &["101"]).await;
    let csv = "\u{feff}ФИО;Компания;Телефон;E-mail;Ответственный;Теги\n\
               Иван Петров;ООО Ромашка;8 (916) 123-45-67;ivan@example.com;anna;vip\n\
               ;Nobody Inc;+7 916 000 00 00;;;\n\
               Olga;Volga;not a phone;;;\n\
               Иван П.;ООО Ромашка;+7 916 123 45 67, +7 495 111-22-33;;;wholesale\n\
               Lena Weber;Berliner Bau;+49 30 1234567;lena@example.de;ghost;\n\
               Lukas Müller;Berliner Bau;+49 151 23456789;lukas@example.de;;\n";
    let path = app.dir.path().join("contacts.csv");
    std::fs::write(&path, csv).unwrap();
    let (ok, out, err) = run_cli(
        &app.db_url,
        &[
            "import",
            "contacts",
            path.to_str().unwrap(),
            "--delimiter",
            ";",
        ],
        None,
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("6 rows: 2 contacts created, 1 merged"),
        "{out}"
    );
    assert!(out.contains("3 rejected"), "{out}");
    assert!(err.contains("line 3: the name is empty"), "{err}");
    assert!(err.contains("line 4: phone `not a phone`"), "{err}");
    assert!(
        err.contains("line 6: owner `ghost` is not a user login"),
        "{err}"
    );

    let t = app.login("anna").await;
    let (_, found) = app.get(&t, "/api/v1/contacts?phone=%2B74951112233").await;
    let found = found.as_array().unwrap();
    assert_eq!(
        found.len(),
        1,
        "the duplicate row merged its second number into the first contact"
    );
    assert_eq!(found[0]["name"], "Иван Петров");
    assert_eq!(found[0]["tags"], json!(["vip", "wholesale"]));
    assert_eq!(found[0]["phones"].as_array().unwrap().len(), 2);
    assert_eq!(found[0]["company_name"], "ООО Ромашка");
    let (_, all) = app.get(&t, "/api/v1/contacts").await;
    assert_eq!(all.as_array().unwrap().len(), 2);

    // A header with no name column is refused as a whole, with the headers it saw.
    std::fs::write(&path, "foo,bar\n1,2\n").unwrap();
    let (ok, _, err) = run_cli(
        &app.db_url,
        &["import", "contacts", path.to_str().unwrap()],
        None,
    );
    assert!(!ok);
    assert!(
        err.contains("no column for the contact's name") && err.contains("foo, bar"),
        "{err}"
    );
}

#[tokio::test]
async fn cli_creates_users_without_default_passwords_and_backs_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = support::fresh_database(dir.path()).await;
    let (ok, out, err) = run_cli(
        &url,
        &[
            "user",
            "add",
            "--login",
            "root",
            "--name",
            "Root",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!ok, "{out}");
    assert!(err.contains("at least 8"), "{err}");
    let (ok, out, err) = run_cli(
        &url,
        &[
            "user", "add", "--login", "root", "--name", "Root", "--role", "admin", "--ext", "100",
        ],
        None,
    );
    assert!(ok, "{err}");
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    assert!(generated.len() >= 12);
    let (ok, out, _) = run_cli(&url, &["user", "list"], None);
    assert!(
        ok && out.contains("root") && out.contains("admin") && out.contains("100"),
        "{out}"
    );
    let (ok, _, err) = run_cli(
        &url,
        &[
            "user", "add", "--login", "x", "--name", "X", "--role", "boss",
        ],
        None,
    );
    assert!(!ok && err.contains("--role must be one of"), "{err}");
    let (ok, _, _) = run_cli(
        &url,
        &["user", "passwd", "root", "--password-stdin"],
        Some("another-pass\n"),
    );
    assert!(ok);
    let db = ringside::store::Db::connect(&url).await.unwrap();
    let (_, hash) = db.credentials("root").await.unwrap().unwrap();
    assert!(ringside::auth::verify_password("another-pass", &hash));
    assert!(!ringside::auth::verify_password(&generated, &hash));

    if url.starts_with("sqlite:") {
        let copy = dir.path().join("copy.db");
        let (ok, _, err) = run_cli(&url, &["backup", copy.to_str().unwrap()], None);
        assert!(ok, "{err}");
        let copy_db = ringside::store::Db::connect(&format!("sqlite://{}", copy.display()))
            .await
            .unwrap();
        assert_eq!(copy_db.users().await.unwrap()[0].login, "root");
        let (ok, _, err) = run_cli(&url, &["backup", copy.to_str().unwrap()], None);
        assert!(!ok && err.contains("already exists"), "{err}");
    }
}

#[tokio::test]
async fn bad_configuration_is_reported_with_its_key() {
    let (ok, _, err) = run_cli("mysql://nope", &["migrate"], None);
    assert!(!ok);
    assert!(err.contains("RINGSIDE_DATABASE_URL"), "{err}");
}

#[tokio::test]
async fn ami_replay_prints_one_json_line_per_call() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ami/queue_answered.ami"
    );
    let (ok, out, err) = run_cli("sqlite::memory:", &["ami-replay", file], None);
    assert!(ok, "{err}");
    let calls: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(calls.len(), 1, "{out}");
    assert_eq!(calls[0]["disposition"], "answered");
    assert_eq!(calls[0]["queue"], "sales");
    assert_eq!(calls[0]["direction"], "inbound");
    assert_eq!(calls[0]["agent"], "102");
    assert_eq!(calls[0]["caller"], "+4930123456");
    // Added fields: who talked when, hold, and the hangup cause.
    assert_eq!(calls[0]["segments"][0]["agent"], "102");
    assert!((calls[0]["segments"][0]["talk_s"].as_f64().unwrap() - 4.0).abs() < 1.0);
    assert_eq!(calls[0]["hold_s"], 0.0);
    assert_eq!(calls[0]["cause"]["code"], 16);
}
