//! The invoke router: resolves what to run, enforces account concurrency, and hands the
//! invocation to an execution host.

mod credentials;
mod detach;
pub mod grpc;
mod hosts;
mod usage;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use lamina_async_queue::{Attempt, Event, QueueClient};
use lamina_common::names::{function_arn, qualified_arn};
use lamina_common::{AccountId, ApiError, ApiResult, FunctionName, FunctionSnapshot, Qualifier};
use lamina_exec_host::{ExecError, Invocation, LogEvent, warm_key};
use lamina_fleet::leases::{Lease, Leases};
use lamina_metadata::{FunctionRow, InvokeTarget, MetadataClient};

pub use grpc::RouterClient;
pub use hosts::Hosts;

/// Metric names of this service.
pub mod metrics_names {
    /// Counter: invocations refused for concurrency, labels `account` (absent when a host
    /// refused) and `reason`.
    pub const THROTTLES: &str = "lamina_throttles_total";

    /// Registers descriptions of the metrics above with the installed recorder.
    pub fn describe() {
        metrics::describe_counter!(THROTTLES, "Invocations refused for concurrency, by account and reason");
    }
}

/// How the caller wants the function run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

/// A parsed Invoke request, already authorised for `account_id`.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    pub account_id: AccountId,
    pub function_name: FunctionName,
    pub qualifier: Option<Qualifier>,
    pub request_id: String,
    pub invocation_type: InvocationType,
    pub payload: Bytes,
    /// Decoded `X-Amz-Client-Context` JSON.
    pub client_context: Option<String>,
    pub tail_log: bool,
}

/// What came back from a synchronous run.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub executed_version: String,
    pub payload: Bytes,
    pub function_error: bool,
    /// Raw text of the log tail, when asked for.
    pub log_tail: Option<String>,
}

/// Outcome of Invoke: ran, queued (Event), or only checked (DryRun).
#[derive(Debug, Clone)]
pub enum InvokeOutcome {
    Ran(Invoked),
    Queued,
    Checked,
}

/// The invoke router (in-process implementation; the gRPC server in [`grpc`] wraps it).
#[derive(Clone)]
pub struct InvokeRouter {
    metadata: MetadataClient,
    hosts: Hosts,
    region: String,
    leases: Leases,
    queue: QueueClient,
    /// Mints credentials for function code, when given a session key.
    sessions: Option<std::sync::Arc<credentials::Minter>>,
    /// Where the `AWS/Lambda` metric samples of invocations go (with this router's runs in flight).
    telemetry: Option<usage::Usage>,
}

/// Tries of one invocation on different hosts when a host refuses it before it started.
const PLACEMENT_TRIES: usize = 3;

/// Longest one Redis step of an invocation (a lease, the host list) may take. While Redis is
/// unreachable its connection manager retries with backoff for several seconds before failing a
/// command; the caller gets a 503 at once instead of waiting that out.
const REDIS_DEADLINE: Duration = Duration::from_secs(2);

/// Longest the async queue may take to confirm an Event invocation is durable (one Redis write).
const QUEUE_DEADLINE: Duration = Duration::from_secs(3);

/// `step` (a Redis round trip), failed if Redis has not answered within [`REDIS_DEADLINE`].
pub(crate) async fn within_deadline<T>(what: &str, step: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(REDIS_DEADLINE, step)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no answer from Redis within {REDIS_DEADLINE:?}"))?
}

impl InvokeRouter {
    /// Wires the router to its peers.
    pub fn new(metadata: MetadataClient, hosts: Hosts, region: String, leases: Leases, queue: QueueClient) -> Self {
        Self { metadata, hosts, region, leases, queue, sessions: None, telemetry: None }
    }

    /// Gives every invocation temporary credentials for its function's code, minted with the
    /// installation's session key (`lamina_common::session::derive_key` of the master key).
    pub fn with_session_key(mut self, key: [u8; 32]) -> Self {
        self.sessions = Some(std::sync::Arc::new(credentials::Minter::new(key)));
        self
    }

    /// Records the `AWS/Lambda` metrics of every invocation (Invocations, Errors, Duration,
    /// Throttles, ConcurrentExecutions) into `sink`.
    pub fn with_telemetry(mut self, sink: std::sync::Arc<dyn lamina_common::telemetry::TelemetrySink>) -> Self {
        self.telemetry = Some(usage::Usage::new(sink));
        self
    }

