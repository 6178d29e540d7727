//! [`Breaker`]: the lock-free state machine.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::Builder;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{CallError, Rejected, Result};
use crate::metrics::Metrics;
use crate::permit::{Kind, Outcome, Permit, Ticket};
use crate::state::{self, State, Word, failures, split_failures, split_trials, trials};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::window::{Stats, Window};

/// A state change, as delivered to [`Builder::on_state_change`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// When, on the breaker's clock.
    pub at: Duration,
}

pub(crate) type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;

/// A circuit breaker. Cheap to clone: clones share the state.
///
/// Closed — calls pass; when consecutive failures reach the threshold (or the
/// failure rate does, with that policy), it opens. Open — calls fail at once,
/// without running, for the open timeout. Half-open — exactly
/// `half_open_max_calls` trial calls pass; if they all succeed it closes, and a
/// single failure re-opens it and the timeout starts again.
///
/// ```
/// use chassis_breaker::{Breaker, Config, State};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = Breaker::new("billing-api", Config::default())?;
/// let answer = breaker.call(|| async { Ok::<_, std::io::Error>(42) }).await?;
/// assert_eq!(answer, 42);
/// assert_eq!(breaker.snapshot().state, State::Closed);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

impl AsRef<Breaker> for Breaker {
    fn as_ref(&self) -> &Breaker {
        self
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker").field("name", &self.inner.name).field("state", &self.state()).finish()
    }
}

struct Inner {
    name: Arc<str>,
    config: Config,
    clock: Arc<dyn Clock>,
    /// The state word (see `state.rs`).
    state: AtomicU64,
    /// Consecutive failures: generation << 32 | count.
    failures: AtomicU64,
    /// Half-open trials: generation << 32 | issued << 16 | succeeded.
    trials: AtomicU64,
    /// Re-opens since the breaker was last closed, for the backoff.
    reopens: AtomicU32,
    window: Option<Window>,
    /// Whether permits time their call (slow-call policy).
    timed: bool,
    /// Neither a window nor timing: the closed path is a load to admit and a
    /// load to report a success.
    simple: bool,
    listener: Option<Listener>,
    metrics: Metrics,
}

/// What a breaker knows right now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The state.
    pub state: State,
    /// Transitions so far (21 bits, wrapping).
    pub generation: u32,
    /// Consecutive failures while closed.
    pub consecutive_failures: u32,
    /// With the failure-rate policy: calls, failures and slow calls in the window.
    pub window_calls: u32,
    /// See `window_calls`.
    pub window_failures: u32,
    /// See `window_calls`.
    pub window_slow: u32,
    /// Half-open: trial calls admitted, and how many succeeded.
    pub trials_admitted: u32,
    /// See `trials_admitted`.
    pub trials_succeeded: u32,
    /// Open: time until trial calls are let through.
    pub retry_after: Option<Duration>,
}

enum Trial {
    Admitted,
    Full,
    /// The state moved on: read it again.
    Stale,
}

impl Breaker {
    /// A breaker named `name` (used in logs, metrics and rejections).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a value out of range.
    pub fn new(name: impl Into<Arc<str>>, config: Config) -> Result<Self> {
        Self::builder(name).config(config).build()
    }

    /// A builder, for a clock or a state-change listener.
    pub fn builder(name: impl Into<Arc<str>>) -> Builder {
        Builder::new(name.into())
    }

    /// The breaker a [`Builder`] built (its configuration validated).
    pub(crate) fn from_parts(
        name: Arc<str>,
        config: Config,
        clock: Arc<dyn Clock>,
        listener: Option<Listener>,
        metrics: Metrics,
    ) -> Self {
        let inner = Inner {
            window: config.failure_rate.as_ref().map(|rate| Window::new(rate.window)),
            timed: config.slow_call.is_some(),
            simple: config.slow_call.is_none() && config.failure_rate.is_none(),
            name,
            config,
            clock,
            state: AtomicU64::new(state::CLOSED_CODE),
            failures: AtomicU64::new(0),
            trials: AtomicU64::new(0),
            reopens: AtomicU32::new(0),
            listener,
            metrics,
        };
        Self { inner: Arc::new(inner) }
    }

