//! `crash`: nothing acknowledged is lost. Clients send Event invocations while the server is
//! SIGKILLed at random moments and started again on the same data; every event answered with
//! 202 must then run (to its end) at least once. The function reports `start <request id>` and
//! `done <request id>` to a TCP sink this command runs on the host's loopback (reached from the
//! sandboxes through `--sandbox-allow-host-ports`), so the count does not depend on the server.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rand::Rng as _;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

use crate::client::{Client, Creds};

/// What to run and how hard to hit it.
pub struct CrashRun {
    /// The `lamina` binary.
    pub lamina: PathBuf,
    /// Data directory of the server (created; kept for its logs).
    pub data_dir: PathBuf,
    pub events: usize,
    pub clients: usize,
    pub kills: usize,
    /// Time the server runs between one restart and the next kill: uniform in this range.
    pub min_gap: Duration,
    pub max_gap: Duration,
    /// How long each invocation works (between its start and done reports).
    pub work: Duration,
    /// `lamina cluster` on this Redis and Postgres instead of `lamina serve` on SQLite.
    pub cluster: Option<ClusterBackend>,
    /// After the last restart, how long every acknowledged event may take to finish.
    pub drain_timeout: Duration,
}

pub struct ClusterBackend {
    pub redis_url: String,
    pub database_url: String,
}

/// Reports from the function, as they arrived.
#[derive(Default)]
struct Sink {
    starts: HashMap<String, Vec<Instant>>,
    dones: HashMap<String, Vec<Instant>>,
}

type Shared = Arc<Mutex<Sink>>;

fn lock(sink: &Shared) -> std::sync::MutexGuard<'_, Sink> {
    sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One crash: when the server was killed and when its successor answered again.
struct Crash {
    killed: Instant,
    ready: Instant,
}

