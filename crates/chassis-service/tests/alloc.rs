//! Allocations per request of the API's middleware stack, next to the bare
//! router, in process (`oneshot`), with chassis-log's JSON layer and the
//! Prometheus recorder installed so the line and metrics are produced. Counted
//! with an instrumented global allocator; allocation counts do not depend on
//! the machine's speed, so this bounds them without timing anything.
#![allow(missing_docs, clippy::unwrap_used, clippy::cast_precision_loss, clippy::print_stdout)]

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tracing_subscriber::prelude::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const REQUESTS: usize = 500;

fn app() -> axum::Router {
    axum::Router::new().route("/items/{id}", axum::routing::get(|| async { "hi" }))
}

/// The fewest allocations per request over three rounds (the allocator counts
/// every thread; the test harness has its own).
fn allocations_per_request(rt: &tokio::runtime::Runtime, router: &axum::Router, traceparent: bool) -> f64 {
    let once = || {
        let mut request = axum::http::Request::get("/items/42");
        if traceparent {
            request = request.header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        }
        let request = request.body(axum::body::Body::empty()).unwrap();
        rt.block_on(async {
            let response = tower::ServiceExt::oneshot(router.clone(), request).await.unwrap();
            std::hint::black_box(axum::body::to_bytes(response.into_body(), 1024).await.unwrap());
        });
    };
    for _ in 0..REQUESTS {
        once();
    }
    (0..3)
        .map(|_| {
            let region = Region::new(GLOBAL);
            for _ in 0..REQUESTS {
                once();
            }
            region.change().allocations
        })
        .min()
        .unwrap() as f64
        / REQUESTS as f64
}

#[test]
fn the_stack_adds_a_bounded_number_of_allocations_per_request() {
    let config = chassis_log::Config::new("svc", "1.0.0").format(chassis_log::Format::Json);
    let layer = chassis_log::JsonLayer::new(&config, std::io::sink).unwrap();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let _recorder = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stacked = chassis_service::http::layer(app(), &chassis_service::http::Config::default());

    let bare = allocations_per_request(&rt, &app(), false);
    let stack = allocations_per_request(&rt, &stacked, false);
    let traced = allocations_per_request(&rt, &stacked, true);
    println!(
        "allocations per request: bare router {bare}, with the stack {stack}, with a caller's traceparent {traced}"
    );
    assert!(stack - bare <= ADDED, "the stack adds {} allocations per request (at most {ADDED})", stack - bare);
    assert!(traced - bare <= ADDED, "with a traceparent: {} (at most {ADDED})", traced - bare);
}

/// The bound: a little over what the stack adds today (20 allocations per
/// request, 23 with a caller's `traceparent`, over the bare router's 16; see
/// BENCHMARKS.md), so that a change that adds allocations to every request
/// fails here.
const ADDED: f64 = 26.0;
