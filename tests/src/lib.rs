//! Test harness: starts Lamina in-process on a real backend and hands out real AWS SDK clients.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_lambda::config::{BehaviorVersion, Region};
use serde_json::{Value, json};

pub use lamina::serve::{Running, ServeOptions};

pub mod external;

/// What a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `lamina serve` in the test process, on SQLite.
    Sqlite,
    /// `lamina serve` in the test process, on a fresh Postgres database.
    Postgres,
    /// `lamina cluster` (every service its own process) on a fresh Postgres database and Redis key
    /// prefix.
    Cluster,
}

impl Backend {
    /// The target of suites that run on one backend: `LAMINA_TEST_TARGET=cluster` or SQLite.
    pub fn from_env() -> Self {
        match std::env::var("LAMINA_TEST_TARGET").as_deref() {
            Ok("cluster") => Self::Cluster,
            Ok("postgres") => Self::Postgres,
            _ => Self::Sqlite,
        }
    }
}

/// Redis URL of the test machine.
pub fn redis_url() -> String {
    std::env::var("LAMINA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The `lamina` binary the cluster target runs (built by `scripts/test.sh`).
pub fn lamina_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/lamina")
}

/// The runtime SDK directory of this workspace's build (`<target>/runtime-sdks`), if installed.
pub fn runtime_sdk_dir() -> Option<PathBuf> {
    let dir = lamina_binary().parent()?.parent()?.join("runtime-sdks");
    dir.is_dir().then_some(dir)
}

/// A server under test: in this process, or a `lamina cluster` child process.
pub struct Server {
    pub addr: std::net::SocketAddr,
    /// The operator listener (admin API, `/metrics`).
    pub admin_addr: std::net::SocketAddr,
    /// Code storage's S3 API.
    pub s3_addr: std::net::SocketAddr,
    pub admin_token: String,
    /// The metadata store the server uses (tests check what the API cannot show).
    pub metadata: lamina_metadata::Metadata,
    process: Process,
}

enum Process {
    InProcess(Running),
    Cluster(ClusterProcess),
}

/// A running `lamina cluster`.
pub struct ClusterProcess {
    child: tokio::process::Child,
    /// Redis key prefix of this cluster.
    pub redis_prefix: String,
    /// Redis the cluster uses.
    pub redis_url: String,
}

/// How a `lamina cluster` under test is laid out, beyond [`ServeOptions`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Redis the cluster uses (default: [`redis_url`]).
    pub redis_url: String,
    /// Frontend processes (sharing the API address).
    pub frontends: usize,
    /// Invoke-router processes.
    pub routers: usize,
    /// Execution-host processes.
    pub exec_hosts: usize,
    /// Seconds a crashed router's concurrency slots stay taken.
    pub lease_ttl_secs: u64,
    /// More `lamina cluster` flags, e.g. `--sandbox-allow-host-ports=18000`.
    pub extra_args: Vec<String>,
    /// Base URL (`postgres://user@host:port`) of the Postgres server the test database is created
    /// on (default: [`postgres_base`]), e.g. a server private to the test.
    pub postgres_base: Option<String>,
    /// More environment of `lamina cluster` (its children inherit it), e.g. `OTEL_*`.
    pub env: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            redis_url: redis_url(),
            frontends: 1,
            routers: 2,
            exec_hosts: 2,
            lease_ttl_secs: 3,
            extra_args: Vec::new(),
            postgres_base: None,
            env: Vec::new(),
        }
    }
}

impl Server {
    fn in_process(running: Running) -> Self {
        Self {
            addr: running.addr,
            admin_addr: running.admin_addr,
            s3_addr: running.s3_addr,
            admin_token: running.admin_token.clone(),
            metadata: running.metadata.clone(),
            process: Process::InProcess(running),
        }
    }

    /// Pid of the `lamina cluster` process (none in process).
    pub fn cluster_pid(&self) -> Option<u32> {
        match &self.process {
            Process::Cluster(c) => c.child.id(),
            Process::InProcess(_) => None,
        }
    }

    /// Waits for the cluster process to exit by itself (after a signal the test sent).
    pub async fn cluster_exit(&mut self) -> Option<std::process::ExitStatus> {
        match &mut self.process {
            Process::Cluster(c) => c.child.wait().await.ok(),
            Process::InProcess(_) => None,
        }
    }

