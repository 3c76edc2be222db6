//! Routing speed: the pure decision, and the whole FastAGI round trip on
//! loopback as Asterisk makes it (connect, header block, four
//! `SET VARIABLE` commands each answered `200 result=1`, close) against the
//! real server started in-process on a SQLite file.
//!
//! Prints p50/p99 from per-request latency distributions first (the budget
//! is ≤ 1 ms p99 for the round trip), then runs the criterion benchmarks.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::Criterion;
use ringside::config::Config;
use ringside::routing::engine::{
    CallerOwner, Purpose, RoundRobin, RouteContext, RouteRequest, RouteUser, RuleSet, decide,
};
use ringside::routing::rules::{Rule, RuleInput, RuleKind, Target, TargetSpec, build_rule};
use ringside::startup::Server;
use ringside::store::contacts::{ContactData, Phone};
use ringside::store::users::NewUser;

struct Ctx {
    owner: Option<CallerOwner>,
    users: Vec<RouteUser>,
    team: Vec<i64>,
    now: DateTime<Utc>,
}

impl RouteContext for Ctx {
    fn caller_owner(&self) -> Option<CallerOwner> {
        self.owner
    }
    fn user(&self, id: i64) -> Option<&RouteUser> {
        self.users.get((id - 1) as usize)
    }
    fn is_available(&self, id: i64) -> bool {
        id % 3 != 0
    }
    fn active_calls(&self, id: i64) -> usize {
        (id % 4) as usize
    }
    fn team_members(&self, _team: i64) -> &[i64] {
        &self.team
    }
    fn now(&self) -> DateTime<Utc> {
        self.now
    }
}

/// Twenty rules that do not match (DIDs, prefixes, a closed window), then a
/// least-loaded team of 50: the longest walk a call takes.
fn long_rule_set() -> RuleSet {
    let mut rules = Vec::new();
    for i in 0..10 {
        rules.push(Rule {
            id: i,
            priority: i,
            name: format!("did {i}"),
            enabled: true,
            kind: RuleKind::Did {
                key: format!("+7495100000{i}"),
                target: Target::Pbx("Queue/x".into()),
            },
        });
        rules.push(Rule {
            id: 100 + i,
            priority: 100 + i,
            name: format!("prefix {i}"),
            enabled: true,
            kind: RuleKind::Prefix {
                prefix: format!("+9{i}"),
                target: Target::User(1),
            },
        });
    }
    rules.push(Rule {
        id: 500,
        priority: 500,
        name: "Sticky".into(),
        enabled: true,
        kind: RuleKind::Sticky,
    });
    rules.push(Rule {
        id: 900,
        priority: 900,
        name: "Team".into(),
        enabled: true,
        kind: RuleKind::LeastLoaded { team: 1 },
    });
    RuleSet::new(
        rules,
        Some("Queue/support".into()),
        &ringside::config::DevicePattern::default(),
    )
}

fn ctx(owner: Option<CallerOwner>) -> Ctx {
    Ctx {
        owner,
        users: (1..=50)
            .map(|id| RouteUser {
                id,
                login: format!("u{id}"),
                extension: Some(format!("{}", 100 + id)),
                active: true,
            })
            .collect(),
        team: (1..=50).collect(),
        now: Utc::now(),
    }
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    (at(0.50), at(0.99), at(0.999))
}

const HEADERS: &str = "agi_network: yes\nagi_network_script: route\n\
    agi_request: agi://127.0.0.1:4573/route\nagi_channel: PJSIP/trunk-00000007\n\
    agi_language: en\nagi_type: PJSIP\nagi_uniqueid: 1732370000.7\nagi_version: 22.0.0\n\
    agi_callerid: +4930123456\nagi_calleridname: Jens\nagi_callingpres: 0\n\
    agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: 4000\n\
    agi_rdnis: unknown\nagi_context: from-trunk\nagi_extension: 4000\nagi_priority: 2\n\
    agi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 140000000000000\n\n";

/// One FastAGI conversation as Asterisk holds it; returns the target.
fn agi_round_trip(addr: &str) -> String {
    agi_round_trip_with(addr, HEADERS)
}

fn agi_round_trip_with(addr: &str, headers: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    s.write_all(headers.as_bytes()).expect("headers");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut first = String::new();
    for i in 0..4 {
        let mut line = String::new();
        r.read_line(&mut line).expect("command");
        assert!(line.starts_with("SET VARIABLE"), "{line}");
        if i == 0 {
            first = line;
        }
        s.write_all(b"200 result=1\n").expect("reply");
    }
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).ok();
    first
}

