//! Channels and servers with the limits every Lamina peer shares.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tonic::transport::{Channel, Endpoint};

/// Largest message a peer sends or accepts: a 6 MB payload base64-free plus headroom, and 1 MB
/// code chunks.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// A channel to `addr` (`host:port` or a URL) that connects on first use and reconnects after
/// failures, so a peer that starts later or restarts is picked up without restarting the caller.
pub fn channel(addr: &str) -> anyhow::Result<Channel> {
    let url = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
    let endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("parse peer address {url}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// A channel whose calls carry the caller's trace context (see [`crate::trace`]).
pub type TracedChannel = tonic::service::interceptor::InterceptedService<Channel, crate::trace::Inject>;

/// [`channel`], its calls carrying the caller's trace context: the one for calls on an
/// invocation's path, so the callee's spans join the caller's trace.
pub fn traced_channel(addr: &str) -> anyhow::Result<TracedChannel> {
    Ok(tonic::service::interceptor::InterceptedService::new(channel(addr)?, crate::trace::Inject))
}

/// A tonic server builder with Lamina's settings.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .trace_fn(crate::trace::server_span)
}

/// Binds `addr` (port 0 picks one) for a gRPC server; returns the listener and its address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(Incoming, SocketAddr)> {
    let listener = listener(addr).with_context(|| format!("bind gRPC {addr}"))?;
    let local = listener.local_addr()?;
    // Accepted sockets need TCP_NODELAY themselves (tonic's `tcp_nodelay` does not reach a
    // listener handed in): with Nagle on, a reply waits out the peer's 40 ms delayed ACK.
    Ok((Incoming::from(listener).with_nodelay(Some(true)), local))
}

/// Connections a gRPC server accepts.
pub type Incoming = tonic::transport::server::TcpIncoming;

/// A listening socket on `addr` (SO_REUSEADDR, so a restarted process can bind at once).
pub fn listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves one gRPC service on `listener` until `shutdown`, then lets in-flight calls finish.
pub async fn serve<S>(
    service: S,
    listener: Incoming,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()>
where
    S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
        + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    server()
        .layer(crate::server_metrics::GrpcMetricsLayer)
        .add_service(service)
        .serve_with_incoming_shutdown(listener, shutdown.cancelled_owned())
        .await?;
    Ok(())
}

pub use tonic::service::Routes;

/// Serves several gRPC services on one `listener` until `shutdown` (a process that owns the state
/// of all of them): `tonic::service::Routes::new(a).add_service(b)...`.
pub async fn serve_routes(
    routes: Routes,
    listener: Incoming,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    server()
        .layer(crate::server_metrics::GrpcMetricsLayer)
        .add_routes(routes)
        .serve_with_incoming_shutdown(listener, shutdown.cancelled_owned())
        .await?;
    Ok(())
}
