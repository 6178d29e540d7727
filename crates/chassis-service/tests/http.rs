//! The API's default middleware stack, end to end: request spans and ids in
//! captured JSON log lines, timeouts, body limits, panics, quiet probes.
//!
//! One test binary, one global subscriber: every test filters the captured
//! lines by its own request ids.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use chassis_service::{CancellationToken, Config, Service};
use serde_json::{Map, Value};

/// The global JSON subscriber's capture (chassis-testkit), at every level.
fn capture() -> &'static chassis_testkit::logs::Capture {
    let mut config = chassis_log::Config::new("svc", "1.0.0");
    config.filter = "trace".into();
    chassis_testkit::logs::capture(&config)
}

fn free_addr() -> SocketAddr {
    chassis_testkit::free_addr().unwrap()
}

struct Running {
    api: SocketAddr,
    admin: SocketAddr,
    shutdown: CancellationToken,
    client: reqwest::Client,
}

impl Running {
    async fn get(&self, path: &str, request_id: &str) -> reqwest::Response {
        self.client.get(format!("http://{}{path}", self.api)).header("x-request-id", request_id).send().await.unwrap()
    }
}

async fn start(configure: impl FnOnce(&mut Config)) -> Running {
    capture();
    let mut config = Config::default();
    config.http_addr = free_addr();
    config.admin_addr = free_addr();
    config.drain_delay_secs = 0;
    configure(&mut config);
    let (api, admin) = (config.http_addr, config.admin_addr);
    let mut service = Service::new("svc", "1.0.0", config);
    service.router(
        axum::Router::new()
            .route(
                "/items/{id}",
                axum::routing::get(|axum::extract::Path(id): axum::extract::Path<u32>| async move {
                    tracing::info!(id, "inside the handler");
                    format!("item {id}")
                }),
            )
            .route(
                "/boom",
                axum::routing::get(|| async {
                    #[allow(clippy::panic, unreachable_code)]
                    {
                        panic!("the handler blew up");
                        ""
                    }
                }),
            )
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route(
                "/hold",
                axum::routing::put(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "released"
                }),
            )
            .route("/echo", axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }))
            .route("/teapot", axum::routing::get(|| async { axum::http::StatusCode::IM_A_TEAPOT })),
    );
    let shutdown = service.shutdown_token();
    tokio::spawn(service.run());
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("http://{admin}/livez")).send().await.is_ok() {
            return Running { api, admin, shutdown, client };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the service never started");
}

/// The captured lines carrying `request_id`, waiting a little for the last one.
async fn lines_of(request_id: &str, at_least: usize) -> Vec<Map<String, Value>> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines =
            capture().lines().into_iter().filter(|l| l.get("request_id").is_some_and(|r| r == request_id)).collect();
        if lines.len() >= at_least {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lines
}

fn request_line(lines: &[Map<String, Value>]) -> &Map<String, Value> {
    lines.iter().find(|l| l["message"] == "request").unwrap_or_else(|| panic!("no request line in {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_has_a_span_an_id_and_one_line() {
    let svc = start(|_| {}).await;
    let response = svc.get("/items/42", "req-abc-123").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-abc-123", "the id is returned");

    let lines = lines_of("req-abc-123", 2).await;
    let inside = lines.iter().find(|l| l["message"] == "inside the handler").expect("the handler's line has the id");
    assert_eq!(inside["http.route"], "/items/{id}");
    let line = request_line(&lines);
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["http.request.method"], "GET");
    assert_eq!(line["http.route"], "/items/{id}");
    assert_eq!(line["url.path"], "/items/42");
    assert_eq!(line["http.response.status_code"], 200);
    assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line:?}");

    // No id sent: one is generated, a UUID v7, and returned.
    let response = svc.client.get(format!("http://{}/items/7", svc.api)).send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7, "{id}");
    assert_eq!(request_line(&lines_of(&id, 2).await)["url.path"], "/items/7");

    // A 4xx is INFO by default; an unmatched route has no template.
    let teapot = svc.get("/teapot", "req-teapot").await;
    assert_eq!(teapot.status(), 418);
    assert_eq!(request_line(&lines_of("req-teapot", 1).await)["level"], "INFO");
    let missing = svc.get("/no/such/route", "req-404").await;
    assert_eq!(missing.status(), 404);
    let line = lines_of("req-404", 1).await;
    assert!(request_line(&line).get("http.route").is_none_or(|r| r == ""), "{line:?}");
    svc.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_can_be_warnings() {
    let svc = start(|c| c.http.client_error_level = chassis_service::http::ClientErrorLevel::Warn).await;
    assert_eq!(svc.get("/teapot", "req-teapot-warn").await.status(), 418);
    assert_eq!(request_line(&lines_of("req-teapot-warn", 1).await)["level"], "WARN");
    svc.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_500_and_the_service_stays_up() {
    let svc = start(|_| {}).await;
    let response = svc.get("/boom", "req-boom").await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-request-id"], "req-boom");
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).expect("a JSON body");
    assert_eq!(body["status"], 500, "{body}");
    assert!(!body.to_string().contains("blew up"), "the panic message is not sent to the client: {body}");
    let line = request_line(&lines_of("req-boom", 1).await).clone();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["http.response.status_code"], 500);
    assert_eq!(svc.get("/items/1", "req-after-boom").await.status(), 200, "still serving");
    svc.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_times_out_with_a_json_error() {
    let svc = start(|c| c.http.request_timeout_ms = 100).await;
    let response = svc.get("/slow", "req-slow").await;
    assert_eq!(response.status(), 408);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).expect("a JSON body");
    assert_eq!(body["status"], 408, "{body}");
    assert_eq!(request_line(&lines_of("req-slow", 1).await)["http.response.status_code"], 408);
    svc.shutdown.cancel();

    let svc = start(|c| {
        c.http.request_timeout_ms = 100;
        c.http.timeout_status = 503;
    })
    .await;
    assert_eq!(svc.get("/slow", "req-slow-503").await.status(), 503);
    svc.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_a_413() {
    let svc = start(|c| c.http.body_limit_bytes = 1024).await;
    let url = format!("http://{}/echo", svc.api);
    let small = svc.client.post(&url).header("x-request-id", "req-small").body(vec![b'x'; 1000]).send().await.unwrap();
    assert_eq!(small.text().await.unwrap(), "1000");
    let large = svc.client.post(&url).header("x-request-id", "req-large").body(vec![b'x'; 4096]).send().await.unwrap();
    assert_eq!(large.status(), 413);
    assert_eq!(request_line(&lines_of("req-large", 1).await)["level"], "INFO");
    svc.shutdown.cancel();
}

