//! What function telemetry costs a warm invocation: two `lamina serve` processes started by this
//! run, one shipping function logs and `AWS/Lambda` metrics to their stores
//! (`--function-telemetry=true`) and one not (`false`), measured in alternating rounds so that the
//! drift of a shared machine falls on both, beside the same runtime driven directly.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::client::{Client, Creds, Signed};
use crate::stats::Stats;

/// One `telemetry` measurement.
pub struct TelemetryRun {
    /// The `lamina` binary.
    pub lamina: PathBuf,
    /// Parent of both servers' data directories (created empty).
    pub data_dir: PathBuf,
    pub runtime: String,
    pub concurrency: usize,
    /// Invocations per server and round.
    pub requests: usize,
    pub rounds: usize,
    pub memory: u32,
    /// More `lamina serve` flags for both servers.
    pub server_args: Vec<String>,
}

/// A server of this run.
struct Server {
    telemetry: bool,
    child: Child,
    client: Client,
    endpoint: String,
    data_dir: PathBuf,
    invoke: Signed,
    function: String,
    /// Rounds' results.
    rounds: Vec<Stats>,
}

pub async fn run(run: TelemetryRun) -> anyhow::Result<()> {
    let mut servers = Vec::new();
    for telemetry in [true, false] {
        servers.push(Server::start(&run, telemetry).await?);
    }
    let result = measure(&run, &mut servers).await;
    for server in &mut servers {
        server.stop().await;
    }
    result
}

async fn measure(run: &TelemetryRun, servers: &mut [Server]) -> anyhow::Result<()> {
    for server in servers.iter_mut() {
        server.prepare(run).await?;
    }
    println!(
        "Warm invoke of a no-op {} function, {} clients, {} invocations per server and round, {} rounds",
        run.runtime, run.concurrency, run.requests, run.rounds
    );
    println!("round  telemetry  throughput/s  p50 ms  p99 ms  errors");
    for round in 0..run.rounds {
        // Alternate which server goes first, so neither always runs on the warmer (or busier) machine.
        let order: Vec<usize> = if round % 2 == 0 { vec![0, 1] } else { vec![1, 0] };
        for i in order {
            let server = &mut servers[i];
            let stats =
                server.client.fixed_count_each(vec![server.invoke.clone()], run.concurrency, run.requests).await?;
            println!(
                "{round:>5}  {:<9}  {:>12.0}  {:>6.3}  {:>6.3}  {:>6}",
                if server.telemetry { "on" } else { "off" },
                stats.throughput(),
                ms(stats.percentile(50.0)),
                ms(stats.percentile(99.0)),
                stats.errors
            );
            server.rounds.push(stats);
        }
    }
    let direct =
        crate::direct::run(&run.runtime, crate::noop_body(&run.runtime), run.requests, run.concurrency).await?;
    let mut ratios: Vec<f64> = servers[0]
        .rounds
        .iter()
        .zip(&servers[1].rounds)
        .map(|(on, off)| on.throughput() / off.throughput().max(1e-9))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
    let merged: Vec<Stats> = servers.iter_mut().map(|s| merged(std::mem::take(&mut s.rounds))).collect();
    println!();
    println!("| measurement | invocations | throughput/s | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (server, all) in servers.iter().zip(&merged) {
        println!(
            "| Lamina, function telemetry {} | {} | {:.0} | {:.3} | {:.3} |",
            if server.telemetry { "on" } else { "off" },
            all.count(),
            all.throughput(),
            ms(all.percentile(50.0)),
            ms(all.percentile(99.0))
        );
    }
    println!(
        "| Runtime driven directly (baseline) | {} | {:.0} | {:.3} | {:.3} |",
        direct.count(),
        direct.throughput(),
        ms(direct.percentile(50.0)),
        ms(direct.percentile(99.0))
    );
    let (thr_on, thr_off) = (merged[0].throughput(), merged[1].throughput());
    println!();
    println!(
        "Telemetry cost: {:.1} % of warm-invoke throughput over the run (median of rounds: {:.1} %; goal < 5 %)",
        100.0 * (1.0 - thr_on / thr_off.max(1e-9)),
        100.0 * (1.0 - median)
    );
    for server in servers.iter() {
        let (groups, events) = server.stored_logs().await?;
        println!(
            "Telemetry {}: log group of the function {}, {events} log events stored",
            if server.telemetry { "on" } else { "off" },
            if groups { "exists" } else { "absent" }
        );
    }
    Ok(())
}

