//! Tasks drive jobs: two workers, one queue, one store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chassis_jobs::{JobHook, Jobs, NewJob, Status};
use chassis_tasks::{CancellationToken, Config, Handlers, MemoryQueue, Producer, TaskContext, TaskPolicy, Worker};
use serde_json::json;

use crate::for_each_store;

fn handlers(runs: &Arc<AtomicUsize>) -> Handlers {
    let mut handlers = Handlers::new();
    let seen = runs.clone();
    handlers
        .task_with("step", TaskPolicy::default().max_failures(1), move |n: u32, _ctx: TaskContext| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move { if n == 9_999 { Err("step 9999 always fails".to_owned()) } else { Ok(()) } }
        })
        .unwrap();
    handlers
}

/// Two workers with the job hook on one queue until `until` holds or 60 s pass.
async fn run_workers(jobs: &Jobs, queue: &MemoryQueue, runs: &Arc<AtomicUsize>, until: impl AsyncFn() -> bool) {
    let stop = CancellationToken::new();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let mut config = Config::new("jobs");
        config.wait_time_secs = 1;
        config.concurrency = 8;
        let worker = Worker::new(queue.clone(), handlers(runs), config).unwrap().hook(JobHook::new(jobs.clone()));
        handles.push(tokio::spawn(worker.run(stop.clone())));
    }
    let started = Instant::now();
    while !until().await {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for the job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for handle in handles {
        handle.await.unwrap();
    }
}

async fn two_workers_finish_a_fan_out_job_without_losing_a_count(jobs: &Jobs) {
    let queue = MemoryQueue::new("jobs");
    let producer = Producer::new(queue.clone());
    let tasks = (0..100u32).map(|n| producer.task("step", &n)).collect();
    let job = jobs.start_with_tasks(&producer, NewJob::new("import", json!({"steps": 100})), tasks).await.unwrap();
    assert_eq!((job.status, job.tasks_total), (Status::Pending, 100));
    let runs = Arc::new(AtomicUsize::new(0));
    let id = job.id;
    run_workers(jobs, &queue, &runs, async || jobs.get(id).await.unwrap().status.is_terminal()).await;
    let job = jobs.get(id).await.unwrap();
    assert_eq!(job.status, Status::Succeeded);
    assert_eq!(job.tasks_done, 100, "no lost update");
    assert_eq!(job.attempts as usize, runs.load(Ordering::SeqCst));
    assert_eq!(job.progress(), Some(1.0));
    assert!(job.started_ms.is_some() && job.finished_ms >= job.started_ms);
}
for_each_store!(
    memory_fan_out,
    sqlite_fan_out,
    postgres_fan_out,
    two_workers_finish_a_fan_out_job_without_losing_a_count
);

async fn a_task_that_fails_for_good_fails_the_job(jobs: &Jobs) {
    let queue = MemoryQueue::new("jobs");
    let producer = Producer::new(queue.clone());
    let tasks = vec![producer.task("step", &1u32), producer.task("step", &9_999u32), producer.task("step", &2u32)];
    let job = jobs.start_with_tasks(&producer, NewJob::new("import", json!({})), tasks).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let id = job.id;
    run_workers(jobs, &queue, &runs, async || jobs.get(id).await.unwrap().status.is_terminal()).await;
    let job = jobs.get(id).await.unwrap();
    assert_eq!(job.status, Status::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.task.as_deref(), Some("step"));
    assert!(error.message.contains("step 9999 always fails"), "{}", error.message);
}
for_each_store!(memory_task_fails, sqlite_task_fails, postgres_task_fails, a_task_that_fails_for_good_fails_the_job);

async fn tasks_of_a_cancelled_job_are_skipped(jobs: &Jobs) {
    let queue = MemoryQueue::new("jobs");
    let producer = Producer::new(queue.clone());
    let tasks = (0..5u32).map(|n| producer.task("step", &n)).collect();
    let job = jobs.start_with_tasks(&producer, NewJob::new("import", json!({})), tasks).await.unwrap();
    jobs.cancel(job.id).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let q = queue.clone();
    run_workers(jobs, &queue, &runs, async || {
        use chassis_tasks::Queue as _;
        let a = q.attributes().await.unwrap();
        a.visible + a.in_flight == 0
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "no task of the cancelled job ran");
    let job = jobs.get(job.id).await.unwrap();
    assert_eq!((job.status, job.tasks_done), (Status::Cancelled, 0));
}
for_each_store!(memory_cancelled, sqlite_cancelled, postgres_cancelled, tasks_of_a_cancelled_job_are_skipped);
