//! AWS Signature Version 4 verification: the request is re-signed with the caller's secret at the
//! caller's own timestamp over the headers it signed, and the signatures are compared.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use chrono::{DateTime, NaiveDateTime, Utc};
use http::{HeaderMap, Method, Uri};
use lamina_common::ApiError;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Largest difference between the caller's clock and ours.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// What a request claims about its signature, before the secret is known.
#[derive(Debug, Clone)]
pub struct SignatureClaim {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    pub amz_date: String,
    /// `Some(seconds)` for the presigned (query-string) form.
    pub expires: Option<u64>,
}

fn incomplete(msg: &str) -> ApiError {
    ApiError::IncompleteSignature(msg.to_owned())
}

/// Extracts the claim from the `Authorization` header or the `X-Amz-*` query parameters.
pub fn parse_claim(headers: &HeaderMap, uri: &Uri) -> Result<SignatureClaim, ApiError> {
    if let Some(auth) = headers.get(http::header::AUTHORIZATION) {
        let auth = auth.to_str().map_err(|_| incomplete("Authorization header is not valid text."))?;
        return parse_header_claim(auth, headers);
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| query.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let Some(signature) = get("X-Amz-Signature") else {
        return Err(ApiError::MissingAuthenticationToken);
    };
    if get("X-Amz-Algorithm").as_deref() != Some(ALGORITHM) {
        return Err(incomplete("X-Amz-Algorithm must be AWS4-HMAC-SHA256."));
    }
    let credential = get("X-Amz-Credential").ok_or_else(|| incomplete("X-Amz-Credential is missing."))?;
    let amz_date = get("X-Amz-Date").ok_or_else(|| incomplete("X-Amz-Date is missing."))?;
    let expires = get("X-Amz-Expires")
        .and_then(|e| e.parse::<u64>().ok())
        .ok_or_else(|| incomplete("X-Amz-Expires is missing or invalid."))?;
    let signed = get("X-Amz-SignedHeaders").ok_or_else(|| incomplete("X-Amz-SignedHeaders is missing."))?;
    let (access_key_id, date, region, service) = parse_credential(&credential)?;
    Ok(SignatureClaim {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature,
        amz_date,
        expires: Some(expires),
    })
}

fn parse_header_claim(auth: &str, headers: &HeaderMap) -> Result<SignatureClaim, ApiError> {
    let Some(rest) = auth.strip_prefix(ALGORITHM) else {
        return Err(incomplete("Authorization header requires the AWS4-HMAC-SHA256 algorithm."));
    };
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(incomplete(&format!(
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={auth}"
        )));
    };
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        })?
        .to_owned();
    let (access_key_id, date, region, service) = parse_credential(credential)?;
    Ok(SignatureClaim {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
        amz_date,
        expires: None,
    })
}

fn parse_credential(credential: &str) -> Result<(String, String, String, String), ApiError> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [key, date, region, service, "aws4_request"] => {
            Ok(((*key).to_owned(), (*date).to_owned(), (*region).to_owned(), (*service).to_owned()))
        }
        _ => Err(incomplete(&format!("Credential is malformed: {credential}"))),
    }
}

fn parse_amz_date(s: &str) -> Result<DateTime<Utc>, ApiError> {
    NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
        .map(|n| n.and_utc())
        .map_err(|_| incomplete(&format!("Date must be in ISO-8601 'basic format'. Got '{s}'.")))
}

/// Checks scope and time against this server, before any secret is looked up.
pub fn check_scope(
    claim: &SignatureClaim,
    region: &str,
    service: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    let when = parse_amz_date(&claim.amz_date)?;
    if claim.date != claim.amz_date.get(..8).unwrap_or_default() {
        return Err(ApiError::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            claim.date,
            claim.amz_date.get(..8).unwrap_or_default()
        )));
    }
    if claim.region != region {
        return Err(ApiError::InvalidSignature(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            claim.region
        )));
    }
    if claim.service != service {
        return Err(ApiError::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{service}'. "
        )));
    }
    let fmt = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    match claim.expires {
        Some(expires) => {
            if expires > 7 * 24 * 3600 {
                return Err(ApiError::InvalidSignature(
                    "X-Amz-Expires must be less than a week (in seconds) that is 604800".into(),
                ));
            }
            let end = when + chrono::Duration::seconds(expires as i64);
            if now > end {
                return Err(ApiError::InvalidSignature(format!(
                    "Signature expired: {} is now earlier than {}",
                    fmt(end),
                    fmt(now)
                )));
            }
            if when - now > chrono::Duration::from_std(MAX_SKEW).unwrap_or_default() {
                return Err(ApiError::InvalidSignature("Signature not yet current".into()));
            }
        }
        None => {
            let skew = chrono::Duration::from_std(MAX_SKEW).unwrap_or_default();
            if (now - when).abs() > skew {
                return Err(ApiError::InvalidSignature(format!(
                    "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                    fmt(when),
                    fmt(now - skew),
                    fmt(now)
                )));
            }
        }
    }
    Ok(when)
}

