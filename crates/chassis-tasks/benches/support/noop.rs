//! The no-op task harness the worker benches share (`#[path]`-included: a
//! file under `benches/support/` is not a bench target of its own).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chassis_tasks::{Config, Handlers, Producer, Queue, Worker};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The worker config of the benches: the defaults, with a 1 s long poll.
pub(crate) fn config() -> Config {
    let mut config = Config::new("bench");
    config.wait_time_secs = 1;
    config
}

/// Sends `n` `noop` tasks to `queue`, in batches (of 1 000 per `send_all`).
pub(crate) async fn send_noops<Q: Queue + Clone>(queue: Q, n: u64) {
    let producer = Producer::new(queue);
    let mut sent = 0;
    while sent < n {
        let chunk = (n - sent).min(1000);
        let tasks = (0..chunk).map(|i| producer.task("noop", &json!({ "i": sent + i }))).collect();
        producer.send_all(tasks).await.unwrap();
        sent += chunk;
    }
}

/// Runs a worker with [`config`] on `queue`, already holding `n` `noop`
/// tasks, until all are done; the time from its start to the last completion.
pub(crate) async fn run_noops<Q: Queue + Clone>(queue: Q, n: u64) -> Duration {
    let done = Arc::new(AtomicU64::new(0));
    let all_done = Arc::new(Notify::new());
    let mut handlers = Handlers::new();
    let (d, a) = (done.clone(), all_done.clone());
    handlers
        .task("noop", move |_: serde_json::Value, _| {
            if d.fetch_add(1, Ordering::Relaxed) + 1 == n {
                a.notify_one();
            }
            std::future::ready(())
        })
        .unwrap();
    let worker = Worker::new(queue, handlers, config()).unwrap();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let handle = tokio::spawn(worker.run(stop.clone()));
    all_done.notified().await;
    let elapsed = started.elapsed();
    stop.cancel();
    handle.await.unwrap();
    elapsed
}
