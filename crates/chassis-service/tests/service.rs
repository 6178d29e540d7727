//! The runtime end to end, in process: phases, checks (one hangs), metrics,
//! info, and a programmatic shutdown that drains a component.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chassis_service::{Config, Service};

fn free_addr() -> SocketAddr {
    chassis_testkit::free_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_health_metrics_and_drain() {
    let mut config = Config::default();
    config.http_addr = free_addr();
    config.admin_addr = free_addr();
    config.check_timeout_ms = 200;
    config.drain_delay_secs = 0;
    let (api, admin) = (config.http_addr, config.admin_addr);
    let mut service = Service::new("svc", "9.9.9", config);
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    service.health().check("database", move || {
        let ok = flag.load(Ordering::SeqCst);
        async move { if ok { Ok(()) } else { Err("connection refused".to_owned()) } }
    });
    let hung = Arc::new(AtomicBool::new(true));
    let h = hung.clone();
    service.health().check("queue", move || {
        let hang = h.load(Ordering::SeqCst);
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    });
    service.router(axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" })));
    let drained = Arc::new(AtomicBool::new(false));
    let d = drained.clone();
    service.spawn("worker", move |token| async move {
        token.cancelled().await;
        tokio::time::sleep(Duration::from_millis(100)).await; // finishing in-flight work
        d.store(true, Ordering::SeqCst);
    });
    let shutdown = service.shutdown_token();
    metrics::counter!("chassis_test_requests_total").increment(3);
    let running = tokio::spawn(service.run());

    let client = reqwest::Client::new();
    let get = |addr: SocketAddr, path: &str| {
        let url = format!("http://{addr}{path}");
        let client = client.clone();
        async move {
            for _ in 0..100 {
                if let Ok(r) = client.get(&url).send().await {
                    let status = r.status().as_u16();
                    return (status, r.text().await.unwrap());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("{url} never answered");
        }
    };
    assert_eq!(get(admin, "/livez").await.0, 200);
    assert_eq!(get(admin, "/startupz").await.0, 200);
    assert_eq!(get(api, "/hello").await, (200, "hi".to_owned()));

    let (status, body) = get(admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["checks"]["database"]["error"], "connection refused");
    assert!(body["checks"]["queue"]["error"].as_str().unwrap().contains("no answer within 200 ms"), "{body}");

    healthy.store(true, Ordering::SeqCst);
    hung.store(false, Ordering::SeqCst);
    let (status, body) = get(admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");

    let (status, metrics) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("chassis_test_requests_total 3"), "{metrics}");
    let (_, info) = get(admin, "/info").await;
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!((info["service"].as_str(), info["version"].as_str()), (Some("svc"), Some("9.9.9")));

    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert!(drained.load(Ordering::SeqCst), "the component finished before run returned");
    assert!(client.get(format!("http://{api}/hello")).send().await.is_err(), "the API stopped");
}

#[tokio::test]
async fn a_taken_port_is_an_error_not_a_panic() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::default();
    config.http_addr = taken.local_addr().unwrap();
    config.admin_addr = free_addr();
    let err = Service::new("svc", "1", config).run().await.unwrap_err();
    assert!(err.to_string().contains("cannot listen on"), "{err}");
}

/// The failing input of issue 10, item 6: a new connection to the API 50 ms
/// after a shutdown began is served, while readiness already fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_serving_while_load_balancers_catch_up() {
    let mut config = Config::default();
    config.http_addr = free_addr();
    config.admin_addr = free_addr();
    let (api, admin) = (config.http_addr, config.admin_addr);
    let mut service = Service::new("svc", "1", config);
    service.router(axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" })));
    let (shutdown, drain_now) = (service.shutdown_token(), service.drain_now_token());
    let running = tokio::spawn(service.run());
    let client = fresh_connections();
    wait_for(&client, &format!("http://{admin}/readyz"), 200).await;

    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let response = client.get(format!("http://{api}/hello")).send().await.expect("a new connection is accepted");
    assert_eq!(response.status(), 200);
    assert_eq!(client.get(format!("http://{admin}/readyz")).send().await.unwrap().status(), 503);
    drain_now.cancel(); // rather than wait out the default 5 s
    running.await.unwrap().unwrap();
}

fn config(drain_delay_secs: u64) -> Config {
    let mut config = Config::default();
    config.http_addr = free_addr();
    config.admin_addr = free_addr();
    config.drain_delay_secs = drain_delay_secs;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_drain_delay_stops_accepting_at_once() {
    let config = config(0);
    let (api, admin) = (config.http_addr, config.admin_addr);
    let mut service = Service::new("svc", "1", config);
    service.router(axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" })));
    let shutdown = service.shutdown_token();
    let running = tokio::spawn(service.run());
    let client = fresh_connections();
    wait_for(&client, &format!("http://{admin}/readyz"), 200).await;
    shutdown.cancel();
    // Nothing in flight, no delay: run returns by itself, the port is closed.
    running.await.unwrap().unwrap();
    assert!(client.get(format!("http://{api}/hello")).send().await.is_err(), "the API stopped");
}

/// During the delay: not ready, new requests served, admin up; after it: new
/// connections refused while the in-flight request finishes, admin still up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_delay_serves_new_requests_then_drains_in_flight_ones() {
    let config = config(3600); // ended by the drain-now token, never by the clock
    let (api, admin) = (config.http_addr, config.admin_addr);
    let mut service = Service::new("svc", "1", config);
    let (entered_tx, mut entered) = tokio::sync::mpsc::channel::<()>(1);
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let slow = move || {
        let (entered_tx, gate) = (entered_tx.clone(), gate.clone());
        async move {
            let _ = entered_tx.send(()).await;
            gate.notified().await;
            "done"
        }
    };
    service.router(
        axum::Router::new()
            .route("/hello", axum::routing::get(|| async { "hi" }))
            .route("/slow", axum::routing::get(slow)),
    );
    let stopped = Arc::new(AtomicBool::new(false));
    let s = stopped.clone();
    service.spawn("worker", move |token| async move {
        token.cancelled().await;
        s.store(true, Ordering::SeqCst);
    });
    let (shutdown, drain_now) = (service.shutdown_token(), service.drain_now_token());
    let running = tokio::spawn(service.run());
    let client = fresh_connections();
    wait_for(&client, &format!("http://{admin}/readyz"), 200).await;

    let in_flight = tokio::spawn(client.get(format!("http://{api}/slow")).send());
    entered.recv().await.unwrap();
    shutdown.cancel();
    wait_for(&client, &format!("http://{admin}/readyz"), 503).await;
    let response = client.get(format!("http://{api}/hello")).send().await.expect("accepted during the delay");
    assert_eq!(response.text().await.unwrap(), "hi");
    assert!(!stopped.load(Ordering::SeqCst), "components keep running during the delay");

    drain_now.cancel();
    let mut refused = false;
    for _ in 0..200 {
        if client.get(format!("http://{api}/hello")).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "new connections are refused after the delay");
    assert!(!running.is_finished(), "a request is still in flight");
    assert_eq!(client.get(format!("http://{admin}/livez")).send().await.unwrap().status(), 200, "admin answers");

    release.notify_one();
    let response = in_flight.await.unwrap().expect("the in-flight request finishes");
    assert_eq!((response.status().as_u16(), response.text().await.unwrap()), (200, "done".to_owned()));
    running.await.unwrap().unwrap();
    assert!(stopped.load(Ordering::SeqCst));
    assert!(client.get(format!("http://{admin}/livez")).send().await.is_err(), "the admin server stops last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_now_token_cancelled_before_the_shutdown_skips_the_delay() {
    let service = Service::new("svc", "1", config(3600));
    let (shutdown, drain_now) = (service.shutdown_token(), service.drain_now_token());
    drain_now.cancel();
    let running = tokio::spawn(service.run());
    shutdown.cancel();
    // A guard against a hang, not a timing assertion: the delay is an hour.
    tokio::time::timeout(Duration::from_secs(60), running).await.expect("no delay").unwrap().unwrap();
}

/// A client that opens a new connection for every request.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

/// Polls `url` until it answers `status`.
async fn wait_for(client: &reqwest::Client, url: &str, status: u16) {
    for _ in 0..200 {
        if client.get(url).send().await.is_ok_and(|r| r.status().as_u16() == status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{url} never answered {status}");
}

/// A service's configuration with every chassis section, as the quickstart has.
#[cfg(feature = "boot")]
#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Settings {
    #[serde(default)]
    service: Config,
    #[serde(default)]
    log: chassis_log::Config,
    #[serde(default)]
    tasks: chassis_tasks::Config,
    #[serde(default)]
    breaker: chassis_breaker::Config,
}

/// Four values of the right type that the crates reject (one from a file) and
/// two of the wrong type.
#[cfg(feature = "boot")]
fn six_problems(dir: &std::path::Path) -> chassis_config::Loader {
    std::fs::write(dir.join("default.toml"), "[breaker]\nopen_timeout_ms = 0\n").unwrap();
    chassis_config::Loader::new("APP").dir(dir).env([
        ("APP_TASKS__TASK_POOL", "work"),
        ("APP_TASKS__CONCURRENCY", "0"),
        ("APP_BREAKER__FAILURE_THRESHOLD", "0"),
        ("APP_LOG__FILTER", "info,app=notalevel"),
        ("APP_SERVICE__HTTP_ADDR", "localhost"),
        ("APP_TASKS__MAX_FAILURES", "many"),
    ])
}

#[cfg(feature = "boot")]
#[test]
fn every_configuration_problem_is_in_the_one_report() {
    use chassis_config::ProblemKind;
    let dir = tempfile::tempdir().unwrap();
    let err = six_problems(dir.path()).extract::<Settings>().unwrap_err();
    let keys: Vec<_> = err.problems().iter().map(|p| p.key().unwrap_or("?")).collect();
    assert_eq!(
        keys,
        [
            "breaker.failure_threshold",
            "breaker.open_timeout_ms",
            "log.filter",
            "service.http_addr",
            "tasks.concurrency",
            "tasks.max_failures"
        ],
        "{err}"
    );
    for p in err.problems() {
        let key = p.key().unwrap_or("?");
        let var = format!("APP_{}", key.to_ascii_uppercase().replace('.', "__"));
        assert_eq!(p.env_var(), Some(var.as_str()), "{err}");
        assert!(p.source().is_some(), "{key} has no source: {err}");
        // What was expected: a range, a type, or the parser's own words
        // (`invalid socket address syntax`).
        assert!(
            matches!(
                p.kind(),
                ProblemKind::InvalidValue { .. } | ProblemKind::WrongType { .. } | ProblemKind::Other { .. }
            ),
            "{err}"
        );
    }
    let text = err.to_string();
    assert!(text.contains("default.toml") && text.contains("from env APP_TASKS__CONCURRENCY"), "{text}");
}

#[cfg(feature = "boot")]
#[test]
fn boot_reports_every_configuration_problem_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    #[allow(clippy::disallowed_methods)]
    if std::env::var_os("CHASSIS_BOOT_CHILD").is_some() {
        let _ = chassis_service::boot::<Settings>("svc", "1.0.0", six_problems(dir.path()));
        unreachable!("boot returned on a bad configuration");
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "boot_reports_every_configuration_problem_and_exits_78", "--nocapture", "--test-threads=1"])
        .env("CHASSIS_BOOT_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(chassis_config::EX_CONFIG), "{stderr}");
    assert!(stderr.contains("configuration is invalid: 6 problems"), "{stderr}");
}

/// Issue 10, item 8, checks between fields: `pollers` over `concurrency` (the
/// first from env, the second from a file) and `failure_rate.min_calls` over
/// its `window` (from a file), next to a type error in another section.
#[cfg(feature = "boot")]
fn cross_field_problems(dir: &std::path::Path) -> chassis_config::Loader {
    std::fs::write(
        dir.join("default.toml"),
        "[tasks]\nconcurrency = 8\n[breaker.failure_rate]\nwindow = 10\nmin_calls = 20\n",
    )
    .unwrap();
    chassis_config::Loader::new("APP")
        .dir(dir)
        .env([("APP_TASKS__TASK_POOL", "work"), ("APP_TASKS__POLLERS", "9"), ("APP_SERVICE__HTTP_ADDR", "localhost")])
        .check::<chassis_tasks::Config>("tasks")
        .check::<chassis_breaker::Config>("breaker")
}

#[cfg(feature = "boot")]
#[test]
fn problems_between_fields_are_in_the_one_report() {
    use chassis_config::{ProblemKind, Source};
    let dir = tempfile::tempdir().unwrap();
    let err = cross_field_problems(dir.path()).extract::<Settings>().unwrap_err();
    let mut keys: Vec<_> = err.problems().iter().map(|p| p.key().unwrap_or("?")).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["breaker.failure_rate.min_calls", "service.http_addr", "tasks.pollers"], "{err}");
    let find = |key: &str| err.problems().iter().find(|p| p.key() == Some(key)).unwrap();

    let pollers = find("tasks.pollers");
    assert_eq!(pollers.env_var(), Some("APP_TASKS__POLLERS"), "{err}");
    assert_eq!(pollers.source(), Some(&Source::Env { var: "APP_TASKS__POLLERS".into() }), "{err}");
    let ProblemKind::Check { found, expected, related } = pollers.kind() else { panic!("{err}") };
    assert_eq!(found, "9");
    assert!(expected.contains("concurrency (8)"), "{err}");
    assert_eq!(related.iter().map(|r| r.key()).collect::<Vec<_>>(), ["tasks.concurrency"]);
    assert!(matches!(related[0].source(), Some(Source::File { .. })), "{err}");

    let min_calls = find("breaker.failure_rate.min_calls");
    assert_eq!(min_calls.env_var(), Some("APP_BREAKER__FAILURE_RATE__MIN_CALLS"), "{err}");
    assert!(matches!(min_calls.source(), Some(Source::File { .. })), "{err}");
    assert!(matches!(min_calls.kind(), ProblemKind::Check { expected, .. } if expected.contains("window (10)")));

    let text = err.to_string();
    assert!(text.contains("tasks.pollers: invalid value 9, expected at most concurrency (8)"), "{text}");
    assert!(text.contains("from env APP_TASKS__POLLERS"), "{text}");
    assert!(text.contains("depends on tasks.concurrency, from file"), "{text}");
}

#[cfg(feature = "boot")]
#[test]
fn a_section_that_fails_to_deserialize_is_not_checked_as_well() {
    let dir = tempfile::tempdir().unwrap();
    let loader = cross_field_problems(dir.path()).env([
        ("APP_TASKS__TASK_POOL", "work"),
        ("APP_TASKS__POLLERS", "9"),
        ("APP_TASKS__MAX_FAILURES", "many"),
    ]);
    let err = loader.extract::<Settings>().unwrap_err();
    let keys: Vec<_> = err.problems().iter().map(|p| p.key().unwrap_or("?")).collect();
    assert_eq!(keys, ["tasks.max_failures", "breaker.failure_rate.min_calls"], "{err}");
}

/// Boot runs the checks of `service` and `log` itself; the service registers
/// the others (one line in the quickstart).
#[cfg(feature = "boot")]
#[test]
fn boot_reports_problems_between_fields_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    #[allow(clippy::disallowed_methods)]
    if std::env::var_os("CHASSIS_BOOT_CHILD").is_some() {
        std::fs::write(dir.path().join("service.toml"), "[service]\nadmin_addr = \"127.0.0.1:7000\"\n").unwrap();
        let loader = cross_field_problems(dir.path()).profile("service").env([
            ("APP_TASKS__TASK_POOL", "work"),
            ("APP_TASKS__POLLERS", "9"),
            ("APP_SERVICE__HTTP_ADDR", "127.0.0.1:7000"),
            ("APP_LOG__FORMAT", "gcp"),
            (
                "APP_LOG__LABELS",
                &format!("{{{}}}", (0..62).map(|i| format!("\"l{i}\":\"v\"")).collect::<Vec<_>>().join(",")),
            ),
        ]);
        let _ = chassis_service::boot::<Settings>("svc", "1.0.0", loader);
        unreachable!("boot returned on a bad configuration");
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "boot_reports_problems_between_fields_and_exits_78", "--nocapture", "--test-threads=1"])
        .env("CHASSIS_BOOT_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(chassis_config::EX_CONFIG), "{stderr}");
    assert!(stderr.contains("configuration is invalid: 4 problems"), "{stderr}");
    for line in [
        "breaker.failure_rate.min_calls: invalid value 20, expected at most window (10)",
        "log.labels: invalid value 62 labels",
        "service.admin_addr: invalid value 127.0.0.1:7000",
        "set it with APP_SERVICE__ADMIN_ADDR",
        "tasks.pollers: invalid value 9",
        "from env APP_TASKS__POLLERS",
    ] {
        assert!(stderr.contains(line), "{line}: {stderr}");
    }
}

/// Issue 15 §5: the largest accepted delays and timeouts neither overflow nor
/// turn into "at once"; a check timeout of 0 (every check failing) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_at_their_extremes() {
    let err = serde_json::from_value::<Config>(serde_json::json!({"check_timeout_ms": 0})).unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    let longest: Config = serde_json::from_value(serde_json::json!({
        "drain_delay_secs": u64::MAX, "shutdown_deadline_secs": u64::MAX, "check_timeout_ms": u64::MAX,
    }))
    .unwrap();
    let mut config = config(u64::MAX);
    config.shutdown_deadline_secs = longest.shutdown_deadline_secs;
    config.check_timeout_ms = longest.check_timeout_ms;
    let admin = config.admin_addr;
    let service = Service::new("svc", "1", config);
    let (shutdown, drain_now) = (service.shutdown_token(), service.drain_now_token());
    let running = tokio::spawn(service.run());
    let client = fresh_connections();
    wait_for(&client, &format!("http://{admin}/readyz"), 200).await;
    shutdown.cancel();
    wait_for(&client, &format!("http://{admin}/readyz"), 503).await;
    drain_now.cancel();
    tokio::time::timeout(Duration::from_secs(60), running).await.expect("no hang").unwrap().unwrap();
}

/// Registration in a service registry follows the lifecycle.
#[cfg(feature = "discovery")]
mod discovery {
    use std::sync::Mutex;

    use chassis_discovery::{Instance, Lease, Registry, Resolver, StaticRegistry, Watch};
    use chassis_service::{Health, Phase};

    use super::*;

    /// A registry that records each deregistration with the service's phase at that moment.
    #[derive(Debug, Clone)]
    struct Recording {
        inner: StaticRegistry,
        health: Arc<Mutex<Option<Health>>>,
        deregistered_in: Arc<Mutex<Vec<Phase>>>,
    }

    #[async_trait::async_trait]
    impl Registry for Recording {
        async fn register(&self, i: &Instance, ttl: Duration) -> chassis_discovery::Result<Lease> {
            self.inner.register(i, ttl).await
        }
        async fn keep_alive(&self, lease: &Lease) -> chassis_discovery::Result<()> {
            self.inner.keep_alive(lease).await
        }
        async fn deregister(&self, lease: &Lease) -> chassis_discovery::Result<()> {
            let phase = self.health.lock().unwrap().as_ref().map(Health::phase);
            self.deregistered_in.lock().unwrap().extend(phase);
            self.inner.deregister(lease).await
        }
        async fn resolve(&self, service: &str) -> chassis_discovery::Result<Vec<Instance>> {
            self.inner.resolve(service).await
        }
        async fn watch(&self, service: &str) -> chassis_discovery::Result<Box<dyn Watch>> {
            self.inner.watch(service).await
        }
    }

    async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
        for _ in 0..300 {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never: {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn registered_while_ready_deregistered_before_readiness_fails_then_no_traffic() {
        let config = config(3600); // the drain delay is ended by the drain-now token
        let (api, admin) = (config.http_addr, config.admin_addr);
        let mut service = Service::new("orders", "9.9.9", config);
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = healthy.clone();
        service.health().check("db", move || {
            let ok = flag.load(Ordering::SeqCst);
            async move { if ok { Ok(()) } else { Err("down".to_owned()) } }
        });
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        service.router(axum::Router::new().route(
            "/hit",
            axum::routing::get(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }),
        ));
        let registry = Recording {
            inner: StaticRegistry::default(),
            health: Arc::new(Mutex::new(Some(service.health().clone()))),
            deregistered_in: Arc::new(Mutex::new(Vec::new())),
        };
        let mut discovery = chassis_discovery::Config::default();
        discovery.ttl_secs = 1;
        service.discovery(Arc::new(registry.clone()), discovery);
        let (shutdown, drain_now) = (service.shutdown_token(), service.drain_now_token());
        let running = tokio::spawn(service.run());

        // Registered once ready, with the bound address and metadata.
        until("registered", async || registry.resolve("orders").await.unwrap().len() == 1).await;
        let instance = registry.resolve("orders").await.unwrap().remove(0);
        assert_eq!(instance.addr, api.to_string());
        assert_eq!(instance.id, format!("orders-{api}"));
        assert_eq!(instance.metadata["version"], "9.9.9");
        assert_eq!(instance.metadata["admin"], format!("http://{admin}"));
        let info = reqwest::get(format!("http://{admin}/info")).await.unwrap().text().await.unwrap();
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["discovery"]["id"], instance.id.as_str());

        // Unready: no keep-alive, the registration lapses; ready again: registered again.
        healthy.store(false, Ordering::SeqCst);
        until("lapsed", async || registry.resolve("orders").await.unwrap().is_empty()).await;
        healthy.store(true, Ordering::SeqCst);
        until("registered again", async || registry.resolve("orders").await.unwrap().len() == 1).await;

        // A client of `orders` through the registry.
        let resolver = Resolver::new(Arc::new(registry.clone()), chassis_discovery::ClientConfig::default());
        let watches_stop = tokio_util::sync::CancellationToken::new();
        let watches = tokio::spawn(resolver.clone().run(watches_stop.clone()));
        let breakers = chassis_breaker::Breakers::new(chassis_breaker::Config::default()).unwrap();
        let client = chassis_discovery::client(resolver.clone(), breakers).unwrap();
        assert_eq!(client.get("http://orders/hit").send().await.unwrap().text().await.unwrap(), "ok");

        // SIGTERM: deregistered while still ready, then draining.
        shutdown.cancel();
        until("deregistration seen", async || resolver.instances("orders").await.is_err()).await;
        assert_eq!(*registry.deregistered_in.lock().unwrap(), [Phase::Ready], "deregistered before readiness fails");
        until("draining", async || registry.health.lock().unwrap().as_ref().unwrap().phase() == Phase::Draining).await;
        // The API still serves (drain delay), but no request is routed to it.
        assert_eq!(reqwest::get(format!("http://{api}/hit")).await.unwrap().status(), 200);
        assert!(client.get("http://orders/hit").send().await.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 2, "the client's first call and the direct one");

        drain_now.cancel();
        running.await.unwrap().unwrap();
        watches_stop.cancel();
        watches.await.unwrap();
    }

    /// A registry whose watches cannot start while `down`.
    #[derive(Debug, Clone, Default)]
    struct WatchOutage {
        inner: StaticRegistry,
        down: Arc<AtomicBool>,
    }

    #[async_trait::async_trait]
    impl Registry for WatchOutage {
        async fn register(&self, i: &Instance, ttl: Duration) -> chassis_discovery::Result<Lease> {
            self.inner.register(i, ttl).await
        }
        async fn keep_alive(&self, lease: &Lease) -> chassis_discovery::Result<()> {
            self.inner.keep_alive(lease).await
        }
        async fn deregister(&self, lease: &Lease) -> chassis_discovery::Result<()> {
            self.inner.deregister(lease).await
        }
        async fn resolve(&self, service: &str) -> chassis_discovery::Result<Vec<Instance>> {
            self.inner.resolve(service).await
        }
        async fn watch(&self, service: &str) -> chassis_discovery::Result<Box<dyn Watch>> {
            if self.down.load(Ordering::SeqCst) {
                return Err(chassis_discovery::Error::Unreachable("registry down".into()));
            }
            self.inner.watch(service).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_instance_list_is_a_readiness_detail_not_a_failure() {
        let config = config(0);
        let admin = config.admin_addr;
        let mut service = Service::new("orders", "1.0.0", config);
        let registry = WatchOutage::default();
        registry.inner.register(&Instance::new("pricing", "p1", "127.0.0.1:9"), Duration::from_secs(60)).await.unwrap();
        registry.down.store(true, Ordering::SeqCst);
        let mut client_config = chassis_discovery::ClientConfig::default();
        client_config.rewatch_ms = 20;
        let resolver = Resolver::new(Arc::new(registry.clone()), client_config);
        service.resolver(resolver.clone());
        let shutdown = service.shutdown_token();
        let running = tokio::spawn(service.run());

        let readyz = async || {
            let response = fresh_connections().get(format!("http://{admin}/readyz")).send().await;
            let Ok(response) = response else { return (0, serde_json::Value::Null) };
            let status = response.status().as_u16();
            (status, serde_json::from_str::<serde_json::Value>(&response.text().await.unwrap()).unwrap())
        };
        until("ready", async || readyz().await.0 == 200).await;
        assert_eq!(readyz().await.1["checks"]["discovery_resolver"], serde_json::json!({"ok": true}));

        // Resolved once, then the watch cannot start: the list is kept, readiness passes with a warning.
        assert_eq!(resolver.instances("pricing").await.unwrap().len(), 1);
        until("a warning", async || readyz().await.1["checks"]["discovery_resolver"]["warning"].is_string()).await;
        let (status, body) = readyz().await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["checks"]["discovery_resolver"],
            serde_json::json!({"ok": true, "warning": "registry unreachable; kept the last list of: pricing (1 instance)"})
        );

        // The registry is back: the watch resumes and the warning goes.
        registry.down.store(false, Ordering::SeqCst);
        until("no warning", async || {
            readyz().await.1["checks"]["discovery_resolver"] == serde_json::json!({"ok": true})
        })
        .await;

        shutdown.cancel();
        running.await.unwrap().unwrap();
    }
}
