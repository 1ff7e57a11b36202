//! The queue as the router calls it: in process, or the async-queue service over gRPC.

use bytes::Bytes;
use lamina_common::ApiResult;
use lamina_rpc::queue::EnqueueRequest;
use lamina_rpc::queue::async_queue_client::AsyncQueueClient;
use lamina_rpc::transport::TracedChannel as Channel;
use lamina_rpc::{from_status, transport};

use crate::Queue;

/// A handle on the async queue. Cheap to clone.
#[derive(Clone)]
pub enum QueueClient {
    Local(Queue),
    Grpc(AsyncQueueClient<Channel>),
}

impl From<Queue> for QueueClient {
    fn from(queue: Queue) -> Self {
        Self::Local(queue)
    }
}

impl QueueClient {
    /// A client of the async-queue service at `addr`.
    pub fn connect(addr: &str) -> anyhow::Result<Self> {
        let client = AsyncQueueClient::new(transport::traced_channel(addr)?)
            .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(transport::MAX_MESSAGE_BYTES);
        Ok(Self::Grpc(client))
    }

    /// Stores an event; returns once it is durable.
    pub async fn enqueue(
        &self,
        request_id: &str,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        payload: &Bytes,
    ) -> ApiResult<()> {
        match self {
            Self::Local(queue) => queue.enqueue(request_id, account_id, function_name, qualifier, payload).await,
            Self::Grpc(client) => {
                let request = EnqueueRequest {
                    request_id: request_id.to_owned(),
                    account_id: account_id.to_owned(),
                    function_name: function_name.to_owned(),
                    qualifier: qualifier.map(str::to_owned),
                    payload: payload.clone(),
                };
                client.clone().enqueue(request).await.map_err(|s| from_status(s, "async-queue"))?;
                Ok(())
            }
        }
    }
}
