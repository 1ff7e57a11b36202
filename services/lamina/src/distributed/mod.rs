//! Distributed mode: `lamina <service>` runs one service in its own process, with gRPC clients to
//! its peers and Postgres and Redis as backends. The business logic is the same code `lamina serve`
//! calls in process.

pub mod cluster;

pub use cluster::ClusterArgs;
mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use lamina_code_storage::{CodeClient, CodeStorage, ZipLimits};
use lamina_exec_host::ExecHost;
use lamina_fleet::{HostInfo, HostRegistry, LeaseConfig, Leases};
use lamina_invoke_router::{Hosts, InvokeRouter, RouterClient};
use lamina_metadata::{Metadata, MetadataClient, SecretCipher};
use tokio_util::sync::CancellationToken;

use crate::cli::{ExecArgs, HttpArgs, LogStoreArgs, Secret, TelemetryArgs};
use crate::serve::Secrets;
use status::Status;

/// Flags every service process takes.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Data directory of this process.
    #[arg(long, env = "LAMINA_DATA_DIR", default_value = "./lamina-data")]
    pub data_dir: PathBuf,
    /// Region served.
    #[arg(long, env = "LAMINA_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Address of this process's `/health` and `/metrics` (a frontend serves them on `--admin-listen`).
    #[arg(long, env = "LAMINA_HTTP_LISTEN", default_value = "127.0.0.1:0")]
    pub http_listen: SocketAddr,
    /// Base64 32-byte key that encrypts secrets at rest (the same in every process).
    #[arg(long, env = "LAMINA_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<Secret>,
    /// Admin API bearer token (the same in every frontend).
    #[arg(long, env = "LAMINA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
}

/// Where the shared state lives (the metadata service's backends).
#[derive(Debug, Args, Clone)]
pub struct BackendArgs {
    /// Metadata database (`postgres://…`).
    #[arg(long, env = "LAMINA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// The Redis a process shares with the others.
#[derive(Debug, Args, Clone)]
pub struct RedisArgs {
    /// Redis (`redis://host:port/db`): queue, concurrency leases, host registry, invalidations.
    #[arg(long, env = "LAMINA_REDIS_URL", hide_env_values = true)]
    pub redis_url: Secret,
    /// Prefix of every Redis key (installations sharing one Redis need different ones).
    #[arg(long, env = "LAMINA_REDIS_PREFIX", default_value = "lamina")]
    pub redis_prefix: String,
}

/// `lamina frontend`.
#[derive(Debug, Args, Clone)]
pub struct FrontendArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// gRPC addresses of the metadata services (comma-separated).
    #[arg(long, env = "LAMINA_METADATA", value_delimiter = ',', required = true)]
    pub metadata: Vec<String>,
    /// Address of the Lambda API (and `/health`).
    #[arg(long, env = "LAMINA_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub http: HttpArgs,
    /// Share `--listen` and `--admin-listen` with other frontends on this machine (SO_REUSEPORT).
    #[arg(long, env = "LAMINA_REUSE_PORT")]
    pub reuse_port: bool,
    /// gRPC address of code storage.
    #[arg(long, env = "LAMINA_CODE_STORAGE")]
    pub code_storage: String,
    /// gRPC addresses of the invoke routers (comma-separated).
    #[arg(long, env = "LAMINA_ROUTERS", value_delimiter = ',', required = true)]
    pub routers: Vec<String>,
    /// Largest MemorySize accepted, in MB.
    #[arg(long, env = "LAMINA_MAX_MEMORY_MB", default_value_t = 1536)]
    pub max_memory_mb: i64,
    /// Largest Timeout accepted, in seconds.
    #[arg(long, env = "LAMINA_MAX_TIMEOUT", default_value_t = 300)]
    pub max_timeout: i64,
    /// Base URL clients reach code storage's S3 API at (GetFunction's `Code.Location`).
    #[arg(long, env = "LAMINA_S3_PUBLIC_URL", default_value = "http://127.0.0.1:9002")]
    pub s3_public_url: String,
}

/// `lamina metadata`.
#[derive(Debug, Args, Clone)]
pub struct MetadataArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// gRPC address.
    #[arg(long, env = "LAMINA_GRPC_LISTEN", default_value = "127.0.0.1:7101")]
    pub grpc_listen: SocketAddr,
    #[command(flatten)]
    pub logs: LogStoreArgs,
}

