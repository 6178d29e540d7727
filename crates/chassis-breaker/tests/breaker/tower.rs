//! The tower layer: the response future holds the permit.

use std::time::Duration;

use chassis_breaker::{Breaker, BreakerLayer, HttpStatus, ManualClock, ServiceError, State};
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::support::{config, ms};

fn breaker(clock: &ManualClock) -> Breaker {
    Breaker::builder("tower").config(config(2, 1000, 1)).clock(clock.clone()).build().unwrap()
}

#[tokio::test]
async fn errors_trip_the_breaker_and_rejections_skip_the_service() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let inner = service_fn(move |fail: bool| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { if fail { Err("boom") } else { Ok("fine") } }
    });
    let mut svc = BreakerLayer::new(b.clone()).layer(inner);
    assert_eq!(svc.ready().await.unwrap().call(false).await.unwrap(), "fine");
    for _ in 0..2 {
        assert!(matches!(svc.ready().await.unwrap().call(true).await, Err(ServiceError::Inner("boom"))));
    }
    assert_eq!(b.state(), State::Open);
    let before = calls.load(std::sync::atomic::Ordering::SeqCst);
    match svc.ready().await.unwrap().call(false).await {
        Err(ServiceError::Rejected(r)) => assert_eq!(r.state(), State::Open),
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), before);
    clock.advance(ms(1000));
    svc.ready().await.unwrap().call(false).await.unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test]
async fn a_dropped_response_future_frees_the_trial_slot() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let slow = service_fn(|(): ()| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, &str>(())
    });
    let mut svc = BreakerLayer::new(b.clone()).layer(slow);
    // Open, then half-open with one slot.
    for _ in 0..2 {
        b.acquire().unwrap().failure();
    }
    clock.advance(ms(1000));
    let fut = svc.ready().await.unwrap().call(());
    assert_eq!(b.snapshot().trials_admitted, 1);
    drop(fut);
    assert_eq!(b.snapshot().trials_admitted, 0);
    assert_eq!(b.state(), State::HalfOpen);
}

#[tokio::test]
async fn http_status_classification() {
    let b = breaker(&ManualClock::new());
    let inner = service_fn(|code: u16| async move {
        Ok::<_, std::convert::Infallible>(http::Response::builder().status(code).body(()).unwrap())
    });
    let mut svc = BreakerLayer::new(b.clone()).classifier(HttpStatus).layer(inner);
    for code in [404, 400, 200] {
        svc.ready().await.unwrap().call(code).await.unwrap();
    }
    assert_eq!(b.state(), State::Closed);
    for code in [503, 429] {
        svc.ready().await.unwrap().call(code).await.unwrap();
    }
    assert_eq!(b.state(), State::Open);
}
