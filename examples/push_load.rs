//! Load tool for screen pops, run by `benches/push-figures.sh`.
//!
//! Spawns the real `ringside serve` (release build) on loopback against a
//! fresh SQLite file with agents created beforehand, plays a minimal
//! Asterisk Manager itself, and measures:
//!
//! * `pop`: time from writing the ring-causing AMI event (`DialBegin`, sent
//!   `--dial-after-ms` after the call's `Newchannel`, 2 ms by default as a
//!   real Asterisk does on a direct line) to the matching `call.ringing`
//!   frame being read by the agent's WebSocket;
//! * `idle`: server RSS per idle WebSocket connection;
//! * `redis`: `pop` with two nodes sharing Redis, the tabs on the node
//!   without the PBX link.
//!
//! Usage: push_load BIN MODE [options]; see `Opts::parse`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ringside::store::Db;
use ringside::store::users::NewUser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const FIRST_EXT: u32 = 1000;

struct Opts {
    bin: String,
    mode: String,
    agents: u32,
    calls: u32,
    rate: u32,
    conns: usize,
    redis: String,
    /// Gap between a call's `Newchannel` and its `DialBegin`, in ms.
    dial_after_ms: u64,
}

impl Opts {
    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.len() < 2 {
            eprintln!(
                "usage: push_load BIN pop|idle|redis [--agents N] [--calls N] [--rate N] \
                 [--conns N] [--redis URL]"
            );
            std::process::exit(2);
        }
        let mut o = Opts {
            // Absolute: the server runs in its own temporary directory.
            bin: std::fs::canonicalize(&args[0])
                .expect("server binary")
                .display()
                .to_string(),
            mode: args[1].clone(),
            agents: 1000,
            calls: 3000,
            rate: 100,
            conns: 19_000,
            redis: "redis://127.0.0.1:6379".into(),
            // What a real Asterisk 22 took to ring a direct line after the
            // trunk's channel appeared (shared/ami-traces/direct_answered:
            // 2.1 ms; through a queue it took 18 ms).
            dial_after_ms: 2,
        };
        let mut it = args[2..].iter();
        while let Some(k) = it.next() {
            let v = it.next().expect("option value");
            match k.as_str() {
                "--agents" => o.agents = v.parse().expect("--agents"),
                "--calls" => o.calls = v.parse().expect("--calls"),
                "--rate" => o.rate = v.parse().expect("--rate"),
                "--conns" => o.conns = v.parse().expect("--conns"),
                "--redis" => o.redis = v.clone(),
                "--dial-after-ms" => o.dial_after_ms = v.parse().expect("--dial-after-ms"),
                _ => panic!("unknown option {k}"),
            }
        }
        o
    }
}

