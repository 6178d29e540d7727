//! [`Registry`]: the backend interface, and [`Watch`]: a stream of instance lists.

use std::fmt;
use std::time::Duration;

use crate::error::Result;
use crate::instance::{Instance, Lease};

/// A service registry: where instances register and clients find them.
///
/// Backends: [`StaticRegistry`](crate::StaticRegistry) (a fixed list, plus
/// in-process registrations) and, with the `etcd` feature, `EtcdRegistry`.
/// Use it as `Arc<dyn Registry>`.
#[async_trait::async_trait]
pub trait Registry: fmt::Debug + Send + Sync + 'static {
    /// Registers `instance` for `ttl`: unless [kept alive](Self::keep_alive)
    /// within `ttl`, it expires. Registering an id again replaces it.
    ///
    /// # Errors
    /// [`Error::Unreachable`](crate::Error::Unreachable),
    /// [`Error::Backend`](crate::Error::Backend) or
    /// [`Error::InvalidAnswer`](crate::Error::InvalidAnswer).
    async fn register(&self, instance: &Instance, ttl: Duration) -> Result<Lease>;

    /// Renews `lease` for another TTL.
    ///
    /// # Errors
    /// [`Error::LeaseGone`](crate::Error::LeaseGone) when it already expired
    /// (register again), or as [`register`](Self::register).
    async fn keep_alive(&self, lease: &Lease) -> Result<()>;

    /// Removes the registration at once.
    ///
    /// # Errors
    /// As [`register`](Self::register). A lease already gone is not an error.
    async fn deregister(&self, lease: &Lease) -> Result<()>;

    /// The live instances of `service`, sorted by id (possibly none).
    ///
    /// # Errors
    /// As [`register`](Self::register).
    async fn resolve(&self, service: &str) -> Result<Vec<Instance>>;

    /// A watch of `service`'s instances.
    ///
    /// # Errors
    /// As [`register`](Self::register).
    async fn watch(&self, service: &str) -> Result<Box<dyn Watch>>;
}

/// The changing list of a service's live instances.
#[async_trait::async_trait]
pub trait Watch: fmt::Debug + Send {
    /// The live instances, sorted by id: the current list on the first call,
    /// then the new list each time it changes.
    ///
    /// # Errors
    /// When the watch broke ([`Error::Unreachable`](crate::Error::Unreachable),
    /// [`Error::WatchEnded`](crate::Error::WatchEnded)): open a new one.
    async fn next(&mut self) -> Result<Vec<Instance>>;
}
