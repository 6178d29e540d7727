//! [`Config`]: the `discovery` section.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which registry a service registers in and resolves through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Backend {
    /// No registry: nothing registers; logical names resolve through
    /// [`Config::instances`] only. The default, so a service needs no server.
    #[default]
    None,
    /// [`StaticRegistry`](crate::StaticRegistry): [`Config::instances`], plus
    /// in-process registrations.
    Static,
    /// etcd (the `etcd` feature): leases, keys under `/<prefix>/<service>/<id>`.
    Etcd,
    /// DNS (the `dns` feature): SRV or A/AAAA records; read-only.
    Dns,
}

/// How a client picks one instance among the live ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Balance {
    /// Each instance in turn.
    #[default]
    RoundRobin,
    /// Two instances at random, the one with fewer requests in flight
    /// (Mitzenmacher's power of two choices): adapts to slow instances.
    PowerOfTwo,
}

/// Service discovery and registration: the `discovery` section.
///
/// ```toml
/// [discovery]
/// backend = "etcd"
/// service = "inventory"        # default: the service's own name
/// ttl_secs = 10
/// etcd.endpoints = ["http://etcd-0:2379", "http://etcd-1:2379"]
/// instances.pricing = ["127.0.0.1:8081"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The registry. Default: [`Backend::None`].
    pub backend: Backend,
    /// The name this service registers under. Default: none (the service's own name).
    pub service: Option<String>,
    /// The address (`host:port`) this instance advertises. Default: none (the
    /// address the API is bound to; an unspecified IP such as `0.0.0.0` is
    /// replaced by `127.0.0.1`, so set this outside a single machine).
    pub address: Option<String>,
    /// The instance id. Default: none (`<service>-<address>`).
    pub instance_id: Option<String>,
    /// How long a registration lives without a keep-alive, in seconds, from 1
    /// to 3600; keep-alives are sent every third of it. A crashed instance
    /// disappears within this. Default: 10.
    #[serde(deserialize_with = "chassis_bounds::uint::<_, u64, 1, 3600>")]
    pub ttl_secs: u64,
    /// Metadata registered with the instance (`version` and `admin` are added
    /// by the lifecycle integration). Default: empty.
    pub metadata: BTreeMap<String, String>,
    /// Fixed instances by service: `{"pricing": ["127.0.0.1:8081"]}`. Used by
    /// the `static` backend, and with `none`. Default: empty.
    pub instances: BTreeMap<String, Vec<String>>,
    /// The etcd backend.
    pub etcd: EtcdConfig,
    /// The DNS backend.
    pub dns: DnsConfig,
    /// The client side: which URLs are logical names, and how to balance.
    pub client: ClientConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            backend: Backend::None,
            service: None,
            address: None,
            instance_id: None,
            ttl_secs: 10,
            metadata: BTreeMap::new(),
            instances: BTreeMap::new(),
            etcd: EtcdConfig::default(),
            dns: DnsConfig::default(),
            client: ClientConfig::default(),
        }
    }
}

/// The etcd backend: `discovery.etcd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct EtcdConfig {
    /// The members' client URLs; tried in turn. Default: `["http://127.0.0.1:2379"]`.
    pub endpoints: Vec<String>,
    /// The key prefix: instances live under `/<prefix>/<service>/<id>`. Default: `chassis`.
    pub prefix: String,
    /// How long one request to etcd may take (a watch is not bounded), in
    /// milliseconds, from 1 to 60000. Default: 2000.
    #[serde(deserialize_with = "chassis_bounds::uint::<_, u64, 1, 60_000>")]
    pub request_timeout_ms: u64,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self { endpoints: vec!["http://127.0.0.1:2379".into()], prefix: "chassis".into(), request_timeout_ms: 2000 }
    }
}

/// The DNS backend: `discovery.dns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DnsConfig {
    /// The DNS servers to ask (`ip:port`). Default: empty (the system's, from `/etc/resolv.conf`).
    pub nameservers: Vec<std::net::SocketAddr>,
    /// Appended to every name: `ns.svc.cluster.local`. Default: none (names are absolute).
    pub domain: Option<String>,
    /// Look up SRV records (`true`) or A/AAAA records (`false`). Default: `true`.
    pub srv: bool,
    /// Put before the service name for SRV lookups. Default: `_http._tcp.`.
    pub srv_prefix: String,
    /// The port of instances found by A/AAAA lookups. Default: 80.
    pub port: u16,
    /// The shortest wait before a watch asks again, whatever the TTL, in
    /// milliseconds, from 1 to 3600000. Default: 1000.
    #[serde(deserialize_with = "chassis_bounds::uint::<_, u64, 1, 3_600_000>")]
    pub min_refresh_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            domain: None,
            srv: true,
            srv_prefix: "_http._tcp.".into(),
            port: 80,
            min_refresh_ms: 1000,
        }
    }
}

/// The client side: `discovery.client`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientConfig {
    /// A host ending with this suffix is a logical name, the suffix removed:
    /// with `.svc`, `http://inventory.svc/items` goes to an instance of
    /// `inventory`. Default: none.
    pub host_suffix: Option<String>,
    /// A URL with this scheme is a logical name, sent over `http`: with
    /// `svc`, `svc://inventory/items`. Default: none.
    pub scheme: Option<String>,
    /// How an instance is picked. Default: [`Balance::RoundRobin`].
    pub balance: Balance,
    /// After a broken watch, how long before watching again, in milliseconds,
    /// from 1 to 60000 (doubling up to 30 s while it keeps failing). Default: 500.
    #[serde(deserialize_with = "chassis_bounds::uint::<_, u64, 1, 60_000>")]
    pub rewatch_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self { host_suffix: None, scheme: None, balance: Balance::RoundRobin, rewatch_ms: 500 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_server() {
        let config: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.backend, Backend::None);
        assert_eq!(config.ttl_secs, 10);
        assert_eq!(config.etcd.endpoints, ["http://127.0.0.1:2379"]);
    }

    #[test]
    fn ranges_are_checked_at_their_key() {
        for (json, expected) in [
            (r#"{"ttl_secs": 0}"#, "an integer from 1 to 3600"),
            (r#"{"etcd": {"request_timeout_ms": 0}}"#, "an integer from 1 to 60000"),
            (r#"{"client": {"rewatch_ms": 60001}}"#, "an integer from 1 to 60000"),
            (r#"{"backend": "consul"}"#, "unknown variant"),
            (r#"{"ttl": 3}"#, "unknown field"),
        ] {
            let error = serde_json::from_str::<Config>(json).unwrap_err().to_string();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn a_full_section_reads() {
        let config: Config = serde_json::from_str(
            r#"{"backend":"etcd","service":"inventory","ttl_secs":3,"instances":{"pricing":["127.0.0.1:1"]},
                "etcd":{"endpoints":["http://127.0.0.1:1"],"prefix":"p"},"client":{"balance":"power_of_two","host_suffix":".svc"}}"#,
        )
        .unwrap();
        assert_eq!(config.backend, Backend::Etcd);
        assert_eq!(config.client.balance, Balance::PowerOfTwo);
        assert_eq!(config.instances["pricing"], ["127.0.0.1:1"]);
    }
}
