//! The handle on the observability service: in process, or the metadata process over gRPC.

use std::sync::Arc;

use bytes::Bytes;
use lamina_common::{ApiError, ApiResult};
use lamina_rpc::observability::observability_client::ObservabilityClient as GrpcClient;
use lamina_rpc::observability::{CallRequest, IngestRequest};
use lamina_rpc::replicas::Replicas;
use lamina_rpc::transport::TracedChannel;
use lamina_rpc::{from_status, transport};

use crate::{Ingest, Observability};

/// A handle on logs' and metrics' state. Cheap to clone.
#[derive(Clone)]
pub enum ObservabilityClient {
    Local(Observability),
    Grpc(Arc<Replicas<GrpcClient<TracedChannel>>>),
}

impl From<Observability> for ObservabilityClient {
    fn from(local: Observability) -> Self {
        Self::Local(local)
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("observability {what}: {e}"))
}

impl ObservabilityClient {
    /// A client of the observability service at `addrs` (the metadata processes' gRPC addresses;
    /// calls go round-robin).
    pub fn connect(addrs: &[String]) -> anyhow::Result<Self> {
        let replicas = Replicas::connect(addrs, |a| {
            Ok(GrpcClient::new(transport::traced_channel(a)?)
                .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(transport::MAX_MESSAGE_BYTES))
        })?;
        Ok(Self::Grpc(Arc::new(replicas)))
    }

    /// Runs API operation `op` for `account` (see [`Observability::dispatch`]).
    pub async fn call(&self, account: &str, op: &str, request: serde_json::Value) -> ApiResult<serde_json::Value> {
        match self {
            Self::Local(local) => local.dispatch(account, op, request).await,
            Self::Grpc(replicas) => {
                let json = serde_json::to_vec(&request).map_err(|e| internal(op, e))?;
                let request =
                    CallRequest { op: op.to_owned(), account_id: account.to_owned(), json: Bytes::from(json) };
                let reply = replicas
                    .call(|mut c| {
                        let request = request.clone();
                        async move { c.call(request).await }
                    })
                    .await
                    .map_err(|s| from_status(s, "metadata"))?;
                serde_json::from_slice(&reply.into_inner().json).map_err(|e| internal(op, e))
            }
        }
    }

    /// Stores a shipper's batch (by reference too: a shipper keeps its batch for a retry).
    pub async fn ingest(&self, batch: impl std::borrow::Borrow<Ingest>) -> ApiResult<()> {
        match self {
            Self::Local(local) => local.ingest(batch).await,
            Self::Grpc(replicas) => {
                let batch: &Ingest = std::borrow::Borrow::borrow(&batch);
                let json = serde_json::to_vec(batch).map_err(|e| internal("ingest", e))?;
                let request = IngestRequest { json: Bytes::from(json) };
                replicas
                    .call(|mut c| {
                        let request = request.clone();
                        async move { c.ingest(request).await }
                    })
                    .await
                    .map_err(|s| from_status(s, "metadata"))?;
                Ok(())
            }
        }
    }
}
