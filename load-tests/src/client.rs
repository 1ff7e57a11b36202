//! A lean SigV4 HTTP client: requests are signed once and replayed, so the load generator spends
//! its CPU on sending, not on hashing (a SigV4 signature stays valid for 15 minutes).

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::stats::Stats;

/// Keys from a shared-credentials file.
#[derive(Clone)]
pub struct Creds {
    access_key_id: String,
    secret_access_key: String,
}

impl Creds {
    /// Keys given as they are (the test servers of the `drain` benchmark accept any).
    pub fn new(access_key_id: &str, secret_access_key: &str) -> Self {
        Self { access_key_id: access_key_id.to_owned(), secret_access_key: secret_access_key.to_owned() }
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim().to_owned()))
                .with_context(|| format!("{key} missing from {}", path.display()))
        };
        Ok(Self { access_key_id: get("aws_access_key_id")?, secret_access_key: get("aws_secret_access_key")? })
    }
}

/// A signed request that can be sent many times.
#[derive(Clone)]
pub struct Signed {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
pub struct Client {
    base: String,
    host: String,
    creds: Creds,
    /// SigV4 service name: `lambda`, `s3` for the S3 API, `kinesis` or `sqs` for the servers of `drain`.
    service: &'static str,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(endpoint: &str, creds: Creds) -> anyhow::Result<Self> {
        let uri: Uri = endpoint.parse()?;
        let host = uri.authority().context("endpoint needs host:port")?.to_string();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(connector);
        Ok(Self { base: endpoint.trim_end_matches('/').to_owned(), host, creds, service: "lambda", http })
    }

    /// The same keys against the S3 API at `endpoint` (path-style, `x-amz-content-sha256` signed).
    pub fn s3(&self, endpoint: &str) -> anyhow::Result<Self> {
        Ok(Self { service: "s3", ..Self::new(endpoint, self.creds.clone())? })
    }

    /// A client of an AWS JSON-protocol service (Kinesis, SQS) at `endpoint`, signing for `service`.
    pub fn aws_json(endpoint: &str, creds: Creds, service: &'static str) -> anyhow::Result<Self> {
        Ok(Self { service, ..Self::new(endpoint, creds)? })
    }

