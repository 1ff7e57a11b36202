//! `/health` and `/metrics` of a service process that has no HTTP API of its own.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Readiness of a service process, as `/health` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `ok` once serving, `starting` before.
    pub status: &'static str,
    pub service: &'static str,
    /// The service's gRPC address.
    pub grpc: String,
    /// Service-specific details (an execution host's isolation, sandboxes, runtimes).
    pub detail: serde_json::Value,
}

/// The process's health, shared with its HTTP endpoint.
#[derive(Clone)]
pub struct Status {
    health: Arc<Mutex<Health>>,
    /// Reads the service's details afresh for each `/health` request.
    detail: Arc<Mutex<Option<DetailFn>>>,
}

type DetailFn = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

impl Status {
    /// Serves `/health` (503 until [`Status::ready`]) and `/metrics` on `addr` until `shutdown`.
    pub async fn serve(
        service: &'static str,
        addr: SocketAddr,
        grpc: SocketAddr,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Status> {
        lamina_frontend::prometheus();
        let health = Health { status: "starting", service, grpc: grpc.to_string(), detail: serde_json::Value::Null };
        let status = Status { health: Arc::new(Mutex::new(health)), detail: Arc::default() };
        let app = axum::Router::new()
            .route("/health", get(health_of))
            .route("/metrics", get(lamina_frontend::render_metrics))
            .with_state(status.clone());
        let listener = lamina_rpc::transport::listener(addr).with_context(|| format!("bind {addr}"))?;
        tracing::info!(service, http = %listener.local_addr()?, %grpc, "serving health and metrics");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
                tracing::warn!("health endpoint stopped: {e}");
            }
        });
        Ok(status)
    }

    /// Marks the process ready; `detail` is read on every `/health` request.
    pub fn ready(&self, detail: impl Fn() -> serde_json::Value + Send + Sync + 'static) {
        *self.detail.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(detail));
        self.health.lock().unwrap_or_else(|p| p.into_inner()).status = "ok";
    }
}

async fn health_of(State(status): State<Status>) -> (StatusCode, Json<Health>) {
    let mut h = status.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(detail) = status.detail.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        h.detail = detail();
    }
    let code = if h.status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(h))
}
