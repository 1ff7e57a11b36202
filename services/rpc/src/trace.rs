//! Trace context across processes: W3C `traceparent` in gRPC metadata (client side injected by
//! [`Inject`], server side extracted by [`server_span`]), in stored events ([`traceparent`],
//! [`set_parent`]), and the X-Ray header a function's runtime sees ([`xray_header`]).
//!
//! Everything here is a no-op until [`enable`] is called (by the process that installed an
//! OpenTelemetry exporter and the global propagator): with tracing off, a gRPC call pays one
//! relaxed atomic load on each side.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns propagation on; call once the OpenTelemetry layer and the global text-map propagator
/// are installed.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are exported (and context therefore worth propagating).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The client side: adds the current span's context to every outgoing call's metadata.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inject;

impl tonic::service::Interceptor for Inject {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if enabled() {
            let cx = tracing::Span::current().context();
            opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(&cx, &mut MetadataInjector(request.metadata_mut()));
            });
        }
        Ok(request)
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) =
            (tonic::metadata::MetadataKey::from_bytes(key.as_bytes()), tonic::metadata::MetadataValue::try_from(value))
        {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The server side (tonic's `trace_fn`): one span per call, the caller's span as its parent.
pub fn server_span(request: &http::Request<()>) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("grpc", otel.name = request.uri().path(), otel.kind = "server", rpc.system = "grpc");
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    set_parent_context(&span, cx);
    span
}

/// Makes `span` (not yet entered) a child of the context in an incoming HTTP request: a W3C
/// `traceparent`, else an `X-Amzn-Trace-Id` (`Root=1-…;Parent=…;Sampled=…`).
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if !enabled() {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    if cx.span().span_context().is_valid() {
        set_parent_context(span, cx);
        return;
    }
    if let Some(sc) = headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok()).and_then(parse_xray) {
        set_parent_context(span, opentelemetry::Context::new().with_remote_span_context(sc));
    }
}

/// The current span's context as a W3C `traceparent` value, to store beside work that runs later
/// (a queued event); `None` when tracing is off or there is no sampled-or-not span.
pub fn traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove("traceparent")
}

/// Makes `span` (not yet entered) a child of a stored `traceparent` (from [`traceparent`]).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if !enabled() {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    set_parent_context(span, cx);
}

fn set_parent_context(span: &tracing::Span, cx: opentelemetry::Context) {
    if cx.span().span_context().is_valid() {
        // Fails only for a span filtered out or already started: it then keeps its own parent.
        let _ = span.set_parent(cx);
    }
}

/// The X-Ray trace header of the current span (`Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;
/// Sampled=0|1`): the W3C trace id split as X-Ray splits its own, so a function's spans started
/// from `_X_AMZN_TRACE_ID` join this trace. `None` when tracing is off.
pub fn xray_header() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| xray_of(&sc))
}

fn xray_of(sc: &SpanContext) -> String {
    let trace = sc.trace_id().to_string();
    let (time, rest) = trace.split_at(8);
    format!("Root=1-{time}-{rest};Parent={};Sampled={}", sc.span_id(), u8::from(sc.is_sampled()))
}

/// Parses an X-Ray trace header into a remote span context (`None` without a usable Root and
/// Parent).
pub fn parse_xray(header: &str) -> Option<SpanContext> {
    let (mut root, mut parent, mut sampled) = (None, None, false);
    for part in header.split(';') {
        match part.trim().split_once('=') {
            Some(("Root", v)) => root = Some(v),
            Some(("Parent", v)) => parent = Some(v),
            Some(("Sampled", v)) => sampled = v == "1",
            _ => {}
        }
    }
    let mut pieces = root?.split('-');
    let (version, time, rest) = (pieces.next()?, pieces.next()?, pieces.next()?);
    if version != "1" || time.len() != 8 || rest.len() != 24 || pieces.next().is_some() {
        return None;
    }
    let trace_id = TraceId::from_hex(&format!("{time}{rest}")).ok()?;
    let span_id = SpanId::from_hex(parent?).ok()?;
    let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    let sc = SpanContext::new(trace_id, span_id, flags, true, TraceState::default());
    sc.is_valid().then_some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xray_headers_round_trip_through_span_contexts() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let sc = parse_xray(header).expect("parses");
        assert_eq!(sc.trace_id().to_string(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(sc.span_id().to_string(), "53995c3f42cd8ad8");
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(xray_of(&sc), header);
    }

    #[test]
    fn malformed_xray_headers_give_no_parent() {
        for bad in [
            "",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e98-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz",
        ] {
            assert!(parse_xray(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn nothing_is_propagated_while_tracing_is_off() {
        assert!(!enabled());
        assert_eq!(traceparent(), None);
        assert_eq!(xray_header(), None);
        let mut inject = Inject;
        let request = tonic::service::Interceptor::call(&mut inject, tonic::Request::new(())).expect("passes");
        assert!(request.metadata().is_empty());
    }
}
