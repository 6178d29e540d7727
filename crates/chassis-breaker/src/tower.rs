//! tower integration: a `Layer`/`Service` whose response future holds the
//! permit — no boxing; and one for HTTP services whose response body does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::body::PermitBody;
use crate::breaker::Breaker;
use crate::error::Rejected;
use crate::permit::{Outcome, Permit};

/// Decides what a service's result says about the callee.
pub trait Classifier<T, E>: Clone {
    /// Success, failure, or nothing to say.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

/// `Ok` is a success, `Err` a failure.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorIsFailure;

impl<T, E> Classifier<T, E> for ErrorIsFailure {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        if result.is_ok() { Outcome::Success } else { Outcome::Failure }
    }
}

/// For `http::Response`s: errors, 5xx, 408 and 429 are failures.
///
/// With [`BreakerLayer`], the outcome is recorded when the response head
/// arrives, so a body that fails or is slow is not seen; [`HttpBreakerLayer`]
/// (which uses this classifier by default) holds the permit in the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpStatus;

impl<B, E> Classifier<http::Response<B>, E> for HttpStatus {
    fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
        match result {
            Ok(response) => crate::permit::status_outcome(response.status()),
            Err(_) => Outcome::Failure,
        }
    }
}

impl<T, E, F> Classifier<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome + Clone,
{
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// The error of a [`BreakerService`]: refused, or the inner service's error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError<E> {
    /// The breaker refused the call; the inner service was not called.
    #[error(transparent)]
    Rejected(Rejected),
    /// The inner service failed.
    #[error(transparent)]
    Inner(E),
}

/// Wraps services in a [`BreakerService`] sharing one breaker.
///
/// ```
/// use chassis_breaker::{Breaker, BreakerLayer, Config};
///
/// let breaker = Breaker::new("inventory", Config::default())?;
/// let layer = BreakerLayer::new(breaker);
/// # let _ = layer;
/// # Ok::<(), chassis_breaker::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BreakerLayer<C = ErrorIsFailure> {
    breaker: Breaker,
    classifier: C,
}

impl BreakerLayer {
    /// A layer where `Err` is a failure.
    pub fn new(breaker: Breaker) -> Self {
        Self { breaker, classifier: ErrorIsFailure }
    }
}

impl<C> BreakerLayer<C> {
    /// Uses `classifier` to judge results (e.g. [`HttpStatus`]).
    pub fn classifier<C2>(self, classifier: C2) -> BreakerLayer<C2> {
        BreakerLayer { breaker: self.breaker, classifier }
    }
}

impl<S, C: Clone> tower_layer::Layer<S> for BreakerLayer<C> {
    type Service = BreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService { inner, breaker: self.breaker.clone(), classifier: self.classifier.clone() }
    }
}

/// A service behind a breaker.
#[derive(Debug, Clone)]
pub struct BreakerService<S, C = ErrorIsFailure> {
    inner: S,
    breaker: Breaker,
    classifier: C,
}

impl<S, C> BreakerService<S, C> {
    /// The breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }
}

impl<S, Req, C> tower_service::Service<Req> for BreakerService<S, C>
where
    S: tower_service::Service<Req>,
    C: Classifier<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = ServiceError<S::Error>;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(ServiceError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.acquire_owned() {
            Ok(permit) => ResponseFuture::Running {
                future: self.inner.call(req),
                permit: Some(permit),
                classifier: self.classifier.clone(),
            },
            Err(rejected) => ResponseFuture::Rejected { rejected },
        }
    }
}

pin_project! {
    /// The response future of a [`BreakerService`]: it holds the permit, and
    /// reports the outcome when the inner future completes. Dropped early, it
    /// records nothing.
    #[project = Projection]
    #[allow(missing_docs)] // the variants' fields are the state, not an API
    pub enum ResponseFuture<F, C> {
        /// The call is running.
        Running { #[pin] future: F, permit: Option<Permit<Breaker>>, classifier: C },
        /// The breaker refused the call.
        Rejected { rejected: Rejected },
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    C: Classifier<T, E>,
{
    type Output = Result<T, ServiceError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Projection::Running { future, permit, classifier } => {
                let result = std::task::ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(classifier.classify(&result));
                }
                Poll::Ready(result.map_err(ServiceError::Inner))
            }
            Projection::Rejected { rejected } => Poll::Ready(Err(ServiceError::Rejected(rejected.clone()))),
        }
    }
}

