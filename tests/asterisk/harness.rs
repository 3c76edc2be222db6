//! The real-Asterisk harness: unpacks the Asterisk 22 bundle once per run,
//! starts one Asterisk per test from the configuration in
//! `tests/asterisk/conf/` on free ports, starts `ringside serve` connected to
//! it over AMI, plays the agents' phones and the carrier with SIPp, records
//! the AMI stream, and waits on what users see (WebSocket frames, API state,
//! files) with deadlines. `tests/asterisk/README`-level usage:
//! `notes` in the repository's README ("Tests against a real Asterisk").
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestApp;

/// How long any one condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The ringside AMI account in `conf/manager.conf`.
pub const AMI_USER: &str = "ringside";
pub const AMI_SECRET: &str = "ringside-test";

/// The extensions of the bundled PBX's agents, their logins and names.
pub const AGENTS: [(&str, &str); 3] = [("101", "anna"), ("102", "boris"), ("103", "clara")];
pub const MANAGER: &str = "maria";

/// Whether the real-Asterisk tests run: only with `RINGSIDE_TEST_ASTERISK=1`
/// (`.ci/run` sets it). Without it a test prints why it skips and passes, so
/// `cargo test` works on a machine with only Rust; with it, a missing bundle,
/// library or SIPp fails the test.
pub fn enabled(test: &str) -> bool {
    if std::env::var("RINGSIDE_TEST_ASTERISK").is_ok_and(|v| v == "1") {
        return true;
    }
    // straight to the stream: the test harness captures eprintln! of passing tests
    let _ = writeln!(
        std::io::stderr(),
        "skipping {test}: set RINGSIDE_TEST_ASTERISK=1 to run it against the real Asterisk 22 \
         bundle with SIPp (.ci/run does)"
    );
    false
}

/// Returns early from a test (with the printed reason) unless the suite runs.
#[macro_export]
macro_rules! require_asterisk {
    () => {
        if !$crate::harness::enabled(module_path!()) {
            return;
        }
    };
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder holding `asterisk/` (the bundle): `RINGSIDE_SHARED`, or
/// `shared/` beside the checkout or beside the folder of worktrees.
pub fn shared() -> PathBuf {
    if let Some(d) = std::env::var_os("RINGSIDE_SHARED") {
        return PathBuf::from(d);
    }
    for d in [root().join("../shared"), root().join("../../shared")] {
        if d.join("asterisk").is_dir() {
            return d;
        }
    }
    panic!(
        "the Asterisk bundle was not found: set RINGSIDE_SHARED to the folder holding \
         asterisk/asterisk-22.10.1-bookworm-x86_64.tar.xz"
    );
}

/// The unpacked bundle (`target/asterisk/asterisk-22.10.1`), unpacked once
/// per run under a file lock so parallel tests and processes share it.
pub fn bundle() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = root().join("target/asterisk");
        let dir = base.join("asterisk-22.10.1");
        fs::create_dir_all(&base).unwrap();
        let lock = fs::File::create(base.join(".unpack.lock")).unwrap();
        lock.lock().expect("lock target/asterisk");
        if !dir.join("start.sh").exists() {
            let tar = shared().join("asterisk/asterisk-22.10.1-bookworm-x86_64.tar.xz");
            let st = Command::new("tar")
                .arg("-xJf")
                .arg(&tar)
                .arg("-C")
                .arg(&base)
                .status()
                .expect("run tar (install xz-utils)");
            assert!(st.success(), "unpacking {} failed", tar.display());
        }
        let _ = lock.unlock();
        for tool in ["sipp", "python3"] {
            let ok = Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "{tool} is missing (apt-get install -y sip-tester python3)"
            );
        }
        dir
    })
    .clone()
}

