//! Integration tests of chassis-discovery against real servers on loopback,
//! one module per concern.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout
)]

#[cfg(feature = "client")]
mod client;
#[cfg(all(feature = "dns", feature = "client"))]
mod dns;
#[cfg(all(feature = "etcd", feature = "client"))]
mod etcd;
#[cfg(feature = "client")]
mod support;
