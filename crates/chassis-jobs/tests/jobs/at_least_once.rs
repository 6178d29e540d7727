//! A job counts each of its tasks exactly once under at-least-once delivery:
//! lost deletes, duplicate messages, crashes between the hook and the delete,
//! a store that fails, and senders that stop half-way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chassis_jobs::{Error, Filter, Job, JobHook, JobStore, Jobs, NewJob, Page, Status, TaskEnd};
use chassis_tasks::{
    Backoff, BoxFuture, CancellationToken, Config, FaultyQueue, Handlers, MemoryQueue, Producer, Progression, Queue,
    TaskContext, TaskPolicy, Worker,
};
use serde_json::json;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::for_each_store;

type Q = FaultyQueue<MemoryQueue>;

fn config() -> Config {
    let mut config = Config::new("jobs");
    config.wait_time_secs = 1;
    config.visibility_timeout_secs = 1; // lost deletes come back within a second
    config.concurrency = 8;
    config.backoff = Backoff::new(Progression::None, Duration::from_secs(1), Duration::from_secs(1));
    config
}

/// `step` succeeds; `slow` waits for a permit from `gate`, then fails for good.
fn handlers(runs: &Arc<AtomicUsize>, gate: &Arc<Semaphore>) -> Handlers {
    let mut handlers = Handlers::new();
    let seen = runs.clone();
    handlers
        .task("step", move |_: u32, _ctx: TaskContext| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .unwrap();
    let gate = gate.clone();
    handlers
        .task_with("slow", TaskPolicy::default().max_failures(1), move |_: u32, _ctx: TaskContext| {
            let gate = gate.clone();
            async move {
                let _permit = gate.acquire().await;
                Err::<(), _>("the slow task failed")
            }
        })
        .unwrap();
    handlers
}

struct Workers {
    stop: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<chassis_tasks::Report>>,
}

impl Workers {
    fn start(n: usize, jobs: &Jobs, queue: &Q, runs: &Arc<AtomicUsize>, gate: &Arc<Semaphore>) -> Self {
        let stop = CancellationToken::new();
        let handles = (0..n)
            .map(|_| {
                let worker = Worker::new(queue.clone(), handlers(runs, gate), config())
                    .unwrap()
                    .hook(JobHook::new(jobs.clone()));
                tokio::spawn(worker.run(stop.clone()))
            })
            .collect();
        Self { stop, handles }
    }

    async fn stop(self) {
        self.stop.cancel();
        for handle in self.handles {
            handle.await.unwrap();
        }
    }
}

async fn wait_for(what: &str, until: impl AsyncFn() -> bool) {
    let started = Instant::now();
    while !until().await {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn settled(queue: &Q) -> bool {
    let a = queue.attributes().await.unwrap();
    a.visible + a.in_flight + a.delayed == 0
}

async fn a_task_run_twice_while_another_runs_counts_once(jobs: &Jobs) {
    // The input: `quick`'s first delete is lost, so it runs again
    // while `slow` still runs; then `slow` fails for good.
    let queue = FaultyQueue::new(MemoryQueue::new("jobs"));
    let producer = Producer::new(queue.clone());
    let tasks = vec![producer.task("step", &1u32), producer.task("slow", &2u32)];
    let job = jobs.start_with_tasks(&producer, NewJob::new("quick-and-slow", json!({})), tasks).await.unwrap();
    queue.lose_deletes(1);
    let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
    let workers = Workers::start(1, jobs, &queue, &runs, &gate);
    wait_for("quick to run twice and be deleted", async || {
        runs.load(Ordering::SeqCst) == 2 && queue.attributes().await.unwrap().in_flight == 1
    })
    .await;
    let now = jobs.get(job.id).await.unwrap();
    assert_eq!((now.status, now.tasks_done, now.tasks_total), (Status::Running, 1, 2), "{now:?}");
    gate.add_permits(1);
    wait_for("the job to end", async || jobs.get(job.id).await.unwrap().status.is_terminal()).await;
    workers.stop().await;
    let done = jobs.get(job.id).await.unwrap();
    assert_eq!((done.status, done.tasks_done), (Status::Failed, 1));
    let error = done.error.unwrap();
    assert_eq!((error.task.as_deref(), error.message.as_str()), (Some("slow"), "the slow task failed"));
    assert_eq!(queue.deletes_lost(), 1);
}
for_each_store!(
    memory_run_twice,
    sqlite_run_twice,
    postgres_run_twice,
    a_task_run_twice_while_another_runs_counts_once
);

async fn duplicate_messages_of_a_task_count_once(jobs: &Jobs) {
    let queue = FaultyQueue::new(MemoryQueue::new("jobs"));
    let producer = Producer::new(queue.clone());
    let first = producer.task("step", &1u32);
    let tasks = vec![first.clone(), producer.task("step", &2u32), producer.task("step", &3u32)];
    let job = jobs.start_with_tasks(&producer, NewJob::new("dup", json!({})), tasks).await.unwrap();
    // An SQS duplicate: the same execution, sent twice more.
    for _ in 0..2 {
        producer.send(first.clone().job(job.id.to_string(), "dup")).await.unwrap();
    }
    let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
    let workers = Workers::start(2, jobs, &queue, &runs, &gate);
    wait_for("every message", async || settled(&queue).await).await;
    workers.stop().await;
    assert_eq!(runs.load(Ordering::SeqCst), 5, "the handler runs each delivery");
    let done = jobs.get(job.id).await.unwrap();
    assert_eq!((done.status, done.tasks_done), (Status::Succeeded, 3));
}
for_each_store!(memory_duplicates, sqlite_duplicates, postgres_duplicates, duplicate_messages_of_a_task_count_once);

async fn a_crash_between_the_hook_and_the_delete_counts_once(jobs: &Jobs) {
    let queue = FaultyQueue::new(MemoryQueue::new("jobs"));
    let producer = Producer::new(queue.clone());
    let tasks = (0..5u32).map(|n| producer.task("step", &n)).collect();
    let job = jobs.start_with_tasks(&producer, NewJob::new("crash", json!({})), tasks).await.unwrap();
    // The first worker records every outcome, then "dies" before any delete lands.
    queue.lose_every_nth_delete(1);
    let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
    let first = Workers::start(1, jobs, &queue, &runs, &gate);
    wait_for("5 runs", async || runs.load(Ordering::SeqCst) >= 5).await;
    wait_for("the job to succeed", async || jobs.get(job.id).await.unwrap().status == Status::Succeeded).await;
    first.stop().await;
    assert_eq!(jobs.get(job.id).await.unwrap().tasks_done, 5);
    // A new process receives all 5 again.
    queue.lose_every_nth_delete(0);
    let second = Workers::start(1, jobs, &queue, &runs, &gate);
    wait_for("every message", async || settled(&queue).await).await;
    second.stop().await;
    assert!(runs.load(Ordering::SeqCst) >= 10, "each ran again");
    let done = jobs.get(job.id).await.unwrap();
    assert_eq!((done.status, done.tasks_done), (Status::Succeeded, 5));
}
for_each_store!(memory_crash, sqlite_crash, postgres_crash, a_crash_between_the_hook_and_the_delete_counts_once);

async fn two_workers_with_forced_redeliveries_count_exactly(jobs: &Jobs) {
    let queue = FaultyQueue::new(MemoryQueue::new("jobs"));
    let producer = Producer::new(queue.clone());
    let tasks = (0..200u32).map(|n| producer.task("step", &n)).collect();
    let job = jobs.start_with_tasks(&producer, NewJob::new("busy", json!({})), tasks).await.unwrap();
    queue.lose_every_nth_delete(10); // 10% of the finished tasks come back
    let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
    let workers = Workers::start(2, jobs, &queue, &runs, &gate);
    wait_for("every message", async || settled(&queue).await).await;
    workers.stop().await;
    assert!(queue.deletes_lost() >= 20, "{} redeliveries forced", queue.deletes_lost());
    assert_eq!(runs.load(Ordering::SeqCst) as u64, 200 + queue.deletes_lost());
    let done = jobs.get(job.id).await.unwrap();
    assert_eq!((done.status, done.tasks_done, done.tasks_sent), (Status::Succeeded, 200, 200));
}
for_each_store!(
    memory_redeliveries,
    sqlite_redeliveries,
    postgres_redeliveries,
    two_workers_with_forced_redeliveries_count_exactly
);

/// A store whose next `fail` recording writes fail, as an unreachable database would.
struct FailingStore {
    jobs: Jobs,
    fail: Arc<AtomicU32>,
}

impl JobStore for FailingStore {
    fn create(&self, job: NewJob) -> BoxFuture<chassis_jobs::Result<Job>> {
        self.jobs.store().create(job)
    }
    fn get(&self, id: Uuid) -> BoxFuture<chassis_jobs::Result<Job>> {
        self.jobs.store().get(id)
    }
    fn update(&self, job: Job) -> BoxFuture<chassis_jobs::Result<Job>> {
        self.jobs.store().update(job)
    }
    fn update_recording(
        &self,
        job: Job,
        exec_id: String,
        end: TaskEnd,
    ) -> BoxFuture<chassis_jobs::Result<Option<Job>>> {
        if self.fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Box::pin(async { Err(Error::Store("connection refused (injected)".into())) });
        }
        self.jobs.store().update_recording(job, exec_id, end)
    }
    fn list(&self, filter: Filter, cursor: Option<String>, limit: u32) -> BoxFuture<chassis_jobs::Result<Page>> {
        self.jobs.store().list(filter, cursor, limit)
    }
    fn delete(&self, id: Uuid) -> BoxFuture<chassis_jobs::Result<()>> {
        self.jobs.store().delete(id)
    }
    fn purge(&self, before_ms: i64) -> BoxFuture<chassis_jobs::Result<u64>> {
        self.jobs.store().purge(before_ms)
    }
}

async fn a_store_that_fails_in_the_hook_loses_no_count(jobs: &Jobs) {
    let fail = Arc::new(AtomicU32::new(0));
    let flaky = Jobs::new(FailingStore { jobs: jobs.clone(), fail: fail.clone() });
    let queue = FaultyQueue::new(MemoryQueue::new("jobs"));
    let producer = Producer::new(queue.clone());
    let tasks = (0..3u32).map(|n| producer.task("step", &n)).collect();
    let job = flaky.start_with_tasks(&producer, NewJob::new("outage", json!({})), tasks).await.unwrap();
    fail.store(10, Ordering::SeqCst); // more than the worker's own retries of one outcome
    let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
    let workers = Workers::start(1, &flaky, &queue, &runs, &gate);
    wait_for("every message", async || settled(&queue).await).await;
    workers.stop().await;
    assert!(runs.load(Ordering::SeqCst) > 3, "a task whose count was not recorded ran again");
    let done = jobs.get(job.id).await.unwrap();
    assert_eq!((done.status, done.tasks_done), (Status::Succeeded, 3));
}
for_each_store!(
    memory_store_fails,
    sqlite_store_fails,
    postgres_store_fails,
    a_store_that_fails_in_the_hook_loses_no_count
);

async fn a_send_that_fails_once_is_retried_with_the_same_executions(jobs: &Jobs) {
    let queue = FaultyQueue::new(MemoryQueue::new("jobs"));
    let producer = Producer::new(queue.clone());
    queue.fail_sends(1);
    let tasks: Vec<_> = (0..25u32).map(|n| producer.task("step", &n)).collect();
    let exec_ids: std::collections::BTreeSet<String> = tasks.iter().map(|t| t.exec_id().to_owned()).collect();
    let job = jobs.start_with_tasks(&producer, NewJob::new("retry", json!({})), tasks).await.unwrap();
    assert_eq!((job.status, job.tasks_sent, job.tasks_total), (Status::Pending, 25, 25));
    let mut sent = std::collections::BTreeSet::new();
    loop {
        let batch = queue.inner().receive(10, Duration::ZERO, Duration::from_secs(60)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        sent.extend(batch.into_iter().map(|m| m.attributes["exec_id"].clone()));
    }
    assert_eq!(sent, exec_ids);
}
for_each_store!(
    memory_send_retry,
    sqlite_send_retry,
    postgres_send_retry,
    a_send_that_fails_once_is_retried_with_the_same_executions
);

async fn a_task_that_cannot_be_sent_fails_the_job_with_what_was_sent(jobs: &Jobs) {
    let queue = FaultyQueue::new(MemoryQueue::builder("jobs").max_message_size(1024).build());
    let producer = Producer::new(queue.clone());
    let tasks =
        vec![producer.task("step", &1u32), producer.task("step", &"x".repeat(2000)), producer.task("step", &3u32)];
    let err = jobs.start_with_tasks(&producer, NewJob::new("too-big", json!({})), tasks).await.unwrap_err();
    assert!(matches!(err, Error::Tasks(chassis_tasks::Error::TooLarge { .. })), "{err}");
    let page = jobs.list(Filter::default().name("too-big"), None, 10).await.unwrap();
    let job = &page.jobs[0];
    assert_eq!((job.status, job.tasks_sent, job.tasks_total), (Status::Failed, 2, 3));
    assert!(job.error.as_ref().unwrap().message.contains("could not send 1 of the job's 3 tasks"), "{job:?}");
    // Two tasks that are one execution: refused before anything is created.
    let twice = producer.task("step", &1u32);
    let err = jobs.start_with_tasks(&producer, NewJob::new("twice", json!({})), vec![twice.clone(), twice]).await;
    assert!(matches!(err, Err(Error::Invalid(_))), "{err:?}");
    assert!(jobs.list(Filter::default().name("twice"), None, 10).await.unwrap().jobs.is_empty());
}
for_each_store!(
    memory_cannot_send,
    sqlite_cannot_send,
    postgres_cannot_send,
    a_task_that_cannot_be_sent_fails_the_job_with_what_was_sent
);

async fn a_sender_that_stops_half_way_leaves_no_job_waiting_forever(jobs: &Jobs) {
    let queue = FaultyQueue::new(MemoryQueue::new("jobs"));
    let producer = Producer::new(queue.clone());
    let whole = jobs
        .start_with_tasks(&producer, NewJob::new("whole", json!({})), vec![producer.task("step", &1u32)])
        .await
        .unwrap();
    // The process "dies" while sending: the call never finishes.
    queue.hang_sends(true);
    let tasks = (0..3u32).map(|n| producer.task("step", &n)).collect();
    let stopped = tokio::time::timeout(
        Duration::from_millis(300),
        jobs.start_with_tasks(&producer, NewJob::new("stranded", json!({})), tasks),
    )
    .await;
    assert!(stopped.is_err());
    let stranded = jobs.list(Filter::default().name("stranded"), None, 10).await.unwrap().jobs[0].clone();
    assert_eq!((stranded.status, stranded.tasks_sent, stranded.tasks_total), (Status::Pending, 0, 3));
    assert_eq!(jobs.fail_stranded(Duration::from_secs(600)).await.unwrap(), 0, "within its grace period");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(jobs.fail_stranded(Duration::ZERO).await.unwrap(), 1);
    let failed = jobs.get(stranded.id).await.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert!(failed.error.unwrap().message.contains("only 0 of its 3 tasks were sent"));
    assert_eq!(jobs.get(whole.id).await.unwrap().status, Status::Pending, "a job whose tasks all went out waits");
    assert_eq!(jobs.fail_stranded(Duration::ZERO).await.unwrap(), 0);
}
for_each_store!(
    memory_stranded,
    sqlite_stranded,
    postgres_stranded,
    a_sender_that_stops_half_way_leaves_no_job_waiting_forever
);

async fn a_job_of_large_tasks_is_sent_in_batches_that_fit(jobs: &Jobs) {
    // The input: 6 tasks of ~200 kB on a 1 MiB queue failed the whole job.
    let queue = FaultyQueue::new(MemoryQueue::builder("jobs").max_message_size(1_048_576).build());
    let producer = Producer::new(queue.clone());
    let blob = "x".repeat(200_000);
    let tasks = (0..6).map(|n| producer.task("step", &json!({"n": n, "blob": blob}))).collect();
    let job = jobs.start_with_tasks(&producer, NewJob::new("large", json!({})), tasks).await.unwrap();
    assert_eq!((job.tasks_sent, job.tasks_total), (6, 6));
    assert_eq!(queue.attributes().await.unwrap().visible, 6);
}
for_each_store!(memory_large, sqlite_large, postgres_large, a_job_of_large_tasks_is_sent_in_batches_that_fit);
