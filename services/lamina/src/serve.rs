//! `lamina serve`: every service in one process on the embedded backends.

use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use lamina_code_storage::s3::{S3Api, S3Store};
use lamina_code_storage::{CodeStorage, ZipLimits};
use lamina_exec_host::HostClient;
use lamina_fleet::Leases;
use lamina_frontend::auth::session::SessionVerifier;
use lamina_invoke_router::Hosts;
use lamina_metadata::{Metadata, NewAccount, SecretCipher};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Options of `lamina serve` (each also has a `LAMINA_*` variable, see the CLI).
#[derive(Clone)]
pub struct ServeOptions {
    /// Where SQLite, blobs, keys and code caches live.
    pub data_dir: PathBuf,
    /// Address of the Lambda API (and `/health`).
    pub listen: SocketAddr,
    /// Address of the operator endpoints: admin API, `/metrics`, `/health` (loopback by default).
    pub admin_listen: SocketAddr,
    /// Address of code storage's S3-compatible API.
    pub s3_listen: SocketAddr,
    /// Base URL of the S3 API as clients reach it (GetFunction's `Code.Location`); default
    /// `http://<bound s3 address>`.
    pub s3_public_url: Option<String>,
    /// Domain of virtual-hosted-style S3 requests (`<bucket>.<domain>`).
    pub s3_base_domain: Option<String>,
    /// Deadlines and connection cap of both listeners.
    pub http: lamina_frontend::HttpLimits,
    /// The region served.
    pub region: String,
    /// `postgres://…` to keep metadata in Postgres; default: SQLite in the data dir.
    pub database_url: Option<String>,
    /// Admin bearer token; default: generated into `<data-dir>/admin-token`.
    pub admin_token: Option<String>,
    /// Base64 32-byte master key; default: generated into `<data-dir>/master.key`.
    pub master_key: Option<String>,
    /// Upper bound of MemorySize.
    pub max_memory_mb: i64,
    /// Upper bound of Timeout.
    pub max_timeout_s: i64,
    /// Execution host settings (its `data_dir` is set under `data_dir`).
    pub exec: lamina_exec_host::Config,
    /// Event-invocation retry behaviour.
    pub queue: lamina_async_queue::QueueConfig,
    /// Run the async worker in this process (tests turn it off to prove durability).
    pub async_worker: bool,
    /// Ship function logs and `AWS/Lambda` metrics to their stores (the CloudWatch Logs and
    /// CloudWatch APIs read them); off only to measure what they cost.
    pub function_telemetry: bool,
    /// Bounds of the function log store.
    pub log_limits: lamina_observability::LogLimits,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("ServeOptions")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("s3_listen", &self.s3_listen)
            .field("s3_public_url", &self.s3_public_url)
            .field("s3_base_domain", &self.s3_base_domain)
            .field("http", &self.http)
            .field("region", &self.region)
            .field("database_url", &redacted(&self.database_url))
            .field("admin_token", &redacted(&self.admin_token))
            .field("master_key", &redacted(&self.master_key))
            .field("max_memory_mb", &self.max_memory_mb)
            .field("max_timeout_s", &self.max_timeout_s)
            .field("exec", &self.exec)
            .field("queue", &self.queue)
            .field("async_worker", &self.async_worker)
            .field("function_telemetry", &self.function_telemetry)
            .field("log_limits", &self.log_limits)
            .finish()
    }
}

impl ServeOptions {
    /// Embedded defaults rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9003)),
            s3_listen: SocketAddr::from(([127, 0, 0, 1], 9002)),
            s3_public_url: None,
            s3_base_domain: None,
            http: lamina_frontend::HttpLimits::default(),
            region: "us-east-1".into(),
            database_url: None,
            admin_token: None,
            master_key: None,
            max_memory_mb: 1536,
            max_timeout_s: 300,
            exec: lamina_exec_host::Config::default(),
            queue: lamina_async_queue::QueueConfig::default(),
            async_worker: true,
            function_telemetry: true,
            log_limits: lamina_observability::LogLimits::default(),
        }
    }
}

/// A started server.
pub struct Running {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// Where the operator endpoints (admin API, `/metrics`) listen.
    pub admin_addr: SocketAddr,
    /// Where code storage's S3 API listens.
    pub s3_addr: SocketAddr,
    /// The admin token in force.
    pub admin_token: String,
    /// Keys of the `default` account when this start created them.
    pub default_credentials: Option<(String, String)>,
    /// Cancel to stop the server.
    pub shutdown: CancellationToken,
    /// Metadata handle (tests use it to check what the API cannot show).
    pub metadata: Metadata,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops accepting, drains, and waits for the server to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("join server")?
    }

    /// Waits until the server stops by itself (signal).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("join server")?
    }
}

