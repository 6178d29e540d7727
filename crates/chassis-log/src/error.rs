//! [`Error`]: why logging could not be set up.

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The filter directives do not parse.
    #[error("invalid log filter {directives:?} (from {origin})")]
    Filter {
        /// The directives as given.
        directives: String,
        /// `log.filter` or `RUST_LOG`.
        origin: &'static str,
        /// What the parser said.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// More static labels than Cloud Logging accepts next to `service`, `job_id` and `job_name`.
    #[error("{count} static labels configured; at most {max} fit next to service, job_id and job_name")]
    TooManyLabels {
        /// How many were configured.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// `max_line_bytes` is too small to hold a line.
    #[error("max_line_bytes is {0}; it must be at least 4096")]
    LineLimit(usize),
    /// The format is not one this layer writes.
    #[error("the {0:?} format is not a JSON format")]
    NotJson(crate::Format),
    /// A global subscriber was already set (logging initialised twice).
    #[error("logging is already initialised")]
    AlreadyInitialized(#[source] tracing_subscriber::util::TryInitError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