/// Starts the real server with a FastAGI listener, a contact owned by an
/// agent and the owner-first rule in front of a team rule.
fn start_server(
    dir: &std::path::Path,
) -> (String, ringside::http::AppState, tokio::runtime::Runtime) {
    // The same runtime `ringside serve` runs on (one worker per core).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let env: Vec<(String, String)> = [
        (
            "RINGSIDE_DATABASE_URL",
            format!("sqlite://{}", dir.join("bench.db").display()),
        ),
        ("RINGSIDE_HTTP_BIND", "127.0.0.1:0".to_owned()),
        ("RINGSIDE_AGI_BIND", "127.0.0.1:0".to_owned()),
        ("RINGSIDE_DEFAULT_REGION", "DE".to_owned()),
        (
            "RINGSIDE_ROUTING_DEFAULT_TARGET",
            "Queue/support".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::load_from(None, &env).unwrap();
    let (addr, state) = rt.block_on(async {
        let server = Server::build(config).await.unwrap();
        let db = server.state.db.clone();
        let team = db.create_team("support").await.unwrap().id;
        let hash = ringside::auth::hash_password("bench-password-1");
        let mut agent = 0;
        for i in 0..10 {
            agent = db
                .create_user(NewUser {
                    login: &format!("agent{i}"),
                    name: "Agent",
                    role: "agent",
                    team_id: Some(team),
                    locale: "en",
                    password_hash: &hash,
                    extensions: &[format!("{}", 101 + i)],
                })
                .await
                .unwrap()
                .id;
        }
        let jens = db
            .create_contact(&ContactData {
                name: "Jens".into(),
                owner_id: Some(agent),
                phones: vec![Phone {
                    raw: "+49 30 123456".into(),
                    e164: "+4930123456".into(),
                    kind: "work".into(),
                }],
                ..Default::default()
            })
            .await
            .unwrap();
        // As the API does after a write, so the caller index knows Jens now.
        server.state.index_numbers(
            ringside::crm::index::Party::Contact(jens.id),
            ["+4930123456"],
        );
        for input in [
            RuleInput {
                kind: Some("sticky".into()),
                name: Some("Owner first".into()),
                priority: Some(10),
                ..Default::default()
            },
            RuleInput {
                kind: Some("round_robin".into()),
                name: Some("Support".into()),
                priority: Some(20),
                target: Some(TargetSpec::TeamId(team)),
                ..Default::default()
            },
        ] {
            db.create_routing_rule(&build_rule(input, None).unwrap())
                .await
                .unwrap();
        }
        server.state.routing.reload(&db).await.unwrap();
        let addr = server
            .agi
            .as_ref()
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let state = server.state.clone();
        tokio::spawn(server.run());
        (addr, state)
    });
    (addr, state, rt)
}

fn main() {
    let set = long_rule_set();
    let rr = RoundRobin::default();
    let sticky = ctx(Some(CallerOwner {
        contact_id: Some(7),
        owner_id: Some(5),
        ..Default::default()
    }));
    let walk = ctx(None);
    let req = RouteRequest {
        caller_e164: Some("+4930123456"),
        did_key: Some("+4930100000"),
        purpose: Purpose::Call,
    };

    // Per-decision distributions.
    for (label, c) in [
        ("owner hit after 20 rules", &sticky),
        ("22 rules to a team of 50", &walk),
    ] {
        let mut v = Vec::with_capacity(200_000);
        for _ in 0..200_000 {
            let t = Instant::now();
            black_box(decide(&set, black_box(&req), c, &rr));
            v.push(t.elapsed());
        }
        let (p50, p99, p999) = percentiles(v);
        println!("decision, {label}: p50 {p50:?}  p99 {p99:?}  p99.9 {p999:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let (addr, state, rt) = start_server(dir.path());
    let v = rt.block_on(async {
        let mut v = Vec::with_capacity(10_000);
        for _ in 0..10_000 {
            let t = Instant::now();
            black_box(state.routing.route(&state, "+4930123456", "4000").await);
            v.push(t.elapsed());
        }
        v
    });
    let (p50, p99, p999) = percentiles(v);
    println!(
        "route() in process (classify, owner looked up in SQLite, decide): \
         p50 {p50:?}  p99 {p99:?}  p99.9 {p999:?}"
    );
    assert!(
        agi_round_trip(&addr).contains("PJSIP/110"),
        "owner's extension"
    );
    for _ in 0..500 {
        agi_round_trip(&addr);
    }
    let mut v = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let t = Instant::now();
        black_box(agi_round_trip(&addr));
        v.push(t.elapsed());
    }
    let (p50, p99, p999) = percentiles(v);
    println!(
        "fastagi round trip, known caller (connect, headers, 4x SET VARIABLE, close; owner looked up in SQLite): \
         p50 {p50:?}  p99 {p99:?}  p99.9 {p999:?}  (budget p99 <= 1 ms)"
    );

    // The floor on this machine: the same five exchanges with a bare echo server.
    let echo = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
                    s.set_nodelay(true).ok();
                    let (r, mut w) = s.into_split();
                    let mut r = tokio::io::BufReader::new(r);
                    let mut line = String::new();
                    for _ in 0..5 {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let _ = w.write_all(line.as_bytes()).await;
                    }
                });
            }
        });
        addr
    });
    let mut v = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let t = Instant::now();
        let mut s = TcpStream::connect(&echo).unwrap();
        s.set_nodelay(true).ok();
        let mut r = BufReader::new(s.try_clone().unwrap());
        for _ in 0..5 {
            s.write_all(b"ping\n").unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
        }
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).ok();
        v.push(t.elapsed());
    }
    let (p50, p99, p999) = percentiles(v);
    println!(
        "loopback floor, bare tokio echo (connect, 5 exchanges, close): \
         p50 {p50:?}  p99 {p99:?}  p99.9 {p999:?}"
    );

    let anonymous = HEADERS.replace("agi_callerid: +4930123456", "agi_callerid: anonymous");
    let mut v = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let t = Instant::now();
        black_box(agi_round_trip_with(&addr, &anonymous));
        v.push(t.elapsed());
    }
    let (p50, p99, p999) = percentiles(v);
    println!(
        "fastagi round trip, withheld caller (no database read): \
         p50 {p50:?}  p99 {p99:?}  p99.9 {p999:?}"
    );

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    c.bench_function("routing/decide_owner_hit", |b| {
        b.iter(|| decide(&set, black_box(&req), &sticky, &rr))
    });
    c.bench_function("routing/decide_walk_to_team", |b| {
        b.iter(|| decide(&set, black_box(&req), &walk, &rr))
    });
    c.bench_function("routing/fastagi_round_trip", |b| {
        b.iter(|| agi_round_trip(&addr))
    });
    c.final_summary();
}
