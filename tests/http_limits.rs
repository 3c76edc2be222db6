//! Slow and idle clients from the outside: raw TCP against the real server
//! started with short `RINGSIDE_HTTP_*` timeouts and a small connection cap.

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use support::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// Generous bound for "closed within the timeout" on a busy machine.
const MARGIN: Duration = Duration::from_secs(10);

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes; `None` if it has not within `wait`.
async fn read_to_close(s: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_sending_half_a_header_is_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(&[("RINGSIDE_HTTP_HEADER_TIMEOUT_S", "1")]).await;
    let mut slow = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    let started = Instant::now();
    for s in &mut slow {
        assert!(
            read_to_close(s, MARGIN).await.is_some(),
            "a half-sent header keeps the connection open"
        );
    }
    assert!(started.elapsed() < MARGIN);
    // Normal clients are served as before.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_body_shorter_than_its_length_gets_408_after_the_body_timeout() {
    let app = TestApp::spawn_with(&[("RINGSIDE_HTTP_BODY_TIMEOUT_S", "1")]).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"login\":",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut s, MARGIN)
        .await
        .expect("a short body is waited on for ever");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    // A complete body is not affected.
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"login": "nobody", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let app = TestApp::spawn_with(&[("RINGSIDE_HTTP_IDLE_TIMEOUT_S", "1")]).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut s, MARGIN)
        .await
        .expect("an idle connection stays open for ever");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Nothing sent at all: closed too.
    let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
    assert_eq!(
        read_to_close(&mut silent, MARGIN).await.as_deref(),
        Some("")
    );
}

#[tokio::test]
async fn a_websocket_outlives_the_http_timeouts() {
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_HTTP_HEADER_TIMEOUT_S", "0.3"),
        ("RINGSIDE_HTTP_IDLE_TIMEOUT_S", "0.3"),
        ("RINGSIDE_HTTP_BODY_TIMEOUT_S", "0.3"),
    ])
    .await;
    app.add_user("anna", "agent", None, &["101"]).await;
    let token = app.login("anna").await;
    let url = format!("{}/ws?token={token}", app.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Several idle timeouts pass with the socket quiet.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws.send(tokio_tungstenite::tungstenite::Message::Ping(
        b"still there".to_vec().into(),
    ))
    .await
    .expect("the WebSocket was closed");
    let pong = timeout(MARGIN, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(tokio_tungstenite::tungstenite::Message::Pong(p)) => return Some(p),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("no pong");
    assert_eq!(pong.as_deref(), Some(&b"still there"[..]));
}

#[tokio::test]
async fn past_the_connection_cap_new_clients_wait_until_a_slot_frees() {
    let app = TestApp::spawn_with(&[
        ("RINGSIDE_HTTP_MAX_CONNECTIONS", "3"),
        ("RINGSIDE_HTTP_IDLE_TIMEOUT_S", "600"),
        ("RINGSIDE_HTTP_HEADER_TIMEOUT_S", "600"),
    ])
    .await;
    // Three clients that take every slot and send nothing.
    let mut hogs = Vec::new();
    for _ in 0..3 {
        hogs.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    let client = reqwest::Client::new();
    let url = app.url("/healthz");
    let health = tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) });
    // While every slot is taken the new client is not served.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !health.is_finished(),
        "a connection past the cap was served"
    );
    drop(hogs);
    let status = timeout(MARGIN, health)
        .await
        .expect("/healthz is not answered after the slots freed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn out_of_file_descriptors_the_server_backs_off_and_recovers() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db_url = support::fresh_database(dir.path()).await;
    let db = ringside::store::Db::connect(&db_url).await.unwrap();
    db.migrate().await.unwrap();
    // A file limit far below the connections that will come.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" serve")
        .arg(support::bin())
        .current_dir(dir.path())
        .env("RINGSIDE_DATABASE_URL", &db_url)
        .env("RINGSIDE_HTTP_BIND", "127.0.0.1:0")
        .env("RINGSIDE_HTTP_HEADER_TIMEOUT_S", "1")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let accept_errors = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = accept_errors.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("accept error") {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if let Some(i) = line.find("ringside ready: http://") {
                let rest = &line[i + "ringside ready: http://".len()..];
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ringside did not report ready");
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        slow.push(s);
    }
    // The slow clients are cut off and the server gets to a normal one.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = client
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        let last = match r {
            Ok(r) if r.status() == 200 => break,
            Ok(r) => r.status().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(Instant::now() < deadline, "/healthz never answered: {last}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "the server stopped");
    // It did run out, and did not retry in a busy loop.
    let errors = accept_errors.load(std::sync::atomic::Ordering::Relaxed);
    assert!(errors > 0, "the file limit was never reached");
    assert!(errors < 500, "{errors} accept errors: no back-off");
    let _ = child.kill();
    let _ = child.wait();
}
