//! The gRPC server: proto in, the in-process `Queue` call, proto out. Nothing else.

use lamina_rpc::common::{HealthReply, HealthRequest};
use lamina_rpc::queue::async_queue_server::{AsyncQueue as Api, AsyncQueueServer};
use lamina_rpc::queue::{EnqueueReply, EnqueueRequest};
use lamina_rpc::{to_status, transport};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::Queue;

struct Server {
    queue: Queue,
}

#[tonic::async_trait]
impl Api for Server {
    async fn enqueue(&self, request: Request<EnqueueRequest>) -> Result<Response<EnqueueReply>, Status> {
        let r = request.into_inner();
        if r.request_id.is_empty() || r.account_id.is_empty() || r.function_name.is_empty() {
            return Err(Status::invalid_argument("request_id, account_id and function_name are required"));
        }
        self.queue
            .enqueue(&r.request_id, &r.account_id, &r.function_name, r.qualifier.as_deref(), &r.payload)
            .await
            .map_err(to_status)?;
        Ok(Response::new(EnqueueReply {}))
    }

    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthReply>, Status> {
        let pending = self.queue.pending().await.map_err(to_status)?;
        let detail = serde_json::json!({ "pending": pending });
        Ok(Response::new(HealthReply { ready: true, detail_json: detail.to_string() }))
    }
}

/// Serves the queue over gRPC on `listener` until `shutdown`.
pub async fn serve(
    queue: Queue,
    listener: lamina_rpc::transport::Incoming,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let api = AsyncQueueServer::new(Server { queue })
        .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(transport::MAX_MESSAGE_BYTES);
    transport::serve(api, listener, shutdown).await
}
