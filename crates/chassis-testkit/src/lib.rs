//! What a chassis service's own tests need, as a dev-dependency.
//!
//! - [`TestService`]: starts your service — the same builder `main` calls — in
//!   this process on free loopback ports, with a test configuration (overrides,
//!   no process environment), waits for `/readyz`, and gives clients for the API
//!   and admin ports, its log lines as JSON ([`TestService::logs`]) and its
//!   metrics ([`TestService::metrics`]); [`TestService::shutdown`] drains it and
//!   says whether the drain was clean.
//! - [`FakeUpstream`]: a scripted HTTP server on loopback (status sequences,
//!   delays, bodies that stall half-way, connection resets) that records what
//!   it received — for breaker and discovery tests.
//! - Servers: [`Moto`] (`moto_server`, SQS), [`Etcd`], and with the `postgres`
//!   feature `PgSchema` (a PostgreSQL schema of its own per test), each on free
//!   loopback ports, failing with what to install when the binary or server is
//!   missing.
//! - Queues: [`queue::run_until_finished`] and [`queue::run_until_idle`] run a worker until N tasks finished or the
//!   queue is idle; [`queue::pending`] and [`queue::dead_letters`] show what waits.
//! - Logs: [`logs::capture`] and [`logs::Capture`], JSON lines as maps.
//! - Time: [`clock`] helpers for tokio's paused clock.
//!
//! ```no_run
//! # #[derive(serde::Deserialize)] struct Settings {}
//! # async fn build(service: chassis_service::Service, _: Settings) -> Result<chassis_service::Service, String> { Ok(service) }
//! # async fn example() -> Result<(), chassis_testkit::Error> {
//! use chassis_testkit::TestService;
//!
//! let service = TestService::builder(chassis_config::Loader::new("APP"))
//!     .set("tasks.concurrency", 2)
//!     .start(|service, settings: Settings| build(service, settings))
//!     .await?;
//! let response = service.api().get("/hello").send().await?;
//! assert_eq!(response.status(), 200);
//! assert!(service.logs().find(|line| line["message"] == "request").is_some());
//! service.shutdown().await?; // Err unless the drain was clean
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `postgres` | `PgSchema`: a PostgreSQL schema per test (sqlx) | No |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
mod error;
pub mod logs;
mod metrics;
mod net;
pub mod queue;
mod servers;
mod service;
mod upstream;

pub use error::{Error, Result};
pub use metrics::Metrics;
pub use net::free_addr;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use servers::PgSchema;
pub use servers::{Etcd, Moto};
pub use service::{Client, TestService, TestServiceBuilder};
pub use upstream::{FakeUpstream, Received, Reply};

/// The README's code blocks, compiled as doctests so that they keep matching
/// the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
