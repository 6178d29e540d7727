//! A queue outage, injected by a loopback proxy in front of moto: the worker
//! reports not-ready while it lasts and ready again soon after it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chassis_tasks::{Config, CreateOptions, Handlers, Producer, SqsQueue, Worker};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::moto::{Moto, client_for};
use crate::proxy::Proxy;

/// Polls `done` every 20 ms until it holds (`Some(elapsed)`) or `limit` passes.
async fn within(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_returns_soon_after_a_queue_outage_ends() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint).await;
    let q = SqsQueue::create(client_for(&proxy.endpoint), "outage", &CreateOptions::default()).await.unwrap();
    // Tasks are sent straight to moto, around the proxy.
    let producer = Producer::new(moto.queue("outage", &CreateOptions::default()).await);
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let mut handlers = Handlers::new();
    handlers
        .task("count", move |_: serde_json::Value, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .unwrap();
    let mut config = Config::new("tasks");
    config.wait_time_secs = 1;
    config.concurrency = 4;
    config.shutdown_deadline_secs = 5;
    let worker = Worker::new(q, handlers, config).unwrap();
    let health = worker.health();
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    producer.send(producer.task("count", &json!({}))).await.unwrap();
    assert!(within(Duration::from_secs(15), || runs.load(Ordering::SeqCst) == 1).await.is_some(), "first task ran");
    assert!(health.is_ready());

    proxy.set_up(false);
    let lost = within(Duration::from_secs(15), || !health.is_ready()).await;
    assert!(lost.is_some(), "the worker still reports ready 15 s into the outage");
    let error = health.last_error();
    assert!(error.is_some(), "not ready without an error");
    println!("not ready {:?} into the outage: {}", lost.unwrap(), error.unwrap());
    // Long enough for an uncapped backoff to grow past 6 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!health.is_ready(), "ready while the queue is still down");

    proxy.set_up(true);
    let recovered = within(Duration::from_secs(30), || health.is_ready()).await;
    println!("ready again {recovered:?} after the queue came back");
    let recovered = recovered.expect("the worker is not ready 30 s after the queue came back");
    // A generous bound (the machine is shared); the old backoff (6.4 s and growing) misses it.
    assert!(recovered < Duration::from_secs(5), "ready again only {recovered:?} after the queue came back");
    assert!(health.last_error().is_none());

    producer.send(producer.task("count", &json!({}))).await.unwrap();
    let ran = within(Duration::from_secs(15), || runs.load(Ordering::SeqCst) == 2).await;
    assert!(ran.is_some(), "a task sent after the outage did not run");
    stop.cancel();
    running.await.unwrap();
}