    /// Pids of the cluster's `service` processes (none in process).
    pub fn cluster_children(&self, service: &str) -> Vec<u32> {
        match &self.process {
            Process::Cluster(c) => c.children(service),
            Process::InProcess(_) => Vec::new(),
        }
    }

    /// The cluster process, when the target is a cluster.
    pub fn cluster(&mut self) -> Option<&mut ClusterProcess> {
        match &mut self.process {
            Process::Cluster(c) => Some(c),
            Process::InProcess(_) => None,
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self.process {
            Process::InProcess(running) => running.stop().await,
            Process::Cluster(mut c) => {
                if let Some(pid) = c.child.id() {
                    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
                }
                let status = tokio::time::timeout(Duration::from_secs(60), c.child.wait())
                    .await
                    .context("cluster did not stop within 60 s")??;
                anyhow::ensure!(status.success(), "cluster exited with {status}");
                delete_redis_prefix(&c.redis_url, &c.redis_prefix).await;
                Ok(())
            }
        }
    }
}

impl ClusterProcess {
    /// Pids of the cluster's children whose command line contains `service` (e.g. `exec-host`).
    pub fn children(&self, service: &str) -> Vec<u32> {
        let Some(parent) = self.child.id() else { return Vec::new() };
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let ppid =
                stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            if ppid == Some(parent) && args.get(1).is_some_and(|a| a == service) {
                out.push(pid);
            }
        }
        out.sort_unstable();
        out
    }
}

async fn delete_redis_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else { return };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return };
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}

