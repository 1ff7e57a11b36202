//! GetFunction's `Code.Location`: a SigV4 presigned GET on code storage's S3 API, signed with the
//! reserved code-download key, for `/<code bucket>/<account>/<sha256>.zip`. The S3 API lets that key
//! read nothing but package blobs, so the URL reveals no tenant's object and no tenant's key.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings, UriPathNormalizationMode,
    sign,
};
use lamina_code_storage::s3::CodeDownloads;

/// How long a URL stays valid (the guide: up to 10 minutes).
pub const VALIDITY_SECS: u64 = 600;

/// Where and as whom `Code.Location` URLs are signed.
#[derive(Debug, Clone)]
pub struct CodeLocations {
    /// Base URL of the S3 API as callers reach it, e.g. `http://127.0.0.1:9002`.
    pub public_url: String,
    /// The reserved principal the S3 API serves package blobs to.
    pub key: CodeDownloads,
}

impl CodeLocations {
    /// A presigned URL of the package `sha256_hex` of `account`, valid [`VALIDITY_SECS`] from now.
    pub fn location(&self, region: &str, account: &str, sha256_hex: &str) -> anyhow::Result<String> {
        self.location_at(region, account, sha256_hex, SystemTime::now())
    }

    /// As [`location`](Self::location), signed as of `now`.
    pub fn location_at(
        &self,
        region: &str,
        account: &str,
        sha256_hex: &str,
        now: SystemTime,
    ) -> anyhow::Result<String> {
        let base = self.public_url.trim_end_matches('/');
        let url = format!("{base}/{}/{account}/{sha256_hex}.zip", self.key.bucket);
        let uri: http::Uri = url.parse().with_context(|| format!("code location {url:?}"))?;
        let host = uri.authority().context("the S3 public URL has no host")?.to_string();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(VALIDITY_SECS));
        // As S3 signs: paths are neither normalised nor encoded twice.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let identity: aws_smithy_runtime_api::client::identity::Identity = aws_credential_types::Credentials::new(
            &self.key.access_key_id,
            &self.key.secret_access_key,
            None,
            None,
            "lamina-code-downloads",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .context("code location signing parameters")?
            .into();
        let signable =
            SignableRequest::new("GET", &url, [("host", host.as_str())].into_iter(), SignableBody::UnsignedPayload)
                .context("code location request")?;
        let (instructions, _) = sign(signable, &params).context("sign code location")?.into_parts();
        let mut request = http::Request::builder().method("GET").uri(&url).body(()).context("code location URL")?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request.uri().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations() -> CodeLocations {
        CodeLocations {
            public_url: "http://127.0.0.1:9002/".into(),
            key: CodeDownloads {
                access_key_id: "LCDL0123456789ABCDEF".into(),
                secret_access_key: "secret".into(),
                bucket: "lamina-code-us-east-1".into(),
            },
        }
    }

    #[test]
    fn location_is_a_presigned_get_of_the_package() {
        let url = locations().location("us-east-1", "123456789012", &"a".repeat(64)).expect("location");
        let prefix = format!("http://127.0.0.1:9002/lamina-code-us-east-1/123456789012/{}.zip?", "a".repeat(64));
        assert!(url.starts_with(&prefix), "{url}");
        for part in ["X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Expires=600", "X-Amz-Signature=", "X-Amz-Credential="] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
        assert!(url.contains("LCDL0123456789ABCDEF%2F"), "signed with the code-download key: {url}");
        assert!(!url.contains("secret"), "{url}");
    }
}
