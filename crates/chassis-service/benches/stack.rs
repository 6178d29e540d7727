//! The cost of the API's default middleware stack (request span and line,
//! request id, RED metrics, trace context, timeout, body limit, panic guard)
//! next to the bare axum router, in the same run: a trivial handler over
//! loopback HTTP/1.1 with a keep-alive client, with chassis-log's JSON layer
//! writing to `io::sink` and the Prometheus recorder installed, so the logs and
//! metrics are really produced.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

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

fn bench(c: &mut Criterion) {
    let config = chassis_log::Config::new("bench", "1.0.0").format(chassis_log::Format::Json);
    let layer = chassis_log::JsonLayer::new(&config, std::io::sink).unwrap();
    tracing_subscriber::registry().with(layer).init();
    let _recorder = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = || axum::Router::new().route("/items/{id}", axum::routing::get(|| async { "hi" }));
    let bare = serve(&rt, app());
    let stacked = serve(&rt, chassis_service::http::layer(app(), &chassis_service::http::Config::default()));
    let mut config = chassis_service::http::Config::default();
    config.request_timeout_ms = 0;
    let no_timeout = serve(&rt, chassis_service::http::layer(app(), &config));
    config.log_requests = false;
    let no_timeout_no_line = serve(&rt, chassis_service::http::layer(app(), &config));
    let client = reqwest::Client::new();
    let get = |url: &str| {
        rt.block_on(async {
            let response = client.get(url).send().await.unwrap();
            black_box(response.bytes().await.unwrap());
        });
    };

    // In process, without the network: what the stack itself costs.
    let oneshot = |router: &axum::Router| {
        let request = axum::http::Request::get("/items/42").body(axum::body::Body::empty()).unwrap();
        rt.block_on(async {
            let response = tower::ServiceExt::oneshot(router.clone(), request).await.unwrap();
            black_box(axum::body::to_bytes(response.into_body(), 1024).await.unwrap());
        });
    };
    let (bare_router, stacked_router) =
        (app(), chassis_service::http::layer(app(), &chassis_service::http::Config::default()));
    let mut group = c.benchmark_group("request in process");
    group.bench_function("bare axum router", |b| b.iter(|| oneshot(&bare_router)));
    group.bench_function("with the chassis stack", |b| b.iter(|| oneshot(&stacked_router)));
    group.finish();

    let mut group = c.benchmark_group("request on loopback");
    group.bench_function("bare axum router", |b| b.iter(|| get(&bare)));
    group.bench_function("with the chassis stack", |b| b.iter(|| get(&stacked)));
    group.bench_function("with the stack, no timeout", |b| b.iter(|| get(&no_timeout)));
    group.bench_function("with the stack, no timeout, no request line", |b| b.iter(|| get(&no_timeout_no_line)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
