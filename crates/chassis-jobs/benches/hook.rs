//! The price of job tracking: a worker running one job's no-op tasks from the
//! memory queue, with the `JobHook` on a SQLite job store (a file, as the
//! quickstart's default) — every task's start and end is a write — next to the
//! same worker without the hook.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chassis_jobs::{JobHook, Jobs, NewJob, SqlStore, Status};
use chassis_tasks::{CancellationToken, Config, Handlers, MemoryQueue, Producer, Worker};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

const TASKS: u64 = 2_000;

/// Sends a job of `TASKS` no-op tasks, runs a worker (with the hook if
/// `jobs` is given) until the job succeeds or the queue is empty; the time.
async fn run(jobs: Option<&Jobs>) -> Duration {
    let queue = MemoryQueue::new("bench");
    let producer = Producer::new(queue.clone());
    let tasks = (0..TASKS).map(|n| producer.task("noop", &n)).collect();
    let job = match jobs {
        Some(jobs) => Some(jobs.start_with_tasks(&producer, NewJob::new("bench", json!({})), tasks).await.unwrap()),
        None => {
            producer.send_all(tasks).await.unwrap();
            None
        }
    };
    let mut handlers = Handlers::new();
    handlers.task("noop", |_: u64, _| std::future::ready(())).unwrap();
    let mut config = Config::new("bench");
    config.wait_time_secs = 1;
    let mut worker = Worker::new(queue.clone(), handlers, config).unwrap();
    if let Some(jobs) = jobs {
        worker = worker.hook(JobHook::new(jobs.clone()));
    }
    let stop = CancellationToken::new();
    let started = Instant::now();
    let handle = tokio::spawn(worker.run(stop.clone()));
    loop {
        let done = match (jobs, &job) {
            (Some(jobs), Some(job)) => jobs.get(job.id).await.unwrap().status == Status::Succeeded,
            _ => {
                use chassis_tasks::Queue as _;
                let a = queue.attributes().await.unwrap();
                a.visible + a.in_flight == 0
            }
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    handle.await.unwrap();
    elapsed
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
    let jobs = rt.block_on(async { Jobs::new(SqlStore::connect(&url, 5, "bench_").await.unwrap()) });

    let mut group = c.benchmark_group("job_hook");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    for (name, jobs) in [("no_hook", None), ("sqlite_hook", Some(&jobs))] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let elapsed = rt.block_on(run(jobs));
                elapsed.mul_f64(iters as f64 / TASKS as f64)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
