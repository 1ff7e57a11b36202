//! Canonical request building and signature verification, checked against the AWS signer.
//!
//! Input: one flag byte, then `METHOD /path?query`, header lines, an empty line and the body.
//! The request is signed with `aws-sigv4` as an SDK would (Authorization header or presigned
//! query), then handed to our parser and verifier. Invariants: a correctly signed request always
//! verifies, verification is deterministic, and it fails with another secret or a changed body.
#![no_main]

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use chrono::{TimeZone, Utc};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use lamina_frontend::auth::sigv4::{check_scope, parse_claim, verify};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const PRESIGNED: u8 = 1;
const DECLARED_HASH: u8 = 2;
const UNSIGNED: u8 = 4;

struct Input {
    flags: u8,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn parse(data: &[u8]) -> Option<Input> {
    let (&flags, rest) = data.split_first()?;
    let split = rest.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&rest[..i], rest[i + 2..].to_vec()),
        None => (rest, Vec::new()),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next()?;
    let space = first.iter().position(|b| *b == b' ')?;
    let method = Method::from_bytes(&first[..space]).ok()?;
    let uri = Uri::try_from(&first[space + 1..]).ok()?;
    // Origin-form only (what a server sees), and no signing parameters of our own making.
    if uri.scheme().is_some() || !uri.path().starts_with('/') || uri.query().is_some_and(|q| q.contains("X-Amz-")) {
        return None;
    }
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        // The signer sets these itself; a server's HTTP parser hands over text values only.
        let ours = ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization"];
        if ours.contains(&name.as_str()) || value.to_str().is_err() {
            continue;
        }
        headers.append(name, value);
    }
    if !headers.contains_key(http::header::HOST) {
        headers.insert(http::header::HOST, HeaderValue::from_static("lambda.us-east-1.amazonaws.com"));
    }
    Some(Input { flags, method, uri, headers, body })
}

/// Signs as an SDK would; `None` when the AWS signer itself refuses the request.
fn signed(input: &mut Input, when: std::time::SystemTime) -> Option<()> {
    let identity: Identity = Credentials::new("AKIDEXAMPLE", SECRET, None, None, "fuzz").into();
    let mut settings = SigningSettings::default();
    if input.flags & PRESIGNED != 0 {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(300));
    }
    let body = if input.flags & UNSIGNED != 0 {
        input.headers.insert("x-amz-content-sha256", HeaderValue::from_static("UNSIGNED-PAYLOAD"));
        SignableBody::UnsignedPayload
    } else if input.flags & DECLARED_HASH != 0 {
        use sha2::Digest as _;
        let hash = hex::encode(sha2::Sha256::digest(&input.body));
        input.headers.insert("x-amz-content-sha256", HeaderValue::from_str(&hash).ok()?);
        SignableBody::Precomputed(hash)
    } else {
        SignableBody::Bytes(&input.body)
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("lambda")
        .time(when)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let uri = input.uri.to_string();
    let headers: Vec<(&str, &str)> =
        input.headers.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
    let request = SignableRequest::new(input.method.as_str(), &uri, headers.into_iter(), body).ok()?;
    let (instructions, _) = sign(request, &params).ok()?.into_parts();
    let mut request = http::Request::builder().method(input.method.clone()).uri(input.uri.clone()).body(()).ok()?;
    *request.headers_mut() = input.headers.clone();
    // The signer's own helper panics on values it produced itself but cannot re-parse; skip those.
    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        instructions.apply_to_request_http1x(&mut request);
        request
    }))
    .ok()?;
    input.uri = applied.uri().clone();
    input.headers = applied.headers().clone();
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let Some(mut input) = parse(data) else { return };
    let when = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).single().expect("valid date");
    if signed(&mut input, when.into()).is_none() {
        return;
    }
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        eprintln!("signed: {} {} {:?}", input.method, input.uri, input.headers);
    }
    let claim = parse_claim(&input.headers, &input.uri)
        .unwrap_or_else(|e| panic!("claim of a signed request refused: {e}\n{:?} {:?}", input.uri, input.headers));
    let at = check_scope(&claim, "us-east-1", "lambda", when).unwrap_or_else(|e| panic!("scope refused: {e}"));
    let check = |secret: &str, body: &[u8]| {
        verify(&claim, secret, at, &input.method, &input.uri, &input.headers, Some(body)).map_err(|e| e.to_string())
    };
    let first = check(SECRET, &input.body);
    assert_eq!(first, check(SECRET, &input.body), "verification is not deterministic");
    if let Err(e) = first {
        panic!("a correctly signed request failed verification: {e}\n{} {:?} {:?}", input.method, input.uri, input.headers);
    }
    assert!(check("another secret", &input.body).is_err(), "verified with the wrong secret");
    if input.flags & UNSIGNED == 0 {
        let mut changed = input.body.clone();
        match changed.first_mut() {
            Some(b) => *b ^= 1,
            None => changed.push(b'x'),
        }
        // A presigned request without a declared hash may also be signed with UNSIGNED-PAYLOAD, so
        // its body is not covered: only header-signed or hash-declaring requests must notice.
        if input.flags & PRESIGNED == 0 || input.flags & DECLARED_HASH != 0 {
            assert!(check(SECRET, &changed).is_err(), "verified with a changed body");
        }
    }
});
