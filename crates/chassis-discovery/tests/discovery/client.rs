//! The client side: balancing, retries, breakers, registry outages.

use std::sync::Arc;
use std::time::Duration;

use chassis_discovery::{
    Balance, ClientConfig, Error, Idempotent, Instance, Registry, Resolver, StaticRegistry, Watch,
};
use tokio_util::sync::CancellationToken;

use crate::support::{Upstream, dead_addr};

fn client_over(
    registry: Arc<dyn Registry>,
    config: ClientConfig,
) -> (Resolver, reqwest_middleware::ClientWithMiddleware) {
    let resolver = Resolver::new(registry, config);
    let breakers = chassis_breaker::Breakers::new(chassis_breaker::Config::default()).unwrap();
    (resolver.clone(), chassis_discovery::client(resolver, breakers).unwrap())
}

async fn upstreams(n: usize, delay: Duration) -> Vec<Upstream> {
    let mut all = Vec::new();
    for i in 0..n {
        all.push(Upstream::start(&format!("u{i}"), delay).await);
    }
    all
}

fn addrs(upstreams: &[Upstream]) -> Vec<String> {
    upstreams.iter().map(|u| u.addr.to_string()).collect()
}

#[tokio::test]
async fn round_robin_sends_each_instance_its_turn() {
    let ups = upstreams(3, Duration::ZERO).await;
    let (_, client) = client_over(Arc::new(StaticRegistry::new([("inventory", addrs(&ups))])), ClientConfig::default());
    for _ in 0..300 {
        let response = client.get("http://inventory/hit").send().await.unwrap();
        assert!(response.status().is_success());
    }
    assert_eq!(ups.iter().map(Upstream::hits).collect::<Vec<_>>(), [100, 100, 100]);
}

#[tokio::test]
async fn power_of_two_spreads_concurrent_load_within_20_percent() {
    let ups = upstreams(3, Duration::from_millis(5)).await;
    let mut config = ClientConfig::default();
    config.balance = Balance::PowerOfTwo;
    let (_, client) = client_over(Arc::new(StaticRegistry::new([("inventory", addrs(&ups))])), config);
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let client = client.clone();
        callers.spawn(async move {
            for _ in 0..50 {
                assert!(client.get("http://inventory/hit").send().await.unwrap().status().is_success());
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    let hits: Vec<usize> = ups.iter().map(Upstream::hits).collect();
    assert_eq!(hits.iter().sum::<usize>(), 300);
    assert!(hits.iter().all(|h| (80..=120).contains(h)), "{hits:?}");
}

#[tokio::test]
async fn logical_names_by_scheme_or_suffix_and_other_urls_untouched() {
    let up = Upstream::start("u", Duration::ZERO).await;
    let registry: Arc<dyn Registry> = Arc::new(StaticRegistry::new([("inventory", [up.addr.to_string()])]));
    let mut by_scheme = ClientConfig::default();
    by_scheme.scheme = Some("svc".into());
    let (_, client) = client_over(registry.clone(), by_scheme);
    assert_eq!(client.get("svc://inventory/hit").send().await.unwrap().text().await.unwrap(), "u");
    let mut by_suffix = ClientConfig::default();
    by_suffix.host_suffix = Some(".svc".into());
    let (_, client) = client_over(registry.clone(), by_suffix);
    assert_eq!(client.get("http://inventory.svc/hit?x=1").send().await.unwrap().text().await.unwrap(), "u");
    // A plain URL is not resolved.
    let (_, client) = client_over(registry, ClientConfig::default());
    assert_eq!(client.get(format!("http://{}/hit", up.addr)).send().await.unwrap().text().await.unwrap(), "u");
    let error = client.get("http://unknown/hit").send().await.unwrap_err();
    assert!(error.to_string().contains("no live instance of service `unknown`"), "{error}");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn idempotent_requests_that_cannot_connect_are_retried_on_another_instance() {
    let ups = upstreams(2, Duration::ZERO).await;
    let mut list = addrs(&ups);
    list.push(dead_addr().await.to_string());
    let (_, client) = client_over(Arc::new(StaticRegistry::new([("inventory", list)])), ClientConfig::default());
    // Not idempotent: not retried, so each turn of the dead instance fails.
    let mut failed = 0;
    for _ in 0..6 {
        failed += usize::from(client.post("http://inventory/hit").send().await.is_err());
    }
    assert_eq!(failed, 2, "round robin gives the dead instance 2 of 6 plain POSTs");
    // Idempotent: retried elsewhere, 0 failures (until its breaker opens and it is skipped).
    for _ in 0..30 {
        client.get("http://inventory/hit").send().await.unwrap();
        client.post("http://inventory/hit").with_extension(Idempotent).send().await.unwrap();
    }
    assert_eq!(ups.iter().map(Upstream::hits).sum::<usize>(), 4 + 60);
}

/// A loopback "server" that accepts connections, reads the request and
/// closes without an answer: a connection that breaks mid-call.
async fn hang_up_addr() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
        }
    });
    addr
}

