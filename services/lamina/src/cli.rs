//! Command-line interface: `serve` and the `account` admin commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

/// Lamina: a self-hosted, multi-tenant AWS Lambda.
#[derive(Debug, Parser)]
#[command(name = "lamina", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Service log lines on stderr: `text`, or `json` (one object per line with the enclosing
    /// spans' fields, request ids among them). `lamina cluster`'s children inherit the variable.
    #[arg(long, global = true, env = "LAMINA_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: crate::telemetry::LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in this process (embedded SQLite unless LAMINA_DATABASE_URL says otherwise).
    Serve(ServeArgs),
    /// Manage tenant accounts through a running server's admin API.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Run the distributed topology on this machine: every service its own `lamina <service>`
    /// child process, on Postgres and Redis.
    Cluster(crate::distributed::ClusterArgs),
    /// Run the public HTTP API (distributed mode).
    Frontend(crate::distributed::FrontendArgs),
    /// Run the metadata service (distributed mode).
    Metadata(crate::distributed::MetadataArgs),
    /// Run code storage (distributed mode).
    CodeStorage(crate::distributed::CodeStorageArgs),
    /// Run an invoke router (distributed mode).
    InvokeRouter(crate::distributed::RouterArgs),
    /// Run the async queue's API and workers (distributed mode).
    AsyncQueue(crate::distributed::QueueArgs),
    /// Run an execution host (distributed mode).
    ExecHost(crate::distributed::ExecHostArgs),
}

/// Flags of `lamina serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with execution-host settings and the runtime registry (see docs/configuration.md).
    #[arg(long, env = "LAMINA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite, blobs, keys, code cache).
    #[arg(long, env = "LAMINA_DATA_DIR", default_value = "./lamina-data")]
    pub data_dir: PathBuf,
    /// Address of the Lambda API (and `/health`).
    #[arg(long, env = "LAMINA_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub s3: S3Args,
    /// Region served.
    #[arg(long, env = "LAMINA_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Metadata database (postgres://…); default SQLite under the data dir.
    #[arg(long, env = "LAMINA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// Admin API bearer token; default generated into <data-dir>/admin-token.
    #[arg(long, env = "LAMINA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Base64 32-byte key that encrypts secrets at rest; default generated into <data-dir>/master.key.
    #[arg(long, env = "LAMINA_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<Secret>,
    /// Largest MemorySize accepted, in MB (the guide: 1536; AWS today: 10240).
    #[arg(long, env = "LAMINA_MAX_MEMORY_MB", default_value_t = 1536)]
    pub max_memory_mb: i64,
    /// Largest Timeout accepted, in seconds.
    #[arg(long, env = "LAMINA_MAX_TIMEOUT", default_value_t = 300)]
    pub max_timeout: i64,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Seconds before each retry of a failed Event invocation, e.g. `60,120` (the default: two retries).
    #[arg(long, env = "LAMINA_ASYNC_RETRY_DELAYS")]
    pub async_retry_delays: Option<String>,
    #[command(flatten)]
    pub logs: LogStoreArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Whether function telemetry is shipped (`serve`, `invoke-router`, `exec-host`, `async-queue`, `cluster`).
#[derive(Debug, Args, Clone)]
pub struct TelemetryArgs {
    /// Ship function logs and `AWS/Lambda` metrics to their stores (`false` only to measure their cost:
    /// the CloudWatch Logs and CloudWatch APIs then see nothing new).
    #[arg(long, env = "LAMINA_FUNCTION_TELEMETRY", default_value_t = true, action = clap::ArgAction::Set)]
    pub function_telemetry: bool,
}

/// Bounds of the function log store (`serve`, `metadata`, `cluster`).
#[derive(Debug, Args, Clone)]
pub struct LogStoreArgs {
    /// Bytes of function log messages an account may keep; its oldest events go first beyond it.
    #[arg(long, env = "LAMINA_LOG_BYTES_PER_ACCOUNT", default_value_t = 1 << 30)]
    pub log_bytes_per_account: u64,
    /// Days a log group without a retention policy keeps its events (default: until the size cap).
    #[arg(long, env = "LAMINA_LOG_RETENTION_DAYS")]
    pub log_retention_days: Option<u32>,
}

