//! The AMI connection: login, actions matched to answers by `ActionID`,
//! list actions collected into one result, keep-alive pings, reconnect with
//! backoff and jitter, and resync of live calls after a reconnect.
//!
//! An action Asterisk refuses after login for want of a privilege class
//! (`Permission denied`) is not a reason to drop the link: the error names
//! the action and the `write` classes it needs, the link reports itself
//! degraded (`AmiClient::status`), live events keep flowing, and the refused
//! resync is retried on the same growing backoff as a reconnect.
//!
//! Only AMI 2.0 and newer is followed (Asterisk 12 on; supported are 13 to
//! 22): the greeting line names the version before anything is sent, and an
//! Asterisk 11 or older (`Asterisk Call Manager/1.x`, whose events have no
//! `Linkedid`) is refused without logging in, reported as degraded with the
//! version it announced, and asked again on the reconnect backoff.
//!
//! Owns the socket and the call state built from it (mapper + tracker). The
//! reader never waits for consumers, so Asterisk's socket is always read:
//! the mapper and the tracker run in the reader itself and lose nothing;
//! what screens react to (rings, answers, who is on a call) goes through a
//! bounded queue sized for the worst burst measured (`ami.event_queue`).
//! When it is full anyway, what does not fit is counted, and a catch-up
//! resync (`CoreShowChannels`, `QueueStatus`) puts the tracker right and
//! sends every live call's current state again, call by call, in step with
//! the stream. Ends of calls (finished, merged) go through unbounded
//! channels: one small record per call, which cannot be rebuilt later, so
//! they are never dropped.
//!
//! A resync's channel list is applied in the reader when its last item is
//! read, so the stream after it cannot be undone by an older list.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::BytesMut;
use chrono::Utc;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};

use super::cdr::CdrFile;
use super::codec::{Action, Decoder, Frame, Message};
use super::mapper::{Mapper, MapperConfig};
use super::replay::message_time;
use crate::calls::{CallEvent, CallEventKind, CallSession, CallTracker, Moment};

/// `ami://user:secret@host:5038`, as `RINGSIDE_AMI_URL` gives it.
#[derive(Clone, PartialEq, Eq)]
pub struct AmiUrl {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub secret: String,
}

impl fmt::Debug for AmiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ami://{}:***@{}:{}", self.user, self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmiUrlError {
    #[error("the AMI URL must start with `ami://` (got `{0}`)")]
    Scheme(String),
    #[error("the AMI URL needs `user:secret@` before the host")]
    MissingCredentials,
    #[error("the AMI URL has an empty user name")]
    EmptyUser,
    #[error("the AMI URL has no host")]
    EmptyHost,
    #[error("`{0}` is not a valid AMI port (1-65535)")]
    Port(String),
    #[error("the AMI URL has a bad %-escape in `{0}`")]
    Escape(String),
    #[error("the AMI URL must not have a path or query (`{0}`)")]
    Path(String),
}

fn percent_decode(s: &str) -> Result<String, AmiUrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| AmiUrlError::Escape(s.into()))?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| AmiUrlError::Escape(s.into()))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| AmiUrlError::Escape(s.into()))
}

impl FromStr for AmiUrl {
    type Err = AmiUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let rest = s
            .strip_prefix("ami://")
            .ok_or_else(|| AmiUrlError::Scheme(s.split("://").next().unwrap_or(s).to_owned()))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if let Some(i) = rest.rfind(['/', '?', '#'])
            && i > rest.rfind('@').unwrap_or(0)
        {
            return Err(AmiUrlError::Path(rest[i..].to_owned()));
        }
        let (userinfo, hostport) = rest
            .rsplit_once('@')
            .ok_or(AmiUrlError::MissingCredentials)?;
        let (user, secret) = userinfo
            .split_once(':')
            .ok_or(AmiUrlError::MissingCredentials)?;
        let (user, secret) = (percent_decode(user)?, percent_decode(secret)?);
        if user.is_empty() {
            return Err(AmiUrlError::EmptyUser);
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or(AmiUrlError::EmptyHost)?;
            (h, p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(AmiUrlError::EmptyHost);
        }
        let port = match port {
            None => 5038,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(AmiUrlError::Port(p.to_owned())),
            },
        };
        Ok(AmiUrl {
            host: host.to_owned(),
            port,
            user,
            secret,
        })
    }
}

/// How the secret is presented at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginAuth {
    /// `Secret:` in clear text (fine on localhost or inside a VPN).
    #[default]
    Plain,
    /// `Challenge` first, then `Key: md5(challenge + secret)`.
    Md5,
}

/// The login key for MD5 challenge authentication.
pub fn md5_key(challenge: &str, secret: &str) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(challenge.as_bytes());
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Connection settings; `ClientConfig::new(url)` gives sensible defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub url: AmiUrl,
    pub auth: LoginAuth,
    pub action_timeout: Duration,
    pub ping_interval: Duration,
    pub connect_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Capacity of the queue of moments to the screen pops (at least
    /// [`MIN_EVENT_QUEUE`]); beyond it they are counted and a catch-up
    /// resync sends the live calls again.
    pub event_capacity: usize,
    pub mapper: MapperConfig,
    /// The users' devices, so channels of named endpoints are agents' phones.
    pub devices: Option<Arc<crate::extensions::Extensions>>,
    /// The file Asterisk's `cdr_custom` writes (`RINGSIDE_AMI_CDR_FILE`):
    /// after an outage, calls that ended or happened in it are completed or
    /// logged from it. Without it they keep uncertain times.
    pub cdr_file: Option<std::path::PathBuf>,
    /// How long to wait for the CDR of a call that ended just before the
    /// reconnect (Asterisk writes it a moment after the hangup).
    pub cdr_wait: Duration,
}

impl ClientConfig {
    /// From the app settings: `None` when `RINGSIDE_AMI_URL` is not set.
    pub fn from_config(config: &crate::config::Config) -> Result<Option<Self>, AmiUrlError> {
        let Some(url) = config.ami_url.as_deref() else {
            return Ok(None);
        };
        let mut cfg = ClientConfig::new(url.parse()?);
        cfg.mapper = MapperConfig::from_config(config);
        if let Some(n) = config.ami_event_queue {
            cfg.event_capacity = n;
        }
        cfg.cdr_file.clone_from(&config.ami_cdr_file);
        Ok(Some(cfg))
    }

