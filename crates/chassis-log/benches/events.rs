//! ns/event for chassis-log's `json` and `gcp` formats, next to
//! tracing-subscriber's JSON formatter (span fields as flat as it allows:
//! `flatten_event` plus the current span's fields) and tracing-stackdriver, all
//! writing to `io::sink` in the same run. One span with 3 fields is entered;
//! each event has 2 fields and a message.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chassis_log::{Config, Format, JsonLayer};
use criterion::{Criterion, criterion_group, criterion_main};
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

fn run(c: &mut Criterion, name: &str, subscriber: impl Subscriber + Send + Sync + 'static, level_debug: bool) {
    let _default = tracing::subscriber::set_default(subscriber);
    let span =
        tracing::info_span!("task", job_id = "0190c5e2-7b1a-7cc1-9f0e-3d2d6c9b5a10", task = "fetch", attempt = 2u32);
    let _entered = span.enter();
    c.bench_function(name, |b| {
        if level_debug {
            b.iter(|| tracing::debug!(rows = black_box(120u64), table = "invoices", "filtered out"));
        } else {
            b.iter(|| tracing::info!(rows = black_box(120u64), table = "invoices", "imported rows"));
        }
    });
}

fn ours(format: Format) -> impl Subscriber + Send + Sync + 'static {
    let config = Config::new("billing", "1.4.2").format(format);
    tracing_subscriber::registry().with(JsonLayer::new(&config, std::io::sink).unwrap())
}

fn bench(c: &mut Criterion) {
    run(c, "event/chassis_log_json", ours(Format::Json), false);
    run(c, "event/chassis_log_gcp", ours(Format::Gcp), false);
    let fmt_json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::sink);
    run(c, "event/tracing_subscriber_json", tracing_subscriber::registry().with(fmt_json), false);
    let stackdriver = tracing_stackdriver::layer().with_writer(std::io::sink);
    run(c, "event/tracing_stackdriver", tracing_subscriber::registry().with(stackdriver), false);

    let filtered = tracing_subscriber::registry()
        .with(JsonLayer::new(&Config::new("billing", "1.4.2").format(Format::Json), std::io::sink).unwrap())
        .with(EnvFilter::new("info"));
    run(c, "event/chassis_log_filtered_out", filtered, true);
}

criterion_group!(benches, bench);
criterion_main!(benches);
