//! Test support: start the real `ringside` binary on a random port against a
//! fresh database (a new SQLite file, or a new PostgreSQL database when
//! `RINGSIDE_TEST_POSTGRES` points at a server), and talk HTTP to it.
#![allow(dead_code)]

pub mod burst;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ringside::auth::hash_password;
use ringside::store::Db;
use ringside::store::users::NewUser;
use serde_json::{Value, json};

pub const PASSWORD: &str = "s3cret-pass";

pub struct TestApp {
    pub base: String,
    pub db_url: String,
    pub db: Db,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    /// The FastAGI address, when `RINGSIDE_AGI_BIND` was given.
    pub agi: Option<String>,
    /// The server's log lines so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    child: Child,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh, empty, migrated database URL.
pub async fn fresh_database(dir: &std::path::Path) -> String {
    match std::env::var("RINGSIDE_TEST_POSTGRES") {
        Ok(server) if !server.is_empty() => {
            sqlx::any::install_default_drivers();
            let name = format!("ringside_t_{}", uuid_like());
            let admin_url = format!("{}/postgres", server.trim_end_matches('/'));
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
                .await
                .expect("connect to the PostgreSQL test server");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            format!("{}/{name}", server.trim_end_matches('/'))
        }
        _ => format!("sqlite://{}", dir.join("ringside.db").display()),
    }
}

fn uuid_like() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ringside"))
}

/// Runs a `ringside` command against `db_url`, returning (status, stdout, stderr).
pub fn run_cli(db_url: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .env("RINGSIDE_DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringside");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait for ringside");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl TestApp {
    /// Starts `ringside serve` on a random port with a fresh database.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(env: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let db_url = fresh_database(dir.path()).await;
        Self::spawn_on(dir, db_url, env).await
    }

    /// A second node on the database of `other`.
    pub async fn spawn_beside(other: &TestApp, env: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn_on(dir, other.db_url.clone(), env).await
    }

    /// Starts the server on a database made beforehand (users written
    /// before the server reads them, as `ringside user add` would).
    pub async fn spawn_seeded(seed: Seed, env: &[(&str, &str)]) -> TestApp {
        Self::spawn_on(seed.dir, seed.db_url, env).await
    }

    async fn spawn_on(dir: tempfile::TempDir, db_url: String, env: &[(&str, &str)]) -> TestApp {
        let db = Db::connect(&db_url).await.unwrap();
        db.migrate().await.unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .current_dir(dir.path())
            .env("RINGSIDE_DATABASE_URL", &db_url)
            .env("RINGSIDE_HTTP_BIND", "127.0.0.1:0")
            .env("RINGSIDE_LOG_JSON", "false")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ringside serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // RINGSIDE_TEST_LOG=1 shows the server's log beside the test's output.
        let echo = std::env::var_os("RINGSIDE_TEST_LOG").is_some();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            let mut agi = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("[ringside] {line}");
                }
                if let Ok(mut l) = lines.lock() {
                    l.push(line.clone());
                }
                if let Some(i) = line.find("fastagi listening on ") {
                    let rest = &line[i + "fastagi listening on ".len()..];
                    agi = rest.split_whitespace().next().map(str::to_owned);
                }
                if !sent && let Some(i) = line.find("ringside ready: http://") {
                    let rest = &line[i + "ringside ready: http://".len()..];
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send((addr, agi.take()));
                    sent = true;
                }
            }
        });
        let (addr, agi) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("ringside did not report ready");
        TestApp {
            base: format!("http://{addr}"),
            db_url,
            db,
            dir,
            client: reqwest::Client::new(),
            agi,
            log,
            child,
        }
    }

    /// The server's log lines that contain `text`.
    pub fn log_lines(&self, text: &str) -> Vec<String> {
        self.log
            .lock()
            .map(|l| l.iter().filter(|x| x.contains(text)).cloned().collect())
            .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a user directly in the database; returns its id.
    pub async fn add_user(
        &self,
        login: &str,
        role: &str,
        team: Option<&str>,
        exts: &[&str],
    ) -> i64 {
        let team_id = match team {
            Some(t) => Some(
                match self
                    .db
                    .teams()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|x| x.name == t)
                {
                    Some(x) => x.id,
                    None => self.db.create_team(t).await.unwrap().id,
                },
            ),
            None => None,
        };
        let exts: Vec<String> = exts.iter().map(|e| e.to_string()).collect();
        self.db
            .create_user(NewUser {
                login,
                name: &format!("User {login}"),
                role,
                team_id,
                locale: "en",
                password_hash: &hash_password(PASSWORD),
                extensions: &exts,
            })
            .await
            .unwrap()
            .id
    }

    pub async fn login(&self, login: &str) -> String {
        let r = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"login": login, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login {login}");
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, method: &str, token: &str, path: &str, body: Value) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = self
            .client
            .request(m, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", token, path, body).await
    }
}

/// A database prepared before the server starts.
pub struct Seed {
    pub dir: tempfile::TempDir,
    pub db_url: String,
    pub db: Db,
}

impl Seed {
    pub async fn new() -> Seed {
        let dir = tempfile::tempdir().unwrap();
        let db_url = fresh_database(dir.path()).await;
        let db = Db::connect(&db_url).await.unwrap();
        db.migrate().await.unwrap();
        Seed { dir, db_url, db }
    }

    /// Creates an agent directly in the database; returns its id.
    pub async fn add_agent(&self, login: &str, exts: &[&str]) -> i64 {
        let exts: Vec<String> = exts.iter().map(|e| e.to_string()).collect();
        self.db
            .create_user(NewUser {
                login,
                name: &format!("User {login}"),
                role: "agent",
                team_id: None,
                locale: "en",
                password_hash: &hash_password(PASSWORD),
                extensions: &exts,
            })
            .await
            .unwrap()
            .id
    }
}

/// A WebSocket tab of one user, as a browser opens it.
pub struct Tab {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Tab {
    pub async fn open(app: &TestApp, token: &str, after: Option<u64>) -> Tab {
        let base = app.base.replace("http://", "ws://");
        let url = match after {
            Some(a) => format!("{base}/ws?token={token}&after={a}"),
            None => format!("{base}/ws?token={token}"),
        };
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects");
        Tab { ws }
    }

    /// The next JSON message, or None after `wait` of silence.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        use futures::StreamExt;
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next())
                .await
                .ok()??
                .ok()?;
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).ok();
            }
        }
    }

    /// Messages until one of `kind` arrives (included); panics after `wait`.
    pub async fn until(&mut self, kind: &str, wait: Duration) -> Vec<Value> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(v) => {
                    let done = v["type"] == kind;
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                None => panic!("no {kind} within {wait:?}; got {seen:?}"),
            }
        }
    }

    /// Everything that arrives within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let mut seen = Vec::new();
        while let Some(v) = self.next(wait).await {
            seen.push(v);
        }
        seen
    }

    /// Whether the server closes the socket within `wait` (frames before the
    /// close are skipped).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_))) => return true,
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
