//! A fake Asterisk Manager for tests and the demo: it listens on TCP, greets
//! with the banner, checks Login, answers Ping, CoreShowChannels and other
//! actions, and streams the events of a transcript at full speed or at the
//! recorded pace. It can drop the connection at chosen points (optionally
//! "losing" the events that happen while no one is connected) and accepts the
//! reconnect, and it can be shut down and started again on the same port with
//! the same script, like an Asterisk restart seen from the CRM. It can refuse
//! chosen actions with `Permission denied`, like an account without the
//! action's privilege class, greet with another version's banner (an
//! Asterisk 11 says `Asterisk Call Manager/1.3`), and hold its events back
//! until the test lets them go.
//!
//! Owns only the imitation of Asterisk; it must not share code paths with the
//! client beyond the codec, so tests exercise the client against the wire.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;

use super::codec::{Decoder, Frame, Message};
use super::synth::events_with_times;

/// How fast events are streamed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the socket takes them.
    Full,
    /// At the recorded pace divided by `speed` (2.0 = twice as fast).
    Recorded { speed: f64 },
}

/// Where to cut the connection, counted in events streamed from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropPoint {
    pub after_events: usize,
    /// Events that "happen" while no one is connected: they change the
    /// fake's channel table but are never sent.
    pub lose_events: usize,
}

/// What the fake plays and whom it lets in.
#[derive(Debug, Clone)]
pub struct FakeScript {
    pub user: String,
    pub secret: String,
    /// Events with their time in ns since the capture start.
    pub events: Vec<(u64, Message)>,
    pub pace: Pace,
    pub drops: Vec<DropPoint>,
    /// Actions answered `Response: Error` with this `Message`, by action
    /// name compared ignoring case (`("Originate", "Extension does not
    /// exist.")`, `("CoreShowChannels", "Permission denied")`), as Asterisk
    /// answers what its dialplan or the account's classes do not allow.
    pub refusals: Vec<(String, String)>,
    /// The greeting line sent on connect (without its line end), as
    /// Asterisk announces its AMI version: `Asterisk Call Manager/11.0.0`
    /// (Asterisk 22), `Asterisk Call Manager/2.10.4` (13),
    /// `Asterisk Call Manager/1.3` (11).
    pub banner: String,
    /// Hold the events back after login until [`FakeState::release`], so a
    /// test can open its tabs first; the script then streams as paced.
    pub held: bool,
}

impl FakeScript {
    /// A script from a transcript and its `.times` (responses to the
    /// capturing client's own actions are left out).
    pub fn from_transcript(ami: &[u8], times: &str) -> Self {
        FakeScript {
            user: "crm".into(),
            secret: "secret".into(),
            events: events_with_times(ami, times),
            pace: Pace::Full,
            drops: Vec::new(),
            refusals: Vec::new(),
            banner: DEFAULT_BANNER.into(),
            held: false,
        }
    }
}

/// What Asterisk 22 says on connect.
pub const DEFAULT_BANNER: &str = "Asterisk Call Manager/11.0.0";

/// A demo stream for `ringside demo`: `copies` rounds of the captured calls
/// (direct, queue, abandoned, busy, click-to-call), renumbered, a new call
/// every `every`, played at the recorded pace.
pub fn demo_script(copies: usize, every: Duration) -> FakeScript {
    macro_rules! fx {
        ($n:literal) => {
            (
                &include_bytes!(concat!("../../../tests/fixtures/ami/", $n, ".ami"))[..],
                include_str!(concat!("../../../tests/fixtures/ami/", $n, ".times")),
            )
        };
    }
    let sources = [
        fx!("direct_answered"),
        fx!("queue_answered"),
        fx!("queue_abandoned"),
        fx!("direct_busy"),
        fx!("click_to_call"),
    ];
    let stagger = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX);
    let t = super::synth::interleave(&sources, copies, stagger);
    let mut script = FakeScript::from_transcript(&t.ami, &t.times);
    script.pace = Pace::Recorded { speed: 1.0 };
    script
}

#[derive(Debug)]
struct Progress {
    cursor: usize,
    drops: Vec<DropPoint>,
    /// Live channels by Uniqueid, as CoreShowChannels reports them.
    channels: BTreeMap<String, Vec<(String, String)>>,
    actions: Vec<Message>,
    /// TCP connections accepted, logged in or not.
    connections: usize,
}

