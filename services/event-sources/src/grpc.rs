//! The gRPC server: the operation's name and JSON in, [`EventSources::dispatch`], JSON out.

use bytes::Bytes;
use lamina_rpc::events::event_sources_server::{EventSources as Api, EventSourcesServer};
use lamina_rpc::events::{CallReply, CallRequest};
use lamina_rpc::{to_status, transport};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::EventSources;

/// The tonic service, to be served beside the metadata service on its listener.
pub fn service(local: EventSources) -> EventSourcesServer<Server> {
    EventSourcesServer::new(Server { local })
        .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(transport::MAX_MESSAGE_BYTES)
}

/// The server half of [`crate::EventSourcesClient::Grpc`].
pub struct Server {
    local: EventSources,
}

#[tonic::async_trait]
impl Api for Server {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallReply>, Status> {
        let r = request.into_inner();
        let json = self.local.dispatch(&r.op, &r.json).await.map_err(to_status)?;
        Ok(Response::new(CallReply { json: Bytes::from(json) }))
    }
}

/// Serves event sources alone on `listener` until `shutdown` (tests; the metadata process serves
/// [`service`] beside its own).
pub async fn serve(
    local: EventSources,
    listener: transport::Incoming,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    transport::serve(service(local), listener, shutdown).await
}
