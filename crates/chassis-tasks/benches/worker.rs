//! Throughput of the whole worker (receive → decode → handler → ack) on the
//! memory backend with a no-op handler; and latency hiding: the same with every
//! queue call taking 20 ms (a real SQS round trip), as a ratio of the best a
//! worker with P pollers can do (P × 10 messages per 20 ms).
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

#[path = "support/noop.rs"]
mod noop;

use std::time::Duration;

use chassis_tasks::{EntryResult, MemoryQueue, Message, Outgoing, Queue, QueueAttributes, QueueError};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The memory queue with a fixed latency on every call.
#[derive(Clone)]
struct Slow {
    inner: MemoryQueue,
    latency: Duration,
}

impl Queue for Slow {
    async fn send(&self, m: Outgoing) -> Result<String, QueueError> {
        tokio::time::sleep(self.latency).await;
        self.inner.send(m).await
    }
    async fn send_batch(&self, m: Vec<Outgoing>) -> Result<Vec<EntryResult<String>>, QueueError> {
        tokio::time::sleep(self.latency).await;
        self.inner.send_batch(m).await
    }
    async fn receive(&self, max: usize, wait: Duration, vis: Duration) -> Result<Vec<Message>, QueueError> {
        tokio::time::sleep(self.latency).await;
        self.inner.receive(max, wait, vis).await
    }
    async fn delete_batch(&self, r: Vec<String>) -> Result<Vec<EntryResult<()>>, QueueError> {
        tokio::time::sleep(self.latency).await;
        self.inner.delete_batch(r).await
    }
    async fn change_visibility(&self, r: &str, t: Duration) -> Result<(), QueueError> {
        tokio::time::sleep(self.latency).await;
        self.inner.change_visibility(r, t).await
    }
    async fn attributes(&self) -> Result<QueueAttributes, QueueError> {
        self.inner.attributes().await
    }
}

/// Fills `memory` with `n` tasks, runs a worker on `queue` until all are done;
/// returns the time from start to the last completion.
async fn run<Q: Queue + Clone>(memory: &MemoryQueue, queue: Q, n: u64) -> Duration {
    noop::send_noops(memory.clone(), n).await;
    noop::run_noops(queue, n).await
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let mut group = c.benchmark_group("worker");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    // Each sample runs a fixed batch of tasks through a fresh worker (so start-up
    // is amortised) and scales the time to the iterations criterion asked for.
    const BATCH: u64 = 50_000;
    group.bench_function("memory_noop_tasks", |b| {
        b.iter_custom(|iters| {
            let elapsed = rt.block_on(async {
                let memory = MemoryQueue::new("bench");
                run(&memory, memory.clone(), BATCH).await
            });
            elapsed.mul_f64(iters as f64 / BATCH as f64)
        });
    });
    group.finish();

    // Latency hiding: one measured run, reported as a ratio of the limit.
    let latency = Duration::from_millis(20);
    let pollers = (noop::config().concurrency / 10).max(1) as f64;
    let limit = pollers * 10.0 / latency.as_secs_f64();
    let n = 4000;
    let elapsed = rt.block_on(async {
        let memory = MemoryQueue::new("slow");
        run(&memory, Slow { inner: memory.clone(), latency }, n).await
    });
    let throughput = n as f64 / elapsed.as_secs_f64();
    println!(
        "latency_hiding: {n} tasks, 20 ms per queue call, concurrency {}, {pollers} pollers: {throughput:.0} tasks/s \
         = {:.2} of the {limit:.0} tasks/s limit",
        noop::config().concurrency,
        throughput / limit
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
