//! What the store tests share: one test per engine (`engine_tests!`), a fresh Postgres database
//! per test (dropped when the test ends, passed or failed), the service under test.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lamina_metadata::Store;
use lamina_observability::{LogLimits, Observability};
use sqlx::Connection as _;

/// Runs each named `async fn(Store)` of the calling test file on SQLite and on a fresh Postgres
/// database.
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let url = format!("sqlite://{}", dir.path().join("metadata.db").display());
                    let store = lamina_metadata::Store::connect(&url).await.expect("open sqlite");
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((url, _db)) = crate::common::postgres_database().await else { return };
                    let store = lamina_metadata::Store::connect(&url).await.expect("open postgres");
                    super::$name(store.clone()).await;
                    if let lamina_metadata::Store::Postgres(pool) = store {
                        pool.close().await;
                    }
                }
            )*
        }
    };
}

fn postgres_base() -> String {
    std::env::var("LAMINA_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

async fn admin_connection() -> Option<sqlx::PgConnection> {
    let url = format!("{}/postgres", postgres_base());
    match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => Some(conn),
        outcome => {
            assert!(std::env::var_os("CI").is_none(), "Postgres is required under CI: {outcome:?}");
            eprintln!("skipping: Postgres unreachable");
            None
        }
    }
}

/// A test database, dropped (with its connections) when the test ends, passed or failed.
pub struct TestDatabase(String);

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.0.clone();
        // Its own thread and runtime: the test's runtime may be unwinding.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(drop_postgres_database(&name));
            }
        })
        .join();
    }
}

pub async fn postgres_database() -> Option<(String, TestDatabase)> {
    let mut conn = admin_connection().await?;
    // Unique across processes (pid, clock) and across this process's parallel tests (counter).
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("lamina_test_{}_{nanos}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    sqlx::query(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    Some((format!("{}/{name}", postgres_base()), TestDatabase(name)))
}

pub async fn drop_postgres_database(name: &str) {
    if let Some(mut conn) = admin_connection().await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("drop database if exists \"{name}\" with (force)")))
            .execute(&mut conn)
            .await;
    }
}

/// The service under test on `store`.
pub fn obs(store: &Store) -> Observability {
    Observability::new(store.clone(), "us-east-1", LogLimits::default())
}
