//! `ExecHost`: start-up, the invoke path, health, logs and shutdown.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use lamina_code_storage::CodeClient;
use lamina_common::FunctionSnapshot;
use lamina_common::session::SessionCredentials;

use crate::code::CodeCache;
use crate::config::Config;
use crate::error::ExecError;
use crate::isolation::Isolation;
use crate::logs::{InvocationLog, LogEvent, LogLimits, LogStore};
use crate::metrics as m;
use crate::pool::{Acquired, Pool};
use crate::runtime_api::{Pending, RuntimeResult};
use crate::sandbox::{RunEnd, Sandbox, SandboxKey, StartArgs};
use crate::spare::Spares;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/runtimes.rs"));
}

/// One invocation to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The function version to run.
    pub function: FunctionSnapshot,
    /// Request id (also on START/END/REPORT).
    pub request_id: String,
    /// The ARN the caller used (qualified or not).
    pub invoked_arn: String,
    /// The event.
    pub payload: Bytes,
    /// Decoded client context JSON, passed as `Lambda-Runtime-Client-Context`.
    pub client_context: Option<String>,
    /// Cognito identity JSON, passed as `Lambda-Runtime-Cognito-Identity`.
    pub cognito_identity: Option<String>,
    /// X-Ray style trace header, passed as `Lambda-Runtime-Trace-Id`.
    pub trace_id: String,
    /// Return the last 4 KB of this invocation's log.
    pub tail_log: bool,
    /// The account's share of this host in percent, when the operator set one for it (else
    /// `Config::account_share_percent`).
    pub account_share_percent: Option<u32>,
    /// Temporary credentials for the function's code: a sandbox started for this invocation gets
    /// them in its environment, and a warm one is reused only while its own stay valid long enough.
    pub credentials: Option<SessionCredentials>,
}

/// The result of a completed invocation (successful or not).
#[derive(Debug, Clone)]
pub struct InvokeOutcome {
    /// Function result, or the error document on a function error.
    pub payload: Bytes,
    /// True => the caller sends `X-Amz-Function-Error: Unhandled`.
    pub function_error: bool,
    /// With `tail_log`: the last 4096 bytes of this invocation's log text.
    pub log_tail: Option<String>,
    /// Duration as on the REPORT line (ms).
    pub duration_ms: f64,
    /// Init duration on a cold start (ms).
    pub init_duration_ms: Option<f64>,
    /// Peak memory of the sandbox (MB).
    pub max_memory_used_mb: u64,
}

struct Inner {
    config: Config,
    isolation: Isolation,
    /// Function-independent sandbox parts prepared ahead of cold starts.
    spares: Option<Arc<Spares>>,
    /// Sandbox `/tmp` volumes and the host's budget for them.
    ephemeral: Arc<crate::ephemeral::Ephemeral>,
    code: CodeCache,
    /// Where packages come from (code storage, in process or over gRPC).
    code_source: CodeClient,
    /// Packages fetched from a remote code storage, by digest.
    packages_dir: PathBuf,
    pool: Pool,
    logs: LogStore,
    /// Where function logs leave this host for the log store (distributed: over gRPC).
    telemetry: std::sync::OnceLock<Arc<dyn lamina_common::telemetry::TelemetrySink>>,
    runtime_dir: PathBuf,
    sandboxes_dir: PathBuf,
    /// The idle reaper.
    tasks: TaskTracker,
    /// Background destruction of discarded sandboxes (awaited by `shutdown`).
    destroys: TaskTracker,
    /// One token per invocation in flight; closed by `drain` or `shutdown`, after which new
    /// invocations are refused with `Draining`.
    invocations: TaskTracker,
    /// Stops the reaper: a child of the owner's token, also cancelled by `shutdown`.
    stop: CancellationToken,
    /// Filled by the first `shutdown`; later calls find it set and return.
    shut_down: tokio::sync::OnceCell<()>,
}

/// The execution host: runs invocations in sandboxes. Cheap to clone.
#[derive(Clone)]
pub struct ExecHost {
    inner: Arc<Inner>,
}

