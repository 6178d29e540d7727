//! [`StaticRegistry`]: a fixed list from config, plus in-process registrations
//! with TTLs (for tests, local runs and fixed topologies).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::instance::{Instance, Lease};
use crate::metrics;
use crate::registry::{Registry, Watch};

/// A registry in this process: the fixed instances it was built with (id =
/// address, never expire) and the instances registered since, which expire
/// when not kept alive within their TTL (on tokio's clock, so a paused test
/// clock drives it).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chassis_discovery::Result<()> {
/// use chassis_discovery::{Registry, StaticRegistry};
///
/// let registry = StaticRegistry::new([("pricing", ["127.0.0.1:8081", "127.0.0.1:8082"])]);
/// let instances = registry.resolve("pricing").await?;
/// assert_eq!(instances.len(), 2);
/// assert_eq!(instances[0].addr, "127.0.0.1:8081");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StaticRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Bumped on every change, so watches wake up.
    version: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    fixed: BTreeMap<String, Vec<Instance>>,
    /// service → id → (instance, lease id, expiry).
    registered: HashMap<String, BTreeMap<String, (Instance, i64, Instant)>>,
    next_lease: i64,
}

impl fmt::Debug for StaticRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("StaticRegistry").field("fixed", &state.fixed).finish_non_exhaustive()
    }
}

impl Default for StaticRegistry {
    fn default() -> Self {
        Self::new(std::iter::empty::<(String, Vec<String>)>())
    }
}

impl StaticRegistry {
    /// A registry with fixed instances: service name → addresses (`host:port`).
    pub fn new<S, A>(services: impl IntoIterator<Item = (S, A)>) -> Self
    where
        S: Into<String>,
        A: IntoIterator,
        A::Item: Into<String>,
    {
        let mut fixed = BTreeMap::new();
        for (service, addrs) in services {
            let service = service.into();
            let mut instances: Vec<Instance> = addrs
                .into_iter()
                .map(|addr| {
                    let addr = addr.into();
                    Instance::new(service.clone(), addr.clone(), addr)
                })
                .collect();
            instances.sort_by(|a, b| a.id.cmp(&b.id));
            instances.dedup_by(|a, b| a.id == b.id);
            fixed.insert(service, instances);
        }
        let state = State { fixed, ..State::default() };
        Self { inner: Arc::new(Inner { state: Mutex::new(state), version: watch::channel(0).0 }) }
    }

    fn changed(&self) {
        self.inner.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The live instances of `service`, and when the next of them expires.
    fn live(&self, service: &str) -> (Vec<Instance>, Option<Instant>) {
        let now = Instant::now();
        let state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut list: BTreeMap<&str, &Instance> = BTreeMap::new();
        for instance in state.fixed.get(service).into_iter().flatten() {
            list.insert(&instance.id, instance);
        }
        let mut next_expiry = None;
        for (id, (instance, _, expires)) in state.registered.get(service).into_iter().flatten() {
            if *expires > now {
                list.insert(id, instance);
                next_expiry = Some(next_expiry.map_or(*expires, |n: Instant| n.min(*expires)));
            }
        }
        (list.into_values().cloned().collect(), next_expiry)
    }
}

#[async_trait::async_trait]
impl Registry for StaticRegistry {
    async fn register(&self, instance: &Instance, ttl: Duration) -> Result<Lease> {
        let lease = {
            let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.next_lease += 1;
            let lease = state.next_lease;
            let expires = Instant::now() + ttl;
            state
                .registered
                .entry(instance.service.clone())
                .or_default()
                .insert(instance.id.clone(), (instance.clone(), lease, expires));
            lease
        };
        metrics::registered(&instance.service);
        self.changed();
        Ok(Lease::new(&instance.service, &instance.id, lease, ttl))
    }

    async fn keep_alive(&self, lease: &Lease) -> Result<()> {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match state.registered.get_mut(lease.service()).and_then(|s| s.get_mut(lease.instance())) {
            Some((_, id, expires)) if *id == lease.id() && *expires > now => {
                *expires = now + lease.ttl();
                Ok(())
            }
            _ => Err(Error::LeaseGone { lease: lease.id() }),
        }
    }