    /// The metadata handle (its cache is invalidated by other processes' writes).
    pub fn metadata(&self) -> &MetadataClient {
        &self.metadata
    }

    /// Runs one queued event (the async worker's runner); the request id stays the event's.
    pub async fn run_event(&self, event: Event) -> Attempt {
        match event_request(event) {
            Ok(req) => attempt_of(self.invoke(req).await),
            Err(e) => attempt_of(Err(e)),
        }
    }

    /// The execution hosts.
    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    /// Health of the execution side, asked of every host once: `{"runtimes": [what some host can
    /// start], "hosts": [one document per host]}` (a host that does not answer is listed with its
    /// error and offers no runtime).
    pub async fn execution_health(&self) -> ApiResult<serde_json::Value> {
        let mut runtimes = std::collections::BTreeSet::new();
        let mut hosts = Vec::new();
        for host in self.hosts.all().await.map_err(unavailable)? {
            match host.health().await {
                Ok(h) => {
                    let names = h["runtimes"].as_array().into_iter().flatten();
                    runtimes.extend(names.filter_map(|n| n.as_str().map(str::to_owned)));
                    hosts.push(h);
                }
                Err(e) => hosts.push(serde_json::json!({"host": host.id(), "error": format!("{e:#}")})),
            }
        }
        Ok(serde_json::json!({ "runtimes": runtimes, "hosts": hosts }))
    }

    /// Stored log events of a function gathered from every host, oldest first (at most `limit`).
    pub async fn log_events(&self, account_id: &str, function_name: &str, limit: usize) -> ApiResult<Vec<LogEvent>> {
        let mut events = Vec::new();
        for host in self.hosts.all().await.map_err(unavailable)? {
            match host.log_events(account_id, function_name, limit).await {
                Ok(e) => events.extend(e),
                Err(e) => tracing::warn!(host = host.id(), "logs of a host are unavailable: {e:#}"),
            }
        }
        events.sort_by_key(|e| e.timestamp_ms);
        let skip = events.len().saturating_sub(limit);
        Ok(events.split_off(skip))
    }

    /// In-flight invocations of an account (its unreserved pool).
    pub async fn in_flight(&self, account_id: &str) -> ApiResult<u32> {
        within_deadline("count leases", self.leases.in_flight(account_id)).await.map_err(unavailable)
    }

    /// The version to run (an alias resolved, weights applied) and the limits that apply to it.
    async fn resolve(&self, req: &InvokeRequest) -> ApiResult<InvokeTarget> {
        let arn = self.invoked_arn(req);
        let not_found = || ApiError::function_not_found(&arn);
        let (account, name) = (req.account_id.as_str(), req.function_name.as_str());
        let version = match &req.qualifier {
            None => "$LATEST".to_owned(),
            Some(Qualifier::Alias(alias)) => {
                let alias = self.metadata.get_alias(account, name, alias).await?.ok_or_else(not_found)?;
                alias.routing_config.as_deref().and_then(pick_weighted).unwrap_or(alias.function_version)
            }
            Some(q) => q.to_string(),
        };
        self.metadata.invoke_target(account, name, &version).await?.ok_or_else(not_found)
    }

    /// The ARN the caller invoked (qualified or not).
    fn invoked_arn(&self, req: &InvokeRequest) -> String {
        let (account, name) = (req.account_id.as_str(), req.function_name.as_str());
        match &req.qualifier {
            Some(q) => qualified_arn(&self.region, account, name, &q.to_string()),
            None => function_arn(&self.region, account, name),
        }
    }

