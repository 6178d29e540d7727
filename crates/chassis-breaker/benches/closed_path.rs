//! The closed-path overhead per call — admission, then reporting a success —
//! for chassis-breaker, failsafe and recloser in the same run, with 1 thread
//! and with 2 threads sharing one breaker (time per call per thread).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chassis_breaker::{Breaker, Config};
use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;

/// Runs `op` `iters` times on each of `threads` threads at once; the wall time
/// is the time per call per thread.
fn parallel(threads: usize, iters: u64, op: &(impl Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..iters {
                    op();
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let ours = Breaker::new("bench", Config::default()).unwrap();
    let chassis = || {
        if let Ok(permit) = ours.acquire() {
            black_box(1u8);
            permit.success();
        }
    };
    let failsafe_breaker = failsafe::Config::new().build();
    let failsafe = || {
        let _ = black_box(failsafe_breaker.call(|| Ok::<_, ()>(black_box(1u8))));
    };
    let recloser_breaker = recloser::Recloser::default();
    let recloser = || {
        let _ = black_box(recloser_breaker.call(|| Ok::<_, ()>(black_box(1u8))));
    };

    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("closed_path/{threads}_thread"));
        group.bench_function("chassis_breaker", |b| b.iter_custom(|iters| parallel(threads, iters, &chassis)));
        group.bench_function("failsafe", |b| b.iter_custom(|iters| parallel(threads, iters, &failsafe)));
        group.bench_function("recloser", |b| b.iter_custom(|iters| parallel(threads, iters, &recloser)));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
