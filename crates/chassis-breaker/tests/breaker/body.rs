//! Through reqwest: a call ends when its body does. Loopback servers that
//! send headers and part of a body, then stall, break off, or wait for the
//! test to let them finish.

use std::sync::Arc;
use std::time::Duration;

use chassis_breaker::{Breakers, Config, ManualClock, Rejected, SlowCall, State, client};
use reqwest_middleware::ClientWithMiddleware;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::support::ms;

/// What the server does after the headers and the first bytes of the body.
#[derive(Clone)]
enum Then {
    /// Keeps the connection open and sends nothing more.
    Stall,
    /// Closes the connection: the body is cut short.
    Hang,
    /// Sends the rest when notified.
    FinishOn(Arc<Notify>),
}

/// A loopback server answering every request with `status`, a
/// `Content-Length` of 100, 3 bytes of body, then `then`.
async fn server(status: u16, then: Then) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let then = then.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 100\r\nconnection: close\r\n\r\nabc");
                if socket.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                match then {
                    Then::Stall => std::future::pending::<()>().await,
                    Then::Hang => drop(socket),
                    Then::FinishOn(notify) => {
                        notify.notified().await;
                        let _ = socket.write_all(&[b'x'; 97]).await;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn setup(config: Config) -> (Breakers, ManualClock, ClientWithMiddleware) {
    let clock = ManualClock::new();
    let breakers = Breakers::builder().config(config).clock(clock.clone()).build().unwrap();
    let client = client(breakers.clone()).unwrap();
    (breakers, clock, client)
}

fn threshold(n: u32) -> Config {
    let mut config = Config::default();
    config.failure_threshold = n;
    config.open_timeout_ms = 10_000;
    config
}

/// The failing input of issue 10, item 5: five calls whose body times out.
#[tokio::test]
async fn body_timeouts_count_and_open_the_breaker() {
    let base = server(200, Then::Stall).await;
    let (breakers, _clock, client) = setup(threshold(3));
    let mut rejected = 0;
    for _ in 0..5 {
        let result = async {
            let response = client.get(&base).timeout(Duration::from_millis(300)).send().await?;
            response.text().await.map_err(reqwest_middleware::Error::from)
        }
        .await;
        match result {
            Ok(text) => panic!("a stalled body completed: {text:?}"),
            Err(e) if Rejected::from_reqwest(&e).is_some() => rejected += 1,
            Err(reqwest_middleware::Error::Reqwest(e)) => assert!(e.is_timeout(), "{e}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(breakers.get(&base).unwrap().state(), State::Open);
    assert_eq!(rejected, 2, "the breaker opened at the third failure");
}

#[tokio::test]
async fn a_body_cut_short_is_a_failure() {
    let base = server(200, Then::Hang).await;
    let (breakers, _clock, client) = setup(threshold(3));
    let response = client.get(&base).send().await.unwrap();
    let err = response.text().await.unwrap_err();
    assert!(err.is_body() || err.is_decode(), "{err}");
    assert_eq!(breakers.get(&base).unwrap().snapshot().consecutive_failures, 1);
}

/// Opens the breaker of `base` and lets its open timeout pass: the next call is the trial.
fn half_open(breakers: &Breakers, clock: &ManualClock, base: &str) {
    let breaker = breakers.get(base).unwrap();
    for _ in 0..breaker.config().failure_threshold {
        breaker.acquire().unwrap().failure();
    }
    clock.advance(ms(10_000));
}

#[tokio::test]
async fn a_trial_ends_when_its_body_is_read() {
    let notify = Arc::new(Notify::new());
    let base = server(200, Then::FinishOn(notify.clone())).await;
    let (breakers, clock, client) = setup(threshold(1));
    half_open(&breakers, &clock, &base);
    let breaker = breakers.get(&base).unwrap();

    let response = client.get(&base).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(100), "the response is unchanged");
    assert_eq!(response.url().as_str(), format!("{base}/"), "the response is unchanged");
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.state, snapshot.trials_admitted), (State::HalfOpen, 1), "headers alone decide nothing");

    notify.notify_one();
    assert_eq!(response.text().await.unwrap().len(), 100);
    assert_eq!(breaker.state(), State::Closed, "the whole body arrived: a success");
}

#[tokio::test]
async fn a_response_dropped_unread_is_a_success() {
    let base = server(200, Then::Stall).await;
    let (breakers, clock, client) = setup(threshold(1));
    half_open(&breakers, &clock, &base);
    let response = client.get(&base).send().await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response); // the status was all the caller wanted
    assert_eq!(breakers.get(&base).unwrap().state(), State::Closed);
}

#[tokio::test]
async fn a_server_error_counts_at_once_whether_or_not_its_body_is_read() {
    let base = server(503, Then::Stall).await;
    let (breakers, _clock, client) = setup(threshold(3));
    let response = client.get(&base).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(breakers.get(&base).unwrap().snapshot().consecutive_failures, 1, "before the body is read");
    drop(response);
    assert_eq!(breakers.get(&base).unwrap().snapshot().consecutive_failures, 1, "counted once");
}

#[tokio::test]
async fn a_caller_side_timeout_while_reading_the_body_counts_nothing() {
    let base = server(200, Then::Stall).await;
    let (breakers, clock, client) = setup(threshold(1));
    half_open(&breakers, &clock, &base);
    let call = async { client.get(&base).send().await.unwrap().text().await };
    assert!(tokio::time::timeout(Duration::from_millis(100), call).await.is_err());
    let snapshot = breakers.get(&base).unwrap().snapshot();
    assert_eq!((snapshot.state, snapshot.trials_admitted), (State::HalfOpen, 0), "the trial slot is free again");
}

#[tokio::test]
async fn slow_call_measurement_covers_the_body() {
    let notify = Arc::new(Notify::new());
    let base = server(200, Then::FinishOn(notify.clone())).await;
    let mut config = threshold(3);
    let mut slow = SlowCall::default();
    slow.threshold_ms = 1_000;
    config.slow_call = Some(slow);
    let (breakers, clock, client) = setup(config);

    let response = client.get(&base).send().await.unwrap();
    clock.advance(ms(1_000)); // the body takes its time
    notify.notify_one();
    assert_eq!(response.text().await.unwrap().len(), 100);
    assert_eq!(breakers.get(&base).unwrap().snapshot().consecutive_failures, 1, "a slow call");
}
