//! Parallel writers from the outside: requests that write at the same time
//! wait for each other instead of failing (SQLite, or PostgreSQL with
//! RINGSIDE_TEST_POSTGRES).

mod support;

use serde_json::{Value, json};
use support::TestApp;

async fn all_ok(what: &str, results: Vec<(u16, Value)>) {
    let failed: Vec<_> = results
        .iter()
        .filter(|(s, _)| !(200..300).contains(s))
        .collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} failed: {failed:?}",
        failed.len(),
        results.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_user_patches_by_two_admins_all_succeed() {
    let app = TestApp::spawn().await;
    app.add_user("root", "admin", None, &[]).await;
    app.add_user("root2", "admin", None, &[]).await;
    let tokens = [app.login("root").await, app.login("root2").await];
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            app.add_user(&format!("agent{i}"), "agent", Some("support"), &[])
                .await,
        );
    }
    let mut jobs = Vec::new();
    for n in 0..48 {
        let client = app.client.clone();
        let base = app.base.clone();
        let token = tokens[n % 2].clone();
        let id = ids[n % ids.len()];
        // Each user gets renames, extension changes and locale changes at once.
        let body = match n % 3 {
            0 => json!({"name": format!("Agent {n}")}),
            1 => json!({"extensions": [format!("{}", 200 + n)]}),
            _ => json!({"locale": if n % 2 == 0 { "de" } else { "en" }, "name": format!("A{n}")}),
        };
        jobs.push(tokio::spawn(async move {
            let r = client
                .patch(format!("{base}/api/v1/users/{id}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut results = Vec::new();
    for j in jobs {
        results.push(j.await.unwrap());
    }
    all_ok("user patches", results).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_contact_and_deal_writes_all_succeed() {
    let app = TestApp::spawn().await;
    app.add_user("maria", "manager", None, &[]).await;
    let t = app.login("maria").await;
    let (s, p) = app
        .post(
            &t,
            "/api/v1/pipelines",
            json!({"name": "B2B", "stages": [{"name": "New"}, {"name": "Proposal"}]}),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let pipeline = p["id"].clone();
    let (s, c) = app
        .post(&t, "/api/v1/contacts", json!({"name": "Shared"}))
        .await;
    assert_eq!(s, 201, "{c}");
    let shared = c["id"].as_i64().unwrap();
    let mut jobs = Vec::new();
    for n in 0..48 {
        let client = app.client.clone();
        let base = app.base.clone();
        let token = t.clone();
        let pipeline = pipeline.clone();
        jobs.push(tokio::spawn(async move {
            let req = match n % 4 {
                0 => client.post(format!("{base}/api/v1/contacts")).json(&json!({
                    "name": format!("Buyer {n}"),
                    "company": "Acme",
                    "phones": [{"number": format!("+4930{:06}", 100000 + n)}],
                    "tags": ["vip"]
                })),
                1 => client
                    .patch(format!("{base}/api/v1/contacts/{shared}"))
                    .json(
                        &json!({"name": format!("Shared {n}"), "tags": [format!("t{n}")],
                        "phones": [{"number": format!("+4940{:06}", 100000 + n)}]}),
                    ),
                2 => client.post(format!("{base}/api/v1/deals")).json(&json!({
                    "title": format!("Deal {n}"), "pipeline_id": pipeline, "contact_id": shared,
                    "amount_minor": n
                })),
                _ => client.post(format!("{base}/api/v1/tasks")).json(&json!({
                    "title": format!("Call back {n}"), "contact_id": shared
                })),
            };
            let r = req.bearer_auth(token).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut results = Vec::new();
    for j in jobs {
        results.push(j.await.unwrap());
    }
    all_ok("contact and deal writes", results).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_are_logged_while_admins_change_users() {
    let cti = "cti-secret-0123456789";
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "DE"),
        ("RINGSIDE_CTI_TOKENS", &format!("pbx={cti}")),
    ])
    .await;
    app.add_user("root", "admin", None, &[]).await;
    let admin = app.login("root").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            app.add_user(&format!("agent{i}"), "agent", None, &[&format!("10{i}")])
                .await,
        );
    }
    let mut jobs = Vec::new();
    for n in 0..40 {
        let client = app.client.clone();
        let base = app.base.clone();
        let admin = admin.clone();
        let id = ids[n % ids.len()];
        jobs.push(tokio::spawn(async move {
            let r = client
                .patch(format!("{base}/api/v1/users/{id}"))
                .bearer_auth(admin)
                .json(&json!({"name": format!("Agent {n}"), "locale": "de"}))
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    // Missed calls: each is logged and makes a lead and a callback task.
    for n in 0..20 {
        let client = app.client.clone();
        let base = app.base.clone();
        jobs.push(tokio::spawn(async move {
            let call_id = format!("c-{n}");
            for body in [
                json!({"event": "newCall", "call_id": call_id, "from": format!("+4930555{n:04}"),
                       "to": "+49301000000", "extension": format!("10{}", n % 6)}),
                json!({"event": "hangup", "call_id": call_id}),
            ] {
                let r = client
                    .post(format!("{base}/api/v1/cti/events"))
                    .bearer_auth(cti)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let s = r.status().as_u16();
                if s != 202 {
                    return (s, r.json::<Value>().await.unwrap_or(Value::Null));
                }
            }
            (202, Value::Null)
        }));
    }
    let mut results = Vec::new();
    for j in jobs {
        results.push(j.await.unwrap());
    }
    all_ok("user changes and call events", results).await;
    // Every call reaches the log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (s, v) = app.get(&admin, "/api/v1/calls?limit=200").await;
        assert_eq!(s, 200, "{v}");
        let n = v["items"]
            .as_array()
            .or(v.as_array())
            .map(|a| a.len())
            .unwrap_or(0);
        if n == 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} of 20 calls logged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
