//! Code storage as its peers call it: in process, or over gRPC.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bytes::Bytes;
use lamina_common::{ApiError, ApiResult};
use lamina_rpc::codestorage::code_storage_client::CodeStorageClient;
use lamina_rpc::codestorage::{Chunk, DeleteRequest, FetchRequest, ReadObjectRequest, SettleRequest};
use lamina_rpc::transport::TracedChannel as Channel;
use lamina_rpc::{from_status, transport};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio_stream::StreamExt as _;

use crate::grpc::CHUNK_BYTES;
use crate::s3::ReadError;
use crate::{CodeStorage, StoredCode, ZipLimits};

const PEER: &str = "code-storage";

/// A handle on code storage. Cheap to clone.
#[derive(Clone)]
pub enum CodeClient {
    Local(CodeStorage),
    Grpc { client: CodeStorageClient<Channel>, limits: ZipLimits },
}

impl From<CodeStorage> for CodeClient {
    fn from(storage: CodeStorage) -> Self {
        Self::Local(storage)
    }
}

impl CodeClient {
    /// A client of the code-storage service at `addr`.
    pub fn connect(addr: &str, limits: ZipLimits) -> anyhow::Result<Self> {
        let client = CodeStorageClient::new(transport::traced_channel(addr)?)
            .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(transport::MAX_MESSAGE_BYTES);
        Ok(Self::Grpc { client, limits })
    }

    /// The limits packages are checked against.
    pub fn limits(&self) -> &ZipLimits {
        match self {
            Self::Local(s) => s.limits(),
            Self::Grpc { limits, .. } => limits,
        }
    }

    /// Validates a zip and stores it; nothing is written when validation fails.
    pub async fn put_zip(&self, zip: Bytes) -> ApiResult<StoredCode> {
        match self {
            Self::Local(s) => s.put_zip(zip).await,
            Self::Grpc { client, .. } => {
                let chunks: Vec<Chunk> = (0..zip.len().div_ceil(CHUNK_BYTES).max(1))
                    .map(|i| Chunk { data: zip.slice(i * CHUNK_BYTES..((i + 1) * CHUNK_BYTES).min(zip.len())) })
                    .collect();
                let stored = client
                    .clone()
                    .put_zip(tokio_stream::iter(chunks))
                    .await
                    .map_err(|s| from_status(s, PEER))?
                    .into_inner();
                Ok(StoredCode {
                    sha256_b64: crate::hex_to_b64(&stored.sha256_hex),
                    sha256_hex: stored.sha256_hex,
                    size: stored.size,
                })
            }
        }
    }

    /// Re-writes a blob that a concurrent clean-up removed after validation.
    pub async fn ensure(&self, sha256_hex: &str, zip: &Bytes) -> ApiResult<()> {
        match self {
            Self::Local(s) => Ok(s.ensure(sha256_hex, zip).await?),
            Self::Grpc { .. } => {
                let stored = self.put_zip(zip.clone()).await?;
                if stored.sha256_hex != sha256_hex {
                    return Err(ApiError::Internal(anyhow::anyhow!("code storage stored a different digest")));
                }
                Ok(())
            }
        }
    }

    /// Reads a whole blob (`None`: no such blob).
    pub async fn read(&self, sha256_hex: &str) -> ApiResult<Option<Vec<u8>>> {
        match self {
            Self::Local(s) => match s.read(sha256_hex).await {
                Ok(data) => Ok(Some(data)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ApiError::Internal(anyhow::Error::new(e).context("read package"))),
            },
            Self::Grpc { client, .. } => {
                let request = FetchRequest { sha256_hex: sha256_hex.to_owned() };
                let mut stream = match client.clone().fetch(request).await {
                    Ok(r) => r.into_inner(),
                    Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
                    Err(s) => return Err(from_status(s, PEER)),
                };
                let mut data = Vec::new();
                while let Some(chunk) = stream.next().await {
                    data.extend_from_slice(&chunk.map_err(|s| from_status(s, PEER))?.data);
                }
                Ok(Some(data))
            }
        }
    }

