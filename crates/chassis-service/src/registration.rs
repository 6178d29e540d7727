//! Registration in a service registry that follows the lifecycle: register
//! once ready, keep the lease alive only while readiness passes, deregister
//! first on shutdown. A crash leaves the lease to expire with its TTL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chassis_discovery::{Config, Error, Instance, Lease, Registry};
use tokio_util::sync::CancellationToken;

use crate::health::Health;

/// The longest the shutdown waits for the registry to deregister.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`Service::discovery`](crate::Service::discovery) was given.
pub(crate) struct Registration {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) config: Config,
}

impl Registration {
    /// The instance this service registers: name, address and id from the
    /// config or from the bound socket; `version` and `admin` metadata.
    pub(crate) fn instance(&self, name: &str, version: &str, api: SocketAddr, admin: SocketAddr) -> Instance {
        let service = self.config.service.clone().unwrap_or_else(|| name.to_owned());
        let addr = self.config.address.clone().unwrap_or_else(|| advertised(api).to_string());
        let id = self.config.instance_id.clone().unwrap_or_else(|| format!("{service}-{addr}"));
        let mut instance = Instance::new(service, id, addr);
        instance.metadata = self.config.metadata.clone();
        instance.metadata.entry("version".into()).or_insert_with(|| version.to_owned());
        instance.metadata.entry("admin".into()).or_insert_with(|| format!("http://{}", advertised(admin)));
        instance
    }
}

/// An unspecified address (`0.0.0.0`, `::`) is not one a peer can reach:
/// advertise loopback instead (set `discovery.address` across machines).
fn advertised(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let loopback = if addr.is_ipv4() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    }
}

/// Registers `instance` while readiness passes, renewing every third of
/// `ttl`; returns the live lease (if any) when `stop` fires.
pub(crate) async fn keep_registered(
    registry: Arc<dyn Registry>,
    instance: Instance,
    ttl: Duration,
    health: Health,
    stop: CancellationToken,
) -> Option<Lease> {
    let mut lease: Option<Lease> = None;
    let mut tick = tokio::time::interval((ttl / 3).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return lease,
            _ = tick.tick() => {}
        }
        let ready = tokio::select! {
            () = stop.cancelled() => return lease,
            readiness = health.readiness() => readiness.ready,
        };
        if !ready {
            // No keep-alive: the registration lapses with its TTL, so an
            // unhealthy instance drops out of every client's list.
            if lease.is_some() {
                tracing::warn!(instance = %instance.id, "not ready: the registration is left to lapse");
            }
            continue;
        }
        if let Some(current) = &lease {
            match registry.keep_alive(current).await {
                Ok(()) => continue,
                Err(Error::LeaseGone { .. }) => {
                    tracing::info!(instance = %instance.id, "registration lapsed; registering again");
                }
                Err(error) => {
                    tracing::warn!(instance = %instance.id, %error, "keep-alive failed; retrying");
                    continue;
                }
            }
        }
        lease = match registry.register(&instance, ttl).await {
            Ok(new) => {
                tracing::info!(service = %instance.service, instance = %instance.id, addr = %instance.addr, "registered");
                Some(new)
            }
            Err(error) => {
                tracing::warn!(instance = %instance.id, %error, "registration failed; retrying");
                None
            }
        };
    }
}

/// Removes the registration, bounded by [`DEREGISTER_TIMEOUT`].
pub(crate) async fn deregister(registry: &dyn Registry, lease: &Lease) {
    match tokio::time::timeout(DEREGISTER_TIMEOUT, registry.deregister(lease)).await {
        Ok(Ok(())) => tracing::info!(instance = lease.instance(), "deregistered"),
        Ok(Err(error)) => tracing::warn!(%error, "deregistration failed; the registration expires with its TTL"),
        Err(_) => tracing::warn!("deregistration timed out; the registration expires with its TTL"),
    }
}