    pub fn new(url: AmiUrl) -> Self {
        ClientConfig {
            url,
            auth: LoginAuth::Plain,
            action_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            event_capacity: DEFAULT_EVENT_QUEUE,
            mapper: MapperConfig::default(),
            devices: None,
            cdr_file: None,
            cdr_wait: Duration::from_secs(2),
        }
    }
}

/// Moments the queue to the screen pops holds by default (a call makes a
/// few: arrived, each ring, answered, who is on it). Not yet sized from a
/// measured worst case; an overflow is counted and caught up on.
pub const DEFAULT_EVENT_QUEUE: usize = 10_000;

/// The smallest queue accepted: one call's full state, many times over.
pub const MIN_EVENT_QUEUE: usize = 64;

/// The `Asterisk Call Manager/` greeting's version when Ringside cannot
/// follow it: AMI 1.x (Asterisk 11 and older) has no `Linkedid`.
pub fn unsupported_version(banner: &str) -> Option<String> {
    let version = banner
        .trim()
        .strip_prefix("Asterisk Call Manager/")?
        .trim()
        .to_owned();
    let major: u32 = version.split('.').next()?.trim().parse().ok()?;
    (major < 2).then_some(version)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The greeting named an AMI version Ringside cannot follow.
    #[error(
        "Asterisk announced AMI {version} (`{banner}`): that is Asterisk 11 or older, which \
         Ringside does not support (its events lack the `Linkedid` calls are followed by); \
         Ringside needs Asterisk 13 to 22 (AMI 2.0 or newer) and does not log in"
    )]
    Unsupported { version: String, banner: String },
    #[error("not connected to Asterisk")]
    NotConnected,
    #[error("the AMI connection dropped before the answer came")]
    Disconnected,
    #[error("Asterisk did not answer `{0}` in time")]
    Timeout(String),
    #[error("Asterisk refused `{action}`: {message}")]
    Rejected { action: String, message: String },
    /// The AMI account lacks the privilege class the action needs.
    #[error(
        "Asterisk refused `{action}` (Permission denied): the AMI account needs {classes} \
         in its `write` classes (manager.conf)"
    )]
    NotPermitted { action: String, classes: String },
    #[error("AMI I/O error: {0}")]
    Io(String),
}

/// The `write` classes Asterisk 22 registers each action Ringside sends
/// with (`ast_manager_register_xml`); any one of them lets the action run.
pub fn action_classes(action: &str) -> &'static [&'static str] {
    match action.to_ascii_lowercase().as_str() {
        "coreshowchannels" => &["system", "reporting"],
        "status" => &["system", "call", "reporting"],
        "originate" => &["originate"],
        "redirect" => &["call"],
        "mixmonitor" => &["system"],
        "stopmixmonitor" => &["system", "call"],
        "queuepause" => &["agent"],
        _ => &[],
    }
}

/// `Response: Error` to `action`: `NotPermitted` when Asterisk says the
/// account may not run it, `Rejected` otherwise.
fn refusal(action: &str, message: String) -> ClientError {
    if message.eq_ignore_ascii_case("Permission denied") {
        let classes = match action_classes(action) {
            [] => "a class Asterisk did not name".to_owned(),
            [one] => format!("`{one}`"),
            many => {
                let quoted: Vec<String> = many.iter().map(|c| format!("`{c}`")).collect();
                format!("one of {}", quoted.join(", "))
            }
        };
        return ClientError::NotPermitted {
            action: action.to_owned(),
            classes,
        };
    }
    ClientError::Rejected {
        action: action.to_owned(),
        message,
    }
}

/// How the link to Asterisk is doing, for `/healthz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkStatus {
    /// Logged in right now.
    pub connected: bool,
    /// Logins since start.
    pub logins: u64,
    /// Why the link works only in part (an action refused for want of a
    /// privilege class); `None` when all is well.
    pub degraded: Option<String>,
    /// The last reason the link went down or could not come up.
    pub last_error: Option<String>,
    /// Actions Asterisk refused for want of a privilege class.
    pub refused: u64,
    /// The AMI version Asterisk announced last (`11.0.0`), once connected.
    pub version: Option<String>,
    /// Why Ringside does not log in to this Asterisk (its AMI version).
    pub unsupported: Option<String>,
    /// Moments (rings, answers, who is on a call) the queue to the screen
    /// pops had no room for.
    pub dropped: u64,
    /// Catch-up resyncs run after such an overflow.
    pub overflow_resyncs: u64,
    /// The queue's size and the most it has held.
    pub queue_capacity: usize,
    pub queue_peak: usize,
}

/// The answer to a list action: the first response plus the item events.
#[derive(Debug, Clone)]
pub struct ListAnswer {
    pub response: Message,
    pub items: Vec<Message>,
}

enum Pending {
    One(oneshot::Sender<Result<Message, ClientError>>),
    /// A `CoreShowChannels` resync: applied to the mapper in the reader
    /// when its list is complete; the answer is the calls it found gone.
    Resync {
        known: HashSet<String>,
        items: Vec<Message>,
        tx: oneshot::Sender<Result<Vec<CallEvent>, ClientError>>,
    },
    List {
        response: Option<Message>,
        items: Vec<Message>,
        tx: oneshot::Sender<Result<ListAnswer, ClientError>>,
    },
}

struct CallState {
    mapper: Mapper,
    tracker: CallTracker,
    events: Vec<CallEvent>,
    moments: Vec<Moment>,
    seen: SeenCalls,
}

/// Ids of the calls lately started, so records read after an outage never
/// bring back a call that was seen (the call log's claim guards the rest).
#[derive(Default)]
struct SeenCalls {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenCalls {
    const CAP: usize = 100_000;

