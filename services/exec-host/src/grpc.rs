//! The execution host as its router calls it: in process or over gRPC, and the gRPC server (proto
//! in, the in-process call, proto out).

use lamina_common::FunctionSnapshot;
use lamina_common::session::SessionCredentials;
use lamina_rpc::common::{HealthReply, HealthRequest, LogEvent as LogEventProto};
use lamina_rpc::exechost::exec_host_client::ExecHostClient;
use lamina_rpc::exechost::exec_host_server::{ExecHost as Api, ExecHostServer};
use lamina_rpc::exechost::{InvokeReply, InvokeRequest, LogEventsReply, LogEventsRequest};
use lamina_rpc::status::{never_connected, service_error, service_status};
use lamina_rpc::transport;
use lamina_rpc::transport::TracedChannel as Channel;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};

use crate::{ExecError, ExecHost, Invocation, InvokeOutcome, LogEvent};

/// Error types of `ExecError` on the wire (not AWS types: the router turns them into those).
mod wire {
    pub const DRAINING: &str = "lamina.exechost.Draining";
    pub const NO_CAPACITY: &str = "lamina.exechost.NoCapacity";
    pub const ISOLATION: &str = "lamina.exechost.IsolationUnavailable";
    pub const RUNTIME: &str = "lamina.exechost.RuntimeNotInstalled";
    pub const INTERNAL: &str = "lamina.exechost.Internal";
}

fn exec_status(err: ExecError) -> Status {
    let (code, ty) = match &err {
        ExecError::Draining => (Code::Unavailable, wire::DRAINING),
        ExecError::NoCapacity => (Code::ResourceExhausted, wire::NO_CAPACITY),
        ExecError::IsolationUnavailable(_) => (Code::FailedPrecondition, wire::ISOLATION),
        ExecError::RuntimeNotInstalled(_) => (Code::FailedPrecondition, wire::RUNTIME),
        ExecError::Unreachable(_) | ExecError::Internal(_) => (Code::Internal, wire::INTERNAL),
    };
    let message = match &err {
        ExecError::IsolationUnavailable(m) | ExecError::RuntimeNotInstalled(m) => m.clone(),
        other => format!("{other:#}"),
    };
    service_status(code, ty, &message, "")
}

fn exec_error(status: Status, host: &str) -> ExecError {
    match service_error(&status) {
        Some(e) => match e.error_type.as_str() {
            wire::DRAINING => ExecError::Draining,
            wire::NO_CAPACITY => ExecError::NoCapacity,
            wire::ISOLATION => ExecError::IsolationUnavailable(e.message),
            wire::RUNTIME => ExecError::RuntimeNotInstalled(e.message),
            _ => ExecError::Internal(anyhow::anyhow!("execution host {host}: {}", e.message)),
        },
        None if never_connected(&status) => {
            ExecError::Unreachable(format!("execution host {host}: {NOT_CONNECTED}: {}", status.message()))
        }
        None => ExecError::Unreachable(format!("execution host {host}: {}", status.message())),
    }
}

/// Marks an [`ExecError::Unreachable`] whose host was never reached, so the invocation did not start.
pub const NOT_CONNECTED: &str = "could not connect";

fn snapshot_proto(f: FunctionSnapshot) -> lamina_rpc::common::FunctionSnapshot {
    lamina_rpc::common::FunctionSnapshot {
        account_id: f.account_id,
        function_name: f.function_name,
        function_arn: f.function_arn,
        version: f.version,
        revision_id: f.revision_id,
        runtime: f.runtime,
        handler: f.handler,
        memory_mb: f.memory_mb,
        timeout_s: f.timeout_s,
        environment: f.environment.into_iter().collect(),
        code_sha256_hex: f.code_sha256_hex,
        ephemeral_storage_mb: f.ephemeral_storage_mb,
    }
}

fn snapshot_domain(f: lamina_rpc::common::FunctionSnapshot) -> Result<FunctionSnapshot, Status> {
    let digest_ok = f.code_sha256_hex.len() == 64 && f.code_sha256_hex.bytes().all(|b| b.is_ascii_hexdigit());
    if f.account_id.is_empty() || f.function_name.is_empty() || f.version.is_empty() || !digest_ok {
        return Err(Status::invalid_argument("function snapshot lacks its account, name, version or code digest"));
    }
    Ok(FunctionSnapshot {
        account_id: f.account_id,
        function_name: f.function_name,
        function_arn: f.function_arn,
        version: f.version,
        revision_id: f.revision_id,
        runtime: f.runtime,
        handler: f.handler,
        memory_mb: f.memory_mb,
        timeout_s: f.timeout_s,
        environment: f.environment.into_iter().collect(),
        code_sha256_hex: f.code_sha256_hex,
        ephemeral_storage_mb: f.ephemeral_storage_mb,
    })
}

fn credentials_proto(c: SessionCredentials) -> lamina_rpc::exechost::SessionCredentials {
    lamina_rpc::exechost::SessionCredentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: c.session_token,
        expiration: c.expiration,
    }
}

fn credentials_domain(c: lamina_rpc::exechost::SessionCredentials) -> SessionCredentials {
    SessionCredentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: c.session_token,
        expiration: c.expiration,
    }
}

fn log_proto(e: LogEvent) -> LogEventProto {
    LogEventProto { timestamp_ms: e.timestamp_ms, log_stream: e.log_stream, message: e.message }
}

fn log_domain(e: LogEventProto) -> LogEvent {
    LogEvent { timestamp_ms: e.timestamp_ms, log_stream: e.log_stream, message: e.message }
}

struct Server {
    host: ExecHost,
}

