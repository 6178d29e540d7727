//! The cost of the API's default middleware stack (request span and line,
//! request id, RED metrics, trace context, timeout, body limit, panic guard)
//! next to the bare axum router, in the same run: a trivial handler, with
//! chassis-log's JSON layer writing to `io::sink` and the Prometheus recorder
//! installed, so the logs and metrics are really produced.
//!
//! - `request in process`: `oneshot` on the router, no network — the CPU the
//!   stack adds.
//! - `request on loopback`: HTTP/1.1 with a keep-alive client on its own
//!   single-threaded runtime, the servers on another runtime's one worker
//!   thread (as a separate client process would be).
//! - the printed `p50` lines: the same loopback requests, the bare router and
//!   the stack **interleaved** one for one (so a change in the machine's load
//!   during the run moves both alike), 20 000 of each after a warm-up; the
//!   median and the 90th percentile of each, and the added latency at p50.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tracing_subscriber::prelude::*;

fn serve(rt: &tokio::runtime::Runtime, app: axum::Router) -> String {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/items/42")
    })
}

fn app() -> axum::Router {
    axum::Router::new().route("/items/{id}", axum::routing::get(|| async { "hi" }))
}

fn stacked() -> axum::Router {
    chassis_service::http::layer(app(), &chassis_service::http::Config::default())
}

/// The loopback client: its own runtime on the calling thread.
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    fn new() -> Self {
        Self {
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            http: reqwest::Client::new(),
        }
    }

    /// One GET, its body read; the time it took.
    fn get(&self, url: &str) -> Duration {
        self.rt.block_on(async {
            let start = Instant::now();
            let response = self.http.get(url).send().await.unwrap();
            black_box(response.bytes().await.unwrap());
            start.elapsed()
        })
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// The interleaved p50 comparison (see the file's doc).
fn interleaved(client: &Client, bare: &str, others: &[(&str, &str)]) {
    const N: usize = 20_000;
    for _ in 0..2_000 {
        client.get(bare);
        for (_, url) in others {
            client.get(url);
        }
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(N); 1 + others.len()];
    for _ in 0..N {
        times[0].push(client.get(bare));
        for (i, (_, url)) in others.iter().enumerate() {
            times[i + 1].push(client.get(url));
        }
    }
    for t in &mut times {
        t.sort_unstable();
    }
    let base = percentile(&times[0], 0.5);
    println!("p50 bare axum router: {base:.1} µs (p90 {:.1} µs)", percentile(&times[0], 0.9));
    for (i, (name, _)) in others.iter().enumerate() {
        let p50 = percentile(&times[i + 1], 0.5);
        println!(
            "p50 {name}: {p50:.1} µs (p90 {:.1} µs), +{:.1} µs = +{:.1}% at p50",
            percentile(&times[i + 1], 0.9),
            p50 - base,
            (p50 / base - 1.0) * 100.0
        );
    }
}

fn bench(c: &mut Criterion) {
    let config = chassis_log::Config::new("bench", "1.0.0").format(chassis_log::Format::Json);
    let layer = chassis_log::JsonLayer::new(&config, std::io::sink).unwrap();
    tracing_subscriber::registry().with(layer).init();
    let _recorder = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().unwrap();

    // In process, without the network: what the stack itself costs.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let oneshot = |router: &axum::Router| {
        let request = axum::http::Request::get("/items/42").body(axum::body::Body::empty()).unwrap();
        rt.block_on(async {
            let response = tower::ServiceExt::oneshot(router.clone(), request).await.unwrap();
            black_box(axum::body::to_bytes(response.into_body(), 1024).await.unwrap());
        });
    };
    // `with_state` as `axum::serve` does once: a router without it turns its
    // handlers into routes (cloning every layer) on every request.
    let (bare_router, stacked_router) = (app().with_state(()), stacked().with_state(()));
    // `STACK_COUNT=<bare|stack>:<n>`: only n in-process requests, then exit,
    // for an instruction count with valgrind's callgrind (BENCHMARKS.md).
    #[allow(clippy::disallowed_methods)] // a bench switch, not a setting
    if let Ok(spec) = std::env::var("STACK_COUNT") {
        let (variant, n) = spec.split_once(':').expect("STACK_COUNT=<bare|stack>:<n>");
        let router = if variant == "bare" { &bare_router } else { &stacked_router };
        for _ in 0..n.parse::<u64>().expect("a count") {
            oneshot(router);
        }
        std::process::exit(0);
    }
    let mut group = c.benchmark_group("request in process");
    group.bench_function("bare axum router", |b| b.iter(|| oneshot(&bare_router)));
    group.bench_function("with the chassis stack", |b| b.iter(|| oneshot(&stacked_router)));
    group.finish();

    let servers = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let bare = serve(&servers, app());
    let stack = serve(&servers, stacked());
    let mut config = chassis_service::http::Config::default();
    config.request_timeout_ms = 0;
    let no_timeout = serve(&servers, chassis_service::http::layer(app(), &config));
    config.log_requests = false;
    let no_timeout_no_line = serve(&servers, chassis_service::http::layer(app(), &config));
    let client = Client::new();

    let mut group = c.benchmark_group("request on loopback");
    group.bench_function("bare axum router", |b| b.iter(|| client.get(&bare)));
    group.bench_function("with the chassis stack", |b| b.iter(|| client.get(&stack)));
    group.finish();

    interleaved(
        &client,
        &bare,
        &[
            ("with the chassis stack", &stack),
            ("with the stack, no timeout", &no_timeout),
            ("with the stack, no timeout, no request line", &no_timeout_no_line),
        ],
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
