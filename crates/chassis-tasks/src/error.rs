//! [`Error`]: why a task could not be sent, or a worker not built.

use crate::queue::QueueError;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid tasks config: {field} {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The task's attributes cannot be serialized to JSON.
    #[error("the attributes of task `{task}` cannot be serialized")]
    Serialize {
        /// The task.
        task: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The message is larger than the queue accepts; nothing was sent.
    #[error("task `{task}` is {size} bytes; the queue accepts at most {max}")]
    TooLarge {
        /// The task.
        task: String,
        /// Its size.
        size: usize,
        /// The queue's `MaximumMessageSize`.
        max: usize,
    },
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The same task name was registered twice.
    #[error("task `{0}` is registered twice")]
    Duplicate(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