/// State shared by every incarnation of a fake server (survives restarts).
#[derive(Debug)]
pub struct FakeState {
    script: FakeScript,
    progress: StdMutex<Progress>,
    done_tx: watch::Sender<bool>,
    /// `true` once the events may flow (at once unless the script is held).
    release_tx: watch::Sender<bool>,
}

impl FakeState {
    pub fn new(script: FakeScript) -> Arc<Self> {
        let mut drops = script.drops.clone();
        drops.sort_by_key(|d| d.after_events);
        Arc::new(FakeState {
            progress: StdMutex::new(Progress {
                cursor: 0,
                drops,
                channels: BTreeMap::new(),
                actions: Vec::new(),
                connections: 0,
            }),
            release_tx: watch::channel(!script.held).0,
            script,
            done_tx: watch::channel(false).0,
        })
    }

    /// Lets a held script stream its events.
    pub fn release(&self) {
        self.release_tx.send_replace(true);
    }

    /// TCP connections accepted so far (a client that refuses the
    /// greeting connects without logging in).
    pub fn connections(&self) -> usize {
        self.progress.lock().map(|p| p.connections).unwrap_or(0)
    }

    /// Events streamed (or lost) so far.
    pub fn position(&self) -> usize {
        self.progress.lock().map(|p| p.cursor).unwrap_or(0)
    }

    /// Actions received from clients, in order (Login secrets included).
    pub fn actions(&self) -> Vec<Message> {
        self.progress
            .lock()
            .map(|p| p.actions.clone())
            .unwrap_or_default()
    }