/// Free TCP+UDP ports on 127.0.0.1, never the same twice in this process.
pub fn free_ports(n: usize) -> Vec<u16> {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut used = USED.lock().unwrap();
    let used = used.get_or_insert_with(HashSet::new);
    let mut out = Vec::new();
    let mut keep = Vec::new();
    while out.len() < n {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if used.contains(&p) {
            continue;
        }
        let Ok(t) = std::net::TcpListener::bind(("127.0.0.1", p)) else {
            continue;
        };
        used.insert(p);
        keep.push((u, t));
        out.push(p);
    }
    out
}

/// `len` consecutive ports below the kernel's ephemeral range (RTP), apart
/// from every other range handed out by this process; processes start at
/// different offsets.
pub fn port_range(len: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        10_000 + (std::process::id() % 40) as u16 * 500,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let len = len.div_ceil(2) * 2;
    let mut start = NEXT.fetch_add(len, Ordering::SeqCst);
    if start + len > 32_000 {
        NEXT.store(10_000 + len, Ordering::SeqCst);
        start = 10_000;
    }
    start
}

/// The ports of one Asterisk and its SIPp peers.
#[derive(Clone, Debug)]
pub struct Ports {
    pub ami: u16,
    pub sip: u16,
    /// The carrier's source port (the trunk is identified by it).
    pub carrier: u16,
    /// Where Asterisk sends outbound calls (`trunk` AOR).
    pub trunk: u16,
    /// The agents' phones (their static contacts), by extension.
    pub phones: BTreeMap<String, u16>,
    pub rtp_start: u16,
    pub rtp_end: u16,
}

impl Ports {
    fn pick() -> Ports {
        let p = free_ports(7);
        let rtp = port_range(200);
        Ports {
            ami: p[0],
            sip: p[1],
            carrier: p[2],
            trunk: p[3],
            phones: [("101", p[4]), ("102", p[5]), ("103", p[6])]
                .into_iter()
                .map(|(e, p)| (e.to_owned(), p))
                .collect(),
            rtp_start: rtp,
            rtp_end: rtp + 199,
        }
    }

    fn placeholders(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("AMI_PORT".into(), self.ami.to_string()),
            ("SIP_PORT".into(), self.sip.to_string()),
            ("CARRIER_PORT".into(), self.carrier.to_string()),
            ("TRUNK_PORT".into(), self.trunk.to_string()),
            ("RTP_START".into(), self.rtp_start.to_string()),
            ("RTP_END".into(), self.rtp_end.to_string()),
        ];
        for (e, p) in &self.phones {
            v.push((format!("PHONE_{e}"), p.to_string()));
        }
        v
    }
}