#[test]
fn the_section_has_documented_defaults_and_refuses_bad_values() {
    let config: Config = serde_json::from_value(serde_json::json!({})).unwrap();
    assert_eq!(config.http.request_timeout_ms, 30_000);
    assert_eq!(config.http.timeout_status, 408);
    assert_eq!(config.http.body_limit_bytes, 2 * 1024 * 1024);
    let err = serde_json::from_value::<Config>(serde_json::json!({"http": {"timeout_status": 500}})).unwrap_err();
    assert!(err.to_string().contains("408 or 503"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_not_logged_but_carry_ids() {
    let svc = start(|_| {}).await;
    for path in ["/livez", "/readyz", "/info"] {
        let id = format!("req-admin{path}");
        let response =
            svc.client.get(format!("http://{}{path}", svc.admin)).header("x-request-id", &id).send().await.unwrap();
        assert_eq!(response.headers()["x-request-id"], id.as_str());
    }
    let info = lines_of("req-admin/info", 1).await;
    assert_eq!(request_line(&info)["http.route"], "/info");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(lines_of("req-admin/livez", 1).await.is_empty(), "no line per probe");
    assert!(lines_of("req-admin/readyz", 1).await.is_empty(), "no line per probe");
    svc.shutdown.cancel();
}

/// The `/metrics` line of `name` whose labels include every one of `labels`.
fn sample<'a>(metrics: &'a str, name: &str, labels: &[&str]) -> Option<&'a str> {
    metrics.lines().find(|l| {
        l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            && labels.iter().all(|label| l.contains(label))
    })
}

fn value(line: Option<&str>) -> f64 {
    line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_metrics_by_route_template_build_info_and_process_metrics() {
    let svc = start(|_| {}).await;
    for id in ["red-1", "red-2", "red-3"] {
        assert_eq!(svc.get(&format!("/items/{}", id.len() + 1000), id).await.status(), 200);
    }
    assert_eq!(svc.get("/no/such/route/red", "red-404").await.status(), 404);
    let metrics = svc.client.get(format!("http://{}/metrics", svc.admin)).send().await.unwrap().text().await.unwrap();

    let name = "http_server_request_duration_seconds_count";
    let ok = ["http_request_method=\"GET\"", "http_route=\"/items/{id}\"", "http_response_status_code=\"200\""];
    assert!(value(sample(&metrics, name, &ok)) >= 3.0, "{metrics}");
    assert!(!metrics.contains("/items/1004"), "never the raw path: {metrics}");
    let unmatched = ["http_route=\"\"", "http_response_status_code=\"404\""];
    assert!(value(sample(&metrics, name, &unmatched)) >= 1.0, "unmatched routes are one bucket: {metrics}");
    assert!(sample(&metrics, "http_server_request_duration_seconds_bucket", &["le=\"0.005\""]).is_some(), "{metrics}");
    assert!(sample(&metrics, "http_server_active_requests", &["http_request_method=\"GET\""]).is_some(), "{metrics}");
    let build = ["service=\"svc\"", "version=\"1.0.0\"", "chassis_version=\"0.1.0\""];
    assert_eq!(value(sample(&metrics, "chassis_build_info", &build)), 1.0, "{metrics}");
    assert!(sample(&metrics, "process_cpu_seconds_total", &[]).is_some(), "{metrics}");
    for process in
        ["process_resident_memory_bytes", "process_open_fds", "process_threads", "process_start_time_seconds"]
    {
        assert!(value(sample(&metrics, process, &[])) > 0.0, "{process}: {metrics}");
    }
    // Every metric has a description.
    for line in metrics.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(metrics.contains(&format!("# HELP {name} ")), "{name} has no # HELP: {metrics}");
    }
    svc.shutdown.cancel();
}

/// `http_server_active_requests` counts a request until it ends, and a
/// request whose client went away until its handler is dropped. (PUT: no
/// other test of this binary sends one, and the gauge is per method.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_request_is_counted_until_it_ends_or_its_client_leaves() {
    let svc = start(|_| {}).await;
    let metrics_url = format!("http://{}/metrics", svc.admin);
    let active = || async {
        let metrics = svc.client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
        value(sample(&metrics, "http_server_active_requests", &["http_request_method=\"PUT\""]))
    };
    let until = |want: f64| async move {
        for _ in 0..250 {
            if active().await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("http_server_active_requests{{PUT}} never became {want}, it is {}", active().await);
    };
    let held = tokio::spawn(svc.client.put(format!("http://{}/hold", svc.api)).send());
    until(1.0).await;
    held.abort(); // the client leaves: the connection closes, the server drops the handler
    until(0.0).await;
    assert_eq!(svc.client.put(format!("http://{}/items/1", svc.api)).send().await.unwrap().status(), 405);
    until(0.0).await;
    svc.shutdown.cancel();
}

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn trace_of(line: &Map<String, Value>) -> chassis_trace::TraceContext {
    let traceparent =
        line.get("traceparent").and_then(Value::as_str).unwrap_or_else(|| panic!("no traceparent: {line:?}"));
    chassis_trace::TraceContext::parse(traceparent, None).unwrap()
}

/// Issue 12 §3: a request with the caller's `traceparent` sends a task; the
/// worker runs it and calls the next service through the breaker's client;
/// all three share the caller's trace, each a child of the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_a_request_through_a_task_to_the_next_request() {
    capture();
    let mut config = Config::default();
    config.http_addr = free_addr();
    config.admin_addr = free_addr();
    config.drain_delay_secs = 0;
    let (api, admin) = (config.http_addr, config.admin_addr);
    let mut service = Service::new("svc", "1.0.0", config);
    let queue = chassis_tasks::MemoryQueue::new("trace-tasks");
    let producer = chassis_tasks::Producer::new(queue.clone());
    let client = chassis_breaker::client(chassis_breaker::Breakers::new(Default::default()).unwrap()).unwrap();
    let mut handlers = chassis_tasks::Handlers::new();
    handlers
        .task("call_next", move |_: Value, _ctx: chassis_tasks::TaskContext| {
            let client = client.clone();
            async move {
                tracing::info!("in the task");
                let url = format!("http://{api}/next");
                let response = client.get(url).header("x-request-id", "trace-next").send().await;
                response.map(|_| ()).map_err(|e| e.to_string())
            }
        })
        .unwrap();
    let next = |headers: axum::http::HeaderMap| async move {
        let received = headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        tracing::info!(received, "in the next service");
        "ok"
    };
    let start = move || {
        let producer = producer.clone();
        async move {
            producer.send(producer.task("call_next", &serde_json::json!({}))).await.unwrap();
            "sent"
        }
    };
    service.router(
        axum::Router::new().route("/start", axum::routing::post(start)).route("/next", axum::routing::get(next)),
    );
    let mut tasks = chassis_tasks::Config::new("trace-tasks");
    tasks.wait_time_secs = 1;
    let worker = chassis_tasks::Worker::new(queue, handlers, tasks).unwrap();
    service.spawn("worker", move |token| async move {
        worker.run(token).await;
    });
    let shutdown = service.shutdown_token();
    tokio::spawn(service.run());
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("http://{admin}/livez")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = client
        .post(format!("http://{api}/start"))
        .header("x-request-id", "trace-start")
        .header("traceparent", CALLER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let caller = chassis_trace::TraceContext::parse(CALLER, None).unwrap();
    let start = trace_of(request_line(&lines_of("trace-start", 1).await));
    assert_eq!(start.trace_id(), caller.trace_id(), "the request continues the caller's trace");
    assert_ne!(start.span_id(), caller.span_id(), "in a span of its own");

    let next_lines = lines_of("trace-next", 2).await;
    let task_line = capture().lines().into_iter().find(|l| l["message"] == "in the task").expect("the task ran");
    let task = trace_of(&task_line);
    assert_eq!(task.trace_id(), caller.trace_id(), "the task continues the request's trace: {task_line:?}");
    assert_eq!(task_line["trace_parent_span_id"], start.span_id(), "a child of the request's span");
    let next_line = next_lines.iter().find(|l| l["message"] == "in the next service").unwrap();
    assert_eq!(next_line["received"], task.traceparent(), "the client sends the task's context");
    let next = trace_of(request_line(&next_lines));
    assert_eq!(next.trace_id(), caller.trace_id(), "the next request continues it");
    shutdown.cancel();
}