/// The keys every process of one installation shares.
pub struct Secrets {
    /// Encrypts secrets at rest.
    pub master: [u8; 32],
    /// The same, as configured (base64).
    pub master_b64: String,
    /// Bearer token of the admin API.
    pub admin_token: String,
    /// Derives the code-download principal's key (from the master key).
    pub url_key: [u8; 32],
}

/// Bucket name of the code-download principal: S3 API paths `/<bucket>/<account>/<sha256>.zip` serve
/// package blobs to URLs that principal presigned (GetFunction's `Code.Location`). Reserved: no
/// tenant can create it.
pub fn code_bucket(region: &str) -> String {
    format!("lamina-code-{region}")
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    /// The given keys, or those in `data_dir` (generated there on first start).
    pub fn load(data_dir: &Path, master_key: Option<&str>, admin_token: Option<&str>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("create data dir {}", data_dir.display()))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let master_b64 = match master_key {
            Some(k) => k.to_owned(),
            None => load_or_create(&data_dir.join("master.key"), || b64.encode(SecretCipher::generate_key()))?,
        };
        let master: [u8; 32] = b64
            .decode(master_b64.as_bytes())
            .ok()
            .and_then(|raw| raw.try_into().ok())
            .context("master key must be 32 bytes of base64")?;
        let admin_token = match admin_token {
            Some(t) => t.to_owned(),
            None => load_or_create(&data_dir.join("admin-token"), random_token)?,
        };
        let mut url_mac = <Hmac<Sha256> as Mac>::new_from_slice(&master).context("derive url key")?;
        url_mac.update(b"lamina code download urls");
        let url_key: [u8; 32] = url_mac.finalize().into_bytes().into();
        Ok(Self { master, master_b64, admin_token, url_key })
    }

    /// The code-download principal: an access key only the S3 API's package route accepts, the same
    /// in every process of an installation (derived from the master key, never stored).
    pub fn code_downloads(&self, region: &str) -> anyhow::Result<lamina_code_storage::s3::CodeDownloads> {
        let derive = |label: &[u8]| -> anyhow::Result<[u8; 32]> {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.url_key).context("derive code-download key")?;
            mac.update(label);
            Ok(mac.finalize().into_bytes().into())
        };
        let id = derive(b"access key id")?;
        let secret = derive(b"secret access key")?;
        Ok(lamina_code_storage::s3::CodeDownloads {
            // 20 characters like every access key id; `LCDL` says what it is in logs.
            access_key_id: format!("LCDL{}", hex::encode_upper(&id[..8])),
            secret_access_key: base64::engine::general_purpose::STANDARD.encode(secret),
            bucket: code_bucket(region),
        })
    }
}

/// What `Code.Location` URLs need: the S3 API's public URL and the code-download key.
pub fn code_locations(
    secrets: &Secrets,
    region: &str,
    public_url: String,
) -> anyhow::Result<lamina_frontend::CodeLocations> {
    Ok(lamina_frontend::CodeLocations { public_url, key: secrets.code_downloads(region)? })
}