/// The rounds of one server as one measurement (throughput over the time the rounds took).
fn merged(rounds: Vec<Stats>) -> Stats {
    let mut all = Stats::default();
    let elapsed = rounds.iter().map(|r| r.elapsed).sum();
    for round in rounds {
        all.merge(round);
    }
    all.elapsed = elapsed;
    all
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Server {
    /// Starts `lamina serve` on a fresh data directory; returns once its API answers.
    async fn start(run: &TelemetryRun, telemetry: bool) -> anyhow::Result<Self> {
        let data_dir = run.data_dir.join(if telemetry { "telemetry-on" } else { "telemetry-off" });
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir).with_context(|| format!("empty {}", data_dir.display()))?;
        }
        std::fs::create_dir_all(&data_dir)?;
        let port = free_port()?;
        let log = std::fs::File::create(data_dir.join("server.log")).context("create server.log")?;
        let child = Command::new(&run.lamina)
            .arg("serve")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg("--admin-listen=127.0.0.1:0")
            .arg("--s3-listen=127.0.0.1:0")
            .arg(format!("--function-telemetry={telemetry}"))
            .args(&run.server_args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", run.lamina.display()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let credentials = data_dir.join("credentials");
        let mut server = Self {
            telemetry,
            child,
            client: Client::new(&endpoint, Creds::new("-", "-"))?,
            endpoint: endpoint.clone(),
            data_dir,
            invoke: Client::new(&endpoint, Creds::new("-", "-"))?.presigned_get("/")?,
            function: format!("bench-telemetry-{}", run.runtime.replace('.', "-")),
            rounds: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("lamina serve exited during start-up ({status}); see {}", log_of(&server.data_dir));
            }
            if credentials.exists()
                && let Ok(creds) = Creds::from_file(&credentials)
            {
                server.client = Client::new(&endpoint, creds)?;
                if server.client.call(http::Method::GET, "/2015-03-31/functions", b"").await.is_ok() {
                    return Ok(server);
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "lamina serve did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates the function, and starts and warms one sandbox per client.
    async fn prepare(&mut self, run: &TelemetryRun) -> anyhow::Result<()> {
        let body = crate::noop_body(&run.runtime);
        crate::ensure_function(&self.client, &self.function, &run.runtime, body, run.memory).await?;
        self.client.invoke(&self.function, b"{}").await?;
        self.invoke =
            self.client.presigned_post(&format!("/2015-03-31/functions/{}/invocations", self.function), b"{}")?;
        let warm =
            self.client.fixed_count_each(vec![self.invoke.clone()], run.concurrency, run.concurrency * 50).await?;
        anyhow::ensure!(warm.errors == 0, "warm-up invocations failed: {}", warm.summary());
        Ok(())
    }

    /// Whether the function's log group exists, and how many events it holds (read through
    /// the CloudWatch Logs API: telemetry on must have stored them, off must not).
    async fn stored_logs(&self) -> anyhow::Result<(bool, usize)> {
        let creds = Creds::from_file(&self.data_dir.join("credentials"))?;
        let logs = Client::aws_json(&self.endpoint, creds, "logs")?;
        let group = format!("/aws/lambda/{}", self.function);
        let json = "application/x-amz-json-1.1";
        let groups = logs
            .json_op("Logs_20140328.DescribeLogGroups", json, &serde_json::json!({ "logGroupNamePrefix": group }))
            .await?;
        let exists = groups["logGroups"].as_array().is_some_and(|g| !g.is_empty());
        if !exists {
            return Ok((false, 0));
        }
        let mut events = 0;
        let mut token: Option<String> = None;
        loop {
            let mut request = serde_json::json!({ "logGroupName": group, "limit": 10000 });
            if let Some(t) = &token {
                request["nextToken"] = serde_json::Value::String(t.clone());
            }
            let page = logs.json_op("Logs_20140328.FilterLogEvents", json, &request).await?;
            events += page["events"].as_array().map_or(0, Vec::len);
            token = page["nextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                return Ok((true, events));
            }
        }
    }

    async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

fn log_of(dir: &Path) -> String {
    dir.join("server.log").display().to_string()
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("pick a port")?;
    Ok(l.local_addr()?.port())
}
