//! Issue 12 §4: spans exported over OTLP/HTTP to a receiver this test runs on
//! loopback, which decodes the protobuf: a request with a caller's trace →
//! its task → the task's call to the next service arrive as one trace with
//! the right parents.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chassis_service::{Config, Service};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::Value;
use tracing_subscriber::prelude::*;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn free_addr() -> SocketAddr {
    chassis_testkit::free_addr().unwrap()
}

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

    let mut config = Config::default();
    config.http_addr = free_addr();
    config.admin_addr = free_addr();
    config.drain_delay_secs = 0;
    let (api, admin) = (config.http_addr, config.admin_addr);
    let mut service = Service::new("svc", "1.0.0", config);
    let queue = chassis_tasks::MemoryQueue::new("otel-tasks");
    let producer = chassis_tasks::Producer::new(queue.clone());
    let client = chassis_breaker::client(chassis_breaker::Registry::new(Default::default()).unwrap()).unwrap();
    let mut registry = chassis_tasks::Registry::new();
    registry
        .task("call_next", move |_: Value, _ctx: chassis_tasks::TaskContext| {
            let client = client.clone();
            async move {
                let response = client.get(format!("http://{api}/next")).send().await;
                response.map(|_| ()).map_err(|e| e.to_string())
            }
        })
        .unwrap();
    let start = move || {
        let producer = producer.clone();
        async move {
            producer.send(producer.task("call_next", &serde_json::json!({}))).await.unwrap();
            "sent"
        }
    };
    service.router(
        axum::Router::new()
            .route("/start", axum::routing::post(start))
            .route("/next", axum::routing::get(|| async { "ok" })),
    );
    let mut tasks = chassis_tasks::Config::new("otel-tasks");
    tasks.wait_time_secs = 1;
    let worker = chassis_tasks::Worker::new(queue, registry, tasks).unwrap();
    service.spawn("worker", move |token| async move {
        worker.run(token).await;
    });
    let shutdown = service.shutdown_token();
    let running = tokio::spawn(service.run());
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("http://{admin}/livez")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = http.post(format!("http://{api}/start")).header("traceparent", CALLER).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let mut found = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        guard.flush();
        let spans = spans.lock().unwrap().clone();
        let by = |name: &str, path: Option<&str>| {
            spans
                .iter()
                .find(|(_, s)| s.name == name && path.is_none_or(|p| attribute(s, "url.path").contains(p)))
                .cloned()
        };
        if let (Some(start), Some(task), Some(next)) =
            (by("request", Some("/start")), by("task", None), by("request", Some("/next")))
        {
            found = Some((start, task, next));
            break;
        }
    }
    let ((service_name, start), (_, task), (_, next)) =
        found.unwrap_or_else(|| panic!("spans: {:#?}", spans.lock().unwrap()));
    assert!(service_name.contains("svc"), "{service_name}");
    let probes: Vec<_> =
        spans.lock().unwrap().iter().filter(|(_, s)| attribute(s, "url.path").contains("/livez")).cloned().collect();
    assert!(probes.is_empty(), "probes are not traced: {probes:?}");
    let caller = chassis_trace::TraceContext::parse(CALLER, None).unwrap();
    for span in [&start, &task, &next] {
        assert_eq!(hex(&span.trace_id), caller.trace_id(), "one trace: {span:?}");
    }
    assert_eq!(hex(&start.parent_span_id), caller.span_id(), "the request is the caller's child");
    assert_eq!(hex(&task.parent_span_id), hex(&start.span_id), "the task is the request's child");
    assert_eq!(hex(&next.parent_span_id), hex(&task.span_id), "the next request is the task's child");
    shutdown.cancel();
    running.await.unwrap().unwrap();
    drop(guard);
}
