//! Issue 12: trace continuity across HTTP → task → HTTP with OpenTelemetry's
//! in-memory span exporter (no network in the export path): the same scenario
//! as `otel.rs` (`support/trace.rs`), the spans read back from the exporter.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/trace.rs"]
mod scenario;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use scenario::Seen;
use tracing_subscriber::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_its_task_and_the_next_request_are_one_trace_in_memory() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    tracing_subscriber::registry().with(layer).init();

    let exported = || {
        exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .map(|s| Seen {
                name: s.name.to_string(),
                url_path: s
                    .attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == "url.path")
                    .map(|kv| kv.value.to_string())
                    .unwrap_or_default(),
                trace_id: s.span_context.trace_id().to_string(),
                span_id: s.span_context.span_id().to_string(),
                parent_span_id: s.parent_span_id.to_string(),
            })
            .collect()
    };
    let (found, all) = scenario::run(|| {}, exported).await;
    scenario::assert_one_trace(&found, &all);
    provider.shutdown().unwrap();
}
