//! Service registration and discovery for chassis services.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> chassis_discovery::Result<()> {
//! use std::time::Duration;
//! use chassis_discovery::{Instance, Registry, StaticRegistry};
//!
//! let registry = StaticRegistry::default();
//! let lease = registry.register(&Instance::new("inventory", "inv-1", "127.0.0.1:8081"), Duration::from_secs(10)).await?;
//! let mut watch = registry.watch("inventory").await?;
//! assert_eq!(watch.next().await?[0].addr, "127.0.0.1:8081");
//! registry.deregister(&lease).await?;
//! assert!(watch.next().await?.is_empty());
//! # Ok(()) }
//! ```
//!
//! - A [`Registry`] trait: register an [`Instance`] with a TTL, keep its
//!   [`Lease`] alive, deregister, resolve a service to its live instances,
//!   [`Watch`] them change.
//! - Backends: [`StaticRegistry`] (fixed instances from config plus
//!   in-process registrations) and, with `etcd`, `EtcdRegistry` (leases with
//!   keep-alive, prefix watch, instances as JSON under `/<prefix>/<service>/<id>`)
//!   and, with `dns`, `DnsRegistry` (SRV or A/AAAA records, read-only).
//! - Configuration: the `discovery` section, [`Config`]; the backend is
//!   `none` by default, so a service needs no registry server.
//! - Client side (`client`): a [`Resolver`] keeps each called service's
//!   instance list, updated by watch, the last good list kept while the
//!   registry is unreachable; a [`DiscoveryMiddleware`] in front of the
//!   breaker sends `http://inventory/…` to one instance — round robin or
//!   power of two choices on requests in flight, instances with an open
//!   breaker skipped, idempotent requests that were not delivered retried
//!   once on another instance; [`client`] builds the whole stack.
//! - Metrics: `chassis_discovery_instances{service}` (gauge),
//!   `chassis_discovery_resolve_errors_total{service}`,
//!   `chassis_discovery_registrations_total{service}`.
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `etcd` | `EtcdRegistry`: etcd v3 through its JSON gateway, over reqwest | No |
//! | `dns` | `DnsRegistry`: SRV (priorities, weights) or A/AAAA records on `hickory-resolver`, re-asked on the TTL | No |
//! | `client` | [`Resolver`], [`DiscoveryMiddleware`], [`client`]: resolution and load balancing for reqwest, before chassis-breaker | Yes |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
mod client;
mod config;
#[cfg(feature = "dns")]
mod dns;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod fixed;
mod instance;
mod metrics;
mod registry;

use std::sync::Arc;

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use client::{DiscoveryMiddleware, Idempotent, Resolver, client};
pub use config::{Backend, Balance, ClientConfig, Config, DnsConfig, EtcdConfig};
#[cfg(feature = "dns")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
pub use dns::DnsRegistry;
pub use error::{Error, Result};
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use etcd::EtcdRegistry;
pub use fixed::StaticRegistry;
pub use instance::{Instance, Lease};
pub use registry::{Registry, Watch};

/// The README's code blocks, compiled and run as doctests so that they keep
/// matching the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The registry `config` names: `None` for [`Backend::None`].
///
/// # Errors
/// [`Error::BackendDisabled`] when the backend's feature is not compiled in.
pub fn from_config(config: &Config) -> Result<Option<Arc<dyn Registry>>> {
    match config.backend {
        Backend::None => Ok(None),
        Backend::Static => Ok(Some(Arc::new(StaticRegistry::new(config.instances.clone())))),
        #[cfg(feature = "etcd")]
        Backend::Etcd => Ok(Some(Arc::new(EtcdRegistry::new(&config.etcd)?))),
        #[cfg(not(feature = "etcd"))]
        Backend::Etcd => Err(Error::BackendDisabled { backend: "etcd", feature: "etcd" }),
        #[cfg(feature = "dns")]
        Backend::Dns => Ok(Some(Arc::new(DnsRegistry::new(&config.dns)?))),
        #[cfg(not(feature = "dns"))]
        Backend::Dns => Err(Error::BackendDisabled { backend: "dns", feature: "dns" }),
    }
}
