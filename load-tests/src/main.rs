//! Lamina's benchmark harness. Every figure comes with a baseline measured in the same run;
//! see docs/benchmarks.md for the commands and recorded results.

mod client;
mod crash;
mod direct;
mod drain;
mod procs;
mod queue;
mod s3;
mod stats;
mod telemetry;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::client::{Client, Creds};
use crate::stats::Stats;

#[derive(Parser)]
#[command(name = "lamina-load")]
struct Cli {
    /// Lamina endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9000", global = true)]
    endpoint: String,
    /// Shared-credentials file written by `lamina serve` (profile `lamina`).
    #[arg(long, default_value = "./lamina-data/credentials", global = true)]
    credentials: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// GetFunctionConfiguration under load (SigV4-signed).
    GetConfig {
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Pid of the server (`lamina serve` or `lamina cluster`): also report the CPU time per
        /// request of it and of each kind of process below it.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// CreateFunction with a zip of the given size (incompressible content).
    Create {
        #[arg(long, default_value_t = 1)]
        zip_mb: usize,
        #[arg(long, default_value_t = 100)]
        requests: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Warm invokes of a no-op function, then the same runtime driven directly (baseline).
    Warm {
        /// `python3.11` or `nodejs20.x`.
        #[arg(long, default_value = "python3.11")]
        runtime: String,
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// MemorySize of the function (CPU share follows it when the server caps CPU).
        #[arg(long, default_value_t = 128)]
        memory: u32,
        /// Pid of the server (`lamina serve` or `lamina cluster`): also report the CPU time per
        /// invocation of it and of each kind of process below it (cluster services, runtimes).
        #[arg(long)]
        server_pid: Option<u32>,
        /// Identical functions the clients are spread over (client i invokes function i mod N):
        /// with one function every sandbox of the run belongs to one function version, which a
        /// cluster's routers place on one preferred execution host.
        #[arg(long, default_value_t = 1)]
        functions: usize,
        /// One client, pausing this long after each reply (0: back to back). A pause longer than
        /// the host's freeze delay (10 ms) makes every invocation thaw a frozen sandbox.
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// Event (asynchronous) invokes of a no-op function through the API: how fast they are
    /// accepted (HTTP 202), and with `--drain-redis-url` how long until the queue has run them.
    Events {
        #[arg(long, default_value_t = 20000)]
        requests: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Pid of the server: also report CPU time per event of its process tree.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Redis of a cluster's queue: after the run, wait until it is empty and report how long
        /// the events took to run.
        #[arg(long)]
        drain_redis_url: Option<String>,
        /// The cluster's `--redis-prefix`.
        #[arg(long, default_value = "lamina")]
        drain_redis_prefix: String,
    },
    /// `Queue::redis` enqueue throughput: concurrent enqueuers straight to Redis (no server).
    EnqueueRedis {
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        #[arg(long, default_value_t = 20000)]
        events: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Payload size in bytes (padding inside a JSON object).
        #[arg(long, default_value_t = 256)]
        payload_bytes: usize,
    },
    /// Crash safety: Event invokes while the server is SIGKILLed and restarted `--kills` times;
    /// every event answered with 202 must run to its end. Starts its own server (`lamina serve`
    /// on SQLite, or with `--redis-url` a `lamina cluster`) on `--data-dir`; reports lost events,
    /// duplicates and how long interrupted events waited to run again.
    Crash {
        /// The `lamina` binary (default: beside this one).
        #[arg(long)]
        lamina: Option<PathBuf>,
        /// Data directory for the server (must not hold another server's data).
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        events: usize,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 20)]
        kills: usize,
        /// The server runs between this and `--max-gap-ms` before each kill.
        #[arg(long, default_value_t = 1000)]
        min_gap_ms: u64,
        #[arg(long, default_value_t = 5000)]
        max_gap_ms: u64,
        /// Work per invocation (ms).
        #[arg(long, default_value_t = 300)]
        work_ms: u64,
        /// Seconds every acknowledged event may take to finish after the last restart.
        #[arg(long, default_value_t = 300)]
        drain_timeout: u64,
        /// Run `lamina cluster` with its queue on this Redis (needs `--database-url`).
        #[arg(long)]
        redis_url: Option<String>,
        /// Postgres database of the cluster.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// S3 API: PutObject/GetObject of `--size-kib` objects beside the raw filesystem, then
    /// CreateFunction from an S3 object beside ZipFile.
    S3 {
        #[arg(long, default_value = "http://127.0.0.1:9002")]
        s3_endpoint: String,
        #[arg(long, default_value_t = 4)]
        size_kib: usize,
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Directory on the server's disk for the filesystem baseline.
        #[arg(long, default_value = "./lamina-data")]
        baseline_dir: PathBuf,
        /// CreateFunction calls of each kind (0: skip).
        #[arg(long, default_value_t = 0)]
        creates: usize,
    },
    /// Event-source mappings: a backlog drained from a Kinesis stream (kinesalite) and an SQS queue
    /// (moto's server) into a no-op function, beside the raw read rate of the same server, then
    /// record age at a steady rate. The server must reach the same endpoints
    /// (`AWS_ENDPOINT_URL_KINESIS` / `AWS_ENDPOINT_URL_SQS` in its environment).
    Drain {
        /// Kinesis endpoint.
        #[arg(long, env = "AWS_ENDPOINT_URL_KINESIS", default_value = "http://127.0.0.1:4567")]
        kinesis_endpoint: String,
        /// SQS endpoint.
        #[arg(long, env = "AWS_ENDPOINT_URL_SQS", default_value = "http://127.0.0.1:5000")]
        sqs_endpoint: String,
        /// `kinesis`, `sqs` or `both`.
        #[arg(long, default_value = "both")]
        source: String,
        #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "test")]
        aws_access_key_id: String,
        #[arg(long, env = "AWS_SECRET_ACCESS_KEY", default_value = "test", hide_env_values = true)]
        aws_secret_access_key: String,
        /// Records of the Kinesis backlog.
        #[arg(long, default_value_t = 20000)]
        records: usize,
        /// Messages of the SQS backlog (moto's server spends time proportional to the queue's
        /// depth on every SendMessage and ReceiveMessage, so deep backlogs crawl).
        #[arg(long, default_value_t = 2000)]
        sqs_records: usize,
        #[arg(long, default_value_t = 4)]
        shards: usize,
        /// BatchSize of the Kinesis mapping (and Limit of the baseline's GetRecords).
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// BatchSize of the SQS mapping (over 10 needs `--window`).
        #[arg(long, default_value_t = 10)]
        sqs_batch_size: usize,
        /// MaximumBatchingWindowInSeconds of the mappings.
        #[arg(long, default_value_t = 0)]
        window: u32,
        /// Concurrent consumers of the SQS baseline.
        #[arg(long, default_value_t = 5)]
        sqs_consumers: usize,
        #[arg(long, default_value_t = 100)]
        record_bytes: usize,
        /// Records/s of the steady phase (default: half the drain rate measured just before).
        #[arg(long)]
        steady_rate: Option<f64>,
        #[arg(long, default_value_t = 20)]
        steady_seconds: u64,
        /// Seconds a mapping may take to drain what was put.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Pid of the server: also report its CPU time per drained record.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// What function telemetry costs: warm no-op invokes against two `lamina serve` processes this
    /// run starts, one with `--function-telemetry=true` and one with `false`, in alternating
    /// rounds, beside the same runtime driven directly.
    Telemetry {
        /// The `lamina` binary (default: beside this one).
        #[arg(long)]
        lamina: Option<PathBuf>,
        /// Directory for both servers' data (`telemetry-on/`, `telemetry-off/` are emptied first).
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "python3.11")]
        runtime: String,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Invocations per server and round.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long, default_value_t = 6)]
        rounds: usize,
        #[arg(long, default_value_t = 128)]
        memory: u32,
        /// More `lamina serve` flags for both servers, e.g. `--server-arg=--cpu-quota=false`.
        #[arg(long = "server-arg", allow_hyphen_values = true)]
        server_args: Vec<String>,
    },
    /// Cold starts: Invoke to handler start, against starting the interpreter alone.
    Cold {
        #[arg(long, default_value = "python3.11")]
        runtime: String,
        #[arg(long, default_value_t = 20)]
        count: usize,
        #[arg(long, default_value_t = 128)]
        memory: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Needs no server and no credentials.
    if let Command::EnqueueRedis { redis_url, events, concurrency, payload_bytes } = &cli.command {
        return queue::enqueue_redis(redis_url, *events, *concurrency, *payload_bytes).await;
    }
    // Starts its own server, whose credentials do not exist yet.
    if let Command::Crash { .. } = &cli.command {
        return crash(cli.command).await;
    }
    if let Command::Telemetry { lamina, data_dir, runtime, concurrency, requests, rounds, memory, server_args } =
        cli.command
    {
        let lamina = match lamina {
            Some(path) => path,
            None => std::env::current_exe()?.with_file_name("lamina"),
        };
        let run =
            telemetry::TelemetryRun { lamina, data_dir, runtime, concurrency, requests, rounds, memory, server_args };
        return telemetry::run(run).await;
    }
    let creds = Creds::from_file(&cli.credentials)?;
    let client = Client::new(&cli.endpoint, creds)?;
    match cli.command {
        Command::GetConfig { concurrency, seconds, server_pid } => {
            get_config(&client, concurrency, seconds, server_pid).await
        }
        Command::Create { zip_mb, requests, concurrency } => create(&client, zip_mb, requests, concurrency).await,
        Command::Warm { runtime, requests, concurrency, memory, server_pid, functions, pause_ms } => {
            warm(&client, &WarmRun { runtime, requests, concurrency, memory, server_pid, functions, pause_ms }).await
        }
        Command::Events { requests, concurrency, server_pid, drain_redis_url, drain_redis_prefix } => {
            let drain = drain_redis_url.map(|url| (url, drain_redis_prefix));
            queue::events(&client, requests, concurrency, server_pid, drain).await
        }
        Command::Cold { runtime, count, memory } => cold(&client, &runtime, count, memory).await,
        Command::S3 { s3_endpoint, size_kib, requests, concurrency, baseline_dir, creates } => {
            let run = s3::S3Run {
                s3_endpoint: &s3_endpoint,
                size_kib,
                requests,
                concurrency,
                baseline_dir: &baseline_dir,
                creates,
            };
            s3::run(&client, &run).await
        }
        Command::Drain {
            kinesis_endpoint,
            sqs_endpoint,
            source,
            aws_access_key_id,
            aws_secret_access_key,
            records,
            sqs_records,
            shards,
            batch_size,
            sqs_batch_size,
            window,
            sqs_consumers,
            record_bytes,
            steady_rate,
            steady_seconds,
            timeout,
            server_pid,
        } => {
            let (kinesis, sqs) = match source.as_str() {
                "kinesis" => (true, false),
                "sqs" => (false, true),
                "both" => (true, true),
                other => anyhow::bail!("--source {other}: kinesis, sqs or both"),
            };
            let run = drain::DrainRun {
                kinesis: kinesis.then_some(kinesis_endpoint),
                sqs: sqs.then_some(sqs_endpoint),
                aws: Creds::new(&aws_access_key_id, &aws_secret_access_key),
                records,
                sqs_records,
                shards,
                batch_size,
                sqs_batch_size,
                window_s: window,
                sqs_consumers,
                record_bytes,
                steady_rate,
                steady_seconds,
                timeout: Duration::from_secs(timeout),
                server_pid,
            };
            drain::run(&client, &run).await
        }
        Command::EnqueueRedis { .. } | Command::Crash { .. } | Command::Telemetry { .. } => {
            unreachable!("handled before reading credentials")
        }
    }
}

