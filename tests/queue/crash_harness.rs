//! The shortened crash run of the load harness: `lamina-load crash` SIGKILLs a `lamina serve` a
//! few times while clients send Event invocations, and fails if an acknowledged event never ran
//! to its end (the full run and its figures are in docs/benchmarks.md).

use std::time::Duration;

use crate::binary;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_event_is_lost_when_the_server_is_killed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut run = tokio::process::Command::new(binary("lamina-load"));
    run.arg("crash")
        .arg(format!("--lamina={}", lamina_tests::lamina_binary().display()))
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .args(["--events=200", "--clients=4", "--kills=3", "--min-gap-ms=500", "--max-gap-ms=2000"])
        .args(["--work-ms=200", "--drain-timeout=60"])
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(110), run.output())
        .await
        .expect("the crash run finished in time")
        .expect("run lamina-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.path().join("data/server.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(
        out.status.success(),
        "lamina-load crash failed:\n{stdout}\n{}\nserver log (end):\n{tail}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("lost (acknowledged, never done): 0"), "{stdout}");
    println!("{stdout}");
}

/// The same against `lamina cluster` with its queue on Redis (the whole cluster is killed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_event_is_lost_when_the_cluster_is_killed() {
    use sqlx::Connection as _;
    let base = lamina_tests::postgres_base();
    let admin = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&format!("{base}/postgres")));
    let mut admin = match admin.await {
        Ok(Ok(conn)) => conn,
        other => {
            let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
            assert!(!ci, "Postgres is required under CI: {:?}", other.err());
            eprintln!("skipping: Postgres unreachable");
            return;
        }
    };
    let db = format!("lamina_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("create database \"{db}\""))).execute(&mut admin).await.expect("create db");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut run = tokio::process::Command::new(binary("lamina-load"));
    run.arg("crash")
        .arg(format!("--lamina={}", lamina_tests::lamina_binary().display()))
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!("--redis-url={}", lamina_tests::redis_url()))
        .arg(format!("--database-url={base}/{db}"))
        .args(["--events=200", "--clients=4", "--kills=3", "--min-gap-ms=1000", "--max-gap-ms=3000"])
        .args(["--work-ms=200", "--drain-timeout=60"])
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(110), run.output())
        .await
        .expect("the crash run finished in time")
        .expect("run lamina-load");
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("drop database if exists \"{db}\" with (force)")))
        .execute(&mut admin)
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lamina-load crash failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("lost (acknowledged, never done): 0"), "{stdout}");
    println!("{stdout}");
}
