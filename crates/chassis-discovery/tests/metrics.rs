//! Metrics, in a test binary of their own: the Prometheus recorder is
//! process-global and must be installed before the first metric is described.
#![cfg(feature = "client")]

use std::sync::Arc;
use std::time::Duration;

use chassis_discovery::{ClientConfig, Instance, Registry, Resolver, StaticRegistry};

#[tokio::test]
async fn metrics_are_described_and_labelled_by_service() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().unwrap();
    let registry = StaticRegistry::new([("pricing", ["127.0.0.1:1", "127.0.0.1:2"])]);
    registry.register(&Instance::new("billing", "b-1", "127.0.0.1:3"), Duration::from_secs(5)).await.unwrap();
    let resolver = Resolver::new(Arc::new(registry), ClientConfig::default());
    assert_eq!(resolver.instances("pricing").await.unwrap().len(), 2);
    assert!(resolver.instances("nothing").await.is_err());
    let breakers = chassis_breaker::Breakers::new(chassis_breaker::Config::default()).unwrap();
    let client = chassis_discovery::client(resolver, breakers).unwrap();
    assert!(client.get("http://nothing/x").send().await.is_err());

    let text = handle.render();
    for expected in [
        "# HELP chassis_discovery_instances Live instances",
        "# HELP chassis_discovery_resolve_errors_total",
        "# HELP chassis_discovery_registrations_total",
        "chassis_discovery_instances{service=\"pricing\"} 2",
        "chassis_discovery_instances{service=\"nothing\"} 0",
        "chassis_discovery_resolve_errors_total{service=\"nothing\"} 1",
        "chassis_discovery_registrations_total{service=\"billing\"} 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}