async fn crash(command: Command) -> anyhow::Result<()> {
    let Command::Crash {
        lamina,
        data_dir,
        events,
        clients,
        kills,
        min_gap_ms,
        max_gap_ms,
        work_ms,
        drain_timeout,
        redis_url,
        database_url,
    } = command
    else {
        anyhow::bail!("not a crash command");
    };
    let lamina = match lamina {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("lamina"),
    };
    let cluster = match (redis_url, database_url) {
        (Some(redis_url), Some(database_url)) => Some(crash::ClusterBackend { redis_url, database_url }),
        (None, None) => None,
        _ => anyhow::bail!("--redis-url and --database-url go together"),
    };
    crash::run(crash::CrashRun {
        lamina,
        data_dir,
        events,
        clients,
        kills,
        min_gap: Duration::from_millis(min_gap_ms),
        max_gap: Duration::from_millis(max_gap_ms),
        work: Duration::from_millis(work_ms),
        cluster,
        drain_timeout: Duration::from_secs(drain_timeout),
    })
    .await
}

fn function_zip(runtime: &str, body: &str) -> Vec<u8> {
    let file = if runtime.starts_with("python") { "lambda_function.py" } else { "index.js" };
    client::zip_of(&[(file, body.as_bytes())])
}

fn handler(runtime: &str) -> &'static str {
    if runtime.starts_with("python") { "lambda_function.handler" } else { "index.handler" }
}

