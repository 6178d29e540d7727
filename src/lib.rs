//! # chassis
//!
//! A Rust microservice chassis: the cross-cutting concerns a new service needs on
//! day one, as independently usable crates behind one facade.
//!
//! ```
//! # #[cfg(feature = "config")] {
//! use chassis::config::{Loader, Secret};
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! struct Settings {
//!     name: String,
//!     database_url: Secret<String>,
//! }
//!
//! let settings = Loader::new("APP")
//!     .env([("APP_NAME", "billing"), ("APP_DATABASE_URL", "postgres://db/billing")])
//!     .extract::<Settings>()
//!     .unwrap_or_else(|report| report.exit()); // prints every problem, exits 78
//! assert_eq!(settings.name, "billing");
//! # }
//! ```
//!
//! # Features
//!
//! Each crate is re-exported under the name of its feature.
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `config` | [`config`]: layered, typed configuration with one complete error report, secrets and provenance | Yes |
//! | `config-yaml` | YAML configuration files | No |
//! | `config-json` | JSON configuration files | No |
//! | `log` | [`log`]: structured logs — pretty, compact, JSON or Google Cloud Logging — with service and job context on every line | Yes |
//! | `breaker` | [`breaker`]: a lock-free circuit breaker with a reqwest middleware (a breaker per host) and a tower layer | Yes |
//! | `tasks` | [`tasks`]: reliable asynchronous tasks — producer, worker with retries, dead letters, heartbeats and graceful shutdown, embedded queue | Yes |
//! | `tasks-sqs` | The AWS SQS task backend | No |
//! | `tasks-sqlite` | The durable SQLite task queue (a file; the quickstart's default) | Yes |
//! | `tasks-postgres` | The durable PostgreSQL task queue, shared by many machines | No |
//! | `jobs` | [`jobs`]: job tracking — state machine, stores, the hook that ties task execution to job status | Yes |
//! | `jobs-sqlite` | The SQLite job store | Yes |
//! | `jobs-postgres` | The PostgreSQL job store | No |
//! | `jobs-http` | The HTTP view of jobs (axum) | Yes |
//! | `discovery` | [`discovery`]: service registration (a `Registry` trait, leases with TTLs, watches) and discovery with client-side load balancing before the breaker; static backend | Yes |
//! | `discovery-etcd` | The etcd discovery backend (leases, watches) | No |
//! | `discovery-dns` | The DNS discovery backend (SRV with priorities and weights, A/AAAA) | No |
//! | `service` | [`service`]: the runtime — lifecycle, signals, admin server (`/livez`, `/readyz`, `/startupz`, `/metrics`, `/info`), the API's middleware (request spans and ids, RED metrics, timeout, body limit, panic guard), graceful shutdown | Yes |
//! | `otel` | Export spans to an OpenTelemetry collector over OTLP/HTTP (protobuf), configured by the `otel` section and the `OTEL_*` variables; one trace across HTTP and tasks | No |
//! | `trace` | [`trace`]: W3C trace context (`traceparent`) kept on spans; the service, breaker and tasks carry it (each enables it) | Yes |
//! | `full` | Everything above | No |
//!
//! # Where to start
//!
//! [`prelude`] has the handful of types every service uses; `use
//! chassis::prelude::*;` brings them in. Each crate's page then goes into
//! its part: [`config`] (loading and its report), [`log`], [`service`] (the
//! lifecycle, probes, the API's middleware), [`tasks`] (queues, the worker,
//! delivery guarantees), [`jobs`], [`breaker`], [`discovery`], [`trace`].
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The types nearly every service names, from every enabled crate:
/// `use chassis::prelude::*;`.
///
/// | type | what for |
/// |---|---|
/// | [`Loader`](crate::config::Loader), [`Secret`](crate::config::Secret) | the configuration and its secrets |
/// | [`Service`](crate::service::Service), [`boot`](crate::service::boot), [`CancellationToken`](crate::service::CancellationToken) | the runtime: configuration, logging and the service in one call; the token that stops a component |
/// | [`Handlers`](crate::tasks::Handlers), [`TaskContext`](crate::tasks::TaskContext), [`TaskResult`](crate::tasks::TaskResult), [`Producer`](crate::tasks::Producer), [`Worker`](crate::tasks::Worker), [`Queue`](crate::tasks::Queue) | tasks: handlers by name, sending, running |
/// | [`Jobs`](crate::jobs::Jobs), [`JobHook`](crate::jobs::JobHook), [`NewJob`](crate::jobs::NewJob) | jobs that follow their tasks |
/// | [`Breakers`](crate::breaker::Breakers) | a breaker per host for outbound HTTP |
///
/// Names that several crates use for their own section (`Config`, `Error`)
/// are left out: write `chassis::tasks::Config`.
pub mod prelude {
    #[cfg(feature = "breaker")]
    pub use chassis_breaker::Breakers;
    #[cfg(feature = "config")]
    pub use chassis_config::{Loader, Secret};
    #[cfg(feature = "jobs")]
    pub use chassis_jobs::{JobHook, Jobs, NewJob};
    #[cfg(feature = "service")]
    pub use chassis_service::{CancellationToken, Service, boot};
    #[cfg(all(feature = "tasks", not(feature = "service")))]
    pub use chassis_tasks::CancellationToken;
    #[cfg(feature = "tasks")]
    pub use chassis_tasks::{Handlers, Producer, Queue, TaskContext, TaskResult, Worker};
}

#[cfg(feature = "breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "breaker")))]
pub use chassis_breaker as breaker;
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub use chassis_config as config;
#[cfg(feature = "discovery")]
#[cfg_attr(docsrs, doc(cfg(feature = "discovery")))]
pub use chassis_discovery as discovery;
#[cfg(feature = "jobs")]
#[cfg_attr(docsrs, doc(cfg(feature = "jobs")))]
pub use chassis_jobs as jobs;
#[cfg(feature = "log")]
#[cfg_attr(docsrs, doc(cfg(feature = "log")))]
pub use chassis_log as log;
#[cfg(feature = "service")]
#[cfg_attr(docsrs, doc(cfg(feature = "service")))]
pub use chassis_service as service;
#[cfg(feature = "tasks")]
#[cfg_attr(docsrs, doc(cfg(feature = "tasks")))]
pub use chassis_tasks as tasks;
#[cfg(feature = "trace")]
#[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
pub use chassis_trace as trace;

/// The README's code blocks, compiled (and, where they need no server, run) as
/// doctests so that they keep matching the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
