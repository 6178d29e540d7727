//! The tower layer: the response future holds the permit.

use std::time::Duration;

use chassis_breaker::{
    Breaker, BreakerLayer, HttpBreakerLayer, HttpStatus, ManualClock, PermitBody, ServiceError, State,
};
use http_body::Body as _;
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

/// A response body the test feeds frame by frame.
struct Fed(tokio::sync::mpsc::UnboundedReceiver<Result<&'static [u8], &'static str>>);

impl http_body::Body for Fed {
    type Data = &'static [u8];
    type Error = &'static str;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(|r| r.map(http_body::Frame::data)))
    }
}

type Feed = tokio::sync::mpsc::UnboundedSender<Result<&'static [u8], &'static str>>;

/// An HTTP service behind an `HttpBreakerLayer`; each call answers `status`
/// with a body fed through the returned channel.
fn http_service(
    b: &Breaker,
) -> impl Service<u16, Response = http::Response<PermitBody<Fed>>, Error = ServiceError<std::convert::Infallible>> + use<>
{
    let inner = service_fn(|status: u16| async move {
        let (feed, body) = tokio::sync::mpsc::unbounded_channel();
        let mut response = http::Response::builder().status(status).body(Fed(body)).unwrap();
        response.extensions_mut().insert::<Feed>(feed);
        Ok::<_, std::convert::Infallible>(response)
    });
    HttpBreakerLayer::new(b.clone()).layer(inner)
}

async fn next_frame(body: &mut PermitBody<Fed>) -> Option<Result<http_body::Frame<&'static [u8]>, &'static str>> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx)).await
}

fn half_open(b: &Breaker, clock: &ManualClock) {
    for _ in 0..2 {
        b.acquire().unwrap().failure();
    }
    clock.advance(ms(1000));
}

#[tokio::test]
async fn http_a_trial_ends_when_its_body_does() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    half_open(&b, &clock);
    let mut svc = http_service(&b);
    let response = svc.ready().await.unwrap().call(200).await.unwrap();
    let (parts, mut body) = response.into_parts();
    assert_eq!((b.state(), b.snapshot().trials_admitted), (State::HalfOpen, 1), "the head alone decides nothing");
    let feed = parts.extensions.get::<Feed>().unwrap().clone();
    drop(parts);
    feed.send(Ok(b"abc")).unwrap();
    drop(feed);
    assert!(next_frame(&mut body).await.unwrap().is_ok());
    assert_eq!(b.state(), State::HalfOpen);
    assert!(next_frame(&mut body).await.is_none());
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test]
async fn http_a_body_error_is_a_failure() {
    let b = breaker(&ManualClock::new());
    let mut svc = http_service(&b);
    for _ in 0..2 {
        let (parts, mut body) = svc.ready().await.unwrap().call(200).await.unwrap().into_parts();
        parts.extensions.get::<Feed>().unwrap().send(Err("connection reset")).unwrap();
        assert_eq!(next_frame(&mut body).await.unwrap().unwrap_err(), "connection reset");
    }
    assert_eq!(b.state(), State::Open);
}

#[tokio::test]
async fn http_a_server_error_counts_at_once_and_a_body_dropped_unread_is_a_success() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let mut svc = http_service(&b);
    let response = svc.ready().await.unwrap().call(503).await.unwrap();
    assert_eq!(b.snapshot().consecutive_failures, 1, "before the body is read");
    drop(response);
    assert_eq!(b.snapshot().consecutive_failures, 1, "counted once");

    b.reset();
    half_open(&b, &clock);
    drop(svc.ready().await.unwrap().call(200).await.unwrap());
    assert_eq!(b.state(), State::Closed, "the status was all the caller wanted");
}

#[tokio::test]
async fn http_a_body_dropped_mid_read_counts_nothing() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    half_open(&b, &clock);
    let mut svc = http_service(&b);
    let (parts, mut body) = svc.ready().await.unwrap().call(200).await.unwrap().into_parts();
    let read = tokio::time::timeout(Duration::from_millis(10), next_frame(&mut body)).await;
    assert!(read.is_err(), "nothing fed yet");
    drop((parts, body));
    assert_eq!((b.state(), b.snapshot().trials_admitted), (State::HalfOpen, 0));
}
