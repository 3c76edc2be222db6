//! The push hub: messages addressed to users, not sockets. Every open tab of
//! a user gets each message; each user's stream carries a `seq` that grows by
//! one per message, and the last 1,000 messages (10 minutes at most) are kept
//! so a tab that reconnects with `after=SEQ` gets exactly what it missed.
//!
//! Owns sequencing, the replay window and fan-out. Single node: all in
//! memory. With Redis: `seq` comes from `INCR` (gap-free across nodes), the
//! window is a capped Redis list, and every node delivers what it reads from
//! one pub/sub channel, so a tab on node B gets pops for calls seen by node A.
//! What a message says is the business of its sender (`dispatch`).

pub mod redis_link;
pub mod ws;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use redis_link::RedisLink;

/// How many messages per user a reconnecting tab can catch up on.
pub const WINDOW_MESSAGES: usize = 1_000;
/// How old a message may be and still be replayed.
pub const WINDOW_AGE: Duration = Duration::from_secs(10 * 60);

/// One message as it goes on the wire.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub text: Utf8Bytes,
    born: Instant,
}

/// The message that tells a user's tabs their account's sessions ended
/// (deactivated, or a new password set): every node closes their tabs on it.
pub const SESSION_ENDED: &str = "session.ended";

impl Frame {
    /// Whether this is a [`SESSION_ENDED`] message (its type follows `seq`).
    pub fn ends_session(&self) -> bool {
        self.text
            .as_str()
            .split_once(',')
            .is_some_and(|(_, rest)| rest.starts_with("\"type\":\"session.ended\""))
    }
}

#[derive(Default)]
struct Stream {
    next_seq: u64,
    backlog: VecDeque<Frame>,
    tx: Option<broadcast::Sender<Frame>>,
}

impl Stream {
    fn tx(&mut self) -> &broadcast::Sender<Frame> {
        self.tx.get_or_insert_with(|| broadcast::channel(64).0)
    }

    fn keep(&mut self, frame: Frame) {
        if self.backlog.back().is_some_and(|f| f.seq >= frame.seq) {
            return; // already have it (a message can arrive twice over Redis)
        }
        self.next_seq = self.next_seq.max(frame.seq);
        self.backlog.push_back(frame.clone());
        while self.backlog.len() > WINDOW_MESSAGES
            || self
                .backlog
                .front()
                .is_some_and(|f| f.born.elapsed() > WINDOW_AGE)
        {
            self.backlog.pop_front();
        }
        let _ = self.tx().send(frame);
    }
}

/// What a tab gets when it (re)connects.
pub struct Subscription {
    pub live: broadcast::Receiver<Frame>,
    /// Messages after the asked-for `seq`, oldest first.
    pub missed: Vec<Frame>,
    /// The newest `seq` of the user's stream.
    pub last_seq: u64,
    /// Set when some asked-for messages are no longer kept: the oldest kept.
    pub gap: Option<u64>,
}

struct Inner {
    streams: Mutex<HashMap<i64, Stream>>,
    online: Mutex<HashMap<i64, usize>>,
    redis: Option<RedisLink>,
}

