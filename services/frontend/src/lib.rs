//! The HTTP API: on the public listener the Lambda REST paths with SigV4 and `/health`; on the
//! operator listener the admin API, `/metrics` and `/health`.

mod admin;
mod api;
pub mod auth;
mod body;
mod code_url;
mod http_metrics;
pub mod metrics;
mod metrics_labels;
mod prometheus;
mod request_id;
mod server;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use lamina_code_storage::CodeClient;
use lamina_invoke_router::RouterClient;
use lamina_metadata::MetadataClient;

#[doc(hidden)]
pub use api::fuzzing;
pub use auth::Principal;
pub use code_url::CodeLocations;
pub use prometheus::{SamplerGuard, on_scrape, prometheus, render as render_metrics};
pub use request_id::RequestId;
pub use server::{HttpLimits, serve};

/// Frontend settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The one region served; ARNs use it and signatures must be scoped to it.
    pub region: String,
    /// Bearer token of the admin API.
    pub admin_token: String,
    /// Deadlines and connection cap of the listeners (the body deadline is applied per request).
    pub http: HttpLimits,
    /// Upper bound of MemorySize (the guide: 1536; today's AWS: 10240).
    pub max_memory_mb: i64,
    /// Upper bound of Timeout in seconds (the guide: 300).
    pub max_timeout_s: i64,
    /// Runtime identifiers CreateFunction accepts.
    pub runtimes: Vec<String>,
    /// Where GetFunction's `Code.Location` points (code storage's S3 API) and the key it is signed with.
    pub code_locations: CodeLocations,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            admin_token: String::new(),
            http: HttpLimits::default(),
            max_memory_mb: 1536,
            max_timeout_s: 300,
            runtimes: Vec::new(),
            code_locations: CodeLocations {
                public_url: "http://127.0.0.1:9002".into(),
                key: lamina_code_storage::s3::CodeDownloads {
                    access_key_id: String::new(),
                    secret_access_key: String::new(),
                    bucket: "lamina-code-us-east-1".into(),
                },
            },
        }
    }
}

async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let execution = match state.invoker.health().await {
        Ok(e) => e,
        Err(e) => {
            let body = serde_json::json!({"status": "unavailable", "error": e.to_string()});
            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        }
    };
    let hosts = execution["hosts"].as_array().cloned().unwrap_or_default();
    let isolated = |host: &serde_json::Value| {
        host["isolation"]["complete"].as_bool().unwrap_or(false)
            || !host["isolation"]["required"].as_bool().unwrap_or(true)
    };
    let status = if !hosts.is_empty() && hosts.iter().all(isolated) { "ok" } else { "degraded" };
    let mut body = serde_json::json!({
        "status": status,
        "metadata": state.metadata.engine(),
        "runtimes": execution["runtimes"],
        "execution_hosts": hosts,
    });
    // One host (`lamina serve`): also under the name the single-process API always used.
    if let [only] = hosts.as_slice() {
        body["execution_host"] = only.clone();
    }
    axum::Json(body).into_response()
}

async fn metrics_text() -> String {
    prometheus::render().await
}

/// Invalidation topic of metadata writes: every process drops its cached reads.
pub const METADATA_TOPIC: &str = "metadata";

/// After a request that may have written metadata, tells the other processes before answering, so
/// a client that sees the answer never gets a stale read from another process (distributed mode).
async fn announce_writes(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let writes = !matches!(*request.method(), http::Method::GET | http::Method::HEAD)
        && !request.uri().path().ends_with("/invocations")
        && !request.uri().path().ends_with("/invoke-async/")
        && !reads_telemetry(&request);
    let response = next.run(request).await;
    if writes
        && response.status().is_success()
        && let Some(invalidator) = &state.revocations
        && let Err(e) = invalidator.publish(METADATA_TOPIC, "*").await
    {
        tracing::warn!("announcing a metadata write failed (other processes see it within 1 s): {e:#}");
    }
    response
}

