//! [`Registry`]: breakers by key (for HTTP, by host), bounded, idle ones evicted.

use std::collections::HashMap;
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
/// At most [`max_entries`](RegistryBuilder::max_entries) breakers are kept: when
/// a new key arrives at the limit, breakers idle longer than
/// [`idle_timeout`](RegistryBuilder::idle_timeout) go first, then the least
/// recently used closed ones, so an open breaker is forgotten last.
///
/// ```
/// use chassis_breaker::{Config, Registry};
///
/// let registry = Registry::builder().config(Config::default()).max_entries(256).build()?;
/// let a = registry.get("https://api.example:443")?;
/// let b = registry.get("https://api.example:443")?;
/// assert_eq!(a.name(), b.name());
/// # Ok::<(), chassis_breaker::Error>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    /// The validated settings the registry was built with.
    settings: RegistryBuilder,
    map: RwLock<HashMap<String, Entry>>,
}

struct Entry {
    breaker: Breaker,
    last_used_ms: AtomicU64,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.inner.settings.config)
            .field("max_entries", &self.inner.settings.max_entries)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Registry`].
#[must_use]
pub struct RegistryBuilder {
    config: Config,
    overrides: HashMap<String, Config>,
    max_entries: usize,
    idle_timeout: Duration,
    clock: Arc<dyn Clock>,
    listener: Option<Listener>,
}

impl fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

impl RegistryBuilder {
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

    /// How long unused before a breaker may be evicted (default: 10 minutes).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// The clock of the registry and its breakers.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Called on every state change of every breaker.
    pub fn on_state_change(mut self, listener: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Validates every config and builds the registry.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for the default or any override.
    pub fn build(self) -> Result<Registry> {
        self.config.validate()?;
        for config in self.overrides.values() {
            config.validate()?;
        }
        Ok(Registry { inner: Arc::new(Inner { settings: self, map: RwLock::new(HashMap::new()) }) })
    }
}

/// A clock shared between the registry and its breakers.
struct Shared(Arc<dyn Clock>);

impl Clock for Shared {
    fn now(&self) -> Duration {
        self.0.now()
    }
}

impl Registry {
    /// A builder.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder {
            config: Config::default(),
            overrides: HashMap::new(),
            max_entries: 1024,
            idle_timeout: Duration::from_secs(600),
            clock: Arc::new(MonotonicClock::new()),
            listener: None,
        }
    }

    /// A registry with `config` for every breaker.
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
        let breaker = builder.build()?;
        map.insert(key.to_owned(), Entry { breaker: breaker.clone(), last_used_ms: AtomicU64::new(now) });
        Ok(breaker)
    }

    fn evict(&self, map: &mut HashMap<String, Entry>, now: u64) {
        let idle_ms = u64::try_from(self.inner.settings.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        map.retain(|_, e| now.saturating_sub(e.last_used_ms.load(Ordering::Relaxed)) < idle_ms);
        while map.len() >= self.inner.settings.max_entries {
            // Least recently used, closed breakers first.
            let victim = map
                .iter()
                .min_by_key(|(_, e)| (e.breaker.state() != State::Closed, e.last_used_ms.load(Ordering::Relaxed)))
                .map(|(k, _)| k.clone());
            match victim {
                Some(key) => {
                    map.remove(&key);
                }
                None => break,
            }
        }
    }
}
