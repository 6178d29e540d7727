//! [`Breakers`]: breakers by key (for HTTP, by host), bounded, idle ones evicted.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::breaker::{Breaker, Transition};
use crate::clock::{Clock, MonotonicClock};
use crate::config::Config;
use crate::error::Result;
use crate::state::State;
use std::sync::atomic::{AtomicU64, Ordering};

type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;

/// Breakers by key, created on first use with the default or a per-key config.
/// Cheap to clone: clones share the breakers.
///
/// At most [`max_entries`](BreakersBuilder::max_entries) breakers are kept: when
/// a new key arrives at the limit, breakers idle longer than
/// [`idle_timeout`](BreakersBuilder::idle_timeout) go first, then the least
/// recently used closed ones, so an open breaker is forgotten last.
///
/// Metric lifecycle: a breaker's series (`breaker` label = its key) are
/// registered when the [`Breakers`] builds it. When it is evicted, its
/// `chassis_breaker_state` is set to 0 (closed, what a new breaker for the key
/// starts as) and it writes no more state or transitions, so an alert on an
/// open breaker clears once the breaker is forgotten; if the key comes back,
/// its new breaker reports on the same series. The `metrics` facade cannot
/// delete a series, so the series of an evicted key stay (counters keep their
/// totals); their number is bounded instead: at most
/// [`max_metric_keys`](BreakersBuilder::max_metric_keys) keys get a label of
/// their own, later ones are counted under `breaker="_other"`.
///
/// ```
/// use chassis_breaker::{Config, Breakers};
///
/// let breakers = Breakers::builder().config(Config::default()).max_entries(256).build()?;
/// let a = breakers.get("https://api.example:443")?;
/// let b = breakers.get("https://api.example:443")?;
/// assert_eq!(a.name(), b.name());
/// # Ok::<(), chassis_breaker::Error>(())
/// ```
#[derive(Clone)]
pub struct Breakers {
    inner: Arc<Inner>,
}

struct Inner {
    /// The validated settings these breakers were built with.
    settings: BreakersBuilder,
    map: RwLock<HashMap<String, Entry>>,
    /// Keys given a `breaker` label of their own (at most `max_metric_keys`),
    /// kept for the life of the breakers.
    labelled: std::sync::Mutex<HashSet<String>>,
}

struct Entry {
    breaker: Breaker,
    last_used_ms: AtomicU64,
}

