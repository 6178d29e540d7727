//! Through reqwest against a real HTTP server on loopback that fails on command:
//! trips, rejects without sending, half-opens and recovers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::routing::get;
use chassis_breaker::{
    BreakerMiddleware, ClassifyWith, Config, ManualClock, Outcome, Registry, Rejected, State, client, path_prefix_key,
};
use reqwest_middleware::ClientWithMiddleware;

use crate::support::ms;

#[derive(Default)]
struct Flaky {
    failing: AtomicBool,
    hits: AtomicUsize,
}

async fn work(AxumState(flaky): AxumState<Arc<Flaky>>) -> StatusCode {
    flaky.hits.fetch_add(1, Ordering::SeqCst);
    if flaky.failing.load(Ordering::SeqCst) { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

async fn slow(AxumState(flaky): AxumState<Arc<Flaky>>) -> StatusCode {
    flaky.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    StatusCode::OK
}

async fn missing() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// Starts the server on a free loopback port; returns its base URL.
async fn serve() -> (String, Arc<Flaky>) {
    let flaky = Arc::new(Flaky::default());
    let app = Router::new()
        .route("/work", get(work))
        .route("/slow", get(slow))
        .route("/missing", get(missing))
        .with_state(flaky.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), flaky)
}

fn registry(clock: &ManualClock) -> Registry {
    let mut config = Config::default();
    config.failure_threshold = 3;
    config.open_timeout_ms = 10_000;
    config.request_timeout_ms = 300;
    Registry::builder().config(config).clock(clock.clone()).build().unwrap()
}

async fn status(client: &ClientWithMiddleware, url: &str) -> Result<u16, reqwest_middleware::Error> {
    client.get(url).send().await.map(|r| r.status().as_u16())
}

#[tokio::test]
async fn trips_rejects_half_opens_and_recovers() {
    let (base, flaky) = serve().await;
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let client = client(registry.clone()).unwrap();
    let url = format!("{base}/work");

    assert_eq!(status(&client, &url).await.unwrap(), 200);
    flaky.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(status(&client, &url).await.unwrap(), 500, "5xx is returned and counted");
    }
    let breaker = registry.get(&base).unwrap();
    assert_eq!(breaker.state(), State::Open);

    let hits = flaky.hits.load(Ordering::SeqCst);
    let err = status(&client, &url).await.unwrap_err();
    let rejected = Rejected::from_reqwest(&err).expect("a typed rejection");
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(rejected.breaker(), base);
    assert_eq!(flaky.hits.load(Ordering::SeqCst), hits, "a rejected request is never sent");

    clock.advance(ms(10_000));
    flaky.failing.store(false, Ordering::SeqCst);
    assert_eq!(status(&client, &url).await.unwrap(), 200, "the trial request goes through");
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test]
async fn client_errors_say_the_server_is_healthy_unless_the_request_says_otherwise() {
    let (base, _flaky) = serve().await;
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let client = client(registry.clone()).unwrap();
    let url = format!("{base}/missing");
    for _ in 0..10 {
        assert_eq!(status(&client, &url).await.unwrap(), 404);
    }
    assert_eq!(registry.get(&base).unwrap().state(), State::Closed);

    let strict = ClassifyWith::new(|r: &reqwest_middleware::Result<reqwest::Response>| match r {
        Ok(response) if response.status() == 404 => Outcome::Failure,
        _ => Outcome::Success,
    });
    for _ in 0..3 {
        client.get(&url).with_extension(strict.clone()).send().await.unwrap();
    }
    assert_eq!(registry.get(&base).unwrap().state(), State::Open);
}

#[tokio::test]
async fn timeouts_are_failures_and_a_cancelled_request_counts_nothing() {
    let (base, _flaky) = serve().await;
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let client = client(registry.clone()).unwrap();
    let slow = format!("{base}/slow");
    let err = status(&client, &slow).await.unwrap_err();
    assert!(matches!(&err, reqwest_middleware::Error::Reqwest(e) if e.is_timeout()), "{err}");
    assert_eq!(registry.get(&base).unwrap().snapshot().consecutive_failures, 1);

    // The caller gives up before the client's own timeout: nothing is counted.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), client.get(&slow).send()).await;
    assert!(cancelled.is_err());
    assert_eq!(registry.get(&base).unwrap().snapshot().consecutive_failures, 1);
}

#[tokio::test]
async fn breakers_are_per_host_or_per_path_prefix() {
    let (a, flaky_a) = serve().await;
    let (b, _flaky_b) = serve().await;
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let client = client(registry.clone()).unwrap();
    flaky_a.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let _ = status(&client, &format!("{a}/work")).await;
    }
    assert!(status(&client, &format!("{a}/work")).await.is_err());
    assert_eq!(status(&client, &format!("{b}/work")).await.unwrap(), 200, "another host is unaffected");

    let by_prefix = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BreakerMiddleware::new(registry.clone()).key(path_prefix_key(1)))
        .build();
    let _ = status(&by_prefix, &format!("{b}/missing")).await;
    assert!(registry.get(&format!("{b}/missing")).is_ok());
    assert!(registry.len() >= 3);
}

/// OpenTelemetry's `http.client.request.duration`, by host and status, or by
/// error type when no response came.
#[tokio::test]
async fn the_client_records_request_durations_by_server_and_status() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (base, _) = serve().await;
    let client = client(Registry::new(Config::default()).unwrap()).unwrap();
    assert_eq!(client.get(format!("{base}/work")).send().await.unwrap().status(), 200);
    assert_eq!(client.get(format!("{base}/missing")).send().await.unwrap().status(), 404);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    assert!(client.get(format!("http://{closed}/")).send().await.is_err());
    let histograms: Vec<(String, usize)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "http_client_request_duration_seconds")
        .map(|(key, _, _, value)| {
            let labels: Vec<String> = key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let count = match value {
                metrics_util::debugging::DebugValue::Histogram(v) => v.len(),
                _ => 0,
            };
            (labels.join(","), count)
        })
        .collect();
    for expected in [
        "server_address=127.0.0.1,http_response_status_code=200",
        "server_address=127.0.0.1,http_response_status_code=404",
        "server_address=127.0.0.1,error_type=connect",
    ] {
        assert!(histograms.iter().any(|(l, n)| l == expected && *n == 1), "{expected}: {histograms:?}");
    }
}