/// Wraps HTTP services in an [`HttpBreakerService`] sharing one breaker: a
/// call ends when its response body does.
///
/// The response head is judged by the classifier ([`HttpStatus`] by
/// default): a failure (an error, 5xx, 408, 429) counts at once; a success is
/// provisional, and the permit moves into the response body, a
/// [`PermitBody`]: the end of the body is a success, a body error a failure,
/// a body dropped unread a success, a body dropped mid-read counts nothing.
/// A slow-call threshold covers the body.
///
/// ```
/// use chassis_breaker::{Breaker, Config, HttpBreakerLayer};
///
/// let layer = HttpBreakerLayer::new(Breaker::new("inventory", Config::default())?);
/// # let _ = layer;
/// # Ok::<(), chassis_breaker::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpBreakerLayer<C = HttpStatus> {
    breaker: Breaker,
    classifier: C,
}

impl HttpBreakerLayer {
    /// A layer judging response heads with [`HttpStatus`].
    pub fn new(breaker: Breaker) -> Self {
        Self { breaker, classifier: HttpStatus }
    }
}

impl<C> HttpBreakerLayer<C> {
    /// Uses `classifier` to judge response heads and errors.
    pub fn classifier<C2>(self, classifier: C2) -> HttpBreakerLayer<C2> {
        HttpBreakerLayer { breaker: self.breaker, classifier }
    }
}

impl<S, C: Clone> tower_layer::Layer<S> for HttpBreakerLayer<C> {
    type Service = HttpBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpBreakerService { inner, breaker: self.breaker.clone(), classifier: self.classifier.clone() }
    }
}

/// An HTTP service behind a breaker; its responses' bodies are
/// [`PermitBody`]s (see [`HttpBreakerLayer`]).
#[derive(Debug, Clone)]
pub struct HttpBreakerService<S, C = HttpStatus> {
    inner: S,
    breaker: Breaker,
    classifier: C,
}

impl<S, C> HttpBreakerService<S, C> {
    /// The breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }
}

impl<S, Req, C, B> tower_service::Service<Req> for HttpBreakerService<S, C>
where
    S: tower_service::Service<Req, Response = http::Response<B>>,
    B: http_body::Body,
    C: Classifier<http::Response<B>, S::Error>,
{
    type Response = http::Response<PermitBody<B>>;
    type Error = ServiceError<S::Error>;
    type Future = HttpResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(ServiceError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let inner = match self.breaker.acquire_owned() {
            Ok(permit) => ResponseFuture::Running {
                future: self.inner.call(req),
                permit: Some(permit),
                classifier: self.classifier.clone(),
            },
            Err(rejected) => ResponseFuture::Rejected { rejected },
        };
        HttpResponseFuture { inner }
    }
}

pin_project! {
    /// The response future of an [`HttpBreakerService`]: it holds the permit
    /// until the response head arrives, then hands it to the body if the head
    /// says success. Dropped early, it records nothing.
    pub struct HttpResponseFuture<F, C> {
        #[pin]
        inner: ResponseFuture<F, C>,
    }
}

impl<F, C, B, E> Future for HttpResponseFuture<F, C>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: http_body::Body,
    C: Classifier<http::Response<B>, E>,
{
    type Output = Result<http::Response<PermitBody<B>>, ServiceError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            Projection::Running { future, permit, classifier } => {
                let result = std::task::ready!(future.poll(cx));
                let outcome = classifier.classify(&result);
                let response = result.map_err(ServiceError::Inner)?;
                Poll::Ready(Ok(match (permit.take(), outcome) {
                    // The outcome is known only when the body has been read.
                    (Some(permit), Outcome::Success) => response.map(|body| PermitBody::new(body, permit)),
                    (permit, outcome) => {
                        if let Some(permit) = permit {
                            permit.record(outcome);
                        }
                        response.map(PermitBody::recorded)
                    }
                }))
            }
            Projection::Rejected { rejected } => Poll::Ready(Err(ServiceError::Rejected(rejected.clone()))),
        }
    }
}