    fn insert(&mut self, id: &str) {
        if self.ids.contains(id) {
            return;
        }
        self.ids.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        if self.order.len() > Self::CAP
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
    }
}

struct Shared {
    cfg: ClientConfig,
    writer: Mutex<Option<OwnedWriteHalf>>,
    pending: StdMutex<HashMap<String, Pending>>,
    next_id: AtomicU64,
    connected: AtomicBool,
    dropped: AtomicU64,
    /// Moments were dropped since the last catch-up began.
    overflowed: AtomicBool,
    overflow_wake: Notify,
    overflow_resyncs: AtomicU64,
    queue_peak: AtomicU64,
    version: StdMutex<Option<String>>,
    unsupported: StdMutex<Option<String>>,
    connects: AtomicU64,
    refused: AtomicU64,
    /// The session got through its resync or a keep-alive: a drop after it
    /// starts the backoff from the minimum again.
    healthy: AtomicBool,
    degraded: StdMutex<Option<String>>,
    last_error: StdMutex<Option<String>>,
    /// When a message last came from Asterisk (Unix ms; 0: never).
    last_heard_ms: AtomicI64,
    /// The last message before the current connection (0: first connection).
    outage_since_ms: AtomicI64,
    cdr: Mutex<Option<CdrFile>>,
    state: StdMutex<CallState>,
    moments_tx: mpsc::Sender<Moment>,
    finished_tx: mpsc::UnboundedSender<CallSession>,
    agents_tx: mpsc::UnboundedSender<crate::presence::PbxSignal>,
    merged_tx: mpsc::UnboundedSender<Moment>,
    stop: Notify,
    stopped: AtomicBool,
}

/// What the client yields to the rest of the app. Read `moments` before
/// the other two: a call's end is sent after its moments.
pub struct CallFeed {
    /// What screens react to: arrived, ringing (with caller and queue),
    /// answered, transferred, who is on the call. Bounded: see the module doc.
    pub moments: mpsc::Receiver<Moment>,
    /// Each call once, when it has ended.
    pub finished: mpsc::UnboundedReceiver<CallSession>,
    /// Queue membership and phone states (`members`).
    pub agents: mpsc::UnboundedReceiver<crate::presence::PbxSignal>,
    /// `Moment::Merged`: a consultation folded into the call it transferred.
    pub merged: mpsc::UnboundedReceiver<Moment>,
}

/// Handle to a running AMI connection; cheap to clone.
#[derive(Clone)]
pub struct AmiClient {
    shared: Arc<Shared>,
}

/// Supervisor modes, as ChanSpy options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpyMode {
    /// Hear the call, say nothing (`q`).
    Listen,
    /// Speak to the agent only (`qw`).
    Whisper,
    /// Speak to both (`qB`).
    Barge,
}

/// Starts the connection task (it reconnects by itself until `stop`).
/// Must be called inside a tokio runtime.
pub fn start(cfg: ClientConfig) -> (AmiClient, CallFeed) {
    let (moments_tx, moments) = mpsc::channel(cfg.event_capacity.max(MIN_EVENT_QUEUE));
    let (finished_tx, finished) = mpsc::unbounded_channel();
    let (agents_tx, agents) = mpsc::unbounded_channel();
    let (merged_tx, merged) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        agents_tx,
        state: StdMutex::new(CallState {
            mapper: Mapper::new(cfg.mapper.clone()).with_devices(cfg.devices.clone()),
            tracker: CallTracker::new(),
            events: Vec::new(),
            moments: Vec::new(),
            seen: SeenCalls::default(),
        }),
        cdr: Mutex::new(cfg.cdr_file.as_ref().map(CdrFile::new)),
        cfg,
        writer: Mutex::new(None),
        pending: StdMutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        connected: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
        overflowed: AtomicBool::new(false),
        overflow_wake: Notify::new(),
        overflow_resyncs: AtomicU64::new(0),
        queue_peak: AtomicU64::new(0),
        version: StdMutex::new(None),
        unsupported: StdMutex::new(None),
        connects: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        healthy: AtomicBool::new(false),
        degraded: StdMutex::new(None),
        last_error: StdMutex::new(None),
        last_heard_ms: AtomicI64::new(0),
        outage_since_ms: AtomicI64::new(0),
        moments_tx,
        finished_tx,
        merged_tx,
        stop: Notify::new(),
        stopped: AtomicBool::new(false),
    });
    tokio::spawn(supervise(shared.clone()));
    (
        AmiClient { shared },
        CallFeed {
            moments,
            finished,
            agents,
            merged,
        },
    )
}

async fn supervise(shared: Arc<Shared>) {
    let mut delay = shared.cfg.reconnect_min;
    while !shared.stopped.load(Ordering::Acquire) {
        let res = tokio::select! {
            r = connect_and_run(&shared) => r,
            _ = shared.stop.notified() => break,
        };
        shared.connected.store(false, Ordering::Release);
        *shared.writer.lock().await = None;
        fail_pending(&shared);
        let why = match res {
            Ok(()) => {
                tracing::warn!("AMI connection closed by Asterisk");
                "closed by Asterisk".to_owned()
            }
            Err(e @ ClientError::Unsupported { .. }) => e.to_string(),
            Err(e) => {
                tracing::warn!(error = %e, "AMI connection lost");
                e.to_string()
            }
        };
        set_text(&shared.last_error, Some(why));
        // Only a session that worked resets the backoff: one that logs in
        // and fails at once (a refused action, a drop after login) waits
        // longer each time, like a refused connect.
        if shared.healthy.swap(false, Ordering::AcqRel) {
            delay = shared.cfg.reconnect_min;
        }
        // 50-100 % jitter keeps many nodes from reconnecting in lockstep.
        let jitter = rand::thread_rng().gen_range(0.5..1.0);
        let wait = delay.mul_f64(jitter);
        delay = (delay * 2).min(shared.cfg.reconnect_max);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.stop.notified() => break,
        }
    }
    shared.connected.store(false, Ordering::Release);
    *shared.writer.lock().await = None;
    fail_pending(&shared);
}

fn set_text(slot: &StdMutex<Option<String>>, v: Option<String>) {
    if let Ok(mut s) = slot.lock() {
        *s = v;
    }
}

fn get_text(slot: &StdMutex<Option<String>>) -> Option<String> {
    slot.lock().ok().and_then(|s| s.clone())
}

