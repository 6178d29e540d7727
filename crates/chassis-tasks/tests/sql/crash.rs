//! Crash tests of the durable queues: 1 000 tasks, worker processes killed
//! with SIGKILL at random moments five times, then one left to finish. No task
//! may be lost; duplicates (a task run again after its worker died before its
//! delete) are counted and printed (`--nocapture`).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chassis_tasks::{CancellationToken, Config, Handlers, Outgoing, Producer, Queue, Worker};
use serde_json::json;

const TASKS: u64 = 1_000;
const KILLS: usize = 5;

#[allow(clippy::disallowed_methods)] // the test's own switches
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn spawn_child(test: &str, vars: &[(&str, &str)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", test, "--nocapture", "--test-threads=1"]).stdout(Stdio::null()).stderr(Stdio::null());
    for (key, value) in vars {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

/// A random pause of 300 to 1 500 ms (from a UUID's random bits).
fn random_pause() -> Duration {
    Duration::from_millis(300 + (uuid::Uuid::new_v4().as_u128() % 1_200) as u64)
}

/// The child: a worker whose task records its id in the `results` queue.
async fn run_child<Q: Queue + Clone>(queue: Q) {
    let results = queue.sibling("results").await.unwrap();
    let mut handlers = Handlers::new();
    handlers
        .task("work", move |task: serde_json::Value, _| {
            let results = results.clone();
            async move {
                // 1 000 × 40 ms ÷ 8 = 5 s of work: the five kills land mid-run.
                tokio::time::sleep(Duration::from_millis(40)).await;
                results.send(Outgoing::new(task["id"].to_string())).await.map(|_| ())
            }
        })
        .unwrap();
    let mut config = Config::new("work");
    config.visibility_timeout_secs = 2;
    config.wait_time_secs = 1;
    config.concurrency = 8;
    Worker::new(queue, handlers, config).unwrap().run(CancellationToken::new()).await; // until killed
}

async fn collect<Q: Queue>(results: &Q, seen: &mut BTreeMap<u64, u32>) {
    loop {
        let batch = results.receive(10, Duration::ZERO, Duration::from_secs(60)).await.unwrap();
        if batch.is_empty() {
            return;
        }
        for m in &batch {
            *seen.entry(m.body.parse().unwrap()).or_default() += 1;
        }
        results.delete_batch(batch.into_iter().map(|m| m.receipt).collect()).await.unwrap();
    }
}

/// Sends the tasks, kills `KILLS` workers at random moments, lets one more
/// finish; returns (done before the last worker, duplicates).
async fn crash_and_count<Q: Queue + Clone>(backend: &str, queue: &Q, spawn: impl Fn() -> Child) {
    let producer = Producer::new(queue.clone());
    let tasks = (0..TASKS).map(|id| producer.task("work", &json!({ "id": id }))).collect();
    assert!(producer.send_all(tasks).await.unwrap().iter().all(Result::is_ok));
    let results = queue.sibling("results").await.unwrap();
    let mut seen = BTreeMap::new();
    for _ in 0..KILLS {
        let mut child = spawn();
        tokio::time::sleep(random_pause()).await;
        child.kill().unwrap(); // SIGKILL: no shutdown; in-flight tasks and pending deletes lost
        child.wait().unwrap();
        collect(&results, &mut seen).await;
    }
    let done_before_last = seen.len();
    let mut last = spawn();
    let started = Instant::now();
    while (seen.len() as u64) < TASKS && started.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        collect(&results, &mut seen).await;
    }
    last.kill().unwrap();
    last.wait().unwrap();
    let missing: Vec<u64> = (0..TASKS).filter(|id| !seen.contains_key(id)).collect();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    println!(
        "crash test ({backend}): {TASKS} tasks, {KILLS} SIGKILLs at random moments, {done_before_last} done before \
         the last worker, {} lost, {duplicates} duplicate run(s)",
        missing.len()
    );
    assert!(done_before_last < TASKS as usize, "the kills came mid-run");
    assert!(missing.is_empty(), "lost tasks: {missing:?}");
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_workers_killed_at_random_lose_no_task() {
    const TEST: &str = "crash::sqlite_workers_killed_at_random_lose_no_task";
    if let Some(path) = env("CRASH_SQLITE_PATH") {
        return run_child(chassis_tasks::SqliteQueue::open(path, "work").await.unwrap()).await;
    }
    let db = crate::support::sqlite("work").await;
    let path = db.path.display().to_string();
    crash_and_count("sqlite", &db.queue, || spawn_child(TEST, &[("CRASH_SQLITE_PATH", &path)])).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workers_killed_at_random_lose_no_task() {
    use chassis_tasks::PostgresQueue;
    const TEST: &str = "crash::postgres_workers_killed_at_random_lose_no_task";
    if let Some(prefix) = env("CRASH_POSTGRES_PREFIX") {
        let options = PostgresQueue::options().table_prefix(prefix);
        let queue = PostgresQueue::connect(&crate::support::postgres_url(), 4, "work", options).await.unwrap();
        return run_child(queue).await;
    }
    let db = crate::support::postgres("work").await;
    let prefix = db.prefix.clone();
    crash_and_count("postgres", &db.queue, || spawn_child(TEST, &[("CRASH_POSTGRES_PREFIX", &prefix)])).await;
    db.cleanup().await;
}