/// `lamina code-storage`.
#[derive(Debug, Args, Clone)]
pub struct CodeStorageArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// gRPC address.
    #[arg(long, env = "LAMINA_GRPC_LISTEN", default_value = "127.0.0.1:7102")]
    pub grpc_listen: SocketAddr,
    /// Address of the S3-compatible API; without it this process serves packages over gRPC only.
    /// The S3 API needs `--metadata` (access keys, function policies) and `--async-queue` (event
    /// notifications).
    #[arg(long, env = "LAMINA_S3_LISTEN")]
    pub s3_listen: Option<SocketAddr>,
    /// Domain of virtual-hosted-style requests (`<bucket>.<domain>`, e.g. `s3.localhost`); path-style
    /// requests work with or without it.
    #[arg(long, env = "LAMINA_S3_BASE_DOMAIN")]
    pub s3_base_domain: Option<String>,
    /// Share `--s3-listen` with the `lamina cluster` that reserved it (SO_REUSEPORT).
    #[arg(long, env = "LAMINA_REUSE_PORT")]
    pub reuse_port: bool,
    /// gRPC addresses of the metadata services (comma-separated).
    #[arg(long, env = "LAMINA_METADATA", value_delimiter = ',')]
    pub metadata: Vec<String>,
    /// gRPC address of the async queue.
    #[arg(long, env = "LAMINA_ASYNC_QUEUE")]
    pub async_queue: Option<String>,
    /// Redis whose invalidations (revoked keys, metadata writes) this process follows; without it,
    /// cached keys and policies expire by age only.
    #[arg(long, env = "LAMINA_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key.
    #[arg(long, env = "LAMINA_REDIS_PREFIX", default_value = "lamina")]
    pub redis_prefix: String,
}

/// `lamina invoke-router`.
#[derive(Debug, Args, Clone)]
pub struct RouterArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// gRPC addresses of the metadata services (comma-separated).
    #[arg(long, env = "LAMINA_METADATA", value_delimiter = ',', required = true)]
    pub metadata: Vec<String>,
    /// gRPC address.
    #[arg(long, env = "LAMINA_GRPC_LISTEN", default_value = "127.0.0.1:7103")]
    pub grpc_listen: SocketAddr,
    /// gRPC address of the async queue (Event invocations).
    #[arg(long, env = "LAMINA_ASYNC_QUEUE")]
    pub async_queue: String,
    /// Seconds a crashed router's concurrency slots stay taken.
    #[arg(long, env = "LAMINA_LEASE_TTL", default_value_t = 10)]
    pub lease_ttl_secs: u64,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// `lamina async-queue`.
#[derive(Debug, Args, Clone)]
pub struct QueueArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// gRPC address.
    #[arg(long, env = "LAMINA_GRPC_LISTEN", default_value = "127.0.0.1:7105")]
    pub grpc_listen: SocketAddr,
    /// gRPC addresses of the invoke routers that run events (comma-separated).
    #[arg(long, env = "LAMINA_ROUTERS", value_delimiter = ',', required = true)]
    pub routers: Vec<String>,
    /// Seconds before each retry of a failed Event invocation, e.g. `60,120`.
    #[arg(long, env = "LAMINA_ASYNC_RETRY_DELAYS")]
    pub async_retry_delays: Option<String>,
    /// gRPC addresses of the metadata services (comma-separated): functions' async settings,
    /// schedules and event-source mappings. Without it this process only runs Event invocations
    /// (no destinations, schedules or pollers).
    #[arg(long, env = "LAMINA_METADATA", value_delimiter = ',')]
    pub metadata: Vec<String>,
    /// Pollers' `AWS/Lambda` metrics (IteratorAge), shipped to the metadata services.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// `lamina exec-host`.
