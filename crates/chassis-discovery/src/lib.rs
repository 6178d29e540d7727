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
//!   in-process registrations).
//! - Configuration: the `discovery` section, [`Config`]; the backend is
//!   `none` by default, so a service needs no registry server.
//! - Metrics: `chassis_discovery_registrations_total{service}`.
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | (none yet) | | |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod fixed;
mod instance;
mod metrics;
mod registry;

use std::sync::Arc;

pub use config::{Backend, Balance, ClientConfig, Config, EtcdConfig};
pub use error::{Error, Result};
pub use fixed::StaticRegistry;
pub use instance::{Instance, Lease};
pub use registry::{Registry, Watch};

/// The registry `config` names: `None` for [`Backend::None`].
///
/// # Errors
/// [`Error::BackendDisabled`] when the backend's feature is not compiled in.
pub fn from_config(config: &Config) -> Result<Option<Arc<dyn Registry>>> {
    match config.backend {
        Backend::None => Ok(None),
        Backend::Static => Ok(Some(Arc::new(StaticRegistry::new(config.instances.clone())))),
        Backend::Etcd => Err(Error::BackendDisabled { backend: "etcd", feature: "etcd" }),
    }
}