    /// An object of the S3 API as `caller_account` may read it (a deployment package from S3); objects
    /// larger than `max_bytes` are refused unread.
    pub async fn read_object(
        &self,
        caller_account: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        max_bytes: u64,
    ) -> Result<Bytes, ReadError> {
        let client = match self {
            Self::Local(s) => return s.read_object(caller_account, bucket, key, version_id, max_bytes).await,
            Self::Grpc { client, .. } => client,
        };
        let request = ReadObjectRequest {
            caller_account: caller_account.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: version_id.unwrap_or_default().to_owned(),
            max_bytes,
        };
        let failed = |s: tonic::Status| ReadError::Internal(anyhow::anyhow!("{PEER}: read object: {s}"));
        let mut stream = client.clone().read_object(request).await.map_err(failed)?.into_inner();
        let mut data = Vec::new();
        while let Some(part) = stream.next().await {
            let part = part.map_err(failed)?;
            match part.failure.as_str() {
                "" => {}
                "NoSuchBucket" => return Err(ReadError::NoSuchBucket),
                "NoSuchKey" => return Err(ReadError::NoSuchKey),
                "NoSuchVersion" => return Err(ReadError::NoSuchVersion),
                "AccessDenied" => return Err(ReadError::AccessDenied),
                "TooLarge" => return Err(ReadError::TooLarge { size: part.size }),
                other => return Err(ReadError::Internal(anyhow::anyhow!("{PEER}: unknown read failure {other:?}"))),
            }
            if (data.len() + part.data.len()) as u64 > max_bytes {
                return Err(ReadError::TooLarge { size: (data.len() + part.data.len()) as u64 });
            }
            data.extend_from_slice(&part.data);
        }
        Ok(Bytes::from(data))
    }

    /// Removes a blob that metadata reported unreferenced, unless `still_referenced` (checked after
    /// the blob is hidden, see `deletion.rs`) finds a reference that appeared since; a failed
    /// check keeps it. True if the blob was removed.
    pub async fn delete_unless_referenced(
        &self,
        sha256_hex: &str,
        still_referenced: impl Future<Output = ApiResult<bool>>,
    ) -> ApiResult<bool> {
        let Some(tombstone) = self.hide(sha256_hex).await? else { return Ok(false) };
        let keep = match still_referenced.await {
            Ok(referenced) => referenced,
            Err(err) => {
                tracing::warn!(sha256_hex, error = %err, "check blob references; keeping the blob");
                true
            }
        };
        self.settle(&tombstone, keep).await?;
        Ok(!keep)
    }

    async fn hide(&self, sha256_hex: &str) -> ApiResult<Option<String>> {
        match self {
            Self::Local(s) => s.hide(sha256_hex).await.context("hide package").map_err(ApiError::Internal),
            Self::Grpc { client, .. } => {
                let reply = client
                    .clone()
                    .hide(DeleteRequest { sha256_hex: sha256_hex.to_owned() })
                    .await
                    .map_err(|s| from_status(s, PEER))?
                    .into_inner();
                Ok((!reply.tombstone.is_empty()).then_some(reply.tombstone))
            }
        }
    }

    async fn settle(&self, tombstone: &str, keep: bool) -> ApiResult<()> {
        match self {
            Self::Local(s) => s.settle(tombstone, keep).await.context("settle package").map_err(ApiError::Internal),
            Self::Grpc { client, .. } => {
                client
                    .clone()
                    .settle(SettleRequest { tombstone: tombstone.to_owned(), keep })
                    .await
                    .map_err(|s| from_status(s, PEER))?;
                Ok(())
            }
        }
    }

    /// A local path of the package's zip: the blob itself in process; over gRPC, a copy in
    /// `cache_dir`, fetched once and checked against its digest before it is used.
    pub async fn zip_path(&self, sha256_hex: &str, cache_dir: &Path) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(
            sha256_hex.len() == 64 && sha256_hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "code sha256 {sha256_hex:?} is not a digest"
        );
        let client = match self {
            Self::Local(s) => return Ok(s.existing_path(sha256_hex).await),
            Self::Grpc { client, .. } => client,
        };
        let target = cache_dir.join(format!("{sha256_hex}.zip"));
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            return Ok(target);
        }
        tokio::fs::create_dir_all(cache_dir).await.with_context(|| format!("create {}", cache_dir.display()))?;
        let tmp = cache_dir.join(format!(".fetch-{}", uuid::Uuid::new_v4().simple()));
        let fetched = fetch_into(client.clone(), sha256_hex, &tmp).await;
        let result = match fetched {
            Ok(()) => tokio::fs::rename(&tmp, &target).await.context("move fetched package into place"),
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result.map(|()| target)
    }
}

async fn fetch_into(mut client: CodeStorageClient<Channel>, sha256_hex: &str, tmp: &Path) -> anyhow::Result<()> {
    let mut stream = client
        .fetch(FetchRequest { sha256_hex: sha256_hex.to_owned() })
        .await
        .map_err(|s| anyhow::anyhow!("fetch package {sha256_hex}: {s}"))?
        .into_inner();
    let mut file = tokio::fs::File::create(tmp).await.with_context(|| format!("create {}", tmp.display()))?;
    let mut digest = Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|s| anyhow::anyhow!("fetch package {sha256_hex}: {s}"))?;
        digest.update(&chunk.data);
        file.write_all(&chunk.data).await.context("write fetched package")?;
    }
    file.sync_all().await.context("sync fetched package")?;
    let got = hex::encode(digest.finalize());
    anyhow::ensure!(got == sha256_hex, "fetched package has digest {got}, expected {sha256_hex}");
    Ok(())
}