/// The session token of a request signed with temporary credentials: the `X-Amz-Security-Token`
/// header, or the query parameter of the presigned form.
pub fn security_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(v) = headers.get("x-amz-security-token") {
        return v.to_str().ok().map(str::to_owned);
    }
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "X-Amz-Security-Token")
        .map(|(_, v)| v.into_owned())
}

/// Recomputes the signature with `secret` and compares it with the claim. With `body` `None`
/// (not read yet) only a request that names its payload hash in `x-amz-content-sha256`, or a
/// presigned one, can be verified; the hash itself is then checked by [`check_payload_hash`] once
/// the body is read.
pub fn verify(
    claim: &SignatureClaim,
    secret: &str,
    when: DateTime<Utc>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Result<(), ApiError> {
    let mismatch = || {
        ApiError::InvalidSignature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
             Access Key and signing method. Consult the service documentation for details."
                .into(),
        )
    };
    if !claim.signed_headers.iter().any(|h| h == "host") {
        return Err(ApiError::InvalidSignature("'Host' must be a signed header.".into()));
    }
    let mut signed = Vec::with_capacity(claim.signed_headers.len());
    for name in &claim.signed_headers {
        if name == "x-amz-date" && claim.expires.is_none() {
            continue; // the signer adds it from `when`
        }
        let values: Vec<&str> = headers.get_all(name.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
        if values.is_empty() {
            return Err(mismatch());
        }
        signed.push((name.as_str(), values.join(",")));
    }
    let uri_for_signing: Cow<'_, str> = match claim.expires {
        None => Cow::Owned(uri.to_string()),
        Some(_) => Cow::Owned(strip_presign_params(uri)),
    };
    let content_sha = headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok());
    let bodies: Vec<SignableBody<'_>> = match (content_sha, claim.expires, body) {
        (Some(UNSIGNED_PAYLOAD), _, _) => vec![SignableBody::UnsignedPayload],
        (Some(declared), _, body) => {
            if let Some(body) = body {
                check_payload_hash(headers, body)?;
            }
            vec![SignableBody::Precomputed(declared.to_owned())]
        }
        (None, None, Some(body)) => vec![SignableBody::Bytes(body)],
        (None, Some(_), Some(body)) => vec![SignableBody::Bytes(body), SignableBody::UnsignedPayload],
        (None, Some(_), None) => vec![SignableBody::UnsignedPayload],
        (None, None, None) => return Err(mismatch()),
    };
    let identity: Identity = Credentials::new(&claim.access_key_id, secret, None, None, "lamina").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
    settings.excluded_headers = None;
    if let Some(expires) = claim.expires {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires));
    }
    let time: SystemTime = when.into();
    for body in bodies {
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&claim.region)
            .name(&claim.service)
            .time(time)
            .settings(settings.clone())
            .build()
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("build signing params: {e}")))?
            .into();
        let request = SignableRequest::new(
            method.as_str(),
            uri_for_signing.as_ref(),
            signed.iter().map(|(k, v)| (*k, v.as_str())),
            body,
        )
        .map_err(|_| mismatch())?;
        let Ok(output) = sign(request, &params) else {
            return Err(mismatch());
        };
        let (_, expected) = output.into_parts();
        if bool::from(expected.as_bytes().ct_eq(claim.signature.as_bytes())) {
            return Ok(());
        }
    }
    Err(mismatch())
}

/// Whether the request declares its payload hash (or `UNSIGNED-PAYLOAD`), so that its signature can
/// be checked before the body is read.
pub fn declares_payload(headers: &HeaderMap) -> bool {
    headers.contains_key("x-amz-content-sha256")
}

/// Checks a read body against the hash its request declared (nothing to check for
/// `UNSIGNED-PAYLOAD` or no declaration).
pub fn check_payload_hash(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let declared = headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok());
    match declared {
        None | Some(UNSIGNED_PAYLOAD) => Ok(()),
        Some(declared) if declared.eq_ignore_ascii_case(&hex::encode(Sha256::digest(body))) => Ok(()),
        Some(_) => Err(ApiError::InvalidSignature(
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
        )),
    }
}

fn strip_presign_params(uri: &Uri) -> String {
    let kept: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| !k.starts_with("X-Amz-") || k == "X-Amz-Security-Token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = String::from(uri.path());
    if !kept.is_empty() {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            ser.append_pair(k, v);
        }
        out.push('?');
        out.push_str(&ser.finish());
    }
    out
}
