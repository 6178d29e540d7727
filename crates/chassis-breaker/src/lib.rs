//! A lock-free circuit breaker that understands HTTP.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let breakers = chassis_breaker::Breakers::new(chassis_breaker::Config::default())?;
//! let client = chassis_breaker::client(breakers)?; // a breaker per host, 5 s request timeout
//! let response = client.get("http://127.0.0.1:8080/orders").send().await?;
//! # let _ = response; Ok(()) }
//! ```
//!
//! Closed — calls pass; when consecutive failures reach `failure_threshold`
//! (or, with [`FailureRate`], the failure rate over the last calls does), the
//! breaker opens. Open — calls fail at once with [`Rejected`], without running,
//! for `open_timeout_ms` (optionally [backed off](OpenBackoff) on repeated
//! re-opens). Half-open — exactly `half_open_max_calls` trial calls pass; if
//! they all succeed it closes; a single failure re-opens it.
//!
//! - **Lock-free and nearly free when closed**: the state, its generation and
//!   its deadline live in one atomic word; admitting a call in the closed state
//!   is one atomic load, and a success writes only when there is a failure
//!   count to clear. No lock and no allocation on any call path.
//! - **Exact half-open**: a compare-and-swap per trial slot admits exactly
//!   `half_open_max_calls`, however many callers race.
//! - **Cancellation-safe permits**: [`Breaker::acquire`] returns a [`Permit`];
//!   dropped without an outcome (a cancelled future) it frees its slot and
//!   counts nothing; a trial that never reports back is given up after
//!   `probe_timeout_ms`; every permit carries the generation it was issued in,
//!   so a late result from an earlier state is ignored.
//! - **HTTP-aware**: [`HttpClassifier`] counts connect errors, timeouts, body
//!   errors, 5xx, 408 and 429 as failures and other 4xx as successes; override
//!   it per client or per request ([`ClassifyWith`]).
//! - **A call ends when its body does**: a successful response carries its
//!   permit in its body ([`PermitBody`]), so a body that times out or breaks
//!   off is a failure, slow-call measurement covers the body, and a response
//!   dropped unread is a success. The client's own timeout covers the body
//!   and counts; a caller-side `tokio::time::timeout` is a cancellation and
//!   counts nothing (see [`BreakerMiddleware`]).
//! - **Integrations**: a `reqwest-middleware` [`BreakerMiddleware`] with
//!   breakers per host from a bounded [`Breakers`], a ready [`client`], a
//!   tower [`BreakerLayer`] whose response future holds the permit, and an
//!   [`HttpBreakerLayer`] whose response body does.
//! - **Observable**: [`Breaker::snapshot`], state-change listeners called with
//!   no lock held, `tracing` events on transitions, and `metrics`:
//!   `chassis_breaker_calls_total{breaker,outcome}`,
//!   `chassis_breaker_rejections_total{breaker}`,
//!   `chassis_breaker_transitions_total{breaker,from,to}`,
//!   `chassis_breaker_state{breaker}` (0 closed, 1 open, …). Metric handles are
//!   registered when a breaker is built: install the recorder first.
//! - **Metric lifecycle**: a [`Breakers`] retires the series of a breaker it
//!   evicts — its `chassis_breaker_state` reads 0 (closed), as a new breaker
//!   for that key would, and it writes no more state — so an alert on an open
//!   breaker clears when the breaker is forgotten. Neither the `metrics` facade
//!   nor `metrics-exporter-prometheus` can delete one series (the exporter's
//!   idle timeout would also drop the series of live breakers that hold their
//!   handles, whose later updates would then be lost), so the label set is
//!   bounded instead: at most [`BreakersBuilder::max_metric_keys`] keys
//!   (default: `max_entries`) get a `breaker` label of their own, later ones
//!   are counted together under `breaker="_other"`, with no state series.
//! - **Testable time**: a monotonic [`Clock`], injectable; [`ManualClock`]
//!   drives every timeout in tests.
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `reqwest` | [`BreakerMiddleware`], [`client`], [`HttpClassifier`] for `reqwest-middleware` | Yes |
//! | `tower` | [`BreakerLayer`] / [`BreakerService`], [`HttpBreakerLayer`] / [`HttpBreakerService`] | Yes |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "reqwest", feature = "tower"))]
mod body;
mod breaker;
mod breakers;
mod builder;
mod clock;
mod config;
mod error;
#[cfg(feature = "reqwest")]
mod http;
mod metrics;
mod permit;
mod state;
mod sync;
#[cfg(feature = "tower")]
mod tower;
mod window;

#[cfg(any(feature = "reqwest", feature = "tower"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "reqwest", feature = "tower"))))]
pub use body::PermitBody;
pub use breaker::{Breaker, Snapshot, Transition};
pub use breakers::{Breakers, BreakersBuilder};
pub use builder::Builder;
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use config::{Config, FailureRate, OpenBackoff, SlowCall};
pub use error::{CallError, Error, Rejected, Result};
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use http::{
    BreakerMiddleware, Classify, ClassifyWith, HttpClassifier, client, client_with, host_key, path_prefix_key,
};
pub use permit::{Outcome, Permit};
pub use state::State;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use tower::{
    BreakerLayer, BreakerService, Classifier, ErrorIsFailure, HttpBreakerLayer, HttpBreakerService, HttpResponseFuture,
    HttpStatus, ResponseFuture, ServiceError,
};

/// The README's code blocks, compiled as doctests so that they keep matching
/// the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
