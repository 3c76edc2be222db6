//! `ringside import contacts` from the outside: the real CLI on a CSV file
//! against a fresh database (SQLite, or PostgreSQL with RINGSIDE_TEST_POSTGRES).

mod support;

use serde_json::Value;
use support::{TestApp, run_cli};

fn row(n: u32) -> String {
    format!("Person {n},Firm {n},+49 30 12000{n:02},p{n}@example.com,note {n}")
}

async fn contact_names(app: &TestApp) -> Vec<String> {
    app.add_user("reader", "manager", None, &[]).await;
    let t = app.login("reader").await;
    let (s, all) = app.get(&t, "/api/v1/contacts?limit=200").await;
    assert_eq!(s, 200, "{all}");
    let mut names: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn an_unbalanced_quote_is_reported_on_its_line_and_the_rows_after_it_are_kept() {
    let app = TestApp::spawn().await;
    let mut lines = vec!["name,company,phone,email,notes".to_owned()];
    for n in 2..=20 {
        lines.push(match n {
            // One value too many: a comma in an unquoted company name.
            8 => "Person 8,Firm, Ltd,+49 30 1200008,p8@example.com,note 8".to_owned(),
            // A quote that is never closed on its line.
            12 => "Person 12,\"Firm 12,+49 30 1200012,p12@example.com,note 12".to_owned(),
            // The next quote in the file.
            17 => "Person 17,\"Firm\" 17,+49 30 1200017,p17@example.com,note 17".to_owned(),
            // One value too few.
            19 => "Person 19,Firm 19,+49 30 1200019,p19@example.com".to_owned(),
            n => row(n),
        });
    }
    let path = app.dir.path().join("contacts.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (ok, out, err) = run_cli(
        &app.db_url,
        &["import", "contacts", path.to_str().unwrap()],
        None,
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("19 rows: 16 contacts created, 0 merged"),
        "{out}\n{err}"
    );
    assert!(out.contains("3 rejected"), "{out}");
    assert!(err.contains("line 12: unbalanced quote"), "{err}");
    assert!(
        err.contains("line 8: 6 values where the header has 5"),
        "{err}"
    );
    assert!(
        err.contains("line 19: 4 values where the header has 5"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("line ")).count(),
        3,
        "{err}"
    );
    let names = contact_names(&app).await;
    for n in [2, 11, 13, 14, 15, 16, 17, 18, 20] {
        assert!(names.contains(&format!("Person {n}")), "{n}: {names:?}");
    }
    for n in [8, 12, 19] {
        assert!(!names.contains(&format!("Person {n}")), "{n}: {names:?}");
    }
}

#[tokio::test]
async fn a_quoted_value_over_several_lines_is_one_row() {
    let app = TestApp::spawn().await;
    let csv = "name,phone,notes\n\
               Anna,+49 30 1200001,\"first line\nsecond line, with a comma\"\n\
               Boris,+49 30 1200002,\"said \"\"hi\"\"\"\n\
               Clara,+49 30 1200003,plain\n";
    let path = app.dir.path().join("contacts.csv");
    std::fs::write(&path, csv).unwrap();
    let (ok, out, err) = run_cli(
        &app.db_url,
        &["import", "contacts", path.to_str().unwrap()],
        None,
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("3 rows: 3 contacts created"), "{out}\n{err}");
    assert!(out.contains("0 rejected"), "{out}");
    app.add_user("reader", "manager", None, &[]).await;
    let t = app.login("reader").await;
    let (_, found) = app.get(&t, "/api/v1/contacts?phone=%2B49301200001").await;
    assert_eq!(
        found[0]["notes"],
        Value::from("first line\nsecond line, with a comma")
    );
    let (_, found) = app.get(&t, "/api/v1/contacts?phone=%2B49301200002").await;
    assert_eq!(found[0]["notes"], Value::from("said \"hi\""));
}