impl ExecHost {
    /// Prepares directories, detects isolation features (logging what is missing at WARN) and
    /// writes the embedded bootstraps.
    ///
    /// Cancelling `shutdown` only stops background work: invocations in flight keep their
    /// sandboxes. The owner then calls [`drain`](Self::drain) and [`shutdown`](Self::shutdown).
    pub async fn start(
        config: Config,
        code_source: CodeClient,
        shutdown: CancellationToken,
    ) -> anyhow::Result<ExecHost> {
        config.validate()?;
        m::describe();
        let proxied =
            !config.allow_host_ports.is_empty() || !crate::endpoints::Endpoints::from_config(&config).is_empty();
        crate::fd_limit::raise_and_log(config.max_sandboxes, proxied);
        let data_dir = config.data_dir.clone();
        let runtime_dir = data_dir.join("runtime");
        let sandboxes_dir = crate::isolation::sandboxes_dir(&data_dir);
        for d in [&data_dir, &data_dir.join("code"), &sandboxes_dir, &runtime_dir] {
            tokio::fs::create_dir_all(d).await.with_context(|| format!("create {}", d.display()))?;
        }
        write_bootstraps(&runtime_dir).await?;
        precompile_python(&runtime_dir, &config.runtimes).await;

        let (cgroups, mut missing) = crate::cgroup::Cgroups::detect();
        let cgroups = match cgroups {
            Some(cg) => {
                cg.remove_stale().await;
                match cg.instance() {
                    Ok(i) => Some(i),
                    Err(e) => {
                        missing.push(format!("cgroups: {e:#}"));
                        None
                    }
                }
            }
            None => None,
        };
        let mut network = if crate::spawn::is_root() {
            match crate::net::Network::setup(&config) {
                Ok(n) => Some(n),
                Err(e) => {
                    missing.push(format!("network: {e:#}"));
                    None
                }
            }
        } else {
            missing.push("network: not running as root".into());
            None
        };
        use crate::isolation::probe_namespaces;
        let first = probe_namespaces(&sandboxes_dir, &runtime_dir, network.as_ref(), false).await;
        let namespaces = match first {
            Ok(()) => true,
            Err(e) if network.is_some() => {
                // Tell a broken sandbox network apart from broken namespaces.
                network = None;
                match probe_namespaces(&sandboxes_dir, &runtime_dir, None, false).await {
                    Ok(()) => {
                        missing.push(format!("network: {e}"));
                        true
                    }
                    Err(e) => {
                        missing.push(format!("namespaces: {e}"));
                        false
                    }
                }
            }
            Err(e) => {
                missing.push(format!("namespaces: {e}"));
                false
            }
        };
        // A layer of its own: a kernel without user namespaces still gets the other ones.
        let user_ns = namespaces && {
            match probe_namespaces(&sandboxes_dir, &runtime_dir, None, true).await {
                Ok(()) => true,
                Err(e) => {
                    missing.push(format!("user namespace: {e}"));
                    false
                }
            }
        };
        let ephemeral = crate::ephemeral::Ephemeral::detect(&data_dir, config.ephemeral_storage_budget_mb);
        if let Some(note) = &ephemeral.note {
            missing.push(note.clone());
        }
        missing.extend(crate::spawn::core_pattern_note());
        let isolation = Isolation { namespaces, user_ns, cgroups, network, missing };
        for m in &isolation.missing {
            tracing::warn!("sandbox isolation feature unavailable: {m}");
        }
        if isolation.network.is_none() {
            if config.insecure_shared_network {
                tracing::warn!(
                    "sandboxes share the host's network namespace (insecure_shared_network): they can reach every service on this host"
                );
            } else if config.require_isolation {
                tracing::warn!(
                    "sandboxes will not start: no per-sandbox network namespace and insecure_shared_network is off"
                );
            }
        }
        if !isolation.complete() {
            if config.require_isolation {
                tracing::warn!("sandboxes will not start: isolation is incomplete and require_isolation is set");
            } else {
                tracing::warn!("running sandboxes WITHOUT full isolation (require_isolation = false)");
            }
        }
        let spares = isolation.namespaces.then(|| {
            let root = crate::spare::RootBase {
                sandboxes_dir: sandboxes_dir.clone(),
                runtime_dir: runtime_dir.clone(),
                sdk_dir: config.runtime_sdk_dir.clone(),
                tmp_size_mb: config.tmp_size_mb,
                ephemeral: ephemeral.clone(),
            };
            Spares::new(isolation.network.clone(), isolation.cgroups.clone(), root)
        });
        if let Some(s) = &spares {
            s.refill();
        }
        let inner = Arc::new(Inner {
            spares,
            ephemeral,
            code: CodeCache::new(data_dir.join("code"), data_dir.join("packages"), config.unpacked_code_ttl),
            code_source,
            packages_dir: data_dir.join("packages"),
            pool: Pool::new(config.memory_budget_mb, config.max_sandboxes),
            logs: LogStore::new(LogLimits {
                events_per_function: config.log_retention_events,
                bytes_per_function: config.log_bytes_per_function,
                bytes_per_account: config.log_bytes_per_account,
                bytes_total: config.log_bytes_total,
            }),
            telemetry: std::sync::OnceLock::new(),
            runtime_dir,
            sandboxes_dir,
            isolation,
            tasks: TaskTracker::new(),
            destroys: TaskTracker::new(),
            invocations: TaskTracker::new(),
            stop: shutdown.child_token(),
            shut_down: tokio::sync::OnceCell::new(),
            config,
        });
        let host = ExecHost { inner };
        let reaper = host.clone();
        host.inner.tasks.spawn(async move { reaper.reap_loop().await });
        Ok(host)
    }