impl LogStoreArgs {
    /// The limits these flags set.
    pub fn limits(&self) -> lamina_observability::LogLimits {
        lamina_observability::LogLimits {
            bytes_per_account: self.log_bytes_per_account,
            default_retention_days: self.log_retention_days,
        }
    }
}

/// Code storage's S3-compatible API (`serve`, `cluster`).
#[derive(Debug, Args, Clone)]
pub struct S3Args {
    /// Address of the S3-compatible API (buckets, objects, notifications, package downloads).
    #[arg(long, env = "LAMINA_S3_LISTEN", default_value = "127.0.0.1:9002")]
    pub s3_listen: SocketAddr,
    /// Base URL clients reach the S3 API at, when not `http://<--s3-listen>` (a proxy, a DNS name):
    /// GetFunction's `Code.Location` URLs start with it.
    #[arg(long, env = "LAMINA_S3_PUBLIC_URL")]
    pub s3_public_url: Option<String>,
    /// Domain of virtual-hosted-style requests (`<bucket>.<domain>`, e.g. `s3.localhost`); path-style
    /// requests work with or without it.
    #[arg(long, env = "LAMINA_S3_BASE_DOMAIN")]
    pub s3_base_domain: Option<String>,
}

/// The operator listener and the HTTP deadlines (`serve`, `frontend`, `cluster`).
#[derive(Debug, Args, Clone)]
pub struct HttpArgs {
    /// Address of the operator endpoints: the admin API, `/metrics`, `/health`. They list every
    /// tenant: keep it on loopback or a private network.
    #[arg(long, env = "LAMINA_ADMIN_LISTEN", default_value = "127.0.0.1:9003")]
    pub admin_listen: SocketAddr,
    /// Seconds a client may take to send a request's headers; also the idle keep-alive timeout.
    #[arg(long, env = "LAMINA_HTTP_HEADER_TIMEOUT", default_value_t = 30)]
    pub http_header_timeout_secs: u64,
    /// Seconds a client may take to send a request's body (then 408 and the connection closes).
    #[arg(long, env = "LAMINA_HTTP_BODY_TIMEOUT", default_value_t = 120)]
    pub http_body_timeout_secs: u64,
    /// Open connections per listener; more wait in the kernel's accept backlog.
    #[arg(long, env = "LAMINA_HTTP_MAX_CONNECTIONS", default_value_t = 4096)]
    pub http_max_connections: usize,
    /// MB of request bodies held in memory at once; a request that cannot reserve its body in
    /// time gets 503 unread.
    #[arg(long, env = "LAMINA_HTTP_BODY_MEMORY_MB", default_value_t = 1024)]
    pub http_body_memory_mb: usize,
}

impl HttpArgs {
    /// The limits these flags describe.
    pub fn limits(&self) -> lamina_frontend::HttpLimits {
        lamina_frontend::HttpLimits {
            header_timeout: std::time::Duration::from_secs(self.http_header_timeout_secs.max(1)),
            body_timeout: std::time::Duration::from_secs(self.http_body_timeout_secs.max(1)),
            max_connections: self.http_max_connections.max(1),
            body_memory: self.http_body_memory_mb.max(1).saturating_mul(1024 * 1024),
        }
    }

    /// The same flags as arguments of a child process, with its own admin address.
    pub fn to_args(&self, admin_listen: SocketAddr) -> Vec<String> {
        vec![
            format!("--admin-listen={admin_listen}"),
            format!("--http-header-timeout-secs={}", self.http_header_timeout_secs),
            format!("--http-body-timeout-secs={}", self.http_body_timeout_secs),
            format!("--http-max-connections={}", self.http_max_connections),
            format!("--http-body-memory-mb={}", self.http_body_memory_mb),
        ]
    }
}