    /// Retires the breaker's state series: it reads closed (0) from now on —
    /// what a breaker built anew for the key would read — and the breaker no
    /// longer writes it or counts transitions. Called by [`Breakers`](crate::Breakers) when it
    /// evicts the breaker, so an alert on an open breaker clears once the
    /// breaker is forgotten; clones still in use keep working.
    pub(crate) fn retire_metrics(&self) {
        let metrics = &self.inner.metrics;
        metrics.retired.store(true, Ordering::SeqCst);
        if let Some(state) = &metrics.state {
            state.set(State::Closed.gauge());
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        Word::decode(self.inner.state.load(Ordering::Acquire)).state
    }

    /// Asks to make a call. The permit must be told how the call went
    /// ([`Permit::success`], [`Permit::failure`], [`Permit::ignore`]); dropped
    /// without an outcome (a cancelled call), it frees its slot and counts nothing.
    ///
    /// # Errors
    /// [`Rejected`] when the breaker is open, forced open, or half-open with
    /// every trial slot taken.
    #[inline]
    pub fn acquire(&self) -> Result<Permit<&Self>, Rejected> {
        self.ticket().map(|ticket| Permit::new(self, ticket))
    }

    /// Like [`acquire`](Self::acquire), with a permit that owns a clone of the
    /// breaker (for futures that must be `'static`).
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_owned(&self) -> Result<Permit<Self>, Rejected> {
        self.ticket().map(|ticket| Permit::new(self.clone(), ticket))
    }

    #[inline]
    fn ticket(&self) -> Result<Ticket, Rejected> {
        let bits = self.inner.state.load(Ordering::Acquire);
        // The closed path: one load.
        if state::is_closed(bits) && !self.inner.timed {
            return Ok(Ticket::new(state::generation(bits), Kind::Closed, 0));
        }
        self.inner.acquire_slow(bits)
    }

    /// Runs `f` if the breaker lets it: `Ok` is a success, `Err` a failure. If
    /// the returned future is dropped before it finishes, nothing is counted.
    ///
    /// # Errors
    /// [`CallError::Rejected`] without running `f`, or `f`'s own error.
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_classified(|result| if result.is_ok() { Outcome::Success } else { Outcome::Failure }, f).await
    }

