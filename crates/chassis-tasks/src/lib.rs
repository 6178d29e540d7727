//! Reliable asynchronous tasks for chassis services.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod handler;
mod memory;
mod producer;
mod queue;
mod retry;
#[cfg(feature = "sqs")]
mod sqs;
pub mod wire;
mod worker;

pub use config::Config;
pub use error::{Error, Result};
pub use handler::{IntoTaskResult, OnFail, Registry, TaskContext, TaskPolicy, TaskResult};
pub use memory::{MemoryQueue, MemoryQueueBuilder};
pub use producer::{Producer, Task};
pub use queue::{
    EntryResult, MAX_BATCH, MAX_DELAY, MAX_VISIBILITY, MAX_WAIT, Message, Outgoing, Queue, QueueAttributes, QueueError,
};
pub use retry::{Backoff, Progression};
#[cfg(feature = "sqs")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqs")))]
pub use sqs::{CreateOptions, SqsQueue};
pub use worker::{DEAD_LETTER_REASON, Health, Report, Worker};