pub(crate) async fn ensure_function(
    client: &Client,
    name: &str,
    runtime: &str,
    body: &str,
    memory: u32,
) -> anyhow::Result<()> {
    let _ = client.delete_function(name).await;
    client.create_function(name, runtime, handler(runtime), &function_zip(runtime, body), memory).await
}

async fn get_config(client: &Client, concurrency: usize, seconds: u64, server_pid: Option<u32>) -> anyhow::Result<()> {
    let name = "bench-get-config";
    ensure_function(client, name, "python3.11", "def handler(e, c):\n    return e\n", 128).await?;
    let request = client.presigned_get(&format!("/2015-03-31/functions/{name}/configuration"))?;
    let before = server_pid.map(procs::Snapshot::take);
    let stats = client.hammer(request, concurrency, Duration::from_secs(seconds)).await?;
    println!("GetFunctionConfiguration, {concurrency} connections, {seconds} s: {}", stats.summary());
    if let Some(before) = before {
        before.report_since(stats.count());
    }
    Ok(())
}

async fn create(client: &Client, zip_mb: usize, requests: usize, concurrency: usize) -> anyhow::Result<()> {
    let mut payload = vec![0u8; zip_mb * 1024 * 1024];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut payload);
    let zip =
        client::zip_stored(&[("lambda_function.py", b"def handler(e, c):\n    return e\n"), ("blob.bin", &payload)]);
    let mut stats = Stats::default();
    let started = Instant::now();
    let mut next = 0;
    while next < requests {
        let batch: Vec<_> = (next..(next + concurrency).min(requests))
            .map(|i| {
                let zip = zip.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let name = format!("bench-create-{i}");
                    let _ = client.delete_function(&name).await;
                    let t = Instant::now();
                    client
                        .create_function(&name, "python3.11", "lambda_function.handler", &zip, 128)
                        .await
                        .map(|_| t.elapsed())
                })
            })
            .collect();
        for task in batch {
            stats.record(task.await??);
        }
        next += concurrency;
    }
    stats.elapsed = started.elapsed();
    println!("CreateFunction, {} MB zip, {concurrency} concurrent: {}", zip_mb, stats.summary());
    for i in 0..requests {
        let _ = client.delete_function(&format!("bench-create-{i}")).await;
    }
    Ok(())
}

