//! [`Builder`]: a breaker with a clock or a state-change listener.

use std::fmt;
use std::sync::Arc;

use crate::breaker::{Breaker, Listener, Transition};
use crate::clock::{Clock, MonotonicClock};
use crate::config::Config;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::state::State;

/// Builds a [`Breaker`] with a clock or a state-change listener.
#[must_use]
pub struct Builder {
    name: Arc<str>,
    config: Config,
    clock: Arc<dyn Clock>,
    listener: Option<Listener>,
    /// Counted under [`AGGREGATE_LABEL`](crate::metrics::AGGREGATE_LABEL), without a state gauge (set by [`Breakers`](crate::Breakers)).
    aggregate_metrics: bool,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder").field("name", &self.name).field("config", &self.config).finish_non_exhaustive()
    }
}

impl Builder {
    /// A builder for a breaker named `name`, with the defaults.
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self {
            name,
            config: Config::default(),
            clock: Arc::new(MonotonicClock::new()),
            listener: None,
            aggregate_metrics: false,
        }
    }

    /// The configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The clock (default: [`MonotonicClock`]); [`ManualClock`](crate::ManualClock) for tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Called after every state change, with no lock held: it may call back
    /// into the breaker.
    pub fn on_state_change(mut self, listener: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Counts the breaker's calls under the `breaker` label `_other`, with no
    /// `chassis_breaker_state` series (the label bound of [`Breakers`](crate::Breakers)).
    pub(crate) fn aggregate_metrics(mut self) -> Self {
        self.aggregate_metrics = true;
        self
    }

    /// Validates the configuration and builds the breaker.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a value out of range.
    pub fn build(self) -> Result<Breaker> {
        self.config.validate()?;
        let metrics = Metrics::new(&self.name, self.aggregate_metrics);
        if let Some(state) = &metrics.state {
            state.set(State::Closed.gauge());
        }
        Ok(Breaker::from_parts(self.name, self.config, self.clock, self.listener, metrics))
    }
}