/// Starts `lamina cluster` on a fresh database and Redis prefix; waits until it serves.
async fn start_cluster(
    data_dir: &std::path::Path,
    database_url: &str,
    opts: &ServeOptions,
    layout: &ClusterOptions,
) -> anyhow::Result<Server> {
    let prefix = format!("lamina-test-{}", uuid::Uuid::new_v4().simple());
    let delays: Vec<String> = opts.queue.retry_delays.iter().map(|d| format!("{}", d.as_secs_f64())).collect();
    let admin_token = opts.admin_token.clone().unwrap_or_else(|| "test-admin-token".into());
    let log = std::fs::File::create(data_dir.join("cluster.log"))?;
    let child = tokio::process::Command::new(lamina_binary())
        .arg("cluster")
        .arg(format!("--data-dir={}", data_dir.display()))
        // The cluster picks the port and holds it (a port picked here could be taken meanwhile).
        .arg("--listen=127.0.0.1:0")
        .arg("--admin-listen=127.0.0.1:0")
        .arg("--s3-listen=127.0.0.1:0")
        .arg(format!("--database-url={database_url}"))
        .arg(format!("--redis-url={}", layout.redis_url))
        .arg(format!("--redis-prefix={prefix}"))
        .arg(format!("--frontends={}", layout.frontends))
        .arg(format!("--routers={}", layout.routers))
        .arg(format!("--exec-hosts={}", layout.exec_hosts))
        .arg(format!("--cpu-quota={}", opts.exec.cpu_quota))
        .arg(format!("--async-retry-delays={}", delays.join(",")))
        .arg(format!("--lease-ttl-secs={}", layout.lease_ttl_secs))
        .args(&layout.extra_args)
        .env("LAMINA_ADMIN_TOKEN", &admin_token)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .envs(layout.env.iter().map(|(k, v)| (k, v)))
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", lamina_binary().display()))?;
    let mut cluster = ClusterProcess { child, redis_prefix: prefix, redis_url: layout.redis_url.clone() };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let (addr, admin_addr, s3_addr) = loop {
        if let Some(status) = cluster.child.try_wait()? {
            let log = std::fs::read_to_string(data_dir.join("cluster.log")).unwrap_or_default();
            anyhow::bail!("lamina cluster exited ({status}):\n{log}");
        }
        // The cluster prints its address once every process is ready.
        let log = std::fs::read_to_string(data_dir.join("cluster.log")).unwrap_or_default();
        let announced = log
            .lines()
            .find_map(|l| l.split_once("is listening on http://").map(|(_, a)| a.trim().to_owned()))
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
        let admin = log
            .lines()
            .find_map(|l| l.split_once("Admin API and metrics on http://").map(|(_, a)| a.to_owned()))
            .and_then(|a| a.split_whitespace().next().and_then(|a| a.parse::<std::net::SocketAddr>().ok()));
        let s3 = log
            .lines()
            .find_map(|l| l.split_once("S3 API on http://").map(|(_, a)| a.trim().to_owned()))
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
        if let (Some(addr), Some(admin), Some(s3)) = (announced, admin, s3)
            && let Ok(r) = client.get(format!("http://{addr}/health")).send().await
            && r.status().is_success()
        {
            break (addr, admin, s3);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "lamina cluster did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let master = lamina::serve::Secrets::load(data_dir, None, Some(&admin_token))?.master;
    let metadata =
        lamina_metadata::Metadata::connect(database_url, lamina_metadata::SecretCipher::new(&master)).await?;
    let _ = &mut cluster;
    Ok(Server { addr, admin_addr, s3_addr, admin_token, metadata, process: Process::Cluster(cluster) })
}

/// Base URL of the Postgres server tests create databases on.
pub fn postgres_base() -> String {
    std::env::var("LAMINA_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// A running Lamina with its own data dir (and, on Postgres, its own database).
pub struct TestEnv {
    pub server: Server,
    pub backend: Backend,
    pub data_dir: tempfile::TempDir,
    pub region: String,
    database: Option<String>,
    /// Base URL of the Postgres server holding `database`.
    postgres_base: String,
    opts: ServeOptions,
}

/// Keys of one tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub account_id: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl TestEnv {
    /// Starts Lamina on `backend`; `None` when Postgres is unreachable outside CI (the test is skipped).
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, |_| {}).await
    }

    /// Like [`start`](Self::start), letting the test adjust options first.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut ServeOptions)) -> Option<Self> {
        Self::start_on(backend, &ClusterOptions::default(), adjust).await
    }

    /// Starts a `lamina cluster` laid out as `layout`; `None` as for [`start`](Self::start).
    pub async fn start_cluster(layout: &ClusterOptions) -> Option<Self> {
        Self::start_on(Backend::Cluster, layout, |_| {}).await
    }

    async fn start_on(
        backend: Backend,
        layout: &ClusterOptions,
        adjust: impl FnOnce(&mut ServeOptions),
    ) -> Option<Self> {
        init_logging();
        let data_dir = tempfile::tempdir().expect("temp data dir");
        let mut opts = ServeOptions::new(data_dir.path());
        opts.listen = "127.0.0.1:0".parse().expect("addr");
        opts.admin_listen = "127.0.0.1:0".parse().expect("addr");
        opts.s3_listen = "127.0.0.1:0".parse().expect("addr");
        // The AWS SDKs of the managed runtimes (scripts/install-runtime-sdks.sh), as `lamina` finds them
        // beside its binary; the test binary lives one directory deeper.
        if opts.exec.runtime_sdk_dir.is_none() {
            opts.exec.runtime_sdk_dir = runtime_sdk_dir();
        }
        opts.admin_token = Some("test-admin-token".into());
        // Retries of failed Event invocations after 0.2 s instead of minutes.
        opts.queue.retry_delays = vec![Duration::from_millis(200), Duration::from_millis(200)];
        let mut database = None;
        let postgres_base = layout.postgres_base.clone().unwrap_or_else(postgres_base);
        if backend != Backend::Sqlite {
            match create_database(&postgres_base).await {
                Ok((url, name)) => {
                    opts.database_url = Some(url);
                    database = Some(name);
                }
                Err(err) if !in_ci() => {
                    eprintln!("skipping: Postgres unreachable ({err:#}); CI would fail here");
                    return None;
                }
                Err(err) => panic!("Postgres is required under CI: {err:#}"),
            }
        }
        adjust(&mut opts);
        let region = opts.region.clone();
        let server = match (backend, &opts.database_url) {
            (Backend::Cluster, Some(url)) => {
                start_cluster(data_dir.path(), url, &opts, layout).await.expect("start lamina cluster")
            }
            _ => Server::in_process(lamina::serve::start(opts.clone()).await.expect("start lamina")),
        };
        Some(Self { server, backend, data_dir, region, database, postgres_base, opts })
    }

    /// Stops the server and starts a new one on the same data dir and database (a process restart).
    pub async fn restart(self, adjust: impl FnOnce(&mut ServeOptions)) -> Self {
        self.server.stop().await.expect("server stopped cleanly");
        let mut opts = self.opts.clone();
        adjust(&mut opts);
        let server = Server::in_process(lamina::serve::start(opts.clone()).await.expect("restart lamina"));
        Self { server, opts, ..self }
    }

    /// Event invocations accepted and not yet finished.
    pub async fn pending_events(&self) -> i64 {
        if let Process::Cluster(c) = &self.server.process {
            let queue = lamina_async_queue::Queue::redis(c.redis_url.as_str(), &c.redis_prefix, Default::default())
                .await
                .expect("connect to the cluster's queue");
            return queue.pending().await.expect("count events");
        }
        lamina_metadata::on_pool!(self.server.metadata.store(), pool => {
            sqlx::query_scalar::<_, i64>("select count(*) from async_events").fetch_one(pool).await
        })
        .expect("count events")
    }

    /// Log messages of a function through `GET /_lamina/v1/functions/{name}/logs` (SigV4-signed by hand).
    pub async fn log_messages(&self, t: &Tenant, function: &str) -> Vec<String> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let url = format!("{}/_lamina/v1/functions/{function}/logs", self.endpoint());
        let host = self.server.addr.to_string();
        let identity: aws_smithy_runtime_api::client::identity::Identity =
            aws_credential_types::Credentials::new(&t.access_key_id, &t.secret_access_key, None, None, "t").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("lambda")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let headers = [("host", host.as_str())];
        let signable =
            SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(b"")).expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut req = http::Request::builder().method("GET").uri(&url).header("host", &host).body(()).expect("request");
        instructions.apply_to_request_http1x(&mut req);
        let mut out = reqwest::Client::new().get(req.uri().to_string());
        for (k, v) in req.headers() {
            out = out.header(k.as_str(), v.as_bytes());
        }
        let resp = out.send().await.expect("send");
        assert_eq!(resp.status().as_u16(), 200, "logs API");
        let body: Value = resp.json().await.expect("logs JSON");
        body["Events"]
            .as_array()
            .expect("Events")
            .iter()
            .map(|e| e["Message"].as_str().or_else(|| e["message"].as_str()).unwrap_or_default().to_owned())
            .collect()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// `http://127.0.0.1:<port>` of the operator listener (admin API, `/metrics`).
    pub fn admin_endpoint(&self) -> String {
        format!("http://{}", self.server.admin_addr)
    }

    /// Calls the admin API.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}/_lamina/admin{path}", self.admin_endpoint()))
            .bearer_auth(&self.server.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin call");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a tenant with default limits.
    pub async fn tenant(&self) -> Tenant {
        self.tenant_with(json!({})).await
    }

    /// Creates a tenant; `extra` may set `ConcurrentExecutions` / `CodeStorageBytes`.
    pub async fn tenant_with(&self, extra: Value) -> Tenant {
        let mut body = json!({ "Name": format!("t-{}", uuid::Uuid::new_v4()) });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, key) = self.admin(reqwest::Method::POST, "/accounts", Some(body)).await;
        assert_eq!(status, 201, "create account: {key}");
        Tenant {
            account_id: key["AccountId"].as_str().expect("id").to_owned(),
            access_key_id: key["AccessKeyId"].as_str().expect("key").to_owned(),
            secret_access_key: key["SecretAccessKey"].as_str().expect("secret").to_owned(),
        }
    }

    /// An AWS SDK Lambda client signed with the tenant's keys (no retries: tests see every answer).
    pub fn lambda(&self, t: &Tenant) -> aws_sdk_lambda::Client {
        self.lambda_with(t, &self.region, &t.secret_access_key)
    }

    /// A client with a chosen region and secret (for signature tests).
    pub fn lambda_with(&self, t: &Tenant, region: &str, secret: &str) -> aws_sdk_lambda::Client {
        let creds = aws_credential_types::Credentials::new(&t.access_key_id, secret, None, None, "lamina-tests");
        let conf = aws_sdk_lambda::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(creds)
            .endpoint_url(self.endpoint())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
            .build();
        aws_sdk_lambda::Client::from_conf(conf)
    }

    /// `http://127.0.0.1:<port>` of code storage's S3 API.
    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.server.s3_addr)
    }

    /// An AWS SDK S3 client signed with the tenant's keys, path-style (no retries).
    pub fn s3(&self, t: &Tenant) -> aws_sdk_s3::Client {
        self.s3_with(&t.access_key_id, &t.secret_access_key, None)
    }

    /// An S3 client with chosen credentials (a session token for function credentials).
    pub fn s3_with(&self, access_key_id: &str, secret: &str, session_token: Option<String>) -> aws_sdk_s3::Client {
        let creds = aws_credential_types::Credentials::new(access_key_id, secret, session_token, None, "lamina-tests");
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(self.region.clone()))
            .credentials_provider(creds)
            .endpoint_url(self.s3_endpoint())
            .force_path_style(true)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// The data directory of the (first) execution host.
    pub fn exec_host_dir(&self) -> PathBuf {
        match self.backend {
            Backend::Cluster => self.data_dir.path().join("exec-host-0/exec-host"),
            _ => self.data_dir.path().join("exec-host"),
        }
    }

    /// Where blobs are kept.
    pub fn blob_dir(&self) -> PathBuf {
        match self.backend {
            Backend::Cluster => self.data_dir.path().join("code-storage/blobs"),
            _ => self.data_dir.path().join("blobs"),
        }
    }

    /// Stops the server and drops the test database.
    pub async fn stop(self) {
        self.server.stop().await.expect("server stopped cleanly");
        if let Some(db) = self.database
            && let Ok(mut conn) = admin_connection(&self.postgres_base).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("drop database if exists \"{db}\" with (force)")))
                .execute(&mut conn)
                .await;
        }
    }
}