#[derive(Debug, Args, Clone)]
pub struct ExecHostArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// gRPC address.
    #[arg(long, env = "LAMINA_GRPC_LISTEN", default_value = "127.0.0.1:7104")]
    pub grpc_listen: SocketAddr,
    /// Address routers reach this host at (default: the bound gRPC address).
    #[arg(long, env = "LAMINA_ADVERTISE")]
    pub advertise: Option<String>,
    /// This host's id in the registry (default: a random one).
    #[arg(long, env = "LAMINA_HOST_ID")]
    pub host_id: Option<String>,
    /// gRPC address of code storage.
    #[arg(long, env = "LAMINA_CODE_STORAGE")]
    pub code_storage: String,
    /// TOML file with execution-host settings and the runtime registry.
    #[arg(long, env = "LAMINA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// `host:port` of the Lambda API as this host reaches it: function code gets
    /// `AWS_ENDPOINT_URL_LAMBDA` leading there.
    #[arg(long, env = "LAMINA_SANDBOX_LAMBDA_ENDPOINT")]
    pub lambda_endpoint: Option<String>,
    /// `host:port` of code storage's S3 API as this host reaches it (`AWS_ENDPOINT_URL_S3`).
    #[arg(long, env = "LAMINA_SANDBOX_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// gRPC addresses of the metadata services (comma-separated), which keep function logs; without
    /// it logs stay on this host (Lamina's `/_lamina/v1/functions/{name}/logs` only).
    #[arg(long, env = "LAMINA_METADATA", value_delimiter = ',')]
    pub metadata: Vec<String>,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// How often an execution host reports itself, and how long a silent host stays registered.
const HEARTBEAT: Duration = Duration::from_millis(500);
const HOST_TTL: Duration = Duration::from_secs(3);
/// Longest an execution host waits for running invocations at shutdown (the largest Timeout, plus margin).
const DRAIN_LIMIT: Duration = Duration::from_secs(305);

async fn metadata(common: &CommonArgs, backend: &BackendArgs) -> anyhow::Result<Metadata> {
    let secrets = Secrets::load(
        &common.data_dir,
        common.master_key.as_ref().map(Secret::expose),
        common.admin_token.as_ref().map(Secret::expose),
    )?;
    Metadata::connect(backend.database_url.expose(), SecretCipher::new(&secrets.master)).await
}

/// `lamina frontend`: the HTTP API over metadata, code storage and the routers.
pub async fn run_frontend(args: FrontendArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    crate::prometheus::install(crate::prometheus::Process::Frontend);
    let common = &args.common;
    let secrets = Secrets::load(
        &common.data_dir,
        common.master_key.as_ref().map(Secret::expose),
        common.admin_token.as_ref().map(Secret::expose),
    )?;
    let metadata = MetadataClient::connect(&args.metadata)?;
    let code = CodeClient::connect(&args.code_storage, ZipLimits::default())?;
    let invoker = RouterClient::connect(&args.routers)?;
    let runtimes = runtimes_of(&invoker).await;
    let config = lamina_frontend::Config {
        region: common.region.clone(),
        admin_token: secrets.admin_token.clone(),
        max_memory_mb: args.max_memory_mb,
        max_timeout_s: args.max_timeout,
        runtimes,
        code_locations: crate::serve::code_locations(&secrets, &common.region, args.s3_public_url.clone())?,
        http: args.http.limits(),
    };
    let subscription = lamina_fleet::subscribe(args.redis.redis_url.expose(), &args.redis.redis_prefix).await?;
    let invalidator = lamina_fleet::Invalidator::new(
        lamina_fleet::connect(args.redis.redis_url.expose()).await?,
        &args.redis.redis_prefix,
    );
    let state = lamina_frontend::AppState::new(config, metadata, code, invoker)
        .with_session_key(lamina_common::session::derive_key(&secrets.master))
        .with_revocations(subscription, invalidator)
        .with_event_sources(lamina_event_sources::EventSourcesClient::connect(&args.metadata)?)
        .with_observability(lamina_observability::ObservabilityClient::connect(&args.metadata)?);
    let listener = listen(args.listen, args.reuse_port)?;
    let addr = listener.local_addr()?;
    let admin_listener = listen(args.http.admin_listen, args.reuse_port)?;
    let admin_addr = admin_listener.local_addr()?;
    let limits = args.http.limits();
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(lamina_frontend::serve(
        listener,
        lamina_frontend::router(state.clone()),
        limits,
        shutdown.clone().cancelled_owned(),
    ));
    let admin_served = tokio::spawn(lamina_frontend::serve(
        admin_listener,
        lamina_frontend::admin_router(state),
        limits,
        shutdown.clone().cancelled_owned(),
    ));
    tracing::info!(%addr, %admin_addr, "frontend is ready");
    stop.await;
    tracing::info!("frontend: draining");
    shutdown.cancel();
    served.await.context("join http server")?.context("serve http")?;
    admin_served.await.context("join admin http server")?.context("serve admin http")?;
    Ok(())
}