/// A CloudWatch Logs or CloudWatch call: they never touch metadata (every `aws logs tail` poll is a
/// POST, and announcing it would empty every frontend's metadata cache).
fn reads_telemetry(request: &axum::extract::Request) -> bool {
    let path = request.uri().path();
    if path.starts_with("/service/") {
        return true;
    }
    if path != "/" {
        return false;
    }
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let target = header("x-amz-target");
    target.starts_with("Logs_20140328.")
        || target.starts_with("GraniteServiceVersion20100801.")
        || (target.is_empty() && header("content-type").starts_with("application/x-www-form-urlencoded"))
}

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub metadata: MetadataClient,
    pub code: CodeClient,
    pub secrets: Arc<auth::SecretCache>,
    pub invoker: RouterClient,
    /// Tells the other frontends of a revoked access key (distributed mode).
    pub revocations: Option<lamina_fleet::Invalidator>,
    /// Request bodies in memory, in KiB, across all requests (see [`HttpLimits::body_memory`]).
    pub bodies: Arc<tokio::sync::Semaphore>,
    /// Schedules, event-source mappings and async invocation settings (absent: those APIs answer 503).
    pub events: Option<lamina_event_sources::EventSourcesClient>,
    /// Function logs and metrics (CloudWatch Logs and CloudWatch APIs; absent: they answer 503).
    pub observability: Option<lamina_observability::ObservabilityClient>,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(config: Config, metadata: MetadataClient, code: CodeClient, invoker: RouterClient) -> Self {
        let bodies = Arc::new(tokio::sync::Semaphore::new(body::budget_kib(config.http.body_memory)));
        Self {
            config: Arc::new(config),
            metadata,
            code,
            secrets: Arc::default(),
            invoker,
            revocations: None,
            bodies,
            events: None,
            observability: None,
        }
    }

    /// Serves the event-source APIs (EventBridge rules, event-source mappings, EventInvokeConfig).
    pub fn with_event_sources(mut self, events: lamina_event_sources::EventSourcesClient) -> Self {
        self.events = Some(events);
        self
    }

    /// The event-sources client, or 503 when this frontend was started without one.
    pub fn event_sources(&self) -> lamina_common::ApiResult<&lamina_event_sources::EventSourcesClient> {
        self.events.as_ref().ok_or_else(|| {
            lamina_common::ApiError::ServiceUnavailable("Event sources are not configured on this server.".into())
        })
    }

    /// Serves the CloudWatch Logs and CloudWatch metrics APIs.
    pub fn with_observability(mut self, client: lamina_observability::ObservabilityClient) -> Self {
        self.observability = Some(client);
        self
    }

    /// The observability client, or 503 when this frontend was started without one.
    pub fn observability(&self) -> lamina_common::ApiResult<&lamina_observability::ObservabilityClient> {
        self.observability.as_ref().ok_or_else(|| {
            lamina_common::ApiError::ServiceUnavailable("Logs and metrics are not configured on this server.".into())
        })
    }

    /// Drops revoked access keys that other frontends announce, and announces this one's.
    pub fn with_revocations(
        mut self,
        mut subscription: lamina_fleet::Subscription,
        invalidator: lamina_fleet::Invalidator,
    ) -> Self {
        let secrets = self.secrets.clone();
        let metadata = self.metadata.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.recv().await {
                match message {
                    lamina_fleet::Invalidation::Key { topic, key } if topic == auth::SECRET_TOPIC => {
                        secrets.forget(&key)
                    }
                    lamina_fleet::Invalidation::Key { topic, .. } if topic == METADATA_TOPIC => {
                        metadata.invalidate_cache()
                    }
                    lamina_fleet::Invalidation::Key { .. } => {}
                    lamina_fleet::Invalidation::Missed => {
                        secrets.clear();
                        metadata.invalidate_cache();
                    }
                }
            }
        });
        self.revocations = Some(invalidator);
        self
    }
}

/// The public listener: the Lambda API and `/health`. Operator endpoints are not
/// here (404): they list every tenant, so they live on [`admin_router`]'s own listener.
pub fn router(state: AppState) -> Router {
    // The SigV4 layer reads the body under the operation's ceiling, once the caller is known; the
    // extractor's default 2 MB must not apply on top.
    let lambda =
        api::routes().layer(DefaultBodyLimit::disable()).layer(from_fn_with_state(state.clone(), auth::require_sigv4));
    Router::new()
        .route("/health", get(health))
        .merge(lambda)
        .fallback(api::unknown_operation)
        .layer(from_fn_with_state(state.clone(), announce_writes))
        .layer(axum::middleware::from_fn(http_metrics::record))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// The operator listener (loopback by default): the admin API, `/metrics` and `/health`.
pub fn admin_router(state: AppState) -> Router {
    let admin = admin::routes()
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .layer(from_fn_with_state(state.clone(), auth::require_admin));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .nest("/_lamina/admin", admin)
        .fallback(api::unknown_operation)
        .layer(from_fn_with_state(state.clone(), announce_writes))
        .layer(axum::middleware::from_fn(http_metrics::record))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}
