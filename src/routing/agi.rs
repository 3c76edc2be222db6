//! FastAGI: Asterisk asks `AGI(agi://ringside:4573/route)` and gets the
//! routing decision back as channel variables.
//!
//! The conversation, as Asterisk speaks it: on connect Asterisk sends
//! `agi_name: value` lines (`agi_request`, `agi_network_script`,
//! `agi_callerid`, `agi_dnid`, `agi_extension`, `agi_arg_1`, …) and a blank
//! line; then we send one command per line and read one reply per command
//! (`200 result=1`). We set `RINGSIDE_TARGET`, `RINGSIDE_CONTACT`,
//! `RINGSIDE_OWNER` and `RINGSIDE_RULE` and close the connection, which ends
//! the AGI with `AGISTATUS=SUCCESS`. A hung-up channel shows as a `HANGUP`
//! line and `511` replies: we stop at once.
//!
//! Network input is bounded: headers are capped in bytes and lines, every
//! read has a deadline, connections are capped in number, and nothing here
//! panics on what a client sends. When anything fails the connection is
//! closed without variables, so the dialplan sees an empty `RINGSIDE_TARGET`
//! and falls back to its queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::http::AppState;

/// Largest header block accepted (Asterisk sends about 1 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header lines accepted.
pub const MAX_HEADER_LINES: usize = 128;
/// Longest reply line read from Asterisk.
pub const MAX_REPLY_BYTES: usize = 4 * 1024;
/// Time allowed for the whole header block.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed for each reply and for the routing decision.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections served at once; more are closed at once (the dialplan falls back).
pub const MAX_CONNECTIONS: usize = 1024;

