//! The test kit, tested: a service started, probed, scraped and drained; a
//! fake upstream's scripts; the server fixtures; the queue helpers.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod queue;
mod servers;
mod service;
mod upstream;