    async fn deregister(&self, lease: &Lease) -> Result<()> {
        let removed = {
            let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            let service = state.registered.get_mut(lease.service());
            match service {
                Some(s) if s.get(lease.instance()).is_some_and(|(_, id, _)| *id == lease.id()) => {
                    s.remove(lease.instance()).is_some()
                }
                _ => false,
            }
        };
        if removed {
            self.changed();
        }
        Ok(())
    }

    async fn resolve(&self, service: &str) -> Result<Vec<Instance>> {
        Ok(self.live(service).0)
    }

    async fn watch(&self, service: &str) -> Result<Box<dyn Watch>> {
        Ok(Box::new(StaticWatch {
            registry: self.clone(),
            service: service.to_owned(),
            changes: self.inner.version.subscribe(),
            last: None,
        }))
    }
}

/// A watch of a [`StaticRegistry`] service.
struct StaticWatch {
    registry: StaticRegistry,
    service: String,
    changes: watch::Receiver<u64>,
    last: Option<Vec<Instance>>,
}

impl fmt::Debug for StaticWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticWatch").field("service", &self.service).finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Watch for StaticWatch {
    async fn next(&mut self) -> Result<Vec<Instance>> {
        loop {
            self.changes.mark_unchanged();
            let (list, next_expiry) = self.registry.live(&self.service);
            if self.last.as_ref() != Some(&list) {
                self.last = Some(list.clone());
                return Ok(list);
            }
            // Wake on a change, or when the next registration expires.
            let expiry = async {
                match next_expiry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = self.changes.changed() => changed.map_err(|_| Error::WatchEnded)?,
                () = expiry => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn registrations_expire_without_keep_alive() {
        let registry = StaticRegistry::new([("inventory", ["10.0.0.1:80"])]);
        let mut watch = registry.watch("inventory").await.unwrap();
        assert_eq!(watch.next().await.unwrap().len(), 1);

        let lease =
            registry.register(&Instance::new("inventory", "b", "10.0.0.2:80"), Duration::from_secs(3)).await.unwrap();
        let ids = |l: Vec<Instance>| l.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(watch.next().await.unwrap()), ["10.0.0.1:80", "b"]);

        tokio::time::sleep(Duration::from_secs(2)).await;
        registry.keep_alive(&lease).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(registry.resolve("inventory").await.unwrap().len(), 2, "kept alive");

        let started = Instant::now();
        assert_eq!(ids(watch.next().await.unwrap()), ["10.0.0.1:80"]);
        assert_eq!(started.elapsed(), Duration::from_secs(1), "the watch wakes up when the lease expires");
        assert!(matches!(registry.keep_alive(&lease).await, Err(Error::LeaseGone { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn deregister_is_seen_by_watches_and_idempotent() {
        let registry = StaticRegistry::default();
        let lease = registry.register(&Instance::new("a", "1", "h:1"), Duration::from_secs(10)).await.unwrap();
        let mut watch = registry.watch("a").await.unwrap();
        assert_eq!(watch.next().await.unwrap().len(), 1);
        registry.deregister(&lease).await.unwrap();
        assert!(watch.next().await.unwrap().is_empty());
        registry.deregister(&lease).await.unwrap();
        assert!(registry.resolve("a").await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_registration_of_an_id_wins_over_an_old_lease() {
        let registry = StaticRegistry::default();
        let old = registry.register(&Instance::new("a", "1", "h:1"), Duration::from_secs(10)).await.unwrap();
        let _new = registry.register(&Instance::new("a", "1", "h:2"), Duration::from_secs(10)).await.unwrap();
        registry.deregister(&old).await.unwrap();
        assert_eq!(registry.resolve("a").await.unwrap()[0].addr, "h:2");
        assert!(registry.keep_alive(&old).await.is_err());
    }
}