/// Why a conversation ended early.
#[derive(Debug, thiserror::Error)]
pub enum AgiError {
    #[error("connection closed")]
    Closed,
    #[error("timed out")]
    Timeout,
    #[error("line longer than allowed")]
    TooLong,
    #[error("header block larger than allowed")]
    TooManyHeaders,
    #[error("malformed header line `{0}`")]
    Malformed(String),
    #[error("the channel hung up")]
    Hangup,
    #[error("unexpected reply `{0}`")]
    Reply(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The header block of one AGI request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgiRequest {
    pub vars: HashMap<String, String>,
}

impl AgiRequest {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The script asked for: `route` in `agi://host:4573/route?x=1`.
    pub fn script(&self) -> &str {
        if let Some(s) = self.get("agi_network_script").filter(|s| !s.is_empty()) {
            return s.split(['?', '/']).next().unwrap_or("");
        }
        let req = self.get("agi_request").unwrap_or("");
        let path = req
            .split_once("://")
            .map(|(_, rest)| rest.split_once('/').map(|(_, p)| p).unwrap_or(""))
            .unwrap_or(req);
        path.split(['?', '/']).next().unwrap_or("")
    }

    /// The caller ID, empty when Asterisk has none (`unknown`).
    pub fn caller(&self) -> &str {
        known(self.get("agi_callerid"))
    }

    /// The dialled number: the first script argument when the dialplan passes
    /// one (`AGI(agi://ringside/route,${EXTEN})`), else the DNID, else the extension.
    pub fn did(&self) -> &str {
        [
            self.get("agi_arg_1"),
            self.get("agi_dnid"),
            self.get("agi_extension"),
        ]
        .into_iter()
        .map(known)
        .find(|s| !s.is_empty())
        .unwrap_or("")
    }
}

fn known(v: Option<&str>) -> &str {
    match v.map(str::trim) {
        Some(s) if !s.eq_ignore_ascii_case("unknown") => s,
        _ => "",
    }
}

/// Reads one `\n`-terminated line of at most `max` bytes (without the line
/// end; a trailing `\r` is dropped). `Ok(None)` at end of stream.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<String>, AgiError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(AgiError::Closed)
            };
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max + 1 {
            return Err(AgiError::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

/// Reads the header block up to the blank line.
pub async fn read_request<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<AgiRequest, AgiError> {
    let mut req = AgiRequest::default();
    let mut bytes = 0;
    for _ in 0..=MAX_HEADER_LINES {
        let line = read_line(r, MAX_HEADER_BYTES)
            .await?
            .ok_or(AgiError::Closed)?;
        bytes += line.len() + 1;
        if bytes > MAX_HEADER_BYTES {
            return Err(AgiError::TooManyHeaders);
        }
        if line.is_empty() {
            return Ok(req);
        }
        if line == "HANGUP" {
            return Err(AgiError::Hangup);
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(AgiError::Malformed(truncate(&line)));
        };
        if !name.starts_with("agi_")
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(AgiError::Malformed(truncate(&line)));
        }
        req.vars.insert(
            name.to_owned(),
            value.strip_prefix(' ').unwrap_or(value).to_owned(),
        );
    }
    Err(AgiError::TooManyHeaders)
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Quotes a value for an AGI command argument.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Sends one command and waits for its `200` reply.
async fn command<R, W>(r: &mut R, w: &mut W, cmd: &str) -> Result<(), AgiError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWriteExt + Unpin,
{
    w.write_all(cmd.as_bytes()).await?;
    w.flush().await?;
    loop {
        let line = tokio::time::timeout(REPLY_TIMEOUT, read_line(r, MAX_REPLY_BYTES))
            .await
            .map_err(|_| AgiError::Timeout)??
            .ok_or(AgiError::Closed)?;
        if line == "HANGUP" {
            // Sent once when the channel goes away; the reply still follows (511).
            continue;
        }
        if line.starts_with("200") {
            return Ok(());
        }
        if line.starts_with("511") {
            return Err(AgiError::Hangup);
        }
        if line.starts_with("520-") {
            // Multi-line usage text up to `520 End of proper usage.`
            loop {
                let more = tokio::time::timeout(REPLY_TIMEOUT, read_line(r, MAX_REPLY_BYTES))
                    .await
                    .map_err(|_| AgiError::Timeout)??
                    .ok_or(AgiError::Closed)?;
                if more.starts_with("520 ") {
                    break;
                }
            }
        }
        return Err(AgiError::Reply(truncate(&line)));
    }
}

/// The variables sent for a decision, in order.
pub fn variables(answer: &super::RouteAnswer) -> [(&'static str, String); 4] {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    [
        ("RINGSIDE_TARGET", answer.target.clone().unwrap_or_default()),
        ("RINGSIDE_CONTACT", opt(answer.contact_id)),
        ("RINGSIDE_OWNER", opt(answer.owner_id)),
        ("RINGSIDE_RULE", opt(answer.rule.as_ref().map(|r| r.id))),
    ]
}

/// Serves one connection from start to close.
pub async fn handle(stream: TcpStream, state: &AppState) -> Result<(), AgiError> {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(4096, rd);
    let req = tokio::time::timeout(HEADER_TIMEOUT, read_request(&mut rd))
        .await
        .map_err(|_| AgiError::Timeout)??;
    let script = req.script();
    if script != "route" {
        tracing::warn!(script, "fastagi: unknown script, no variables set");
        let _ = wr.shutdown().await;
        return Ok(());
    }
    let answer = tokio::time::timeout(
        REPLY_TIMEOUT,
        state.routing.route(state, req.caller(), req.did()),
    )
    .await
    .map_err(|_| AgiError::Timeout)?;
    tracing::debug!(
        caller = req.caller(),
        did = req.did(),
        target = answer.target.as_deref().unwrap_or(""),
        reason = %answer.reason,
        "fastagi route"
    );
    let mut cmd = String::with_capacity(96);
    for (name, value) in variables(&answer) {
        cmd.clear();
        cmd.push_str("SET VARIABLE ");
        cmd.push_str(name);
        cmd.push(' ');
        cmd.push_str(&quote(&value));
        cmd.push('\n');
        command(&mut rd, &mut wr, &cmd).await?;
    }
    let _ = wr.shutdown().await;
    Ok(())
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, state: AppState) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "fastagi: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "fastagi: too many connections, closing");
            drop(stream);
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match handle(stream, &state).await {
                Ok(()) | Err(AgiError::Hangup) => {}
                Err(e) => tracing::info!(%peer, error = %e, "fastagi: request dropped"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(text: &[u8]) -> Result<AgiRequest, AgiError> {
        let mut r = BufReader::new(text);
        read_request(&mut r).await
    }

    #[tokio::test]
    async fn reads_asterisk_headers() {
        let req = parse(
            b"agi_network: yes\nagi_network_script: route\nagi_request: agi://ringside:4573/route\n\
              agi_channel: PJSIP/trunk-00000001\nagi_callerid: +4930123456\nagi_calleridname: unknown\n\
              agi_dnid: 4000\nagi_extension: s\nagi_arg_1: \n\n",
        )
        .await
        .unwrap();
        assert_eq!(req.script(), "route");
        assert_eq!(req.caller(), "+4930123456");
        assert_eq!(req.did(), "4000");
    }

    #[tokio::test]
    async fn script_comes_from_the_request_url_too() {
        let req =
            parse(b"agi_request: agi://10.0.0.1:4573/route?x=1\r\nagi_callerid: unknown\r\n\r\n")
                .await
                .unwrap();
        assert_eq!(req.script(), "route");
        assert_eq!(req.caller(), "");
    }

    #[tokio::test]
    async fn refuses_bad_input() {
        assert!(matches!(
            parse(b"agi_request route\n\n").await,
            Err(AgiError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\n\n").await,
            Err(AgiError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"agi_callerid: 1\n").await,
            Err(AgiError::Closed)
        ));
        let long = format!("agi_x: {}\n\n", "a".repeat(MAX_HEADER_BYTES * 2));
        assert!(matches!(
            parse(long.as_bytes()).await,
            Err(AgiError::TooLong)
        ));
        let many = "agi_x: 1\n".repeat(MAX_HEADER_LINES + 5) + "\n";
        assert!(matches!(
            parse(many.as_bytes()).await,
            Err(AgiError::TooManyHeaders)
        ));
        assert!(matches!(parse(b"HANGUP\n").await, Err(AgiError::Hangup)));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_end_in_a_request_or_an_error(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let _ = rt.block_on(parse(&bytes));
        }

        #[test]
        fn header_lines_round_trip(values in proptest::collection::vec("[ -~]{0,40}", 1..20)) {
            let mut text = String::new();
            for (i, v) in values.iter().enumerate() {
                text.push_str(&format!("agi_arg_{i}: {v}\n"));
            }
            text.push('\n');
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let req = rt.block_on(parse(text.as_bytes())).unwrap();
            for (i, v) in values.iter().enumerate() {
                let got = req.get(&format!("agi_arg_{i}"));
                proptest::prop_assert_eq!(got, Some(v.as_str()));
            }
        }
    }

    #[test]
    fn quoting_escapes_what_asterisk_unescapes() {
        assert_eq!(quote("PJSIP/101"), "\"PJSIP/101\"");
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\cd\"");
    }
}