pub async fn run(run: CrashRun) -> anyhow::Result<()> {
    std::fs::create_dir_all(&run.data_dir).with_context(|| format!("create {}", run.data_dir.display()))?;
    let sink: Shared = Arc::default();
    let sink_port = serve_sink(sink.clone()).await?;
    let api_port = free_port()?;
    let endpoint = format!("http://127.0.0.1:{api_port}");
    let server = Server { run: &run, api_port, sink_port, prefix: format!("crash-{}", uuid::Uuid::new_v4().simple()) };

    let mut child = server.start().await?;
    let client = Client::new(&endpoint, Creds::from_file(&run.data_dir.join("credentials"))?)?;
    let name = "crash-sink";
    // A timeout far above the work: a slow cold start on a loaded machine must not turn into
    // function errors, whose retries run out and drop the event (that is not what is tested).
    let _ = client.delete_function(name).await;
    let zip = crate::client::zip_of(&[("lambda_function.py", function_body(sink_port, run.work).as_bytes())]);
    client.create_function_timeout(name, "python3.11", "lambda_function.handler", &zip, 60).await?;
    let mode = if run.cluster.is_some() { "lamina cluster (Redis queue)" } else { "lamina serve (SQLite queue)" };
    println!(
        "crash: {mode}, {} events from {} clients, {} SIGKILLs every {:?}..{:?}, {:?} of work per event",
        run.events, run.clients, run.kills, run.min_gap, run.max_gap, run.work
    );

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..run.clients.max(1))
        .map(|_| tokio::spawn(send_events(client.clone(), name, run.events, next.clone(), acked.clone())))
        .collect();

    let mut crashes = Vec::new();
    for _ in 0..run.kills {
        let gap = rand::rng().random_range(run.min_gap..=run.max_gap.max(run.min_gap));
        tokio::time::sleep(gap).await;
        let killed = Instant::now();
        kill_tree(&mut child).await;
        child = server.start().await?;
        crashes.push(Crash { killed, ready: Instant::now() });
    }
    for c in clients {
        c.await.context("client task")??;
    }
    let sent = started.elapsed();
    let acked: Vec<String> = std::mem::take(&mut *acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let last_ready = crashes.last().map_or(started, |c| c.ready);

    // Every acknowledged event done, or the deadline.
    let deadline = Instant::now() + run.drain_timeout;
    let missing = loop {
        let missing: Vec<&String> = {
            let s = lock(&sink);
            acked.iter().filter(|id| !s.dones.contains_key(*id)).collect()
        };
        if missing.is_empty() || Instant::now() >= deadline {
            break missing.len();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Late duplicates (an event run again after a restart) show up shortly after.
    tokio::time::sleep(Duration::from_secs(2)).await;
    kill_tree(&mut child).await;
    // Once more and stopped gracefully: a starting execution host cleans up what the killed one
    // left (frozen idle sandboxes cannot die until thawed), and a stopping one its own sandboxes.
    let mut child = server.start().await?;
    stop(&mut child).await;
    if let Some(c) = &run.cluster
        && let Err(e) = delete_keys(&c.redis_url, &server.prefix).await
    {
        eprintln!("could not delete the run's Redis keys ({}:*): {e:#}", server.prefix);
    }

    let report = Report::of(&lock(&sink), &acked, &crashes, last_ready);
    println!("acknowledged (202): {} in {:.1} s; runs reported done: {}", acked.len(), sent.as_secs_f64(), report.runs);
    let never_started = {
        let s = lock(&sink);
        acked.iter().filter(|id| !s.dones.contains_key(*id) && !s.starts.contains_key(*id)).count()
    };
    println!("lost (acknowledged, never done): {missing} ({never_started} never started)");
    println!("duplicates (done more than once): {} events, {} extra runs", report.duplicated, report.extra_runs);
    println!(
        "interrupted by a kill: {} runs; redelivery after the restart: max {:.2} s, median {:.2} s",
        report.interrupted,
        report.max_redelivery.as_secs_f64(),
        report.median_redelivery.as_secs_f64()
    );
    println!(
        "last acknowledged event done {:.2} s after the final restart (0: before it)",
        report.drained_after.as_secs_f64()
    );
    anyhow::ensure!(missing == 0, "{missing} acknowledged events never ran to the end");
    Ok(())
}

/// Figures from the sink's reports.
struct Report {
    runs: usize,
    duplicated: usize,
    extra_runs: usize,
    interrupted: usize,
    max_redelivery: Duration,
    median_redelivery: Duration,
    drained_after: Duration,
}

impl Report {
    fn of(sink: &Sink, acked: &[String], crashes: &[Crash], last_ready: Instant) -> Self {
        let runs = sink.dones.values().map(Vec::len).sum();
        let acked_set: HashSet<&String> = acked.iter().collect();
        let duplicated = sink.dones.iter().filter(|(id, d)| d.len() > 1 && acked_set.contains(id)).count();
        let extra_runs = sink.dones.values().map(|d| d.len().saturating_sub(1)).sum();
        // A run interrupted by a kill: a start with no done between it and the next kill. Its
        // redelivery delay: from that kill's successor being ready to the event's next start.
        let mut delays = Vec::new();
        for (id, starts) in &sink.starts {
            let dones = sink.dones.get(id).map(Vec::as_slice).unwrap_or_default();
            for start in starts {
                let Some(crash) = crashes.iter().find(|c| c.killed > *start) else { continue };
                if dones.iter().any(|d| d >= start && *d < crash.killed) {
                    continue;
                }
                if let Some(again) = starts.iter().filter(|s| **s >= crash.killed).min() {
                    delays.push(again.saturating_duration_since(crash.ready));
                }
            }
        }
        delays.sort_unstable();
        let drained_after = acked
            .iter()
            .filter_map(|id| sink.dones.get(id).and_then(|d| d.iter().min()))
            .max()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(last_ready));
        Self {
            runs,
            duplicated,
            extra_runs,
            interrupted: delays.len(),
            max_redelivery: delays.last().copied().unwrap_or_default(),
            median_redelivery: delays.get(delays.len() / 2).copied().unwrap_or_default(),
            drained_after,
        }
    }
}

/// One client: sends events until `total` were acknowledged overall; a failed send (server
/// down, 5xx) is sent again as a new request.
async fn send_events(
    client: Client,
    name: &str,
    total: usize,
    next: Arc<AtomicUsize>,
    acked: Arc<Mutex<Vec<String>>>,
) -> anyhow::Result<()> {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return Ok(());
        }
        let body = format!(r#"{{"n":{i}}}"#);
        let mut failures = 0u32;
        loop {
            match client.send_event(name, body.as_bytes()).await {
                Ok((202, Some(id))) => {
                    acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(id);
                    break;
                }
                Ok((status, _)) if status < 500 && status != 429 => {
                    anyhow::bail!("event {i}: HTTP {status}")
                }
                _ => {
                    failures += 1;
                    anyhow::ensure!(failures < 3000, "event {i}: the server did not accept it for minutes");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// How to start the server under test.
struct Server<'a> {
    run: &'a CrashRun,
    api_port: u16,
    sink_port: u16,
    /// Redis key prefix of a cluster (kept across restarts).
    prefix: String,
}

impl Server<'_> {
    /// Starts the server in its own process group; returns once its API answers.
    async fn start(&self) -> anyhow::Result<Child> {
        let run = self.run;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run.data_dir.join("server.log"))
            .context("open server.log")?;
        let mut cmd = Command::new(&run.lamina);
        match &run.cluster {
            None => {
                cmd.arg("serve");
            }
            Some(c) => {
                cmd.args(["cluster", "--frontends=1", "--routers=1", "--exec-hosts=1"])
                    .arg(format!("--redis-url={}", c.redis_url))
                    .arg(format!("--redis-prefix={}", self.prefix))
                    .arg(format!("--database-url={}", c.database_url));
            }
        }
        cmd.arg(format!("--data-dir={}", run.data_dir.display()))
            .arg(format!("--listen=127.0.0.1:{}", self.api_port))
            .arg("--admin-listen=127.0.0.1:0")
            .arg("--s3-listen=127.0.0.1:0")
            .arg(format!("--sandbox-allow-host-ports={}", self.sink_port))
            .arg("--async-retry-delays=1,1")
            .env("LAMINA_ADMIN_TOKEN", "crash-test-admin-token")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("start {}", run.lamina.display()))?;
        let http = health_client();
        let deadline = Instant::now() + Duration::from_secs(120);
        let url: http::Uri = format!("http://127.0.0.1:{}/health", self.api_port).parse()?;
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "the server exited during start-up ({status}); see {}",
                    log_path(&run.data_dir).display()
                );
            }
            if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(2), http.get(url.clone())).await
                && resp.status().is_success()
                && run.data_dir.join("credentials").exists()
            {
                return Ok(child);
            }
            anyhow::ensure!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("server.log")
}

type HealthClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

fn health_client() -> HealthClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new())
}

/// SIGKILL to the server's whole process group (a cluster's services, sandboxes that stayed in
/// it), then reaps the server.
async fn kill_tree(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let _ = child.kill().await;
    let _ = child.wait().await;
}

/// Deletes the cluster's Redis keys (`{prefix}:*`).
async fn delete_keys(url: &str, prefix: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection()).await??;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await?;
    if !keys.is_empty() {
        redis::cmd("DEL").arg(keys).query_async::<i64>(&mut conn).await?;
    }
    Ok(())
}

/// SIGTERM to the server; SIGKILL to its group if it has not stopped within a minute.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(60), child.wait()).await.is_err() {
        kill_tree(child).await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("pick a port")?;
    Ok(l.local_addr()?.port())
}

/// The sink: one line `start|done <request id>` per connection.
async fn serve_sink(sink: Shared) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind the sink")?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let at = Instant::now();
                    let mut s = lock(&sink);
                    match line.split_once(' ') {
                        Some(("start", id)) => s.starts.entry(id.to_owned()).or_default().push(at),
                        Some(("done", id)) => s.dones.entry(id.to_owned()).or_default().push(at),
                        _ => {}
                    }
                }
            });
        }
    });
    Ok(port)
}

/// The function: reports its start, works, reports that it is done (the report is its last act:
/// a run cut short before it does not count).
fn function_body(port: u16, work: Duration) -> String {
    format!(
        r#"import socket, time

def tell(word, request_id):
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", {port}), timeout=2) as s:
                s.sendall(("%s %s\n" % (word, request_id)).encode())
            return
        except OSError:
            time.sleep(0.05)
    raise Exception("sink unreachable")

def handler(event, context):
    tell("start", context.aws_request_id)
    time.sleep({work})
    tell("done", context.aws_request_id)
"#,
        work = work.as_secs_f64()
    )
}