/// The runtimes the fleet offers, asked of the routers (waiting a while for hosts to register).
async fn runtimes_of(router: &RouterClient) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match router.health().await {
            Ok(h) => {
                let names: Vec<String> = h["runtimes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                if !names.is_empty() {
                    return names;
                }
            }
            Err(e) => tracing::debug!("routers not ready yet: {e}"),
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("no runtimes reported by the routers: CreateFunction accepts none until restart");
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn listen(addr: SocketAddr, reuse_port: bool) -> anyhow::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr).with_context(|| format!("bind {addr}"))?;
    Ok(socket.listen(1024)?)
}

/// `lamina metadata`: accounts, functions, aliases and policies over gRPC, on Postgres.
pub async fn run_metadata(args: MetadataArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    crate::prometheus::install(crate::prometheus::Process::Metadata);
    let metadata = metadata(&args.common, &args.backend).await?;
    // Another replica's writes make this one's cached reads stale too.
    follow_metadata_writes(metadata.clone().into(), &args.backend.redis).await?;
    let (incoming, addr) = lamina_rpc::transport::bind(args.grpc_listen).await?;
    let shutdown = CancellationToken::new();
    let status = Status::serve("metadata", args.common.http_listen, addr, shutdown.clone()).await?;
    let engine = metadata.engine();
    // Event sources' state lives in the same database: this process serves it too.
    let events = lamina_event_sources::EventSources::new(metadata.store().clone(), &args.common.region);
    // So do function logs and metrics.
    let observability =
        lamina_observability::Observability::new(metadata.store().clone(), &args.common.region, args.logs.limits());
    let janitor =
        tokio::spawn(lamina_observability::janitor(observability.clone(), JANITOR_EVERY, shutdown.child_token()));
    let routes = lamina_rpc::transport::Routes::new(lamina_metadata::grpc::service(metadata))
        .add_service(lamina_event_sources::service(events))
        .add_service(lamina_observability::service(observability));
    let server = tokio::spawn(lamina_rpc::transport::serve_routes(routes, incoming, shutdown.clone()));
    status.ready(move || serde_json::json!({ "engine": engine }));
    tracing::info!(%addr, engine, "metadata is ready");
    stop.await;
    shutdown.cancel();
    let _ = janitor.await;
    server.await.context("join gRPC server")?
}

/// How often the metadata process trims the log and metric stores.
const JANITOR_EVERY: Duration = Duration::from_secs(60);

/// Ships function telemetry to the observability service at `metadata` (when `enabled` and known).
fn shipper(
    metadata: &[String],
    telemetry: &TelemetryArgs,
    stop: &CancellationToken,
) -> anyhow::Result<Option<(Arc<lamina_observability::Shipper>, tokio::task::JoinHandle<()>)>> {
    if !telemetry.function_telemetry || metadata.is_empty() {
        return Ok(None);
    }
    let client = lamina_observability::ObservabilityClient::connect(metadata)?;
    Ok(Some(lamina_observability::Shipper::start(client, lamina_observability::ShipperConfig::default(), stop.clone())))
}

/// `lamina code-storage`: packages by digest over gRPC, and (with `--s3-listen`) the S3 API.
pub async fn run_code_storage(args: CodeStorageArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    crate::prometheus::install(crate::prometheus::Process::CodeStorage);
    let mut storage = CodeStorage::open(args.common.data_dir.join("blobs"), ZipLimits::default())?;
    let s3 = match args.s3_listen {
        Some(addr) => {
            let (listener, api) = s3_api(&args, addr, storage.clone()).await?;
            storage = storage.with_objects(api.store().clone());
            Some((listener, api))
        }
        None => None,
    };
    let (incoming, addr) = lamina_rpc::transport::bind(args.grpc_listen).await?;
    let shutdown = CancellationToken::new();
    let status = Status::serve("code-storage", args.common.http_listen, addr, shutdown.clone()).await?;
    let server = tokio::spawn(lamina_code_storage::serve(storage, incoming, shutdown.clone()));
    let s3_addr = s3.as_ref().and_then(|(listener, _)| listener.local_addr().ok());
    let s3_server =
        s3.map(|(listener, api)| tokio::spawn(lamina_code_storage::s3::serve(listener, api, shutdown.clone())));
    status.ready(move || serde_json::json!({ "s3": s3_addr.map(|a| a.to_string()) }));
    tracing::info!(%addr, s3 = ?s3_addr, "code storage is ready");
    stop.await;
    shutdown.cancel();
    let served = server.await.context("join gRPC server")?;
    if let Some(s3_server) = s3_server {
        s3_server.await.context("join S3 server")?.context("serve S3")?;
    }
    served
}

