//! End to end: the quickstart as a child process — drive its API until a job
//! succeeds (through a flaky downstream and the breaker), check /readyz and
//! /metrics, send SIGTERM, expect a clean exit with no task lost. Again on SQS
//! (moto) and PostgreSQL when those features are built.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn free_addr() -> SocketAddr {
    chassis_testkit::free_addr().unwrap()
}

/// The example binary: `target/<profile>/examples/quickstart`, which
/// `cargo build --examples` (with this run's features) leaves there — scripts/test
/// builds it before each test run. (`cargo test` alone builds examples under
/// hashed names and does not refresh this one.)
fn quickstart_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().and_then(|deps| deps.parent()).unwrap().join("examples").join("quickstart");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --examples` with the same features first",
        binary.display()
    );
    binary
}

/// The request id of `POST /jobs` in these tests.
const START_JOB: &str = "start-job-1";

struct Quickstart {
    child: Option<Child>,
    /// Its stdout (the logs), drained as it is written: a pipe nobody reads
    /// fills up and blocks the service's next log line.
    stdout: Option<std::thread::JoinHandle<String>>,
    api: SocketAddr,
    admin: SocketAddr,
    dir: Option<tempfile::TempDir>,
}

impl Quickstart {
    fn start(extra_env: &[(&str, String)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), extra_env)
    }

    /// Starts it in `dir`, where its `data/` is (the task queue's and the job store's files).
    fn start_in(dir: tempfile::TempDir, extra_env: &[(&str, String)]) -> Self {
        let (api, admin) = (free_addr(), free_addr());
        let mut command = Command::new(quickstart_binary());
        command
            .current_dir(dir.path())
            .env("APP_SERVICE__HTTP_ADDR", api.to_string())
            .env("APP_SERVICE__ADMIN_ADDR", admin.to_string())
            .env("APP_JOBS__PATH", dir.path().join("jobs.db"))
            .env("APP_LOG__FORMAT", "json")
            // The pricing service fails the first 2 s of every 60 from its first
            // request: the job's first tasks fail, the breaker opens, tasks wait,
            // it recovers.
            .env("APP_DOWNSTREAM__FAIL_EVERY_SECS", "60")
            .env("APP_DOWNSTREAM__FAIL_FOR_SECS", "2")
            .env("APP_BREAKER__OPEN_TIMEOUT_MS", "500")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("stderr.log")).unwrap()));
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let mut pipe = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut logs = Vec::new();
            let _ = std::io::Read::read_to_end(&mut pipe, &mut logs);
            String::from_utf8_lossy(&logs).into_owned()
        });
        Self { child: Some(child), stdout: Some(stdout), api, admin, dir: Some(dir) }
    }

    fn stderr(&self) -> String {
        self.dir
            .as_ref()
            .map(|d| std::fs::read_to_string(d.path().join("stderr.log")).unwrap_or_default())
            .unwrap_or_default()
    }

    /// SIGKILL: no shutdown at all. Returns its directory, for a restart.
    fn kill(mut self) -> tempfile::TempDir {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.dir.take().unwrap()
    }

    async fn get(&self, addr: SocketAddr, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(response) = reqwest::get(format!("http://{}/readyz", self.admin)).await {
                if response.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("the quickstart exited with {status} before it was ready:\n{}", self.stderr());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the quickstart never became ready:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts a job of `items` tasks; its id.
    async fn start_job(&self, items: u32) -> String {
        let client = reqwest::Client::new();
        let response = client
            .post(format!("http://{}/jobs", self.api))
            .header("x-request-id", START_JOB)
            .json(&json!({ "items": items }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(response.headers()["x-request-id"], START_JOB);
        let job: Value = response.json().await.unwrap();
        job["id"].as_str().unwrap().to_owned()
    }

    async fn job(&self, id: &str) -> Value {
        let (status, body) = self.get(self.api, &format!("/jobs/{id}")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Starts a job of `items` tasks and waits for it to finish.
    async fn run_job(&self, items: u32) -> Value {
        let id = self.start_job(items).await;
        self.wait_job(&id).await
    }

    /// Waits for job `id` to finish.
    async fn wait_job(&self, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let job = self.job(id).await;
            if job["status"] != "pending" && job["status"] != "running" {
                return job;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "job still {} after 120 s: {job}", job["status"]);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then the exit status and what it logged.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let child = self.child.take().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = child.wait_with_output().unwrap().status;
        (status, self.stdout.take().unwrap().join().unwrap())
    }
}

impl Drop for Quickstart {
    /// A failed test must not leave the service running.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn drive(mut quickstart: Quickstart) {
    quickstart.wait_ready().await;
    let (status, readyz) = quickstart.get(quickstart.admin, "/readyz").await;
    assert_eq!(status, 200, "{readyz}");
    let readyz: Value = serde_json::from_str(&readyz).unwrap();
    assert_eq!(readyz["checks"]["task_queue"]["ok"], true);
    assert_eq!(readyz["checks"]["job_store"]["ok"], true);

    let job = quickstart.run_job(30).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["tasks_done"], 30, "no task lost");
    assert!(job["attempts"].as_u64().unwrap() > 30, "some tasks were retried: {job}");

    let (status, metrics) = quickstart.get(quickstart.admin, "/metrics").await;
    assert_eq!(status, 200);
    for metric in [
        "chassis_tasks_received_total{task=\"price_item\"}",
        "chassis_tasks_succeeded_total{task=\"price_item\"} 30",
        "chassis_tasks_handler_duration_seconds_bucket",
        "chassis_breaker_calls_total",
        "chassis_breaker_state",
        "from=\"closed\",to=\"open\"",
        "from=\"half_open\",to=\"closed\"",
        // RED metrics by route template (issue 12).
        "http_server_request_duration_seconds_count{http_request_method=\"POST\",http_route=\"/jobs\",http_response_status_code=\"202\"} 1",
        "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/jobs/{id}\",http_response_status_code=\"200\"}",
        "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/pricing/quote/{item}\"",
        "http_client_request_duration_seconds_count{server_address=\"127.0.0.1\",http_response_status_code=\"200\"}",
        "http_server_active_requests",
        "chassis_build_info{service=\"quickstart\"",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(metric), "{metric} missing from /metrics:\n{metrics}");
    }
    for line in metrics.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(metrics.contains(&format!("# HELP {name} ")), "{name} has no # HELP:\n{metrics}");
    }
    let (_, info) = quickstart.get(quickstart.admin, "/info").await;
    assert!(info.contains("\"service\":\"quickstart\""), "{info}");
    assert_eq!(quickstart.get(quickstart.admin, "/livez").await.0, 200);

    let (status, logs) = quickstart.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(logs.contains("SIGTERM") && logs.contains("service stopped"), "{logs}");
    let lines: Vec<Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty() && lines.iter().all(|l| l["service"] == "quickstart"), "every line names the service");
    assert!(lines.iter().any(|l| l["job_id"] == job["id"] && l["task"] == "price_item"), "task lines carry the job id");
    let request = lines.iter().find(|l| l["request_id"] == START_JOB && l["message"] == "request");
    let request = request.unwrap_or_else(|| panic!("no request line for POST /jobs:\n{logs}"));
    assert_eq!((&request["http.route"], &request["http.response.status_code"]), (&json!("/jobs"), &json!(202)));
    // One trace: the tasks of the job continue the trace of its request.
    let trace_id = |l: &Value| l["traceparent"].as_str().and_then(|t| t.split('-').nth(1)).map(str::to_owned);
    let request_trace = trace_id(request).expect("the request has a trace");
    assert!(
        lines.iter().any(|l| l["task"] == "price_item" && trace_id(l).as_ref() == Some(&request_trace)),
        "the job's tasks are in the request's trace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_on_embedded_defaults() {
    drive(Quickstart::start(&[])).await;
}

/// Issue 11's input: `kill -9` mid-job, start again: every task still runs,
/// and the job counts each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_killed_mid_job_finishes_the_job_after_a_restart() {
    let env = [("APP_DOWNSTREAM__LATENCY_MS", "50".to_owned()), ("APP_DOWNSTREAM__FAIL_FOR_SECS", "0".to_owned())];
    let mut first = Quickstart::start(&env);
    first.wait_ready().await;
    let id = first.start_job(200).await;
    let started = Instant::now();
    loop {
        let job = first.job(&id).await;
        if job["tasks_done"].as_u64().unwrap() >= 10 {
            assert_ne!(job["status"], "succeeded", "the kill must come mid-job: {job}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no progress: {job}\n{}", first.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dir = first.kill();
    let mut second = Quickstart::start_in(dir, &env);
    second.wait_ready().await;
    let job = second.wait_job(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["tasks_done"], 200, "each task counted once: {job}");
    assert_eq!(job["tasks_sent"], 200);
    let (status, _) = second.terminate();
    assert!(status.success());
}

#[cfg(all(feature = "tasks-sqs", feature = "jobs-postgres"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_on_sqs_and_postgres() {
    // moto on a free loopback port, killed when the test ends.
    let moto = chassis_testkit::Moto::start().unwrap_or_else(|e| panic!("{e}"));
    let endpoint = moto.endpoint().to_owned();
    #[allow(clippy::disallowed_methods)] // the test's own switch
    let postgres =
        std::env::var("CHASSIS_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let prefix = format!("qs{}_", std::process::id());
    let env = [
        ("APP_QUEUE", "sqs".to_owned()),
        ("APP_TASKS__ENDPOINT", endpoint),
        ("APP_TASKS__REGION", "us-east-1".to_owned()),
        ("APP_TASKS__CREATE_QUEUE", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("APP_JOBS__BACKEND", "postgres".to_owned()),
        ("APP_JOBS__URL", postgres),
        ("APP_JOBS__TABLE_PREFIX", prefix),
    ];
    drive(Quickstart::start(&env)).await;
}

#[cfg(all(feature = "tasks-postgres", feature = "jobs-postgres"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_on_postgres_alone() {
    #[allow(clippy::disallowed_methods)] // the test's own switch
    let postgres =
        std::env::var("CHASSIS_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let env = [
        ("APP_QUEUE", "postgres".to_owned()),
        ("APP_JOBS__BACKEND", "postgres".to_owned()),
        ("APP_JOBS__URL", postgres),
        ("APP_JOBS__TABLE_PREFIX", format!("qspg{}_", std::process::id())),
    ];
    drive(Quickstart::start(&env)).await;
}

/// Issue 12 §4: with `--features otel`, `POST /jobs` → its tasks → their
/// pricing calls arrive at an OTLP/HTTP receiver (this test's, on loopback,
/// decoding the protobuf) as one trace with the right parents; the last
/// batch is flushed at SIGTERM.
#[cfg(feature = "otel")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_exports_one_trace_per_job_over_otlp() {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message as _;

    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let store = spans.clone();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let received = request.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
                store.lock().unwrap().extend(received);
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let env =
        [("APP_OTEL__ENDPOINT", format!("http://{collector}")), ("APP_DOWNSTREAM__FAIL_FOR_SECS", "0".to_owned())];
    let mut quickstart = Quickstart::start(&env);
    quickstart.wait_ready().await;
    let job = quickstart.run_job(3).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (status, _) = quickstart.terminate();
    assert!(status.success(), "exit status {status:?}");

    let spans = spans.lock().unwrap().clone();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let path = |span: &Span| {
        let value = span.attributes.iter().find(|a| a.key == "url.path").and_then(|a| a.value.as_ref());
        value.map(|v| format!("{:?}", v.value)).unwrap_or_default()
    };
    let start = spans.iter().find(|s| s.name == "request" && path(s).contains("\"/jobs\""));
    let start = start.unwrap_or_else(|| panic!("no POST /jobs span in {spans:#?}"));
    let tasks: Vec<&Span> = spans.iter().filter(|s| s.name == "task" && s.parent_span_id == start.span_id).collect();
    assert_eq!(tasks.len(), 3, "each task a child of the request: {spans:#?}");
    for task in tasks {
        assert_eq!(hex(&task.trace_id), hex(&start.trace_id));
        // The pricing call's server span sits under the task, directly or under
        // the client-side spans in between (discovery's resolution).
        let under_task = |span: &Span| {
            span.parent_span_id == task.span_id
                || spans.iter().any(|p| p.span_id == span.parent_span_id && p.parent_span_id == task.span_id)
        };
        let call = spans.iter().find(|s| s.name == "request" && under_task(s));
        let call = call.unwrap_or_else(|| panic!("no pricing call under task {}: {spans:#?}", hex(&task.span_id)));
        assert!(path(call).contains("/pricing/quote/"), "{call:?}");
        assert_eq!(hex(&call.trace_id), hex(&start.trace_id), "one trace");
    }
}

/// Issue 13: with `APP_DISCOVERY__BACKEND=etcd` the quickstart registers itself
/// in a real etcd once ready (its API address, version and admin URL), and on
/// SIGTERM deregisters before it stops.
#[cfg(feature = "discovery-etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_registers_in_etcd_while_ready_and_deregisters_on_sigterm() {
    use chassis::discovery::{Backend, Config};

    let etcd = chassis_testkit::Etcd::start().await.unwrap_or_else(|e| panic!("{e}"));
    let env = [
        ("APP_DISCOVERY__BACKEND", "etcd".to_owned()),
        ("APP_DISCOVERY__ETCD__ENDPOINTS", format!("[\"{}\"]", etcd.endpoint())),
        ("APP_DISCOVERY__TTL_SECS", "5".to_owned()),
    ];
    let mut quickstart = Quickstart::start(&env);
    quickstart.wait_ready().await;

    let mut config = Config::default();
    config.backend = Backend::Etcd;
    config.etcd.endpoints = vec![etcd.endpoint()];
    let registry = chassis::discovery::from_config(&config).unwrap().expect("the etcd backend");
    let mut registered = Vec::new();
    for _ in 0..100 {
        registered = registry.resolve("quickstart").await.unwrap();
        if !registered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(registered.len(), 1, "registered once ready: {registered:?}");
    let instance = &registered[0];
    assert_eq!(instance.addr, quickstart.api.to_string());
    assert_eq!(instance.metadata["admin"], format!("http://{}", quickstart.admin));
    assert_eq!(instance.metadata["version"], env!("CARGO_PKG_VERSION"));
    let (_, info) = quickstart.get(quickstart.admin, "/info").await;
    assert!(info.contains(&instance.id), "/info shows the registration: {info}");

    let (status, logs) = quickstart.terminate();
    assert!(status.success(), "exit status {status:?}:\n{logs}");
    // Deregistered at SIGTERM, well before its 5 s lease could lapse.
    assert!(registry.resolve("quickstart").await.unwrap().is_empty(), "deregistered on SIGTERM");
}
