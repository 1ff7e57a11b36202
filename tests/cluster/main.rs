//! Fault tests against a real `lamina cluster` (every service its own process, Postgres and Redis):
//! execution hosts and routers killed with SIGKILL under load, the account limit under contention
//! across routers, and Redis going away and coming back.
//!
//! The tests run one at a time ([`serial`]): each starts a cluster of seven processes and measures
//! timing-sensitive behaviour, which parallel clusters on a small machine would distort.

mod concurrency;
mod exec_host_kill;
mod postgres_restart;
mod probe;
mod redis_restart;
mod revocation;
mod router_failover;
mod router_kill;
mod shutdown;

use std::sync::LazyLock;
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use lamina_tests::{ClusterOptions, TestEnv};

static SERIAL: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Held for a whole test so that no two clusters run at once.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Running under CI: unavailable backends fail tests instead of skipping them.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// Whether Redis at `url` answers PING; under CI an unreachable Redis fails the test instead.
pub async fn redis_available(url: &str) -> bool {
    let ping = async {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(_)) => true,
        result if !in_ci() => {
            eprintln!("skipping: Redis at {url} unreachable ({result:?}); CI would fail here");
            false
        }
        result => panic!("Redis is required under CI: {result:?}"),
    }
}

/// Starts a cluster laid out as `layout`; `None` (skip) when Redis or Postgres is unreachable
/// outside CI.
pub async fn start(layout: &ClusterOptions) -> Option<TestEnv> {
    if !redis_available(&layout.redis_url).await {
        return None;
    }
    TestEnv::start_cluster(layout).await
}

/// CreateFunction of `lambda_function.handler` on python3.11 with `source` as the module.
pub fn create_python(client: &Client, name: &str, source: &str, timeout_s: i32) -> CreateFunctionFluentBuilder {
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::from("python3.11"))
        .role("arn:aws:iam::123456789012:role/lambda-role")
        .handler("lambda_function.handler")
        .timeout(timeout_s)
        .code(FunctionCode::builder().zip_file(Blob::new(lamina_tests::python_zip(source))).build())
}

/// A JSON payload.
pub fn payload(v: &serde_json::Value) -> Blob {
    Blob::new(v.to_string())
}

/// HTTP status and AWS error code of a failed call.
pub fn error_of<E: ProvideErrorMetadata + std::fmt::Debug>(
    err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> (u16, String) {
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let code = err.as_service_error().and_then(|e| e.code()).map(str::to_owned).unwrap_or_else(|| format!("{err:?}"));
    (status, code)
}

/// A server-side failure the client can retry, reported the AWS way.
pub fn is_clean_5xx(status: u16, code: &str) -> bool {
    (500..600).contains(&status) && matches!(code, "ServiceException" | "ServiceUnavailableException")
}

/// SIGKILL.
pub fn kill9(pid: u32) {
    let status = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill -KILL {pid}: {status}");
}

/// The process has exited (gone, or a zombie its parent has not reaped yet).
pub fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) == Some("Z"),
        Err(_) => true,
    }
}

/// Waits until `pid` has exited.
pub async fn wait_gone(pid: u32) {
    lamina_tests::wait_until(Duration::from_secs(5), &format!("process {pid} to exit"), || async move {
        is_gone(pid).then_some(())
    })
    .await;
}

/// Number of live processes below `pid` (its sandboxes, for an execution host).
pub fn descendants(pid: u32) -> usize {
    let mut parent = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let mut rest = stat.rsplit(')').next().unwrap_or_default().split_whitespace();
        if rest.next() == Some("Z") {
            continue;
        }
        if let Some(pp) = rest.next().and_then(|x| x.parse::<u32>().ok()) {
            parent.insert(p, pp);
        }
    }
    parent
        .keys()
        .filter(|&&p| {
            let mut cur = p;
            while let Some(&pp) = parent.get(&cur) {
                if pp == pid {
                    return true;
                }
                if pp <= 1 {
                    break;
                }
                cur = pp;
            }
            false
        })
        .count()
}

/// Runs futures as concurrent tasks and collects their outputs in order.
pub async fn join_all<F>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
