//! AMI wire format: bytes in, messages out, actions back to bytes.
//!
//! Owns framing only. No sockets, no knowledge of what an event means: the
//! mapper gives meaning, the client moves bytes. Like a RESP frame parser, the
//! decoder scans for a complete message before building anything, and an
//! incomplete buffer is `Ok(None)`, not an error.
//!
//! A message is one shared `Bytes` buffer plus the offsets of its header
//! names and values, so decoding copies nothing and allocates one small
//! vector. Duplicate keys (`ChanVariable`, `Output`) are kept in order.
//! Bytes that are not UTF-8 are replaced (U+FFFD) when the message is built,
//! so every accessor returns `&str` and nothing downstream can fail on them;
//! a message holding NUL or another control character inside a line is
//! cleaned (`crate::text::clean`) the same way before anyone reads it.

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memchr;

/// Messages larger than this are rejected unless the decoder is told otherwise.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

const BANNER_PREFIX: &[u8] = b"Asterisk Call Manager/";
const END_COMMAND: &[u8] = b"--END COMMAND--";

/// A decoding failure the connection survives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A message grew past the limit without a terminating blank line; the
    /// decoder discards input up to the next blank line and carries on.
    #[error("AMI message exceeds {limit} bytes; skipped to the next blank line")]
    MessageTooLarge { limit: usize },
}

/// One header: byte ranges into the message buffer. A raw output line of a
/// legacy `Response: Follows` block has no name and is reported as `Output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

const NO_NAME: (u32, u32) = (u32::MAX, u32::MAX);

/// One AMI message (event, response, or action) with its headers in order.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    buf: Bytes,
    fields: Vec<Field>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.headers()).finish()
    }
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The greeting line, e.g. `Asterisk Call Manager/11.0.0` (without the line end).
    Banner(String),
    Message(Message),
}

impl Message {
    /// Builds a message from `(name, value)` pairs (tests, the fake server).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Message {
        let mut out = BytesMut::new();
        for (k, v) in pairs {
            out.put_slice(k.as_bytes());
            out.put_slice(b": ");
            put_clean(&mut out, v);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        let mut dec = Decoder::new();
        match dec.decode(&mut out) {
            Ok(Some(Frame::Message(m))) => m,
            _ => Message {
                buf: Bytes::new(),
                fields: Vec::new(),
            },
        }
    }

    fn slice(&self, r: (u32, u32)) -> &str {
        let bytes = self.buf.get(r.0 as usize..r.1 as usize).unwrap_or_default();
        // The buffer is valid UTF-8 by construction (see `build`) and ranges
        // never split a character: they end at ASCII delimiters.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    fn name_of(&self, f: &Field) -> &str {
        if f.name == NO_NAME {
            "Output"
        } else {
            self.slice(f.name)
        }
    }

    /// Compares a header name as bytes: no UTF-8 check on the lookup path.
    fn is_named(&self, f: &Field, name: &str) -> bool {
        let raw: &[u8] = if f.name == NO_NAME {
            b"Output"
        } else {
            self.buf
                .get(f.name.0 as usize..f.name.1 as usize)
                .unwrap_or_default()
        };
        raw.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The first value of header `name` (case-insensitive, as Asterisk reads them).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| self.is_named(f, name))
            .map(|f| self.slice(f.value))
    }

    /// Every value of header `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.is_named(f, name))
            .map(|f| self.slice(f.value))
    }

    /// All headers in wire order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields
            .iter()
            .map(|f| (self.name_of(f), self.slice(f.value)))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `Event:` value, if this is an event.
    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }

    /// `Response:` value. Note `OriginateResponse` events carry one too.
    pub fn response(&self) -> Option<&str> {
        self.get("Response")
    }

    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID")
    }

    /// The raw bytes of the message as received (after any UTF-8 repair).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Incremental AMI decoder; keep one per connection.
