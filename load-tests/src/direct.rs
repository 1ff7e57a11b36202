//! The baseline: the same bootstrap driven over a minimal in-process Runtime API, no Lamina.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use tokio::sync::{Barrier, Mutex, mpsc, oneshot};

use crate::stats::Stats;

type Pending = Arc<Mutex<Option<oneshot::Sender<Bytes>>>>;

#[derive(Clone)]
struct Api {
    events: Arc<Mutex<mpsc::Receiver<(String, Bytes)>>>,
    pending: Pending,
}

async fn next(State(api): State<Api>) -> (HeaderMap, Bytes) {
    let (id, body) = api.events.lock().await.recv().await.unwrap_or_default();
    let mut h = HeaderMap::new();
    let deadline = (std::time::SystemTime::now() + std::time::Duration::from_secs(3))
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    for (k, v) in [
        ("lambda-runtime-aws-request-id", id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:000000000000:function:direct".into()),
        ("lambda-runtime-trace-id", "Root=1-0-0".into()),
        ("content-type", "application/json".into()),
    ] {
        if let (Ok(name), Ok(value)) = (k.parse::<axum::http::HeaderName>(), v.parse()) {
            h.insert(name, value);
        }
    }
    (h, body)
}

async fn respond(State(api): State<Api>, Path(_id): Path<String>, body: Bytes) -> &'static str {
    if let Some(tx) = api.pending.lock().await.take() {
        let _ = tx.send(body);
    }
    "{\"status\":\"OK\"}"
}

/// Runs `requests` invocations of `handler_body` on `concurrency` real bootstrap processes, each
/// driven sequentially over its own minimal Runtime API: the same shape of load as `concurrency`
/// clients invoking through Lamina, which then runs that many sandboxes.
pub async fn run(runtime: &str, handler_body: &str, requests: usize, concurrency: usize) -> anyhow::Result<Stats> {
    let concurrency = concurrency.max(1);
    // Every process has started and answered once before the timed part begins.
    let ready = Arc::new(Barrier::new(concurrency));
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let share = (requests / concurrency + usize::from(worker < requests % concurrency)).max(1);
        let (runtime, body, ready) = (runtime.to_owned(), handler_body.to_owned(), ready.clone());
        tasks.push(tokio::spawn(async move { run_one(&runtime, &body, share, worker, &ready).await }));
    }
    let mut stats = Stats::default();
    let mut wall = std::time::Duration::ZERO;
    for task in tasks {
        let one = task.await??;
        wall = wall.max(one.elapsed);
        stats.merge(one);
    }
    stats.elapsed = wall;
    Ok(stats)
}

/// One bootstrap process, `requests` sequential invocations after a first (start-up) one.
async fn run_one(
    runtime: &str,
    handler_body: &str,
    requests: usize,
    worker: usize,
    ready: &Barrier,
) -> anyhow::Result<Stats> {
    let (tx, rx) = mpsc::channel::<(String, Bytes)>(1);
    let api = Api { events: Arc::new(Mutex::new(rx)), pending: Arc::default() };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(respond))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let task = tempfile_dir(worker)?;
    let repo = std::env::current_dir()?;
    let (program, file, bootstrap) = if runtime.starts_with("python") {
        ("/usr/bin/python3.11", "lambda_function.py", repo.join("runtimes/python/bootstrap.py"))
    } else {
        ("/usr/bin/node", "index.js", repo.join("runtimes/nodejs/bootstrap.js"))
    };
    std::fs::write(task.join(file), handler_body)?;
    let handler = if runtime.starts_with("python") { "lambda_function.handler" } else { "index.handler" };
    // The execution host's command line: `-S` for Python (the runtime adds site-packages itself).
    let flags: &[&str] = if runtime.starts_with("python") { &["-u", "-S"] } else { &[] };
    let mut child = tokio::process::Command::new(program)
        .args(flags)
        .arg(&bootstrap)
        .current_dir(&task)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("_HANDLER", handler)
        .env("LAMBDA_TASK_ROOT", &task)
        .env("AWS_LAMBDA_FUNCTION_NAME", "direct")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", bootstrap.display()))?;
    let mut stats = Stats::default();
    let mut started = Instant::now();
    for i in 0..=requests {
        if i == 1 {
            ready.wait().await;
            started = Instant::now();
        }
        let (done_tx, done_rx) = oneshot::channel();
        *api.pending.lock().await = Some(done_tx);
        let t = Instant::now();
        tx.send((format!("req-{i}"), Bytes::from_static(b"{}"))).await?;
        done_rx.await.context("runtime answered")?;
        if i > 0 {
            stats.record(t.elapsed()); // the first one includes start-up
        }
    }
    stats.elapsed = started.elapsed();
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&task);
    Ok(stats)
}

fn tempfile_dir(worker: usize) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("lamina-direct-{}-{worker}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