pub(crate) fn noop_body(runtime: &str) -> &'static str {
    if runtime.starts_with("python") {
        "def handler(event, context):\n    return None\n"
    } else {
        "exports.handler = async (event) => null;\n"
    }
}

/// One `warm` measurement.
struct WarmRun {
    runtime: String,
    requests: usize,
    concurrency: usize,
    memory: u32,
    server_pid: Option<u32>,
    functions: usize,
    pause_ms: u64,
}

async fn warm(client: &Client, run: &WarmRun) -> anyhow::Result<()> {
    let WarmRun { ref runtime, requests, concurrency, memory, server_pid, functions, pause_ms } = *run;
    let base = format!("bench-warm-{}", runtime.replace('.', "-"));
    let mut signed = Vec::new();
    for k in 0..functions.max(1) {
        let name = if functions <= 1 { base.clone() } else { format!("{base}-{k}") };
        ensure_function(client, &name, runtime, noop_body(runtime), memory).await?;
        client.invoke(&name, b"{}").await?;
        signed.push(client.presigned_post(&format!("/2015-03-31/functions/{name}/invocations"), b"{}")?);
    }
    // One sandbox per client is started (and warmed) before the timed run.
    client.fixed_count_each(signed.clone(), concurrency, concurrency * 50).await?;
    let before = server_pid.map(procs::Snapshot::take);
    let lamina = if pause_ms > 0 {
        client.paced(&signed[0], requests, Duration::from_millis(pause_ms)).await
    } else {
        client.fixed_count_each(signed, concurrency, requests).await?
    };
    let spread = if functions > 1 { format!(", over {functions} functions") } else { String::new() };
    println!("Warm invoke through Lamina ({runtime}, {concurrency} concurrent{spread}): {}", lamina.summary());
    if let Some(before) = before {
        before.report_since(lamina.count());
    }
    let direct = direct::run(runtime, noop_body(runtime), requests, concurrency).await?;
    println!("Same runtime driven directly over the Runtime API ({concurrency} processes): {}", direct.summary());
    println!(
        "Overhead at p50: {:.3} ms; throughput ratio: {:.0} %",
        lamina.percentile(50.0).as_secs_f64() * 1e3 - direct.percentile(50.0).as_secs_f64() * 1e3,
        100.0 * lamina.throughput() / direct.throughput()
    );
    Ok(())
}