async fn admin_connection(base: &str) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection as _;
    let url = format!("{base}/postgres");
    tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url))
        .await
        .context("connect to postgres: timed out")?
        .context("connect to postgres")
}

async fn create_database(base: &str) -> anyhow::Result<(String, String)> {
    let mut conn = admin_connection(base).await?;
    let name = format!("lamina_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
        .execute(&mut conn)
        .await
        .context("create test database")?;
    Ok((format!("{base}/{name}"), name))
}

fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_env_filter("debug").with_test_writer().try_init();
        }
    });
}

/// Builds a zip in memory from `(name, contents)` pairs (deflated).
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        w.start_file(*name, opts).expect("start zip entry");
        w.write_all(data).expect("write zip entry");
    }
    w.finish().expect("finish zip").into_inner()
}

/// A minimal Python function package.
pub fn python_zip(body: &str) -> Vec<u8> {
    zip_of(&[("lambda_function.py", body.as_bytes())])
}

/// A CreateFunction request for `lambda_function.handler` on python3.11 with `code`, ready to adjust.
pub fn create_python_code(
    client: &aws_sdk_lambda::Client,
    name: &str,
    code: aws_sdk_lambda::types::FunctionCode,
) -> aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder {
    client
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::from("python3.11"))
        .role("arn:aws:iam::123456789012:role/lambda-role")
        .handler("lambda_function.handler")
        .code(code)
}

