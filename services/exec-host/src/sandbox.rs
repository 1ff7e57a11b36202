//! One sandbox: a runtime process tree for one (account, function, version, revision), its
//! Runtime API endpoint, log capture and cgroup.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use lamina_common::FunctionSnapshot;
use lamina_common::session::SessionCredentials;

use crate::cgroup::SandboxCgroup;
use crate::config::{Config, RuntimeSpec};
use crate::ephemeral::{Backing, Ephemeral, Reservation, TmpMount};
use crate::isolation::{Isolation, RootSpec};
use crate::logs::{Captured, LogCapture};
use crate::runtime_api::{Pending, RuntimeApi, RuntimeResult};
use crate::spare::Spare;

/// Warm sandboxes are only reused for exactly this key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SandboxKey {
    pub(crate) account_id: String,
    pub(crate) function_name: String,
    pub(crate) version: String,
    pub(crate) revision_id: String,
    /// Not part of the identity (a revision has one runtime): carried for per-runtime metrics.
    pub(crate) runtime: String,
}

impl SandboxKey {
    pub(crate) fn warm_key(&self) -> String {
        format!("{}/{}/{}/{}", self.account_id, self.function_name, self.version, self.revision_id)
    }

    pub(crate) fn of(f: &FunctionSnapshot) -> Self {
        SandboxKey {
            account_id: f.account_id.clone(),
            function_name: f.function_name.clone(),
            version: f.version.clone(),
            revision_id: f.revision_id.clone(),
            runtime: f.runtime.clone(),
        }
    }
}

/// How the runtime process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitInfo {
    Code(i32),
    Signal(i32),
}

impl ExitInfo {
    fn from_status(s: std::process::ExitStatus) -> Self {
        match (s.code(), s.signal()) {
            // The reaper processes report a signal death of the runtime as 128+signal.
            (Some(c), _) if (129..=128 + 64).contains(&c) => ExitInfo::Signal(c - 128),
            (Some(c), _) => ExitInfo::Code(c),
            (None, Some(sig)) => ExitInfo::Signal(sig),
            (None, None) => ExitInfo::Code(-1),
        }
    }

    pub(crate) fn is_kill(self) -> bool {
        self == ExitInfo::Signal(libc::SIGKILL)
    }

    /// Go-style text, as Lambda prints it: `exit status 1`, `signal: killed`.
    pub(crate) fn describe(self) -> String {
        match self {
            ExitInfo::Code(c) => format!("exit status {c}"),
            ExitInfo::Signal(s) => {
                let name = match s {
                    libc::SIGHUP => "hangup",
                    libc::SIGINT => "interrupt",
                    libc::SIGQUIT => "quit",
                    libc::SIGILL => "illegal instruction",
                    libc::SIGABRT => "aborted",
                    libc::SIGBUS => "bus error",
                    libc::SIGFPE => "floating point exception",
                    libc::SIGKILL => "killed",
                    libc::SIGSEGV => "segmentation fault",
                    libc::SIGPIPE => "broken pipe",
                    libc::SIGTERM => "terminated",
                    _ => return format!("signal: {s}"),
                };
                format!("signal: {name}")
            }
        }
    }
}

/// How waiting for an invocation's result ended.
pub(crate) enum RunEnd {
    Result(RuntimeResult),
    Exited(ExitInfo),
    Timeout,
}

/// Everything needed to start one sandbox.
pub(crate) struct StartArgs<'a> {
    pub(crate) id: u64,
    pub(crate) uid: u32,
    pub(crate) function: &'a FunctionSnapshot,
    pub(crate) spec: &'a RuntimeSpec,
    pub(crate) code_dir: &'a Path,
    pub(crate) runtime_dir: &'a Path,
    pub(crate) sandboxes_dir: &'a Path,
    pub(crate) config: &'a Config,
    pub(crate) isolation: &'a Isolation,
    pub(crate) ephemeral: &'a Arc<Ephemeral>,
    /// The sandbox's share of the host's ephemeral storage, held while it lives.
    pub(crate) storage: Option<Reservation>,
    /// Temporary credentials for the function's code, put in its environment.
    pub(crate) credentials: Option<&'a SessionCredentials>,
}

