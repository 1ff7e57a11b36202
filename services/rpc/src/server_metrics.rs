//! Calls every gRPC server of a process answers, counted and timed per method, so each service
//! process (code storage too, which has no other traffic of its own) serves its own families.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Counter: gRPC calls answered, labels `method` (`/lamina.<svc>.v1.<Service>/<Method>`; `unknown`
/// for paths no service implements) and `code` (`OK` or the gRPC status code's name).
pub const GRPC_REQUESTS_TOTAL: &str = "lamina_grpc_server_requests_total";
/// Histogram: seconds from a call's arrival to its answer's head, label `method`.
pub const GRPC_REQUEST_DURATION_SECONDS: &str = "lamina_grpc_server_request_duration_seconds";

/// Registers descriptions of the metrics above with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(GRPC_REQUESTS_TOTAL, "gRPC calls answered by this process, by method and status code");
    metrics::describe_histogram!(
        GRPC_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to answer a gRPC call, by method"
    );
}

/// Wraps a server's routes in [`GrpcMetrics`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// Counts and times the calls `inner` answers.
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Response: Send,
    S::Error: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let out = answer.await;
            if let Ok(response) = &out {
                record(method, started, code_of(response));
            }
            out
        })
    }
}

/// The status of a call as far as its head tells: an error is answered "trailers-only" (the
/// status in the head), a success carries it in the trailers.
fn code_of<RB>(response: &http::Response<RB>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
        .unwrap_or(tonic::Code::Ok)
}

fn record(method: String, started: Instant, code: tonic::Code) {
    // A path no service implements is the caller's choice: never a label value of its own.
    let method = if code == tonic::Code::Unimplemented { "unknown".to_owned() } else { method };
    let code = if code == tonic::Code::Ok { "OK".to_owned() } else { format!("{code:?}") };
    metrics::histogram!(GRPC_REQUEST_DURATION_SECONDS, "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(GRPC_REQUESTS_TOTAL, "method" => method, "code" => code).increment(1);
}
