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
