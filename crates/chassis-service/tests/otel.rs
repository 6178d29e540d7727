//! Issue 12 §4: spans exported over OTLP/HTTP to a receiver this test runs on
//! loopback, which decodes the protobuf: a request with a caller's trace →
//! its task → the task's call to the next service arrive as one trace with
//! the right parents (the scenario is in `support/trace.rs`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/trace.rs"]
mod scenario;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use scenario::Seen;
use tracing_subscriber::prelude::*;

/// An OTLP/HTTP receiver: every span of every `POST /v1/traces`, and the
/// service names of their resources.
async fn receiver() -> (SocketAddr, Arc<Mutex<Vec<(String, Span)>>>) {
    let spans: Arc<Mutex<Vec<(String, Span)>>> = Arc::default();
    let store = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                for resource_spans in request.resource_spans {
                    let service = resource_spans
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref())
                        .map(|v| format!("{:?}", v.value))
                        .unwrap_or_default();
                    for scope in resource_spans.scope_spans {
                        store.lock().unwrap().extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                    }
                }
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, spans)
}

fn attribute(span: &Span, key: &str) -> String {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .map(|v| format!("{:?}", v.value))
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_its_task_and_the_next_request_are_one_exported_trace() {
    let (collector, spans) = receiver().await;
    let mut otel = chassis_service::otel::Config::default();
    otel.endpoint = Some(format!("http://{collector}"));
    let (layer, guard) = chassis_service::otel::layer(&otel, "svc", "1.0.0").unwrap().expect("enabled");
    tracing_subscriber::registry().with(layer).init();

    let exported = || {
        let spans = spans.lock().unwrap();
        spans
            .iter()
            .map(|(_, s)| Seen {
                name: s.name.clone(),
                url_path: attribute(s, "url.path"),
                trace_id: hex(&s.trace_id),
                span_id: hex(&s.span_id),
                parent_span_id: hex(&s.parent_span_id),
            })
            .collect()
    };
    let (found, all) = scenario::run(|| guard.flush(), exported).await;
    scenario::assert_one_trace(&found, &all);
    let services: Vec<String> = spans.lock().unwrap().iter().map(|(service, _)| service.clone()).collect();
    assert!(services.iter().all(|s| s.contains("svc")), "{services:?}");
    drop(guard);
}
