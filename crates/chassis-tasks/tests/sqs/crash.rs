//! Crash safety: a worker process killed with SIGKILL mid-run loses no task; a
//! second worker finishes; duplicates are counted and reported.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chassis_tasks::{Config, CreateOptions, Handlers, Outgoing, Producer, Queue, SqsQueue, Worker};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::moto::Moto;

const TASKS: u64 = 40;

#[allow(clippy::disallowed_methods)] // the test's own switches
fn child_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn spawn_worker(endpoint: &str, queue: &str, results: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash::a_worker_killed_mid_run_loses_no_task", "--nocapture", "--test-threads=1"])
        .env("CRASH_CHILD", "1")
        .env("CRASH_ENDPOINT", endpoint)
        .env("CRASH_QUEUE", queue)
        .env("CRASH_RESULTS", results)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The child: a worker whose task records its id in the results queue.
async fn child() {
    let (Some(endpoint), Some(queue), Some(results)) =
        (child_env("CRASH_ENDPOINT"), child_env("CRASH_QUEUE"), child_env("CRASH_RESULTS"))
    else {
        return;
    };
    let moto_client = crate::moto::client_for(&endpoint);
    let queue = SqsQueue::from_url(moto_client.clone(), queue);
    let results = SqsQueue::from_url(moto_client, results);
    let mut handlers = Handlers::new();
    handlers
        .task("work", move |task: serde_json::Value, _| {
            let results = results.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                results.send(Outgoing::new(task["id"].to_string())).await.map(|_| ())
            }
        })
        .unwrap();
    let mut config = Config::new("crash");
    config.visibility_timeout_secs = 2;
    config.wait_time_secs = 1;
    config.concurrency = 4;
    let worker = Worker::new(queue, handlers, config).unwrap();
    worker.run(CancellationToken::new()).await; // until killed
}

async fn collect(results: &SqsQueue, seen: &mut BTreeMap<u64, u32>) {
    loop {
        let batch = results.receive(10, Duration::from_millis(0), Duration::from_secs(60)).await.unwrap();
        if batch.is_empty() {
            return;
        }
        for m in &batch {
            *seen.entry(m.body.parse().unwrap()).or_default() += 1;
        }
        results.delete_batch(batch.into_iter().map(|m| m.receipt).collect()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_no_task() {
    if child_env("CRASH_CHILD").is_some() {
        return child().await;
    }
    let moto = Moto::start();
    let queue = moto.queue("crash", &CreateOptions::default()).await;
    let results = moto.queue("results", &CreateOptions::default()).await;
    let producer = Producer::new(queue.clone());
    let tasks = (0..TASKS).map(|id| producer.task("work", &json!({ "id": id }))).collect();
    assert!(producer.send_all(tasks).await.unwrap().iter().all(Result::is_ok));

    let mut seen = BTreeMap::new();
    let mut first = spawn_worker(&moto.endpoint, queue.url(), results.url());
    let started = Instant::now();
    while seen.len() < 8 && started.elapsed() < Duration::from_secs(60) {
        collect(&results, &mut seen).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().unwrap(); // SIGKILL: no shutdown, acks and in-flight tasks lost
    first.wait().unwrap();
    let done_before_kill = seen.len();

    let mut second = spawn_worker(&moto.endpoint, queue.url(), results.url());
    let started = Instant::now();
    while (seen.len() as u64) < TASKS && started.elapsed() < Duration::from_secs(120) {
        collect(&results, &mut seen).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();

    let missing: Vec<u64> = (0..TASKS).filter(|id| !seen.contains_key(id)).collect();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    println!("crash test: {done_before_kill} done before SIGKILL, {duplicates} duplicate run(s) after it");
    assert!(done_before_kill < TASKS as usize, "the kill came mid-run");
    assert!(missing.is_empty(), "lost tasks: {missing:?}");
}
