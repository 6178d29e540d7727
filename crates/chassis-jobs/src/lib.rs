//! Job tracking: a job is one asynchronous piece of work a client asked for,
//! carried out by one or more tasks.
//!
//! - [`Job`]: id (UUID v7), name, [`Status`], progress (tasks done / total, and
//!   a user percentage and message), attempts, input, result, error (with the
//!   failing task), labels, timestamps, version.
//! - A state machine — `pending → running → succeeded | failed | cancelled`,
//!   cancel also from pending — whose illegal transitions are typed errors.
//! - [`JobStore`] with conditional updates (optimistic concurrency), filtered
//!   cursor-paginated listing and purging; [`MemoryStore`], and [`SqlStore`] on
//!   SQLite (feature `sqlite`) or PostgreSQL (feature `postgres`), all passing
//!   one conformance suite.
//! - Migration locking: [`SqlStore::connect`] applies its embedded migrations
//!   under a lock, so replicas starting together all start. On PostgreSQL each
//!   migration runs in its own transaction that first takes
//!   `pg_advisory_xact_lock(key)` — `key` is 64-bit FNV-1a over
//!   `"chassis-jobs"`, a zero byte and the table prefix, fixed across versions —
//!   then re-checks the applied versions and writes its version row with the
//!   change; on SQLite the same transactions begin with `BEGIN IMMEDIATE`.
//! - What a store records, it reads back, on every store alike: JSON input,
//!   result and labels are stored as JSON text (U+0000, U+2028, numbers from
//!   `i64::MIN` to `u64::MAX` and any finite `f64`, megabytes of it); U+0000 in
//!   a text field (name, message, error message and task, a task's `exec_id`)
//!   is stored as U+FFFD, because PostgreSQL's `text` cannot hold it and a task's
//!   failure must still fail its job; percentages are kept to hundredths. A
//!   write is refused with [`Error::Invalid`] when input or result nest deeper
//!   than [`MAX_JSON_DEPTH`] or a percentage is not 0 to 100. A stored row that
//!   does not read (damaged, or from a newer version) is an [`Error::Store`]
//!   naming the job from `get`, and is logged and skipped by `list`, so it never
//!   hides the other jobs.
//! - [`Jobs::start_with_tasks`] sends a job's tasks with its id and name; the
//!   [`JobHook`] on the task worker moves the job as they run.
//! - An axum router to view and cancel jobs (feature `http`).
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `sqlite` | [`SqlStore`] on a SQLite file | No |
//! | `postgres` | [`SqlStore`] on PostgreSQL | No |
//! | `http` | [`router`]: `GET /jobs/{id}`, `GET /jobs`, `POST /jobs/{id}/cancel` | No |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod atomic;
mod config;
mod error;
mod hook;
#[cfg(feature = "http")]
mod http;
mod jobs;
mod memory;
mod model;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod store;

pub use config::{Backend, Config};
pub use error::{Error, Result};
pub use hook::JobHook;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::router;
pub use jobs::Jobs;
pub use memory::MemoryStore;
pub use model::{Filter, Job, JobError, MAX_JSON_DEPTH, NewJob, Page, Status, TaskEnd, now_ms};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use sql::SqlStore;
pub use store::JobStore;

/// The README's code blocks, compiled and run as doctests so that they keep
/// matching the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

impl Jobs {
    /// Jobs in the store `config` describes (a SQLite file's directory is created).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a backend whose feature is off or a missing URL;
    /// [`Error::Store`] when the database cannot be reached or migrated.
    pub async fn from_config(config: &Config) -> Result<Self> {
        match config.backend {
            Backend::Memory => Ok(Self::new(MemoryStore::new())),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => {
                let path = std::path::Path::new(&config.path);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Error::Store(format!("cannot create {}: {e}", dir.display())))?;
                }
                let url = format!("sqlite://{}?mode=rwc", config.path);
                Ok(Self::new(SqlStore::connect(&url, config.pool_size, &config.table_prefix).await?))
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let url =
                    config.url.as_ref().ok_or_else(|| Error::Invalid("jobs.url is required for postgres".into()))?;
                Ok(Self::new(SqlStore::connect(url.expose(), config.pool_size, &config.table_prefix).await?))
            }
            #[allow(unreachable_patterns)]
            other => Err(Error::Invalid(format!("the {other:?} job backend needs the crate feature of that name"))),
        }
    }
}