fn fail_pending(shared: &Shared) {
    let drained: Vec<Pending> = match shared.pending.lock() {
        Ok(mut p) => p.drain().map(|(_, v)| v).collect(),
        Err(_) => Vec::new(),
    };
    for p in drained {
        match p {
            Pending::One(tx) => {
                let _ = tx.send(Err(ClientError::Disconnected));
            }
            Pending::Resync { tx, .. } => {
                let _ = tx.send(Err(ClientError::Disconnected));
            }
            Pending::List { tx, .. } => {
                let _ = tx.send(Err(ClientError::Disconnected));
            }
        }
    }
}

async fn connect_and_run(shared: &Arc<Shared>) -> Result<(), ClientError> {
    let url = &shared.cfg.url;
    let addr = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let stream = tokio::time::timeout(shared.cfg.connect_timeout, TcpStream::connect(&addr))
        .await
        .map_err(|_| ClientError::Timeout("connect".into()))?
        .map_err(|e| ClientError::Io(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let heard = shared.last_heard_ms.load(Ordering::Acquire);
    shared.outage_since_ms.store(heard, Ordering::Release);
    let (rd, wr) = stream.into_split();
    *shared.writer.lock().await = Some(wr);
    let client = AmiClient {
        shared: shared.clone(),
    };
    let (banner_tx, banner_rx) = oneshot::channel();
    tokio::select! {
        r = read_loop(shared, rd, banner_tx) => r,
        r = logged_in(&client, banner_rx) => r,
    }
}

/// Reads the greeting and refuses an AMI version Ringside cannot follow,
/// before anything is sent.
async fn greeting(shared: &Shared, banner: oneshot::Receiver<String>) -> Result<(), ClientError> {
    let banner = match tokio::time::timeout(shared.cfg.connect_timeout, banner).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return Err(ClientError::Disconnected),
        Err(_) => {
            return Err(ClientError::Timeout(
                "the greeting (`Asterisk Call Manager/…`)".into(),
            ));
        }
    };
    let version = banner
        .trim()
        .strip_prefix("Asterisk Call Manager/")
        .map(|v| v.trim().to_owned());
    set_text(&shared.version, version);
    match unsupported_version(&banner) {
        Some(version) => {
            let e = ClientError::Unsupported {
                version,
                banner: banner.trim().to_owned(),
            };
            let why = e.to_string();
            if get_text(&shared.unsupported).as_deref() != Some(why.as_str()) {
                tracing::error!(banner = %banner.trim(), "AMI version not supported: {why}");
            } else {
                tracing::warn!(banner = %banner.trim(), "AMI version still not supported");
            }
            set_text(&shared.unsupported, Some(why));
            Err(e)
        }
        None => {
            if get_text(&shared.unsupported).is_some() {
                tracing::info!(banner = %banner.trim(), "Asterisk now announces a supported AMI version");
            }
            set_text(&shared.unsupported, None);
            Ok(())
        }
    }
}

/// Greeting, login, resync, then keep-alive pings (and catch-up resyncs
/// after an overflow) for as long as the socket lives.
async fn logged_in(
    client: &AmiClient,
    banner: oneshot::Receiver<String>,
) -> Result<(), ClientError> {
    let shared = &client.shared;
    greeting(shared, banner).await?;
    let url = &shared.cfg.url;
    let login = Action::new("Login").header("Username", url.user.clone());
    let login = match shared.cfg.auth {
        LoginAuth::Plain => login.header("Secret", url.secret.clone()),
        LoginAuth::Md5 => {
            let answer = client
                .action(Action::new("Challenge").header("AuthType", "md5"))
                .await?;
            let challenge = answer
                .get("Challenge")
                .filter(|c| !c.is_empty())
                .ok_or_else(|| ClientError::Rejected {
                    action: "Challenge".into(),
                    message: "no challenge in the answer".into(),
                })?;
            login
                .header("AuthType", "md5")
                .header("Key", md5_key(challenge, &url.secret))
        }
    };
    client.action(login.header("Events", "on")).await?;
    shared.connected.store(true, Ordering::Release);
    let n = shared.connects.fetch_add(1, Ordering::AcqRel);
    tracing::info!(host = %url.host, port = url.port, reconnect = n > 0, "AMI logged in");
    let cfg = &shared.cfg;
    let mut resync_delay = cfg.reconnect_min;
    let mut resync_at = Some(tokio::time::Instant::now());
    let mut ping_at = tokio::time::Instant::now() + cfg.ping_interval;
    loop {
        if resync_at.is_some_and(|t| t <= tokio::time::Instant::now()) {
            match client.resync().await {
                Ok(()) => {
                    resync_at = None;
                    client.queue_members().await;
                    shared.healthy.store(true, Ordering::Release);
                    if get_text(&shared.degraded).is_some() {
                        tracing::info!("AMI resync allowed now; the link is whole again");
                    }
                    set_text(&shared.degraded, None);
                }
                Err(e @ ClientError::NotPermitted { .. }) => {
                    // Live events still flow: stay logged in, say what is
                    // missing, and ask again later rather than reconnect.
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    let why = format!(
                        "{e}; calls that were up or ended while the link was down cannot be \
                         rebuilt, live calls are still logged"
                    );
                    if get_text(&shared.degraded).as_deref() != Some(why.as_str()) {
                        tracing::error!(error = %e, "AMI link degraded: resync refused");
                    }
                    set_text(&shared.degraded, Some(why));
                    let jitter = rand::thread_rng().gen_range(0.5..1.0);
                    resync_at = Some(tokio::time::Instant::now() + resync_delay.mul_f64(jitter));
                    resync_delay = (resync_delay * 2).min(cfg.reconnect_max);
                }
                Err(e) => return Err(e),
            }
        }
        let wake = resync_at.map_or(ping_at, |r| r.min(ping_at));
        if !shared.overflowed.load(Ordering::Acquire) {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = shared.overflow_wake.notified() => {}
            }
        }
        if shared.overflowed.load(Ordering::Acquire) {
            client.catch_up().await?;
        }
        if ping_at <= tokio::time::Instant::now() {
            client.action(Action::new("Ping")).await?;
            shared.healthy.store(true, Ordering::Release);
            ping_at = tokio::time::Instant::now() + cfg.ping_interval;
        }
    }
}

