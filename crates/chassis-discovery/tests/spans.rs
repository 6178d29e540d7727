//! The `discovery` span of each attempt, in a test binary of its own: the
//! subscriber is process-global, so no other test's dispatcher can change
//! tracing's cached callsite interest in the middle of this one.
#![cfg(feature = "client")]
#![allow(missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chassis_discovery::{ClientConfig, Instance, Registry as _, Resolver, StaticRegistry};

/// An instance answering `GET /hit`.
async fn live() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hit", axum::routing::get(|| async { "live" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A loopback address nothing listens on.
fn dead_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The fields of every `discovery` span, as a test layer sees them created.
#[derive(Clone, Default)]
struct DiscoverySpans(Arc<std::sync::Mutex<Vec<std::collections::BTreeMap<String, String>>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DiscoverySpans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Fields<'a>(&'a mut std::collections::BTreeMap<String, String>);
        impl tracing::field::Visit for Fields<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}"));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
        }
        if attrs.metadata().name() == "discovery" {
            let mut fields = std::collections::BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}

#[tokio::test]
async fn each_attempt_runs_in_a_span_with_the_peer_service_and_the_chosen_instance() {
    use tracing_subscriber::prelude::*;
    let spans = DiscoverySpans::default();
    tracing_subscriber::registry().with(spans.clone()).init();
    let up = live().await;
    let dead = dead_addr();
    let registry = StaticRegistry::default();
    for (id, addr) in [("dead-1", dead.to_string()), ("live-1", up.to_string())] {
        registry.register(&Instance::new("inventory", id, addr), Duration::from_secs(60)).await.unwrap();
    }
    let breakers = chassis_breaker::Breakers::new(chassis_breaker::Config::default()).unwrap();
    let client =
        chassis_discovery::client(Resolver::new(Arc::new(registry), ClientConfig::default()), breakers).unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        assert!(client.get("http://inventory/hit").send().await.unwrap().status().is_success());
        seen.push(std::mem::take(&mut *spans.0.lock().unwrap()));
    }
    let span = |service: &str, id: &str, addr: String| {
        [("peer.service", service.to_owned()), ("instance", id.to_owned()), ("addr", addr)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let live = span("inventory", "live-1", up.to_string());
    let retried = [span("inventory", "dead-1", dead.to_string()), live.clone()];
    // A request sent to the dead instance is retried on the live one: two spans, each
    // with its own instance; one sent to the live one first has one span.
    for spans in &seen {
        assert!(*spans == [live.clone()] || *spans == retried, "{spans:?}");
    }
    assert!(seen.iter().any(|spans| *spans == retried), "round robin tried the dead instance: {seen:?}");
}