/// Execution-host flags (`serve`, `exec-host`, `cluster`).
#[derive(Debug, Args, Clone)]
pub struct ExecArgs {
    /// Hard-cap each sandbox's CPU in proportion to its memory (1769 MB = one vCPU), as Lambda does
    /// (`--cpu-quota false` leaves only proportional shares).
    #[arg(long, env = "LAMINA_CPU_QUOTA", default_value_t = true, action = clap::ArgAction::Set)]
    pub cpu_quota: bool,
    /// Host TCP ports sandboxes may reach on their own 127.0.0.1, e.g. `18000-18999,5000` (default none).
    #[arg(long, env = "LAMINA_SANDBOX_ALLOW_HOST_PORTS", default_value = "")]
    pub sandbox_allow_host_ports: String,
    /// Extra IPv4 networks (CIDR, comma-separated) sandboxes may not reach.
    #[arg(long, env = "LAMINA_SANDBOX_BLOCKED_NETWORKS", value_delimiter = ',')]
    pub sandbox_blocked_networks: Vec<String>,
    /// IPv4 networks (CIDR, comma-separated) sandboxes may reach although private, shared and
    /// link-local ranges are denied by default, e.g. `10.20.0.0/16`.
    #[arg(long, env = "LAMINA_SANDBOX_EGRESS_ALLOW", value_delimiter = ',')]
    pub sandbox_egress_allow: Vec<String>,
    /// Run sandboxes on the host's network when per-sandbox networks are unavailable. INSECURE:
    /// functions can then reach every service on the host's loopback.
    #[arg(long, env = "LAMINA_INSECURE_SHARED_NETWORK")]
    pub insecure_shared_network: bool,
    /// Seconds an idle warm sandbox is kept.
    #[arg(long, env = "LAMINA_IDLE_TIMEOUT", default_value_t = 600)]
    pub idle_timeout_secs: u64,
}

impl ExecArgs {
    /// The execution-host configuration these flags (and the optional config file) describe.
    pub fn config(&self, file: Option<&std::path::Path>) -> anyhow::Result<lamina_exec_host::Config> {
        if self.insecure_shared_network {
            tracing::warn!("--insecure-shared-network: sandboxes may share the host's network");
        }
        let base = lamina_exec_host::Config {
            cpu_quota: self.cpu_quota,
            allow_host_ports: self.sandbox_allow_host_ports.clone(),
            blocked_networks: self.sandbox_blocked_networks.clone(),
            egress_allow: self.sandbox_egress_allow.clone(),
            insecure_shared_network: self.insecure_shared_network,
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
            ..lamina_exec_host::Config::default()
        };
        match file {
            Some(path) => crate::config_file::FileConfig::load(path)?.apply(base),
            None => Ok(base),
        }
    }

    /// The same flags as arguments of a child process.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--cpu-quota={}", self.cpu_quota),
            format!("--sandbox-allow-host-ports={}", self.sandbox_allow_host_ports),
            format!("--idle-timeout-secs={}", self.idle_timeout_secs),
        ];
        if !self.sandbox_blocked_networks.is_empty() {
            args.push(format!("--sandbox-blocked-networks={}", self.sandbox_blocked_networks.join(",")));
        }
        if !self.sandbox_egress_allow.is_empty() {
            args.push(format!("--sandbox-egress-allow={}", self.sandbox_egress_allow.join(",")));
        }
        if self.insecure_shared_network {
            args.push("--insecure-shared-network".into());
        }
        args
    }
}

