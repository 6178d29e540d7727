//! Integration tests of chassis-breaker, one module per concern.
#![cfg(not(loom))]
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "reqwest")]
mod body;
mod breakers;
mod concurrency;
#[cfg(feature = "reqwest")]
mod http;
mod model;
mod observe;
mod permits;
mod policies;
mod support;
#[cfg(feature = "tower")]
mod tower;
mod transitions;
