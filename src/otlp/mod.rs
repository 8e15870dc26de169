//! Optional OTLP trace export (`--otlp-endpoint`): the gateway's spans
//! (`request` and one per stage) sent to an OpenTelemetry collector as
//! OTLP/HTTP protobuf, in batches by a thread of the SDK, off the request
//! path. Off by default: without the option the request path does no
//! OpenTelemetry work.
//!
//! The exporter and its dependencies (the OpenTelemetry SDK, protobuf, an
//! HTTP client) are compiled only with the cargo feature `otlp`
//! (`cargo build --features otlp`). Without it, an endpoint is refused
//! when the configuration is read, saying how to get a build that has it.
//!
//! The exported `request` span is a child of the client's `traceparent`
//! (same trace id, the client's span as parent); for a new trace its ids
//! are the SDK's, so logs, decision records, the store's `traceparent` and
//! the exported spans all name the same trace and span.

#[cfg(feature = "otlp")]
mod export;
#[cfg(feature = "otlp")]
pub use export::{adopt, Otlp};
#[cfg(not(feature = "otlp"))]
pub use without::{adopt, Otlp};

/// The OTLP/HTTP path of traces, added to an endpoint given without a path.
const TRACES_PATH: &str = "/v1/traces";

/// The URL spans are posted to: `endpoint` as given, or with `/v1/traces`
/// when it has no path (`http://collector:4318`). Plain `http` only: the
/// client carries no TLS stack (a collector or agent next to the gateway
/// takes it further).
pub fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        cfg!(feature = "otlp"),
        "otlp_endpoint {endpoint:?}: this build has no OTLP export; build with `cargo build --release --features otlp`"
    );
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| anyhow::anyhow!("otlp_endpoint {endpoint:?} is not a URL: {e}"))?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http") && uri.host().is_some(),
        "otlp_endpoint must be an http:// URL (OTLP/HTTP, e.g. http://collector:4318/v1/traces), not {endpoint:?}"
    );
    Ok(match uri.path() {
        "" | "/" => format!("{}{TRACES_PATH}", endpoint.trim_end_matches('/')),
        _ => endpoint.to_owned(),
    })
}

/// A build without the `otlp` feature: nothing is exported, and no
/// exporter can exist (the configuration refuses an endpoint).
#[cfg(not(feature = "otlp"))]
mod without {
    pub enum Otlp {}

    impl Otlp {
        pub fn start(endpoint: &str) -> anyhow::Result<Otlp> {
            super::traces_url(endpoint)?;
            anyhow::bail!("this build has no OTLP export")
        }

        pub fn layer(&self) -> tracing_subscriber::layer::Identity {
            match *self {}
        }

        pub fn shutdown(&self) {
            match *self {}
        }
    }

    /// Nothing to adopt: the trace context stays the one read from the request.
    pub fn adopt(_: &tracing::Span, _: &mut crate::trace::TraceContext) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "otlp")]
    #[test]
    fn endpoints_are_http_urls_with_the_traces_path_by_default() {
        assert_eq!(
            traces_url("http://collector:4318").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://10.0.0.1:4318/otlp/v1/traces").unwrap(),
            "http://10.0.0.1:4318/otlp/v1/traces"
        );
        for bad in [
            "https://collector:4318",
            "collector:4318",
            "grpc://c:4317",
            "",
        ] {
            assert!(traces_url(bad).is_err(), "{bad}");
        }
    }

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn an_endpoint_is_refused_without_the_feature() {
        let e = traces_url("http://collector:4318").unwrap_err().to_string();
        assert!(e.contains("--features otlp"), "{e}");
    }
}
