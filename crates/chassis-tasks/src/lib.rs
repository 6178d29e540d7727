//! Reliable asynchronous tasks for chassis services.
//!
//! ```
//! use chassis_tasks::{Config, MemoryQueue, Producer, Handlers, TaskContext, Worker};
//! use serde::{Deserialize, Serialize};
//! use tokio_util::sync::CancellationToken;
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail { to: String }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), chassis_tasks::Error> {
//! let queue = MemoryQueue::new("billing-tasks"); // or SqsQueue::from_config(&config).await?
//! let mut handlers = Handlers::new();
//! handlers.task("send_email", |email: SendEmail, ctx: TaskContext| async move {
//!     tracing::info!(to = %email.to, attempt = ctx.attempt, "sending");
//!     Ok::<_, std::io::Error>(())
//! })?;
//!
//! let producer = Producer::new(queue.clone());
//! producer.send(producer.task("send_email", &SendEmail { to: "ada@example.com".into() })).await?;
//!
//! let shutdown = CancellationToken::new();
//! let worker = Worker::new(queue, handlers, Config::new("billing-tasks"))?;
//! let running = tokio::spawn(worker.run(shutdown.clone()));
//! # tokio::time::sleep(std::time::Duration::from_millis(50)).await;
//! shutdown.cancel(); // e.g. on SIGTERM: stop receiving, finish or release in-flight tasks
//! let report = running.await.expect("worker");
//! assert_eq!(report.succeeded, 1);
//! # Ok(()) }
//! ```
//!
//! - **Backends** ([`Queue`]), all with SQS's semantics (visibility timeouts,
//!   per-receive receipts, receive counts, delays, batches, redrive, FIFO
//!   groups) and one conformance suite: `SqliteQueue` (feature `sqlite`: a
//!   durable file, survives `kill -9`), `PostgresQueue` (feature `postgres`:
//!   durable and shared by many machines; both can send inside the caller's
//!   transaction, `Producer::send_in`), `SqsQueue` (feature `sqs`: AWS SQS, or
//!   an emulator through an endpoint override) and [`MemoryQueue`] (embedded,
//!   lost with the process: tests and examples).
//! - **Operations** ([`monitor`]): queue depth and oldest-task age as metrics,
//!   dead-letter inspection and redrive.
//! - **Wire-compatible with `samba_chassis`** ([`wire`]): JSON body, String
//!   attributes `task_name`, `exec_id`, `when`, `job_id`, `job_name`.
//! - **Worker**: rolling concurrency (a receive whenever slots free up, never
//!   batch-by-batch), long polling, batched deletes off the receive path,
//!   visibility heartbeats for long tasks (up to SQS's 12 h), optional task
//!   timeouts, retries through the message's visibility with a [`Backoff`]
//!   (none / linear / exponential / random, capped, jittered), an `on_fail` task
//!   when failures are exhausted, panics caught, tasks due later and unknown
//!   tasks postponed (without using up an attempt), and one end for every task
//!   that cannot run — exhausted, unknown after `unknown_task_receives`
//!   receives, or malformed: the dead-letter queue (`tasks.dead_letter_queue`)
//!   with the reason, or, with none, deletion with an ERROR line; transient
//!   queue errors retried with a capped backoff and reported to [`WorkerHealth`].
//! - **Graceful shutdown** on a `CancellationToken`: receiving stops, in-flight
//!   tasks finish within the deadline, everything else is released (visible
//!   at once), pending deletes are flushed — all within
//!   `shutdown_deadline_secs`, even when the queue hangs (what is still
//!   waiting then is abandoned and comes back after its visibility timeout).
//! - **Observability**: each run is a `task` span with `task`, `exec_id`,
//!   `attempt`, `job_id`, `job_name`; metrics `chassis_tasks_received_total`,
//!   `_succeeded_total`, `_failed_total`, `_retried_total`,
//!   `_dead_lettered_total`, `_discarded_total`, `_hook_failures_total` (label
//!   `task`: a registered task's name, or `unknown` for every other name a
//!   message carries — another service's task, a malformed message — so that
//!   messages cannot add series), `chassis_tasks_in_flight`,
//!   `chassis_tasks_handler_duration_seconds`.
//!
//! # Delivery guarantees
//!
//! - **At least once.** A task whose send returned `Ok` runs until it ends,
//!   possibly more than once: after a delete that was lost, a crash between
//!   the handler's end and its (batched) delete, an SQS duplicate, or an
//!   outage of the worker's [`Hook`]. A handler must tolerate running twice:
//!   key its effects by `ctx.exec_id`, which is the same on every delivery of
//!   one execution and across a producer's retries of the same [`Task`].
//! - **One end per task, its effects at least once, keyed by `exec_id`.** A
//!   task that ends (succeeds, fails `max_failures` times, gives up, stays
//!   unknown, or is malformed) is acknowledged only after the hook recorded its
//!   outcome and, for a failure, its `on_fail` task and dead letter were sent;
//!   a step that fails keeps the message, and the steps repeat when it comes
//!   back. So an `on_fail` task is sent at least once, always with the same
//!   `exec_id` (derived from the task's, RFC 9562 v5), and a dead letter is
//!   written at least once (copies carry the same attributes, `exec_id`
//!   included); on FIFO queues both are deduplicated by the queue. Nothing is
//!   deleted whose end was not recorded. `chassis-jobs`' hook records each
//!   execution once, so a job counts each task exactly once.
//! - **Postponing is not an attempt.** A task due later (`when`) or with no
//!   handler here is sent again with a delay (up to 15 minutes at a time) and
//!   the received message deleted: its attempt count, and the receives a
//!   queue's redrive policy counts, start afresh. (FIFO messages are hidden
//!   instead, to keep their group's order; there a postponement is a receive.)
//! - **A FIFO group keeps its order when a message fails.** A group's
//!   messages run one after another; when one does not end (it is retried,
//!   postponed, released, or kept after a failed step), the group's later
//!   messages received with it are handed back unrun and come again after it
//!   (the queue delivers nothing more of a group while one of its messages is
//!   in flight). On the worker that handed them back, such receives are not
//!   attempts; elsewhere, and for a redrive policy's `maxReceiveCount`, they
//!   count (leave headroom on FIFO queues). FIFO tasks are sent without a
//!   per-message delay (SQS refuses one): a task due later holds its group back.
//! - **Batches fit.** [`Producer::send_all`] splits by count (10) and by payload
//!   ([`batch_payload_limit`]); the embedded queue refuses what SQS refuses.
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `sqs` | `SqsQueue`: the AWS SQS backend (aws-sdk-sqs) | No |
//! | `sqlite` | `SqliteQueue`: a durable queue in a SQLite file (sqlx) | No |
//! | `postgres` | `PostgresQueue`: a durable queue on PostgreSQL, shared by many machines (sqlx) | No |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod fault;
mod handler;
mod memory;
pub mod monitor;
mod producer;
mod queue;
mod retry;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqs")]
mod sqs;
pub mod wire;
mod worker;

/// The README's code blocks, compiled as doctests so that they keep matching
/// the code (it has none yet; any added later is compiled).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use config::Config;
pub use error::{Error, Result};
pub use fault::FaultyQueue;
pub use handler::{
    BoxFuture, Handlers, Hook, HookError, IntoTaskResult, OnFail, Proceed, RunOutcome, TaskContext, TaskPolicy,
    TaskResult,
};
pub use memory::{MemoryQueue, MemoryQueueBuilder};
pub use producer::{Producer, Task};
pub use queue::{
    EntryResult, MAX_BATCH, MAX_BATCH_BYTES, MAX_DELAY, MAX_VISIBILITY, MAX_WAIT, Message, Outgoing, Queue,
    QueueAttributes, QueueError, batch_payload_limit,
};
pub use retry::{Backoff, Progression};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use sql::postgres::PostgresQueue;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sql::sqlite::SqliteQueue;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use sql::{SqlQueueOptions, TransactionalQueue};
#[cfg(feature = "sqs")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqs")))]
pub use sqs::{CreateOptions, SqsQueue};
pub use tokio_util::sync::CancellationToken;
pub use worker::{DEAD_LETTER_REASON, Report, Worker, WorkerHealth};