    /// Like [`call`](Self::call), with `classify` deciding what the result means
    /// (e.g. a "not found" error is the callee being healthy: a success).
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub async fn call_classified<F, Fut, T, E>(
        &self,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
        f: F,
    ) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.acquire().map_err(CallError::Rejected)?;
        let result = f().await;
        permit.record(classify(&result));
        result.map_err(CallError::Inner)
    }

    /// What the breaker knows right now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = &*self.inner;
        let word = Word::decode(inner.state.load(Ordering::Acquire));
        let (fgen, count) = split_failures(inner.failures.load(Ordering::Acquire));
        let stats = inner.window.as_ref().map(|w| w.stats(word.generation)).unwrap_or_default();
        let (tgen, admitted, succeeded) = split_trials(inner.trials.load(Ordering::Acquire));
        let in_round = word.state == State::HalfOpen && tgen == word.generation;
        let retry_after =
            (word.state == State::Open).then(|| Duration::from_millis(word.deadline_ms.saturating_sub(inner.now_ms())));
        Snapshot {
            state: word.state,
            generation: word.generation,
            consecutive_failures: if word.state == State::Closed && fgen == word.generation { count } else { 0 },
            window_calls: stats.calls,
            window_failures: stats.failures,
            window_slow: stats.slow,
            trials_admitted: if in_round { admitted } else { 0 },
            trials_succeeded: if in_round { succeeded } else { 0 },
            retry_after,
        }
    }

    /// Rejects every call until [`reset`](Self::reset) (or another manual state).
    pub fn force_open(&self) {
        self.inner.set(State::ForcedOpen);
    }

    /// Lets every call through and never opens; outcomes are still counted in metrics.
    pub fn force_closed(&self) {
        self.inner.set(State::ForcedClosed);
    }

    /// Lets every call through and records nothing.
    pub fn disable(&self) {
        self.inner.set(State::Disabled);
    }

    /// Back to closed, with every count cleared.
    pub fn reset(&self) {
        self.inner.set(State::Closed);
    }

    #[inline]
    pub(crate) fn record(&self, ticket: Ticket, outcome: Outcome) {
        let inner = &*self.inner;
        if inner.simple && ticket.kind() == Kind::Closed && outcome == Outcome::Success {
            // The closed path: a success writes only when there is a count to clear.
            inner.metrics.success.increment(1);
            let (fgen, count) = split_failures(inner.failures.load(Ordering::Acquire));
            if fgen == ticket.generation() && count > 0 {
                inner.clear_failures(ticket.generation());
            }
            return;
        }
        inner.record(ticket, outcome);
    }

    #[inline]
    pub(crate) fn release(&self, ticket: Ticket) {
        if ticket.kind() == Kind::Trial {
            self.inner.release(ticket);
        }
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now().as_millis()).unwrap_or(u64::MAX)
    }

    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        self.metrics.rejected.increment(1);
        Rejected { breaker: self.name.clone(), state, retry_after }
    }

    #[cold]
    fn acquire_slow(&self, mut bits: u64) -> Result<Ticket, Rejected> {
        loop {
            let word = Word::decode(bits);
            let started_ms = if self.timed { self.now_ms() } else { 0 };
            let ticket = |kind| Ok(Ticket::new(word.generation, kind, started_ms));
            match word.state {
                State::Closed => return ticket(Kind::Closed),
                State::ForcedClosed => return ticket(Kind::Counted),
                State::Disabled => return ticket(Kind::Ignored),
                State::ForcedOpen => return Err(self.reject(State::ForcedOpen, None)),
                State::Open => {
                    let now = self.now_ms();
                    if now < word.deadline_ms {
                        let after = Duration::from_millis(word.deadline_ms - now);
                        return Err(self.reject(State::Open, Some(after)));
                    }
                    let probe_deadline = now.saturating_add(self.config.probe_timeout_ms);
                    bits = self.transition(bits, word.next(State::HalfOpen, probe_deadline));
                }
                State::HalfOpen => match self.try_trial(word) {
                    Trial::Admitted => return ticket(Kind::Trial),
                    Trial::Stale => bits = self.state.load(Ordering::Acquire),
                    Trial::Full => {
                        let now = self.now_ms();
                        if now < word.deadline_ms {
                            let after = Duration::from_millis(word.deadline_ms - now);
                            return Err(self.reject(State::HalfOpen, Some(after)));
                        }
                        // A trial never reported back: give up on this round.
                        tracing::warn!(
                            breaker = %self.name,
                            "a half-open trial call did not report back in time; starting a new round"
                        );
                        let probe_deadline = now.saturating_add(self.config.probe_timeout_ms);
                        bits = self.transition(bits, word.next(State::HalfOpen, probe_deadline));
                    }
                },
            }
        }
    }

    /// Takes a trial slot of the half-open round `word`, if one is free.
    fn try_trial(&self, word: Word) -> Trial {
        let max = self.config.half_open_max_calls;
        let mut bits = self.trials.load(Ordering::Acquire);
        loop {
            let (generation, admitted, succeeded) = split_trials(bits);
            let (admitted, succeeded) = if generation == word.generation {
                (admitted, succeeded)
            } else if state::newer(generation, word.generation) {
                return Trial::Stale;
            } else {
                (0, 0)
            };
            if admitted >= max {
                return Trial::Full;
            }
            let next = trials(word.generation, admitted + 1, succeeded);
            match self.trials.compare_exchange_weak(bits, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    // The slot belongs to this round only if the state is still in it.
                    let now = self.state.load(Ordering::Acquire);
                    return if state::generation(now) == word.generation { Trial::Admitted } else { Trial::Stale };
                }
                Err(actual) => bits = actual,
            }
        }
    }

    /// Tries `from` → `to`; returns the state word as it is afterwards.
    fn transition(&self, from: u64, to: Word) -> u64 {
        match self.state.compare_exchange(from, to.encode(), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                self.changed(Word::decode(from), to);
                to.encode()
            }
            Err(actual) => actual,
        }
    }

    /// After a state change: backoff bookkeeping, metrics, logs, listener — all
    /// outside any critical section (there is none: the change was one CAS).
    fn changed(&self, from: Word, to: Word) {
        match (from.state, to.state) {
            (State::HalfOpen, State::Open) => {
                self.reopens.fetch_add(1, Ordering::AcqRel);
            }
            (_, State::Closed) => self.reopens.store(0, Ordering::Release),
            _ => {}
        }
        if from.state == to.state {
            return;
        }
        // SeqCst with `retire_metrics`: either it sees this write, or this sees its flag.
        if !self.metrics.retired.load(Ordering::SeqCst) {
            if let Some(state) = &self.metrics.state {
                state.set(to.state.gauge());
                // Retired meanwhile: the retirement's value wins.
                if self.metrics.retired.load(Ordering::SeqCst) {
                    state.set(State::Closed.gauge());
                }
            }
            metrics::counter!(
                "chassis_breaker_transitions_total",
                "breaker" => self.metrics.label.to_string(),
                "from" => from.state.as_str(),
                "to" => to.state.as_str()
            )
            .increment(1);
        }
        if to.state == State::Open {
            let open_ms = to.deadline_ms.saturating_sub(self.now_ms());
            tracing::warn!(breaker = %self.name, from = %from.state, to = %to.state, open_ms, "circuit breaker opened");
        } else {
            tracing::info!(breaker = %self.name, from = %from.state, to = %to.state, "circuit breaker state changed");
        }
        if let Some(listener) = &self.listener {
            listener(&Transition { breaker: self.name.clone(), from: from.state, to: to.state, at: self.clock.now() });
        }
    }

    /// Moves to a manual state (or back to closed) from whatever the state is.
    fn set(&self, target: State) {
        let mut bits = self.state.load(Ordering::Acquire);
        loop {
            let word = Word::decode(bits);
            if word.state == target && target != State::Closed {
                return;
            }
            let next = word.next(target, 0);
            match self.state.compare_exchange_weak(bits, next.encode(), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.changed(word, next);
                    return;
                }
                Err(actual) => bits = actual,
            }
        }
    }

    #[cold]
    fn record(&self, ticket: Ticket, outcome: Outcome) {
        if ticket.kind() == Kind::Ignored {
            return;
        }
        let slow = self.timed
            && outcome == Outcome::Success
            && self
                .config
                .slow_call
                .as_ref()
                .is_some_and(|slow| self.now_ms().saturating_sub(ticket.started_ms()) >= slow.threshold_ms);
        match outcome {
            Outcome::Success => self.metrics.success.increment(1),
            Outcome::Failure => self.metrics.failure.increment(1),
            Outcome::Ignore => self.metrics.ignored.increment(1),
        }
        match (ticket.kind(), outcome) {
            (Kind::Counted | Kind::Ignored, _) => {}
            (_, Outcome::Ignore) => self.release(ticket),
            (Kind::Closed, _) => self.record_closed(ticket.generation(), outcome == Outcome::Failure, slow),
            (Kind::Trial, _) => self.record_trial(ticket.generation(), outcome == Outcome::Failure || slow),
        }
    }

    fn record_closed(&self, generation: u32, failure: bool, slow: bool) {
        if let Some(window) = &self.window {
            window.record(generation, failure, slow);
            if failure || slow {
                self.check_rates(generation, window.stats(generation));
            }
            return;
        }
        if failure || slow {
            self.count_failure(generation);
        } else {
            self.clear_failures(generation);
        }
    }

    /// A success in `generation`: the consecutive-failure count starts over.
    /// It writes only when there is a count to clear.
    fn clear_failures(&self, generation: u32) {
        let bits = self.failures.load(Ordering::Acquire);
        let (fgen, count) = split_failures(bits);
        if fgen == generation && count > 0 {
            // Lost to a concurrent failure: that failure came after, and counts.
            let _ = self.failures.compare_exchange(bits, failures(generation, 0), Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn count_failure(&self, generation: u32) {
        let mut bits = self.failures.load(Ordering::Acquire);
        let count = loop {
            if state::generation(self.state.load(Ordering::Acquire)) != generation {
                return; // a result from an earlier state
            }
            let (fgen, count) = split_failures(bits);
            let count = if fgen == generation {
                count
            } else if state::newer(fgen, generation) {
                return;
            } else {
                0
            };
            let next = failures(generation, count.saturating_add(1));
            match self.failures.compare_exchange_weak(bits, next, Ordering::AcqRel, Ordering::Acquire) {
                // Saturating, as stored: at `failure_threshold = u32::MAX` the
                // count stays at the threshold instead of wrapping to 0.
                Ok(_) => break count.saturating_add(1),
                Err(actual) => bits = actual,
            }
        };
        if count >= self.config.failure_threshold {
            self.trip(generation);
        }
    }

    fn check_rates(&self, generation: u32, stats: Stats) {
        let Some(rate) = &self.config.failure_rate else { return };
        if stats.calls < rate.min_calls {
            return;
        }
        let calls = f64::from(stats.calls);
        let failing = f64::from(stats.failures) / calls >= rate.threshold;
        let slow = self.config.slow_call.as_ref().is_some_and(|s| f64::from(stats.slow) / calls >= s.rate);
        if failing || slow {
            self.trip(generation);
        }
    }

    /// Closed (in `generation`) → open.
    fn trip(&self, generation: u32) {
        let bits = self.state.load(Ordering::Acquire);
        let word = Word::decode(bits);
        if word.state != State::Closed || word.generation != generation {
            return;
        }
        let until = self.now_ms().saturating_add(self.config.open_timeout(0));
        self.transition(bits, word.next(State::Open, until));
    }

    fn record_trial(&self, generation: u32, failure: bool) {
        let bits = self.state.load(Ordering::Acquire);
        let word = Word::decode(bits);
        if word.state != State::HalfOpen || word.generation != generation {
            return; // a result from an earlier round
        }
        if failure {
            let reopens = self.reopens.load(Ordering::Acquire).saturating_add(1);
            let until = self.now_ms().saturating_add(self.config.open_timeout(reopens));
            self.transition(bits, word.next(State::Open, until));
            return;
        }
        let mut trial_bits = self.trials.load(Ordering::Acquire);
        let succeeded = loop {
            let (tgen, admitted, succeeded) = split_trials(trial_bits);
            if tgen != generation {
                return;
            }
            let next = trials(generation, admitted, succeeded + 1);
            match self.trials.compare_exchange_weak(trial_bits, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break succeeded + 1,
                Err(actual) => trial_bits = actual,
            }
        };
        if succeeded >= self.config.half_open_max_calls {
            self.transition(bits, word.next(State::Closed, 0));
        }
    }

    /// A permit dropped without an outcome, or ignored: free its trial slot.
    fn release(&self, ticket: Ticket) {
        if ticket.kind() != Kind::Trial {
            return;
        }
        let mut bits = self.trials.load(Ordering::Acquire);
        loop {
            let (tgen, admitted, succeeded) = split_trials(bits);
            if tgen != ticket.generation() || admitted <= succeeded {
                return;
            }
            let next = trials(tgen, admitted - 1, succeeded);
            match self.trials.compare_exchange_weak(bits, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(actual) => bits = actual,
            }
        }
    }
}
