//! [`Error`].

use uuid::Uuid;

use crate::model::Status;

/// Errors of job tracking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No job with that id.
    #[error("job {0} not found")]
    NotFound(Uuid),
    /// The state machine forbids the change.
    #[error("job {id} cannot go from {from} to {to}")]
    IllegalTransition {
        /// The job.
        id: Uuid,
        /// Its status.
        from: Status,
        /// The status asked for.
        to: Status,
    },
    /// Someone else updated the job since it was read (optimistic concurrency).
    #[error("job {id} changed since version {expected}")]
    Conflict {
        /// The job.
        id: Uuid,
        /// The version the update expected.
        expected: i64,
    },
    /// Bad input (a cursor, a status name, a config value).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The store failed.
    #[error("job store error: {0}")]
    Store(String),
    /// Sending a job's tasks failed.
    #[error(transparent)]
    Tasks(#[from] chassis_tasks::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
