//! The HTTP/1.1 server of the public and operator listeners: bounded connections, and deadlines for
//! the parts of a request a client controls (headers, body, idle keep-alive).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

/// What a client may cost the server before it is cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest wait for a request's headers, counted from the end of the previous response on a
    /// kept-alive connection (so it is also the idle keep-alive timeout) or from accept.
    pub header_timeout: Duration,
    /// Longest a request's body may take to arrive; then 408 and the connection closes.
    pub body_timeout: Duration,
    /// Open connections per listener; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Bytes of request bodies held at once, over all requests: each request reserves its
    /// declared length (or its operation's ceiling) until it is answered. A request that cannot
    /// reserve within the body deadline gets 503 without its body being read.
    pub body_memory: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(120),
            max_connections: 4096,
            body_memory: 1024 * 1024 * 1024,
        }
    }
}

/// Pause after an accept error that is about this process (out of file descriptors), so the
/// loop does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown`, then waits for the connections to finish their
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let max = limits.max_connections.clamp(1, 1 << 20);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    tracing::warn!("accept failed, pausing: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            app.clone().oneshot(request.map(Body::new))
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(connection);
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!("connection ended: {e}");
                        }
                        break;
                    }
                    _ = stop.wait_for(|s| *s), if !stopping => {
                        stopping = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends.
    let _ = slots.acquire_many(max as u32).await;
    Ok(())
}

/// Errors of one incoming connection (it went away before it was accepted).
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}