async fn read_loop(
    shared: &Arc<Shared>,
    mut rd: OwnedReadHalf,
    banner: oneshot::Sender<String>,
) -> Result<(), ClientError> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut dec = Decoder::new();
    let mut banner = Some(banner);
    loop {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let n = rd
            .read_buf(&mut buf)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        shared
            .last_heard_ms
            .store(Utc::now().timestamp_millis(), Ordering::Release);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(Frame::Message(m))) => dispatch(shared, m),
                Ok(Some(Frame::Banner(b))) => {
                    tracing::debug!(banner = %b, "AMI greeting");
                    if let Some(tx) = banner.take() {
                        let _ = tx.send(b);
                    }
                }
                Ok(None) => break,
                Err(e) => tracing::warn!(error = %e, "skipping an AMI message"),
            }
        }
    }
}

fn dispatch(shared: &Shared, m: Message) {
    let is_event = m.event().is_some();
    if let Some(id) = m.action_id()
        && let Ok(mut pending) = shared.pending.lock()
        && let Some(p) = pending.remove(id)
    {
        let id = id.to_owned();
        match p {
            Pending::One(tx) if !is_event => {
                let _ = tx.send(Ok(m));
            }
            Pending::One(tx) => {
                // An event carrying our id (e.g. OriginateResponse): not the answer.
                pending.insert(id, Pending::One(tx));
                drop(pending);
                feed_event(shared, &m);
            }
            Pending::Resync {
                known,
                mut items,
                tx,
            } => {
                if !is_event {
                    if m.response() == Some("Error") {
                        let message = m.get("Message").unwrap_or_default().to_owned();
                        let _ = tx.send(Err(refusal("CoreShowChannels", message)));
                        return;
                    }
                } else if m
                    .get("EventList")
                    .is_some_and(|v| v.eq_ignore_ascii_case("Complete"))
                {
                    drop(pending);
                    let _ = tx.send(Ok(apply_channels(shared, &items, &known)));
                    return;
                } else {
                    items.push(m);
                }
                pending.insert(id, Pending::Resync { known, items, tx });
            }
            Pending::List {
                mut response,
                mut items,
                tx,
            } => {
                if !is_event {
                    if m.response() == Some("Error") {
                        let message = m.get("Message").unwrap_or_default().to_owned();
                        let _ = tx.send(Err(ClientError::Rejected {
                            action: "list".into(),
                            message,
                        }));
                        return;
                    }
                    response = Some(m);
                } else if m
                    .get("EventList")
                    .is_some_and(|v| v.eq_ignore_ascii_case("Complete"))
                {
                    let response = response.unwrap_or(m);
                    let _ = tx.send(Ok(ListAnswer { response, items }));
                    return;
                } else {
                    items.push(m);
                }
                pending.insert(
                    id,
                    Pending::List {
                        response,
                        items,
                        tx,
                    },
                );
            }
        }
        return;
    }
    if is_event {
        feed_event(shared, &m);
    }
}

/// A complete `CoreShowChannels` answer, applied in order with the stream:
/// channels not seen before start their calls at once; the calls whose
/// channels are gone are handed back (their end may come from the CDR).
fn apply_channels(shared: &Shared, items: &[Message], known: &HashSet<String>) -> Vec<CallEvent> {
    let Ok(mut st) = shared.state.lock() else {
        return Vec::new();
    };
    let st = &mut *st;
    let mut out = Vec::new();
    st.mapper.resync(items, known, Utc::now(), &mut out);
    let (gone, now): (Vec<CallEvent>, Vec<CallEvent>) = out
        .into_iter()
        .partition(|e| matches!(e.kind, CallEventKind::Ended { .. }));
    st.events.extend(now);
    emit(shared, st);
    gone
}

fn feed_event(shared: &Shared, m: &Message) {
    if let Some(s) = super::members::signal(m) {
        let _ = shared.agents_tx.send(s);
        return;
    }
    let at = message_time(m).unwrap_or_else(Utc::now);
    let Ok(mut st) = shared.state.lock() else {
        return;
    };
    let st = &mut *st;
    st.mapper.map(m, at, &mut st.events);
    emit(shared, st);
}

fn emit(shared: &Shared, st: &mut CallState) {
    let mut events = std::mem::take(&mut st.events);
    for e in events.drain(..) {
        if let CallEventKind::Started { .. } = e.kind {
            st.seen.insert(&e.call_id);
        }
        st.tracker.feed_into(e, &mut st.moments);
    }
    st.events = events;
    for mo in st.moments.drain(..) {
        match mo {
            Moment::Finished(s) => {
                let _ = shared.finished_tx.send(*s);
            }
            m @ Moment::Merged { .. } => {
                let _ = shared.merged_tx.send(m);
            }
            other => match shared.moments_tx.try_send(other) {
                Ok(()) => note_depth(shared),
                Err(mpsc::error::TrySendError::Full(_)) => count_drop(shared),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            },
        }
    }
}

fn note_depth(shared: &Shared) {
    let tx = &shared.moments_tx;
    let depth = (tx.max_capacity() - tx.capacity()) as u64;
    shared.queue_peak.fetch_max(depth, Ordering::Relaxed);
}

/// A moment found no room: counted, and the session task runs a catch-up.
fn count_drop(shared: &Shared) {
    let n = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
    if !shared.overflowed.swap(true, Ordering::AcqRel) {
        tracing::warn!(
            dropped = n,
            capacity = shared.moments_tx.max_capacity(),
            "the screen-pop queue is full; dropping call events until a resync sends the live calls again"
        );
        shared.overflow_wake.notify_one();
    }
}

/// What a live call looks like now, as the moments that would have told
/// it: its arrival, every phone ringing for it (and the agent who has it,
/// who was rung for it), its answer and who is on it.
fn snapshot(s: &CallSession, out: &mut Vec<Moment>) {
    let call_id = &s.call_id;
    if s.originator.is_none() {
        out.push(Moment::Arrived {
            call_id: call_id.clone(),
            caller: s.caller.clone(),
        });
    }
    let answered = s
        .answered_at
        .is_some()
        .then_some(s.agent.as_ref())
        .flatten();
    for agent in s.ringing_now.iter().chain(answered) {
        out.push(Moment::Ringing {
            call_id: call_id.clone(),
            agent: agent.clone(),
            caller: s.caller.clone(),
            queue: s.queue.clone(),
        });
    }
    if let Some(agent) = answered {
        out.push(Moment::Answered {
            call_id: call_id.clone(),
            agent: Some(agent.clone()),
        });
    }
    out.push(Moment::Parties {
        call_id: call_id.clone(),
        parties: s.shown_parties.clone(),
    });
}

