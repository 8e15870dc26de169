//! The exporter itself, built with the `otlp` feature.

use super::traces_url;
use crate::trace::{HexId, TraceContext};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The `service.name` of the exported spans.
pub const SERVICE_NAME: &str = "partner-gateway";

/// The exporter: an SDK tracer provider with a batch span processor (a
/// thread of its own, bounded queue: spans are dropped, never waited for,
/// when the collector falls behind).
pub struct Otlp {
    provider: SdkTracerProvider,
}

impl Otlp {
    /// Builds the exporter for `endpoint` (see [`traces_url`]). Nothing is
    /// sent until spans end; an unreachable collector is not an error here.
    pub fn start(endpoint: &str) -> anyhow::Result<Otlp> {
        let url = traces_url(endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .build()?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(SERVICE_NAME)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Otlp { provider })
    }

    /// The `tracing` layer feeding the exporter: the gateway's own spans
    /// (target `partner_gateway`, INFO and up) and its events inside them.
    /// Other crates' spans (sqlx, hyper, the exporter's own client) stay out.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let tracer = self.provider.tracer(SERVICE_NAME);
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_threads(false)
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("partner_gateway", tracing::Level::INFO),
            )
    }

    /// Exports every span ended so far and stops the exporter: at shutdown,
    /// after the server has stopped. Waits for the collector at most the
    /// SDK's export timeout; a failure is reported, never fatal.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("otlp: the last spans were not exported: {e}");
        }
    }
}

/// Makes `span` (a request's root span) the gateway's span of `trace`:
/// the child of the client's span when its `traceparent` was joined, and
/// `trace` takes the exported span's ids so that everything else (logs,
/// the decision record, the store's `traceparent`) names them. Nothing
/// happens unless spans are exported.
pub fn adopt(span: &tracing::Span, trace: &mut TraceContext) {
    if let Some(parent) = remote_parent(trace) {
        // Fails only if the span is not recorded by the layer (filtered out).
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    let cx = span.context();
    let ours = cx.span().span_context().clone();
    if !ours.is_valid() {
        return;
    }
    // The SDK's ids are as valid as ours: 16 and 8 bytes, not all zero.
    if let (Some(trace_id), Some(span_id)) = (
        HexId::of(&ours.trace_id().to_bytes()),
        HexId::of(&ours.span_id().to_bytes()),
    ) {
        trace.trace_id = trace_id;
        trace.span_id = span_id;
    }
    if !trace.joined {
        // A new trace is sampled as the SDK decided (a joined one keeps the
        // client's flags: the SDK follows the client's sampled bit).
        trace.flags = ours.trace_flags().to_u8();
    }
}

/// The client's span, from its `traceparent` and `tracestate`.
fn remote_parent(trace: &TraceContext) -> Option<SpanContext> {
    let parent = trace.client_span_id?;
    let state = trace
        .state
        .as_deref()
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        TraceId::from_hex(trace.trace_id.as_str()).ok()?,
        SpanId::from_hex(parent.as_str()).ok()?,
        TraceFlags::new(trace.flags),
        true,
        state,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_parent_is_the_clients_span() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        headers.insert("tracestate", "congo=t61rcWkgMzE".parse().unwrap());
        let trace = TraceContext::from_headers(&headers);
        let parent = remote_parent(&trace).expect("joined");
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
        assert!(parent.is_sampled() && parent.is_remote());
        assert_eq!(parent.trace_state().get("congo"), Some("t61rcWkgMzE"));
        let fresh = TraceContext::from_headers(&http::HeaderMap::new());
        assert!(remote_parent(&fresh).is_none());
    }

    #[test]
    fn the_exported_span_lends_its_ids_to_the_trace() {
        use tracing_subscriber::layer::SubscriberExt as _;
        // Nothing listens there: exporting fails, which never matters here.
        let otlp = Otlp::start("http://127.0.0.1:9").unwrap();
        let subscriber = tracing_subscriber::registry().with(otlp.layer());
        let ids = |span: &tracing::Span| span.context().span().span_context().clone();
        tracing::subscriber::with_default(subscriber, || {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                    .parse()
                    .unwrap(),
            );
            let mut joined = TraceContext::from_headers(&headers);
            let span = tracing::info_span!("request");
            adopt(&span, &mut joined);
            let exported = ids(&span);
            assert_eq!(joined.trace_id.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(exported.trace_id().to_string(), joined.trace_id.as_str());
            // The store's parent is the exported span, not the client's.
            assert_eq!(exported.span_id().to_string(), joined.span_id.as_str());
            assert_ne!(joined.span_id.as_str(), "00f067aa0ba902b7");
            assert_eq!(joined.flags, 1);

            let mut fresh = TraceContext::from_headers(&http::HeaderMap::new());
            let span = tracing::info_span!("request");
            adopt(&span, &mut fresh);
            let exported = ids(&span);
            assert_eq!(exported.trace_id().to_string(), fresh.trace_id.as_str());
            assert_eq!(exported.span_id().to_string(), fresh.span_id.as_str());
            assert_eq!(fresh.flags, 1, "a new trace is sampled");
            assert!(fresh.traceparent().to_string().ends_with("-01"));
        });
    }
}
