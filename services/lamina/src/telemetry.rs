//! The process's own telemetry: service logs (text or JSON lines on stderr, filtered by
//! `RUST_LOG`) and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OpenTelemetry traces exported over
//! OTLP/gRPC with W3C trace context propagated between the services (see `lamina_rpc::trace`).
//!
//! The exporter honours the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `OTEL_SERVICE_NAME` (default `lamina-<subcommand>`),
//! `OTEL_RESOURCE_ATTRIBUTES`, and `OTEL_BSP_*` for the batch processor.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::cli::Command;

/// How service logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: level, target, message and fields, and the enclosing spans'
    /// fields (`request_id`, `account_id`, `function`...).
    Json,
}

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes what is still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// How long exiting waits for the last spans to reach the collector.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// The `service.name` a subcommand's process reports unless `OTEL_SERVICE_NAME` says otherwise.
pub fn service_name(command: &Command) -> &'static str {
    match command {
        Command::Serve(_) => "lamina-serve",
        Command::Account(_) => "lamina-account",
        Command::Cluster(_) => "lamina-cluster",
        Command::Frontend(_) => "lamina-frontend",
        Command::Metadata(_) => "lamina-metadata",
        Command::CodeStorage(_) => "lamina-code-storage",
        Command::InvokeRouter(_) => "lamina-invoke-router",
        Command::AsyncQueue(_) => "lamina-async-queue",
        Command::ExecHost(_) => "lamina-exec-host",
    }
}

/// Installs the global subscriber. Must run inside the Tokio runtime (the OTLP client lives on
/// it).
pub fn init(format: LogFormat, service: &str) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);
    let provider = otlp_endpoint_set().then(|| tracer_provider(service)).transpose()?;
    // Spans are exported independently of RUST_LOG (quiet logs must not break traces), and only
    // Lamina's own: library spans (h2, hyper, the exporter's own client) would be noise or loops.
    let traces = provider.as_ref().map(|p| {
        let targets = tracing_subscriber::filter::Targets::new().with_target("lamina", tracing::Level::INFO);
        tracing_opentelemetry::layer().with_tracer(p.tracer("lamina")).with_filter(targets)
    });
    tracing_subscriber::registry().with(logs).with(traces).try_init().context("install the tracing subscriber")?;
    if let Some(p) = &provider {
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(p.clone());
        lamina_rpc::trace::enable();
    }
    Ok(Telemetry { provider })
}

fn otlp_endpoint_set() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

fn tracer_provider(service: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .context("build the OTLP span exporter (OTEL_EXPORTER_OTLP_ENDPOINT)")?;
    let mut resource = opentelemetry_sdk::Resource::builder()
        .with_attribute(KeyValue::new("process.pid", i64::from(std::process::id())));
    let named_by_env = std::env::var_os("OTEL_SERVICE_NAME").is_some_and(|s| !s.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    if !named_by_env {
        resource = resource.with_service_name(service.to_owned());
    }
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build())
}

impl Telemetry {
    /// Exports the spans still buffered (bounded by a deadline) and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        // Blocks until the batch thread has exported, which needs this runtime's reactor: off the
        // async workers.
        let done = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_DEADLINE)).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("lamina: flushing traces at exit failed: {e}"),
            Err(e) => eprintln!("lamina: flushing traces at exit failed: {e}"),
        }
    }
}
