//! Through reqwest against a real HTTP server on loopback (chassis-testkit's
//! FakeUpstream) that fails on command:
//! trips, rejects without sending, half-opens and recovers.

use std::time::Duration;

use chassis_breaker::{
    BreakerMiddleware, Breakers, ClassifyWith, Config, ManualClock, Outcome, Rejected, State, client, path_prefix_key,
};
use chassis_testkit::{FakeUpstream, Reply};
use reqwest_middleware::ClientWithMiddleware;

use crate::support::ms;

/// The server (chassis-testkit's `FakeUpstream`): `GET /work` answers 200, or
/// 500 while failing; `/slow` 200 after 5 s; `/missing` 404. Stops when dropped.
struct Flaky(FakeUpstream);

impl Flaky {
    fn fail(&self, failing: bool) {
        self.0.route("GET", "/work", [Reply::status(if failing { 500 } else { 200 })]);
    }

    /// Requests that reached `/work` or `/slow`.
    fn hits(&self) -> usize {
        self.0.hits("/work") + self.0.hits("/slow")
    }
}

/// Starts the server on a free loopback port; returns its base URL.
async fn serve() -> (String, Flaky) {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream
        .route("GET", "/work", [Reply::status(200)])
        .route("GET", "/slow", [Reply::status(200).delay(Duration::from_secs(5))])
        .route("GET", "/missing", [Reply::status(404)]);
    (upstream.url(""), Flaky(upstream))
}

fn breakers(clock: &ManualClock) -> Breakers {
    let mut config = Config::default();
    config.failure_threshold = 3;
    config.open_timeout_ms = 10_000;
    config.request_timeout_ms = 300;
    Breakers::builder().config(config).clock(clock.clone()).build().unwrap()
}

async fn status(client: &ClientWithMiddleware, url: &str) -> Result<u16, reqwest_middleware::Error> {
    client.get(url).send().await.map(|r| r.status().as_u16())
}

#[tokio::test]
async fn trips_rejects_half_opens_and_recovers() {
    let (base, flaky) = serve().await;
    let clock = ManualClock::new();
    let breakers = breakers(&clock);
    let client = client(breakers.clone()).unwrap();
    let url = format!("{base}/work");

    assert_eq!(status(&client, &url).await.unwrap(), 200);
    flaky.fail(true);
    for _ in 0..3 {
        assert_eq!(status(&client, &url).await.unwrap(), 500, "5xx is returned and counted");
    }
    let breaker = breakers.get(&base).unwrap();
    assert_eq!(breaker.state(), State::Open);

    let hits = flaky.hits();
    let err = status(&client, &url).await.unwrap_err();
    let rejected = Rejected::from_reqwest(&err).expect("a typed rejection");
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(rejected.breaker(), base);
    assert_eq!(flaky.hits(), hits, "a rejected request is never sent");

    clock.advance(ms(10_000));
    flaky.fail(false);
    assert_eq!(status(&client, &url).await.unwrap(), 200, "the trial request goes through");
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test]
async fn client_errors_say_the_server_is_healthy_unless_the_request_says_otherwise() {
    let (base, _flaky) = serve().await;
    let clock = ManualClock::new();
    let breakers = breakers(&clock);
    let client = client(breakers.clone()).unwrap();
    let url = format!("{base}/missing");
    for _ in 0..10 {
        assert_eq!(status(&client, &url).await.unwrap(), 404);
    }
    assert_eq!(breakers.get(&base).unwrap().state(), State::Closed);

    let strict = ClassifyWith::new(|r: &reqwest_middleware::Result<reqwest::Response>| match r {
        Ok(response) if response.status() == 404 => Outcome::Failure,
        _ => Outcome::Success,
    });
    for _ in 0..3 {
        client.get(&url).with_extension(strict.clone()).send().await.unwrap();
    }
    assert_eq!(breakers.get(&base).unwrap().state(), State::Open);
}

#[tokio::test]
async fn timeouts_are_failures_and_a_cancelled_request_counts_nothing() {
    let (base, _flaky) = serve().await;
    let clock = ManualClock::new();
    let breakers = breakers(&clock);
    let client = client(breakers.clone()).unwrap();
    let slow = format!("{base}/slow");
    let err = status(&client, &slow).await.unwrap_err();
    assert!(matches!(&err, reqwest_middleware::Error::Reqwest(e) if e.is_timeout()), "{err}");
    assert_eq!(breakers.get(&base).unwrap().snapshot().consecutive_failures, 1);

    // The caller gives up before the client's own timeout: nothing is counted.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), client.get(&slow).send()).await;
    assert!(cancelled.is_err());
    assert_eq!(breakers.get(&base).unwrap().snapshot().consecutive_failures, 1);
}

#[tokio::test]
async fn breakers_are_per_host_or_per_path_prefix() {
    let (a, flaky_a) = serve().await;
    let (b, _flaky_b) = serve().await;
    let clock = ManualClock::new();
    let breakers = breakers(&clock);
    let client = client(breakers.clone()).unwrap();
    flaky_a.fail(true);
    for _ in 0..3 {
        let _ = status(&client, &format!("{a}/work")).await;
    }
    assert!(status(&client, &format!("{a}/work")).await.is_err());
    assert_eq!(status(&client, &format!("{b}/work")).await.unwrap(), 200, "another host is unaffected");

    let by_prefix = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BreakerMiddleware::new(breakers.clone()).key(path_prefix_key(1)))
        .build();
    let _ = status(&by_prefix, &format!("{b}/missing")).await;
    assert!(breakers.get(&format!("{b}/missing")).is_ok());
    assert!(breakers.len() >= 3);
}

/// OpenTelemetry's `http.client.request.duration`, by host and status, or by
/// error type when no response came.
#[tokio::test]
async fn the_client_records_request_durations_by_server_and_status() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (base, _upstream) = serve().await;
    let client = client(Breakers::new(Config::default()).unwrap()).unwrap();
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