#[tokio::test]
async fn idempotent_requests_whose_connection_breaks_are_retried_on_another_instance() {
    let up = Upstream::start("u", Duration::ZERO).await;
    let list = [up.addr.to_string(), hang_up_addr().await.to_string()];
    let (_, client) = client_over(Arc::new(StaticRegistry::new([("inventory", list)])), ClientConfig::default());
    let error = client.post("http://inventory/hit").send().await.err().or(client
        .post("http://inventory/hit")
        .send()
        .await
        .err());
    let error = error.expect("the plain POST sent to the hang-up instance fails");
    assert!(error.is_request() && !error.is_connect(), "{error:?}");
    for _ in 0..4 {
        assert_eq!(client.get("http://inventory/hit").send().await.unwrap().text().await.unwrap(), "u");
    }
    assert_eq!(up.hits(), 5);
}

#[tokio::test]
async fn an_instance_answering_500_opens_its_breaker_and_gets_no_more_traffic() {
    let ups = upstreams(3, Duration::ZERO).await;
    ups[1].fail();
    let (_, client) = client_over(Arc::new(StaticRegistry::new([("inventory", addrs(&ups))])), ClientConfig::default());
    let mut server_errors = 0;
    for _ in 0..300 {
        let response = client.get("http://inventory/hit").send().await.unwrap();
        server_errors += usize::from(response.status().is_server_error());
    }
    // The default breaker opens after 5 consecutive failures and stays open 10 s.
    assert_eq!(ups[1].hits(), 5);
    assert_eq!(server_errors, 5);
    assert_eq!(ups[0].hits() + ups[2].hits(), 295);
    // Skipped, not rejected: a request that is not retried does not fail either.
    for _ in 0..30 {
        assert!(client.post("http://inventory/hit").send().await.unwrap().status().is_success());
    }
}

/// A registry that can be taken down: while down, every call fails and open
/// watches break.
#[derive(Debug, Clone)]
struct Flaky {
    inner: StaticRegistry,
    down: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Flaky {
    fn check(&self) -> chassis_discovery::Result<()> {
        if *self.down.borrow() { Err(Error::Unreachable("down".into())) } else { Ok(()) }
    }
}

#[derive(Debug)]
struct FlakyWatch {
    inner: Box<dyn Watch>,
    down: tokio::sync::watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl Watch for FlakyWatch {
    async fn next(&mut self) -> chassis_discovery::Result<Vec<Instance>> {
        tokio::select! {
            next = self.inner.next() => next,
            _ = self.down.wait_for(|down| *down) => Err(Error::Unreachable("down".into())),
        }
    }
}

#[async_trait::async_trait]
impl Registry for Flaky {
    async fn register(&self, i: &Instance, ttl: Duration) -> chassis_discovery::Result<chassis_discovery::Lease> {
        self.check()?;
        self.inner.register(i, ttl).await
    }
    async fn keep_alive(&self, lease: &chassis_discovery::Lease) -> chassis_discovery::Result<()> {
        self.check()?;
        self.inner.keep_alive(lease).await
    }
    async fn deregister(&self, lease: &chassis_discovery::Lease) -> chassis_discovery::Result<()> {
        self.check()?;
        self.inner.deregister(lease).await
    }
    async fn resolve(&self, service: &str) -> chassis_discovery::Result<Vec<Instance>> {
        self.check()?;
        self.inner.resolve(service).await
    }
    async fn watch(&self, service: &str) -> chassis_discovery::Result<Box<dyn Watch>> {
        self.check()?;
        Ok(Box::new(FlakyWatch { inner: self.inner.watch(service).await?, down: self.down.subscribe() }))
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn the_last_good_list_is_kept_while_the_registry_is_down_and_watches_resume() {
    let ups = upstreams(3, Duration::ZERO).await;
    let flaky = Flaky {
        inner: StaticRegistry::new([("inventory", [ups[0].addr.to_string(), ups[1].addr.to_string()])]),
        down: Arc::new(tokio::sync::watch::channel(false).0),
    };
    let mut config = ClientConfig::default();
    config.rewatch_ms = 20;
    let (resolver, client) = client_over(Arc::new(flaky.clone()), config);
    let shutdown = CancellationToken::new();
    let watches = tokio::spawn(resolver.clone().run(shutdown.clone()));

    client.get("http://inventory/hit").send().await.unwrap();
    assert_eq!(resolver.is_stale("inventory"), Some(false));

    flaky.down.send_replace(true);
    eventually("the watch to break", || resolver.is_stale("inventory") == Some(true)).await;
    assert_eq!(resolver.stale(), [("inventory".to_owned(), 2)]);
    for _ in 0..10 {
        client.get("http://inventory/hit").send().await.unwrap();
    }
    assert_eq!(ups[0].hits() + ups[1].hits(), 11, "the last list still serves");

    flaky.down.send_replace(false);
    eventually("the watch to resume", || resolver.is_stale("inventory") == Some(false)).await;
    assert!(resolver.stale().is_empty());
    flaky
        .inner
        .register(&Instance::new("inventory", "third", ups[2].addr.to_string()), Duration::from_secs(60))
        .await
        .unwrap();
    eventually("the new instance in the list", || {
        futures_now(resolver.instances("inventory")).is_some_and(|l| l.map(|l| l.len()).unwrap_or(0) == 3)
    })
    .await;
    for _ in 0..6 {
        client.get("http://inventory/hit").send().await.unwrap();
    }
    assert_eq!(ups[2].hits(), 2, "the watch saw the new instance");

    shutdown.cancel();
    watches.await.unwrap();
}

/// Polls a future once (the resolver answers from its cache without waiting).
fn futures_now<F: Future>(f: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