/// One `ringside serve` process; killed on drop.
struct Node {
    child: Child,
    addr: String,
    /// stderr lines at WARN/ERROR level or mentioning a panic.
    trouble: Arc<Mutex<Vec<String>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(bin: &str, dir: &std::path::Path, db_url: &str, env: &[(&str, String)]) -> Node {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .current_dir(dir)
            .env("RINGSIDE_DATABASE_URL", db_url)
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
        let trouble = Arc::new(Mutex::new(Vec::new()));
        let seen = trouble.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(i) = line.find("ringside ready: http://") {
                    let rest = &line[i + "ringside ready: http://".len()..];
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                    sent = true;
                }
                if line.contains(" WARN ") || line.contains(" ERROR ") || line.contains("panick") {
                    seen.lock().unwrap().push(line);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("ringside did not report ready");
        Node {
            child,
            addr,
            trouble,
        }
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    fn report_trouble(&self, name: &str) {
        let t = self.trouble.lock().unwrap();
        if t.is_empty() {
            println!("  node {name}: no warnings, errors or panics logged");
        } else {
            println!(
                "  node {name}: {} warning/error lines, first ones:",
                t.len()
            );
            for l in t.iter().take(5) {
                println!("    {l}");
            }
        }
    }
}

/// A fresh database with `agents` users (extensions 1000..) and one session
/// token each.
async fn setup_db(dir: &std::path::Path, agents: u32) -> (String, Vec<String>) {
    let db_url = format!("sqlite://{}", dir.join("ringside.db").display());
    let db = Db::connect(&db_url).await.expect("open database");
    db.migrate().await.expect("migrate");
    // One hash for all: argon2 per user would dominate the setup time.
    let hash = ringside::auth::hash_password("load-test-pass");
    let mut tokens = Vec::with_capacity(agents as usize);
    for i in 0..agents {
        let ext = (FIRST_EXT + i).to_string();
        let login = format!("agent{ext}");
        let id = db
            .create_user(NewUser {
                login: &login,
                name: &format!("Agent {ext}"),
                role: "agent",
                team_id: None,
                locale: "en",
                password_hash: &hash,
                extensions: &[ext],
            })
            .await
            .expect("create user")
            .id;
        let (token, token_hash) = ringside::auth::new_token();
        db.create_session(&token_hash, id, 24 * 3600 * 1000)
            .await
            .expect("create session");
        tokens.push(token);
    }
    (db_url, tokens)
}

// ---------------------------------------------------------------- fake PBX

type Writer = Arc<AsyncMutex<OwnedWriteHalf>>;

/// Accepts one AMI connection, answers the login and every other action,
/// and hands back the writer once the client has finished its resync.
async fn ami_server(listener: TcpListener, ready: oneshot::Sender<Writer>) {
    let (sock, _) = listener.accept().await.expect("AMI accept");
    sock.set_nodelay(true).unwrap();
    let (mut rd, wr) = sock.into_split();
    let wr: Writer = Arc::new(AsyncMutex::new(wr));
    wr.lock()
        .await
        .write_all(b"Asterisk Call Manager/11.0.0\r\n")
        .await
        .unwrap();
    let mut ready = Some(ready);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let block = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let header = |name: &str| {
                block.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_owned())
                })
            };
            let action = header("Action").unwrap_or_default();
            let id = header("ActionID").unwrap_or_default();
            let answer = match action.to_ascii_lowercase().as_str() {
                "login" => format!(
                    "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"
                ),
                "challenge" => {
                    format!("Response: Success\r\nActionID: {id}\r\nChallenge: 123456789\r\n\r\n")
                }
                "coreshowchannels" => format!(
                    "Response: Success\r\nActionID: {id}\r\nEventList: start\r\n\
                     Message: Channels will follow\r\n\r\n\
                     Event: CoreShowChannelsComplete\r\nActionID: {id}\r\n\
                     EventList: Complete\r\nListItems: 0\r\n\r\n"
                ),
                _ => format!("Response: Success\r\nActionID: {id}\r\n\r\n"),
            };
            wr.lock().await.write_all(answer.as_bytes()).await.unwrap();
            if action.eq_ignore_ascii_case("CoreShowChannels")
                && let Some(r) = ready.take()
            {
                let _ = r.send(wr.clone());
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

const CALLER: &str = "+79161234567";

/// Identifiers of call `n` (Asterisk-like `epoch.seq` unique ids).
fn ids(n: u32) -> (String, String, String, String) {
    let uid = format!("1795426662.{}", 2 * n + 2);
    let dest_uid = format!("1795426662.{}", 2 * n + 3);
    let trunk = format!("PJSIP/trunk-{:08x}", 2 * n + 2);
    let dest_tag = format!("{:08x}", 2 * n + 3);
    (uid, dest_uid, trunk, dest_tag)
}

fn newchannel(n: u32) -> String {
    let (uid, _, trunk, _) = ids(n);
    format!(
        "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: {trunk}\r\nChannelState: 4\r\n\
         ChannelStateDesc: Ring\r\nCallerIDNum: {CALLER}\r\nCallerIDName: <unknown>\r\n\
         ConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\n\
         AccountCode: \r\nContext: from-trunk\r\nExten: 74957654321\r\nPriority: 1\r\n\
         Uniqueid: {uid}\r\nLinkedid: {uid}\r\n\r\n"
    )
}

fn dial(n: u32, ext: u32, end: bool) -> String {
    let (uid, dest_uid, trunk, tag) = ids(n);
    let (event, tail) = if end {
        ("DialEnd", "DialStatus: NOANSWER\r\n")
    } else {
        ("DialBegin", "")
    };
    format!(
        "Event: {event}\r\nPrivilege: call,all\r\nChannel: {trunk}\r\nChannelState: 4\r\n\
         ChannelStateDesc: Ring\r\nCallerIDNum: {CALLER}\r\nCallerIDName: <unknown>\r\n\
         Context: from-trunk\r\nExten: 74957654321\r\nPriority: 5\r\n\
         Uniqueid: {uid}\r\nLinkedid: {uid}\r\nDestChannel: PJSIP/{ext}-{tag}\r\n\
         DestChannelState: 0\r\nDestChannelStateDesc: Down\r\nDestCallerIDNum: {ext}\r\n\
         DestCallerIDName: Agent {ext}\r\nDestContext: from-agents\r\n\
         DestUniqueid: {dest_uid}\r\nDestLinkedid: {uid}\r\nDialString: {ext}\r\n{tail}\r\n"
    )
}

fn hangup(n: u32) -> String {
    let (uid, _, trunk, _) = ids(n);
    format!(
        "Event: Hangup\r\nPrivilege: call,all\r\nChannel: {trunk}\r\nChannelState: 4\r\n\
         ChannelStateDesc: Ring\r\nCallerIDNum: {CALLER}\r\nCallerIDName: <unknown>\r\n\
         Context: from-trunk\r\nExten: 74957654321\r\nPriority: 5\r\n\
         Uniqueid: {uid}\r\nLinkedid: {uid}\r\nCause: 19\r\nCause-txt: No answer\r\n\r\n"
    )
}

// ---------------------------------------------------------------- tabs

type Sent = Arc<Mutex<HashMap<String, Instant>>>;

#[derive(Default)]
struct Counts {
    ringing: AtomicUsize,
    unknown_call: AtomicUsize,
    closed: AtomicUsize,
    gaps: AtomicUsize,
}

async fn open_tab(
    addr: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("ws://{addr}/ws?token={token}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects");
    // The server has subscribed once it says hello.
    loop {
        match ws.next().await {
            Some(Ok(WsMessage::Text(t))) if t.as_str().contains("\"hello\"") => break,
            Some(Ok(_)) => {}
            other => panic!("no hello: {other:?}"),
        }
    }
    ws
}

/// Opens one tab per token; each reports `call.ringing` latencies.
async fn open_pop_tabs(
    addr: &str,
    tokens: &[String],
    sent: Sent,
    counts: Arc<Counts>,
    lat: mpsc::UnboundedSender<Duration>,
) {
    let mut opened = futures::stream::iter(tokens.iter().cloned())
        .map(|t| {
            let addr = addr.to_owned();
            async move { open_tab(&addr, &t).await }
        })
        .buffer_unordered(64);
    while let Some(mut ws) = opened.next().await {
        let sent = sent.clone();
        let counts = counts.clone();
        let lat = lat.clone();
        tokio::spawn(async move {
            while let Some(msg) = ws.next().await {
                let now = Instant::now();
                let Ok(WsMessage::Text(t)) = msg else {
                    if msg.is_err() {
                        break;
                    }
                    continue;
                };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some("call.ringing") => {
                        counts.ringing.fetch_add(1, Ordering::Relaxed);
                        let call = v["call_id"].as_str().unwrap_or_default();
                        match sent.lock().unwrap().get(call) {
                            Some(at) => {
                                let _ = lat.send(now.duration_since(*at));
                            }
                            None => {
                                counts.unknown_call.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Some("replay.gap") => {
                        counts.gaps.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            counts.closed.fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// Plays `calls` calls at `rate`/s, round robin over the agents; each call
/// rings for one second, then the caller gives up.
async fn play_calls(wr: Writer, opts: &Opts, sent: Sent) {
    let every = Duration::from_secs_f64(1.0 / opts.rate as f64);
    let ring_for = Duration::from_secs(1);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut ending: std::collections::VecDeque<(Instant, u32, u32)> = Default::default();
    let mut n = 0;
    while n < opts.calls || !ending.is_empty() {
        tick.tick().await;
        let now = Instant::now();
        while ending.front().is_some_and(|(due, _, _)| *due <= now) {
            let (_, call, ext) = ending.pop_front().unwrap();
            let text = dial(call, ext, true) + &hangup(call);
            wr.lock().await.write_all(text.as_bytes()).await.unwrap();
        }
        if n < opts.calls {
            let ext = FIRST_EXT + n % opts.agents;
            wr.lock()
                .await
                .write_all(newchannel(n).as_bytes())
                .await
                .unwrap();
            // The phone rings a moment after the call arrives, as on a real
            // PBX; the clock starts at the ring.
            let (wr, sent) = (wr.clone(), sent.clone());
            let after = Duration::from_millis(opts.dial_after_ms);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let ring = dial(n, ext, false);
                let (uid, ..) = ids(n);
                let mut w = wr.lock().await;
                sent.lock().unwrap().insert(uid, Instant::now());
                w.write_all(ring.as_bytes()).await.unwrap();
            });
            ending.push_back((Instant::now() + ring_for, n, ext));
            n += 1;
        }
    }
}

fn report_latency(label: &str, mut lat: Vec<Duration>, expected: u32, counts: &Counts) {
    lat.sort();
    let pct = |p: f64| {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    println!(
        "{label}: {} pops of {expected} calls: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        lat.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  call.ringing frames {}, for unknown calls {}, replay gaps {}, tabs closed {}",
        counts.ringing.load(Ordering::Relaxed),
        counts.unknown_call.load(Ordering::Relaxed),
        counts.gaps.load(Ordering::Relaxed),
        counts.closed.load(Ordering::Relaxed)
    );
    if lat.len() < expected as usize {
        println!("  LOST POPS: {}", expected as usize - lat.len());
    }
}

async fn pops(opts: &Opts, two_nodes: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, tokens) = setup_db(dir.path(), opts.agents).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ami_url = format!("ami://crm:secret@{}", listener.local_addr().unwrap());
    let (ready_tx, ready_rx) = oneshot::channel();
    tokio::spawn(ami_server(listener, ready_tx));
    // A prefix of its own: keys left by earlier runs or other users of
    // the Redis server cannot swallow this run's pops.
    let prefix = format!("pushload{}x{}", std::process::id(), rand_tag());
    let shared = [
        ("RINGSIDE_REDIS_URL", opts.redis.clone()),
        ("RINGSIDE_REDIS_PREFIX", prefix),
    ];
    let mut env = vec![("RINGSIDE_AMI_URL", ami_url)];
    if two_nodes {
        env.extend(shared.iter().cloned());
    }
    let a = Node::start(&opts.bin, dir.path(), &db_url, &env);
    let b = two_nodes.then(|| Node::start(&opts.bin, dir.path(), &db_url, &shared));
    let wr = tokio::time::timeout(Duration::from_secs(30), ready_rx)
        .await
        .expect("AMI login within 30 s")
        .expect("AMI server");
    let tabs_on = b.as_ref().unwrap_or(&a);
    let sent: Sent = Arc::default();
    let counts = Arc::new(Counts::default());
    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel();
    let t = Instant::now();
    open_pop_tabs(&tabs_on.addr, &tokens, sent.clone(), counts.clone(), lat_tx).await;
    println!("  {} tabs open in {:.1?}", tokens.len(), t.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;
    play_calls(wr, opts, sent).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut lat = Vec::new();
    while let Ok(d) = lat_rx.try_recv() {
        lat.push(d);
    }
    let label = if two_nodes {
        "pop latency, two nodes through Redis"
    } else {
        "pop latency, one node"
    };
    report_latency(label, lat, opts.calls, &counts);
    a.report_trouble("A");
    if let Some(b) = &b {
        b.report_trouble("B");
    }
}

fn rand_tag() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn idle(opts: &Opts) {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, tokens) = setup_db(dir.path(), opts.agents).await;
    let node = Node::start(&opts.bin, dir.path(), &db_url, &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = node.rss_kb();
    let t = Instant::now();
    let failed = Arc::new(AtomicUsize::new(0));
    let mut opened = futures::stream::iter(0..opts.conns)
        .map(|i| {
            let addr = node.addr.clone();
            let token = tokens[i % tokens.len()].clone();
            async move {
                let url = format!("ws://{addr}/ws?token={token}");
                tokio_tungstenite::connect_async(url).await
            }
        })
        .buffer_unordered(128);
    let mut open = 0usize;
    while let Some(r) = opened.next().await {
        match r {
            Ok((mut ws, _)) => {
                open += 1;
                // Keep reading so pings get their pongs.
                tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
            }
            Err(e) => {
                if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                    println!("  connect failed: {e}");
                }
            }
        }
    }
    println!(
        "  {open} connections open in {:.1?} ({} failed)",
        t.elapsed(),
        failed.load(Ordering::Relaxed)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = node.rss_kb();
    let per = (after.saturating_sub(before)) as f64 / open.max(1) as f64;
    println!(
        "idle connections: {open} open; server RSS {before} KB before, {after} KB after: {per:.2} KB per connection"
    );
    node.report_trouble("A");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let opts = Opts::parse();
    match opts.mode.as_str() {
        "pop" => pops(&opts, false).await,
        "redis" => pops(&opts, true).await,
        "idle" => idle(&opts).await,
        m => panic!("unknown mode {m}"),
    }
}