#[derive(Debug)]
pub struct Decoder {
    max: usize,
    /// Header ranges found so far in the message at the front of the buffer.
    fields: Vec<Field>,
    /// How far the front message has been scanned (always at a line start).
    scanned: usize,
    /// Inside a legacy `Response: Follows` raw block.
    follows: bool,
    raw_block: bool,
    banner_possible: bool,
    skipping: Option<Skip>,
}

#[derive(Debug, Clone, Copy)]
struct Skip {
    at_line_start: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::with_max(DEFAULT_MAX_MESSAGE)
    }

    pub fn with_max(max: usize) -> Self {
        Decoder {
            max: max.max(64),
            fields: Vec::with_capacity(32),
            scanned: 0,
            follows: false,
            raw_block: false,
            banner_possible: true,
            skipping: None,
        }
    }

    /// Takes one frame off the front of `buf`. `Ok(None)`: need more bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        loop {
            if let Some(skip) = self.skipping {
                if !self.skip(buf, skip) {
                    return Ok(None);
                }
                continue;
            }
            if self.scanned == 0 {
                // Blank lines between messages carry nothing.
                let lead = leading_blank_lines(buf);
                if lead > 0 {
                    let _ = buf.split_to(lead);
                }
                if buf.is_empty() || &buf[..] == b"\r" {
                    // A lone CR may be the start of a blank line: wait.
                    return Ok(None);
                }
                if self.banner_possible {
                    let n = buf.len().min(BANNER_PREFIX.len());
                    if buf[..n] != BANNER_PREFIX[..n] {
                        self.banner_possible = false;
                    } else if n < BANNER_PREFIX.len() {
                        return Ok(None);
                    } else {
                        let Some(nl) = memchr(b'\n', buf) else {
                            return self.check_size(buf);
                        };
                        self.banner_possible = false;
                        if nl + 1 > self.max {
                            let _ = buf.split_to(nl + 1);
                            self.skipping = Some(Skip {
                                at_line_start: true,
                            });
                            return Err(CodecError::MessageTooLarge { limit: self.max });
                        }
                        let line = buf.split_to(nl + 1);
                        let text = String::from_utf8_lossy(trim_eol(&line)).into_owned();
                        return Ok(Some(Frame::Banner(text)));
                    }
                }
            }
            return match self.scan(buf) {
                Some(end) if end > self.max => {
                    // Complete but too large: rejected the same way as when
                    // it arrives in pieces, so splitting never changes output.
                    let _ = buf.split_to(end);
                    self.reset();
                    Err(CodecError::MessageTooLarge { limit: self.max })
                }
                Some(end) => Ok(Some(Frame::Message(self.build(buf, end)))),
                None => self.check_size(buf),
            };
        }
    }

    /// Scans lines from `self.scanned`; returns the message length when a
    /// terminating blank line is found.
    fn scan(&mut self, buf: &BytesMut) -> Option<usize> {
        let data = &buf[..];
        let mut pos = self.scanned;
        while let Some(off) = memchr(b'\n', &data[pos..]) {
            let nl = pos + off;
            let line_end = if nl > pos && data[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            let line = &data[pos..line_end];
            if self.raw_block {
                if line == END_COMMAND {
                    // End of the raw block; the blank line after it ends the message.
                    self.raw_block = false;
                    self.follows = false;
                } else {
                    self.fields.push(Field {
                        name: NO_NAME,
                        value: (pos as u32, line_end as u32),
                    });
                }
            } else if line.is_empty() {
                self.scanned = nl + 1;
                return Some(nl + 1);
            } else if let Some(colon) = memchr(b':', line) {
                let name_end = pos + colon;
                let mut vstart = name_end + 1;
                if vstart < line_end && data[vstart] == b' ' {
                    vstart += 1;
                }
                let name = &data[pos..name_end];
                if name.eq_ignore_ascii_case(b"Response")
                    && data[vstart..line_end].eq_ignore_ascii_case(b"Follows")
                {
                    self.follows = true;
                }
                self.fields.push(Field {
                    name: (pos as u32, name_end as u32),
                    value: (vstart as u32, line_end as u32),
                });
            } else {
                // A line without a colon: raw command output in a legacy
                // `Follows` block, otherwise kept as an unnamed value.
                if self.follows {
                    self.raw_block = true;
                }
                self.fields.push(Field {
                    name: NO_NAME,
                    value: (pos as u32, line_end as u32),
                });
            }
            pos = nl + 1;
        }
        self.scanned = pos;
        None
    }

    fn build(&mut self, buf: &mut BytesMut, end: usize) -> Message {
        let m = self.build_utf8(buf, end);
        if crate::text::has_control_within_lines(&m.buf) {
            return clean_message(&m);
        }
        m
    }

    fn build_utf8(&mut self, buf: &mut BytesMut, end: usize) -> Message {
        let bytes = buf.split_to(end).freeze();
        let fields = self.fields.clone();
        self.reset();
        // Validating once here lets every accessor hand out `&str`.
        if std::str::from_utf8(&bytes).is_ok() {
            return Message { buf: bytes, fields };
        }
        // Rare path: repair invalid UTF-8 and scan the repaired copy again.
        let repaired = String::from_utf8_lossy(&bytes).into_owned();
        let mut again = BytesMut::from(repaired.as_bytes());
        let mut dec = Decoder::with_max(usize::MAX / 2);
        dec.banner_possible = false;
        match dec.scan(&again) {
            Some(end) => {
                let fields = std::mem::take(&mut dec.fields);
                let buf = again.split_to(end).freeze();
                Message { buf, fields }
            }
            None => Message {
                buf: Bytes::new(),
                fields: Vec::new(),
            },
        }
    }

    fn reset(&mut self) {
        self.fields.clear();
        self.scanned = 0;
        self.follows = false;
        self.raw_block = false;
    }

    fn check_size(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if buf.len() <= self.max {
            return Ok(None);
        }
        // Drop what was scanned; the rest is skipped up to a blank line.
        let scanned = self.scanned;
        self.reset();
        self.banner_possible = false;
        // `scanned` is always at a line start, and that line is not blank.
        let _ = buf.split_to(scanned);
        self.skipping = Some(Skip {
            at_line_start: true,
        });
        Err(CodecError::MessageTooLarge { limit: self.max })
    }

    /// Discards input until just after a blank line. Returns true when done.
    fn skip(&mut self, buf: &mut BytesMut, mut st: Skip) -> bool {
        loop {
            let Some(nl) = memchr(b'\n', buf) else {
                // Keep a lone trailing CR: it may start the blank line.
                let keep = usize::from(buf.last() == Some(&b'\r') && st.at_line_start);
                let drop = buf.len() - keep;
                if drop > 0 {
                    let _ = buf.split_to(drop);
                    if keep == 0 {
                        st.at_line_start = false;
                    }
                }
                self.skipping = Some(st);
                return false;
            };
            let blank = st.at_line_start && (nl == 0 || (nl == 1 && buf[0] == b'\r'));
            let _ = buf.split_to(nl + 1);
            if blank {
                self.skipping = None;
                return true;
            }
            st.at_line_start = true;
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn leading_blank_lines(data: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match data.get(i..) {
            Some([b'\n', ..]) => i += 1,
            Some([b'\r', b'\n', ..]) => i += 2,
            _ => return i,
        }
    }
}

/// Writes a value with line breaks removed: a value must never end a header.
/// `m` with its names and values cleaned (`crate::text::clean`: NUL and
/// other control characters dropped, tabs made spaces), scanned again.
fn clean_message(m: &Message) -> Message {
    let mut out = BytesMut::with_capacity(m.buf.len());
    for f in &m.fields {
        let value = crate::text::clean(m.slice(f.value));
        if f.name == NO_NAME {
            // An unnamed line left empty would end the message early.
            if value.is_empty() {
                continue;
            }
        } else {
            out.put_slice(crate::text::clean(m.slice(f.name)).as_bytes());
            out.put_slice(b": ");
        }
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    let mut dec = Decoder::with_max(usize::MAX / 2);
    dec.banner_possible = false;
    match dec.scan(&out) {
        Some(end) => {
            let fields = std::mem::take(&mut dec.fields);
            Message {
                buf: out.split_to(end).freeze(),
                fields,
            }
        }
        None => Message {
            buf: Bytes::new(),
            fields: Vec::new(),
        },
    }
}

fn put_clean(out: &mut BytesMut, v: &str) {
    for part in v.split(['\r', '\n']) {
        out.put_slice(part.as_bytes());
    }
}

/// An action to send: `Action:`, `ActionID:`, then headers, then a blank line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    name: String,
    headers: Vec<(String, String)>,
}

impl Action {
    pub fn new(name: impl Into<String>) -> Self {
        Action {
            name: name.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header; repeat the name for multi-valued headers (`Variable`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serializes with CRLF line ends. CR/LF inside names or values are
    /// dropped so no value can inject a header or end the message early.
    pub fn encode(&self, action_id: &str, out: &mut BytesMut) {
        out.reserve(32 + self.name.len() + action_id.len() + self.headers.len() * 32);
        out.put_slice(b"Action: ");
        put_clean(out, &self.name);
        out.put_slice(b"\r\nActionID: ");
        put_clean(out, action_id);
        out.put_slice(b"\r\n");
        for (k, v) in &self.headers {
            put_clean(out, k);
            out.put_slice(b": ");
            put_clean(out, v);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
    }
}

/// Decodes a whole buffer (a transcript) into frames, skipping oversize ones.
pub fn decode_all(data: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(data);
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => break,
            Err(_) => continue,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TRACE: &[u8] = include_bytes!("../../../tests/fixtures/ami/queue_answered.ami");

    fn msgs(frames: &[Frame]) -> Vec<&Message> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Message(m) => Some(m),
                Frame::Banner(_) => None,
            })
            .collect()
    }

    #[test]
    fn banner_then_messages_crlf() {
        let data = b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: a1\r\nMessage: Authentication accepted\r\n\r\nEvent: FullyBooted\r\nStatus: Fully Booted\r\n\r\n";
        let frames = decode_all(data);
        assert_eq!(
            frames[0],
            Frame::Banner("Asterisk Call Manager/11.0.0".into())
        );
        let m = msgs(&frames);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].response(), Some("Success"));
        assert_eq!(m[0].action_id(), Some("a1"));
        assert_eq!(m[0].get("message"), Some("Authentication accepted"));
        assert_eq!(m[1].event(), Some("FullyBooted"));
    }

    #[test]
    fn lf_only_and_empty_values() {
        let frames = decode_all(
            b"Event: Newchannel\nAccountCode: \nExten:\nChannel: PJSIP/101-0000001a\n\n",
        );
        let m = msgs(&frames);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].get("AccountCode"), Some(""));
        assert_eq!(m[0].get("Exten"), Some(""));
        assert_eq!(m[0].get("Channel"), Some("PJSIP/101-0000001a"));
        assert_eq!(m[0].get("Missing"), None);
    }

    #[test]
    fn duplicate_keys_kept_in_order() {
        let frames = decode_all(
            b"Event: Status\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nChanVariable: C=\r\n\r\n",
        );
        let m = msgs(&frames);
        let all: Vec<_> = m[0].get_all("ChanVariable").collect();
        assert_eq!(all, ["A=1", "B=2", "C="]);
        assert_eq!(m[0].get("ChanVariable"), Some("A=1"));
    }

    #[test]
    fn command_output_modern_and_legacy() {
        let modern = decode_all(b"Response: Success\r\nMessage: Command output follows\r\nOutput: line one\r\nOutput: line: two\r\n\r\n");
        let out: Vec<_> = msgs(&modern)[0].get_all("Output").collect();
        assert_eq!(out, ["line one", "line: two"]);

        let legacy = decode_all(b"Response: Follows\r\nPrivilege: Command\r\nChannel  Location\r\n\r\n1 active call\r\n--END COMMAND--\r\n\r\nEvent: Next\r\n\r\n");
        let m = msgs(&legacy);
        assert_eq!(m.len(), 2, "{m:?}");
        let out: Vec<_> = m[0].get_all("Output").collect();
        assert_eq!(out, ["Channel  Location", "", "1 active call"]);
        assert_eq!(m[1].event(), Some("Next"));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let frames = decode_all(
            b"Event: Newchannel\r\nCallerIDName: Iv\xffan \xd0\r\nUniqueid: 1.2\r\n\r\n",
        );
        let m = msgs(&frames);
        assert_eq!(m[0].get("CallerIDName"), Some("Iv\u{fffd}an \u{fffd}"));
        assert_eq!(m[0].get("Uniqueid"), Some("1.2"));
    }

    #[test]
    fn nul_and_control_characters_are_cleaned_from_values() {
        let frames = decode_all(
            b"Event: Newchannel\r\nCallerIDName: Iv\0an\x1b[0m\tP\r\nUniqueid: 1.2\r\nX\0\r\n\r\nEvent: Next\r\n\r\n",
        );
        let m = msgs(&frames);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].get("CallerIDName"), Some("Ivan[0m P"));
        assert_eq!(m[0].get("Uniqueid"), Some("1.2"));
        assert_eq!(m[0].get_all("Output").collect::<Vec<_>>(), ["X"]);
        assert_eq!(m[1].event(), Some("Next"));
        // Invalid UTF-8 and a NUL together.
        let m = decode_all(b"Event: E\r\nCallerIDName: \xff\0\r\n\r\n");
        assert_eq!(msgs(&m)[0].get("CallerIDName"), Some("\u{fffd}"));
    }

    #[test]
    fn utf8_and_escapes_pass_through() {
        let t = "Event: Newchannel\r\nCallerIDName: <script>alert(\\'x\\')</script> Иван Петров\r\n\r\n";
        let m = decode_all(t.as_bytes());
        assert_eq!(
            msgs(&m)[0].get("CallerIDName"),
            Some("<script>alert(\\'x\\')</script> Иван Петров")
        );
    }

    #[test]
    fn incomplete_is_none_and_resumes() {
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&b"Asterisk Call"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b" Manager/11.0.0\r\nEvent: A\r\nKey: V\r");
        assert!(matches!(dec.decode(&mut buf), Ok(Some(Frame::Banner(_)))));
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"\n\r");
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"\n");
        let Ok(Some(Frame::Message(m))) = dec.decode(&mut buf) else {
            panic!("expected a message");
        };
        assert_eq!(m.get("Key"), Some("V"));
        assert!(buf.is_empty());
    }

    #[test]
    fn oversize_message_is_rejected_and_stream_recovers() {
        let mut dec = Decoder::with_max(256);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"Event: Huge\r\n");
        for i in 0..100 {
            buf.extend_from_slice(
                format!("Variable: v{i}=xxxxxxxxxxxxxxxxxxxxxxxx\r\n").as_bytes(),
            );
        }
        buf.extend_from_slice(b"\r\nEvent: Small\r\nA: b\r\n\r\n");
        assert_eq!(
            dec.decode(&mut buf),
            Err(CodecError::MessageTooLarge { limit: 256 })
        );
        let Ok(Some(Frame::Message(m))) = dec.decode(&mut buf) else {
            panic!("decoder did not recover");
        };
        assert_eq!(m.event(), Some("Small"));
    }

    #[test]
    fn oversize_without_newlines_stays_bounded() {
        let mut dec = Decoder::with_max(1024);
        let mut buf = BytesMut::new();
        let mut errors = 0;
        for _ in 0..100 {
            buf.extend_from_slice(&[b'x'; 500]);
            if dec.decode(&mut buf).is_err() {
                errors += 1;
            }
            assert!(buf.len() <= 1024 + 500);
        }
        assert_eq!(errors, 1);
        buf.extend_from_slice(b"\r\n\r\nEvent: After\r\n\r\n");
        let Ok(Some(Frame::Message(m))) = dec.decode(&mut buf) else {
            panic!("decoder did not recover");
        };
        assert_eq!(m.event(), Some("After"));
    }

    #[test]
    fn encode_action_and_strip_injection() {
        let mut out = BytesMut::new();
        Action::new("Originate")
            .header("Channel", "PJSIP/101")
            .header("Variable", "A=1\r\nAction: Hangup")
            .header("Variable", "B=2")
            .encode("c2c-1", &mut out);
        assert_eq!(
            &out[..],
            b"Action: Originate\r\nActionID: c2c-1\r\nChannel: PJSIP/101\r\nVariable: A=1Action: Hangup\r\nVariable: B=2\r\n\r\n"
        );
        let m = msgs(&decode_all(&out))[0].clone();
        assert_eq!(m.get_all("Variable").count(), 2);
    }

    #[test]
    fn real_trace_decodes_completely() {
        let frames = decode_all(TRACE);
        assert!(matches!(frames[0], Frame::Banner(_)));
        let m = msgs(&frames);
        let times = include_str!("../../../tests/fixtures/ami/queue_answered.times");
        assert_eq!(frames.len(), times.lines().count());
        assert_eq!(m.last().and_then(|m| m.response()), Some("Goodbye"));
        assert!(m.iter().all(|m| !m.is_empty()));
    }

    fn decode_split(data: &[u8], cuts: &[usize], max: usize) -> (Vec<Frame>, usize) {
        let mut dec = Decoder::with_max(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut errors = 0;
        let mut start = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.sort_unstable();
        points.push(data.len());
        for p in points {
            buf.extend_from_slice(&data[start..p.max(start)]);
            start = p.max(start);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(f)) => out.push(f),
                    Ok(None) => break,
                    Err(_) => errors += 1,
                }
            }
            assert!(buf.len() <= max);
        }
        (out, errors)
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(any::<usize>(), 0..16),
        ) {
            let (frames, _) = decode_split(&data, &cuts, 256);
            for f in frames {
                if let Frame::Message(m) = f {
                    prop_assert!(m.as_bytes().len() <= 256 * 2);
                    for (k, v) in m.headers() { let _ = (k.len(), v.len()); }
                }
            }
        }

        #[test]
        fn ami_like_bytes_never_panic(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(&b"\r\n"[..]), Just(&b"\n"[..]), Just(&b": "[..]), Just(&b"Event"[..]),
                    Just(&b"Response: Follows\r\n"[..]), Just(&b"--END COMMAND--"[..]),
                    Just(&b"Asterisk Call Manager/"[..]), Just(&b"\xff\xd0"[..]), Just(&b"x"[..]),
                ], 0..200),
            cuts in proptest::collection::vec(any::<usize>(), 0..16),
        ) {
            let data: Vec<u8> = parts.concat();
            let whole = decode_split(&data, &[], 128);
            let split = decode_split(&data, &cuts, 128);
            if whole.1 == 0 && split.1 == 0 {
                prop_assert_eq!(whole.0, split.0);
            }
        }

        #[test]
        fn real_trace_split_anywhere_decodes_the_same(
            cuts in proptest::collection::vec(any::<usize>(), 0..64),
        ) {
            let whole = decode_all(TRACE);
            let (split, errors) = decode_split(TRACE, &cuts, DEFAULT_MAX_MESSAGE);
            prop_assert_eq!(errors, 0);
            prop_assert_eq!(whole, split);
        }
    }
}
