//! Storage: the sqlx pool and the only place in Ringside with SQL.
//!
//! One `AnyPool` serves SQLite (default, a file in WAL mode) and PostgreSQL.
//! The SQL is written once in the dialect both understand (`$n` parameters,
//! `RETURNING`, integers for times and flags); only the migrations differ.

pub mod activities;
pub mod audit;
pub mod calls;
pub mod cards;
pub mod companies;
pub mod contacts;
pub mod deals;
pub mod import;
pub mod leads;
pub mod routing;
pub mod tasks;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor};

pub use sqlx::Error as SqlError;

/// Which server is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl StoreError {
    /// Maps unique/foreign-key violations to user-facing errors.
    pub fn from_write(e: sqlx::Error, what: &str) -> StoreError {
        if let sqlx::Error::Database(db) = &e {
            let msg = db.message().to_ascii_lowercase();
            if msg.contains("unique") || msg.contains("duplicate") {
                return StoreError::Conflict(format!("{what} already exists"));
            }
            if msg.contains("foreign key") {
                return StoreError::Invalid(format!(
                    "{what} refers to a record that does not exist"
                ));
            }
        }
        StoreError::Sql(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connects; a SQLite file is created on first use and put in WAL mode.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| anyhow::anyhow!("database URL `{url}`: {e}"))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            // A SQLite connection is a file, not a link that can drop: a
            // ping before each query would only double its round trips to
            // the connection's thread.
            .test_before_acquire(backend != Backend::Sqlite)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            // The busy timeout first: switching to WAL may itself
                            // wait for another connection's lock.
                            "PRAGMA busy_timeout=10000; PRAGMA journal_mode=WAL; \
                         PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open database `{url}`: {e}"))?;
        Ok(Db { pool, backend })
    }

    /// Starts a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`), waiting up to the busy timeout for
    /// another writer: a deferred transaction that reads first and then
    /// writes would fail at once with "database is locked" when a
    /// concurrent writer got in between, and the busy timeout cannot help
    /// it. PostgreSQL's row locks wait on their own.
    ///
    /// Do not use the pool inside the transaction: everything it reads
    /// must go through the transaction, or writers waiting for the lock
    /// can hold every connection while the one holding it waits for one.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))
    }

    /// A consistent online copy of a SQLite database (readers and writers keep going).
    pub async fn backup_sqlite(&self, target: &std::path::Path) -> anyhow::Result<()> {
        if self.backend != Backend::Sqlite {
            anyhow::bail!("backup copies SQLite databases; for PostgreSQL use pg_dump");
        }
        if target.exists() {
            anyhow::bail!("{} already exists; choose a new file", target.display());
        }
        let path = target
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("backup path must be valid UTF-8"))?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, the unit of every stored time.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A value bound to a dynamically built statement.
#[derive(Debug, Clone)]
pub enum Arg {
    I(i64),
    S(String),
}

/// Builds `$n`-numbered SQL with its arguments, for filters known only at run time.
#[derive(Debug, Default)]
pub struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }
    /// Appends a placeholder for `arg`.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }
    pub fn query_as<'q, T>(
        &'q self,
    ) -> sqlx::query::QueryAs<'q, Any, T, sqlx::any::AnyArguments<'q>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut q = sqlx::query_as::<Any, T>(&self.text);
        for a in &self.args {
            q = match a {
                Arg::I(v) => q.bind(*v),
                Arg::S(v) => q.bind(v.clone()),
            };
        }
        q
    }
}

/// Who is asking: decides which owners' records a query may return.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Managers and admins: everything.
    All,
    /// Agents and supervisors: unowned records, their own, their team's.
    Team { user_id: i64, team_id: Option<i64> },
}

impl Scope {
    /// Appends `AND (<owner column> is visible)` to `sql`.
    pub fn restrict(&self, sql: &mut Sql, owner_col: &str) {
        if let Scope::Team { user_id, team_id } = *self {
            sql.push(" AND (")
                .push(owner_col)
                .push(" IS NULL OR ")
                .push(owner_col)
                .push(" = ")
                .bind(Arg::I(user_id));
            if let Some(team) = team_id {
                sql.push(" OR ")
                    .push(owner_col)
                    .push(" IN (SELECT id FROM users WHERE team_id = ")
                    .bind(Arg::I(team))
                    .push(")");
            }
            sql.push(")");
        }
    }

    /// Whether a record owned by `owner` is visible.
    pub async fn allows(&self, db: &Db, owner: Option<i64>) -> Result<bool> {
        match (*self, owner) {
            (Scope::All, _) | (_, None) => Ok(true),
            (Scope::Team { user_id, team_id }, Some(owner)) => {
                if owner == user_id {
                    return Ok(true);
                }
                let Some(team) = team_id else {
                    return Ok(false);
                };
                let owner_team: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT team_id FROM users WHERE id = $1")
                        .bind(owner)
                        .fetch_optional(&db.pool)
                        .await?;
                Ok(owner_team.flatten() == Some(team))
            }
        }
    }
}

/// Lower-cased text used for case-insensitive search on both backends
/// (SQLite's LOWER only folds ASCII, so folding happens here, in Rust).
pub fn search_key(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Escapes `%`, `_` and `\` for a LIKE pattern used with `ESCAPE '\'`.
pub fn like_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Serializes a 0/1 column as a JSON boolean.
pub fn ser_flag<S: serde::Serializer>(v: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_bool(*v != 0)
}

/// Serializes a unix-milliseconds column as RFC 3339 (UTC).
pub fn ser_time<S: serde::Serializer>(v: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_time(*v))
}

pub fn ser_opt_time<S: serde::Serializer>(
    v: &Option<i64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&fmt_time(*v)),
        None => s.serialize_none(),
    }
}

pub fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