    /// Runs (or, for DryRun, only checks) one invocation.
    #[tracing::instrument(name = "router.invoke", skip_all, fields(request_id = %req.request_id, account_id = %req.account_id, function = %req.function_name, invocation_type = ?req.invocation_type))]
    pub async fn invoke(&self, req: InvokeRequest) -> ApiResult<InvokeOutcome> {
        let target = self.resolve(&req).await?;
        match req.invocation_type {
            InvocationType::DryRun => return Ok(InvokeOutcome::Checked),
            InvocationType::Event => {
                let qualifier = req.qualifier.as_ref().map(Qualifier::to_string);
                let enqueue = self.queue.enqueue(
                    &req.request_id,
                    req.account_id.as_str(),
                    req.function_name.as_str(),
                    qualifier.as_deref(),
                    &req.payload,
                );
                // Not acknowledged unless durable: a queue that cannot reach Redis gets a 503 now.
                // (If it writes the event after all, the caller's retry may run it twice: Event
                // invocations are at least once.)
                tokio::time::timeout(QUEUE_DEADLINE, enqueue).await.map_err(|_| {
                    tracing::warn!("the async queue did not confirm an event within {QUEUE_DEADLINE:?}");
                    ApiError::ServiceUnavailable("The event queue is unavailable. Retry the request.".into())
                })??;
                return Ok(InvokeOutcome::Queued);
            }
            InvocationType::RequestResponse => {}
        }
        let invoked = self.telemetry.as_ref().map(|_| usage::Invoked::of(&req));
        let lease = match self.acquire(&target).await {
            Ok(lease) => lease,
            Err(e) => {
                if let (Some(usage), Some(invoked), ApiError::TooManyRequests { .. }) = (&self.telemetry, &invoked, &e)
                {
                    usage.throttled(invoked, &target.row.version);
                }
                return Err(e);
            }
        };
        let row = target.row;
        let invoked_arn = self.invoked_arn(&req);
        let executed_version = row.version.clone();
        let credentials = self.sessions.as_ref().map(|minter| {
            let arn = function_arn(&self.region, &row.account_id, &row.function_name);
            minter.credentials(&row.account_id, &arn, &row.role, unix_now())
        });
        let invocation = Invocation {
            function: self.snapshot(row),
            request_id: req.request_id.clone(),
            invoked_arn,
            payload: req.payload,
            client_context: req.client_context,
            cognito_identity: None,
            trace_id: trace_id(),
            tail_log: req.tail_log,
            account_share_percent: target.host_share_percent.and_then(|p| u32::try_from(p).ok()),
            credentials,
        };
        // Counted in flight until the run ends, however it ends.
        let run =
            self.telemetry.as_ref().zip(invoked).map(|(usage, invoked)| usage.start(invoked, executed_version.clone()));
        // The run finishes (and frees its slot and sandbox) even if the caller goes away.
        let hosts = self.hosts.clone();
        let result = detach::RunToCompletion::new(async move {
            let result = run_placed(&hosts, invocation).await;
            if let Some(run) = run {
                run.finished(&result);
            }
            if let Err(e) = within_deadline("release a lease", lease.release()).await {
                tracing::warn!("releasing a concurrency lease failed (it expires by itself): {e:#}");
            }
            result
        })
        .await;
        let out = result?;
        Ok(InvokeOutcome::Ran(Invoked {
            executed_version,
            payload: out.payload,
            function_error: out.function_error,
            log_tail: out.log_tail,
        }))
    }

    /// Takes a slot from the function's reservation, or from the account's unreserved pool.
    async fn acquire(&self, target: &InvokeTarget) -> ApiResult<Lease> {
        let throttled = |reason: &'static str| {
            let account = target.row.account_id.clone();
            metrics::counter!(metrics_names::THROTTLES, "account" => account, "reason" => reason).increment(1);
            ApiError::TooManyRequests { message: "Rate Exceeded.".into(), reason }
        };
        let account_id = &target.row.account_id;
        let limit = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
        if let Some(reserved) = target.reserved {
            let key = format!("{account_id}/{}", target.row.function_name);
            return within_deadline("acquire a lease", self.leases.try_acquire(&key, limit(reserved)))
                .await
                .map_err(unavailable)?
                .ok_or_else(|| throttled("ReservedFunctionConcurrentInvocationLimitExceeded"));
        }
        let unreserved = target.account_limit - target.reserved_total;
        within_deadline("acquire a lease", self.leases.try_acquire(account_id, limit(unreserved)))
            .await
            .map_err(unavailable)?
            .ok_or_else(|| throttled("ConcurrentInvocationLimitExceeded"))
    }

    fn snapshot(&self, row: FunctionRow) -> FunctionSnapshot {
        let environment: BTreeMap<String, String> =
            row.environment.as_deref().and_then(serde_json_map).unwrap_or_default();
        FunctionSnapshot {
            function_arn: function_arn(&self.region, &row.account_id, &row.function_name),
            account_id: row.account_id,
            function_name: row.function_name,
            version: row.version,
            revision_id: row.revision_id,
            runtime: row.runtime,
            handler: row.handler,
            memory_mb: row.memory_size.clamp(0, u32::MAX as i64) as u32,
            timeout_s: row.timeout.clamp(0, u32::MAX as i64) as u32,
            environment,
            code_sha256_hex: row.code_sha256,
            ephemeral_storage_mb: row.ephemeral_storage.clamp(0, u32::MAX as i64) as u32,
        }
    }
}

