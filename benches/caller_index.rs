//! Caller-ID lookup at contact-center scale: 1,000,000 contacts with
//! 2,000,000 numbers (RU/UA/DE), raw caller IDs in mixed formats.
//!
//! Prints the figures the budget is checked against — p50/p99 per lookup
//! from a per-lookup latency distribution, index memory per number from a
//! counting allocator, build time — and the same lookup as an indexed SQL
//! query on SQLite and PostgreSQL, then runs the criterion benchmarks.
//! `benches/caller-figures.sh` runs it and keeps only the figures.
//!
//! Environment: `CALLER_BENCH_PG` overrides the PostgreSQL server URL
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); when the server
//! cannot be reached, its part is skipped with a message.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringside::config::PhoneSettings;
use ringside::crm::caller::{Caller, Matcher};
use ringside::crm::index::{CallerIndex, Lookup, Party};
use ringside::crm::phones::E164;

/// Counts live heap bytes so the index can be weighed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

const CONTACTS: i64 = 1_000_000;
const LOOKUPS: usize = 1_000_000;
const SQL_LOOKUPS: usize = 20_000;

/// A stored number: (E.164 digits without `+`).
fn random_number(rng: &mut StdRng) -> String {
    match rng.gen_range(0..8) {
        0..=2 => format!(
            "79{:02}{:07}",
            rng.gen_range(0..70),
            rng.gen_range(0..10_000_000)
        ),
        3 => format!("7495{:07}", rng.gen_range(0..10_000_000)),
        4 | 5 => {
            let op = ["50", "66", "67", "68", "63", "73", "93", "97"][rng.gen_range(0..8)];
            format!("380{op}{:07}", rng.gen_range(0..10_000_000))
        }
        6 => format!(
            "4915{}{:08}",
            rng.gen_range(1..8),
            rng.gen_range(0..100_000_000)
        ),
        _ => format!("4930{:08}", rng.gen_range(0..100_000_000)),
    }
}

/// The way a PBX in Russia might present `digits`.
fn raw_form(digits: &str, rng: &mut StdRng) -> String {
    let ru = digits.starts_with('7');
    match (ru, rng.gen_range(0..6)) {
        (true, 0) => format!("8{}", &digits[1..]),
        (true, 1) => format!(
            "8 ({}) {}-{}-{}",
            &digits[1..4],
            &digits[4..7],
            &digits[7..9],
            &digits[9..]
        ),
        (true, 2) => format!("sip:8{}@pbx.example.com", &digits[1..]),
        (_, 3) => format!("+{} {} {}", &digits[..2], &digits[2..5], &digits[5..]),
        (_, 4) => format!("sip:+{digits}@10.0.0.1:5060"),
        (_, 5) => format!("00{digits}"),
        (false, 0) => format!("810{digits}"),
        _ => format!("+{digits}"),
    }
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    mean: Duration,
}

fn percentiles(mut nanos: Vec<u64>) -> Percentiles {
    nanos.sort_unstable();
    let at = |q: f64| Duration::from_nanos(nanos[((nanos.len() as f64 - 1.0) * q) as usize]);
    let mean = Duration::from_nanos(nanos.iter().sum::<u64>() / nanos.len() as u64);
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        mean,
    }
}

fn show(name: &str, p: &Percentiles) {
    println!(
        "figure: {name:<44} p50 {:>9.2?}  p99 {:>9.2?}  p99.9 {:>9.2?}  mean {:>9.2?}",
        p.p50, p.p99, p.p999, p.mean
    );
}

/// Per-lookup latency of `f` over `inputs`, timed one call at a time.
fn distribution<T>(inputs: &[String], mut f: impl FnMut(&str) -> T) -> Percentiles {
    let mut nanos = Vec::with_capacity(inputs.len());
    for raw in inputs {
        let t = Instant::now();
        black_box(f(black_box(raw)));
        nanos.push(t.elapsed().as_nanos() as u64);
    }
    percentiles(nanos)
}

