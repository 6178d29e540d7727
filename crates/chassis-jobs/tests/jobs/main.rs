//! Integration tests of chassis-jobs: one conformance suite for every store,
//! tasks driving jobs, concurrency, and the HTTP view.
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod at_least_once;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod atomic;
mod config;
mod conformance;
#[cfg(feature = "http")]
mod http;
mod migrate;
mod stores;
mod tasks;
mod values;
