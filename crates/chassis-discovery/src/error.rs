//! [`Error`]: what registration and discovery can fail with.

/// Why a registration, a resolution or a watch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry knows no live instance of the service.
    #[error("no live instance of service `{service}`")]
    NoInstances {
        /// The logical service name.
        service: String,
    },
    /// The registry could not be reached, or the connection broke.
    #[error("the registry is unreachable")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The registry answered with an error status.
    #[error("the registry answered {status}: {body}")]
    Backend {
        /// The HTTP status.
        status: u16,
        /// The body of the answer, as text (truncated to 1 KiB).
        body: String,
    },
    /// The registry answered something this crate cannot read.
    #[error("unexpected answer from the registry: {0}")]
    InvalidAnswer(String),
    /// The lease is gone (expired or revoked): register again.
    #[error("lease {lease} is gone")]
    LeaseGone {
        /// The lease id.
        lease: i64,
    },
    /// A watch ended (the registry closed it, or it was compacted away): open a new one.
    #[error("the watch ended")]
    WatchEnded,
    /// The configured backend is not compiled in.
    #[error("discovery backend `{backend}` needs the crate feature `{feature}`")]
    BackendDisabled {
        /// The backend.
        backend: &'static str,
        /// The feature that compiles it in.
        feature: &'static str,
    },
    /// The backend cannot do this (DNS is read-only).
    #[error("the {backend} backend does not support {operation}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// A setting is missing or invalid.
    #[error("invalid discovery config: {field} {reason}")]
    InvalidConfig {
        /// The field, e.g. `service`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
