//! Integration tests of chassis-discovery against real servers on loopback,
//! one module per concern.
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
mod support;