/// The read and write classes of the `[ringside]` account in the shipped
/// `dialplans/manager.conf`.
pub fn shipped_ami_classes() -> (String, String) {
    let text = fs::read_to_string(root().join("dialplans/manager.conf")).unwrap();
    let mut section = String::new();
    let (mut read, mut write) = (None, None);
    for line in text.lines() {
        let line = line.split(';').next().unwrap_or("").trim();
        if let Some(s) = line.strip_prefix('[') {
            section = s.trim_end_matches(']').to_owned();
        } else if section == "ringside"
            && let Some((k, v)) = line.split_once('=')
        {
            match k.trim() {
                "read" => read = Some(v.trim().to_owned()),
                "write" => write = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    (
        read.expect("dialplans/manager.conf [ringside] has read ="),
        write.expect("dialplans/manager.conf [ringside] has write ="),
    )
}

/// The PBX configuration for one test: `tests/asterisk/conf/*.conf`, with
/// `@NAME@` placeholders for the ports filled in at start. Change a file
/// for one test before [`Pbx::start`].
#[derive(Clone)]
pub struct Conf {
    pub files: BTreeMap<String, String>,
}

impl Conf {
    /// The repository's test PBX (the bundle's lab configuration) with
    /// Ringside's AMI account taken from `dialplans/manager.conf`.
    pub fn shipped() -> Conf {
        let dir = root().join("tests/asterisk/conf");
        let mut files = BTreeMap::new();
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "conf") {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                files.insert(name, fs::read_to_string(&p).unwrap());
            }
        }
        let (read, write) = shipped_ami_classes();
        let m = files.get_mut("manager.conf").unwrap();
        *m = m
            .replace("@RINGSIDE_READ@", &read)
            .replace("@RINGSIDE_WRITE@", &write);
        Conf { files }
    }

    pub fn get(&self, name: &str) -> &str {
        self.files.get(name).map_or("", String::as_str)
    }

    /// Replaces (or adds) one file.
    pub fn set(&mut self, name: &str, text: &str) -> &mut Self {
        self.files.insert(name.to_owned(), text.to_owned());
        self
    }

    /// Appends to one file (a new queue in `queues.conf`, a context in
    /// `extensions.conf`, a `[cdr]` section...).
    pub fn append(&mut self, name: &str, text: &str) -> &mut Self {
        let f = self.files.entry(name.to_owned()).or_default();
        f.push('\n');
        f.push_str(text);
        f.push('\n');
        self
    }

    /// Replaces `from` by `to` in one file; panics when `from` is absent.
    pub fn replace(&mut self, name: &str, from: &str, to: &str) -> &mut Self {
        let f = self.files.get_mut(name).expect("conf file");
        assert!(f.contains(from), "{name} has no `{from}`");
        *f = f.replace(from, to);
        self
    }

    /// Loads the shipped `dialplans/extensions_ringside.conf` (included from
    /// `extensions.conf`) with its FastAGI address pointing at `agi`
    /// (`host:port`), and sends the carrier's DID `did` to
    /// `[ringside-inbound]`.
    pub fn with_ringside_dialplan(&mut self, agi: &str) -> &mut Self {
        let text = fs::read_to_string(root().join("dialplans/extensions_ringside.conf")).unwrap();
        let text = text.replace("agi://ringside:4573/route", &format!("agi://{agi}/route"));
        self.set("extensions_ringside.conf", &text);
        let ext = self.files.get_mut("extensions.conf").unwrap();
        if !ext.contains("#include extensions_ringside.conf") {
            *ext = format!("#include extensions_ringside.conf\n{ext}");
        }
        self
    }
}

static RUNS: AtomicU32 = AtomicU32::new(0);

/// One Asterisk, started from a temp copy of a [`Conf`]; stopped on drop.
/// When the test panics its run folder is kept and Asterisk's log printed.
pub struct Pbx {
    pub ports: Ports,
    pub name: String,
    /// The run folder: `conf/` (the files Asterisk reads), `state/`
    /// (`log/full`, `spool/monitor/`, `run/asterisk.pid`), `sipp/` (logs).
    pub dir: PathBuf,
    bundle: PathBuf,
}

impl Pbx {
    /// Starts Asterisk from `conf` and waits until it is fully booted.
    pub async fn start(name: &str, conf: &Conf) -> Pbx {
        let bundle = bundle();
        let ports = Ports::pick();
        let n = RUNS.fetch_add(1, Ordering::SeqCst);
        // /tmp keeps the control socket's path short (sun_path is 108 bytes)
        let dir = std::env::temp_dir().join(format!("rs-ast-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("conf")).unwrap();
        fs::create_dir_all(dir.join("sipp")).unwrap();
        let pbx = Pbx {
            ports,
            name: name.to_owned(),
            dir,
            bundle,
        };
        pbx.write_conf(conf);
        let out = Command::new(pbx.bundle.join("start.sh"))
            .arg(pbx.dir.join("conf"))
            .arg(pbx.state())
            .output()
            .expect("run the bundle's start.sh");
        assert!(
            out.status.success(),
            "Asterisk did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pbx.wait_booted().await;
        pbx
    }

    /// Writes the configuration files (placeholders filled) into `conf/`;
    /// a running Asterisk reads them on `reload` / `dialplan reload` etc.
    pub fn write_conf(&self, conf: &Conf) {
        let ph = self.ports.placeholders();
        for (name, text) in &conf.files {
            let mut text = text.clone();
            for (k, v) in &ph {
                text = text.replace(&format!("@{k}@"), v);
            }
            fs::write(self.dir.join("conf").join(name), text).unwrap();
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Where MixMonitor writes (`STATEDIR/spool/monitor/`).
    pub fn monitor_dir(&self) -> PathBuf {
        self.state().join("spool/monitor")
    }

    pub fn sipp_dir(&self) -> PathBuf {
        self.dir.join("sipp")
    }

    pub fn ami_url(&self) -> String {
        format!("ami://{AMI_USER}:{AMI_SECRET}@127.0.0.1:{}", self.ports.ami)
    }

    pub fn ami_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports.ami)
    }

    /// One CLI command over the control socket; its output.
    pub async fn cli(&self, cmd: &str) -> String {
        let out = tokio::process::Command::new(self.state().join("cli"))
            .arg(cmd)
            .output()
            .await
            .expect("run the Asterisk CLI");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    pub fn pid(&self) -> Option<i32> {
        fs::read_to_string(self.state().join("run/asterisk.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn alive(pid: i32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
            && !fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
    }

    async fn wait_booted(&self) {
        let st = self.state().join("cli");
        wait_for(&format!("{}: Asterisk fully booted", self.name), || async {
            let out = tokio::process::Command::new(&st)
                .arg("core waitfullybooted")
                .output()
                .await
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            (out.status.success() && text.contains("fully booted")).then_some(())
        })
        .await;
    }

    /// `core restart now`: Asterisk re-executes (a new pid); waits until the
    /// new one is fully booted.
    pub async fn restart_now(&self) {
        let old = self.pid();
        let _ = self.cli("core restart now").await;
        wait_for(&format!("{}: a new Asterisk pid", self.name), || async {
            let p = self.pid()?;
            (Some(p) != old && Self::alive(p)).then_some(())
        })
        .await;
        self.wait_booted().await;
    }

    /// Asterisk's full log (`state/log/full`).
    pub fn full_log(&self) -> String {
        fs::read_to_string(self.state().join("log/full")).unwrap_or_default()
    }

    /// The length of the full log so far: a mark for [`Pbx::errors_since`].
    pub fn log_mark(&self) -> usize {
        self.full_log().len()
    }

    /// The `ERROR` and `WARNING` lines Asterisk logged after `mark` (e.g.
    /// during a `dialplan reload`). Those at start about optional modules
    /// and configuration files that the lab does not have are harmless, and
    /// only this keeps them out.
    pub fn errors_since(&self, mark: usize) -> Vec<String> {
        let log = self.full_log();
        log.get(mark..)
            .unwrap_or("")
            .lines()
            .filter(|l| l.contains("ERROR[") || l.contains("WARNING["))
            .map(str::to_owned)
            .collect()
    }

    /// Files MixMonitor has written.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.monitor_dir())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// A phone for extension `ext` answering with `scenario` (a file in
    /// `sip/scenarios/` without `.xml`) for up to `calls` calls (0: until
    /// dropped).
    pub fn phone(&self, ext: &str, scenario: &str, calls: u32) -> Sipp {
        let port = self.ports.phones[ext];
        let media = port_range(4);
        let mut args: Vec<String> = vec![
            "-sf".into(),
            format!("{scenario}.xml"),
            "-s".into(),
            ext.into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-mp".into(),
            media.to_string(),
        ];
        if calls > 0 {
            args.extend(["-m".into(), calls.to_string()]);
        }
        Sipp::spawn(self, &format!("phone-{ext}"), &args)
    }

    /// The carrier calls `did` as `number` / `name` once and stays until the
    /// PBX hangs up (`sip/scenarios/carrier.xml`).
    pub fn call(&self, did: &str, number: &str, name: &str) -> Sipp {
        self.carrier("carrier", did, number, name, &[])
    }

    /// The carrier with a scenario of `sip/scenarios/` and extra SIPp
    /// arguments (`-r 5 -m 30` for a burst, `-inf FILE` for per-call
    /// fields).
    pub fn carrier(
        &self,
        scenario: &str,
        did: &str,
        number: &str,
        name: &str,
        extra: &[&str],
    ) -> Sipp {
        let media = port_range(4);
        let mut args: Vec<String> = vec![
            format!("127.0.0.1:{}", self.ports.sip),
            "-sf".into(),
            format!("{scenario}.xml"),
            "-s".into(),
            did.into(),
            "-key".into(),
            "caller_num".into(),
            number.into(),
            "-key".into(),
            "caller_name".into(),
            name.into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.ports.carrier.to_string(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-mp".into(),
            media.to_string(),
        ];
        if !extra.iter().any(|a| *a == "-m") {
            args.extend(["-m".into(), "1".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Sipp::spawn(self, "carrier", &args)
    }

    /// A UAS on the trunk's contact (outbound calls), answering with
    /// `scenario`.
    pub fn trunk(&self, scenario: &str, calls: u32) -> Sipp {
        let media = port_range(4);
        let mut args: Vec<String> = vec![
            "-sf".into(),
            format!("{scenario}.xml"),
            "-s".into(),
            "trunk".into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.ports.trunk.to_string(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-mp".into(),
            media.to_string(),
        ];
        if calls > 0 {
            args.extend(["-m".into(), calls.to_string()]);
        }
        Sipp::spawn(self, "trunk", &args)
    }

    /// Prints where the run's logs are and the tail of each.
    pub fn report(&self) {
        let full = self.state().join("log/full");
        eprintln!(
            "---- {}: Asterisk full log {} ----",
            self.name,
            full.display()
        );
        eprintln!("{}", self.full_log());
        if let Ok(d) = fs::read_dir(self.sipp_dir()) {
            let mut files: Vec<PathBuf> = d.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in files {
                let text = fs::read_to_string(&f).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                eprintln!("---- SIPp {} (last 40 lines) ----\n{tail}", f.display());
            }
        }
        eprintln!("---- the run folder is kept: {} ----", self.dir.display());
    }
}

impl Drop for Pbx {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SIGTERM, then SIGKILL if it lingers
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let t = Instant::now();
            while Self::alive(pid) && t.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if Self::alive(pid) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        if std::thread::panicking() {
            self.report();
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// One SIPp process (a phone, the carrier, the trunk); killed on drop. Its
/// message trace, errors and screen go to the run's `sipp/` folder.
pub struct Sipp {
    pub name: String,
    child: Option<Child>,
    pub log_prefix: PathBuf,
}

impl Sipp {
    fn spawn(pbx: &Pbx, role: &str, args: &[String]) -> Sipp {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let prefix = pbx.sipp_dir().join(format!("{role}-{n}"));
        let out = fs::File::create(prefix.with_extension("out")).unwrap();
        let child = Command::new("sipp")
            .current_dir(root().join("sip/scenarios"))
            .args(args)
            .args(["-aa", "-nostdin", "-trace_err", "-trace_msg"])
            .arg("-message_file")
            .arg(prefix.with_extension("msg"))
            .arg("-error_file")
            .arg(prefix.with_extension("err"))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sipp (apt-get install -y sip-tester)");
        Sipp {
            name: format!("{role}-{n}"),
            child: Some(child),
            log_prefix: prefix,
        }
    }

    /// Waits until SIPp exits (its `-m` calls done); whether every call
    /// passed its scenario.
    pub async fn finished(&mut self) -> bool {
        let name = self.name.clone();
        let child = self.child.as_mut().unwrap();
        let status = wait_for(&format!("SIPp {name} to finish"), || {
            let s = child.try_wait().ok().flatten();
            async move { s }
        })
        .await;
        status.success()
    }

    /// Whether SIPp is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIPp's message trace so far.
    pub fn messages(&self) -> String {
        fs::read_to_string(self.log_prefix.with_extension("msg")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `check` until it returns `Some`, for at most [`WAIT`]; panics
/// naming `what` otherwise.
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_within(WAIT, what, check).await
}

pub async fn wait_within<T, F, Fut>(wait: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + wait;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {wait:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A WebSocket frame as one user's browser got it.
#[derive(Clone, Debug)]
pub struct Frame {
    pub at: Instant,
    pub v: Value,
}

/// A logged-in user with one open WebSocket whose frames are all kept.
pub struct User {
    pub login: String,
    pub id: i64,
    pub ext: Option<String>,
    pub token: String,
    frames: Arc<Mutex<Vec<Frame>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for User {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl User {
    async fn connect(app: &TestApp, login: &str, id: i64, ext: Option<&str>) -> User {
        use futures::StreamExt;
        let token = app.login(login).await;
        let url = format!("{}/ws?token={token}", app.base.replace("http://", "ws://"));
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects");
        let frames = Arc::new(Mutex::new(Vec::new()));
        let sink = frames.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let at = Instant::now();
                if let tokio_tungstenite::tungstenite::Message::Text(t) = msg
                    && let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                {
                    sink.lock().unwrap().push(Frame { at, v });
                }
            }
        });
        User {
            login: login.to_owned(),
            id,
            ext: ext.map(str::to_owned),
            token,
            frames,
            reader,
        }
    }

    /// Every frame so far.
    pub fn frames(&self) -> Vec<Frame> {
        self.frames.lock().unwrap().clone()
    }

    /// The frames of one `type` so far.
    pub fn of(&self, kind: &str) -> Vec<Value> {
        self.frames()
            .into_iter()
            .filter(|f| f.v["type"] == kind)
            .map(|f| f.v)
            .collect()
    }

    /// The frames of one `type` about one call.
    pub fn of_call(&self, kind: &str, call_id: &str) -> Vec<Value> {
        self.of(kind)
            .into_iter()
            .filter(|v| v["call_id"] == call_id)
            .collect()
    }

    /// Waits for a frame of `kind` matching `pred`; returns it.
    pub async fn wait_frame(&self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let what = format!("a {kind} frame for {}", self.login);
        let frames = self.frames.clone();
        let found = wait_within(WAIT, &what, || {
            let hit = frames
                .lock()
                .unwrap()
                .iter()
                .find(|f| f.v["type"] == kind && pred(&f.v))
                .map(|f| f.v.clone());
            async move { hit }
        })
        .await;
        found
    }
}

/// `ringside serve` connected to a [`Pbx`], with the agents 101/102/103
/// (anna, boris, clara; team Sales) and a manager (maria) logged in, each
/// with an open WebSocket.
pub struct Ringside {
    pub app: TestApp,
    pub agents: BTreeMap<String, User>,
    pub manager: User,
}

impl Ringside {
    /// Starts Ringside on `pbx`'s AMI with extra environment `env`
    /// (e.g. `RINGSIDE_AGI_BIND`), and waits until its AMI link is up.
    pub async fn start(pbx: &Pbx, env: &[(&str, &str)]) -> Ringside {
        let url = pbx.ami_url();
        let mut all: Vec<(&str, &str)> = vec![
            ("RINGSIDE_AMI_URL", url.as_str()),
            ("RINGSIDE_DEFAULT_REGION", "RU"),
        ];
        all.extend_from_slice(env);
        let app = TestApp::spawn_with(&all).await;
        let mut ids = Vec::new();
        for (ext, login) in AGENTS {
            ids.push((
                ext,
                login,
                app.add_user(login, "agent", Some("Sales"), &[ext]).await,
            ));
        }
        let mid = app.add_user(MANAGER, "manager", None, &[]).await;
        let mut agents = BTreeMap::new();
        for (ext, login, id) in ids {
            agents.insert(
                ext.to_owned(),
                User::connect(&app, login, id, Some(ext)).await,
            );
        }
        let manager = User::connect(&app, MANAGER, mid, None).await;
        let rs = Ringside {
            app,
            agents,
            manager,
        };
        rs.wait_ami_up(pbx).await;
        rs
    }

    /// Waits until Asterisk lists Ringside's AMI session.
    pub async fn wait_ami_up(&self, pbx: &Pbx) {
        wait_for(
            "Ringside's AMI session in `manager show connected`",
            || async {
                let out = pbx.cli("manager show connected").await;
                out.lines()
                    .any(|l| l.trim_start().starts_with(AMI_USER))
                    .then_some(())
            },
        )
        .await;
    }

    pub fn agent(&self, ext: &str) -> &User {
        &self.agents[ext]
    }

    /// GET as the manager.
    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.app.get(&self.manager.token, path).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// Polls GET `path` (as the manager) until `pred` holds; returns the body.
    pub async fn wait_api(&self, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let what = format!("GET {path} to satisfy the test");
        wait_for(&what, || async {
            let (s, v) = self.app.get(&self.manager.token, path).await;
            (s == 200 && pred(&v)).then_some(v)
        })
        .await
    }

    /// The call-log rows (`GET /api/v1/calls`), newest first.
    pub async fn calls(&self) -> Vec<Value> {
        let v = self.get("/api/v1/calls?limit=200").await;
        items(&v)
    }

    /// Waits until `n` calls are logged; returns them.
    pub async fn wait_calls(&self, n: usize) -> Vec<Value> {
        let v = self
            .wait_api("/api/v1/calls?limit=200", |v| items(v).len() >= n)
            .await;
        items(&v)
    }

    /// Waits for the logged row of `call_id`.
    pub async fn wait_call(&self, call_id: &str) -> Value {
        let path = format!("/api/v1/calls/{call_id}");
        self.wait_api(&path, |v| v["call_id"] == call_id).await
    }

    /// The agents' states (`GET /api/v1/agents`).
    pub async fn agent_states(&self) -> Vec<Value> {
        items(&self.get("/api/v1/agents").await)
    }

    /// Waits until the agent with `ext` is in `state`.
    pub async fn wait_agent_state(&self, ext: &str, state: &str) -> Value {
        let login = self.agents[ext].login.clone();
        self.wait_api("/api/v1/agents", move |v| {
            items(v)
                .iter()
                .any(|a| a["login"] == login.as_str() && a["state"] == state)
        })
        .await
    }
}

/// The `items` of a list answer (or the array itself).
pub fn items(v: &Value) -> Vec<Value> {
    v.get("items")
        .and_then(Value::as_array)
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default()
}

/// A recorded AMI stream: a second AMI session (`tap` account) logged in
/// with `Events: on`, keeping every byte from the banner with the arrival
/// time of each message (the `tests/fixtures/ami/` format).
pub struct Tap {
    inner: Arc<Mutex<TapData>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct TapData {
    bytes: Vec<u8>,
    /// (ns since the tap started, byte offset of the message)
    times: Vec<(u128, usize)>,
    /// Arrival instants of the messages, in `times` order.
    at: Vec<Instant>,
}

impl Tap {
    /// Logs in as `tap` (read = all) and records until dropped.
    pub async fn start(pbx: &Pbx) -> Tap {
        let mut s = tokio::net::TcpStream::connect(pbx.ami_addr())
            .await
            .expect("tap connects to AMI");
        let inner = Arc::new(Mutex::new(TapData::default()));
        let data = inner.clone();
        let t0 = Instant::now();
        let task = tokio::spawn(async move {
            // sip/ami_tap.py's algorithm: the banner line, then each
            // CRLF CRLF-terminated message, timed at the arrival of the
            // chunk that carried its first byte
            let mut buf = vec![0u8; 65536];
            let mut msg_start = 0usize;
            let mut timed = false;
            let mut pending: Vec<u8> = Vec::new();
            let mut banner = true;
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let now = Instant::now();
                let ns = now.duration_since(t0).as_nanos();
                let mut login = false;
                {
                    let mut d = data.lock().unwrap();
                    d.bytes.extend_from_slice(&buf[..n]);
                    let total = d.bytes.len();
                    pending.extend_from_slice(&buf[..n]);
                    loop {
                        if !timed && msg_start < total {
                            d.times.push((ns, msg_start));
                            d.at.push(now);
                            timed = true;
                        }
                        let sep: &[u8] = if banner { b"\r\n" } else { b"\r\n\r\n" };
                        let Some(i) = pending.windows(sep.len()).position(|w| w == sep) else {
                            break;
                        };
                        pending.drain(..i + sep.len());
                        msg_start = total - pending.len();
                        timed = false;
                        if banner {
                            banner = false;
                            login = true;
                        }
                    }
                }
                if login {
                    let _ = s
                        .write_all(
                            b"Action: Login\r\nActionID: login-1\r\nUsername: tap\r\n\
                              Secret: tap-test\r\nEvents: on\r\n\r\n",
                        )
                        .await;
                }
            }
        });
        let tap = Tap { inner, task };
        wait_for("the tap's AMI login", || async {
            tap.text().contains("Authentication accepted").then_some(())
        })
        .await;
        tap
    }

    /// Everything received so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.inner.lock().unwrap().bytes).into_owned()
    }

    /// The events received so far with their arrival instants.
    pub fn events(&self) -> Vec<(Instant, BTreeMap<String, String>)> {
        let d = self.inner.lock().unwrap();
        let mut out = Vec::new();
        for (k, &(_, off)) in d.times.iter().enumerate() {
            let end = d.times.get(k + 1).map_or(d.bytes.len(), |x| x.1);
            let text = String::from_utf8_lossy(&d.bytes[off..end]);
            let mut h = BTreeMap::new();
            for line in text.split("\r\n") {
                if let Some((k, v)) = line.split_once(": ") {
                    h.entry(k.to_owned()).or_insert_with(|| v.to_owned());
                }
            }
            if h.contains_key("Event") {
                out.push((d.at[k], h));
            }
        }
        out
    }

    /// Waits for an event named `name` matching `pred`.
    pub async fn wait_event(
        &self,
        name: &str,
        pred: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> BTreeMap<String, String> {
        wait_for(&format!("AMI event {name}"), || {
            let hit = self
                .events()
                .into_iter()
                .find(|(_, e)| e.get("Event").is_some_and(|n| n == name) && pred(e))
                .map(|(_, e)| e);
            async move { hit }
        })
        .await
    }

    /// Writes `PREFIX.ami` and `PREFIX.times` (`<ns> <offset>` per message)
    /// when `RINGSIDE_CAPTURE_DIR` is set: how the fixtures in
    /// `tests/fixtures/ami/` are refreshed from a run.
    pub fn save(&self, name: &str) {
        let Some(dir) = std::env::var_os("RINGSIDE_CAPTURE_DIR") else {
            return;
        };
        let dir = PathBuf::from(dir);
        fs::create_dir_all(&dir).unwrap();
        let d = self.inner.lock().unwrap();
        fs::write(dir.join(format!("{name}.ami")), &d.bytes).unwrap();
        let mut f = fs::File::create(dir.join(format!("{name}.times"))).unwrap();
        for &(t, off) in &d.times {
            writeln!(f, "{t} {off}").unwrap();
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP proxy in front of an address that a test can cut (every open
/// connection dropped, new ones refused) and restore, e.g. between
/// Ringside and Asterisk's AMI.
pub struct Proxy {
    pub addr: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    up: std::sync::atomic::AtomicBool,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let state = Arc::new(ProxyState {
            up: std::sync::atomic::AtomicBool::new(true),
            cut,
        });
        let st = state.clone();
        let target = target.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !st.up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut cut = st.cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, state, task }
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.state.up.store(false, Ordering::SeqCst);
        self.state.cut.send_modify(|n| *n += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