    /// One JSON-protocol operation (`X-Amz-Target: target`), signed now: the reply's JSON (`null`
    /// for an empty body), or the service's error.
    pub async fn json_op(
        &self,
        target: &str,
        content_type: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let body = body.to_string();
        let signed =
            self.sign(Method::POST, "/", body.as_bytes(), &[("content-type", content_type), ("x-amz-target", target)])?;
        let (status, reply) = self.send(&signed).await?;
        anyhow::ensure!(status < 300, "{target}: HTTP {status}: {}", String::from_utf8_lossy(&reply));
        if reply.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&reply).with_context(|| format!("{target}: reply is not JSON"))
    }

    fn sign(&self, method: Method, path: &str, body: &[u8], extra: &[(&str, &str)]) -> anyhow::Result<Signed> {
        let url = format!("{}{path}", self.base);
        let mut settings = SigningSettings::default();
        if self.service == "s3" {
            settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
            settings.uri_path_normalization_mode = aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
            settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
        }
        let identity: Identity =
            Credentials::new(&self.creds.access_key_id, &self.creds.secret_access_key, None, None, "load").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()?
            .into();
        let mut headers: Vec<(&str, &str)> = vec![("host", self.host.as_str())];
        headers.extend_from_slice(extra);
        let signable = SignableRequest::new(method.as_str(), &url, headers.iter().copied(), SignableBody::Bytes(body))?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        let mut req = http::Request::builder().method(method.clone()).uri(&url);
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(())?;
        instructions.apply_to_request_http1x(&mut req);
        let (parts, ()) = req.into_parts();
        Ok(Signed { method, uri: parts.uri, headers: parts.headers, body: Bytes::copy_from_slice(body) })
    }

    pub fn presigned_get(&self, path: &str) -> anyhow::Result<Signed> {
        self.sign(Method::GET, path, b"", &[])
    }

    /// A signed S3 PutObject of `body` at `path` (`/bucket/key`).
    pub fn signed_put(&self, path: &str, body: &[u8]) -> anyhow::Result<Signed> {
        self.sign(Method::PUT, path, body, &[])
    }

    /// A signed DELETE of `path`.
    pub fn sign_delete(&self, path: &str) -> anyhow::Result<Signed> {
        self.sign(Method::DELETE, path, b"", &[])
    }

    /// Sends a signed request once: the status and the body.
    pub async fn send_once(&self, s: &Signed) -> anyhow::Result<(u16, Bytes)> {
        self.send(s).await
    }

    pub fn presigned_post(&self, path: &str, body: &[u8]) -> anyhow::Result<Signed> {
        self.sign(Method::POST, path, body, &[("content-type", "application/json")])
    }

    /// An asynchronous (`X-Amz-Invocation-Type: Event`) Invoke of `name`; answered 202 once queued.
    pub fn presigned_event(&self, name: &str, body: &[u8]) -> anyhow::Result<Signed> {
        self.sign(
            Method::POST,
            &format!("/2015-03-31/functions/{name}/invocations"),
            body,
            &[("content-type", "application/json"), ("x-amz-invocation-type", "Event")],
        )
    }

    async fn send(&self, s: &Signed) -> anyhow::Result<(u16, Bytes)> {
        let mut req = http::Request::builder().method(s.method.clone()).uri(s.uri.clone());
        if let Some(h) = req.headers_mut() {
            *h = s.headers.clone();
        }
        let resp = self.http.request(req.body(Full::new(s.body.clone()))?).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// One Event invoke of `name`, signed now: the status and the request id the answer names.
    pub async fn send_event(&self, name: &str, body: &[u8]) -> anyhow::Result<(u16, Option<String>)> {
        let s = self.presigned_event(name, body)?;
        let mut req = http::Request::builder().method(s.method.clone()).uri(s.uri.clone());
        if let Some(h) = req.headers_mut() {
            *h = s.headers.clone();
        }
        let resp = self.http.request(req.body(Full::new(s.body.clone()))?).await?;
        let status = resp.status().as_u16();
        let id = resp.headers().get("x-amzn-requestid").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let _ = resp.into_body().collect().await?;
        Ok((status, id))
    }

    /// One request to the Lamina API, signed now: the body of a 2xx answer, else an error.
    pub async fn call(&self, method: Method, path: &str, body: &[u8]) -> anyhow::Result<Bytes> {
        let signed = self.sign(method, path, body, &[("content-type", "application/json")])?;
        let (status, body) = self.send(&signed).await?;
        anyhow::ensure!(status < 300, "{path}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        Ok(body)
    }

    pub async fn create_function(
        &self,
        name: &str,
        runtime: &str,
        handler: &str,
        zip: &[u8],
        memory: u32,
    ) -> anyhow::Result<()> {
        let body = serde_json::json!({
            "FunctionName": name,
            "Runtime": runtime,
            "Handler": handler,
            "Role": "arn:aws:iam::123456789012:role/bench",
            "MemorySize": memory,
            "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
        });
        self.call(Method::POST, "/2015-03-31/functions", body.to_string().as_bytes()).await.map(|_| ())
    }

    /// CreateFunction of a Python no-op with the given `Code` object.
    pub async fn create_function_with_code(&self, name: &str, code: serde_json::Value) -> anyhow::Result<()> {
        let body = serde_json::json!({
            "FunctionName": name,
            "Runtime": "python3.11",
            "Handler": "lambda_function.handler",
            "Role": "arn:aws:iam::123456789012:role/bench",
            "Code": code,
        });
        self.call(Method::POST, "/2015-03-31/functions", body.to_string().as_bytes()).await.map(|_| ())
    }

    /// CreateFunction with `Timeout` seconds (the others keep the default 3 s).
    pub async fn create_function_timeout(
        &self,
        name: &str,
        runtime: &str,
        handler: &str,
        zip: &[u8],
        timeout: u32,
    ) -> anyhow::Result<()> {
        let body = serde_json::json!({
            "FunctionName": name,
            "Runtime": runtime,
            "Handler": handler,
            "Role": "arn:aws:iam::123456789012:role/bench",
            "Timeout": timeout,
            "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
        });
        self.call(Method::POST, "/2015-03-31/functions", body.to_string().as_bytes()).await.map(|_| ())
    }

    pub async fn delete_function(&self, name: &str) -> anyhow::Result<()> {
        self.call(Method::DELETE, &format!("/2015-03-31/functions/{name}"), b"").await.map(|_| ())
    }

    pub async fn invoke(&self, name: &str, payload: &[u8]) -> anyhow::Result<Bytes> {
        self.call(Method::POST, &format!("/2015-03-31/functions/{name}/invocations"), payload).await
    }

    /// `concurrency` connections sending `request` back to back for `duration`.
    pub async fn hammer(&self, request: Signed, concurrency: usize, duration: Duration) -> anyhow::Result<Stats> {
        let deadline = Instant::now() + duration;
        self.workers(vec![request], concurrency, move |_| Instant::now() < deadline).await
    }

    /// `total` sends of `request` spread over `concurrency` workers.
    pub async fn fixed_count(&self, request: Signed, concurrency: usize, total: usize) -> anyhow::Result<Stats> {
        self.fixed_count_each(vec![request], concurrency, total).await
    }

    /// `total` sends spread over `concurrency` workers, worker `i` sending `requests[i % len]`.
    pub async fn fixed_count_each(
        &self,
        requests: Vec<Signed>,
        concurrency: usize,
        total: usize,
    ) -> anyhow::Result<Stats> {
        let per = total.div_ceil(concurrency.max(1));
        self.workers(requests, concurrency, move |sent| sent < per).await
    }

    /// Sends `request` `total` times one after the other, pausing `pause` after each reply: an
    /// idle gap, e.g. long enough for the host to freeze the sandbox between invocations.
    pub async fn paced(&self, request: &Signed, total: usize, pause: Duration) -> Stats {
        let mut stats = Stats::default();
        for _ in 0..total {
            let t = Instant::now();
            match self.send(request).await {
                Ok((status, _)) if status < 300 => stats.record(t.elapsed()),
                _ => stats.errors += 1,
            }
            tokio::time::sleep(pause).await;
        }
        stats
    }

    /// Runs `concurrency` workers, worker `i` sending `requests[i % len]` while `more(sent so far)`
    /// holds.
    async fn workers(
        &self,
        requests: Vec<Signed>,
        concurrency: usize,
        more: impl Fn(usize) -> bool + Copy + Send + 'static,
    ) -> anyhow::Result<Stats> {
        anyhow::ensure!(!requests.is_empty(), "no request to send");
        let requests: Vec<_> = requests.into_iter().map(Arc::new).collect();
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency.max(1))
            .map(|i| {
                let (client, request) = (self.clone(), requests[i % requests.len()].clone());
                tokio::spawn(async move {
                    let mut stats = Stats::default();
                    let mut sent = 0;
                    while more(sent) {
                        sent += 1;
                        let t = Instant::now();
                        match client.send(&request).await {
                            Ok((status, _)) if status < 300 => stats.record(t.elapsed()),
                            _ => stats.errors += 1,
                        }
                    }
                    stats
                })
            })
            .collect();
        let mut all = Stats::default();
        for t in tasks {
            all.merge(t.await?);
        }
        all.elapsed = started.elapsed();
        Ok(all)
    }
}

/// A deflated zip of `(name, contents)`.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    build_zip(entries, zip::CompressionMethod::Deflated)
}

/// A stored (uncompressed) zip, so its size is what the content says.
pub fn zip_stored(entries: &[(&str, &[u8])]) -> Vec<u8> {
    build_zip(entries, zip::CompressionMethod::Stored)
}

fn build_zip(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        let opts = zip::write::SimpleFileOptions::default().compression_method(method).unix_permissions(0o755);
        w.start_file(*name, opts).expect("in-memory zip");
        w.write_all(data).expect("in-memory zip");
    }
    w.finish().expect("in-memory zip").into_inner()
}