/// [`create_python_code`] with `source` as the whole `lambda_function` module.
pub fn create_python(
    client: &aws_sdk_lambda::Client,
    name: &str,
    source: &str,
) -> aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder {
    let zip = aws_sdk_lambda::primitives::Blob::new(python_zip(source));
    create_python_code(client, name, aws_sdk_lambda::types::FunctionCode::builder().zip_file(zip).build())
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Generates one `#[tokio::test]` per backend for each listed async fn taking `&TestEnv`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = $crate::TestEnv::start($crate::Backend::Sqlite).await.expect("sqlite always available");
                    super::$name(&env).await;
                    env.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(env) = $crate::TestEnv::start($crate::Backend::Postgres).await else { return };
                    super::$name(&env).await;
                    env.stop().await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(env) = $crate::TestEnv::start($crate::Backend::Cluster).await else { return };
                    super::$name(&env).await;
                    env.stop().await;
                }
            )*
        }
    };
}

/// The error code an SDK call failed with (panics on success).
pub fn code_of<E, R>(
    result: Result<R, aws_sdk_lambda::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> String
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(ok) => panic!("expected an error, got {ok:?}"),
        Err(err) => {
            err.as_service_error().and_then(|e| e.code()).map(str::to_owned).unwrap_or_else(|| format!("{err:?}"))
        }
    }
}

/// The HTTP status of an SDK call (200 for a success).
pub fn status_of<E, R>(
    result: &Result<R, aws_sdk_lambda::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> u16 {
    match result {
        Ok(_) => 200,
        Err(err) => err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
    }
}

/// The error code and message an SDK call failed with (panics on success).
pub fn error_of<E, R>(
    result: Result<R, aws_sdk_lambda::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> (String, String)
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(ok) => panic!("expected an error, got {ok:?}"),
        Err(err) => match err.as_service_error() {
            Some(e) => (e.code().unwrap_or_default().to_owned(), e.message().unwrap_or_default().to_owned()),
            None => panic!("not a service error: {err:?}"),
        },
    }
}