impl fmt::Debug for Breakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breakers")
            .field("config", &self.inner.settings.config)
            .field("max_entries", &self.inner.settings.max_entries)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Breakers`].
#[must_use]
pub struct BreakersBuilder {
    config: Config,
    overrides: HashMap<String, Config>,
    max_entries: usize,
    max_metric_keys: Option<usize>,
    idle_timeout: Duration,
    clock: Arc<dyn Clock>,
    listener: Option<Listener>,
}

impl fmt::Debug for BreakersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakersBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

impl BreakersBuilder {
    /// The config of every breaker without an override (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The config of the breaker for one key.
    pub fn override_key(mut self, key: impl Into<String>, config: Config) -> Self {
        self.overrides.insert(key.into(), config);
        self
    }

    /// The most breakers kept (default: 1024; at least 1).
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// The most keys that get a `breaker` metric label of their own (default:
    /// `max_entries`; 0 counts every breaker under `_other`). The first keys
    /// it sees get one, for the life of the process; breakers of
    /// later keys are counted together under `breaker="_other"`
    /// (`chassis_breaker_calls_total`, `_rejections_total`,
    /// `_transitions_total`) and have no `chassis_breaker_state` series. This
    /// bounds the series however many hosts the keys come from.
    pub fn max_metric_keys(mut self, max: usize) -> Self {
        self.max_metric_keys = Some(max);
        self
    }

    /// How long unused before a breaker may be evicted (default: 10 minutes).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// The clock of all these breakers.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Called on every state change of every breaker.
    pub fn on_state_change(mut self, listener: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Validates every config and builds the breakers.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for the default or any override.
    pub fn build(self) -> Result<Breakers> {
        self.config.validate()?;
        for config in self.overrides.values() {
            config.validate()?;
        }
        let labelled = std::sync::Mutex::new(HashSet::new());
        Ok(Breakers { inner: Arc::new(Inner { settings: self, map: RwLock::new(HashMap::new()), labelled }) })
    }
}

/// A clock shared by a [`Breakers`] and its breakers.
struct Shared(Arc<dyn Clock>);

impl Clock for Shared {
    fn now(&self) -> Duration {
        self.0.now()
    }
}

impl Breakers {
    /// A builder.
    pub fn builder() -> BreakersBuilder {
        BreakersBuilder {
            config: Config::default(),
            overrides: HashMap::new(),
            max_entries: 1024,
            max_metric_keys: None,
            idle_timeout: Duration::from_secs(600),
            clock: Arc::new(MonotonicClock::new()),
            listener: None,
        }
    }

    /// Breakers with `config` for every breaker.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    pub fn new(config: Config) -> Result<Self> {
        Self::builder().config(config).build()
    }

    /// The default config.
    pub fn config(&self) -> &Config {
        &self.inner.settings.config
    }

    /// How many breakers are kept.
    pub fn len(&self) -> usize {
        self.inner.map.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether a breaker for `key` is kept (without creating or touching it).
    pub fn contains(&self, key: &str) -> bool {
        self.inner.map.read().unwrap_or_else(PoisonError::into_inner).contains_key(key)
    }

    /// The breaker kept for `key`, if any, without creating it or marking it
    /// used (eviction still sees it idle): for a look at its state, as a
    /// load balancer skipping open breakers does. One read lock and one hash
    /// lookup.
    pub fn peek(&self, key: &str) -> Option<Breaker> {
        self.inner.map.read().unwrap_or_else(PoisonError::into_inner).get(key).map(|entry| entry.breaker.clone())
    }

    /// Whether no breaker is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.settings.clock.now().as_millis()).unwrap_or(u64::MAX)
    }

    /// The breaker for `key`, created if needed.
    ///
    /// # Errors
    /// Never with configs validated at build; the `Result` is for breakers that
    /// cannot be built.
    pub fn get(&self, key: &str) -> Result<Breaker> {
        let now = self.now_ms();
        {
            let map = self.inner.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = map.get(key) {
                entry.last_used_ms.store(now, Ordering::Relaxed);
                return Ok(entry.breaker.clone());
            }
        }
        let mut map = self.inner.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get(key) {
            entry.last_used_ms.store(now, Ordering::Relaxed);
            return Ok(entry.breaker.clone());
        }
        if map.len() >= self.inner.settings.max_entries {
            self.evict(&mut map, now);
        }
        let config = self.inner.settings.overrides.get(key).unwrap_or(&self.inner.settings.config).clone();
        let mut builder = Breaker::builder(key).config(config).clock(Shared(self.inner.settings.clock.clone()));
        if let Some(listener) = &self.inner.settings.listener {
            let listener = listener.clone();
            builder = builder.on_state_change(move |t| listener(t));
        }
        if !self.labelled(key) {
            builder = builder.aggregate_metrics();
        }
        let breaker = builder.build()?;
        map.insert(key.to_owned(), Entry { breaker: breaker.clone(), last_used_ms: AtomicU64::new(now) });
        Ok(breaker)
    }

    /// Whether `key` has (or now gets) a `breaker` label of its own.
    fn labelled(&self, key: &str) -> bool {
        let settings = &self.inner.settings;
        let max = settings.max_metric_keys.unwrap_or(settings.max_entries);
        let mut labelled = self.inner.labelled.lock().unwrap_or_else(PoisonError::into_inner);
        if labelled.contains(key) {
            return true;
        }
        if labelled.len() < max {
            labelled.insert(key.to_owned());
            return true;
        }
        false
    }

    fn evict(&self, map: &mut HashMap<String, Entry>, now: u64) {
        let idle_ms = u64::try_from(self.inner.settings.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        map.retain(|_, e| {
            let keep = now.saturating_sub(e.last_used_ms.load(Ordering::Relaxed)) < idle_ms;
            if !keep {
                e.breaker.retire_metrics();
            }
            keep
        });
        while map.len() >= self.inner.settings.max_entries {
            // Least recently used, closed breakers first.
            let victim = map
                .iter()
                .min_by_key(|(_, e)| (e.breaker.state() != State::Closed, e.last_used_ms.load(Ordering::Relaxed)))
                .map(|(k, _)| k.clone());
            match victim {
                Some(key) => {
                    if let Some(entry) = map.remove(&key) {
                        entry.breaker.retire_metrics();
                    }
                }
                None => break,
            }
        }
    }
}
