//! [`Error`]: why a fixture or a test service could not do what was asked.

/// Why a fixture or a [`TestService`](crate::TestService) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The test configuration did not load: the whole report.
    #[error("the test configuration is invalid:\n{0}")]
    Config(String),
    /// The service's builder returned an error.
    #[error("the service's builder failed: {0}")]
    Build(String),
    /// The service did not become ready; the last `/readyz` answer.
    #[error("the service was not ready within {secs} s; last /readyz: {last}")]
    NotReady {
        /// How long it was given, in seconds.
        secs: u64,
        /// The last answer (status and body) or error.
        last: String,
    },
    /// The service's drain was not clean: what went wrong.
    #[error("the drain was not clean: {0}")]
    UncleanDrain(String),
    /// A program a fixture runs is not installed, with how to install it.
    #[error("`{program}` is not installed: {install}")]
    Missing {
        /// The program.
        program: &'static str,
        /// How to install it.
        install: &'static str,
    },
    /// A server a fixture starts or reaches did not answer.
    #[error("{what} did not answer: {detail}")]
    Unreachable {
        /// The server.
        what: String,
        /// The last error.
        detail: String,
    },
    /// A worker did not reach its goal within the time given.
    #[error("the worker did not get there within {secs} s")]
    Timeout {
        /// How long it was given, in seconds.
        secs: u64,
    },
    /// An I/O error (binding, spawning, a temporary directory).
    #[error("i/o")]
    Io(#[from] std::io::Error),
    /// An HTTP request of a client failed.
    #[error("http request")]
    Http(#[from] reqwest::Error),
    /// A queue call failed.
    #[error("queue")]
    Queue(#[from] chassis_tasks::QueueError),
    /// A PostgreSQL statement failed.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    #[error("postgresql")]
    Sql(#[from] sqlx::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
