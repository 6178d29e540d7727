//! Errors: a bad configuration, and a call the breaker did not let through.

use std::fmt;
use std::time::Duration;

use crate::state::State;

/// Why a breaker could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid breaker config: {field} {reason}")]
    InvalidConfig {
        /// The field, e.g. `failure_rate.threshold`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A call the breaker refused, without running it.
///
/// With the reqwest middleware it arrives inside
/// `reqwest_middleware::Error::Middleware`; [`Rejected::from_reqwest`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub(crate) breaker: std::sync::Arc<str>,
    pub(crate) state: State,
    pub(crate) retry_after: Option<Duration>,
}

impl Rejected {
    /// The breaker's name (for HTTP, its key: `https://api.example:443`).
    pub fn breaker(&self) -> &str {
        &self.breaker
    }

    /// The state that refused the call: open, half-open (all trial slots
    /// taken), or forced open.
    pub fn state(&self) -> State {
        self.state
    }

    /// When a call may be let through again, if the breaker knows.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker `{}` is {} and rejected the call", self.breaker, self.state)?;
        if let Some(after) = self.retry_after {
            write!(f, "; retry after {} ms", after.as_millis())?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

/// The error of [`Breaker::call`](crate::Breaker::call): refused, or the call's own error.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The breaker refused the call; it did not run.
    #[error(transparent)]
    Rejected(Rejected),
    /// The call ran and failed.
    #[error(transparent)]
    Inner(E),
}
