//! Configuration of the execution host and the default runtime registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How one runtime identifier is started inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeSpec {
    /// Program and arguments as seen inside the sandbox, e.g.
    /// `["/usr/bin/python3.11", "-u", "-S", "/var/runtime/python/bootstrap.py"]`, or `["/var/task/bootstrap"]`
    /// for the custom runtimes.
    pub command: Vec<String>,
    /// Value of `AWS_EXECUTION_ENV`, e.g. `AWS_Lambda_python3.11`.
    pub exec_env: String,
}

/// Execution host configuration. `Default` probes the machine for installed runtimes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Root of the host's state: `code/<sha256hex>/` (unzipped packages), `sandboxes/` (sandbox
    /// roots), `runtime/` (the embedded bootstraps, mounted at `/var/runtime`).
    pub data_dir: PathBuf,
    /// Runtime identifier -> how to start it. Its keys are the runtimes CreateFunction accepts.
    pub runtimes: BTreeMap<String, RuntimeSpec>,
    /// AWS SDKs offered to the managed runtimes (`python/`: boto3; `nodejs/node_modules/`: AWS SDK
    /// for JavaScript v3), from `scripts/install-runtime-sdks.sh`; mounted read-only in every sandbox
    /// when it exists. Default: env `LAMINA_RUNTIME_SDK_DIR`, else the first existing of
    /// `<binary>/../../runtime-sdks` (`target/runtime-sdks` for `target/release/lamina`) and
    /// `./target/runtime-sdks` (docs/runtimes.md).
    #[serde(with = "crate::isolation::optional_path")]
    pub runtime_sdk_dir: Option<PathBuf>,
    /// Sum of `MemorySize` over live sandboxes may not exceed this (MB). Default: 75% of host RAM.
    pub memory_budget_mb: u64,
    /// Maximum number of live sandboxes.
    pub max_sandboxes: usize,
    /// Share of the host (percent of `memory_budget_mb` and of `max_sandboxes`) one account's
    /// running sandboxes may hold; an invocation beyond it is throttled (429) even when the host
    /// has room, and always allowed when the account runs nothing here. Overridden per account
    /// by the admin API (`HostSharePercent`).
    pub account_share_percent: u32,
    /// An idle warm sandbox is killed after this long without an invocation.
    #[serde(with = "duration_secs")]
    pub idle_timeout: Duration,
    /// Size of a sandbox's private `/tmp` (MB) when its function sets no `EphemeralStorage`
    /// (and of the spare sandboxes' premounted `/tmp`).
    pub tmp_size_mb: u64,
    /// Sum of `/tmp` sizes over live sandboxes may not exceed this (MB); a cold start beyond it
    /// is refused with no capacity. 0: half the free space of `data_dir`'s filesystem at start.
    pub ephemeral_storage_budget_mb: u64,
    /// Freeze idle sandboxes (cgroup freezer) between invocations, so that they use no CPU.
    pub freeze_idle: bool,
    /// Region reported to functions in `AWS_REGION` / `AWS_DEFAULT_REGION`.
    pub region: String,
    /// Largest function result accepted from a runtime (bytes).
    pub max_response_bytes: usize,
    /// Log events kept per function (oldest dropped first).
    pub log_retention_events: usize,
    /// Bytes of log events kept per function (oldest dropped first; a line is at most 256 KB).
    pub log_bytes_per_function: usize,
    /// Bytes of log events kept per account, over all its functions (oldest dropped first).
    pub log_bytes_per_account: usize,
    /// Bytes of log events kept by the host, over all accounts (oldest dropped first).
    pub log_bytes_total: usize,
    /// An unpacked package no sandbox has used for this long is deleted from `data_dir/code`
    /// (it is unpacked again on its next cold start).
    #[serde(with = "duration_secs")]
    pub unpacked_code_ttl: Duration,
    /// Refuse to start sandboxes when namespaces or cgroup memory limiting are unavailable.
    pub require_isolation: bool,
    /// Apply a hard CPU quota proportional to memory (1769 MB = one vCPU) on top of CPU shares.
    pub cpu_quota: bool,
    /// Run sandboxes in the host's network namespace when per-sandbox networks are unavailable
    /// (nftables missing, no veth support). Insecure: sandboxes can then reach every service on
    /// the host's loopback. Without it such a host refuses to start sandboxes.
    pub insecure_shared_network: bool,
    /// Host TCP ports sandboxes may reach on their own `127.0.0.1` (forwarded to the host's
    /// `127.0.0.1`), e.g. `"18000-18999,5000"`. Empty: none. Env `LAMINA_SANDBOX_ALLOW_HOST_PORTS`.
    pub allow_host_ports: String,
    /// IPv4 range sandbox links are numbered from (one /30 per sandbox); must not overlap any
    /// network sandboxes need to reach.
    pub sandbox_network: String,
    /// Extra IPv4 networks (CIDR) sandboxes may not reach. Private, shared (100.64.0.0/10),
    /// link-local (cloud metadata) and reserved ranges are denied by default (`egress_allow`
    /// opens them); loopback, multicast, other sandboxes and every address of the host itself
    /// are always denied.
    pub blocked_networks: Vec<String>,
    /// IPv4 networks (CIDR) sandboxes may reach although they are denied by default, e.g.
    /// `["10.20.0.0/16"]` for a private database network. Never opens the host's own addresses.
    pub egress_allow: Vec<String>,
    /// New outbound connections (conntrack entries) one sandbox may hold at once; more are
    /// refused. Size `net.netfilter.nf_conntrack_max` for `max_sandboxes` times this.
    pub max_connections_per_sandbox: u32,
    /// `host:port` of Lamina's Lambda API as this host reaches it. Sandboxes then get
    /// `AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:9000`, proxied to it (nothing else of the host opens).
    pub lambda_endpoint: Option<String>,
    /// `host:port` of Lamina's S3 API, given to sandboxes as `AWS_ENDPOINT_URL_S3=http://127.0.0.1:9002`.
    pub s3_endpoint: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/lamina/exec-host"),
            runtimes: probe_runtimes(),
            runtime_sdk_dir: crate::isolation::default_runtime_sdk_dir(),
            memory_budget_mb: host_memory_mb().map(|m| m * 3 / 4).unwrap_or(4096),
            max_sandboxes: 256,
            account_share_percent: 50,
            idle_timeout: Duration::from_secs(600),
            tmp_size_mb: 512,
            ephemeral_storage_budget_mb: 0,
            freeze_idle: true,
            region: "us-east-1".to_string(),
            max_response_bytes: 6 * 1024 * 1024,
            log_retention_events: 10_000,
            log_bytes_per_function: 4 * 1024 * 1024,
            log_bytes_per_account: 32 * 1024 * 1024,
            log_bytes_total: 256 * 1024 * 1024,
            unpacked_code_ttl: Duration::from_secs(600),
            require_isolation: true,
            cpu_quota: true,
            insecure_shared_network: false,
            allow_host_ports: String::new(),
            sandbox_network: "10.234.0.0/16".to_string(),
            blocked_networks: Vec::new(),
            egress_allow: Vec::new(),
            max_connections_per_sandbox: 1024,
            lambda_endpoint: None,
            s3_endpoint: None,
        }
    }
}