/// Runs `inv` on a host, moving to another host while hosts refuse it before it started.
async fn run_placed(hosts: &Hosts, inv: Invocation) -> ApiResult<lamina_exec_host::InvokeOutcome> {
    let key = warm_key(&inv.function);
    let memory = u64::from(inv.function.memory_mb);
    let mut tried: Vec<String> = Vec::new();
    let mut last: Option<ExecError> = None;
    for _ in 0..PLACEMENT_TRIES {
        let placed = match hosts.place(&key, memory, &tried).await.map_err(unavailable)? {
            Some(p) => p,
            None => break,
        };
        match placed.client.invoke(inv.clone()).await {
            Ok(out) => return Ok(out),
            Err(e) if e.retryable_elsewhere() || unreachable_before_start(&e) => {
                tracing::info!(host = placed.client.id(), "host refused an invocation, trying another: {e:#}");
                tried.push(placed.client.id().to_owned());
                last = Some(e);
            }
            Err(e) => return Err(exec_api_error(e)),
        }
    }
    Err(match last {
        Some(e) => exec_api_error(e),
        None => exec_api_error(ExecError::NoCapacity),
    })
}

/// A remote host that could not even be connected to has not started the invocation.
fn unreachable_before_start(e: &ExecError) -> bool {
    matches!(e, ExecError::Unreachable(m) if m.contains(lamina_exec_host::NOT_CONNECTED))
}

/// The API's answer to a host's refusal.
fn exec_api_error(e: ExecError) -> ApiError {
    match e {
        ExecError::NoCapacity => {
            metrics::counter!(metrics_names::THROTTLES, "reason" => "host").increment(1);
            ApiError::TooManyRequests { message: "Rate Exceeded.".into(), reason: "ConcurrentInvocationLimitExceeded" }
        }
        ExecError::Draining => {
            ApiError::ServiceUnavailable("The execution hosts are shutting down. Retry the request.".into())
        }
        ExecError::IsolationUnavailable(m) => {
            tracing::error!("no execution host can isolate sandboxes: {m}");
            ApiError::ServiceUnavailable("No execution host can run the function safely right now.".into())
        }
        ExecError::RuntimeNotInstalled(runtime) => {
            ApiError::ServiceUnavailable(format!("No execution host can run the runtime {runtime} right now."))
        }
        ExecError::Unreachable(m) => {
            tracing::warn!("execution host lost during an invocation: {m}");
            ApiError::ServiceUnavailable("The execution host running the function was lost. Retry the request.".into())
        }
        ExecError::Internal(err) => ApiError::Internal(err.context("run invocation")),
    }
}

fn unavailable(e: anyhow::Error) -> ApiError {
    tracing::warn!("a coordination backend is unavailable: {e:#}");
    ApiError::ServiceUnavailable("The service is temporarily unavailable. Retry the request.".into())
}

/// The synchronous request an event is run as (an event whose names do not parse is dropped).
pub fn event_request(event: Event) -> ApiResult<InvokeRequest> {
    Ok(InvokeRequest {
        account_id: AccountId::parse(&event.account_id)?,
        function_name: FunctionName::parse(&event.function_name)?,
        qualifier: event.qualifier.as_deref().map(Qualifier::parse).transpose()?,
        request_id: event.request_id,
        invocation_type: InvocationType::RequestResponse,
        payload: Bytes::from(event.payload),
        client_context: None,
        tail_log: false,
    })
}