    /// How many times `action` was received (any connection, ignoring case).
    pub fn count(&self, action: &str) -> usize {
        self.progress
            .lock()
            .map(|p| {
                p.actions
                    .iter()
                    .filter(|a| {
                        a.get("Action")
                            .is_some_and(|n| n.eq_ignore_ascii_case(action))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Waits until every event of the script has been streamed or lost.
    pub async fn finished(&self) {
        let mut rx = self.done_tx.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The fake's MD5 login challenge (fixed: it is a test double).
const CHALLENGE: &str = "840415273";

const CHANNEL_FIELDS: &[&str] = &[
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
];

fn track(channels: &mut BTreeMap<String, Vec<(String, String)>>, m: &Message) {
    let (Some(event), Some(uid)) = (m.event(), m.get("Uniqueid")) else {
        return;
    };
    if event == "Hangup" {
        channels.remove(uid);
        return;
    }
    if m.get("Channel").is_none() {
        return;
    }
    let fields = CHANNEL_FIELDS
        .iter()
        .filter_map(|k| m.get(k).map(|v| ((*k).to_owned(), v.to_owned())))
        .collect();
    if event == "Newchannel" || channels.contains_key(uid) {
        channels.insert(uid.to_owned(), fields);
    }
}

/// A running fake server.
pub struct FakeAmi {
    addr: SocketAddr,
    state: Arc<FakeState>,
    task: JoinHandle<()>,
    stop: Arc<Notify>,
}

impl FakeAmi {
    /// Starts on a free localhost port.
    pub async fn start(script: FakeScript) -> std::io::Result<FakeAmi> {
        Self::start_on(
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            FakeState::new(script),
        )
        .await
    }

    /// Starts on `addr` with existing state (to "restart" a stopped fake).
    pub async fn start_on(addr: SocketAddr, state: Arc<FakeState>) -> std::io::Result<FakeAmi> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(serve(listener, state.clone(), stop.clone()));
        Ok(FakeAmi {
            addr,
            state,
            task,
            stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ami://user:secret@127.0.0.1:port` for the client.
    pub fn url(&self) -> String {
        let s = &self.state.script;
        format!("ami://{}:{}@{}", s.user, s.secret, self.addr)
    }

    pub fn state(&self) -> Arc<FakeState> {
        self.state.clone()
    }

    /// Stops listening and closes every connection (like Asterisk dying).
    pub async fn shutdown(self) {
        self.stop.notify_waiters();
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn serve(listener: TcpListener, state: Arc<FakeState>, stop: Arc<Notify>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((sock, _)) = accepted {
                    conns.spawn(connection(sock, state.clone()));
                }
            }
            _ = stop.notified() => break,
        }
    }
    conns.abort_all();
}

async fn connection(sock: TcpStream, state: Arc<FakeState>) {
    let _ = sock.set_nodelay(true);
    if let Ok(mut p) = state.progress.lock() {
        p.connections += 1;
    }
    let (mut rd, wr) = sock.into_split();
    let wr = Arc::new(Mutex::new(wr));
    let banner = format!("{}\r\n", state.script.banner);
    if wr.lock().await.write_all(banner.as_bytes()).await.is_err() {
        return;
    }
    let mut buf = BytesMut::with_capacity(4096);
    let mut dec = Decoder::new();
    let mut streamer: Option<JoinHandle<()>> = None;
    let mut challenged = false;
    let hang_up = Arc::new(Notify::new());
    'read: loop {
        tokio::select! {
            n = rd.read_buf(&mut buf) => {
                match n {
                    Ok(0) | Err(_) => break 'read,
                    Ok(_) => {}
                }
            }
            _ = hang_up.notified() => {
                // The stream was cut (FIN sent). Closing now with the
                // client's actions unread would send a reset, and a reset
                // throws away what the client has not read yet: the events
                // before the cut. Read on until the client closes its side.
                let mut sink = [0u8; 4096];
                let drain = async {
                    while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
                };
                let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
                break 'read;
            }
        }
        while let Ok(Some(frame)) = dec.decode(&mut buf) {
            let Frame::Message(m) = frame else { continue };
            if let Ok(mut p) = state.progress.lock() {
                p.actions.push(m.clone());
            }
            let action = m.get("Action").unwrap_or_default().to_ascii_lowercase();
            let id = m.action_id().unwrap_or_default().to_owned();
            let mut w = wr.lock().await;
            let refusal = state
                .script
                .refusals
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(&action))
                .map(|(_, message)| message.as_str());
            if let Some(message) = refusal {
                if w.write_all(&reply(&id, "Error", &[("Message", message)]))
                    .await
                    .is_err()
                {
                    break 'read;
                }
                continue;
            }
            let ok = match action.as_str() {
                "login" => {
                    let s = &state.script;
                    let key = super::client::md5_key(CHALLENGE, &s.secret);
                    let good = m.get("Username") == Some(s.user.as_str())
                        && match m.get("AuthType") {
                            Some(t) if t.eq_ignore_ascii_case("md5") => {
                                challenged && m.get("Key") == Some(key.as_str())
                            }
                            _ => m.get("Secret") == Some(s.secret.as_str()),
                        };
                    if good {
                        let r = reply(&id, "Success", &[("Message", "Authentication accepted")]);
                        let sent = w.write_all(&r).await.is_ok();
                        if streamer.is_none() {
                            streamer = Some(tokio::spawn(stream(
                                state.clone(),
                                wr.clone(),
                                hang_up.clone(),
                            )));
                        }
                        sent
                    } else {
                        let r = reply(&id, "Error", &[("Message", "Authentication failed")]);
                        let _ = w.write_all(&r).await;
                        false
                    }
                }
                "challenge" => {
                    challenged = true;
                    w.write_all(&reply(&id, "Success", &[("Challenge", CHALLENGE)]))
                        .await
                        .is_ok()
                }
                "ping" => w
                    .write_all(&reply(&id, "Success", &[("Ping", "Pong")]))
                    .await
                    .is_ok(),
                "logoff" => {
                    let _ = w
                        .write_all(&reply(
                            &id,
                            "Goodbye",
                            &[("Message", "Thanks for all the fish.")],
                        ))
                        .await;
                    false
                }
                "coreshowchannels" => {
                    let out = core_show_channels(&state, &id);
                    w.write_all(&out).await.is_ok()
                }
                "queuestatus" | "status" | "queuesummary" => {
                    // Lists the fake has nothing for: an empty, well-formed list.
                    let name = m.get("Action").unwrap_or_default();
                    w.write_all(&empty_list(&id, name)).await.is_ok()
                }
                _ => {
                    let msg = format!("Fake accepted {}", m.get("Action").unwrap_or_default());
                    w.write_all(&reply(&id, "Success", &[("Message", &msg)]))
                        .await
                        .is_ok()
                }
            };
            if !ok {
                break 'read;
            }
        }
    }
    if let Some(s) = streamer {
        s.abort();
    }
    let _ = wr.lock().await.shutdown().await;
}

fn reply(id: &str, response: &str, extra: &[(&str, &str)]) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_slice(format!("Response: {response}\r\n").as_bytes());
    if !id.is_empty() {
        out.put_slice(format!("ActionID: {id}\r\n").as_bytes());
    }
    for (k, v) in extra {
        out.put_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.put_slice(b"\r\n");
    out
}

fn empty_list(id: &str, action: &str) -> BytesMut {
    let mut out = reply(
        id,
        "Success",
        &[("EventList", "start"), ("Message", "List will follow")],
    );
    out.put_slice(
        format!("Event: {action}Complete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n")
            .as_bytes(),
    );
    out
}

fn core_show_channels(state: &FakeState, id: &str) -> BytesMut {
    let mut out = reply(
        id,
        "Success",
        &[("EventList", "start"), ("Message", "Channels will follow")],
    );
    let chans: Vec<Vec<(String, String)>> = state
        .progress
        .lock()
        .map(|p| p.channels.values().cloned().collect())
        .unwrap_or_default();
    for c in &chans {
        out.put_slice(b"Event: CoreShowChannel\r\n");
        out.put_slice(format!("ActionID: {id}\r\n").as_bytes());
        for (k, v) in c {
            out.put_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.put_slice(b"Duration: 00:00:01\r\nBridgeId: \r\n\r\n");
    }
    out.put_slice(
        format!(
            "Event: CoreShowChannelsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n\r\n",
            chans.len()
        )
        .as_bytes(),
    );
    out
}

/// Streams script events from the shared cursor until the end or a drop point.
async fn stream(state: Arc<FakeState>, wr: Arc<Mutex<OwnedWriteHalf>>, hang_up: Arc<Notify>) {
    let mut released = state.release_tx.subscribe();
    while !*released.borrow_and_update() {
        if released.changed().await.is_err() {
            return;
        }
    }
    let mut prev_t: Option<u64> = None;
    loop {
        let (t, speed_wait) = {
            let Ok(p) = state.progress.lock() else { return };
            match state.script.events.get(p.cursor) {
                Some((t, _)) => (*t, state.script.pace),
                None => {
                    state.done_tx.send_replace(true);
                    return;
                }
            }
        };
        if let (Pace::Recorded { speed }, Some(prev)) = (speed_wait, prev_t) {
            let gap = t.saturating_sub(prev) as f64 / speed.max(0.001);
            tokio::time::sleep(Duration::from_nanos(gap as u64)).await;
        }
        prev_t = Some(t);
        let mut w = wr.lock().await;
        // Advance under the writer lock so CoreShowChannels answers always
        // agree with what this connection has been sent.
        let (bytes, cut) = {
            let Ok(mut p) = state.progress.lock() else {
                return;
            };
            let i = p.cursor;
            let Some((_, m)) = state.script.events.get(i) else {
                continue;
            };
            track(&mut p.channels, m);
            p.cursor += 1;
            let mut cut = None;
            if p.drops.first().is_some_and(|d| d.after_events <= p.cursor) {
                let d = p.drops.remove(0);
                for _ in 0..d.lose_events {
                    let Some((_, lost)) = state.script.events.get(p.cursor) else {
                        break;
                    };
                    track(&mut p.channels, lost);
                    p.cursor += 1;
                }
                cut = Some(d);
            }
            (m.as_bytes().to_vec(), cut)
        };
        if w.write_all(&bytes).await.is_err() {
            return;
        }
        if cut.is_some() {
            let _ = w.shutdown().await;
            hang_up.notify_one();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_script_has_every_call_renumbered() {
        let s = demo_script(3, Duration::from_secs(2));
        let starts: std::collections::HashSet<_> = s
            .events
            .iter()
            .filter(|(_, m)| {
                m.event() == Some("Newchannel") && m.get("Uniqueid") == m.get("Linkedid")
            })
            .filter_map(|(_, m)| m.get("Linkedid"))
            .collect();
        assert_eq!(starts.len(), 15);
        assert!(
            s.events.windows(2).all(|w| w[0].0 <= w[1].0),
            "events in time order"
        );
        assert_eq!(s.pace, Pace::Recorded { speed: 1.0 });
    }
}