#[tonic::async_trait]
impl Api for Server {
    async fn invoke(&self, request: Request<InvokeRequest>) -> Result<Response<InvokeReply>, Status> {
        let r = request.into_inner();
        let function = snapshot_domain(r.function.ok_or_else(|| Status::invalid_argument("function is required"))?)?;
        let invocation = Invocation {
            function,
            request_id: r.request_id,
            invoked_arn: r.invoked_arn,
            payload: r.payload,
            client_context: r.client_context,
            cognito_identity: r.cognito_identity,
            trace_id: r.trace_id,
            tail_log: r.tail_log,
            account_share_percent: r.account_share_percent,
            credentials: r.credentials.map(credentials_domain),
        };
        // The run finishes (freeing its sandbox) even if the router's call is dropped.
        let host = self.host.clone();
        let run = async move { host.invoke(invocation).await };
        let out = tokio::spawn(tracing::Instrument::in_current_span(run))
            .await
            .map_err(|e| Status::internal(format!("invocation task: {e}")))?
            .map_err(exec_status)?;
        Ok(Response::new(InvokeReply {
            payload: out.payload,
            function_error: out.function_error,
            log_tail: out.log_tail,
            duration_ms: out.duration_ms,
            init_duration_ms: out.init_duration_ms,
            max_memory_used_mb: out.max_memory_used_mb,
        }))
    }

    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthReply>, Status> {
        let health = self.host.health();
        let ready = health["isolation"]["complete"].as_bool().unwrap_or(false)
            || !health["isolation"]["required"].as_bool().unwrap_or(true);
        Ok(Response::new(HealthReply { ready, detail_json: health.to_string() }))
    }

    async fn log_events(&self, request: Request<LogEventsRequest>) -> Result<Response<LogEventsReply>, Status> {
        let r = request.into_inner();
        let events = self.host.log_events(&r.account_id, &r.function_name, r.limit as usize);
        Ok(Response::new(LogEventsReply { events: events.into_iter().map(log_proto).collect() }))
    }
}

/// Serves the host over gRPC on `listener` until `shutdown`.
pub async fn serve(
    host: ExecHost,
    listener: lamina_rpc::transport::Incoming,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let api = ExecHostServer::new(Server { host })
        .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(transport::MAX_MESSAGE_BYTES);
    transport::serve(api, listener, shutdown).await
}

/// An execution host as a router calls it. Cheap to clone.
#[derive(Clone)]
pub enum HostClient {
    Local(ExecHost),
    Grpc { id: String, client: ExecHostClient<Channel> },
}

impl HostClient {
    /// A client of the host `id` serving gRPC at `addr`.
    pub fn connect(id: &str, addr: &str) -> anyhow::Result<Self> {
        let client = ExecHostClient::new(transport::traced_channel(addr)?)
            .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(transport::MAX_MESSAGE_BYTES);
        Ok(Self::Grpc { id: id.to_owned(), client })
    }

    /// The host's id (`local` in process).
    pub fn id(&self) -> &str {
        match self {
            Self::Local(_) => "local",
            Self::Grpc { id, .. } => id,
        }
    }

    /// Runs one invocation to completion (function errors are `Ok` with `function_error`).
    pub async fn invoke(&self, inv: Invocation) -> Result<InvokeOutcome, ExecError> {
        match self {
            Self::Local(host) => host.invoke(inv).await,
            Self::Grpc { id, client } => {
                let request = InvokeRequest {
                    function: Some(snapshot_proto(inv.function)),
                    request_id: inv.request_id,
                    invoked_arn: inv.invoked_arn,
                    payload: inv.payload,
                    client_context: inv.client_context,
                    cognito_identity: inv.cognito_identity,
                    trace_id: inv.trace_id,
                    tail_log: inv.tail_log,
                    account_share_percent: inv.account_share_percent,
                    credentials: inv.credentials.map(credentials_proto),
                };
                let r = client.clone().invoke(request).await.map_err(|s| exec_error(s, id))?.into_inner();
                Ok(InvokeOutcome {
                    payload: r.payload,
                    function_error: r.function_error,
                    log_tail: r.log_tail,
                    duration_ms: r.duration_ms,
                    init_duration_ms: r.init_duration_ms,
                    max_memory_used_mb: r.max_memory_used_mb,
                })
            }
        }
    }

    /// The host's health document.
    pub async fn health(&self) -> anyhow::Result<serde_json::Value> {
        match self {
            Self::Local(host) => Ok(host.health()),
            Self::Grpc { id, client } => {
                let reply = client
                    .clone()
                    .health(HealthRequest {})
                    .await
                    .map_err(|s| anyhow::anyhow!("health of execution host {id}: {s}"))?
                    .into_inner();
                Ok(serde_json::from_str(&reply.detail_json)?)
            }
        }
    }

    /// Stored log events of a function on this host, newest last (at most `limit`).
    pub async fn log_events(
        &self,
        account_id: &str,
        function_name: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<LogEvent>> {
        match self {
            Self::Local(host) => Ok(host.log_events(account_id, function_name, limit)),
            Self::Grpc { id, client } => {
                let request = LogEventsRequest {
                    account_id: account_id.to_owned(),
                    function_name: function_name.to_owned(),
                    limit: u32::try_from(limit).unwrap_or(u32::MAX),
                };
                let reply = client
                    .clone()
                    .log_events(request)
                    .await
                    .map_err(|s| anyhow::anyhow!("logs of execution host {id}: {s}"))?
                    .into_inner();
                Ok(reply.events.into_iter().map(log_domain).collect())
            }
        }
    }
}
