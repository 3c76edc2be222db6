//! The push hub's Redis side: one Lua script numbers a user's message
//! (`INCR`), keeps it in the user's capped replay list and publishes it on
//! one channel; a subscriber task hands what every node published to the
//! local hub. Reconnects by itself when Redis restarts.
//!
//! Every key and the channel start with the deployment's `redis_prefix`
//! (`ringside:push`, `ringside:seq:7`, …), so deployments sharing one Redis
//! server neither see each other's pops nor collide on sequences.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use super::{Hub, WINDOW_AGE, WINDOW_MESSAGES};

const PUBLISH: &str = r#"
if ARGV[5] ~= '' then
  if not redis.call('SET', ARGV[5], '1', 'NX', 'EX', 600) then return 0 end
end
local seq = redis.call('INCR', KEYS[1])
local msg = '{"seq":' .. seq .. ',' .. ARGV[1]
redis.call('RPUSH', KEYS[2], msg)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
redis.call('PUBLISH', ARGV[6], ARGV[2] .. ' ' .. seq .. ' ' .. msg)
return seq
"#;

#[derive(Clone)]
pub struct RedisLink {
    client: redis::Client,
    conn: MultiplexedConnection,
    script: redis::Script,
    prefix: std::sync::Arc<str>,
}

impl RedisLink {
    fn channel(&self) -> String {
        format!("{}:push", self.prefix)
    }

    fn seq_key(&self, user: i64) -> String {
        format!("{}:seq:{user}", self.prefix)
    }

    fn window_key(&self, user: i64) -> String {
        format!("{}:win:{user}", self.prefix)
    }

    /// Connects; `prefix` starts every key and the channel.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisLink> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("redis_url: {e}"))?;
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| anyhow::anyhow!("redis: no answer from {url} in 5 s"))?
        .map_err(|e| anyhow::anyhow!("redis: {e}"))?;
        Ok(RedisLink {
            client,
            conn,
            script: redis::Script::new(PUBLISH),
            prefix: prefix.into(),
        })
    }

    /// Numbers, keeps and publishes one message; 0 when `once` was already used.
    pub async fn publish(
        &self,
        user: i64,
        body: &str,
        once: Option<&str>,
    ) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        let once = once
            .map(|k| format!("{}:once:{k}", self.prefix))
            .unwrap_or_default();
        self.script
            .key(self.seq_key(user))
            .key(self.window_key(user))
            .arg(body)
            .arg(user)
            .arg(WINDOW_MESSAGES)
            .arg(WINDOW_AGE.as_secs())
            .arg(once)
            .arg(self.channel())
            .invoke_async(&mut conn)
            .await
    }

    /// The user's newest `seq` and the kept messages, oldest first.
    pub async fn window(&self, user: i64) -> redis::RedisResult<(u64, Vec<(u64, String)>)> {
        let mut conn = self.conn.clone();
        let last: Option<u64> = conn.get(self.seq_key(user)).await?;
        let items: Vec<String> = conn.lrange(self.window_key(user), 0, -1).await?;
        let frames = items
            .into_iter()
            .filter_map(|m| Some((seq_of(&m)?, m)))
            .collect();
        Ok((last.unwrap_or(0), frames))
    }

    /// Subscribes (waiting for the first subscription, so nothing published
    /// after start-up is missed) and keeps the subscription alive.
    pub async fn spawn_subscriber(&self, hub: Hub) -> anyhow::Result<()> {
        let client = self.client.clone();
        let channel = self.channel();
        let first = subscribe(&client, &channel)
            .await
            .map_err(|e| anyhow::anyhow!("redis subscribe: {e}"))?;
        tokio::spawn(async move {
            let mut pubsub = Some(first);
            let mut backoff = Duration::from_millis(200);
            loop {
                if let Some(ps) = pubsub.take() {
                    backoff = Duration::from_millis(200);
                    pump(ps, &hub).await;
                    tracing::warn!("redis subscription lost; reconnecting");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                match subscribe(&client, &channel).await {
                    Ok(ps) => pubsub = Some(ps),
                    Err(e) => tracing::warn!(error = %e, "redis subscribe failed"),
                }
            }
        });
        Ok(())
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut ps = client.get_async_pubsub().await?;
    ps.subscribe(channel).await?;
    Ok(ps)
}

async fn pump(mut ps: redis::aio::PubSub, hub: &Hub) {
    use futures::StreamExt;
    let mut messages = ps.on_message();
    while let Some(msg) = messages.next().await {
        let Ok(payload) = msg.get_payload::<String>() else {
            continue;
        };
        let mut parts = payload.splitn(3, ' ');
        let (Some(user), Some(seq), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(user), Ok(seq)) = (user.parse::<i64>(), seq.parse::<u64>()) else {
            continue;
        };
        hub.deliver(user, seq, text.to_owned());
    }
}

fn seq_of(msg: &str) -> Option<u64> {
    let rest = msg.strip_prefix("{\"seq\":")?;
    let end = rest.find(',')?;
    rest[..end].parse().ok()
}