    async fn reap_loop(&self) {
        let every = (self.inner.config.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            tokio::select! {
                // Busy sandboxes belong to invocations still running: only `shutdown` destroys them.
                _ = self.inner.stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {
                    for sb in self.inner.pool.take_expired(self.inner.config.idle_timeout) {
                        tracing::debug!(sandbox = sb.id, function = %sb.key.function_name, "reaping idle sandbox");
                        sb.destroy().await;
                    }
                    self.inner.code.collect().await;
                    self.update_gauge();
                }
            }
        }
    }

    fn update_gauge(&self) {
        let (live, _, _) = self.inner.pool.usage();
        metrics::gauge!(m::LIVE_SANDBOXES).set(live as f64);
    }

    /// Runs one invocation to completion (function errors are `Ok` with `function_error`).
    #[tracing::instrument(name = "exec_host.invoke", skip_all, fields(request_id = %inv.request_id, account_id = %inv.function.account_id, function = %inv.function.function_name, qualifier = %inv.function.version, cold_start = tracing::field::Empty))]
    pub async fn invoke(&self, inv: Invocation) -> Result<InvokeOutcome, ExecError> {
        let inner = &self.inner;
        // Counted before the check: `drain` either waits for this invocation or it was refused.
        let _in_flight = inner.invocations.token();
        if inner.invocations.is_closed() {
            return Err(ExecError::Draining);
        }
        let f = &inv.function;
        let Some(spec) = inner.config.runtimes.get(&f.runtime) else {
            return Err(ExecError::RuntimeNotInstalled(f.runtime.clone()));
        };
        let iso = &inner.isolation;
        let shared_ok = inner.config.insecure_shared_network && iso.network.is_none();
        if inner.config.require_isolation && !iso.complete() && !(shared_ok && iso.namespaces && iso.cgroups.is_some())
        {
            return Err(ExecError::IsolationUnavailable(iso.missing.join("; ")));
        }
        // Held until the sandbox has started (and been attached): the package is not deleted meanwhile.
        let code = inner.code.lease(&f.code_sha256_hex).context("unpack function code")?;
        let zip_path =
            inner.code_source.zip_path(&f.code_sha256_hex, &inner.packages_dir).await.context("fetch function code")?;
        let code_dir = inner.code.ensure(&code, &zip_path).await.context("unpack function code")?;
        let labels = [("account", f.account_id.clone()), ("function", f.function_name.clone())];
        metrics::counter!(m::INVOCATIONS_TOTAL, &labels).increment(1);

        if let Some(rel) = spec.command[0].strip_prefix("/var/task/") {
            let ok =
                std::fs::metadata(code_dir.join(rel)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if !ok {
                return Ok(self.entrypoint_missing(&inv));
            }
        }

        let key = SandboxKey::of(f);
        let memory_mb = u64::from(f.memory_mb);
        let (sandbox, cold) = loop {
            let share = inv.account_share_percent.unwrap_or(inner.config.account_share_percent);
            let (acq, evicted) = inner.pool.acquire(&key, memory_mb, share)?;
            for sb in evicted {
                inner.destroys.spawn(async move { sb.destroy().await });
            }
            match acq {
                Acquired::Warm(sb) => {
                    let now = chrono::Utc::now().timestamp();
                    if !sb.credentials_outlast(inv.credentials.is_some(), f.timeout_s, now) {
                        tracing::debug!(sandbox = sb.id, "retiring a warm sandbox whose credentials expire too soon");
                        inner.pool.forget(sb.id);
                        inner.destroys.spawn(async move { sb.destroy().await });
                        continue;
                    }
                    let thawed = sb.unpark();
                    if let Err(e) = &thawed {
                        tracing::warn!(sandbox = sb.id, "{e:#}");
                    }
                    if sb.exited().is_some() || thawed.is_err() {
                        inner.pool.forget(sb.id);
                        inner.destroys.spawn(async move { sb.destroy().await });
                        continue;
                    }
                    break (sb, false);
                }
                Acquired::Cold { id, uid } => {
                    let tmp_mb = crate::sandbox::tmp_size_mb(f, &inner.config);
                    // Idle sandboxes give up their /tmp for a cold start, oldest first.
                    let storage = loop {
                        if let Some(r) = inner.ephemeral.reserve(tmp_mb) {
                            break Some(r);
                        }
                        match inner.pool.take_oldest_idle() {
                            Some(sb) => sb.destroy().await,
                            None => break None,
                        }
                    };
                    let Some(storage) = storage else {
                        inner.pool.forget(id);
                        return Err(ExecError::NoCapacity);
                    };
                    let args = StartArgs {
                        id,
                        uid,
                        function: f,
                        spec,
                        code_dir: &code_dir,
                        runtime_dir: &inner.runtime_dir,
                        sandboxes_dir: &inner.sandboxes_dir,
                        config: &inner.config,
                        isolation: &inner.isolation,
                        ephemeral: &inner.ephemeral,
                        storage: Some(storage),
                        credentials: inv.credentials.as_ref(),
                    };
                    let spare = inner.spares.as_deref().and_then(Spares::claim);
                    match Sandbox::start(args, spare).await {
                        Ok(sb) => {
                            inner.code.attach(&code, &sb);
                            inner.pool.started(&sb);
                            metrics::counter!(m::COLD_STARTS_TOTAL, &labels).increment(1);
                            self.update_gauge();
                            break (sb, true);
                        }
                        Err(e) => {
                            inner.pool.forget(id);
                            if let Some(s) = &inner.spares {
                                s.refill();
                            }
                            return Err(ExecError::Internal(e.context("start sandbox")));
                        }
                    }
                }
            }
        };
        tracing::Span::current().record("cold_start", cold);
        let outcome = self.run_in(&sandbox, &inv, cold).await;
        if cold && let Some(s) = &inner.spares {
            // Replaces the spare this cold start used, now that the runtime has started.
            s.refill();
        }
        metrics::histogram!(m::DURATION_MS, &labels).record(outcome.0.duration_ms);
        if outcome.0.function_error {
            let error_type = error_type_of(&outcome.0.payload);
            metrics::counter!(m::ERRORS_TOTAL, "account" => f.account_id.clone(), "function" => f.function_name.clone(), "error_type" => error_type).increment(1);
        }
        if outcome.1 && sandbox.exited().is_none() && !sandbox.api.init_failed() && !inner.invocations.is_closed() {
            if inner.config.freeze_idle {
                sandbox.park();
            }
            inner.pool.release_idle(sandbox);
        } else {
            inner.pool.forget(sandbox.id);
            inner.destroys.spawn(async move { sandbox.destroy().await });
            self.update_gauge();
        }
        Ok(outcome.0)
    }

    /// Runs `inv` in `sb`; returns the outcome and whether the sandbox may be reused.
    async fn run_in(&self, sb: &Arc<Sandbox>, inv: &Invocation, cold: bool) -> (InvokeOutcome, bool) {
        let f = &inv.function;
        let timeout = Duration::from_secs(u64::from(f.timeout_s.max(1)));
        let start = Instant::now();
        let start_ms = chrono::Utc::now().timestamp_millis();
        let deadline_ms = start_ms + timeout.as_millis() as i64;
        let (placeholder, _) = tokio::sync::oneshot::channel();
        // The runtime's part of the trace; the X-Ray header it hands the function names this span
        // as the parent of the function's own spans.
        let runtime_span = if lamina_rpc::trace::enabled() {
            tracing::info_span!("runtime", request_id = %inv.request_id, function_error = tracing::field::Empty)
        } else {
            tracing::Span::none()
        };
        let trace_id = runtime_span.in_scope(lamina_rpc::trace::xray_header).unwrap_or_else(|| inv.trace_id.clone());
        let pending = Pending {
            request_id: inv.request_id.clone(),
            deadline_ms,
            invoked_arn: inv.invoked_arn.clone(),
            trace_id,
            client_context: inv.client_context.clone(),
            cognito_identity: inv.cognito_identity.clone(),
            payload: inv.payload.clone(),
            done: placeholder,
        };
        let end = tracing::Instrument::instrument(
            sb.run(pending, tokio::time::Instant::from_std(start + timeout)),
            runtime_span.clone(),
        )
        .await;
        let end_t = Instant::now();
        let id = &inv.request_id;
        let mut extra: Vec<String> = Vec::new();
        let (payload, function_error, reusable, timed_out) = match end {
            RunEnd::Result(RuntimeResult::Response(b)) => (b, false, true, false),
            RunEnd::Result(RuntimeResult::Error(doc)) => (doc, true, true, false),
            RunEnd::Result(RuntimeResult::InitError(doc)) => (doc, true, false, false),
            RunEnd::Result(RuntimeResult::TooLarge) => {
                let limit = self.inner.config.max_response_bytes + 100;
                let doc = serde_json::json!({
                    "errorMessage": format!("Response payload size exceeded maximum allowed payload size ({limit} bytes)."),
                    "errorType": "Function.ResponseSizeTooLarge",
                });
                (Bytes::from(doc.to_string()), true, true, false)
            }
            RunEnd::Exited(info) => {
                sb.kill().await;
                let desc = info.describe();
                let oom = (info.is_kill() || info == crate::sandbox::ExitInfo::Code(137)) && sb.oom_killed();
                let error_type = if oom { "Runtime.OutOfMemory" } else { "Runtime.ExitError" };
                let message = format!("RequestId: {id} Error: Runtime exited with error: {desc}");
                extra.push(format!("{message}\n{error_type}"));
                // semantics ERR Decision: a Node.js process dying mid-invocation has its own answer.
                let doc = if !oom && inv.function.runtime.starts_with("nodejs") {
                    serde_json::json!({"errorMessage": "Process exited before completing request"})
                } else {
                    serde_json::json!({"errorType": error_type, "errorMessage": message})
                };
                (Bytes::from(doc.to_string()), true, false, false)
            }
            RunEnd::Timeout => {
                sb.kill().await;
                let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
                let message = format!("{now} {id} Task timed out after {}.00 seconds", timeout.as_secs());
                extra.push(message.clone());
                let doc = serde_json::json!({"errorMessage": message, "errorType": "Sandbox.Timedout"});
                (Bytes::from(doc.to_string()), true, false, true)
            }
        };
        runtime_span.record("function_error", function_error);
        let captured = sb.finish_logs();
        let init_duration = cold.then(|| sb.api.first_next().unwrap_or(end_t).saturating_duration_since(sb.spawned_at));
        let run_start = sb.api.delivered().filter(|d| *d >= start).unwrap_or(start);
        let mut duration_ms = end_t.saturating_duration_since(run_start).as_secs_f64() * 1000.0;
        let billed_ms = if timed_out {
            duration_ms = (end_t - start).as_secs_f64().min(timeout.as_secs_f64()) * 1000.0;
            timeout.as_millis() as u64
        } else {
            ((duration_ms.ceil() as u64).div_ceil(100) * 100).max(100)
        };
        let max_mem = sb.max_memory_used_mb();
        let mut log = InvocationLog::new(&sb.log_stream);
        log.line(start_ms, format!("START RequestId: {id} Version: {}", f.version));
        log.output(&captured);
        let end_ms = chrono::Utc::now().timestamp_millis();
        log.line(end_ms, format!("END RequestId: {id}"));
        let mut report = format!(
            "REPORT RequestId: {id}\tDuration: {duration_ms:.2} ms\tBilled Duration: {billed_ms} ms\tMemory Size: {} MB\tMax Memory Used: {max_mem} MB\t",
            f.memory_mb
        );
        if let Some(d) = init_duration {
            report.push_str(&format!("Init Duration: {:.2} ms\t", d.as_secs_f64() * 1000.0));
        }
        log.line(end_ms, report);
        for line in extra {
            log.line(end_ms, line);
        }
        let log_tail = inv.tail_log.then(|| log.tail());
        self.keep_log(f, log);
        let outcome = InvokeOutcome {
            payload,
            function_error,
            log_tail,
            duration_ms,
            init_duration_ms: init_duration.map(|d| d.as_secs_f64() * 1000.0),
            max_memory_used_mb: max_mem,
        };
        (outcome, reusable)
    }

    /// Hands an invocation's log to the telemetry sink (when one is set) and keeps it in this
    /// host's bounded store.
    fn keep_log(&self, f: &FunctionSnapshot, log: InvocationLog) {
        let InvocationLog { stream, events } = log;
        if let Some(sink) = self.inner.telemetry.get() {
            // The one copy of the text: the shipper owns its batch until it is stored, while this
            // host's store keeps the events for `log_events` (Lamina's own logs path).
            let shipped = events
                .iter()
                .map(|e| lamina_common::telemetry::ShippedEvent {
                    timestamp_ms: e.timestamp_ms,
                    message: e.message.clone(),
                })
                .collect();
            sink.logs(lamina_common::telemetry::LogBatch {
                account_id: f.account_id.clone(),
                log_group: format!("/aws/lambda/{}", f.function_name),
                log_stream: stream,
                events: shipped,
            });
        }
        self.inner.logs.append(&f.account_id, &f.function_name, events);
    }

    /// Sends every function log from now on to `sink` too (set once; later calls are ignored).
    pub fn set_telemetry(&self, sink: Arc<dyn lamina_common::telemetry::TelemetrySink>) {
        let _ = self.inner.telemetry.set(sink);
    }

    /// A `provided*` package without an executable `bootstrap`: fails before any sandbox starts.
    fn entrypoint_missing(&self, inv: &Invocation) -> InvokeOutcome {
        let f = &inv.function;
        let id = &inv.request_id;
        let message = "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]";
        let stream =
            format!("{}/[{}]{}", chrono::Utc::now().format("%Y/%m/%d"), f.version, uuid::Uuid::new_v4().simple());
        let now = chrono::Utc::now().timestamp_millis();
        let mut log = InvocationLog::new(&stream);
        log.line(now, format!("START RequestId: {id} Version: {}", f.version));
        log.line(now, format!("{message}\nRuntime.InvalidEntrypoint"));
        log.line(now, format!("END RequestId: {id}"));
        log.line(
            now,
            format!(
                "REPORT RequestId: {id}\tDuration: 0.00 ms\tBilled Duration: 100 ms\tMemory Size: {} MB\tMax Memory Used: 0 MB\t",
                f.memory_mb
            ),
        );
        let log_tail = inv.tail_log.then(|| log.tail());
        self.keep_log(f, log);
        metrics::counter!(m::ERRORS_TOTAL, "account" => f.account_id.clone(), "function" => f.function_name.clone(), "error_type" => "Runtime.InvalidEntrypoint").increment(1);
        let doc = serde_json::json!({"errorType": "Runtime.InvalidEntrypoint", "errorMessage": message});
        InvokeOutcome {
            payload: Bytes::from(doc.to_string()),
            function_error: true,
            log_tail,
            duration_ms: 0.0,
            init_duration_ms: None,
            max_memory_used_mb: 0,
        }
    }

    /// Sandboxes and memory in use now (what a host reports to the routers).
    pub fn load(&self) -> HostLoad {
        let (live, idle, used_mb) = self.inner.pool.usage();
        HostLoad {
            live,
            idle,
            max_sandboxes: self.inner.config.max_sandboxes,
            memory_used_mb: used_mb,
            memory_budget_mb: self.inner.pool.budget_mb(),
        }
    }

    /// Sandboxes per runtime now (`/metrics` samples it).
    pub(crate) fn pool_by_runtime(&self) -> std::collections::HashMap<String, crate::pool::RuntimeUsage> {
        self.inner.pool.by_runtime()
    }

    /// JSON for `GET /health`: isolation features, cgroup version, sandboxes, memory.
    pub fn health(&self) -> serde_json::Value {
        let inner = &self.inner;
        let (live, idle, used) = inner.pool.usage();
        serde_json::json!({
            "isolation": {
                "complete": inner.isolation.complete(),
                "required": inner.config.require_isolation,
                "available": inner.isolation.available(),
                "missing": inner.isolation.missing,
                "cgroup_version": inner.isolation.cgroups.as_ref().map(|c| match c.version {
                    crate::cgroup::Version::V1 => "v1",
                    crate::cgroup::Version::V2 => "v2",
                }),
                "network": {
                    "mode": match (&inner.isolation.network, inner.isolation.namespaces) {
                        (Some(_), true) => "namespace",
                        _ if inner.config.insecure_shared_network => "shared_insecure",
                        _ => "unavailable",
                    },
                    "insecure_shared_network": inner.config.insecure_shared_network,
                    "allow_host_ports": inner.config.allow_host_ports,
                },
            },
            "sandboxes": {"live": live, "idle": idle, "max": inner.config.max_sandboxes},
            "ephemeral_storage_mb": {
                "backing": match inner.ephemeral.backing() {
                    crate::ephemeral::Backing::Disk => "disk",
                    crate::ephemeral::Backing::Memory => "tmpfs_in_memory",
                },
                "used": inner.ephemeral.usage().0,
                "budget": inner.ephemeral.usage().1,
            },
            "freeze_idle": inner.config.freeze_idle && inner.isolation.cgroups.as_ref().is_some_and(|c| c.features().contains(&"cgroup_freezer")),
            "memory_mb": {"used": used, "budget": inner.pool.budget_mb()},
            "runtimes": self.runtimes(),
        })
    }

    /// Stored log events of a function, newest last (at most `limit`).
    pub fn log_events(&self, account_id: &str, function_name: &str, limit: usize) -> Vec<LogEvent> {
        self.inner.logs.events(account_id, function_name, limit)
    }

    /// Refuses new invocations with [`ExecError::Draining`] and waits until those in flight have
    /// finished or `deadline` has passed. Returns how many were still running then (0: all
    /// finished). Sandboxes stay until [`shutdown`](Self::shutdown).
    pub async fn drain(&self, deadline: tokio::time::Instant) -> usize {
        let invocations = &self.inner.invocations;
        invocations.close();
        if !invocations.is_empty() {
            tracing::info!(in_flight = invocations.len(), "waiting for invocations in flight");
        }
        match tokio::time::timeout_at(deadline, invocations.wait()).await {
            Ok(()) => 0,
            Err(_) => invocations.len(),
        }
    }

    /// Stops the host: refuses new invocations, kills every sandbox (busy ones too: call
    /// [`drain`](Self::drain) first to let them finish) and waits for the cleanup. Runs once;
    /// later calls return when the first one has finished.
    pub async fn shutdown(&self) {
        self.inner.shut_down.get_or_init(|| self.shut_down_once()).await;
    }

    async fn shut_down_once(&self) {
        let inner = &self.inner;
        inner.invocations.close();
        // The reaper finishes the round it is in, so no sandbox is destroyed twice below.
        inner.stop.cancel();
        inner.tasks.close();
        inner.tasks.wait().await;
        let all = inner.pool.take_all();
        futures_join_all(all.iter().map(|sb| sb.destroy())).await;
        // Invocations whose sandbox was just killed end at once and hand it to `destroys`.
        if tokio::time::timeout(Duration::from_secs(10), inner.invocations.wait()).await.is_err() {
            tracing::warn!(in_flight = inner.invocations.len(), "invocations still running at shutdown");
        }
        inner.destroys.close();
        if tokio::time::timeout(Duration::from_secs(10), inner.destroys.wait()).await.is_err() {
            tracing::warn!("sandboxes still being destroyed at shutdown");
        }
        self.update_gauge();
        if let Some(spares) = self.inner.spares.clone() {
            let _ = tokio::task::spawn_blocking(move || spares.close()).await;
        }
        if let Some(cg) = &self.inner.isolation.cgroups {
            cg.remove_instance();
        }
    }

    /// Warm keys (see [`warm_key`]) of the functions with an idle sandbox here.
    pub fn warm_keys(&self) -> Vec<String> {
        self.inner.pool.idle_keys().iter().map(SandboxKey::warm_key).collect()
    }

    /// Known runtime identifiers (keys of `config.runtimes`).
    pub fn runtimes(&self) -> Vec<String> {
        self.inner.config.runtimes.keys().cloned().collect()
    }
}

/// Sandboxes and memory of a host at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLoad {
    /// Sandboxes alive (busy or idle).
    pub live: usize,
    /// Sandboxes waiting for an invocation.
    pub idle: usize,
    /// Most sandboxes the host runs.
    pub max_sandboxes: usize,
    /// Memory reserved by live sandboxes.
    pub memory_used_mb: u64,
    /// Memory the host may give to sandboxes.
    pub memory_budget_mb: u64,
}