/// The S3 API of a code-storage process: keys and policies from the metadata services, notifications
/// into the async queue.
async fn s3_api(
    args: &CodeStorageArgs,
    addr: SocketAddr,
    storage: CodeStorage,
) -> anyhow::Result<(tokio::net::TcpListener, lamina_code_storage::s3::S3Api)> {
    anyhow::ensure!(!args.metadata.is_empty(), "--s3-listen needs --metadata (access keys, function policies)");
    let queue_addr = args.async_queue.as_deref().context("--s3-listen needs --async-queue (event notifications)")?;
    let common = &args.common;
    let secrets = Secrets::load(
        &common.data_dir,
        common.master_key.as_ref().map(Secret::expose),
        common.admin_token.as_ref().map(Secret::expose),
    )?;
    let objects = lamina_code_storage::s3::S3Store::open(common.data_dir.join("s3"))?;
    let metadata = MetadataClient::connect(&args.metadata)?;
    let keys = Arc::new(lamina_frontend::auth::SecretCache::default());
    if let Some(url) = &args.redis_url {
        follow_invalidations(metadata.clone(), keys.clone(), url.expose(), &args.redis_prefix).await?;
    }
    let queue = lamina_async_queue::QueueClient::connect(queue_addr)?;
    let api = lamina_code_storage::s3::S3Api::new(
        objects.clone(),
        storage,
        Arc::new(crate::s3::KeyCredentials::new(
            metadata.clone(),
            keys,
            Arc::new(lamina_frontend::auth::session::SessionVerifier::new(
                lamina_common::session::derive_key(&secrets.master),
                metadata.clone(),
            )),
        )),
        Arc::new(crate::s3::FunctionEvents::new(metadata.clone(), queue, &common.region)),
        Some(Arc::new(crate::s3::AccountQuota::new(metadata, objects))),
        crate::serve::s3_config(&secrets, &common.region, args.s3_base_domain.clone())?,
    );
    Ok((listen(addr, args.reuse_port)?, api))
}

/// Forgets revoked keys and stale metadata reads when a frontend announces them.
async fn follow_invalidations(
    metadata: MetadataClient,
    keys: Arc<lamina_frontend::auth::SecretCache>,
    redis_url: &str,
    prefix: &str,
) -> anyhow::Result<()> {
    let mut subscription = lamina_fleet::subscribe(redis_url, prefix).await?;
    tokio::spawn(async move {
        while let Some(message) = subscription.recv().await {
            match message {
                lamina_fleet::Invalidation::Key { topic, key } if topic == lamina_frontend::auth::SECRET_TOPIC => {
                    keys.forget(&key)
                }
                lamina_fleet::Invalidation::Key { topic, .. } if topic == lamina_frontend::METADATA_TOPIC => {
                    metadata.invalidate_cache()
                }
                lamina_fleet::Invalidation::Key { .. } => {}
                lamina_fleet::Invalidation::Missed => {
                    keys.clear();
                    metadata.invalidate_cache();
                }
            }
        }
    });
    Ok(())
}

/// `lamina invoke-router`: places invocations on the registered execution hosts.
pub async fn run_router(args: RouterArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    crate::prometheus::install(crate::prometheus::Process::InvokeRouter);
    let metadata = MetadataClient::connect(&args.metadata)?;
    let redis = lamina_fleet::connect(args.redis.redis_url.expose()).await?;
    let registry = HostRegistry::new(redis.clone(), &args.redis.redis_prefix, HOST_TTL);
    let leases = Leases::redis(
        redis,
        LeaseConfig { prefix: args.redis.redis_prefix.clone(), ttl: Duration::from_secs(args.lease_ttl_secs.max(1)) },
    );
    let queue = lamina_async_queue::QueueClient::connect(&args.async_queue)?;
    let secrets = Secrets::load(
        &args.common.data_dir,
        args.common.master_key.as_ref().map(Secret::expose),
        args.common.admin_token.as_ref().map(Secret::expose),
    )?;
    let router = InvokeRouter::new(metadata, Hosts::fleet(registry), args.common.region.clone(), leases, queue)
        .with_session_key(lamina_common::session::derive_key(&secrets.master));
    let shipping_stop = CancellationToken::new();
    let shipping = shipper(&args.metadata, &args.telemetry, &shipping_stop)?;
    let router = match &shipping {
        Some((shipper, _)) => router.with_telemetry(shipper.clone()),
        None => router,
    };
    follow_metadata_writes(router.metadata().clone(), &args.redis).await?;
    let (incoming, addr) = lamina_rpc::transport::bind(args.grpc_listen).await?;
    let shutdown = CancellationToken::new();
    let status = Status::serve("invoke-router", args.common.http_listen, addr, shutdown.clone()).await?;
    let server = tokio::spawn(lamina_invoke_router::grpc::serve(router, incoming, shutdown.clone()));
    status.ready(|| serde_json::json!({}));
    stop.await;
    shutdown.cancel();
    let served = server.await.context("join gRPC server")?;
    shipping_stop.cancel();
    if let Some((_, task)) = shipping {
        let _ = task.await;
    }
    served
}