fn main() {
    let mut rng = StdRng::seed_from_u64(7);

    let before = live();
    let t = Instant::now();
    let matcher = Matcher::new("RU", &PhoneSettings::default()).expect("RU matcher");
    let metadata_time = t.elapsed();
    let metadata_bytes = live() - before;

    let pairs: Vec<(E164, Party)> = (0..CONTACTS)
        .flat_map(|id| [(id, 0), (id, 1)])
        .map(|(id, _)| {
            loop {
                // Only valid numbers reach the database, so only those are stored.
                let number = E164::from_stored(&format!("+{}", random_number(&mut rng)))
                    .expect("generated numbers have E.164 shape");
                if matcher.normalizer().known_valid(number.key()).is_some() {
                    break (number, Party::Contact(id));
                }
            }
        })
        .collect();

    let before = live();
    let t = Instant::now();
    let index = CallerIndex::build(pairs.iter().cloned()).expect("ids in range");
    let build_time = t.elapsed();
    let index_bytes = live() - before;
    let numbers = index.len();

    let known: Vec<String> = (0..LOOKUPS)
        .map(|_| {
            let (number, _) = &pairs[rng.gen_range(0..pairs.len())];
            raw_form(&number.as_str()[1..], &mut rng)
        })
        .collect();
    let unknown: Vec<String> = (0..LOOKUPS / 10)
        .map(|_| {
            let digits = format!(
                "79{:02}{:07}",
                rng.gen_range(70..100),
                rng.gen_range(0..10_000_000)
            );
            raw_form(&digits, &mut rng)
        })
        .collect();
    let withheld: Vec<String> = ["anonymous", "<unknown>", "101", "2045", "restricted"]
        .iter()
        .cycle()
        .take(LOOKUPS / 10)
        .map(|s| s.to_string())
        .collect();

    let hits = known
        .iter()
        .filter(|raw| {
            matches!(
                index.lookup_raw(raw, &matcher),
                Lookup::Exact(_) | Lookup::Candidates(_)
            )
        })
        .count();

    println!("== caller index figures ==");
    println!(
        "figure: library metadata + compiled RU rules  {:.1} MB, {:.1?} at first use (once per process)",
        metadata_bytes as f64 / 1e6,
        metadata_time
    );
    println!(
        "figure: index                                 {numbers} numbers of {} contacts, built in {:.2?}",
        CONTACTS, build_time
    );
    println!(
        "figure: index memory                          {:.1} MB, {:.1} bytes per number",
        index_bytes as f64 / 1e6,
        index_bytes as f64 / numbers as f64
    );
    println!(
        "figure: known numbers found                   {hits} of {}",
        known.len()
    );
    let known_dist = distribution(&known, |raw| index.lookup_raw(raw, &matcher));
    show("lookup_raw, known caller (mixed formats)", &known_dist);
    let unknown_valid = unknown
        .iter()
        .filter(|raw| {
            matches!(
                index.lookup_raw(raw, &matcher),
                Lookup::None { reason } if reason.code() == "unknown"
            )
        })
        .count();
    println!(
        "figure: unknown callers answered `unknown`    {unknown_valid} of {} (the rest are not valid numbers)",
        unknown.len()
    );
    let unknown_dist = distribution(&unknown, |raw| index.lookup_raw(raw, &matcher));
    show("lookup_raw, unknown caller (valid, no card)", &unknown_dist);
    let withheld_dist = distribution(&withheld, |raw| index.lookup_raw(raw, &matcher));
    show("lookup_raw, withheld or extension", &withheld_dist);
    let classify_dist = distribution(&known[..LOOKUPS / 10], |raw| matcher.classify(raw));
    show("classify alone (raw -> E.164, no index)", &classify_dist);
    let library_dist = distribution(&known[..LOOKUPS / 10], |raw| {
        matcher.classify_with_library(raw)
    });
    show("classify through the library only", &library_dist);

    let threads = 2;
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in known.chunks(known.len() / threads) {
            let (index, matcher) = (&index, &matcher);
            s.spawn(move || {
                for raw in part {
                    black_box(index.lookup_raw(raw, matcher));
                }
            });
        }
    });
    println!(
        "figure: {threads} threads sharing the index              {:.2} M lookups/s",
        known.len() as f64 / t.elapsed().as_secs_f64() / 1e6
    );

    let sql_inputs = &known[..SQL_LOOKUPS];
    let in_memory = distribution(sql_inputs, |raw| index.lookup_raw(raw, &matcher));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(sql::sqlite(&pairs, sql_inputs, &matcher)) {
        Ok(p) => compare("SQLite (file, indexed e164)", &p, &in_memory),
        Err(e) => println!("figure: SQLite skipped: {e}"),
    }
    let pg_url = std::env::var("CALLER_BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    match runtime.block_on(sql::postgres(&pg_url, &pairs, sql_inputs, &matcher)) {
        Ok(p) => compare("PostgreSQL (indexed e164)", &p, &in_memory),
        Err(e) => println!("figure: PostgreSQL skipped: {e}"),
    }
    println!("== end of figures ==");

    let mut c = Criterion::default().configure_from_args();
    let mut i = 0;
    c.bench_function("lookup_raw known caller, mixed formats", |b| {
        b.iter(|| {
            i = (i + 1) % known.len();
            index.lookup_raw(black_box(&known[i]), &matcher)
        })
    });
    let mut j = 0;
    c.bench_function("lookup_raw unknown caller", |b| {
        b.iter(|| {
            j = (j + 1) % unknown.len();
            index.lookup_raw(black_box(&unknown[j]), &matcher)
        })
    });
    c.bench_function("build 2M numbers", |b| {
        b.iter(|| CallerIndex::build(pairs.iter().cloned()).map(|i| i.len()))
    });
    c.final_summary();
}

