//! The storage engine seam: one enum, the same SQL on both engines.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// A metadata database. Queries are written once in the dialect both engines accept
/// (`$n` parameters, `on conflict`, `returning`) and run through [`on_pool!`].
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever pool the store holds.
#[macro_export]
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {{
        // Every query's latency, in one place (`lamina_db_query_duration_seconds`).
        let started = ::std::time::Instant::now();
        let (engine, out) = match $store {
            $crate::store::Store::Sqlite($pool) => ("sqlite", $body),
            $crate::store::Store::Postgres($pool) => ("postgres", $body),
        };
        $crate::metrics::record(engine, "query", started);
        out
    }};
}

/// Row-lock clauses to append to a `select` inside [`in_tx!`]: Postgres takes row locks, while on
/// SQLite the `begin immediate` that opened the transaction already holds the database write lock.
#[derive(Debug, Clone, Copy)]
pub struct RowLocks {
    /// Exclusive: for the row the transaction is about to change or delete.
    pub update: &'static str,
    /// Shared: for a row that must still exist at commit (a version an alias will point to).
    pub share: &'static str,
    /// Exclusive without blocking foreign-key checks: for the account row that serialises quota checks.
    pub no_key_update: &'static str,
}

impl RowLocks {
    /// The clauses of the SQLite engine (none).
    pub const SQLITE: Self = Self { update: "", share: "", no_key_update: "" };
    /// The clauses of the Postgres engine.
    pub const POSTGRES: Self = Self { update: " for update", share: " for share", no_key_update: " for no key update" };
}

/// Runs `$body` in one write transaction on either engine and commits it; `$tx` names the
/// transaction and `$locks` (optional) the engine's [`RowLocks`]. Leaving `$body` early with
/// `return` or `?` drops the transaction, which rolls it back.
///
/// On SQLite the transaction starts with `begin immediate`: sqlx's plain `begin` is deferred, so a
/// transaction that reads and then writes would upgrade its lock late and fail with `SQLITE_BUSY`
/// (not wait) when another writer committed in between. Taking the write lock first makes the
/// busy timeout apply and serialises read-modify-write transactions.
macro_rules! in_tx {
    ($store:expr, $tx:ident => $body:block) => {
        $crate::store::in_tx!($store, $tx, _locks => $body)
    };
    ($store:expr, $tx:ident, $locks:ident => $body:block) => {
        match $store {
            $crate::store::Store::Sqlite(pool) => {
                let started = ::std::time::Instant::now();
                let $locks = $crate::store::RowLocks::SQLITE;
                let mut $tx = pool.begin_with("begin immediate").await.context("begin transaction")?;
                let out = $body;
                $tx.commit().await.context("commit transaction")?;
                $crate::metrics::record("sqlite", "transaction", started);
                out
            }
            $crate::store::Store::Postgres(pool) => {
                let started = ::std::time::Instant::now();
                let $locks = $crate::store::RowLocks::POSTGRES;
                let mut $tx = pool.begin().await.context("begin transaction")?;
                let out = $body;
                $tx.commit().await.context("commit transaction")?;
                $crate::metrics::record("postgres", "transaction", started);
                out
            }
        }
    };
}
pub(crate) use in_tx;

/// `sql` (a constant) with a lock clause appended; see [`RowLocks`].
pub(crate) fn locked(sql: &'static str, lock: &'static str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("{sql}{lock}"))
}

/// How long a query waits for a Postgres connection. While the server is unreachable every query
/// waits this long (sqlx retries a refused connection until then) and fails, and a failing API call
/// may make two queries (CreateFunction and UpdateFunctionCode then check whether the code they
/// uploaded is referenced): 2 x 5 s keeps the client's answer, a clean 5xx, under ~10 s. (At 10 s,
/// CreateFunction took 20 s to fail with Postgres down.) A healthy pool of 16 hands out a
/// connection in milliseconds; waiting longer only means the database is overloaded or gone.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long startup waits for a Postgres server that is not accepting connections yet.
const PG_STARTUP_WAIT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens the database and applies the engine's migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                .connect_lazy(url)
                .context("parse postgres url")?;
            // At startup, wait as long as before for a server that is still coming up.
            let deadline = tokio::time::Instant::now() + PG_STARTUP_WAIT;
            loop {
                match pool.acquire().await {
                    Ok(_) => break,
                    Err(sqlx::Error::PoolTimedOut) if tokio::time::Instant::now() < deadline => {}
                    Err(err) => return Err(err).context("connect to postgres"),
                }
            }
            sqlx::migrate!("../../migrations/postgres").run(&pool).await.context("apply postgres migrations")?;
            Ok(Self::Postgres(pool))
        } else {
            let options = SqliteConnectOptions::from_str(url)
                .context("parse sqlite url")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await
                .context("open sqlite database")?;
            sqlx::migrate!("../../migrations/sqlite").run(&pool).await.context("apply sqlite migrations")?;
            Ok(Self::Sqlite(pool))
        }
    }

    /// Runs one raw statement; tests use it to prove what the schema forbids.
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, sqlx::Error> {
        on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(pool).await.map(|r| r.rows_affected()))
    }
}