/// Drops cached metadata reads whenever a frontend announces a write.
async fn follow_metadata_writes(metadata: MetadataClient, redis: &RedisArgs) -> anyhow::Result<()> {
    let mut subscription = lamina_fleet::subscribe(redis.redis_url.expose(), &redis.redis_prefix).await?;
    tokio::spawn(async move {
        while let Some(message) = subscription.recv().await {
            match message {
                lamina_fleet::Invalidation::Key { topic, .. } if topic != lamina_frontend::METADATA_TOPIC => {}
                _ => metadata.invalidate_cache(),
            }
        }
    });
    Ok(())
}

/// `lamina async-queue`: durable Event invocations on Redis, run through the routers.
pub async fn run_queue(args: QueueArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    crate::prometheus::install(crate::prometheus::Process::AsyncQueue);
    let config = lamina_async_queue::QueueConfig {
        // A restarted queue process takes over the events its previous life was running at once.
        state_dir: Some(args.common.data_dir.clone()),
        retry_delays: match &args.async_retry_delays {
            Some(text) => lamina_async_queue::QueueConfig::parse_delays(text)?,
            None => lamina_async_queue::QueueConfig::default().retry_delays,
        },
        ..lamina_async_queue::QueueConfig::default()
    };
    let queue =
        lamina_async_queue::Queue::redis(args.redis.redis_url.expose(), &args.redis.redis_prefix, config).await?;
    let router = RouterClient::connect(&args.routers)?;
    let sampled = queue.clone();
    let _backlog = lamina_frontend::on_scrape(move || {
        let queue = sampled.clone();
        async move { queue.sample_metrics().await }
    });
    let (incoming, addr) = lamina_rpc::transport::bind(args.grpc_listen).await?;
    let shutdown = CancellationToken::new();
    let status = Status::serve("async-queue", args.common.http_listen, addr, shutdown.clone()).await?;
    let server = tokio::spawn(lamina_async_queue::serve(queue.clone(), incoming, shutdown.clone()));
    let worker_stop = CancellationToken::new();
    let shipping_stop = CancellationToken::new();
    let shipping = shipper(&args.metadata, &args.telemetry, &shipping_stop)?;
    let (worker, sources) = if args.metadata.is_empty() {
        tracing::warn!("no --metadata: Event invocations run without destinations; no schedules or pollers");
        let run = move |event| {
            let router = router.clone();
            async move { router.run_event(event).await }
        };
        (tokio::spawn(queue.work(run, worker_stop.clone())), None)
    } else {
        let metadata = MetadataClient::connect(&args.metadata)?;
        let events = lamina_event_sources::EventSourcesClient::connect(&args.metadata)?;
        let owner = crate::event_sources::owner(&args.common.data_dir, "async-queue")?;
        let sources = crate::event_sources::start(
            crate::event_sources::Parts {
                router: router.clone(),
                metadata,
                events,
                queue: queue.clone().into(),
                region: args.common.region.clone(),
                owner,
                telemetry: shipping
                    .as_ref()
                    .map(|(s, _)| -> Arc<dyn lamina_common::telemetry::TelemetrySink> { s.clone() }),
            },
            worker_stop.clone(),
        );
        let runner = sources.runner.clone();
        let run = move |event| {
            let runner = runner.clone();
            async move { runner.run(event).await }
        };
        (tokio::spawn(queue.work(run, worker_stop.clone())), Some(sources))
    };
    status.ready(|| serde_json::json!({}));
    stop.await;
    shutdown.cancel();
    let served = server.await.context("join gRPC server")?;
    worker_stop.cancel();
    worker.await.context("join worker")?;
    if let Some(sources) = sources {
        sources.join().await;
    }
    shipping_stop.cancel();
    if let Some((_, task)) = shipping {
        let _ = task.await;
    }
    served
}

