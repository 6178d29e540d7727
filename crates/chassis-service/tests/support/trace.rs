//! The scenario the OpenTelemetry tests share (issue 12 §3, §4): a request
//! carrying a caller's trace starts a task; the task calls the service's next
//! route through the breaker client. Each test installs its own exporter as
//! the global subscriber, runs [`run`] and reads the spans back as [`Seen`].

use std::net::SocketAddr;
use std::time::Duration;

use chassis_service::{Config, Service};
use serde_json::Value;

/// The caller's `traceparent` on the first request.
pub(crate) const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One exported span, as the tests compare them: ids in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) name: String,
    pub(crate) url_path: String,
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) parent_span_id: String,
}

fn free_addr() -> SocketAddr {
    chassis_testkit::free_addr().unwrap()
}

/// Runs the scenario, then calls `exported` (after `flush`) until it holds the
/// three spans; returns them (`/start`, the task, `/next`) and every span seen.
pub(crate) async fn run(flush: impl Fn(), exported: impl Fn() -> Vec<Seen>) -> ([Seen; 3], Vec<Seen>) {
    let mut config = Config::default();
    config.http_addr = free_addr();
    config.admin_addr = free_addr();
    config.drain_delay_secs = 0;
    let (api, admin) = (config.http_addr, config.admin_addr);
    let mut service = Service::new("svc", "1.0.0", config);
    let queue = chassis_tasks::MemoryQueue::new("otel-tasks");
    let producer = chassis_tasks::Producer::new(queue.clone());
    let client = chassis_breaker::client(chassis_breaker::Breakers::new(Default::default()).unwrap()).unwrap();
    let mut handlers = chassis_tasks::Handlers::new();
    handlers
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
    let worker = chassis_tasks::Worker::new(queue, handlers, tasks).unwrap();
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
    let mut spans = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        flush();
        spans = exported();
        let by = |name: &str, path: Option<&str>| {
            spans.iter().find(|s| s.name == name && path.is_none_or(|p| s.url_path.contains(p))).cloned()
        };
        if let (Some(start), Some(task), Some(next)) =
            (by("request", Some("/start")), by("task", None), by("request", Some("/next")))
        {
            found = Some([start, task, next]);
            break;
        }
    }
    let found = found.unwrap_or_else(|| panic!("spans: {spans:#?}"));
    shutdown.cancel();
    running.await.unwrap().unwrap();
    (found, spans)
}

/// The assertions both exporters must pass: one trace, continued from the
/// caller, with the request → task → next request parent links; no probe traced.
pub(crate) fn assert_one_trace([start, task, next]: &[Seen; 3], all: &[Seen]) {
    let probes: Vec<_> = all.iter().filter(|s| s.url_path.contains("/livez")).collect();
    assert!(probes.is_empty(), "probes are not traced: {probes:?}");
    let caller = chassis_trace::TraceContext::parse(CALLER, None).unwrap();
    for span in [start, task, next] {
        assert_eq!(span.trace_id, caller.trace_id(), "one trace: {span:?}");
    }
    assert_eq!(start.parent_span_id, caller.span_id(), "the request is the caller's child");
    assert_eq!(task.parent_span_id, start.span_id, "the task is the request's child");
    assert_eq!(next.parent_span_id, task.span_id, "the next request is the task's child");
}
