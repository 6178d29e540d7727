//! The DNS backend against a real dnsmasq on a free loopback port.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use chassis_discovery::{ClientConfig, DnsConfig, DnsRegistry, Error, Instance, Registry, Resolver};
use tokio_util::sync::CancellationToken;

use crate::support::{Upstream, free_port};

/// dnsmasq answering only from its command line, killed when dropped.
struct Dnsmasq {
    child: Child,
    port: u16,
}

impl Dnsmasq {
    async fn start(port: u16, records: &[String]) -> Self {
        let spawned = Command::new("dnsmasq")
            .args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-daemon", "--conf-file=/dev/null"])
            .args(["--listen-address=127.0.0.1", "--bind-interfaces", "--user=root", "--local-ttl=1"])
            .arg(format!("--port={port}"))
            .args(records)
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`dnsmasq` is not installed: the DNS tests start a real one. Install Debian's dnsmasq-base \
                 (apt-get install -y dnsmasq-base); scripts/test does"
            ),
            Err(e) => panic!("cannot start dnsmasq: {e}"),
        };
        let server = Self { child, port };
        // Ready when it answers.
        let registry = server.registry(true);
        for _ in 0..100 {
            if !matches!(registry.resolve("probe").await, Err(Error::Unreachable(_))) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("dnsmasq did not answer on 127.0.0.1:{port}");
    }

    fn registry(&self, srv: bool) -> DnsRegistry {
        let mut config = DnsConfig::default();
        config.nameservers = vec![format!("127.0.0.1:{}", self.port).parse().unwrap()];
        config.domain = Some("test".into());
        config.srv = srv;
        DnsRegistry::new(&config).unwrap()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SRV records for `inventory`: (host, port, priority, weight); host `hN`
/// resolves to 127.0.0.N.
fn srv(records: &[(&str, u16, u16, u16)]) -> Vec<String> {
    let mut args = Vec::new();
    for (host, port, priority, weight) in records {
        args.push(format!("--srv-host=_http._tcp.inventory.test,{host}.test,{port},{priority},{weight}"));
        let n = host.trim_start_matches('h');
        args.push(format!("--host-record={host}.test,127.0.0.{n}"));
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_priorities_and_weights_are_honoured_and_refreshed_on_the_ttl() {
    let ups = [Upstream::start("a", Duration::ZERO).await, Upstream::start("b", Duration::ZERO).await];
    let (pa, pb) = (ups[0].addr.port(), ups[1].addr.port());
    let dns_port = free_port();
    // Priority 0: a (weight 10) and b (weight 30); priority 1: a backup never used.
    let backup = Upstream::start("backup", Duration::ZERO).await;
    let mut dns =
        Dnsmasq::start(dns_port, &srv(&[("h1", pa, 0, 10), ("h1", pb, 0, 30), ("h1", backup.addr.port(), 1, 10)]))
            .await;
    let registry = dns.registry(true);
    let found = registry.resolve("inventory").await.unwrap();
    let weights: HashMap<String, String> =
        found.iter().map(|i| (i.addr.clone(), i.metadata["weight"].clone())).collect();
    assert_eq!(
        weights,
        HashMap::from([(format!("127.0.0.1:{pa}"), "10".into()), (format!("127.0.0.1:{pb}"), "30".into())])
    );
    assert!(matches!(
        registry.register(&Instance::new("x", "1", "h:1"), Duration::from_secs(1)).await,
        Err(Error::Unsupported { .. })
    ));
    assert!(registry.resolve("nothing").await.unwrap().is_empty());

    let resolver = Resolver::new(Arc::new(registry), ClientConfig::default());
    let shutdown = CancellationToken::new();
    let watches = tokio::spawn(resolver.clone().run(shutdown.clone()));
    let breakers = chassis_breaker::Breakers::new(chassis_breaker::Config::default()).unwrap();
    let client = chassis_discovery::client(resolver.clone(), breakers).unwrap();
    for _ in 0..200 {
        client.get("http://inventory/hit").send().await.unwrap();
    }
    assert_eq!((ups[0].hits(), ups[1].hits(), backup.hits()), (50, 150, 0), "weights 10:30, priority 1 unused");

    // New records: after the 1 s TTL the watch sees only the backup.
    drop(dns);
    dns = Dnsmasq::start(dns_port, &srv(&[("h1", backup.addr.port(), 0, 1)])).await;
    let mut seen = false;
    for _ in 0..100 {
        if resolver.instances("inventory").await.is_ok_and(|l| l.len() == 1) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the watch re-asked after the TTL");
    client.get("http://inventory/hit").send().await.unwrap();
    assert_eq!(backup.hits(), 1);

    shutdown.cancel();
    watches.await.unwrap();
    drop(dns);
}

#[tokio::test]
async fn a_and_aaaa_records_at_the_configured_port() {
    let dns = Dnsmasq::start(free_port(), &["--host-record=inventory.test,127.0.0.7,::1".to_owned()]).await;
    let mut config = DnsConfig::default();
    config.nameservers = vec![format!("127.0.0.1:{}", dns.port).parse().unwrap()];
    config.domain = Some("test".into());
    config.srv = false;
    config.port = 8080;
    let addrs: Vec<String> =
        DnsRegistry::new(&config).unwrap().resolve("inventory").await.unwrap().into_iter().map(|i| i.addr).collect();
    assert_eq!(addrs, ["127.0.0.7:8080", "[::1]:8080"]);
}
