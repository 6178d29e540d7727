//! What trace-context propagation costs the worker: no-op tasks on the memory
//! backend with chassis-log's JSON layer installed (writing to `io::sink`), so
//! the task span is live and its trace fields are rendered. `untraced`: the
//! messages carry no `traceparent` (each task span starts a trace of its own);
//! `traced`: each carries the producer's `traceparent`, parsed by the worker
//! and continued as the task span's parent — the whole propagation path.
//!
//! `task_span/*` isolates the per-task cost: creating the task span alone
//! (with a fixed `traceparent`), and as the worker creates it with its trace
//! context started (a new root, or continuing a parsed `traceparent`), next
//! to the time one task takes in the worker.
//!
//! The printed `interleaved` lines: `untraced` and `traced` batches of 10 000
//! tasks run alternately in one process (the order swapped every pair, ABBA),
//! 40 pairs after a warm-up pair: each variant's median throughput, and the
//! median and spread of traced time ÷ untraced time within a pair. The
//! worker's throughput on this machine jumps between two levels (about 120 k
//! and 220 k tasks/s) whatever the variant; a pair's two batches run back to
//! back, so the ratio within a pair is what compares like with like.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::cast_precision_loss)]

#[path = "support/noop.rs"]
mod noop;

use std::hint::black_box;
use std::time::Duration;

use chassis_tasks::MemoryQueue;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

const BATCH: u64 = 50_000;
/// The batch and number of pairs of the interleaved comparison.
const PAIR_BATCH: u64 = 10_000;
const PAIRS: usize = 40;

/// Sends `n` no-op tasks (inside a traced span when `traced`), then runs a
/// worker until all are done; the time from its start to the last completion.
async fn run(traced: bool, n: u64) -> Duration {
    let memory = send(traced, n).await;
    noop::run_noops(memory, n).await
}

/// Sends `n` no-op tasks to a new memory queue, inside a traced span when `traced`.
async fn send(traced: bool, n: u64) -> MemoryQueue {
    let memory = MemoryQueue::new("bench");
    let send = noop::send_noops(memory.clone(), n);
    if traced {
        let span = tracing::info_span!("request", traceparent = tracing::field::Empty);
        chassis_trace::start(&span, None);
        send.instrument(span).await;
    } else {
        send.await;
    }
    memory
}

/// The worker's task span (`worker/run.rs`), its trace fields given at its
/// creation as the worker gives them.
fn task_span(traceparent: &str, parent_span_id: Option<&str>) -> tracing::Span {
    tracing::error_span!(
        target: "chassis::task",
        "task",
        task = "noop",
        exec_id = "0b4f7d1e-8c1a-4f7e-9a53-2c1d6f0e9b1a",
        attempt = 1u32,
        job_id = tracing::field::Empty,
        traceparent,
        trace_parent_span_id = parent_span_id,
    )
}

/// The task span with its trace as the worker starts it: a new trace, or
/// the child of `sent` (a `traceparent` attribute) parsed and continued.
fn traced_task_span(sent: Option<&str>) -> tracing::Span {
    let parent = sent.and_then(|sent| chassis_trace::TraceContext::parse(sent, None));
    let context = chassis_trace::TraceContext::next(parent.as_ref());
    let parent_header = parent.as_ref().map(chassis_trace::TraceContext::header);
    let span = task_span(context.header().as_str(), parent_header.as_ref().map(chassis_trace::Traceparent::span_id));
    chassis_trace::start_recorded(&span, parent.as_ref(), context);
    span
}

fn bench(c: &mut Criterion) {
    let log = chassis_log::Config::new("bench", "1.0.0").format(chassis_log::Format::Json);
    tracing_subscriber::registry().with(chassis_log::JsonLayer::new(&log, std::io::sink).unwrap()).init();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // `TRACE_COUNT=<traced|untraced>[-send]:<n>`: send and run only n tasks
    // (with `-send`: only send them), then exit, for an instruction count with
    // valgrind's callgrind (BENCHMARKS.md), which the machine's load does not
    // move; the worker's share is the difference. On one thread: with the
    // bench's two, how often they park and how they share the heap moved the
    // count by ±500 instructions per task from round to round.
    #[allow(clippy::disallowed_methods)] // a bench switch, not a setting
    if let Ok(spec) = std::env::var("TRACE_COUNT") {
        let (variant, n) = spec.split_once(':').expect("TRACE_COUNT=<traced|untraced>[-send]:<n>");
        let (traced, n) = (variant.starts_with("traced"), n.parse().expect("a count"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        if variant.ends_with("-send") {
            rt.block_on(send(traced, n));
        } else {
            rt.block_on(run(traced, n));
        }
        std::process::exit(0);
    }

    let mut group = c.benchmark_group("worker_trace");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    for (name, traced) in [("untraced", false), ("traced", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| rt.block_on(run(traced, BATCH)).mul_f64(iters as f64 / BATCH as f64));
        });
    }
    group.finish();

    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut group = c.benchmark_group("task_span");
    let root = chassis_trace::TraceContext::root().header();
    group.bench_function("span only", |b| b.iter(|| black_box(task_span(black_box(root.as_str()), None))));
    group.bench_function("span + new trace", |b| b.iter(|| black_box(traced_task_span(None))));
    group.bench_function("span + parsed traceparent continued", |b| {
        b.iter(|| black_box(traced_task_span(Some(black_box(sent)))));
    });
    group.finish();

    interleaved(&rt);
}

/// The interleaved comparison (see the file's doc).
fn interleaved(rt: &tokio::runtime::Runtime) {
    let rate = |time: Duration| PAIR_BATCH as f64 / time.as_secs_f64() / 1000.0;
    rt.block_on(run(false, PAIR_BATCH));
    rt.block_on(run(true, PAIR_BATCH));
    let (mut untraced, mut traced, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..PAIRS {
        let order = if pair % 2 == 0 { [false, true] } else { [true, false] };
        let mut times = [Duration::ZERO; 2];
        for variant in order {
            times[usize::from(variant)] = rt.block_on(run(variant, PAIR_BATCH));
        }
        let [u, t] = times;
        println!(
            "interleaved pair {:2}: untraced {:6.1} k tasks/s, traced {:6.1} k, traced ÷ untraced time {:.3}",
            pair + 1,
            rate(u),
            rate(t),
            t.as_secs_f64() / u.as_secs_f64()
        );
        untraced.push(rate(u));
        traced.push(rate(t));
        ratios.push(t.as_secs_f64() / u.as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0
    };
    let (lo, hi) = (ratios.iter().copied().fold(f64::INFINITY, f64::min), ratios.iter().copied().fold(0.0, f64::max));
    println!(
        "interleaved: untraced median {:.1} k tasks/s, traced median {:.1} k; traced ÷ untraced time per pair: median {:.3}, {lo:.3}–{hi:.3}",
        median(&mut untraced),
        median(&mut traced),
        median(&mut ratios),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
