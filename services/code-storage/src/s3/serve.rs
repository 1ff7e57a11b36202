//! The HTTP server: one s3s service, per-request scope (request id, session token, peer address),
//! `x-amz-request-id` on every response and `RequestId` in every error body, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{HttpError, S3Result};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::S3Api;
use super::auth::{Access, Auth, RequestScope, SCOPE};
use super::service::Handler;

/// Serves the S3 API on `listener` until `shutdown`; in-flight requests finish.
pub async fn serve(listener: tokio::net::TcpListener, api: S3Api, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = build_service(&api);
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept S3 connection");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(service.clone(), peer, req));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "S3 connection ended");
            }
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

fn build_service(api: &S3Api) -> S3Service {
    let config = &api.inner.config;
    let mut builder = S3ServiceBuilder::new(Handler { api: api.clone() });
    builder.set_auth(Auth {
        credentials: Arc::clone(&api.inner.credentials),
        code_downloads: config.code_downloads.clone(),
    });
    builder.set_access(Access { code_bucket: config.code_downloads.as_ref().map(|c| c.bucket.clone()) });
    if let Some(base) = &config.base_domain {
        builder.set_host(BaseDomain { base: base.to_ascii_lowercase() });
    }
    builder.build()
}

async fn handle(
    service: S3Service,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Result<http::Response<s3s::Body>, HttpError> {
    let request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_ascii_uppercase();
    let host_id = base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes());
    let scope =
        Arc::new(RequestScope::new(session_token(&req), request_id.clone(), host_id.clone(), peer.ip().to_string()));
    let req = req.map(s3s::Body::from);
    let mut resp = SCOPE.scope(scope, service.call(req)).await?;
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&host_id) {
        resp.headers_mut().insert("x-amz-id-2", v);
    }
    if resp.status().is_client_error() || resp.status().is_server_error() {
        add_request_id(&mut resp, &request_id);
    }
    Ok(resp)
}

/// The session token, from the header (signed requests) or the query (presigned URLs).
fn session_token<B>(req: &http::Request<B>) -> Option<String> {
    if let Some(v) = req.headers().get("x-amz-security-token").and_then(|v| v.to_str().ok()) {
        return Some(v.to_owned());
    }
    let query = req.uri().query()?;
    form_pairs(query).find(|(k, _)| k == "X-Amz-Security-Token").map(|(_, v)| v)
}

fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode =
            |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        (decode(k), decode(v))
    })
}

/// s3s leaves `RequestId` out of errors it raises itself (signature checks); S3 always has it.
fn add_request_id(resp: &mut http::Response<s3s::Body>, request_id: &str) {
    let Some(body) = resp.body().bytes() else { return };
    let Ok(text) = std::str::from_utf8(&body) else { return };
    if !text.contains("</Error>") || text.contains("<RequestId>") {
        return;
    }
    let patched = text.replacen("</Error>", &format!("<RequestId>{request_id}</RequestId></Error>"), 1);
    let len = patched.len();
    *resp.body_mut() = s3s::Body::from(Bytes::from(patched));
    if let Ok(v) = http::HeaderValue::from_str(&len.to_string()) {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, v);
    }
}

/// Virtual-host style under one base domain (`<bucket>.<base>`); any other host is path style.
struct BaseDomain {
    base: String,
}

impl S3Host for BaseDomain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let lower = name.to_ascii_lowercase();
        if let Some(bucket) = lower.strip_suffix(self.base.as_str()).and_then(|h| h.strip_suffix('.'))
            && !bucket.is_empty()
        {
            return Ok(VirtualHost::new(self.base.as_str()).with_bucket(bucket.to_owned()));
        }
        Ok(VirtualHost::new(name))
    }
}
