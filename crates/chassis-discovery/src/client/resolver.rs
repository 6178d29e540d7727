//! [`Resolver`]: the cached instance lists of the services a client calls,
//! kept up to date by watches.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{ClientConfig, Config};
use crate::error::{Error, Result};
use crate::fixed::StaticRegistry;
use crate::instance::Instance;
use crate::metrics;
use crate::registry::Registry;

/// The longest wait between two attempts to watch a service again.
const MAX_REWATCH: Duration = Duration::from_secs(30);

/// One instance as the client sees it: its address and its requests in flight.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) instance: Instance,
    /// Requests sent and not yet answered (head received or error).
    pub(crate) in_flight: AtomicUsize,
    /// The breaker keys of this instance (`http://host:port`, `https://host:port`).
    pub(crate) http_key: String,
    pub(crate) https_key: String,
    /// The address parsed once: an IP address and port (most registries
    /// hold those), so a request's URL is pointed at it without parsing a
    /// host again; `None` for a DNS name or a malformed address.
    pub(crate) socket: Option<std::net::SocketAddr>,
}

impl Endpoint {
    fn new(instance: Instance) -> Self {
        let http_key = format!("http://{}", instance.addr);
        let https_key = format!("https://{}", instance.addr);
        let socket = instance.addr.parse().ok();
        Self { instance, in_flight: AtomicUsize::new(0), http_key, https_key, socket }
    }
}

/// A service's instances as the balancers see them (weighted copies adjacent).
pub(crate) type List = Vec<Arc<Endpoint>>;

/// A service's cached list.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) name: String,
    /// Swapped whole by a watch; read without a lock (`arc-swap`), so
    /// requests on several threads do not contend on it.
    list: ArcSwap<List>,
    /// Round-robin position.
    pub(crate) next: AtomicUsize,
    /// The list's length (weighted copies counted).
    len: AtomicUsize,
    /// The last watch broke and the list may be out of date.
    stale: AtomicBool,
}

impl Cached {
    /// The current list, borrowed for a moment (not across an `.await`).
    pub(crate) fn list(&self) -> arc_swap::Guard<Arc<List>> {
        self.list.load()
    }

    /// The list's length, without taking the list.
    pub(crate) fn list_len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Replaces the list, keeping the in-flight counts of instances that stay.
    /// Instances with a `weight` in their metadata (DNS SRV) appear in the
    /// list in proportion to it, so both balancers honour it.
    fn update(&self, instances: Vec<Instance>) {
        let n = instances.len();
        let copies = copies(&instances);
        // Watches are the only writers, one per service: no lost update.
        let list = self.list.load();
        let mut new = Vec::with_capacity(n);
        for (instance, times) in instances.into_iter().zip(copies) {
            let endpoint = list
                .iter()
                .find(|e| e.instance == instance)
                .cloned()
                .unwrap_or_else(|| Arc::new(Endpoint::new(instance)));
            new.extend(std::iter::repeat_n(endpoint, times));
        }
        metrics::instances(&self.name, n);
        self.len.store(new.len(), Ordering::Relaxed);
        self.list.store(Arc::new(new));
        self.stale.store(false, Ordering::Relaxed);
    }
}

/// How many times each instance appears in the list: once each, or, when
/// every instance has a `weight`, its weight divided by the weights' greatest
/// common divisor (capped at 100; a weight of 0 appears only if all are 0).
fn copies(instances: &[Instance]) -> Vec<usize> {
    let weights: Option<Vec<usize>> = instances
        .iter()
        .map(|i| i.metadata.get("weight").and_then(|w| w.parse::<u16>().ok()).map(usize::from))
        .collect();
    let Some(weights) = weights.filter(|w| w.iter().any(|&w| w > 0)) else { return vec![1; instances.len()] };
    let gcd = weights.iter().copied().filter(|&w| w > 0).fold(0, |a, b| {
        let (mut a, mut b) = (a, b);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    });
    weights.iter().map(|w| (w / gcd.max(1)).min(100)).collect()
}

