//! Which checksums to compute while receiving a body.

use s3s::dto::ChecksumAlgorithm;
use s3s::{S3Result, s3_error};

use crate::s3::store::Checksums;

/// A hasher for every checksum the request names: as a header value, as the algorithm
/// (`x-amz-sdk-checksum-algorithm`), or as a promised aws-chunked trailer.
pub(in crate::s3::service) fn checksum_hasher(
    declared: &Checksums,
    algorithm: Option<&ChecksumAlgorithm>,
    trailers: &[String],
) -> S3Result<s3s::checksum::ChecksumHasher> {
    let mut h = s3s::checksum::ChecksumHasher::default();
    let wants = |header: &Option<String>, name: &str, trailer: &str| {
        header.is_some()
            || algorithm.is_some_and(|a| a.as_str().eq_ignore_ascii_case(name))
            || trailers.iter().any(|t| t == trailer)
    };
    if wants(&declared.crc32, "CRC32", "x-amz-checksum-crc32") {
        h.crc32 = Some(Default::default());
    }
    if wants(&declared.crc32c, "CRC32C", "x-amz-checksum-crc32c") {
        h.crc32c = Some(Default::default());
    }
    if wants(&declared.sha1, "SHA1", "x-amz-checksum-sha1") {
        h.sha1 = Some(Default::default());
    }
    if wants(&declared.sha256, "SHA256", "x-amz-checksum-sha256") {
        h.sha256 = Some(Default::default());
    }
    if wants(&declared.crc64nvme, "CRC64NVME", "x-amz-checksum-crc64nvme") {
        h.crc64nvme = Some(Default::default());
    }
    if let Some(a) = algorithm
        && !["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"].iter().any(|n| a.as_str().eq_ignore_ascii_case(n))
    {
        return Err(s3_error!(InvalidRequest, "Checksum algorithm provided is unsupported."));
    }
    Ok(h)
}