/// Cheap to clone; one per process.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// An in-process hub (one node).
    pub fn local() -> Hub {
        Hub {
            inner: Arc::new(Inner {
                streams: Mutex::new(HashMap::new()),
                online: Mutex::new(HashMap::new()),
                redis: None,
            }),
        }
    }

    /// A hub that shares streams with the other nodes of its deployment
    /// (those with the same `prefix`) through Redis.
    pub async fn with_redis(url: &str, prefix: &str) -> anyhow::Result<Hub> {
        let link = RedisLink::connect(url, prefix).await?;
        let hub = Hub {
            inner: Arc::new(Inner {
                streams: Mutex::new(HashMap::new()),
                online: Mutex::new(HashMap::new()),
                redis: Some(link.clone()),
            }),
        };
        link.spawn_subscriber(hub.clone()).await?;
        Ok(hub)
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Stream>> {
        self.inner.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `{"type": kind, "at": now, ...payload}` to every tab of `user`;
    /// returns its `seq`. With Redis, `once` (if given) makes the message go
    /// out once however many nodes try to send it (nodes sharing one PBX).
    pub async fn send(&self, user: i64, kind: &str, payload: Value, once: Option<&str>) -> u64 {
        let body = body_after_seq(kind, payload);
        self.send_body(user, &body, once).await
    }

    /// Like [`Hub::send`] with the payload already serialized, so a message
    /// that goes to several users is serialized once: `fields` is the inside
    /// of a JSON object (`"a":1,"b":[2]`) with no `seq`, `type` or `at`.
    pub async fn send_fields(
        &self,
        user: i64,
        kind: &str,
        fields: &str,
        once: Option<&str>,
    ) -> u64 {
        let body = body_with_fields(kind, fields);
        self.send_body(user, &body, once).await
    }

    async fn send_body(&self, user: i64, body: &str, once: Option<&str>) -> u64 {
        match &self.inner.redis {
            Some(link) => match link.publish(user, body, once).await {
                Ok(seq) => seq,
                Err(e) => {
                    tracing::warn!(user, error = %e, "push through Redis failed; delivering here only");
                    self.send_here(user, body)
                }
            },
            None => self.send_here(user, body),
        }
    }

    fn send_here(&self, user: i64, body: &str) -> u64 {
        let mut streams = self.streams();
        let stream = streams.entry(user).or_default();
        let seq = stream.next_seq + 1;
        stream.keep(frame(seq, body));
        seq
    }

    /// Takes a message another node published (or this one, through Redis).
    pub(crate) fn deliver(&self, user: i64, seq: u64, text: String) {
        let mut streams = self.streams();
        let stream = streams.entry(user).or_default();
        stream.keep(frame_text(seq, text));
    }

    /// Starts listening for `user` and collects what came after `after`.
    pub async fn subscribe(&self, user: i64, after: Option<u64>) -> Subscription {
        let (live, mut all, mut last_seq) = {
            let mut streams = self.streams();
            let stream = streams.entry(user).or_default();
            let live = stream.tx().subscribe();
            let all: Vec<Frame> = match after {
                Some(_) => stream.backlog.iter().cloned().collect(),
                None => Vec::new(),
            };
            (live, all, stream.next_seq)
        };
        if let Some(link) = &self.inner.redis {
            match link.window(user).await {
                Ok((last, frames)) => {
                    last_seq = last_seq.max(last);
                    if after.is_some() {
                        all = frames.into_iter().map(|(s, t)| frame_text(s, t)).collect();
                    }
                }
                Err(e) => tracing::warn!(user, error = %e, "replay window from Redis unavailable"),
            }
        }
        let (missed, gap) = match after {
            None => (Vec::new(), None),
            Some(a) if a > last_seq => {
                // The stream was reset (a restart without Redis): start over.
                let first = all.first().map_or(last_seq + 1, |f| f.seq);
                (all, Some(first))
            }
            Some(a) => {
                let missed: Vec<Frame> = all.into_iter().filter(|f| f.seq > a).collect();
                let first = missed.first().map_or(last_seq + 1, |f| f.seq);
                let gap = (a < last_seq && first > a + 1).then_some(first);
                (missed, gap)
            }
        };
        Subscription {
            live,
            missed,
            last_seq,
            gap,
        }
    }

    /// Closes every tab the user has open, on every node: each tab gets
    /// `session.ended` and is closed; one that connects again needs a valid
    /// token.
    pub async fn end_sessions(&self, user: i64) {
        self.send_fields(user, SESSION_ENDED, "", None).await;
        // This node's tabs at once, even when Redis is slow to hand it back.
        if let Some(stream) = self.streams().get_mut(&user) {
            stream.tx = None;
        }
    }

    /// Counts an open tab; returns how many the user has now.
    pub fn connected(&self, user: i64) -> usize {
        let mut online = self.inner.online.lock().unwrap_or_else(|p| p.into_inner());
        let n = online.entry(user).or_default();
        *n += 1;
        *n
    }

    /// Counts a closed tab; returns how many the user still has.
    pub fn disconnected(&self, user: i64) -> usize {
        let mut online = self.inner.online.lock().unwrap_or_else(|p| p.into_inner());
        let n = online.entry(user).or_default();
        *n = n.saturating_sub(1);
        let left = *n;
        if left == 0 {
            online.remove(&user);
        }
        left
    }

    /// How many tabs a user has open on this node.
    pub fn tabs(&self, user: i64) -> usize {
        let online = self.inner.online.lock().unwrap_or_else(|p| p.into_inner());
        online.get(&user).copied().unwrap_or(0)
    }
}

fn frame(seq: u64, body: &str) -> Frame {
    frame_text(seq, format!("{{\"seq\":{seq},{body}"))
}

fn frame_text(seq: u64, text: String) -> Frame {
    Frame {
        seq,
        text: Utf8Bytes::from(text),
        born: Instant::now(),
    }
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `body_after_seq` for fields serialized by the sender.
fn body_with_fields(kind: &str, fields: &str) -> String {
    let kind = Value::String(kind.to_owned());
    let sep = if fields.is_empty() { "" } else { "," };
    format!("\"type\":{kind},\"at\":\"{}\"{sep}{fields}}}", now_text())
}

/// The JSON object without its opening brace, so `seq` can be put first.
fn body_after_seq(kind: &str, payload: Value) -> String {
    let mut map = Map::new();
    map.insert("type".into(), Value::String(kind.to_owned()));
    map.insert("at".into(), Value::String(now_text()));
    match payload {
        Value::Object(fields) => {
            for (k, v) in fields {
                if k != "seq" && k != "type" {
                    map.insert(k, v);
                }
            }
        }
        Value::Null => {}
        other => {
            map.insert("data".into(), other);
        }
    }
    let text = Value::Object(map).to_string();
    text[1..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn seq_grows_by_one_and_replays_what_was_missed() {
        let hub = Hub::local();
        for i in 0..5 {
            assert_eq!(hub.send(7, "x", json!({"i": i}), None).await, i + 1);
        }
        let sub = hub.subscribe(7, Some(3)).await;
        let seqs: Vec<u64> = sub.missed.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, [4, 5]);
        assert_eq!(sub.gap, None);
        let v: Value = serde_json::from_str(sub.missed[0].text.as_str()).unwrap();
        assert_eq!(v["seq"], 4);
        assert_eq!(v["type"], "x");
        assert_eq!(v["i"], 3);
        // Other users have their own streams.
        assert_eq!(hub.send(8, "x", json!({}), None).await, 1);
    }

    #[tokio::test]
    async fn serialized_fields_make_the_same_message_as_a_value() {
        let hub = Hub::local();
        let payload =
            json!({"call_id": "c1", "caller": {"number": "+4930", "name": null}, "n": [1, 2]});
        let fields = payload.to_string();
        hub.send(3, "call.ringing", payload, None).await;
        hub.send_fields(3, "call.ringing", &fields[1..fields.len() - 1], None)
            .await;
        hub.send_fields(3, "ping", "", None).await;
        let sub = hub.subscribe(3, Some(0)).await;
        let mut got: Vec<Value> = sub
            .missed
            .iter()
            .map(|f| serde_json::from_str(f.text.as_str()).unwrap())
            .collect();
        assert_eq!(got[1]["seq"], 2);
        assert_eq!(
            got[2],
            json!({"seq": 3, "type": "ping", "at": got[2]["at"]})
        );
        for v in &mut got {
            v.as_object_mut().unwrap().remove("at");
            v.as_object_mut().unwrap().remove("seq");
        }
        assert_eq!(got[0], got[1]);
    }

    #[tokio::test]
    async fn a_window_overflow_is_reported_as_a_gap() {
        let hub = Hub::local();
        for _ in 0..WINDOW_MESSAGES + 10 {
            hub.send(1, "x", json!({}), None).await;
        }
        let sub = hub.subscribe(1, Some(2)).await;
        assert_eq!(sub.missed.len(), WINDOW_MESSAGES);
        assert_eq!(sub.gap, Some(11));
        // Asking beyond the end (a reset stream) starts over.
        let sub = hub.subscribe(1, Some(99_999)).await;
        assert!(sub.gap.is_some());
    }
}
