//! The per-request cost of resolving a logical name and picking an instance
//! (cached list), next to the same client without discovery, in one run.
//!
//! `in_process/*`: the whole `reqwest-middleware` stack a service uses —
//! `[DiscoveryMiddleware,] BreakerMiddleware, answer` — where `answer` is a
//! last middleware that returns `200` at once, so only the chassis layers and
//! the request building are timed (a loopback round trip varies by more than
//! the microsecond looked for). `fixed_address` sends to `127.0.0.1:8081`
//! through the breaker alone; `round_robin` and `power_of_two` send to
//! `http://pricing/…` resolved among 3 instances. The difference is what
//! discovery adds. With 1 task, and with 2 tasks on 2 worker threads sharing
//! one client (time per request per task).
//!
//! `loopback/*`: a real GET to an axum server on loopback with plain reqwest
//! (no middleware) and with `chassis_discovery::client` (discovery, then the
//! breaker), for scale.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chassis_breaker::BreakerMiddleware;
use chassis_discovery::{Balance, ClientConfig, DiscoveryMiddleware, Resolver, StaticRegistry};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};

/// The last middleware: answers `200` without a network.
struct Answer;

#[async_trait::async_trait]
impl Middleware for Answer {
    async fn handle(
        &self,
        req: reqwest::Request,
        _: &mut Extensions,
        _: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        black_box(req.url());
        Ok(reqwest::Response::from(http::Response::new("")))
    }
}

fn stack(discovery: Option<Balance>) -> ClientWithMiddleware {
    let breakers = chassis_breaker::Breakers::new(chassis_breaker::Config::default()).unwrap();
    let mut builder = ClientBuilder::new(reqwest::Client::new());
    if let Some(balance) = discovery {
        let registry = StaticRegistry::new([("pricing", ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"])]);
        let mut config = ClientConfig::default();
        config.balance = balance;
        let resolver = Resolver::new(Arc::new(registry), config);
        builder = builder.with(DiscoveryMiddleware::new(resolver).breakers(breakers.clone()));
    }
    builder.with(BreakerMiddleware::new(breakers)).with(Answer).build()
}

/// Sends `iters` requests from each of `tasks` tasks at once; the wall time
/// is the time per request per task.
fn run(
    rt: &tokio::runtime::Runtime,
    client: &ClientWithMiddleware,
    url: &'static str,
    tasks: usize,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let client = client.clone();
            set.spawn(async move {
                for _ in 0..iters {
                    let response = client.get(url).send().await.unwrap();
                    black_box(response.status());
                }
            });
        }
        while let Some(done) = set.join_next().await {
            done.unwrap();
        }
        start.elapsed()
    })
}

fn in_process(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let fixed = stack(None);
    let round_robin = stack(Some(Balance::RoundRobin));
    let power_of_two = stack(Some(Balance::PowerOfTwo));
    // `RESOLVE_COUNT=<variant>:<n>`: only send n requests of one variant on one
    // thread and exit, for `perf stat -e task-clock`: the CPU time per request,
    // which a shared machine's load moves less than wall time (BENCHMARKS.md).
    #[allow(clippy::disallowed_methods)] // a bench switch, not a setting
    if let Ok(spec) = std::env::var("RESOLVE_COUNT") {
        let (variant, n) = spec.split_once(':').expect("RESOLVE_COUNT=<variant>:<n>");
        let n: u64 = n.parse().expect("a count");
        let (client, url) = match variant {
            "fixed_address" => (&fixed, "http://127.0.0.1:8081/items/7"),
            "round_robin" => (&round_robin, "http://pricing/items/7"),
            "power_of_two" => (&power_of_two, "http://pricing/items/7"),
            other => panic!("unknown variant {other}"),
        };
        // One thread: no idle worker spinning into the count.
        let one = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        run(&one, client, url, 1, n);
        std::process::exit(0);
    }
    for tasks in [1, 2] {
        let mut group = c.benchmark_group(format!("in_process/{tasks}_task"));
        group.bench_function("fixed_address", |b| {
            b.iter_custom(|iters| run(&rt, &fixed, "http://127.0.0.1:8081/items/7", tasks, iters));
        });
        group.bench_function("round_robin", |b| {
            b.iter_custom(|iters| run(&rt, &round_robin, "http://pricing/items/7", tasks, iters));
        });
        group.bench_function("power_of_two", |b| {
            b.iter_custom(|iters| run(&rt, &power_of_two, "http://pricing/items/7", tasks, iters));
        });
        group.finish();
    }
}

fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/items/{id}", axum::routing::get(|| async { "7" }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });
    let plain = reqwest::Client::new();
    let direct: &'static str = format!("http://{addr}/items/7").leak();
    let resolver =
        Resolver::new(Arc::new(StaticRegistry::new([("pricing", [addr.to_string()])])), ClientConfig::default());
    let breakers = chassis_breaker::Breakers::new(chassis_breaker::Config::default()).unwrap();
    let discovery = chassis_discovery::client(resolver, breakers).unwrap();
    let mut group = c.benchmark_group("loopback");
    // Plain reqwest, through reqwest-middleware with no middleware (nothing
    // added), so that both run in the same harness.
    let plain = ClientBuilder::new(plain).build();
    group.bench_function("plain_reqwest", |b| {
        b.iter_custom(|iters| run(&rt, &plain, direct, 1, iters));
    });
    group.bench_function("discovery_client", |b| {
        b.iter_custom(|iters| run(&rt, &discovery, "http://pricing/items/7", 1, iters));
    });
    group.finish();
}

criterion_group!(benches, in_process, loopback);
criterion_main!(benches);