/// The key under which a host advertises an idle sandbox of this function version.
pub fn warm_key(f: &FunctionSnapshot) -> String {
    SandboxKey::of(f).warm_key()
}

/// Awaits all futures concurrently (no `futures` dependency needed for this one use).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    for f in set {
        f.await;
    }
}

fn error_type_of(payload: &Bytes) -> String {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("errorType").and_then(|t| t.as_str()).map(str::to_string))
        .filter(|t| t.len() <= 64)
        .unwrap_or_else(|| "Unhandled".to_string())
}

async fn write_bootstraps(dir: &std::path::Path) -> anyhow::Result<()> {
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).await?;
    for (rel, contents) in embedded::FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.with_context(|| format!("create {}", parent.display()))?;
            tokio::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).await?;
        }
        tokio::fs::write(&path, contents).await.with_context(|| format!("write {}", path.display()))?;
        tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).await?;
    }
    Ok(())
}

/// Byte-compiles the Python runtime module for every interpreter a runtime is started with, so a
/// cold start loads cached bytecode (the sandbox's `/var/runtime` is read-only, so Python could
/// not cache it there itself). A failure only costs speed: Python then compiles in memory.
async fn precompile_python(
    dir: &std::path::Path,
    runtimes: &std::collections::BTreeMap<String, crate::config::RuntimeSpec>,
) {
    let module = dir.join("python/lamina_runtime.py");
    let interpreters: std::collections::BTreeSet<&String> = runtimes
        .values()
        .filter(|spec| spec.command.iter().any(|arg| arg.starts_with("/var/runtime/python/")))
        .filter_map(|spec| spec.command.first())
        .collect();
    for interpreter in interpreters {
        let out = tokio::process::Command::new(interpreter)
            .args(["-S", "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True)"])
            .arg(&module)
            .env_clear()
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => tracing::warn!(
                %interpreter,
                "byte-compiling the Python runtime failed (cold starts will be slower): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => tracing::warn!(%interpreter, "byte-compiling the Python runtime failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation() -> Invocation {
        Invocation {
            function: FunctionSnapshot {
                account_id: "123456789012".into(),
                function_name: "f".into(),
                function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
                version: "$LATEST".into(),
                revision_id: "r".into(),
                runtime: "python3.11".into(),
                handler: "lambda_function.handler".into(),
                memory_mb: 128,
                timeout_s: 3,
                environment: Default::default(),
                code_sha256_hex: "00".repeat(32),
                ephemeral_storage_mb: 0,
            },
            request_id: "req".into(),
            invoked_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            payload: Bytes::from_static(b"{}"),
            client_context: None,
            cognito_identity: None,
            trace_id: String::new(),
            tail_log: false,
            account_share_percent: None,
            credentials: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drained_host_refuses_invocations_and_shuts_down_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config { data_dir: dir.path().join("data"), cpu_quota: false, ..Config::default() };
        let blobs = lamina_code_storage::CodeStorage::open(dir.path().join("blobs"), Default::default())
            .expect("open blob dir");
        let token = CancellationToken::new();
        let host = ExecHost::start(config, blobs.into(), token.clone()).await.expect("start exec host");
        // The owner's token stops background work only; the host still takes invocations.
        token.cancel();
        assert!(!host.inner.invocations.is_closed());

        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        assert_eq!(host.drain(deadline).await, 0, "nothing was in flight");
        let refused = host.invoke(invocation()).await.expect_err("a draining host refuses");
        assert!(matches!(refused, ExecError::Draining), "{refused}");
        assert!(refused.retryable_elsewhere());

        host.shutdown().await;
        // A second call finds the work done and returns at once.
        tokio::time::timeout(Duration::from_millis(100), host.shutdown()).await.expect("second shutdown is a no-op");
    }
}