/// `lamina exec-host`: sandboxes, registered in Redis with heartbeats.
pub async fn run_exec_host(args: ExecHostArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    crate::prometheus::install(crate::prometheus::Process::ExecHost);
    let mut config = args.exec.config(args.config.as_deref())?;
    config.data_dir = args.common.data_dir.join("exec-host");
    config.region = args.common.region.clone();
    if args.lambda_endpoint.is_some() {
        config.lambda_endpoint = args.lambda_endpoint.clone();
    }
    if args.s3_endpoint.is_some() {
        config.s3_endpoint = args.s3_endpoint.clone();
    }
    config.validate()?;
    let code = CodeClient::connect(&args.code_storage, ZipLimits::default())?;
    let host_stop = CancellationToken::new();
    let host = ExecHost::start(config, code, host_stop.clone()).await.context("start execution host")?;
    let sampled = host.clone();
    let _pools = lamina_frontend::on_scrape(move || {
        lamina_exec_host::metrics::sample(&sampled);
        std::future::ready(())
    });
    let shipping_stop = CancellationToken::new();
    let shipping = shipper(&args.metadata, &args.telemetry, &shipping_stop)?;
    match &shipping {
        Some((shipper, _)) => host.set_telemetry(shipper.clone()),
        None => tracing::warn!("no --metadata: function logs stay on this host"),
    }
    let (incoming, addr) = lamina_rpc::transport::bind(args.grpc_listen).await?;
    let id = args.host_id.clone().unwrap_or_else(|| format!("host-{}", lamina_common::ids::random_uuid().simple()));
    let advertise = args.advertise.clone().unwrap_or_else(|| addr.to_string());
    let redis = lamina_fleet::connect(args.redis.redis_url.expose()).await?;
    let registry = HostRegistry::new(redis, &args.redis.redis_prefix, HOST_TTL);
    let shutdown = CancellationToken::new();
    let status = Status::serve("exec-host", args.common.http_listen, addr, shutdown.clone()).await?;
    let server = tokio::spawn(lamina_exec_host::serve(host.clone(), incoming, shutdown.clone()));
    let draining = CancellationToken::new();
    let heartbeats = {
        let (host, draining, id) = (host.clone(), draining.clone(), id.clone());
        let advertise = advertise.clone();
        let info = move || host_info(&host, &id, &advertise, draining.is_cancelled());
        lamina_fleet::spawn_heartbeats(registry.clone(), HEARTBEAT, info, host_stop.child_token())
    };
    {
        let host = host.clone();
        status.ready(move || host.health());
    }
    tracing::info!(%id, %addr, "execution host is ready");
    stop.await;
    tracing::info!("execution host: draining");
    // Routers stop choosing this host, then running invocations finish, then sandboxes go.
    draining.cancel();
    if let Err(e) = registry.heartbeat(&host_info(&host, &id, &advertise, true)).await {
        tracing::warn!("could not announce draining: {e:#}");
    }
    // In-flight gRPC calls are the running invocations: the server's graceful stop waits for them.
    let still_running = host.drain(tokio::time::Instant::now() + DRAIN_LIMIT).await;
    if still_running > 0 {
        tracing::warn!(still_running, "invocations still running at the drain deadline");
    }
    shutdown.cancel();
    let served = server.await.context("join gRPC server")?;
    host_stop.cancel();
    let _ = heartbeats.await;
    host.shutdown().await;
    shipping_stop.cancel();
    if let Some((_, task)) = shipping {
        let _ = task.await;
    }
    served
}

fn host_info(host: &ExecHost, id: &str, advertise: &str, draining: bool) -> HostInfo {
    let load = host.load();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    HostInfo {
        id: id.to_owned(),
        grpc_addr: advertise.to_owned(),
        capacity_sandboxes: count(load.max_sandboxes),
        memory_budget_mb: load.memory_budget_mb,
        memory_used_mb: load.memory_used_mb,
        in_flight: count(load.live.saturating_sub(load.idle)),
        warm: host.warm_keys(),
        runtimes: host.runtimes(),
        draining,
    }
}
