//! AMI throughput on one thread with 64 KiB reads, on a burst made of the
//! captured transcripts repeated to at least 100 MB:
//! (a) the codec alone, (b) bytes → CallEvents through mapper and tracker.
//! With `--features peer-bench` the same bytes also go through the public
//! codec of `asterisk-rs-ami` and, over a loopback socket (its parser is
//! private), through `asterisk-manager`.
//!
//! After the criterion groups a summary prints `figure:` lines (best of a
//! few runs) that `benches/ami-figures.sh` turns into ratios.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput};
use ringside::calls::{CallTracker, Moment};
use ringside::telephony::ami::codec::{Decoder, Frame};
use ringside::telephony::ami::mapper::{Mapper, MapperConfig};

const READ: usize = 64 * 1024;
const TARGET: usize = 100 * 1024 * 1024;
const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";

/// The fixtures without their banners, repeated to `TARGET` bytes, after one banner.
fn burst() -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ami"))
        .collect();
    names.sort();
    let mut one = Vec::new();
    for p in names {
        let data = std::fs::read(&p).expect("fixture");
        let body = data.strip_prefix(BANNER).unwrap_or(&data);
        one.extend_from_slice(body);
    }
    let mut out = BANNER.to_vec();
    while out.len() < TARGET {
        out.extend_from_slice(&one);
    }
    out
}

fn count_messages(data: &[u8]) -> u64 {
    ours_codec(data)
}

fn ours_codec(data: &[u8]) -> u64 {
    let mut dec = Decoder::new();
    let mut buf = BytesMut::with_capacity(2 * READ);
    let mut n = 0u64;
    for chunk in data.chunks(READ) {
        buf.extend_from_slice(chunk);
        while let Ok(Some(f)) = dec.decode(&mut buf) {
            if let Frame::Message(m) = f {
                n += u64::from(!m.is_empty());
            }
        }
    }
    n
}

/// Returns (messages, call events, finished calls).
fn ours_tracker(data: &[u8]) -> (u64, u64, u64) {
    let mut dec = Decoder::new();
    let mut mapper = Mapper::new(MapperConfig::default());
    let mut tracker = CallTracker::new();
    let mut buf = BytesMut::with_capacity(2 * READ);
    let (mut msgs, mut evs, mut calls) = (0u64, 0u64, 0u64);
    let mut events = Vec::new();
    let mut moments = Vec::new();
    let at = chrono::Utc::now();
    for chunk in data.chunks(READ) {
        buf.extend_from_slice(chunk);
        while let Ok(Some(f)) = dec.decode(&mut buf) {
            let Frame::Message(m) = f else { continue };
            msgs += 1;
            mapper.map(&m, at, &mut events);
            for e in events.drain(..) {
                evs += 1;
                tracker.feed_into(e, &mut moments);
            }
            for mo in moments.drain(..) {
                calls += u64::from(matches!(mo, Moment::Finished(_)));
            }
        }
    }
    (msgs, evs, calls)
}

#[cfg(feature = "peer-bench")]
mod peers {
    use super::*;
    use tokio_util::codec::Decoder as _;