async fn cold(client: &Client, runtime: &str, count: usize, memory: u32) -> anyhow::Result<()> {
    let body = if runtime.starts_with("python") {
        "import time\ndef handler(event, context):\n    return time.time()\n"
    } else {
        "exports.handler = async () => Date.now() / 1000;\n"
    };
    let mut to_handler = Stats::default();
    let mut total = Stats::default();
    for i in 0..count {
        let name = format!("bench-cold-{}-{i}", runtime.replace('.', "-"));
        ensure_function(client, &name, runtime, body, memory).await?;
        let sent = std::time::SystemTime::now();
        let t = Instant::now();
        let out = client.invoke(&name, b"{}").await?;
        total.record(t.elapsed());
        let started: f64 = String::from_utf8_lossy(&out).trim().parse()?;
        let sent = sent.duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
        to_handler.record(Duration::from_secs_f64((started - sent).max(0.0)));
        client.delete_function(&name).await?;
    }
    println!("Cold start, Invoke to handler start ({runtime}): {}", to_handler.summary());
    println!("Cold start, whole Invoke round trip ({runtime}): {}", total.summary());
    // The baseline, and for Python also the interpreter started the way Lamina starts it
    // (`-S`, see docs/runtimes.md).
    let baselines: &[(&str, &[&str])] = if runtime.starts_with("python") {
        &[("/usr/bin/python3.11", &["-c", "pass"]), ("/usr/bin/python3.11", &["-S", "-c", "pass"])]
    } else {
        &[("/usr/bin/node", &["-e", "0"])]
    };
    for (program, args) in baselines {
        let mut baseline = Stats::default();
        for _ in 0..count {
            let t = Instant::now();
            let status = tokio::process::Command::new(program).args(*args).status().await?;
            anyhow::ensure!(status.success(), "{program} failed");
            baseline.record(t.elapsed());
        }
        println!("Baseline `{program} {}`: {}", args.join(" "), baseline.summary());
    }
    Ok(())
}
