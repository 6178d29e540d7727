//! [`PermitBody`]: a response body that holds its call's permit, so that a
//! call ends when its body does.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::breaker::Breaker;
use crate::permit::{Outcome, Permit};

type ErrorFn<E> = Box<dyn Fn(&E) -> Outcome + Send + Sync>;

pin_project! {
    /// An HTTP response body that holds the permit of the call it belongs to:
    /// the call's outcome is known only when its body has been read.
    ///
    /// - The body ends (the inner body yields its last frame): a **success**.
    /// - The body fails (a timeout, a connection cut mid-body): a **failure**
    ///   (or what the error classifier says, for the reqwest middleware
    ///   `Classify::body_error`).
    /// - Dropped before it was ever polled (the caller wanted the status
    ///   only): a **success** — the headers said the callee was fine.
    /// - Dropped while being read (the caller gave up, e.g. a
    ///   `tokio::time::timeout` around the call fired): **nothing** is
    ///   counted and a half-open trial slot is freed, as for any cancelled call.
    ///
    /// A slow-call threshold is measured up to that moment, so it covers the
    /// body. Data, trailers, size hint and end of stream pass through unchanged.
    pub struct PermitBody<B: Body> {
        #[pin]
        inner: B,
        guard: Guard<B::Error>,
    }
}

struct Guard<E> {
    permit: Option<Permit<Breaker>>,
    /// Whether the caller began reading the body.
    polled: bool,
    /// `None`: a body error is a failure.
    on_error: Option<ErrorFn<E>>,
}

impl<E> Guard<E> {
    fn finish(&mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            permit.record(outcome);
        }
    }
}

impl<E> Drop for Guard<E> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            if !self.polled {
                permit.success();
            }
            // Dropped mid-read: the permit's own drop releases it unrecorded.
        }
    }
}

impl<B: Body> fmt::Debug for PermitBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermitBody")
            .field("permit", &self.guard.permit)
            .field("polled", &self.guard.polled)
            .finish_non_exhaustive()
    }
}

impl<B: Body> PermitBody<B> {
    /// Wraps `inner`, holding `permit` until the body ends, fails or is
    /// dropped (see the type's docs). A body that is already at its end
    /// (e.g. `Content-Length: 0`) records the success at once.
    pub fn new(inner: B, permit: Permit<Breaker>) -> Self {
        let mut guard = Guard { permit: Some(permit), polled: false, on_error: None };
        if inner.is_end_stream() {
            guard.finish(Outcome::Success);
        }
        Self { inner, guard }
    }

    /// Wraps `inner` with no permit to hold: the call's outcome is already recorded.
    #[cfg(feature = "tower")]
    pub(crate) fn recorded(inner: B) -> Self {
        Self { inner, guard: Guard { permit: None, polled: false, on_error: None } }
    }

    /// Classifies a body error with `on_error` instead of counting every one
    /// as a failure.
    #[must_use]
    pub fn on_error(mut self, on_error: impl Fn(&B::Error) -> Outcome + Send + Sync + 'static) -> Self {
        self.guard.on_error = Some(Box::new(on_error));
        self
    }
}

impl<B: Body> Body for PermitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let guard = this.guard;
        guard.polled = true;
        let frame = std::task::ready!(inner.as_mut().poll_frame(cx));
        match &frame {
            None => guard.finish(Outcome::Success),
            Some(Err(error)) => {
                let outcome = guard.on_error.as_ref().map_or(Outcome::Failure, |classify| classify(error));
                guard.finish(outcome);
            }
            Some(Ok(_)) => {
                if inner.is_end_stream() {
                    guard.finish(Outcome::Success);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