/// Variables holding credentials: only the session credentials Lamina gives a sandbox fill them,
/// never the function's own configuration (the API refuses them there already).
const CREDENTIAL_VARS: &[&str] = &["AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// A warm sandbox's credentials must outlast an invocation's timeout by this much (seconds) for
/// it to take the invocation, so code that uses them late in a run still finds them valid.
pub(crate) const CREDENTIALS_MARGIN_S: i64 = 15 * 60;

/// A live runtime process tree.
pub(crate) struct Sandbox {
    pub(crate) id: u64,
    pub(crate) key: SandboxKey,
    pub(crate) memory_mb: u64,
    pub(crate) log_stream: String,
    /// When the process was started (init duration is measured from here).
    pub(crate) spawned_at: Instant,
    pub(crate) api: Arc<RuntimeApi>,
    logs: Arc<LogCapture>,
    cgroup: Option<SandboxCgroup>,
    exit: watch::Receiver<Option<ExitInfo>>,
    /// Host pid of the first process (A in `spawn`); used to kill without cgroups.
    pid: Option<u32>,
    isolated: bool,
    cancel: CancellationToken,
    root_dir: Option<PathBuf>,
    /// Its share of the host's ephemeral storage, returned by `destroy`.
    storage: std::sync::Mutex<Option<Reservation>>,
    /// Whether the sandbox is idle and frozen (see [`Sandbox::park`]).
    freeze: std::sync::Mutex<Freeze>,
    /// Expiry (unix seconds) of the credentials in its environment.
    credentials_expire_at: Option<i64>,
}

/// Idle-freezing state of a sandbox.
#[derive(Default)]
struct Freeze {
    /// Bumped by every `park` and `unpark`: a pending freeze only applies to its own idle period.
    epoch: u64,
    idle: bool,
    frozen: bool,
}

/// How long an idle sandbox runs on before it is frozen: the runtime calls `/next` right after
/// posting its result, and a warm invocation arriving within this time costs no thaw.
const FREEZE_AFTER: Duration = Duration::from_millis(10);

/// The size (MB) of a function's `/tmp`: its `EphemeralStorage`, or the host's default.
pub(crate) fn tmp_size_mb(f: &FunctionSnapshot, config: &Config) -> u64 {
    match f.ephemeral_storage_mb {
        0 => config.tmp_size_mb,
        mb => u64::from(mb),
    }
}

impl Sandbox {
    /// Starts the runtime process. The runtime initialises in the background; its first `/next`
    /// call marks the end of init.
    /// With a `spare` (see `spare`), its network namespace and cgroups are used.
    pub(crate) async fn start(a: StartArgs<'_>, mut spare: Option<Spare>) -> anyhow::Result<Arc<Sandbox>> {
        let f = a.function;
        let name = format!("sbx-{}-{}", a.id, uuid::Uuid::new_v4().simple());
        let log_stream =
            format!("{}/[{}]{}", chrono::Utc::now().format("%Y/%m/%d"), f.version, uuid::Uuid::new_v4().simple());
        let memory_mb = u64::from(f.memory_mb);
        let cgroup = match (spare.as_mut().and_then(|s| s.cgroup.take()), &a.isolation.cgroups) {
            (Some(cg), _) => {
                if let Err(e) = cg.apply_limits(memory_mb, a.config.cpu_quota) {
                    // Ends the spare's thread, so the cgroups are empty.
                    drop(spare);
                    cg.remove().await;
                    return Err(e.context("limit sandbox cgroup"));
                }
                Some(cg)
            }
            (None, Some(cg)) => Some(cg.create(&name, memory_mb, a.config.cpu_quota).context("create sandbox cgroup")?),
            (None, None) => None,
        };
        let cancel = CancellationToken::new();
        let result = Self::start_inner(a, &name, log_stream, memory_mb, cgroup, spare, cancel.clone()).await;
        if result.is_err() {
            cancel.cancel();
        }
        result
    }

    async fn start_inner(
        mut a: StartArgs<'_>,
        name: &str,
        log_stream: String,
        memory_mb: u64,
        cgroup: Option<SandboxCgroup>,
        mut spare: Option<Spare>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Arc<Sandbox>> {
        let storage = a.storage.take();
        let f = a.function;
        let isolated = a.isolation.namespaces;
        // With its own network namespace the sandbox gets the Runtime API at a fixed address
        // inside it; otherwise the API listens on a host loopback port (guarded by a uid check).
        let network = if isolated { a.isolation.network.clone() } else { None };
        let (host_listener, api_addr) = match &network {
            Some(_) => (None, format!("127.0.0.1:{}", crate::net::RUNTIME_API_PORT)),
            None => {
                let l = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context("bind runtime api")?;
                let port = l.local_addr().context("runtime api address")?.port();
                (Some(l), format!("127.0.0.1:{port}"))
            }
        };

        let (task_root, runtime_root) = if isolated {
            ("/var/task".to_string(), "/var/runtime".to_string())
        } else {
            (a.code_dir.display().to_string(), a.runtime_dir.display().to_string())
        };
        let command: Vec<String> = a
            .spec
            .command
            .iter()
            .map(|c| {
                if isolated {
                    c.clone()
                } else {
                    c.replace("/var/task", &task_root).replace("/var/runtime", &runtime_root)
                }
            })
            .collect();
        let mut env: BTreeMap<String, String> = f.environment.clone();
        for k in CREDENTIAL_VARS {
            env.remove(*k);
        }
        let endpoints = crate::endpoints::Endpoints::from_config(a.config).env(network.is_some());
        let credentials = a.credentials.map(|c| {
            [
                ("AWS_ACCESS_KEY_ID", c.access_key_id.clone()),
                ("AWS_SECRET_ACCESS_KEY", c.secret_access_key.clone()),
                ("AWS_SESSION_TOKEN", c.session_token.clone()),
            ]
        });
        for (k, v) in [
            ("AWS_LAMBDA_FUNCTION_NAME", f.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", f.version.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", f.memory_mb.to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", f.log_group()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.clone()),
            ("AWS_REGION", a.config.region.clone()),
            ("AWS_DEFAULT_REGION", a.config.region.clone()),
            ("AWS_EXECUTION_ENV", a.spec.exec_env.clone()),
            ("_HANDLER", f.handler.clone()),
            ("LAMBDA_TASK_ROOT", task_root.clone()),
            ("LAMBDA_RUNTIME_DIR", runtime_root),
            ("AWS_LAMBDA_RUNTIME_API", api_addr),
            ("TZ", ":UTC".to_string()),
            ("LANG", "en_US.UTF-8".to_string()),
            ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_string()),
        ]
        .into_iter()
        .chain(credentials.into_iter().flatten())
        .chain(endpoints)
        {
            env.insert(k.to_string(), v);
        }
        let env: Vec<(String, String)> = env.into_iter().collect();

        // A spare's root is premounted in the namespace its thread hands to the runtime.
        let premounted = spare.as_mut().and_then(|s| s.root.take());
        let tmp_mb = tmp_size_mb(f, a.config);
        let replace_tmp = premounted.is_some() && spare.as_ref().is_some_and(|s| s.tmp_mb != tmp_mb);
        // A volume of this size unless the spare's premounted one fits (formatting takes ~5 ms:
        // only functions with a non-default EphemeralStorage pay it on a cold start).
        let volume = if isolated && a.ephemeral.backing() == Backing::Disk && (premounted.is_none() || replace_tmp) {
            let eph = a.ephemeral.clone();
            let v = tokio::task::spawn_blocking(move || eph.prepare(tmp_mb)).await.context("join /tmp task")?;
            Some(v.context("prepare /tmp")?)
        } else {
            None
        };
        let tmp = match &volume {
            Some(v) => TmpMount::Disk(v),
            None => TmpMount::Tmpfs { size_mb: tmp_mb },
        };
        let root_dir = match (&premounted, isolated) {
            (Some(d), _) => Some(d.clone()),
            (None, true) => {
                let d = a.sandboxes_dir.join(name);
                // One mkdir below an existing directory: cheaper inline than through the blocking pool.
                std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
                Some(d)
            }
            (None, false) => None,
        };
        let mut plan = match &root_dir {
            Some(root) => Some(crate::isolation::plan(
                &RootSpec {
                    root,
                    code_dir: a.code_dir,
                    runtime_dir: a.runtime_dir,
                    sdk_dir: a.config.runtime_sdk_dir.as_deref(),
                    tmp,
                    uid: a.uid,
                    gid: a.uid,
                    user_ns: a.isolation.user_ns,
                },
                premounted.is_some(),
                replace_tmp,
            )?),
            None => None,
        };
        let procs = cgroup.as_ref().map(|c| c.procs_files()).unwrap_or_default();
        let cwd = (!isolated).then(|| a.code_dir.to_path_buf());
        let spawned_at = Instant::now();
        let spawned = match spare {
            Some(mut spare) => {
                // The runtime is forked by the spare's thread and inherits its network namespace
                // (so `plan.netns` stays unset) and, if it joined them, its cgroups.
                let net = spare.net.take();
                let matches = isolated && network.is_some() == net.is_some();
                let procs = if spare.thread_in_cgroup { Vec::new() } else { procs };
                let rt = tokio::runtime::Handle::current();
                if !matches {
                    Err(anyhow::anyhow!("spare sandbox does not match this host's isolation"))
                } else {
                    spare
                        .run(move || {
                            let _rt = rt.enter();
                            spawn_in(&command, &env, plan, &procs, cwd.as_deref(), net)
                        })
                        .await
                        .and_then(|r| r)
                }
            }
            None => tokio::task::spawn_blocking(move || {
                let net = network.map(|n| n.create_sandbox()).transpose().context("create sandbox network")?;
                if let (Some(p), Some(n)) = (plan.as_mut(), net.as_ref()) {
                    p.netns = Some(n.ns.as_raw_fd());
                }
                spawn_in(&command, &env, plan, &procs, cwd.as_deref(), net)
            })
            .await
            .context("join spawn task")?,
        };
        // Mounted by now (or never will be): the mount, not this descriptor, keeps the device.
        drop(volume);
        let (spawned, net) = match spawned {
            Ok(s) => s,
            Err(e) => {
                if let Some(cg) = &cgroup {
                    cg.kill().await;
                    cg.remove().await;
                }
                if let Some(d) = &root_dir {
                    let _ = tokio::fs::remove_dir(d).await;
                }
                return Err(e);
            }
        };
        let mut child = spawned.child;
        let pid = child.id();
        let logs = LogCapture::start(vec![spawned.stdout, spawned.stderr], cancel.clone())
            .context("capture runtime output")?;
        let (listener, peer_uid, net_if) = match net {
            Some(n) => {
                if let Some(proxy) = n.proxy {
                    let proxy = tokio::net::TcpListener::from_std(proxy).context("register host-port proxy")?;
                    let routes = a.isolation.network.as_ref().map(|n| n.proxy_routes()).context("proxy routes")?;
                    tokio::spawn(crate::net::serve_host_proxy(proxy, routes, cancel.clone()));
                }
                let l = tokio::net::TcpListener::from_std(n.api).context("register runtime api listener")?;
                // Only processes inside the namespace can connect: no per-connection check.
                (l, None, Some(n.host_if))
            }
            None => {
                let l = host_listener.context("runtime api listener")?;
                (l, isolated.then_some(a.uid), None)
            }
        };
        tracing::debug!(sandbox = a.id, net_if = net_if.as_deref().unwrap_or("host"), "sandbox started");
        let api = RuntimeApi::new(a.config.max_response_bytes, logs.clone(), peer_uid);
        tokio::spawn(crate::runtime_api::serve(listener, api.clone(), cancel.clone()));
        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let info = match child.wait().await {
                Ok(s) => ExitInfo::from_status(s),
                Err(_) => ExitInfo::Code(-1),
            };
            let _ = exit_tx.send(Some(info));
        });
        Ok(Arc::new(Sandbox {
            id: a.id,
            key: SandboxKey::of(f),
            memory_mb,
            log_stream,
            spawned_at,
            api,
            logs,
            cgroup,
            exit,
            pid,
            isolated,
            cancel,
            root_dir,
            storage: std::sync::Mutex::new(storage),
            freeze: std::sync::Mutex::default(),
            credentials_expire_at: a.credentials.map(|c| c.expiration),
        }))
    }

    /// Whether this warm sandbox may take an invocation that brings credentials (`wanted`) and
    /// may run `timeout_s`: its own credentials must outlast the run by [`CREDENTIALS_MARGIN_S`].
    /// A sandbox started without credentials never takes one that brings them.
    pub(crate) fn credentials_outlast(&self, wanted: bool, timeout_s: u32, now: i64) -> bool {
        match (wanted, self.credentials_expire_at) {
            (false, _) => true,
            (true, None) => false,
            (true, Some(expires)) => expires - now > i64::from(timeout_s) + CREDENTIALS_MARGIN_S,
        }
    }

    /// Marks the sandbox idle (between invocations) and, unless it is taken again first, freezes
    /// its processes shortly after: an idle function gets no CPU, as in Lambda.
    pub(crate) fn park(self: &Arc<Self>) {
        let Some(cg) = &self.cgroup else { return };
        if !cg.can_freeze() {
            return;
        }
        let epoch = {
            let mut st = self.freeze_state();
            st.epoch += 1;
            st.idle = true;
            st.epoch
        };
        let sb = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FREEZE_AFTER).await;
            // Retried while the spare's setup thread is still leaving the cgroup (v1: a cgroup
            // holding a thread of this process is never frozen).
            let Some(cg) = &sb.cgroup else { return };
            for _ in 0..50 {
                let froze = {
                    let mut st = sb.freeze_state();
                    if st.epoch != epoch || !st.idle || sb.exited().is_some() {
                        return;
                    }
                    match cg.freeze() {
                        Ok(done) => {
                            st.frozen = done;
                            done
                        }
                        Err(e) => {
                            tracing::warn!(sandbox = sb.id, "freeze idle sandbox: {e:#}");
                            return;
                        }
                    }
                };
                if froze {
                    // Freezing completes asynchronously (v1 FREEZING, v2 `frozen 0` until done).
                    for _ in 0..100 {
                        if cg.frozen() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    tracing::debug!(sandbox = sb.id, "idle sandbox not frozen after 200 ms");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    /// Takes the sandbox out of the idle state, thawing it if it was frozen; call before
    /// delivering an invocation.
    pub(crate) fn unpark(&self) -> anyhow::Result<()> {
        let mut st = self.freeze_state();
        st.epoch += 1;
        st.idle = false;
        if st.frozen {
            if let Some(cg) = &self.cgroup {
                cg.thaw().context("thaw sandbox")?;
            }
            st.frozen = false;
        }
        Ok(())
    }

    fn freeze_state(&self) -> std::sync::MutexGuard<'_, Freeze> {
        self.freeze.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True once the runtime process has exited.
    pub(crate) fn exited(&self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// Hands an invocation to the runtime and waits for its result, the runtime's exit, or the
    /// deadline.
    pub(crate) async fn run(&self, p: Pending, deadline: tokio::time::Instant) -> RunEnd {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.logs.begin();
        self.api.submit(Pending { done: tx, ..p });
        let mut exit = self.exit.clone();
        tokio::select! {
            biased;
            r = rx => match r {
                Ok(res) => RunEnd::Result(res),
                Err(_) => RunEnd::Exited(self.wait_exit().await),
            },
            info = async { exit.wait_for(Option::is_some).await.ok().and_then(|v| *v) } => {
                RunEnd::Exited(info.unwrap_or(ExitInfo::Code(-1)))
            }
            _ = tokio::time::sleep_until(deadline) => RunEnd::Timeout,
        }
    }

    async fn wait_exit(&self) -> ExitInfo {
        let mut exit = self.exit.clone();
        let wait = async move { exit.wait_for(Option::is_some).await.ok().and_then(|v| *v) };
        tokio::time::timeout(Duration::from_secs(5), wait).await.ok().flatten().unwrap_or(ExitInfo::Code(-1))
    }

    /// Output of the invocation that just ended (after draining the pipes).
    pub(crate) fn finish_logs(&self) -> Captured {
        self.logs.finish()
    }

    /// Peak memory use in MB (rounded up).
    pub(crate) fn max_memory_used_mb(&self) -> u64 {
        self.cgroup.as_ref().map(|c| c.peak_bytes().div_ceil(1024 * 1024)).unwrap_or(0)
    }

    /// True if the cgroup's OOM killer fired.
    pub(crate) fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(SandboxCgroup::oom_killed)
    }

    /// Kills the whole process tree and waits (bounded) for the runtime to be reaped.
    pub(crate) async fn kill(&self) {
        self.api.clear();
        // No freeze may start after this (the cgroup's kill thaws a frozen tree itself).
        {
            let mut st = self.freeze_state();
            st.epoch += 1;
            st.idle = false;
        }
        match &self.cgroup {
            Some(cg) => cg.kill().await,
            None => {
                if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
                    // Without namespaces the runtime leads its own process group.
                    let target = if self.isolated { pid } else { -pid };
                    let _ = crate::spawn::kill(target, libc::SIGKILL);
                }
            }
        }
        self.wait_exit().await;
        // Whatever the dead tree wrote is still in the pipes: read it before the readers stop.
        self.logs.drain();
    }

    /// Kills the sandbox and removes its cgroup and root directory.
    pub(crate) async fn destroy(&self) {
        self.kill().await;
        self.cancel.cancel();
        if let Some(cg) = &self.cgroup {
            cg.remove().await;
        }
        // The veth pair needs no deletion: the kernel removes it with the network namespace once
        // the last process and socket in it are gone (deleting it here would cost ~35 ms).
        if let Some(d) = &self.root_dir {
            // Only the empty mount point exists on the host side (mounts live in the sandbox's
            // namespace), so a plain rmdir is enough and never recurses into shared directories.
            let _ = tokio::fs::remove_dir(d).await;
        }
        // Every process is gone, so is the mount namespace and with it the /tmp volume.
        self.storage.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }
}

/// Starts the runtime (blocking); the sandbox network is deleted again if that fails.
fn spawn_in(
    command: &[String],
    env: &[(String, String)],
    plan: Option<crate::spawn::SandboxPlan>,
    procs: &[PathBuf],
    cwd: Option<&Path>,
    net: Option<crate::net::SandboxNet>,
) -> anyhow::Result<(crate::spawn::Spawned, Option<crate::net::SandboxNet>)> {
    match crate::spawn::spawn(command, env, plan, procs, cwd) {
        Ok(s) => Ok((s, net)),
        Err(e) => {
            if let Some(n) = net {
                let _ = crate::net::delete_link(&n.host_if);
            }
            Err(e)
        }
    }
}