/// Where the admin commands send their requests.
#[derive(Debug, Args)]
pub struct AdminTarget {
    /// URL of the running server's operator listener (`--admin-listen`), not its Lambda API.
    #[arg(long, env = "LAMINA_ADMIN_ENDPOINT", default_value = "http://127.0.0.1:9003")]
    pub endpoint: String,
    /// Admin token; default read from <data-dir>/admin-token.
    #[arg(long, env = "LAMINA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Data directory holding admin-token.
    #[arg(long, env = "LAMINA_DATA_DIR", default_value = "./lamina-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account and its first access key; prints them as JSON.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        concurrent_executions: Option<i64>,
        #[arg(long)]
        code_storage_bytes: Option<i64>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// List accounts and their limits.
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Change an account's limits.
    SetLimits {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        concurrent_executions: Option<i64>,
        #[arg(long)]
        code_storage_bytes: Option<i64>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Mint another access key for an account (for rotation).
    CreateKey {
        #[arg(long)]
        account_id: String,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Revoke an access key.
    DeleteKey {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        access_key_id: String,
        #[command(flatten)]
        target: AdminTarget,
    },
}

impl AdminTarget {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.admin_token {
            return Ok(t.expose().to_owned());
        }
        let path = self.data_dir.join("admin-token");
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("read admin token from {} (or set LAMINA_ADMIN_TOKEN)", path.display()))?
            .trim()
            .to_owned())
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/_lamina/admin{path}", self.endpoint.trim_end_matches('/'));
        let mut req = reqwest::Client::new().request(method, &url).bearer_auth(self.token()?);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.with_context(|| format!("call {url}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::NOT_FOUND && path.starts_with("/accounts") && text.contains("Unknown") {
            anyhow::bail!("{status}: {text} (is {} the server's --admin-listen address?)", self.endpoint);
        }
        if !status.is_success() {
            anyhow::bail!("{status}: {text}");
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreatedAccount {
    account_id: String,
    access_key_id: String,
    secret_access_key: String,
}

/// Runs an `account` subcommand and prints its JSON result.
pub async fn run_account(cmd: AccountCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    let out = match cmd {
        AccountCommand::Create { name, concurrent_executions, code_storage_bytes, target } => {
            let mut body = json!({ "Name": name });
            if let Some(n) = concurrent_executions {
                body["ConcurrentExecutions"] = n.into();
            }
            if let Some(n) = code_storage_bytes {
                body["CodeStorageBytes"] = n.into();
            }
            let key = target.call(Method::POST, "/accounts", Some(body)).await?;
            // Field order as documented: AccountId, AccessKeyId, SecretAccessKey.
            let created = CreatedAccount {
                account_id: key["AccountId"].as_str().unwrap_or_default().to_owned(),
                access_key_id: key["AccessKeyId"].as_str().unwrap_or_default().to_owned(),
                secret_access_key: key["SecretAccessKey"].as_str().unwrap_or_default().to_owned(),
            };
            println!("{}", serde_json::to_string(&created)?);
            return Ok(());
        }
        AccountCommand::List { target } => target.call(Method::GET, "/accounts", None).await?,
        AccountCommand::SetLimits { account_id, concurrent_executions, code_storage_bytes, target } => {
            let body = json!({ "ConcurrentExecutions": concurrent_executions, "CodeStorageBytes": code_storage_bytes });
            target.call(Method::PUT, &format!("/accounts/{account_id}/limits"), Some(body)).await?
        }
        AccountCommand::CreateKey { account_id, target } => {
            target.call(Method::POST, &format!("/accounts/{account_id}/keys"), None).await?
        }
        AccountCommand::DeleteKey { account_id, access_key_id, target } => {
            target.call(Method::DELETE, &format!("/accounts/{account_id}/keys/{access_key_id}"), None).await?;
            json!({ "Deleted": access_key_id })
        }
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// A flag value that must never be printed: tokens, keys, URLs with passwords. `Debug` shows
/// `[redacted]`; the value is read with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let cli = Cli::parse_from([
            "lamina",
            "cluster",
            "--database-url=postgres://u:pw-db@h/d",
            "--redis-url=redis://:pw-redis@h",
            "--admin-token=tok-admin",
            "--master-key=key-master",
        ]);
        let text = format!("{cli:?}");
        for secret in ["pw-db", "pw-redis", "tok-admin", "key-master"] {
            assert!(!text.contains(secret), "{secret} printed in {text}");
        }
        let Command::Cluster(args) = cli.command else { panic!("parsed as cluster") };
        assert_eq!(args.database_url.expose(), "postgres://u:pw-db@h/d");
    }
}