/// The instance lists of the services a client calls: resolved on first use,
/// then kept up to date by a watch per service that [`run`](Self::run) owns.
/// When the registry cannot be reached, the last good list is kept (and
/// `chassis_discovery_resolve_errors_total{service}` counts the failures) until
/// a new watch succeeds. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chassis_discovery::Result<()> {
/// use std::sync::Arc;
/// use chassis_discovery::{ClientConfig, Resolver, StaticRegistry};
///
/// let registry = Arc::new(StaticRegistry::new([("pricing", ["127.0.0.1:8081"])]));
/// let resolver = Resolver::new(registry, ClientConfig::default());
/// let shutdown = tokio_util::sync::CancellationToken::new();
/// let watches = tokio::spawn(resolver.clone().run(shutdown.clone()));
/// assert_eq!(resolver.instances("pricing").await?[0].addr, "127.0.0.1:8081");
/// shutdown.cancel();
/// watches.await.ok();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<dyn Registry>,
    config: ClientConfig,
    /// Read without a lock on every request (`arc-swap`); a service seen for
    /// the first time is added to a copy, under `adding`.
    services: ArcSwap<HashMap<String, Arc<Cached>>>,
    adding: Mutex<()>,
    /// Services to start watching, for `run`.
    watch_tx: mpsc::UnboundedSender<Arc<Cached>>,
    watch_rx: Mutex<Option<mpsc::UnboundedReceiver<Arc<Cached>>>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("registry", &self.inner.registry)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver over `registry`.
    pub fn new(registry: Arc<dyn Registry>, config: ClientConfig) -> Self {
        metrics::describe();
        let (watch_tx, watch_rx) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                registry,
                config,
                services: ArcSwap::from_pointee(HashMap::new()),
                adding: Mutex::new(()),
                watch_tx,
                watch_rx: Mutex::new(Some(watch_rx)),
            }),
        }
    }

    /// A resolver over the registry `config` names; with backend `none`, over
    /// the fixed `instances` of the section.
    ///
    /// # Errors
    /// As [`from_config`](crate::from_config).
    pub fn from_config(config: &Config) -> Result<Self> {
        let registry: Arc<dyn Registry> = match crate::from_config(config)? {
            Some(registry) => registry,
            None => Arc::new(StaticRegistry::new(config.instances.clone())),
        };
        Ok(Self::new(registry, config.client.clone()))
    }

    /// The client settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.inner.registry
    }

    /// The live instances of `service` from the cache; on first use, asks the
    /// registry and starts watching.
    ///
    /// # Errors
    /// On first use, when the registry cannot be reached; then
    /// [`Error::NoInstances`] when the list is empty.
    pub async fn instances(&self, service: &str) -> Result<Vec<Instance>> {
        let cached = self.cached(service).await?;
        let list = cached.list();
        if list.is_empty() {
            return Err(Error::NoInstances { service: service.to_owned() });
        }
        let mut instances: Vec<Instance> = list.iter().map(|e| e.instance.clone()).collect();
        instances.dedup(); // weighted copies are adjacent
        Ok(instances)
    }

    /// Whether the last watch of `service` broke, so its list may be out of
    /// date (`None`: not resolved yet). For a readiness detail.
    pub fn is_stale(&self, service: &str) -> Option<bool> {
        self.inner.services.load().get(service).map(|c| c.stale.load(Ordering::Relaxed))
    }

    /// The services whose last watch broke, so their lists may be out of
    /// date, sorted, each with the number of instances kept — what a
    /// readiness detail shows while the registry is unreachable (chassis-service's
    /// `Service::resolver` does). Empty when every watch is following.
    pub fn stale(&self) -> Vec<(String, usize)> {
        let services = self.inner.services.load();
        let mut stale: Vec<(String, usize)> = services
            .values()
            .filter(|c| c.stale.load(Ordering::Relaxed))
            .map(|c| {
                let mut list: Vec<Instance> = c.list().iter().map(|e| e.instance.clone()).collect();
                list.dedup();
                (c.name.clone(), list.len())
            })
            .collect();
        stale.sort();
        stale
    }

    pub(crate) async fn cached(&self, service: &str) -> Result<Arc<Cached>> {
        if let Some(cached) = self.inner.services.load().get(service) {
            return Ok(cached.clone());
        }
        let instances = self.inner.registry.resolve(service).await.inspect_err(|_| metrics::resolve_error(service))?;
        let _adding = self.inner.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let services = self.inner.services.load_full();
        if let Some(cached) = services.get(service) {
            // Another request resolved it meanwhile.
            return Ok(cached.clone());
        }
        let cached = Arc::new(Cached {
            name: service.to_owned(),
            list: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            stale: AtomicBool::new(false),
        });
        cached.update(instances);
        let mut more = HashMap::clone(&services);
        more.insert(service.to_owned(), cached.clone());
        self.inner.services.store(Arc::new(more));
        // `run` may not be running (yet): the list is then resolved once and kept.
        let _ = self.inner.watch_tx.send(cached.clone());
        Ok(cached)
    }

    /// Watches every service resolved so far and from now on, until `shutdown`
    /// fires; then stops the watches and returns. Run it once per resolver
    /// (with `Service::spawn`); a second call returns at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let receiver = self.inner.watch_rx.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(mut receiver) = receiver else {
            tracing::warn!("Resolver::run called twice; the second call does nothing");
            return;
        };
        let mut watches = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                next = receiver.recv() => match next {
                    Some(cached) => {
                        let this = self.clone();
                        watches.spawn(this.watch(cached, shutdown.clone()));
                    }
                    None => break,
                },
            }
        }
        shutdown.cancel();
        while watches.join_next().await.is_some() {}
    }

    async fn watch(self, cached: Arc<Cached>, shutdown: CancellationToken) {
        let first = Duration::from_millis(self.inner.config.rewatch_ms);
        let mut backoff = first;
        loop {
            let error = tokio::select! {
                () = shutdown.cancelled() => return,
                error = self.follow(&cached, &mut backoff, first) => error,
            };
            // Keep the last good list: a registry outage must not empty it.
            cached.stale.store(true, Ordering::Relaxed);
            metrics::resolve_error(&cached.name);
            tracing::warn!(service = %cached.name, %error, retry_ms = backoff.as_millis(), "watch broke; keeping the last list");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_REWATCH.max(first));
        }
    }

    /// Follows one watch until it breaks.
    async fn follow(&self, cached: &Cached, backoff: &mut Duration, first: Duration) -> Error {
        let mut watch = match self.inner.registry.watch(&cached.name).await {
            Ok(watch) => watch,
            Err(error) => return error,
        };
        loop {
            match watch.next().await {
                Ok(instances) => {
                    tracing::debug!(service = %cached.name, instances = instances.len(), "instance list");
                    cached.update(instances);
                    *backoff = first;
                }
                Err(error) => return error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_become_copies() {
        let with = |w: &str| Instance::new("s", w, "h:1").with_metadata("weight", w);
        assert_eq!(copies(&[with("10"), with("30")]), [1, 3]);
        assert_eq!(copies(&[with("0"), with("5")]), [0, 1]);
        assert_eq!(copies(&[with("0"), with("0")]), [1, 1]);
        assert_eq!(copies(&[with("1"), with("1000")]), [1, 100]);
        assert_eq!(copies(&[with("2"), Instance::new("s", "x", "h:2")]), [1, 1], "all or none");
    }
}