    pub fn rs_ami_codec(data: &[u8]) -> u64 {
        let mut codec = asterisk_rs_ami::AmiCodec::new();
        let mut buf = BytesMut::with_capacity(2 * READ);
        let mut n = 0u64;
        for chunk in data.chunks(READ) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => n += 1,
                    Ok(None) => break,
                    Err(e) => panic!("asterisk-rs-ami rejected the burst: {e}"),
                }
            }
        }
        n
    }

    /// Streams `data` to `asterisk-manager` over loopback and returns the
    /// time from login to the last event (received or counted as lagged).
    pub fn manager_over_socket(data: &[u8], expected_events: u64) -> Duration {
        use futures::StreamExt;
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let body = data.strip_prefix(BANNER).unwrap_or(data).to_vec();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.write_all(BANNER).expect("banner");
            // Read the Login action up to its blank line, answer it.
            let mut got = Vec::new();
            let mut b = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut b).expect("read login");
                if n == 0 {
                    return;
                }
                got.extend_from_slice(&b[..n]);
            }
            s.write_all(b"Response: Success\r\nActionID: rust-ami-login\r\nMessage: Authentication accepted\r\n\r\n")
                .expect("login reply");
            let _ = go_rx.recv();
            for c in body.chunks(READ) {
                if s.write_all(c).is_err() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let took = rt.block_on(async move {
            let mut mgr = asterisk_manager::Manager::new_with_buffer(1 << 16);
            let opts = asterisk_manager::ManagerOptions {
                port,
                host: "127.0.0.1".into(),
                username: "crm".into(),
                password: "secret".into(),
                events: true,
            };
            mgr.connect_and_login(opts)
                .await
                .expect("asterisk-manager login");
            let mut events = mgr.all_events_stream().await;
            let start = Instant::now();
            let _ = go_tx.send(());
            let mut seen = 0u64;
            while seen < expected_events {
                match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
                    Ok(Some(Ok(_))) => seen += 1,
                    Ok(Some(Err(tokio_stream_lagged))) => {
                        let tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n) =
                            tokio_stream_lagged;
                        seen += n;
                    }
                    _ => break,
                }
            }
            let took = start.elapsed();
            assert!(
                seen >= expected_events * 9 / 10,
                "asterisk-manager saw {seen} of {expected_events} events"
            );
            let _ = mgr.disconnect().await;
            took
        });
        let _ = server.join();
        took
    }
}

fn bench(c: &mut Criterion, data: &[u8], msgs: u64) {
    let mut g = c.benchmark_group("ami");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(msgs));
    g.bench_function("codec/ringside", |b| b.iter(|| ours_codec(data)));
    g.bench_function("tracker/ringside", |b| b.iter(|| ours_tracker(data)));
    #[cfg(feature = "peer-bench")]
    g.bench_function("codec/asterisk-rs-ami", |b| {
        b.iter(|| peers::rs_ami_codec(data))
    });
    g.finish();
}

fn best_rate(runs: usize, msgs: u64, mut f: impl FnMut() -> Duration) -> f64 {
    let best = (0..runs).map(|_| f()).min().unwrap_or(Duration::MAX);
    msgs as f64 / best.as_secs_f64()
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn main() {
    let data = burst();
    let msgs = count_messages(&data);
    let (m2, evs, calls) = ours_tracker(&data);
    assert_eq!(m2, msgs);
    println!(
        "burst: {} MB, {msgs} AMI messages, {evs} call events, {calls} finished calls",
        data.len() / (1024 * 1024)
    );
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &data, msgs);
    c.final_summary();

    let codec = best_rate(5, msgs, || timed(|| assert_eq!(ours_codec(&data), msgs)));
    println!("figure: codec/ringside {codec:.0} events/s");
    let tracker = best_rate(5, msgs, || {
        timed(|| assert_eq!(ours_tracker(&data).0, msgs))
    });
    println!("figure: tracker/ringside {tracker:.0} events/s");
    #[cfg(feature = "peer-bench")]
    {
        let rs = best_rate(3, msgs, || {
            timed(|| assert_eq!(peers::rs_ami_codec(&data), msgs))
        });
        println!("figure: codec/asterisk-rs-ami {rs:.0} events/s");
        // Events only: asterisk-manager does not stream responses.
        let events = {
            let mut dec = Decoder::new();
            let mut buf = BytesMut::from(&data[..]);
            let mut n = 0u64;
            while let Ok(Some(f)) = dec.decode(&mut buf) {
                if let Frame::Message(m) = f {
                    n += u64::from(m.event().is_some());
                }
            }
            n
        };
        let mgr = best_rate(1, events, || peers::manager_over_socket(&data, events));
        println!("figure: socket/asterisk-manager {mgr:.0} events/s");
    }
}