fn compare(name: &str, sql: &Percentiles, memory: &Percentiles) {
    show(&format!("{name}, normalize + SELECT"), sql);
    println!(
        "figure: {name:<44} ratio to the index: p50 {:.0}x, p99 {:.0}x",
        sql.p50.as_secs_f64() / memory.p50.as_secs_f64(),
        sql.p99.as_secs_f64() / memory.p99.as_secs_f64()
    );
}

/// The same lookup as an indexed SQL query: normalize, then
/// `SELECT contact_id FROM phones WHERE e164 = ?`.
mod sql {
    use super::*;
    use sqlx::{Connection, Executor, Row};

    fn normalized(matcher: &Matcher, raw: &str) -> Option<String> {
        match matcher.classify(raw) {
            Caller::Customer(e) => Some(e.as_str().to_owned()),
            _ => None,
        }
    }

    pub async fn sqlite(
        pairs: &[(E164, Party)],
        inputs: &[String],
        matcher: &Matcher,
    ) -> Result<Percentiles, sqlx::Error> {
        let dir = tempfile::tempdir().map_err(sqlx::Error::Io)?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("phones.db").display()
        );
        let mut conn = sqlx::SqliteConnection::connect(&url).await?;
        conn.execute("CREATE TABLE phones(e164 TEXT NOT NULL, contact_id BIGINT NOT NULL)")
            .await?;
        let mut tx = conn.begin().await?;
        for chunk in pairs.chunks(5_000) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO phones(e164, contact_id) ");
            q.push_values(chunk, |mut row, (number, party)| {
                row.push_bind(number.as_str()).push_bind(party.id());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        conn.execute("CREATE INDEX phones_e164 ON phones(e164)")
            .await?;
        conn.execute("ANALYZE").await?;
        measure(
            &mut conn,
            "SELECT contact_id FROM phones WHERE e164 = ?",
            inputs,
            matcher,
        )
        .await
    }

    pub async fn postgres(
        server: &str,
        pairs: &[(E164, Party)],
        inputs: &[String],
        matcher: &Matcher,
    ) -> Result<Percentiles, sqlx::Error> {
        let mut admin = sqlx::PgConnection::connect(server).await?;
        let db = format!("ringside_caller_bench_{}", std::process::id());
        admin
            .execute(format!("DROP DATABASE IF EXISTS {db}").as_str())
            .await?;
        admin
            .execute(format!("CREATE DATABASE {db}").as_str())
            .await?;
        let url = match server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{db}"),
            None => format!("{server}/{db}"),
        };
        let result = async {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            conn.execute("CREATE TABLE phones(e164 TEXT NOT NULL, contact_id BIGINT NOT NULL)")
                .await?;
            for chunk in pairs.chunks(100_000) {
                let numbers: Vec<&str> = chunk.iter().map(|(n, _)| n.as_str()).collect();
                let ids: Vec<i64> = chunk.iter().map(|(_, p)| p.id()).collect();
                sqlx::query("INSERT INTO phones SELECT * FROM UNNEST($1::text[], $2::bigint[])")
                    .bind(numbers)
                    .bind(ids)
                    .execute(&mut conn)
                    .await?;
            }
            conn.execute("CREATE INDEX phones_e164 ON phones(e164)")
                .await?;
            conn.execute("ANALYZE phones").await?;
            let p = measure(
                &mut conn,
                "SELECT contact_id FROM phones WHERE e164 = $1",
                inputs,
                matcher,
            )
            .await;
            conn.close().await?;
            p
        }
        .await;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {db}").as_str())
            .await?;
        result
    }

    async fn measure<DB, C>(
        conn: &mut C,
        query: &str,
        inputs: &[String],
        matcher: &Matcher,
    ) -> Result<Percentiles, sqlx::Error>
    where
        DB: sqlx::Database,
        for<'c> &'c mut C: sqlx::Executor<'c, Database = DB>,
        for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
        i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
        usize: sqlx::ColumnIndex<DB::Row>,
    {
        let mut nanos = Vec::with_capacity(inputs.len());
        let mut found = 0;
        for raw in inputs {
            let t = Instant::now();
            if let Some(number) = normalized(matcher, raw) {
                let rows = sqlx::query(query)
                    .bind(number)
                    .fetch_all(&mut *conn)
                    .await?;
                found += rows
                    .iter()
                    .filter_map(|r| r.try_get::<i64, _>(0).ok())
                    .count()
                    .min(1);
            }
            nanos.push(t.elapsed().as_nanos() as u64);
        }
        if found == 0 {
            return Err(sqlx::Error::RowNotFound);
        }
        Ok(percentiles(nanos))
    }
}
