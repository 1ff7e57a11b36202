//! The router as the frontend and the async queue call it: in process or over gRPC; and its gRPC
//! server (proto in, the in-process call, proto out).

use lamina_async_queue::{Attempt, Event};
use lamina_common::{AccountId, ApiResult, FunctionName, Qualifier};
use lamina_exec_host::LogEvent;
use lamina_rpc::common::{HealthReply, HealthRequest, LogEvent as LogEventProto};
use lamina_rpc::replicas::Replicas;
use lamina_rpc::router::invoke_reply::Outcome;
use lamina_rpc::router::invoke_router_client::InvokeRouterClient;
use lamina_rpc::router::invoke_router_server::{InvokeRouter as Api, InvokeRouterServer};
use lamina_rpc::router::{self as proto, InvokeReply, LogEventsReply, LogEventsRequest};
use lamina_rpc::transport::TracedChannel as Channel;
use lamina_rpc::{from_status, to_status, transport};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{InvocationType, InvokeOutcome, InvokeRequest, InvokeRouter, Invoked, attempt_of, event_request};

const PEER: &str = "invoke-router";

fn type_proto(t: InvocationType) -> proto::InvocationType {
    match t {
        InvocationType::RequestResponse => proto::InvocationType::RequestResponse,
        InvocationType::Event => proto::InvocationType::Event,
        InvocationType::DryRun => proto::InvocationType::DryRun,
    }
}

fn request_proto(r: InvokeRequest) -> proto::InvokeRequest {
    proto::InvokeRequest {
        account_id: r.account_id.to_string(),
        function_name: r.function_name.to_string(),
        qualifier: r.qualifier.map(|q| q.to_string()),
        request_id: r.request_id,
        invocation_type: type_proto(r.invocation_type).into(),
        payload: r.payload,
        client_context: r.client_context,
        tail_log: r.tail_log,
    }
}

fn request_domain(r: proto::InvokeRequest) -> Result<InvokeRequest, Status> {
    let invocation_type = match proto::InvocationType::try_from(r.invocation_type) {
        Ok(proto::InvocationType::RequestResponse) => InvocationType::RequestResponse,
        Ok(proto::InvocationType::Event) => InvocationType::Event,
        Ok(proto::InvocationType::DryRun) => InvocationType::DryRun,
        _ => return Err(Status::invalid_argument("invocation_type is required")),
    };
    if r.request_id.is_empty() {
        return Err(Status::invalid_argument("request_id is required"));
    }
    Ok(InvokeRequest {
        account_id: AccountId::parse(&r.account_id).map_err(to_status)?,
        function_name: FunctionName::parse(&r.function_name).map_err(to_status)?,
        qualifier: r.qualifier.as_deref().map(Qualifier::parse).transpose().map_err(to_status)?,
        request_id: r.request_id,
        invocation_type,
        payload: r.payload,
        client_context: r.client_context,
        tail_log: r.tail_log,
    })
}

fn outcome_proto(o: InvokeOutcome) -> InvokeReply {
    let outcome = match o {
        InvokeOutcome::Ran(r) => Outcome::Ran(proto::Ran {
            executed_version: r.executed_version,
            payload: r.payload,
            function_error: r.function_error,
            log_tail: r.log_tail,
        }),
        InvokeOutcome::Queued => Outcome::Queued(true),
        InvokeOutcome::Checked => Outcome::Checked(true),
    };
    InvokeReply { outcome: Some(outcome) }
}

fn outcome_domain(r: InvokeReply) -> ApiResult<InvokeOutcome> {
    Ok(match r.outcome {
        Some(Outcome::Ran(r)) => InvokeOutcome::Ran(Invoked {
            executed_version: r.executed_version,
            payload: r.payload,
            function_error: r.function_error,
            log_tail: r.log_tail,
        }),
        Some(Outcome::Queued(_)) => InvokeOutcome::Queued,
        Some(Outcome::Checked(_)) => InvokeOutcome::Checked,
        None => return Err(anyhow::anyhow!("{PEER}: reply without an outcome").into()),
    })
}

struct Server {
    router: InvokeRouter,
}

#[tonic::async_trait]
impl Api for Server {
    async fn invoke(&self, request: Request<proto::InvokeRequest>) -> Result<Response<InvokeReply>, Status> {
        let req = request_domain(request.into_inner())?;
        // The router's own RunToCompletion keeps the run going if this call is dropped.
        let out = self.router.invoke(req).await.map_err(to_status)?;
        Ok(Response::new(outcome_proto(out)))
    }

    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthReply>, Status> {
        let detail = self.router.execution_health().await.map_err(to_status)?;
        Ok(Response::new(HealthReply { ready: true, detail_json: detail.to_string() }))
    }

