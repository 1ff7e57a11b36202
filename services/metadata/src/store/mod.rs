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
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}

impl Store {
    /// Opens the database and applies the engine's migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .context("connect to postgres")?;
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
