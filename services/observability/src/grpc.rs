//! The gRPC server: a thin adapter over [`Observability`].

use bytes::Bytes;
use lamina_common::ApiError;
use lamina_rpc::observability::observability_server::{Observability as Api, ObservabilityServer};
use lamina_rpc::observability::{CallReply, CallRequest, IngestReply, IngestRequest};
use lamina_rpc::{to_status, transport};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::Observability;

/// The tonic service, to be served beside the metadata service on its listener.
pub fn service(local: Observability) -> ObservabilityServer<Server> {
    ObservabilityServer::new(Server { local })
        .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(transport::MAX_MESSAGE_BYTES)
}

/// The server half of [`crate::ObservabilityClient::Grpc`].
pub struct Server {
    local: Observability,
}

fn malformed(what: &str, e: serde_json::Error) -> Status {
    to_status(ApiError::Internal(anyhow::anyhow!("observability {what}: request: {e}")))
}

#[tonic::async_trait]
impl Api for Server {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallReply>, Status> {
        let r = request.into_inner();
        let json = serde_json::from_slice(&r.json).map_err(|e| malformed(&r.op, e))?;
        let reply = self.local.dispatch(&r.account_id, &r.op, json).await.map_err(to_status)?;
        let reply = serde_json::to_vec(&reply).map_err(|e| malformed(&r.op, e))?;
        Ok(Response::new(CallReply { json: Bytes::from(reply) }))
    }

    async fn ingest(&self, request: Request<IngestRequest>) -> Result<Response<IngestReply>, Status> {
        let batch: crate::Ingest =
            serde_json::from_slice(&request.into_inner().json).map_err(|e| malformed("ingest", e))?;
        self.local.ingest(batch).await.map_err(to_status)?;
        Ok(Response::new(IngestReply {}))
    }
}

/// Serves observability alone on `listener` until `shutdown` (tests; the metadata process serves
/// [`service`] beside its own).
pub async fn serve(
    local: Observability,
    listener: transport::Incoming,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    transport::serve(service(local), listener, shutdown).await
}
