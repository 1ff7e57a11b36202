//! `lamina cluster`: the distributed topology on one machine, each service a `lamina <service>`
//! child process. How developers, the test suite and the load tests run distributed mode.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use lamina_metadata::{Metadata, SecretCipher};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::cli::{ExecArgs, HttpArgs, S3Args, Secret};
use crate::serve::{Secrets, ensure_default_account};

/// `lamina cluster`.
#[derive(Debug, Args, Clone)]
pub struct ClusterArgs {
    /// Data directory (credentials, keys, each process's own directory, logs).
    #[arg(long, env = "LAMINA_DATA_DIR", default_value = "./lamina-data")]
    pub data_dir: PathBuf,
    /// Address of the Lambda API, shared by the frontends.
    #[arg(long, env = "LAMINA_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// `--admin-listen` (admin API, `/metrics`) is shared by the frontends like `--listen`; port 0
    /// picks one, printed when ready.
    #[command(flatten)]
    pub http: HttpArgs,
    /// `--s3-listen` is served by the code-storage process; port 0 picks one, printed when ready.
    #[command(flatten)]
    pub s3: S3Args,
    /// Region served.
    #[arg(long, env = "LAMINA_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Metadata database (`postgres://…`).
    #[arg(long, env = "LAMINA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
    /// Redis (`redis://…`).
    #[arg(long, env = "LAMINA_REDIS_URL", hide_env_values = true)]
    pub redis_url: Secret,
    /// Prefix of every Redis key.
    #[arg(long, env = "LAMINA_REDIS_PREFIX", default_value = "lamina")]
    pub redis_prefix: String,
    /// Admin API bearer token; default generated into <data-dir>/admin-token.
    #[arg(long, env = "LAMINA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Base64 32-byte master key; default generated into <data-dir>/master.key.
    #[arg(long, env = "LAMINA_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<Secret>,
    /// Frontend processes.
    #[arg(long, default_value_t = 2)]
    pub frontends: usize,
    /// Metadata-service processes.
    #[arg(long, default_value_t = 1)]
    pub metadata: usize,
    /// Invoke-router processes.
    #[arg(long, default_value_t = 2)]
    pub routers: usize,
    /// Execution-host processes.
    #[arg(long, default_value_t = 3)]
    pub exec_hosts: usize,
    /// Async-queue processes (each runs Event invocations, the scheduler and event-source pollers;
    /// one firing per schedule tick and one poller per queue or stream across all of them).
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// TOML file with execution-host settings and the runtime registry.
    #[arg(long, env = "LAMINA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Seconds before each retry of a failed Event invocation, e.g. `60,120`.
    #[arg(long, env = "LAMINA_ASYNC_RETRY_DELAYS")]
    pub async_retry_delays: Option<String>,
    /// Seconds a crashed router's concurrency slots stay taken.
    #[arg(long, env = "LAMINA_LEASE_TTL", default_value_t = 10)]
    pub lease_ttl_secs: u64,
    #[command(flatten)]
    pub logs: crate::cli::LogStoreArgs,
    #[command(flatten)]
    pub telemetry: crate::cli::TelemetryArgs,
}

/// Set in each child: the cluster's pid, so the child dies with it.
const CLUSTER_PID: &str = "LAMINA_CLUSTER_PID";

/// In a child of `lamina cluster`: asks the kernel for SIGTERM when the cluster process dies (even by
/// SIGKILL), so no service outlives its cluster; exits at once if the cluster is already gone.
pub fn die_with_cluster() -> anyhow::Result<()> {
    let Some(pid) = std::env::var(CLUSTER_PID).ok().and_then(|p| p.parse::<i32>().ok()) else {
        return Ok(());
    };
    // The signal is sent when the parent thread exits; tokio's
    // worker threads, which spawn the children, live as long as the cluster's runtime.
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).context("set parent-death signal")?;
    if nix::unistd::getppid() != Pid::from_raw(pid) {
        anyhow::bail!("the cluster that started this process is gone");
    }
    Ok(())
}

/// One child process.
struct Proc {
    name: String,
    http: SocketAddr,
    child: Child,
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("pick a free port")?;
    Ok(l.local_addr()?)
}

/// Holds a shared address (API, admin) for the cluster's life: bound with SO_REUSEPORT (never
/// listening), so the frontends can share it while no other process picks it (port 0 picks one here).
fn reserve_api(addr: SocketAddr) -> anyhow::Result<(tokio::net::TcpSocket, SocketAddr)> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr).with_context(|| format!("bind {addr}"))?;
    let bound = socket.local_addr()?;
    Ok((socket, bound))
}