/// The S3 API's settings in both modes.
pub fn s3_config(
    secrets: &Secrets,
    region: &str,
    base_domain: Option<String>,
) -> anyhow::Result<lamina_code_storage::s3::S3Config> {
    Ok(lamina_code_storage::s3::S3Config {
        region: region.to_owned(),
        base_domain,
        code_downloads: Some(secrets.code_downloads(region)?),
        ..lamina_code_storage::s3::S3Config::default()
    })
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    std::io::Write::write_all(&mut f, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn load_or_create(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = make();
            write_private(path, format!("{value}\n").as_bytes())?;
            Ok(value)
        }
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

fn random_token() -> String {
    hex::encode(SecretCipher::generate_key())
}

/// Starts Lamina in this process and returns once it accepts requests.
pub async fn start(opts: ServeOptions) -> anyhow::Result<Running> {
    crate::prometheus::install(crate::prometheus::Process::Serve);
    let secrets = Secrets::load(&opts.data_dir, opts.master_key.as_deref(), opts.admin_token.as_deref())?;
    let admin_token = secrets.admin_token.clone();
    let database_url =
        opts.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", opts.data_dir.join("lamina.db").display()));
    let metadata = Metadata::connect(&database_url, SecretCipher::new(&secrets.master)).await?;
    let objects = S3Store::open(opts.data_dir.join("s3"))?;
    let code = CodeStorage::open(opts.data_dir.join("blobs"), ZipLimits::default())?.with_objects(objects.clone());
    let default_credentials = ensure_default_account(&metadata, &opts.data_dir).await?;
    let s3_listener = TcpListener::bind(opts.s3_listen).await.with_context(|| format!("bind {}", opts.s3_listen))?;
    let s3_addr = s3_listener.local_addr()?;
    let public_url = opts.s3_public_url.clone().unwrap_or_else(|| format!("http://{s3_addr}"));
    let code_locations = code_locations(&secrets, &opts.region, public_url)?;

    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind(opts.listen).await.with_context(|| format!("bind {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let session_key = lamina_common::session::derive_key(&secrets.master);
    let exec_config = lamina_exec_host::Config {
        data_dir: opts.data_dir.join("exec-host"),
        region: opts.region.clone(),
        // Function code reaches this process's APIs (unless the config file names other addresses).
        lambda_endpoint: opts.exec.lambda_endpoint.clone().or_else(|| Some(reachable(addr).to_string())),
        s3_endpoint: opts.exec.s3_endpoint.clone().or_else(|| Some(reachable(s3_addr).to_string())),
        ..opts.exec.clone()
    };
    let host = lamina_exec_host::ExecHost::start(exec_config, code.clone().into(), shutdown.child_token())
        .await
        .context("start execution host")?;
    let observability =
        lamina_observability::Observability::new(metadata.store().clone(), &opts.region, opts.log_limits);
    let telemetry = Telemetry::start(&observability, opts.function_telemetry);
    if let Some(shipper) = &telemetry.shipper {
        host.set_telemetry(shipper.clone());
    }
    let queue = lamina_async_queue::Queue::new(metadata.store().clone(), opts.queue.clone());
    let samplers = scrape_samplers(&host, &queue);
    let notifications = crate::s3::FunctionEvents::new(metadata.clone().into(), queue.clone().into(), &opts.region);
    let invoker = lamina_invoke_router::InvokeRouter::new(
        metadata.clone().into(),
        Hosts::Local(HostClient::Local(host.clone())),
        opts.region.clone(),
        Leases::memory(),
        queue.clone().into(),
    )
    .with_session_key(session_key);
    let invoker = match &telemetry.shipper {
        Some(shipper) => invoker.with_telemetry(shipper.clone()),
        None => invoker,
    };
    let events = lamina_event_sources::EventSources::new(metadata.store().clone(), &opts.region);
    let sources = if opts.async_worker {
        let parts = crate::event_sources::Parts {
            router: invoker.clone().into(),
            metadata: metadata.clone().into(),
            events: events.clone().into(),
            queue: queue.clone().into(),
            region: opts.region.clone(),
            owner: crate::event_sources::owner(&opts.data_dir, "serve")?,
            telemetry: telemetry.shipper.clone().map(|s| -> Arc<dyn lamina_common::telemetry::TelemetrySink> { s }),
        };
        Some(crate::event_sources::start(parts, shutdown.child_token()))
    } else {
        None
    };
    let worker = sources.as_ref().map(|sources| {
        let runner = sources.runner.clone();
        let run = move |event| {
            let runner = runner.clone();
            async move { runner.run(event).await }
        };
        tokio::spawn(queue.work(run, shutdown.child_token()))
    });
    let config = lamina_frontend::Config {
        region: opts.region.clone(),
        admin_token: admin_token.clone(),
        max_memory_mb: opts.max_memory_mb,
        max_timeout_s: opts.max_timeout_s,
        runtimes: host.runtimes(),
        code_locations,
        http: opts.http,
    };
    let s3 = S3Api::new(
        objects.clone(),
        code.clone(),
        Arc::new(crate::s3::KeyCredentials::new(
            metadata.clone().into(),
            Arc::default(),
            Arc::new(SessionVerifier::new(session_key, metadata.clone().into())),
        )),
        Arc::new(notifications),
        Some(Arc::new(crate::s3::AccountQuota::new(metadata.clone().into(), objects))),
        s3_config(&secrets, &opts.region, opts.s3_base_domain.clone())?,
    );
    let state = lamina_frontend::AppState::new(config, metadata.clone().into(), code.into(), invoker.into())
        .with_session_key(session_key)
        .with_event_sources(events.into())
        .with_observability(observability.into());
    let app = lamina_frontend::router(state.clone());
    let admin_app = lamina_frontend::admin_router(state);
    let admin_listener =
        TcpListener::bind(opts.admin_listen).await.with_context(|| format!("bind {}", opts.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let limits = opts.http;
    // Longest an invocation can still run once HTTP has drained (one whose caller went away):
    // its own timeout, after which the host ends it, plus a margin.
    let drain_for = std::time::Duration::from_secs(u64::try_from(opts.max_timeout_s).unwrap_or(0) + 5);
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        // In order: stop accepting and answer the requests in flight; stop the async worker (it
        // finishes the events it is running); wait for invocations still running; only then
        // destroy the sandboxes.
        let admin_stop = stop.clone();
        let s3_stop = stop.clone();
        let (served, admin_served, s3_served) = tokio::join!(
            lamina_frontend::serve(listener, app, limits, async move { stop.cancelled().await }),
            lamina_frontend::serve(admin_listener, admin_app, limits, async move { admin_stop.cancelled().await }),
            lamina_code_storage::s3::serve(s3_listener, s3, s3_stop),
        );
        let served = served.and(admin_served).context("serve http").and(s3_served.context("serve s3"));
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        if let Some(sources) = sources {
            sources.join().await;
        }
        let running = host.drain(tokio::time::Instant::now() + drain_for).await;
        if running > 0 {
            tracing::warn!(running, "invocations still running at the shutdown deadline are stopped");
        }
        host.shutdown().await;
        telemetry.stop().await;
        drop(samplers);
        served
    });
    tracing::info!(%addr, %admin_addr, %s3_addr, engine = metadata.engine(), "lamina is ready");
    Ok(Running { addr, admin_addr, s3_addr, admin_token, default_credentials, shutdown, metadata, task })
}

/// What `/metrics` reads afresh when scraped: the host's sandbox pools and the queue's backlog.
fn scrape_samplers(
    host: &lamina_exec_host::ExecHost,
    queue: &lamina_async_queue::Queue,
) -> [lamina_frontend::SamplerGuard; 2] {
    let host = host.clone();
    let queue = queue.clone();
    [
        lamina_frontend::on_scrape(move || {
            lamina_exec_host::metrics::sample(&host);
            std::future::ready(())
        }),
        lamina_frontend::on_scrape(move || {
            let queue = queue.clone();
            async move { queue.sample_metrics().await }
        }),
    ]
}

/// Function telemetry of one process: the shipper that takes producers' logs and metric samples to
/// the stores, and the janitor that keeps the stores bounded.
pub struct Telemetry {
    /// `None` when function telemetry is off.
    pub shipper: Option<Arc<lamina_observability::Shipper>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How often the janitor trims the log and metric stores.
const JANITOR_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Telemetry {
    /// Ships to `observability` in process, and runs its janitor (when `enabled`).
    pub fn start(observability: &lamina_observability::Observability, enabled: bool) -> Self {
        let stop = CancellationToken::new();
        if !enabled {
            return Self { shipper: None, stop, tasks: Vec::new() };
        }
        let (shipper, shipping) = lamina_observability::Shipper::start(
            observability.clone().into(),
            lamina_observability::ShipperConfig::default(),
            stop.clone(),
        );
        let janitor = tokio::spawn(lamina_observability::janitor(observability.clone(), JANITOR_EVERY, stop.clone()));
        Self { shipper: Some(shipper), stop, tasks: vec![shipping, janitor] }
    }

    /// Sends what is pending and stops (after the producers have stopped).
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The address a process on this host connects to for a listener bound to `addr` (a wildcard
/// bind is reached on loopback).
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// Creates the `default` account and its credentials file on first start.
pub async fn ensure_default_account(metadata: &Metadata, data_dir: &Path) -> anyhow::Result<Option<(String, String)>> {
    let creds_path = data_dir.join("credentials");
    if creds_path.exists() {
        return Ok(None);
    }
    let key = match metadata.account_by_name("default").await? {
        Some(account) => metadata.create_access_key(&account.account_id).await?,
        None => metadata.create_account(NewAccount { name: "default".into(), ..NewAccount::default() }).await?,
    };
    let file = format!(
        "[lamina]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        key.access_key_id, key.secret_access_key
    );
    write_private(&creds_path, file.as_bytes())?;
    Ok(Some((key.access_key_id, key.secret_access_key)))
}
