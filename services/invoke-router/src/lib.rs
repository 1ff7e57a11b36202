//! The invoke router: resolves what to run, enforces account concurrency, and hands the
//! invocation to an execution host.

mod concurrency;
mod detach;

use std::collections::BTreeMap;

use bytes::Bytes;
use lamina_async_queue::{Attempt, Event, Queue};
use lamina_code_storage::CodeStorage;
use lamina_common::names::{function_arn, qualified_arn};
use lamina_common::{ApiError, ApiResult, FunctionSnapshot};
use lamina_exec_host::{ExecError, ExecHost, Invocation};
use lamina_metadata::{FunctionRow, InvokeTarget, Metadata};

pub use concurrency::{Concurrency, Slot};

/// Metric names of this service.
pub mod metrics_names {
    /// Invocations refused for concurrency.
    pub const THROTTLES: &str = "lamina_throttles_total";
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
    pub account_id: String,
    pub function_name: String,
    pub qualifier: Option<String>,
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

/// The in-process invoke router.
#[derive(Clone)]
pub struct InvokeRouter {
    metadata: Metadata,
    code: CodeStorage,
    host: ExecHost,
    region: String,
    concurrency: Concurrency,
    queue: Queue,
}

impl InvokeRouter {
    /// Wires the router to its peers.
    pub fn new(metadata: Metadata, code: CodeStorage, host: ExecHost, region: String, queue: Queue) -> Self {
        Self { metadata, code, host, region, concurrency: Concurrency::default(), queue }
    }

    /// Runs one queued event (the async worker's runner); the request id stays the event's.
    pub async fn run_event(&self, event: Event) -> Attempt {
        let req = InvokeRequest {
            account_id: event.account_id,
            function_name: event.function_name,
            qualifier: event.qualifier,
            request_id: event.request_id,
            invocation_type: InvocationType::RequestResponse,
            payload: Bytes::from(event.payload),
            client_context: None,
            tail_log: false,
        };
        match self.invoke(req).await {
            Ok(InvokeOutcome::Ran(ran)) if ran.function_error => Attempt::FunctionError,
            Ok(_) => Attempt::Succeeded,
            Err(ApiError::ResourceNotFound(_)) => Attempt::Gone,
            Err(_) => Attempt::Throttled,
        }
    }

    /// The execution host (health, logs).
    pub fn host(&self) -> &ExecHost {
        &self.host
    }

    /// In-flight invocations of an account.
    pub fn in_flight(&self, account_id: &str) -> usize {
        self.concurrency.in_flight(account_id)
    }

    /// The version to run (an alias resolved, weights applied) and the limits that apply to it.
    async fn resolve(&self, req: &InvokeRequest) -> ApiResult<InvokeTarget> {
        let arn = match &req.qualifier {
            Some(q) => qualified_arn(&self.region, &req.account_id, &req.function_name, q),
            None => function_arn(&self.region, &req.account_id, &req.function_name),
        };
        let not_found = || ApiError::function_not_found(&arn);
        let q = req.qualifier.as_deref().unwrap_or("$LATEST");
        let version = if q == "$LATEST" || q.bytes().all(|b| b.is_ascii_digit()) {
            q.to_owned()
        } else {
            let alias = self.metadata.get_alias(&req.account_id, &req.function_name, q).await?.ok_or_else(not_found)?;
            alias.routing_config.as_deref().and_then(pick_weighted).unwrap_or(alias.function_version)
        };
        self.metadata.invoke_target(&req.account_id, &req.function_name, &version).await?.ok_or_else(not_found)
    }

    /// Runs (or, for DryRun, only checks) one invocation.
    pub async fn invoke(&self, req: InvokeRequest) -> ApiResult<InvokeOutcome> {
        let target = self.resolve(&req).await?;
        match req.invocation_type {
            InvocationType::DryRun => return Ok(InvokeOutcome::Checked),
            InvocationType::Event => {
                self.queue
                    .enqueue(
                        &req.request_id,
                        &req.account_id,
                        &req.function_name,
                        req.qualifier.as_deref(),
                        &req.payload,
                    )
                    .await?;
                return Ok(InvokeOutcome::Queued);
            }
            InvocationType::RequestResponse => {}
        }
        let slot = self.acquire(&target)?;
        let row = target.row;
        let invoked_arn = match &req.qualifier {
            Some(q) => qualified_arn(&self.region, &req.account_id, &req.function_name, q),
            None => function_arn(&self.region, &req.account_id, &req.function_name),
        };
        let executed_version = row.version.clone();
        let snapshot = self.snapshot(row);
        let invocation = Invocation {
            function: snapshot,
            request_id: req.request_id.clone(),
            invoked_arn,
            payload: req.payload,
            client_context: req.client_context,
            cognito_identity: None,
            trace_id: trace_id(),
            tail_log: req.tail_log,
        };
        // The run finishes (and frees its slot and sandbox) even if the caller goes away.
        let host = self.host.clone();
        let result = detach::RunToCompletion::new(async move {
            let result = host.invoke(invocation).await;
            drop(slot);
            result
        })
        .await;
        match result {
            Ok(out) => Ok(InvokeOutcome::Ran(Invoked {
                executed_version,
                payload: out.payload,
                function_error: out.function_error,
                log_tail: out.log_tail,
            })),
            Err(ExecError::NoCapacity) => {
                metrics::counter!(metrics_names::THROTTLES, "reason" => "host").increment(1);
                Err(ApiError::TooManyRequests {
                    message: "Rate Exceeded.".into(),
                    reason: "ConcurrentInvocationLimitExceeded",
                })
            }
            Err(ExecError::Internal(err)) => Err(ApiError::Internal(err.context("run invocation"))),
        }
    }

    /// Takes a slot from the function's reservation, or from the account's unreserved pool.
    fn acquire(&self, target: &InvokeTarget) -> ApiResult<Slot> {
        let throttled = |reason: &'static str| {
            metrics::counter!(metrics_names::THROTTLES, "reason" => reason).increment(1);
            ApiError::TooManyRequests { message: "Rate Exceeded.".into(), reason }
        };
        let account_id = &target.row.account_id;
        if let Some(reserved) = target.reserved {
            let key = format!("{account_id}/{}", target.row.function_name);
            return self
                .concurrency
                .try_acquire(&key, reserved.max(0) as usize)
                .ok_or_else(|| throttled("ReservedFunctionConcurrentInvocationLimitExceeded"));
        }
        let unreserved = target.account_limit - target.reserved_total;
        self.concurrency
            .try_acquire(account_id, unreserved.max(0) as usize)
            .ok_or_else(|| throttled("ConcurrentInvocationLimitExceeded"))
    }

    fn snapshot(&self, row: FunctionRow) -> FunctionSnapshot {
        let environment: BTreeMap<String, String> =
            row.environment.as_deref().and_then(serde_json_map).unwrap_or_default();
        FunctionSnapshot {
            function_arn: function_arn(&self.region, &row.account_id, &row.function_name),
            code_zip_path: self.code.path(&row.code_sha256),
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
        }
    }
}

fn serde_json_map(text: &str) -> Option<BTreeMap<String, String>> {
    serde_json::from_str(text).ok()
}

/// An X-Ray-shaped trace id for the Runtime API.
fn trace_id() -> String {
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