impl AmiClient {
    /// Whether the client is logged in right now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Moments dropped because their consumer was slow (each overflow is
    /// followed by a catch-up resync).
    pub fn dropped_events(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// How many times the client has logged in (1 after the first connect).
    pub fn connects(&self) -> u64 {
        self.shared.connects.load(Ordering::Acquire)
    }

    /// How the link is doing (connected, degraded and why, last error).
    pub fn status(&self) -> LinkStatus {
        let s = &self.shared;
        LinkStatus {
            connected: self.is_connected(),
            logins: self.connects(),
            degraded: get_text(&s.degraded),
            last_error: get_text(&s.last_error),
            refused: s.refused.load(Ordering::Relaxed),
            version: get_text(&s.version),
            unsupported: get_text(&s.unsupported),
            dropped: s.dropped.load(Ordering::Relaxed),
            overflow_resyncs: s.overflow_resyncs.load(Ordering::Relaxed),
            queue_capacity: s.moments_tx.max_capacity(),
            queue_peak: usize::try_from(s.queue_peak.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
        }
    }

    /// Calls in progress as the tracker sees them.
    pub fn live_calls(&self) -> Vec<CallSession> {
        match self.shared.state.lock() {
            Ok(st) => st.tracker.live().cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Stops the connection task and closes the socket.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.stop.notify_waiters();
        self.shared.stop.notify_one();
    }

    fn next_id(&self) -> String {
        format!(
            "ringside-{}",
            self.shared.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn write(&self, action: &Action, id: &str) -> Result<(), ClientError> {
        let mut bytes = BytesMut::new();
        action.encode(id, &mut bytes);
        let mut w = self.shared.writer.lock().await;
        let w = w.as_mut().ok_or(ClientError::NotConnected)?;
        w.write_all(&bytes)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    fn forget(&self, id: &str) {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.remove(id);
        }
    }

    /// Sends an action and waits for its response. `Response: Error` is `Rejected`.
    pub async fn action(&self, action: Action) -> Result<Message, ClientError> {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.shared.pending.lock() {
            p.insert(id.clone(), Pending::One(tx));
        }
        if let Err(e) = self.write(&action, &id).await {
            self.forget(&id);
            return Err(e);
        }
        let res = tokio::time::timeout(self.shared.cfg.action_timeout, rx).await;
        let msg = match res {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(ClientError::Disconnected),
            Err(_) => {
                self.forget(&id);
                return Err(ClientError::Timeout(action.name().to_owned()));
            }
        };
        if msg
            .response()
            .is_some_and(|r| r.eq_ignore_ascii_case("Error"))
        {
            let message = msg.get("Message").unwrap_or_default().to_owned();
            return Err(refusal(action.name(), message));
        }
        Ok(msg)
    }

    /// Sends a list action (`CoreShowChannels`, `QueueStatus`, `Status`…) and
    /// collects its item events up to the `…Complete` event.
    pub async fn list(&self, action: Action) -> Result<ListAnswer, ClientError> {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.shared.pending.lock() {
            p.insert(
                id.clone(),
                Pending::List {
                    response: None,
                    items: Vec::new(),
                    tx,
                },
            );
        }
        if let Err(e) = self.write(&action, &id).await {
            self.forget(&id);
            return Err(e);
        }
        match tokio::time::timeout(self.shared.cfg.action_timeout, rx).await {
            Ok(Ok(r)) => r.map_err(|e| match e {
                ClientError::Rejected { message, .. } => refusal(action.name(), message),
                e => e,
            }),
            Ok(Err(_)) => Err(ClientError::Disconnected),
            Err(_) => {
                self.forget(&id);
                Err(ClientError::Timeout(action.name().to_owned()))
            }
        }
    }

    /// Rebuilds live calls from `CoreShowChannels`: calls that ended while
    /// the link was down are closed (once), calls still up carry on. With a
    /// CDR file, the closed calls get their real end from it and the calls
    /// that started and ended inside the outage are logged from it; without
    /// one (or without their record) closed calls keep uncertain times.
    pub async fn resync(&self) -> Result<(), ClientError> {
        let gone = self.channels().await?;
        let since = match self.shared.outage_since_ms.load(Ordering::Acquire) {
            0 => None,
            ms => chrono::DateTime::from_timestamp_millis(ms),
        };
        let ended: Vec<String> = gone
            .iter()
            .filter(|e| matches!(e.kind, CallEventKind::Ended { .. }))
            .map(|e| e.call_id.clone())
            .collect();
        let records = self.cdr_records(since.is_some(), &ended).await;
        let Ok(mut st) = self.shared.state.lock() else {
            return Ok(());
        };
        let st = &mut *st;
        for e in gone {
            match e.kind {
                CallEventKind::Ended { cause } => match records.get(&e.call_id) {
                    Some(rows) => super::cdr::finish(&e.call_id, rows, &st.mapper, &mut st.events),
                    None => st.events.push(CallEvent {
                        at: since.unwrap_or(e.at),
                        kind: CallEventKind::Lost { cause },
                        call_id: e.call_id,
                    }),
                },
                _ => st.events.push(e),
            }
        }
        if let Some(since) = since {
            // A little before the last message: a call can start as the link goes.
            let from = since - chrono::TimeDelta::seconds(2);
            let mut missed: Vec<(&String, &Vec<super::cdr::CdrRow>)> = records
                .iter()
                .filter(|(id, rows)| {
                    !st.seen.ids.contains(*id)
                        && st.tracker.get(id).is_none()
                        && rows.first().is_some_and(|r| r.start >= from)
                })
                .collect();
            missed.sort_by_key(|(_, rows)| rows.first().map(|r| r.start));
            for (id, rows) in missed {
                tracing::info!(call_id = %id, "logging a call from the CDR that happened while the AMI link was down");
                super::cdr::replay_call(id, rows, &st.mapper, &mut st.events);
            }
        }
        emit(&self.shared, st);
        Ok(())
    }

    /// Asks `CoreShowChannels` and has the reader apply the answer when it
    /// is complete (see [`apply_channels`]); returns the calls found gone.
    async fn channels(&self) -> Result<Vec<CallEvent>, ClientError> {
        let known: HashSet<String> = match self.shared.state.lock() {
            Ok(st) => st.mapper.channel_ids().map(str::to_owned).collect(),
            Err(_) => HashSet::new(),
        };
        let action = Action::new("CoreShowChannels");
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.shared.pending.lock() {
            p.insert(
                id.clone(),
                Pending::Resync {
                    known,
                    items: Vec::new(),
                    tx,
                },
            );
        }
        if let Err(e) = self.write(&action, &id).await {
            self.forget(&id);
            return Err(e);
        }
        match tokio::time::timeout(self.shared.cfg.action_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ClientError::Disconnected),
            Err(_) => {
                self.forget(&id);
                Err(ClientError::Timeout(action.name().to_owned()))
            }
        }
    }

    /// After an overflow of the queue to the screen pops: Asterisk's
    /// channels put the tracker right (`CoreShowChannels`; calls gone are
    /// closed, new ones started; `QueueStatus` names the queue of callers
    /// waiting in one), then every live call's state is sent again, each
    /// call whole and in step with the stream, as the queue makes room.
    /// Pops and states already shown are not repeated (the dispatcher sends
    /// each once). A refused list still leaves the tracker's own view to send.
    async fn catch_up(&self) -> Result<(), ClientError> {
        let shared = &self.shared;
        shared.overflowed.store(false, Ordering::Release);
        let n = shared.overflow_resyncs.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::info!(
            dropped = shared.dropped.load(Ordering::Relaxed),
            resync = n,
            "resyncing after the screen-pop queue overflowed"
        );
        match self.channels().await {
            Ok(gone) => {
                if let Ok(mut st) = shared.state.lock() {
                    let st = &mut *st;
                    for e in gone {
                        let CallEventKind::Ended { cause } = e.kind else {
                            continue;
                        };
                        st.events.push(CallEvent {
                            at: e.at,
                            kind: CallEventKind::Lost { cause },
                            call_id: e.call_id,
                        });
                    }
                    emit(shared, st);
                }
            }
            Err(e @ ClientError::NotPermitted { .. }) | Err(e @ ClientError::Rejected { .. }) => {
                tracing::warn!(error = %e, "catch-up without Asterisk's channel list");
            }
            Err(e) => return Err(e),
        }
        self.queue_status().await?;
        let calls: Vec<String> = match shared.state.lock() {
            Ok(st) => st.tracker.live().map(|s| s.call_id.clone()).collect(),
            Err(_) => Vec::new(),
        };
        let mut moments = Vec::new();
        for call in calls {
            let mut room = 0;
            loop {
                let permits = if room == 0 {
                    None
                } else {
                    match shared.moments_tx.reserve_many(room).await {
                        Ok(p) => Some(p),
                        Err(_) => return Ok(()),
                    }
                };
                let Ok(st) = shared.state.lock() else {
                    return Ok(());
                };
                let Some(s) = st.tracker.get(&call) else {
                    break;
                };
                moments.clear();
                snapshot(s, &mut moments);
                match permits {
                    Some(permits) if moments.len() <= room => {
                        for (permit, m) in permits.zip(moments.drain(..)) {
                            permit.send(m);
                        }
                        note_depth(shared);
                        break;
                    }
                    _ => room = moments.len().min(shared.moments_tx.max_capacity()),
                }
            }
        }
        Ok(())
    }

    /// `QueueStatus`: the callers waiting in queues, so a call the tracker
    /// has without its queue (its join was not seen) gets it.
    async fn queue_status(&self) -> Result<(), ClientError> {
        let answer = match self.list(Action::new("QueueStatus")).await {
            Ok(a) => a,
            Err(e @ (ClientError::NotPermitted { .. } | ClientError::Rejected { .. })) => {
                tracing::warn!(error = %e, "catch-up without the queues' callers");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let shared = &self.shared;
        let Ok(mut st) = shared.state.lock() else {
            return Ok(());
        };
        let st = &mut *st;
        let now = Utc::now();
        for entry in answer
            .items
            .iter()
            .filter(|m| m.event() == Some("QueueEntry"))
        {
            let (Some(queue), Some(call)) = (
                entry.get("Queue"),
                entry
                    .get("Uniqueid")
                    .and_then(|u| st.mapper.call_of_channel(u)),
            ) else {
                continue;
            };
            if st.tracker.get(call).is_some_and(|s| s.queue.is_none()) {
                st.events.push(CallEvent {
                    call_id: call.to_owned(),
                    at: now,
                    kind: CallEventKind::Queued {
                        queue: queue.to_owned(),
                    },
                });
            }
        }
        emit(shared, st);
        Ok(())
    }

    /// The CDR records written since the last look, by call. On the first
    /// connection the file's past is skipped; after an outage, calls that
    /// ended just before the reconnect get a moment for their record.
    /// Learns every queue member (`QueueStatus`); a refusal is logged, the
    /// live `QueueMember*` events still keep the map.
    async fn queue_members(&self) {
        match self.list(Action::new("QueueStatus")).await {
            Ok(answer) => {
                let all = answer
                    .items
                    .iter()
                    .filter(|m| m.event() == Some("QueueMember"))
                    .filter_map(super::members::member)
                    .collect();
                let _ = self
                    .shared
                    .agents_tx
                    .send(crate::presence::PbxSignal::Members(all));
            }
            Err(e) => {
                tracing::warn!(error = %e, "queue members not read; live member events still are")
            }
        }
    }

    async fn cdr_records(
        &self,
        after_outage: bool,
        ended: &[String],
    ) -> HashMap<String, Vec<super::cdr::CdrRow>> {
        let mut guard = self.shared.cdr.lock().await;
        let Some(file) = guard.as_mut() else {
            return HashMap::new();
        };
        if !after_outage {
            file.skip_to_end().await;
            return HashMap::new();
        }
        let mut records = file.read_new().await;
        let deadline = tokio::time::Instant::now() + self.shared.cfg.cdr_wait;
        while ended.iter().any(|id| !records.contains_key(id))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for (id, rows) in file.read_new().await {
                let all = records.entry(id).or_default();
                all.extend(rows);
                all.sort_by(|a, b| a.start.cmp(&b.start).then(a.sequence.cmp(&b.sequence)));
            }
        }
        records
    }

    /// Click-to-call: rings the agent's phone first; when the agent answers,
    /// Asterisk dials `number` from `context`. Returns once queued.
    pub async fn originate_click_to_call(
        &self,
        agent_channel: &str,
        number: &str,
        context: &str,
        caller_id: &str,
        variables: &[(&str, &str)],
    ) -> Result<Message, ClientError> {
        let mut a = Action::new("Originate")
            .header("Channel", agent_channel)
            .header("Context", context)
            .header("Exten", number)
            .header("Priority", "1")
            .header("CallerID", caller_id)
            .header("Timeout", "30000")
            .header("Async", "true");
        for (k, v) in variables {
            a = a.header("Variable", format!("{k}={v}"));
        }
        self.action(a).await
    }

    /// Blind transfer: sends `channel` (the customer's leg) to `exten@context`.
    pub async fn blind_transfer(
        &self,
        channel: &str,
        exten: &str,
        context: &str,
    ) -> Result<Message, ClientError> {
        self.action(
            Action::new("Redirect")
                .header("Channel", channel)
                .header("Exten", exten)
                .header("Context", context)
                .header("Priority", "1"),
        )
        .await
    }

    /// Starts recording `channel` to `file` (MixMonitor options, e.g. `b`).
    pub async fn mix_monitor(
        &self,
        channel: &str,
        file: &str,
        options: &str,
    ) -> Result<Message, ClientError> {
        let mut a = Action::new("MixMonitor")
            .header("Channel", channel)
            .header("File", file);
        if !options.is_empty() {
            a = a.header("Options", options);
        }
        self.action(a).await
    }

    pub async fn stop_mix_monitor(&self, channel: &str) -> Result<Message, ClientError> {
        self.action(Action::new("StopMixMonitor").header("Channel", channel))
            .await
    }

    /// Pauses or resumes a queue member (all queues when `queue` is None).
    pub async fn queue_pause(
        &self,
        interface: &str,
        queue: Option<&str>,
        paused: bool,
        reason: Option<&str>,
    ) -> Result<Message, ClientError> {
        let mut a = Action::new("QueuePause")
            .header("Interface", interface)
            .header("Paused", if paused { "true" } else { "false" });
        if let Some(q) = queue {
            a = a.header("Queue", q);
        }
        if let Some(r) = reason {
            a = a.header("Reason", r);
        }
        self.action(a).await
    }

    /// Rings the supervisor's phone and, when answered, spies on `target`
    /// (a channel name or prefix such as `PJSIP/101`).
    pub async fn spy(
        &self,
        supervisor_channel: &str,
        target: &str,
        mode: SpyMode,
    ) -> Result<Message, ClientError> {
        let opts = match mode {
            SpyMode::Listen => "q",
            SpyMode::Whisper => "qw",
            SpyMode::Barge => "qB",
        };
        self.action(
            Action::new("Originate")
                .header("Channel", supervisor_channel)
                .header("Application", "ChanSpy")
                .header("Data", format!("{target},{opts}"))
                .header("CallerID", "\"Supervisor\" <spy>")
                .header("Async", "true"),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ami_urls() {
        let u: AmiUrl = "ami://crm:s3cret@pbx.local:5038".parse().expect("valid");
        assert_eq!((u.user.as_str(), u.secret.as_str()), ("crm", "s3cret"));
        assert_eq!((u.host.as_str(), u.port), ("pbx.local", 5038));
        let u: AmiUrl = "ami://crm:p%40ss:w@10.0.0.1".parse().expect("valid");
        assert_eq!((u.secret.as_str(), u.port), ("p@ss:w", 5038));
        let u: AmiUrl = "ami://crm:x@[::1]:6000/".parse().expect("valid");
        assert_eq!((u.host.as_str(), u.port), ("::1", 6000));
        assert!(!format!("{u:?}").contains('x'), "secret must not be logged");
    }

    #[test]
    fn config_from_app_settings() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let file = tmp.path().join("ringside.toml");
        std::fs::write(&file, "[phones]\ninternal_max_digits = 3\n").expect("write config");
        let env = |url: &str| vec![("RINGSIDE_AMI_URL".to_owned(), url.to_owned())];
        let config = crate::config::Config::load_from(Some(&file), &env("ami://crm:pw@pbx:5039"))
            .expect("config loads");
        let cfg = ClientConfig::from_config(&config)
            .expect("valid URL")
            .expect("AMI configured");
        assert_eq!((cfg.url.host.as_str(), cfg.url.port), ("pbx", 5039));
        assert_eq!(cfg.mapper.max_extension_digits, 3);
        let none = crate::config::Config::load_from(Some(&file), &[]).expect("config loads");
        assert!(
            ClientConfig::from_config(&none)
                .expect("no URL is fine")
                .is_none()
        );
    }

    #[test]
    fn rejects_bad_ami_urls() {
        let e = |s: &str| s.parse::<AmiUrl>().err();
        assert_eq!(e("http://a:b@h"), Some(AmiUrlError::Scheme("http".into())));
        assert_eq!(e("ami://host:5038"), Some(AmiUrlError::MissingCredentials));
        assert_eq!(e("ami://:b@h"), Some(AmiUrlError::EmptyUser));
        assert_eq!(e("ami://a:b@:5038"), Some(AmiUrlError::EmptyHost));
        assert_eq!(e("ami://a:b@h:0"), Some(AmiUrlError::Port("0".into())));
        assert_eq!(
            e("ami://a:b@h:99999"),
            Some(AmiUrlError::Port("99999".into()))
        );
        assert_eq!(e("ami://a:%zz@h"), Some(AmiUrlError::Escape("%zz".into())));
        assert_eq!(e("ami://a:b@h/x"), Some(AmiUrlError::Path("/x".into())));
    }
}
