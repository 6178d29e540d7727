//! A lock-free circuit breaker that understands HTTP.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod breaker;
mod clock;
mod config;
mod error;
#[cfg(feature = "reqwest")]
mod http;
mod permit;
mod registry;
mod state;
mod sync;
#[cfg(feature = "tower")]
mod tower;
mod window;

pub use breaker::{Breaker, Builder, Snapshot, Transition};
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use config::{Backoff, Config, FailureRate, SlowCall};
pub use error::{CallError, Error, Rejected, Result};
#[cfg(feature = "reqwest")]
pub use http::{BreakerMiddleware, Classify, ClassifyWith, HttpClassifier, client, host_key, path_prefix_key};
pub use permit::{Outcome, Permit};
pub use registry::{Registry, RegistryBuilder};
pub use state::State;
#[cfg(feature = "tower")]
pub use tower::{BreakerLayer, BreakerService, Classifier, ErrorIsFailure, HttpStatus, ResponseFuture, ServiceError};
