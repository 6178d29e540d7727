//! The runtime end to end, in process: phases, checks (one hangs), metrics,
//! info, and a programmatic shutdown that drains a component.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chassis_service::{Config, Service};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_health_metrics_and_drain() {
    let mut config = Config::default();
    config.http_addr = free_addr();
    config.admin_addr = free_addr();
    config.check_timeout_ms = 200;
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