impl Config {
    /// Checks field values, naming the first bad one.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_sandboxes > 0, "exec_host.max_sandboxes must be > 0");
        anyhow::ensure!(
            (1..=100).contains(&self.account_share_percent),
            "exec_host.account_share_percent must be 1-100"
        );
        anyhow::ensure!(self.memory_budget_mb >= 128, "exec_host.memory_budget_mb must be >= 128");
        anyhow::ensure!(self.tmp_size_mb > 0, "exec_host.tmp_size_mb must be > 0");
        anyhow::ensure!(!self.idle_timeout.is_zero(), "exec_host.idle_timeout must be > 0");
        anyhow::ensure!(self.log_bytes_per_function > 0, "exec_host.log_bytes_per_function must be > 0");
        anyhow::ensure!(self.log_bytes_per_account > 0, "exec_host.log_bytes_per_account must be > 0");
        anyhow::ensure!(self.log_bytes_total > 0, "exec_host.log_bytes_total must be > 0");
        crate::net::parse_port_ranges(&self.allow_host_ports)
            .map_err(|e| anyhow::anyhow!("exec_host.allow_host_ports: {e:#}"))?;
        crate::net::Ipv4Net::parse(&self.sandbox_network)
            .map_err(|e| anyhow::anyhow!("exec_host.sandbox_network: {e:#}"))?;
        for n in &self.blocked_networks {
            crate::net::Ipv4Net::parse(n).map_err(|e| anyhow::anyhow!("exec_host.blocked_networks: {e:#}"))?;
        }
        for n in &self.egress_allow {
            // Sandboxes have no IPv6 route at all, so only IPv4 ranges can be opened.
            crate::net::Ipv4Net::parse(n).map_err(|e| anyhow::anyhow!("exec_host.egress_allow (IPv4 only): {e:#}"))?;
        }
        anyhow::ensure!(self.max_connections_per_sandbox > 0, "exec_host.max_connections_per_sandbox must be > 0");
        for (name, endpoint) in [("lambda_endpoint", &self.lambda_endpoint), ("s3_endpoint", &self.s3_endpoint)] {
            crate::endpoints::check(endpoint.as_deref()).map_err(|e| anyhow::anyhow!("exec_host.{name}: {e:#}"))?;
        }
        for (name, spec) in &self.runtimes {
            anyhow::ensure!(!spec.command.is_empty(), "exec_host.runtimes.{name}.command is empty");
            anyhow::ensure!(
                spec.command[0].starts_with('/'),
                "exec_host.runtimes.{name}.command[0] must be an absolute path"
            );
        }
        Ok(())
    }
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Total RAM of the host in MB, from `/proc/meminfo`.
fn host_memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// Builds the default registry from what is installed under `/usr/bin` (never pyenv shims: only
/// real paths under the system directories that sandboxes can see).
pub fn probe_runtimes() -> BTreeMap<String, RuntimeSpec> {
    let mut map = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/usr/bin") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(minor) = name.strip_prefix("python3.") else {
                continue;
            };
            if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Some(real) = system_real_path(&entry.path()) else {
                continue;
            };
            let id = format!("python3.{minor}");
            map.insert(
                id.clone(),
                RuntimeSpec {
                    // -S: the runtime puts site-packages on sys.path itself, without site's start-up cost.
                    command: vec![real, "-u".into(), "-S".into(), "/var/runtime/python/bootstrap.py".into()],
                    exec_env: format!("AWS_Lambda_{id}"),
                },
            );
        }
    }
    if let Some(real) = system_real_path(Path::new("/usr/bin/node")) {
        let major = std::process::Command::new(&real)
            .arg("--version")
            .env_clear()
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|v| v.trim().trim_start_matches('v').split('.').next().map(str::to_string))
            .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
        if let Some(major) = major {
            let id = format!("nodejs{major}.x");
            map.insert(
                id.clone(),
                RuntimeSpec {
                    command: vec![real, "/var/runtime/nodejs/bootstrap.js".into()],
                    exec_env: format!("AWS_Lambda_{id}"),
                },
            );
        }
    }
    probe_java(&mut map);
    for id in ["provided", "provided.al2", "provided.al2023"] {
        map.insert(
            id.to_string(),
            RuntimeSpec { command: vec!["/var/task/bootstrap".into()], exec_env: format!("AWS_Lambda_{id}") },
        );
    }
    map
}

