//! OpenTelemetry export (feature `otel`): every span, to an OTLP/HTTP
//! collector in protobuf, batched on a thread of its own.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::EnvResourceDetector;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};

/// The `otel` section. The standard variables apply too:
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (when `endpoint` is not set),
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
/// `OTEL_SERVICE_NAME` (over the service's own name),
/// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and
/// `OTEL_TRACES_SAMPLER_ARG` (default: every trace, or as the caller's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Whether spans are exported. Default: true (the feature is the switch
    /// that costs; this one turns it off without a rebuild).
    pub enabled: bool,
    /// The collector's OTLP/HTTP base URL; spans go to `<endpoint>/v1/traces`.
    /// Default: none — `OTEL_EXPORTER_OTLP_ENDPOINT`, else
    /// `http://localhost:4318`.
    pub endpoint: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self { enabled: true, endpoint: None }
    }
}

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The exporter could not be built (a bad endpoint, a bad variable).
    #[error("cannot build the OTLP exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// The thread that builds it could not run.
    #[error("cannot start the OTLP exporter's thread")]
    Thread,
}

/// Flushes and stops the export when dropped: keep it until the end of `main`.
#[derive(Debug)]
#[must_use = "dropping it stops the export"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Guard {
    /// Exports every span ended so far and waits for the collector's answer.
    pub fn flush(&self) {
        if let Some(provider) = self.provider.clone() {
            // The exporter's blocking HTTP client must not run on the async runtime.
            let _ = std::thread::spawn(move || provider.force_flush()).join();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = std::thread::spawn(move || provider.shutdown_with_timeout(Duration::from_secs(5))).join();
        }
    }
}

/// The layer that exports every span of the subscriber it is installed in
/// (give it to `chassis_log::init_with`), and its [`Guard`]. `None` when
/// `config.enabled` is false.
///
/// The resource is `service.name` = `service` (unless `OTEL_SERVICE_NAME`),
/// `service.version` = `version`, and `OTEL_RESOURCE_ATTRIBUTES`.
///
/// # Errors
/// [`Error::Exporter`]: a bad endpoint or `OTEL_EXPORTER_OTLP_*` variable.
pub fn layer(config: &Config, service: &str, version: &str) -> Result<Option<(chassis_log::ExtraLayer, Guard)>, Error> {
    if !config.enabled {
        return Ok(None);
    }
    let endpoint = config.endpoint.as_ref().map(|e| format!("{}/v1/traces", e.trim_end_matches('/')));
    let (service, version) = (service.to_owned(), version.to_owned());
    // The blocking HTTP client is built (and later dropped) off the runtime.
    let provider = std::thread::spawn(move || {
        let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let exporter = builder.build().map_err(Error::Exporter)?;
        #[allow(clippy::disallowed_methods)] // the standard variable wins over the configured name
        let name = std::env::var("OTEL_SERVICE_NAME").ok().filter(|n| !n.is_empty()).unwrap_or(service);
        let resource = Resource::builder_empty()
            .with_detectors(&[Box::new(EnvResourceDetector::new())])
            .with_service_name(name)
            .with_attribute(KeyValue::new("service.version", version))
            .build();
        Ok::<_, Error>(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
    })
    .join()
    .map_err(|_| Error::Thread)??;
    let tracer = provider.tracer("chassis");
    let layer: chassis_log::ExtraLayer = Box::new(tracing_opentelemetry::layer().with_tracer(tracer));
    Ok(Some((layer, Guard { provider: Some(provider) })))
}
