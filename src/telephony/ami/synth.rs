//! Synthetic AMI transcripts built from captured ones: renumbered copies of
//! calls interleaved in time, as a busy PBX would send them. Used by tests,
//! benchmarks and the demo stream; it never touches a socket.

use super::codec::Message;
use super::replay::timed_messages;

/// A transcript and its `.times` text.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    pub ami: Vec<u8>,
    pub times: String,
}

/// Writes `m` with channel names and ids made unique for copy `copy`, so
/// several copies of the same call can run side by side.
pub fn renumber(m: &Message, copy: usize, out: &mut Vec<u8>) {
    for (k, v) in m.headers() {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        let id = k.ends_with("Uniqueid") || k.ends_with("Linkedid");
        if id && !v.is_empty() && v != "<null>" {
            out.extend_from_slice(format!("{v}.{copy}").as_bytes());
        } else if k.ends_with("Channel") && v.contains('/') {
            match v.rfind('-') {
                Some(dash) => {
                    out.extend_from_slice(&v.as_bytes()[..=dash]);
                    out.extend_from_slice(format!("{copy:04x}").as_bytes());
                    out.extend_from_slice(&v.as_bytes()[dash + 1..]);
                }
                None => out.extend_from_slice(v.as_bytes()),
            }
        } else {
            out.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The events of a transcript with their times in ns (responses to the
/// capturing client's own actions are left out).
pub fn events_with_times(ami: &[u8], times: &str) -> Vec<(u64, Message)> {
    timed_messages(ami, Some(times))
        .into_iter()
        .filter(|(_, m)| m.event().is_some())
        .map(|(t, m)| (t.unwrap_or(0), m))
        .collect()
}

/// `copies` rounds of every source transcript, each call renumbered and
/// started `stagger_ns` after the previous one, merged by time.
pub fn interleave(sources: &[(&[u8], &str)], copies: usize, stagger_ns: u64) -> Transcript {
    let parsed: Vec<Vec<(u64, Message)>> = sources
        .iter()
        .map(|(ami, times)| events_with_times(ami, times))
        .collect();
    let mut all: Vec<(u64, usize, usize, usize)> = Vec::new();
    for k in 0..copies {
        for (i, evs) in parsed.iter().enumerate() {
            let g = k * parsed.len() + i;
            let base = evs.first().map_or(0, |e| e.0);
            for (j, (t, _)) in evs.iter().enumerate() {
                all.push((t.saturating_sub(base) + g as u64 * stagger_ns, g, i, j));
            }
        }
    }
    all.sort_by_key(|&(t, g, _, j)| (t, g, j));
    let mut ami = b"Asterisk Call Manager/11.0.0\r\n".to_vec();
    let mut times = String::from("0 0\n");
    for (t, g, i, j) in all {
        times.push_str(&format!("{} {}\n", t + 1, ami.len()));
        renumber(&parsed[i][j].1, g, &mut ami);
    }
    Transcript { ami, times }
}
