//! Event sources: what calls functions besides a person.
//!
//! - Schedules: an EventBridge-compatible subset (rules with `rate(...)` / `cron(...)` and their
//!   targets, [`rules`]) fired by the [`scheduler`], exactly one firing per tick across replicas.
//! - Event-source mappings ([`mappings`]): pollers ([`pollers`]) that read Kinesis shards, SQS queues
//!   and RabbitMQ queues and invoke functions with batches, one poller per shard or queue across
//!   replicas (database leases), checkpoints in the database.
//! - Async invocation settings ([`invoke_config`]): retries, event age, destinations and dead-letter
//!   queues, applied to every Event invocation by [`destinations`].
//!
//! The state lives in the metadata database; [`EventSources`] is the in-process owner of it and
//! [`EventSourcesClient`] reaches it in process or over gRPC (the metadata process serves it). The
//! runtime parts (scheduler, pollers, event runner) run inside the async-queue service.

pub mod arn;
#[cfg(feature = "runtime")]
pub mod aws;
#[cfg(feature = "runtime")]
pub mod destinations;
mod grpc;
pub mod invoke_config;
#[cfg(feature = "runtime")]
pub mod invoker;
pub mod mappings;
#[cfg(feature = "runtime")]
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod pollers;
pub mod rules;
pub mod schedule;
#[cfg(feature = "runtime")]
pub mod scheduler;

use bytes::Bytes;
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::Store;
use lamina_rpc::events::CallRequest;
use lamina_rpc::events::event_sources_client::EventSourcesClient as GrpcClient;
use lamina_rpc::replicas::Replicas;
use lamina_rpc::transport::TracedChannel;
use lamina_rpc::{from_status, transport};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use grpc::{serve, service};

/// The owner of event sources' state (in process). Cheap to clone.
#[derive(Clone)]
pub struct EventSources {
    pub(crate) store: Store,
    pub(crate) region: String,
}

impl EventSources {
    /// Event sources on the metadata database (its migrations create the tables).
    pub fn new(store: Store, region: impl Into<String>) -> Self {
        Self { store, region: region.into() }
    }

    /// The region ARNs are minted in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Runs operation `op` on its JSON request; the reply is JSON. Each module answers the
    /// operations it owns (`rules`, `mappings`, `invoke_config`, the Kinesis poller's `FunctionRole`).
    pub async fn dispatch(&self, op: &str, json: &[u8]) -> ApiResult<Vec<u8>> {
        if let Some(reply) = rules::dispatch(self, op, json).await {
            return reply;
        }
        if let Some(reply) = mappings::dispatch(self, op, json).await {
            return reply;
        }
        if let Some(reply) = invoke_config::dispatch(self, op, json).await {
            return reply;
        }
        #[cfg(feature = "runtime")]
        if let Some(reply) = pollers::kinesis::role::dispatch(self, op, json).await {
            return reply;
        }
        Err(ApiError::Internal(anyhow::anyhow!("event sources: unknown operation {op}")))
    }
}

/// Parses a request of `op` (a peer's bug if it fails: both ends are this crate).
pub(crate) fn decode<T: DeserializeOwned>(op: &str, json: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(json).map_err(|e| ApiError::Internal(anyhow::anyhow!("event sources {op}: request: {e}")))
}

/// Encodes a reply.
pub(crate) fn encode<T: Serialize>(value: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ApiError::Internal(anyhow::anyhow!("event sources: encode reply: {e}")))
}

/// A handle on event sources' state: in process, or the metadata process over gRPC. Cheap to clone.
#[derive(Clone)]
pub enum EventSourcesClient {
    Local(EventSources),
    Grpc(std::sync::Arc<Replicas<GrpcClient<TracedChannel>>>),
}

impl From<EventSources> for EventSourcesClient {
    fn from(local: EventSources) -> Self {
        Self::Local(local)
    }
}

impl EventSourcesClient {
    /// A client of the event-sources service at `addrs` (the metadata processes' gRPC addresses;
    /// calls go round-robin).
    pub fn connect(addrs: &[String]) -> anyhow::Result<Self> {
        let replicas = Replicas::connect(addrs, |a| {
            Ok(GrpcClient::new(transport::traced_channel(a)?)
                .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(transport::MAX_MESSAGE_BYTES))
        })?;
        Ok(Self::Grpc(std::sync::Arc::new(replicas)))
    }

    /// Calls operation `op` with `request`; typed wrappers in each module call this.
    pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: &str,
        request: &Req,
    ) -> ApiResult<Resp> {
        let json = encode(request)?;
        let reply = match self {
            Self::Local(local) => local.dispatch(op, &json).await?,
            Self::Grpc(replicas) => {
                let request = CallRequest { op: op.to_owned(), json: Bytes::from(json) };
                let reply = replicas
                    .call(|mut c| {
                        let request = request.clone();
                        async move { c.call(request).await }
                    })
                    .await
                    .map_err(|s| from_status(s, "metadata"))?;
                reply.into_inner().json.to_vec()
            }
        };
        serde_json::from_slice(&reply)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("event sources {op}: reply: {e}")))
    }
}
