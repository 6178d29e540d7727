//! [`Instance`] and [`Lease`]: what is registered, and the handle that keeps it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One instance of a service: the JSON value the etcd backend stores under
/// `/<prefix>/<service>/<id>`, e.g.
/// `{"service":"inventory","id":"inv-1","addr":"10.0.0.7:8080","metadata":{"version":"1.4.2"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Instance {
    /// The logical service name (`inventory`).
    pub service: String,
    /// The instance's id, unique within its service.
    pub id: String,
    /// Where it answers: `host:port` (`10.0.0.7:8080`, `[::1]:8080`).
    pub addr: String,
    /// Free-form metadata: `version`, `zone`, `admin` (the admin URL)…
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Instance {
    /// An instance `id` of `service` at `addr` (`host:port`), without metadata.
    pub fn new(service: impl Into<String>, id: impl Into<String>, addr: impl Into<String>) -> Self {
        Self { service: service.into(), id: id.into(), addr: addr.into(), metadata: BTreeMap::new() }
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// A registration: kept alive with [`Registry::keep_alive`](crate::Registry::keep_alive)
/// within its TTL, ended with [`Registry::deregister`](crate::Registry::deregister).
/// When neither happens (the process crashed), the instance expires with its TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    service: String,
    instance: String,
    id: i64,
    ttl: Duration,
}

impl Lease {
    /// A lease `id` (the backend's: etcd's lease id) for `instance` of `service`.
    pub fn new(service: impl Into<String>, instance: impl Into<String>, id: i64, ttl: Duration) -> Self {
        Self { service: service.into(), instance: instance.into(), id, ttl }
    }

    /// The service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The backend's lease id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// How long the registration lives without a keep-alive.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}
