//! [`DnsRegistry`]: discovery through DNS — SRV records (Kubernetes headless
//! services, Consul's DNS interface) or A/AAAA records — on `hickory-resolver`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};

use crate::config::DnsConfig;
use crate::error::{Error, Result};
use crate::instance::{Instance, Lease};
use crate::registry::{Registry, Watch};

/// A read-only registry in DNS: instances are what the records say, and
/// registration is the DNS server's business (a Kubernetes headless
/// service, Consul), so [`register`](Registry::register),
/// [`keep_alive`](Registry::keep_alive) and [`deregister`](Registry::deregister)
/// fail with [`Error::Unsupported`].
///
/// With `srv` (the default), service `inventory` is the SRV name
/// `<srv_prefix>inventory.<domain>.` (`_http._tcp.inventory.ns.svc.cluster.local.`):
/// only the records of the lowest priority are used, each target is resolved
/// to its addresses, and each instance carries its record's `weight` in its
/// metadata (the client balances by it). Without `srv`, `inventory.<domain>.`
/// is looked up for A/AAAA records, at `port`. A watch asks again when the
/// answer's TTL runs out (at least every `min_refresh_ms`).
#[derive(Clone)]
pub struct DnsRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    resolver: TokioResolver,
    config: DnsConfig,
}

impl fmt::Debug for DnsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsRegistry").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

fn unreachable(error: ResolveError) -> Error {
    Error::Unreachable(Box::new(error))
}

impl DnsRegistry {
    /// A registry asking `config.nameservers` (UDP and TCP), or the system's
    /// resolvers (`/etc/resolv.conf`) when there are none.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the system configuration cannot be read.
    pub fn new(config: &DnsConfig) -> Result<Self> {
        let mut options = ResolverOpts::default();
        // The watch re-asks on the TTL; a second cache would only delay changes.
        options.cache_size = 0;
        // Every address of an instance, not only the first family that answers.
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let resolver = if config.nameservers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| Error::InvalidConfig { field: "dns.nameservers", reason: format!("(system): {e}") })?
                .with_options(options)
                .build()
        } else {
            let mut group = NameServerConfigGroup::new();
            for server in &config.nameservers {
                group.merge(NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true));
            }
            let servers = ResolverConfig::from_parts(None, vec![], group);
            TokioResolver::builder_with_config(servers, TokioConnectionProvider::default())
                .with_options(options)
                .build()
        };
        Ok(Self { inner: Arc::new(Inner { resolver, config: config.clone() }) })
    }

    fn name(&self, service: &str) -> String {
        let config = &self.inner.config;
        let prefix = if config.srv { config.srv_prefix.as_str() } else { "" };
        match &config.domain {
            Some(domain) => format!("{prefix}{service}.{}.", domain.trim_matches('.')),
            None => format!("{prefix}{service}."),
        }
    }

    /// The instances, and how long the answer is valid.
    async fn lookup(&self, service: &str) -> Result<(Vec<Instance>, Duration)> {
        let name = self.name(service);
        let resolver = &self.inner.resolver;
        let mut instances = Vec::new();
        let now = std::time::Instant::now();
        let ttl;
        if self.inner.config.srv {
            let srv = match resolver.srv_lookup(name.as_str()).await {
                Ok(srv) => srv,
                Err(e) if e.is_no_records_found() => return Ok((Vec::new(), Duration::ZERO)),
                Err(e) => return Err(unreachable(e)),
            };
            let mut valid = srv.as_lookup().valid_until();
            let best = srv.iter().map(hickory_resolver::proto::rr::rdata::SRV::priority).min();
            for record in srv.iter().filter(|r| Some(r.priority()) == best) {
                let ips = match resolver.lookup_ip(record.target().clone()).await {
                    Ok(ips) => ips,
                    Err(e) if e.is_no_records_found() => continue,
                    Err(e) => return Err(unreachable(e)),
                };
                valid = valid.min(ips.valid_until());
                for ip in ips.iter() {
                    instances.push(
                        instance(service, ip, record.port()).with_metadata("weight", record.weight().to_string()),
                    );
                }
            }
            ttl = valid.saturating_duration_since(now);
        } else {
            let ips = match resolver.lookup_ip(name.as_str()).await {
                Ok(ips) => ips,
                Err(e) if e.is_no_records_found() => return Ok((Vec::new(), Duration::ZERO)),
                Err(e) => return Err(unreachable(e)),
            };
            ttl = ips.valid_until().saturating_duration_since(now);
            instances.extend(ips.iter().map(|ip| instance(service, ip, self.inner.config.port)));
        }
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        instances.dedup_by(|a, b| a.id == b.id);
        Ok((instances, ttl))
    }
}

fn instance(service: &str, ip: IpAddr, port: u16) -> Instance {
    let addr = SocketAddr::new(ip, port).to_string();
    Instance::new(service, addr.clone(), addr)
}

#[async_trait::async_trait]
impl Registry for DnsRegistry {
    async fn register(&self, _: &Instance, _: Duration) -> Result<Lease> {
        Err(Error::Unsupported { backend: "dns", operation: "register" })
    }

    async fn keep_alive(&self, _: &Lease) -> Result<()> {
        Err(Error::Unsupported { backend: "dns", operation: "keep_alive" })
    }

    async fn deregister(&self, _: &Lease) -> Result<()> {
        Err(Error::Unsupported { backend: "dns", operation: "deregister" })
    }

    async fn resolve(&self, service: &str) -> Result<Vec<Instance>> {
        Ok(self.lookup(service).await?.0)
    }

    async fn watch(&self, service: &str) -> Result<Box<dyn Watch>> {
        Ok(Box::new(DnsWatch { registry: self.clone(), service: service.to_owned(), last: None, next_at: None }))
    }
}

/// Asks again when the answer expires; reports changes.
struct DnsWatch {
    registry: DnsRegistry,
    service: String,
    last: Option<Vec<Instance>>,
    next_at: Option<tokio::time::Instant>,
}

impl fmt::Debug for DnsWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsWatch").field("service", &self.service).finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Watch for DnsWatch {
    async fn next(&mut self) -> Result<Vec<Instance>> {
        let min = Duration::from_millis(self.registry.inner.config.min_refresh_ms);
        loop {
            if let Some(at) = self.next_at {
                tokio::time::sleep_until(at).await;
            }
            let (list, ttl) = self.registry.lookup(&self.service).await?;
            self.next_at = Some(tokio::time::Instant::now() + ttl.max(min));
            if self.last.as_ref() != Some(&list) {
                self.last = Some(list.clone());
                return Ok(list);
            }
        }
    }
}