/// JVM flags of the `java<N>` runtimes, chosen for start-up time and footprint (docs/runtimes-java.md):
/// serial GC (no GC threads, smallest overhead), C1 only, the JDK's class-data-sharing archive, no
/// hsperfdata file in `/tmp`, UTF-8 and IPv4 as in AWS. `bootstrap.sh` adds the heap, RAM and CPU
/// sizes derived from `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
const JAVA_FLAGS: &[&str] = &[
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-XX:-UsePerfData",
    "-Dfile.encoding=UTF-8",
    "-Djava.net.preferIPv4Stack=true",
];

/// Registers `java<major>` (major >= 17) for the JDK behind `/usr/bin/java` and for each other JDK in
/// `/usr/lib/jvm`, when the build embedded the Java runtime jar. The command runs the JVM through
/// `/var/runtime/java/bootstrap.sh`, which sizes it from the function's memory.
fn probe_java(map: &mut BTreeMap<String, RuntimeSpec>) {
    let Some(jar) = option_env!("LAMINA_JAVA_RUNTIME_JAR") else {
        return;
    };
    let Some(sh) = system_real_path(Path::new("/bin/sh")) else {
        return;
    };
    let mut candidates = vec![PathBuf::from("/usr/bin/java")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib/jvm") {
        let mut homes: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin/java")).collect();
        homes.sort();
        candidates.extend(homes);
    }
    for candidate in candidates {
        let Some(real) = system_real_path(&candidate) else {
            continue;
        };
        // <home>/bin/java -> <home>/release: JAVA_VERSION="17.0.15"
        let Some(home) = Path::new(&real).parent().and_then(Path::parent) else {
            continue;
        };
        let Ok(release) = std::fs::read_to_string(home.join("release")) else {
            continue;
        };
        let major = release
            .lines()
            .find_map(|l| l.strip_prefix("JAVA_VERSION="))
            .map(|v| v.trim().trim_matches('"'))
            .and_then(|v| v.strip_prefix("1.").unwrap_or(v).split(['.', '-', '+']).next())
            .and_then(|m| m.parse::<u32>().ok());
        let Some(major) = major.filter(|m| *m >= 17) else {
            continue;
        };
        let id = format!("java{major}");
        if map.contains_key(&id) {
            continue;
        }
        let mut command = vec![sh.clone(), "/var/runtime/java/bootstrap.sh".to_string(), real];
        command.extend(JAVA_FLAGS.iter().map(|f| f.to_string()));
        command.extend(["-cp".to_string(), format!("/var/runtime/{jar}"), "lamina.runtime.Bootstrap".to_string()]);
        map.insert(id.clone(), RuntimeSpec { command, exec_env: format!("AWS_Lambda_{id}") });
    }
}

/// The canonical path of an executable if it lives in a directory sandboxes see (`/usr`, `/bin`, ...).
fn system_real_path(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let visible = ["/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/"].iter().any(|p| real.starts_with(p));
    if !visible || !real.is_file() {
        return None;
    }
    Some(real.to_string_lossy().into_owned())
}