/// How a queued event's attempt ended, for the retry policy: throttles and service errors are
/// retried with backoff (as AWS does for both), a function that is gone or can no longer be
/// invoked drops the event.
pub fn attempt_of(result: ApiResult<InvokeOutcome>) -> Attempt {
    match result {
        Ok(InvokeOutcome::Ran(ran)) if ran.function_error => Attempt::FunctionError,
        Ok(_) => Attempt::Succeeded,
        Err(ApiError::ResourceNotFound(_)) => Attempt::Gone,
        Err(ApiError::TooManyRequests { .. } | ApiError::ServiceUnavailable(_) | ApiError::Internal(_)) => {
            Attempt::Throttled
        }
        // Every other error is about the request itself: retrying cannot fix it (e.g. the
        // function's configuration became invalid, or permission was withdrawn).
        Err(other) => {
            tracing::warn!(error_type = other.error_type(), "dropping an event that cannot be invoked: {other}");
            Attempt::Gone
        }
    }
}

fn serde_json_map(text: &str) -> Option<BTreeMap<String, String>> {
    serde_json::from_str(text).ok()
}

/// Unix seconds now.
fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_secs()).unwrap_or(i64::MAX)
}

/// An X-Ray-shaped trace id for the Runtime API: the current span's when traces are exported (a
/// function's own spans then join the invocation's trace), else a random one.
fn trace_id() -> String {
    if let Some(header) = lamina_rpc::trace::xray_header() {
        return header;
    }
    let id = lamina_common::ids::random_uuid().simple().to_string();
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("Root=1-{secs:08x}-{};Parent={};Sampled=0", &id[..24], &id[..16])
}

/// Picks the alias's additional version with its weight's probability (`None`: the primary).
fn pick_weighted(routing_json: &str) -> Option<String> {
    let routing: serde_json::Value = serde_json::from_str(routing_json).ok()?;
    let (version, weight) = routing.get("AdditionalVersionWeights")?.as_object()?.iter().next()?;
    let weight = weight.as_f64()?;
    (rand::random::<f64>() < weight).then(|| version.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(function_error: bool) -> ApiResult<InvokeOutcome> {
        Ok(InvokeOutcome::Ran(Invoked {
            executed_version: "1".into(),
            payload: Bytes::new(),
            function_error,
            log_tail: None,
        }))
    }

    #[test]
    fn event_attempts_are_classified_by_what_went_wrong() {
        let throttle = ApiError::TooManyRequests { message: "m".into(), reason: "ConcurrentInvocationLimitExceeded" };
        let cases: Vec<(ApiResult<InvokeOutcome>, Attempt)> = vec![
            (ran(false), Attempt::Succeeded),
            (ran(true), Attempt::FunctionError),
            (Ok(InvokeOutcome::Queued), Attempt::Succeeded),
            (Err(ApiError::ResourceNotFound("gone".into())), Attempt::Gone),
            (Err(throttle), Attempt::Throttled),
            (Err(ApiError::ServiceUnavailable("down".into())), Attempt::Throttled),
            (Err(ApiError::Internal(anyhow::anyhow!("db"))), Attempt::Throttled),
            (Err(ApiError::AccessDenied("no".into())), Attempt::Gone),
            (Err(ApiError::InvalidParameterValue("bad".into())), Attempt::Gone),
        ];
        for (result, want) in cases {
            assert_eq!(attempt_of(result), want);
        }
    }

    #[test]
    fn host_refusals_map_to_retryable_api_errors() {
        assert_eq!(exec_api_error(ExecError::NoCapacity).status().as_u16(), 429);
        assert_eq!(exec_api_error(ExecError::Draining).status().as_u16(), 503);
        assert_eq!(exec_api_error(ExecError::IsolationUnavailable("cgroups".into())).status().as_u16(), 503);
        let runtime = exec_api_error(ExecError::RuntimeNotInstalled("python3.99".into()));
        assert_eq!((runtime.status().as_u16(), runtime.to_string().contains("python3.99")), (503, true));
        assert_eq!(exec_api_error(ExecError::Unreachable("reset".into())).status().as_u16(), 503);
        assert!(unreachable_before_start(&ExecError::Unreachable(format!("h: {}", lamina_exec_host::NOT_CONNECTED))));
        assert!(!unreachable_before_start(&ExecError::Unreachable("connection reset".into())));
    }
}
