//! The gRPC server: proto in, the in-process `CodeStorage` call, proto out. Nothing else.

use std::pin::Pin;

use bytes::Bytes;
use lamina_rpc::codestorage::code_storage_server::{CodeStorage as Api, CodeStorageServer};
use lamina_rpc::codestorage::{
    Chunk, DeleteReply, DeleteRequest, FetchRequest, HideReply, ObjectPart, ReadObjectRequest, SettleRequest,
    StoredCode as StoredProto,
};
use lamina_rpc::common::{HealthReply, HealthRequest};
use lamina_rpc::{to_status, transport};
use tokio_stream::{Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::CodeStorage;
use crate::s3::ReadError;

/// Bytes per streamed chunk.
pub(crate) const CHUNK_BYTES: usize = 1024 * 1024;

struct Server {
    storage: CodeStorage,
}

fn valid_sha(sha: &str) -> Result<(), Status> {
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Status::invalid_argument("sha256_hex must be 64 lowercase hex digits"))
    }
}

#[tonic::async_trait]
impl Api for Server {
    async fn put_zip(&self, request: Request<Streaming<Chunk>>) -> Result<Response<StoredProto>, Status> {
        let mut stream = request.into_inner();
        let limit = self.storage.limits().max_zipped as usize;
        let mut zip = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            // Twice the limit is still read, so validation answers with AWS's error; more is abuse.
            if zip.len() + chunk.data.len() > limit.saturating_mul(2) {
                let message = format!("Zipped size must be smaller than {limit} bytes");
                return Err(to_status(lamina_common::ApiError::RequestTooLarge(message)));
            }
            zip.extend_from_slice(&chunk.data);
        }
        let stored = self.storage.put_zip(Bytes::from(zip)).await.map_err(to_status)?;
        Ok(Response::new(StoredProto { sha256_hex: stored.sha256_hex, size: stored.size }))
    }

    type FetchStream = Pin<Box<dyn Stream<Item = Result<Chunk, Status>> + Send>>;

    async fn fetch(&self, request: Request<FetchRequest>) -> Result<Response<Self::FetchStream>, Status> {
        let sha = request.into_inner().sha256_hex;
        valid_sha(&sha)?;
        let file = match tokio::fs::File::open(self.storage.existing_path(&sha).await).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Status::not_found(format!("no package {sha}")));
            }
            Err(e) => return Err(Status::internal(format!("open package: {e}"))),
        };
        let chunks = tokio_util::io::ReaderStream::with_capacity(file, CHUNK_BYTES)
            .map(|r| r.map(|data| Chunk { data }).map_err(|e| Status::internal(format!("read package: {e}"))));
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn hide(&self, request: Request<DeleteRequest>) -> Result<Response<HideReply>, Status> {
        let sha = request.into_inner().sha256_hex;
        valid_sha(&sha)?;
        let tombstone = self.storage.hide(&sha).await.map_err(|e| Status::internal(format!("hide package: {e}")))?;
        Ok(Response::new(HideReply { tombstone: tombstone.unwrap_or_default() }))
    }

    async fn settle(&self, request: Request<SettleRequest>) -> Result<Response<DeleteReply>, Status> {
        let SettleRequest { tombstone, keep } = request.into_inner();
        self.storage.settle(&tombstone, keep).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => Status::invalid_argument(format!("settle package: {e}")),
            _ => Status::internal(format!("settle package: {e}")),
        })?;
        Ok(Response::new(DeleteReply {}))
    }

    type ReadObjectStream = Pin<Box<dyn Stream<Item = Result<ObjectPart, Status>> + Send>>;

    async fn read_object(
        &self,
        request: Request<ReadObjectRequest>,
    ) -> Result<Response<Self::ReadObjectStream>, Status> {
        let r = request.into_inner();
        let version = (!r.version_id.is_empty()).then_some(r.version_id.as_str());
        let read = self.storage.read_object(&r.caller_account, &r.bucket, &r.key, version, r.max_bytes).await;
        let failure = |name: &str, size: u64| ObjectPart { data: Bytes::new(), failure: name.to_owned(), size };
        let parts = match read {
            Ok(data) => (0..data.len().div_ceil(CHUNK_BYTES))
                .map(|i| ObjectPart {
                    data: data.slice(i * CHUNK_BYTES..((i + 1) * CHUNK_BYTES).min(data.len())),
                    failure: String::new(),
                    size: 0,
                })
                .collect(),
            Err(ReadError::NoSuchBucket) => vec![failure("NoSuchBucket", 0)],
            Err(ReadError::NoSuchKey) => vec![failure("NoSuchKey", 0)],
            Err(ReadError::NoSuchVersion) => vec![failure("NoSuchVersion", 0)],
            Err(ReadError::AccessDenied) => vec![failure("AccessDenied", 0)],
            Err(ReadError::TooLarge { size }) => vec![failure("TooLarge", size)],
            Err(ReadError::Internal(e)) => return Err(Status::internal(format!("read object: {e:#}"))),
        };
        Ok(Response::new(Box::pin(tokio_stream::iter(parts.into_iter().map(Ok)))))
    }

    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthReply>, Status> {
        Ok(Response::new(HealthReply { ready: true, detail_json: "{}".into() }))
    }
}

/// Serves code storage over gRPC on `listener` until `shutdown`.
pub async fn serve(
    storage: CodeStorage,
    listener: lamina_rpc::transport::Incoming,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let api = CodeStorageServer::new(Server { storage })
        .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(transport::MAX_MESSAGE_BYTES);
    transport::serve(api, listener, shutdown).await
}