    async fn log_events(&self, request: Request<LogEventsRequest>) -> Result<Response<LogEventsReply>, Status> {
        let r = request.into_inner();
        let events =
            self.router.log_events(&r.account_id, &r.function_name, r.limit as usize).await.map_err(to_status)?;
        let events = events
            .into_iter()
            .map(|e| LogEventProto { timestamp_ms: e.timestamp_ms, log_stream: e.log_stream, message: e.message })
            .collect();
        Ok(Response::new(LogEventsReply { events }))
    }
}

/// Serves the router over gRPC on `listener` until `shutdown`.
pub async fn serve(
    router: InvokeRouter,
    listener: lamina_rpc::transport::Incoming,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let api = InvokeRouterServer::new(Server { router })
        .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(transport::MAX_MESSAGE_BYTES);
    transport::serve(api, listener, shutdown).await
}

/// The invoke router as its peers call it. Cheap to clone.
#[derive(Clone)]
pub enum RouterClient {
    Local(std::sync::Arc<InvokeRouter>),
    /// Routers behind one address or several (a call goes to the next one round-robin).
    Grpc(std::sync::Arc<Replicas<InvokeRouterClient<Channel>>>),
}

impl From<InvokeRouter> for RouterClient {
    fn from(router: InvokeRouter) -> Self {
        Self::Local(std::sync::Arc::new(router))
    }
}

impl RouterClient {
    /// A client of the routers at `addrs` (round-robin; the next one when a router cannot be reached).
    pub fn connect(addrs: &[String]) -> anyhow::Result<Self> {
        let replicas = Replicas::connect(addrs, |a| {
            Ok(InvokeRouterClient::new(transport::traced_channel(a)?)
                .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(transport::MAX_MESSAGE_BYTES))
        })?;
        Ok(Self::Grpc(std::sync::Arc::new(replicas)))
    }

    /// Runs (or queues, or checks) one invocation.
    pub async fn invoke(&self, req: InvokeRequest) -> ApiResult<InvokeOutcome> {
        match self {
            Self::Local(router) => router.invoke(req).await,
            Self::Grpc(routers) => {
                let request = request_proto(req);
                let reply = routers
                    .call(|mut c| {
                        let request = request.clone();
                        async move { c.invoke(request).await }
                    })
                    .await
                    .map_err(|s| from_status(s, PEER))?;
                outcome_domain(reply.into_inner())
            }
        }
    }

    /// Runs one queued event (the async worker's runner).
    pub async fn run_event(&self, event: Event) -> Attempt {
        match event_request(event) {
            Ok(req) => attempt_of(self.invoke(req).await),
            Err(e) => attempt_of(Err(e)),
        }
    }

    /// A function's log events from every execution host, oldest first.
    pub async fn log_events(&self, account_id: &str, function_name: &str, limit: usize) -> ApiResult<Vec<LogEvent>> {
        match self {
            Self::Local(router) => router.log_events(account_id, function_name, limit).await,
            Self::Grpc(routers) => {
                let request = LogEventsRequest {
                    account_id: account_id.to_owned(),
                    function_name: function_name.to_owned(),
                    limit: u32::try_from(limit).unwrap_or(u32::MAX),
                };
                let reply = routers
                    .call(|mut c| {
                        let request = request.clone();
                        async move { c.log_events(request).await }
                    })
                    .await
                    .map_err(|s| from_status(s, PEER))?;
                Ok(reply
                    .into_inner()
                    .events
                    .into_iter()
                    .map(|e| LogEvent { timestamp_ms: e.timestamp_ms, log_stream: e.log_stream, message: e.message })
                    .collect())
            }
        }
    }

    /// Health of the execution side: runtimes available and one document per host.
    pub async fn health(&self) -> ApiResult<serde_json::Value> {
        match self {
            Self::Local(router) => router.execution_health().await,
            Self::Grpc(routers) => {
                let reply = routers
                    .call(|mut c| async move { c.health(HealthRequest {}).await })
                    .await
                    .map_err(|s| from_status(s, PEER))?;
                serde_json::from_str(&reply.into_inner().detail_json)
                    .map_err(|e| anyhow::anyhow!("{PEER}: health detail: {e}").into())
            }
        }
    }
}
