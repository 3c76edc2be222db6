//! Text from the network with NUL and other control characters in it, from
//! the outside: an Asterisk sending a caller name with a NUL byte, a CTI
//! integration posting `"\u0000"` in JSON, a CSV file with control
//! characters. Each call is logged and each contact imported, cleaned the
//! same way whichever database runs (`RINGSIDE_TEST_POSTGRES` for
//! PostgreSQL, which refuses NUL in text).

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Tab, TestApp, run_cli};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(20);

/// The captured call whose caller name is `NAME`, with `BAD` in its place.
const NAME: &str = "Иван Петров";
const BAD: &str = "Ив\0ан\u{7}\u{1b} Пет\u{85}ров\0";

/// A minimal Asterisk that sends `events` byte for byte (no decoding on the
/// way, so the NULs reach the wire) once `go` is notified after a login;
/// other actions get an empty, well-formed answer.
async fn raw_pbx(events: Vec<u8>, go: Arc<Notify>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let (mut rd, wr) = sock.into_split();
        let wr = Arc::new(tokio::sync::Mutex::new(wr));
        let _ = wr
            .lock()
            .await
            .write_all(b"Asterisk Call Manager/11.0.0\r\n")
            .await;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut events = Some(events);
        loop {
            let Ok(n) = rd.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let msg = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                let header = |k: &str| {
                    msg.lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}: ")).map(str::to_owned))
                        .unwrap_or_default()
                };
                let (action, id) = (header("Action"), header("ActionID"));
                let mut out = format!("Response: Success\r\nActionID: {id}\r\n");
                let lower = action.to_ascii_lowercase();
                if lower.contains("show") || lower.contains("status") || lower.contains("summary") {
                    out.push_str(&format!(
                        "EventList: start\r\n\r\nEvent: {action}Complete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
                    ));
                } else {
                    out.push_str("Message: ok\r\n\r\n");
                }
                let _ = wr.lock().await.write_all(out.as_bytes()).await;
                if lower == "login"
                    && let Some(ev) = events.take()
                {
                    let (wr, go) = (wr.clone(), go.clone());
                    tokio::spawn(async move {
                        go.notified().await;
                        let _ = wr.lock().await.write_all(&ev).await;
                    });
                }
            }
        }
    });
    format!("ami://crm:secret@{addr}")
}

async fn wait_row(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (s, v) = app.get(token, "/api/v1/calls?limit=50").await;
        assert_eq!(s, 200, "{v}");
        if let Some(c) = v["items"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["call_id"] == id))
        {
            return c.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no row {id}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_nul_in_a_caller_name_from_asterisk_or_cti_is_cleaned_and_the_call_logged() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/");
    let ami = std::fs::read(format!("{dir}cnam_special_chars.ami")).unwrap();
    // The events after the banner and the login answer, the name spoiled.
    let text = String::from_utf8(ami).unwrap();
    let start = text.find("Event: ").unwrap();
    let events = text[start..].replace(NAME, BAD);
    assert!(events.contains('\0'));
    let go = Arc::new(Notify::new());
    let url = raw_pbx(events.into_bytes(), go.clone()).await;
    let token = "cti-secret-0123456789";
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_DEFAULT_REGION", "RU"),
        ("RINGSIDE_AMI_URL", &url),
        ("RINGSIDE_CTI_TOKENS", &format!("threecx={token}")),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    app.add_user("maria", "manager", None, &[]).await;
    let anna = app.login("anna").await;
    let manager = app.login("maria").await;
    let mut tab = Tab::open(&app, &anna, None).await;
    assert_eq!(tab.next(WAIT).await.unwrap()["type"], "hello");
    go.notify_one();

    let clean = "<script>alert('x')</script> Иван Петров";
    let ringing = tab.until("call.ringing", WAIT).await;
    let pop = ringing.last().unwrap();
    assert_eq!(pop["caller"]["name"], clean, "{pop}");
    let row = wait_row(&app, &manager, "1795426878.31").await;
    assert_eq!(row["caller_name"], clean, "{row}");
    assert_eq!(row["disposition"], "answered", "{row}");
    assert_eq!(row["agent"], "101", "{row}");

    // A CTI integration's JSON with `\u0000` and other controls.
    for (event, extra) in [
        (
            "newCall",
            json!({"from": "+7 916 123\u{0}-45-67", "name": "Lu\u{0}kas\tM\u{1b}üller", "extension": "101"}),
        ),
        ("answer", json!({"extension": "101"})),
        ("hangup", json!({})),
    ] {
        let mut body = json!({"event": event, "call_id": "c\u{0}-1"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v) = app.post(token, "/api/v1/cti/events", body).await;
        assert_eq!(s, 202, "{event}: {v}");
    }
    let row = wait_row(&app, &manager, "cti:threecx:c-1").await;
    assert_eq!(row["caller_name"], "Lukas Müller", "{row}");
    assert_eq!(row["caller"], "+79161234567", "{row}");
    assert_eq!(row["disposition"], "answered", "{row}");
    let text = row.to_string();
    assert!(!text.contains("\\u0000"), "{text}");
}

#[tokio::test]
async fn csv_fields_with_control_characters_are_imported_cleaned() {
    let app = TestApp::spawn().await;
    let path = app.dir.path().join("contacts.csv");
    std::fs::write(
        &path,
        "Name,Phone,Email,Company\n\
         Ol\0ga\u{7} Ko\u{1b}va,+7 916 555-00-01,olga@example.com,Fi\0rm\n\
         \"Pe\u{85}ter\tPan\",+49 30 1200099,,\n",
    )
    .unwrap();
    let (ok, out, err) = run_cli(
        &app.db_url,
        &["import", "contacts", path.to_str().unwrap()],
        None,
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("2 contacts created"), "{out}\n{err}");
    let mut names: Vec<String> = sqlx::query_scalar("SELECT name FROM contacts")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    names.sort();
    assert_eq!(names, ["Olga Kova", "Peter Pan"]);
    let companies: Vec<String> = sqlx::query_scalar("SELECT name FROM companies")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(companies, ["Firm"]);
}