/// Start-up attempts: a child that loses its (picked, then released) port to another process exits
/// at once, and the whole topology starts again on fresh ports.
const START_ATTEMPTS: usize = 3;

/// Starts the topology, waits for `stop`, then stops the processes front to back.
pub async fn run(args: ClusterArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.frontends >= 1 && args.metadata >= 1 && args.routers >= 1 && args.exec_hosts >= 1 && args.queues >= 1,
        "every service needs a process"
    );
    let secrets = Secrets::load(
        &args.data_dir,
        args.master_key.as_ref().map(Secret::expose),
        args.admin_token.as_ref().map(Secret::expose),
    )?;
    {
        // Migrations and the `default` account, once, before the services start.
        let metadata = Metadata::connect(args.database_url.expose(), SecretCipher::new(&secrets.master)).await?;
        ensure_default_account(&metadata, &args.data_dir).await?;
    }
    let logs = args.data_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;
    let exe = std::env::current_exe().context("find the lamina binary")?;
    let (_api_reservation, api) = reserve_api(args.listen)?;
    let (_admin_reservation, admin) = reserve_api(args.http.admin_listen)?;
    let (_s3_reservation, s3) = reserve_api(args.s3.s3_listen)?;
    let s3_public_url = args.s3.s3_public_url.clone().unwrap_or_else(|| format!("http://{s3}"));
    let spawn = |name: String, service: &str, extra: Vec<String>| -> anyhow::Result<Proc> {
        let http = free_addr()?;
        let dir = args.data_dir.join(&name);
        let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
        let mut cmd = Command::new(&exe);
        cmd.arg(service)
            .arg(format!("--data-dir={}", dir.display()))
            .arg(format!("--region={}", args.region))
            .arg(format!("--http-listen={http}"))
            .args(extra)
            .env("LAMINA_MASTER_KEY", &secrets.master_b64)
            .env("LAMINA_ADMIN_TOKEN", &secrets.admin_token)
            .env("LAMINA_REDIS_URL", args.redis_url.expose())
            .env("LAMINA_REDIS_PREFIX", &args.redis_prefix)
            .env(CLUSTER_PID, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if service == "metadata" {
            // Only the metadata service talks to the database.
            cmd.env("LAMINA_DATABASE_URL", args.database_url.expose());
        }
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        Ok(Proc { name, http, child })
    };

    let mut started: Vec<Proc> = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let metadata_addrs: Vec<String> =
                (0..args.metadata).map(|_| free_addr().map(|a| a.to_string())).collect::<anyhow::Result<_>>()?;
            for (i, addr) in metadata_addrs.iter().enumerate() {
                let mut extra = vec![
                    format!("--grpc-listen={addr}"),
                    format!("--log-bytes-per-account={}", args.logs.log_bytes_per_account),
                ];
                if let Some(days) = args.logs.log_retention_days {
                    extra.push(format!("--log-retention-days={days}"));
                }
                started.push(spawn(format!("metadata-{i}"), "metadata", extra)?);
            }
            let metadata_flag = format!("--metadata={}", metadata_addrs.join(","));
            let code_grpc = free_addr()?;
            let queue_grpc = free_addr()?;
            let mut code_extra = vec![
                format!("--grpc-listen={code_grpc}"),
                // The S3 API: keys and policies from metadata, notifications into the queue.
                format!("--s3-listen={s3}"),
                "--reuse-port".into(),
                format!("--async-queue={queue_grpc}"),
                metadata_flag.clone(),
            ];
            if let Some(domain) = &args.s3.s3_base_domain {
                code_extra.push(format!("--s3-base-domain={domain}"));
            }
            started.push(spawn("code-storage".into(), "code-storage", code_extra)?);
            for i in 0..args.exec_hosts {
                let mut extra = vec![
                    format!("--grpc-listen={}", free_addr()?),
                    format!("--code-storage={code_grpc}"),
                    format!("--host-id=exec-host-{i}"),
                    // Function code reaches the cluster's APIs through its sandbox's proxy.
                    format!("--lambda-endpoint={}", crate::serve::reachable(api)),
                    format!("--s3-endpoint={}", crate::serve::reachable(s3)),
                    metadata_flag.clone(),
                    format!("--function-telemetry={}", args.telemetry.function_telemetry),
                ];
                extra.extend(args.exec.to_args());
                if let Some(c) = &args.config {
                    extra.push(format!("--config={}", c.display()));
                }
                started.push(spawn(format!("exec-host-{i}"), "exec-host", extra)?);
            }
            let router_addrs: Vec<String> =
                (0..args.routers).map(|_| free_addr().map(|a| a.to_string())).collect::<anyhow::Result<_>>()?;
            for (i, addr) in router_addrs.iter().enumerate() {
                let extra = vec![
                    format!("--grpc-listen={addr}"),
                    format!("--async-queue={queue_grpc}"),
                    format!("--lease-ttl-secs={}", args.lease_ttl_secs),
                    format!("--function-telemetry={}", args.telemetry.function_telemetry),
                    metadata_flag.clone(),
                ];
                started.push(spawn(format!("invoke-router-{i}"), "invoke-router", extra)?);
            }
            for i in 0..args.queues {
                // The first replica takes enqueues (routers and code storage name it); all of them
                // run events, schedules and pollers from the shared Redis and database.
                let grpc = if i == 0 { queue_grpc } else { free_addr()? };
                let mut queue_extra = vec![
                    format!("--grpc-listen={grpc}"),
                    format!("--routers={}", router_addrs.join(",")),
                    metadata_flag.clone(),
                    format!("--function-telemetry={}", args.telemetry.function_telemetry),
                ];
                if let Some(d) = &args.async_retry_delays {
                    queue_extra.push(format!("--async-retry-delays={d}"));
                }
                let name = if i == 0 { "async-queue".to_owned() } else { format!("async-queue-{i}") };
                started.push(spawn(name, "async-queue", queue_extra)?);
            }
            for p in started.iter_mut() {
                wait_ready(p).await?;
            }
            let backends = started.len();
            for i in 0..args.frontends {
                let mut extra = vec![
                    format!("--listen={api}"),
                    "--reuse-port".into(),
                    format!("--code-storage={code_grpc}"),
                    format!("--routers={}", router_addrs.join(",")),
                    format!("--s3-public-url={s3_public_url}"),
                    metadata_flag.clone(),
                ];
                extra.extend(args.http.to_args(admin));
                let mut p = spawn(format!("frontend-{i}"), "frontend", extra)?;
                // A frontend serves its health on the shared API address; its own port stays unused.
                p.http = api;
                started.push(p);
            }
            for p in started[backends..].iter_mut() {
                wait_ready(p).await?;
            }
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => break,
            Err(e) => {
                stop_all(&mut started).await;
                started.clear();
                if attempt >= START_ATTEMPTS || !e.to_string().contains("exited during start-up") {
                    return Err(e);
                }
                tracing::warn!("cluster start-up failed, starting again on fresh ports: {e:#}");
            }
        }
    }
    let creds = std::fs::canonicalize(args.data_dir.join("credentials")).unwrap_or(args.data_dir.join("credentials"));
    println!("Lamina (cluster: {} processes) is listening on http://{api}", started.len());
    println!("Admin API and metrics on http://{admin} (operators only)");
    println!("S3 API on http://{s3}");
    println!(
        "Try: AWS_SHARED_CREDENTIALS_FILE={} aws --profile lamina --region {} --endpoint-url http://{} lambda list-functions",
        creds.display(),
        args.region,
        api
    );
    stop.await;
    tracing::info!("cluster: stopping");
    stop_all(&mut started).await;
    Ok(())
}

/// Waits until the process answers `/health` with 200 (or dies, or a minute passes).
async fn wait_ready(p: &mut Proc) -> anyhow::Result<()> {
    let url = format!("http://{}/health", p.http);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = p.child.try_wait()? {
            anyhow::bail!("{} exited during start-up ({status}); see its log under <data-dir>/logs", p.name);
        }
        if let Ok(r) = client.get(&url).send().await
            && r.status().is_success()
        {
            tracing::info!(process = %p.name, "ready");
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{} did not become ready", p.name);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM in reverse start order (frontends first, code storage last), each given time to drain.
async fn stop_all(started: &mut [Proc]) {
    for p in started.iter_mut().rev() {
        if let Some(pid) = p.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(330), p.child.wait()).await {
            Ok(Ok(status)) if status.success() => tracing::info!(process = %p.name, "stopped"),
            Ok(Ok(status)) => tracing::warn!(process = %p.name, %status, "stopped with an error"),
            _ => {
                tracing::warn!(process = %p.name, "did not stop in time: killing it");
                let _ = p.child.kill().await;
            }
        }
    }
}
