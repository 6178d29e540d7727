//! The worker on the memory queue, with tokio's paused clock: retries,
//! backoff, heartbeat, unknown tasks, dead letters, panics, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use chassis_tasks::{
    DEAD_LETTER_REASON, Handlers, MemoryQueue, Outgoing, Producer, Queue, TaskContext, TaskPolicy, TaskResult,
};
use serde::{Deserialize, Serialize};

use crate::support::{config, drain, start};

const S: fn(u64) -> Duration = Duration::from_secs;

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u32,
}

#[tokio::test(start_paused = true)]
async fn successful_tasks_are_deleted() {
    let q = MemoryQueue::new("q");
    let done = Arc::new(AtomicU32::new(0));
    let mut handlers = Handlers::new();
    let seen = done.clone();
    handlers
        .task("add", move |job: Job, _ctx: TaskContext| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(job.n, Ordering::SeqCst);
            }
        })
        .unwrap();
    let producer = Producer::new(q.clone());
    for n in 1..=20 {
        producer.send(producer.task("add", &Job { n })).await.unwrap();
    }
    let running = start(&q, None, handlers, config());
    tokio::time::sleep(S(5)).await;
    let report = running.finish().await;
    assert_eq!(done.load(Ordering::SeqCst), 210);
    assert_eq!(report.succeeded, 20);
    let attributes = q.attributes().await.unwrap();
    assert_eq!((attributes.visible, attributes.in_flight), (0, 0), "all deleted");
}

#[tokio::test(start_paused = true)]
async fn failures_retry_with_backoff_then_on_fail_and_dead_letter() {
    let q = MemoryQueue::new("q");
    let dlq = MemoryQueue::new("dlq");
    let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let mut handlers = Handlers::new();
    handlers
        .task_with(
            "flaky",
            TaskPolicy::default().max_failures(3).on_fail("flaky_failed"),
            move |_: Job, ctx: TaskContext| {
                seen.lock().unwrap().push((ctx.attempt, tokio::time::Instant::now()));
                async move { Err::<(), _>("downstream is down") }
            },
        )
        .unwrap();
    handlers.task("flaky_failed", |job: Job, _| async move { job.n == 7 }).unwrap();
    let producer = Producer::new(q.clone());
    producer.send(producer.task("flaky", &Job { n: 7 })).await.unwrap();
    let running = start(&q, Some(&dlq), handlers, config());
    tokio::time::sleep(S(120)).await;
    let report = running.finish().await;
    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(attempts.iter().map(|(a, _)| *a).collect::<Vec<_>>(), [1, 2, 3]);
    // Linear backoff from 10 s: the second try ~10 s after the first, the third ~20 s after.
    let gaps: Vec<_> = attempts.windows(2).map(|w| (w[1].1 - w[0].1).as_secs()).collect();
    assert_eq!(gaps.len(), 2);
    assert!((10..=11).contains(&gaps[0]) && (20..=21).contains(&gaps[1]), "{gaps:?}");
    assert_eq!(report.failed, 3);
    assert_eq!(report.succeeded, 1, "the on_fail task ran");
    let dead = drain(&dlq).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["task_name"], "flaky");
    assert!(dead[0].attributes[DEAD_LETTER_REASON].contains("downstream is down"));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_is_a_failure_and_the_worker_survives() {
    let q = MemoryQueue::new("q");
    let mut handlers = Handlers::new();
    let ok = Arc::new(AtomicUsize::new(0));
    let seen = ok.clone();
    handlers
        .task("boom", |job: Job, _| async move {
            assert!(job.n != 1, "handler bug");
        })
        .unwrap();
    handlers
        .task("fine", move |_: Job, _| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    let producer = Producer::new(q.clone());
    producer.send(producer.task("boom", &Job { n: 1 })).await.unwrap();
    producer.send(producer.task("fine", &Job { n: 2 })).await.unwrap();
    let running = start(&q, None, handlers, config());
    tokio::time::sleep(S(5)).await;
    assert!(running.health.consumer_alive());
    let report = running.finish().await;
    assert_eq!(ok.load(Ordering::SeqCst), 1);
    assert_eq!(report.failed, 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_tasks_are_postponed_then_dead_lettered_never_dropped() {
    let q = MemoryQueue::new("q");
    let dlq = MemoryQueue::new("dlq");
    let mut c = config();
    c.unknown_task_receives = 3;
    c.unknown_task_delay_secs = 10;
    let producer = Producer::new(q.clone());
    producer.send(producer.task("nobody_handles_this", &Job { n: 1 })).await.unwrap();
    let running = start(&q, Some(&dlq), Handlers::new(), c);
    tokio::time::sleep(S(15)).await;
    assert!(drain(&dlq).await.is_empty(), "still postponed after two receives");
    tokio::time::sleep(S(30)).await;
    running.finish().await;
    let dead = drain(&dlq).await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].attributes[DEAD_LETTER_REASON].contains("no handler for task `nobody_handles_this`"));
}

#[tokio::test(start_paused = true)]
async fn malformed_messages_are_dead_lettered_with_the_reason() {
    let q = MemoryQueue::new("q");
    let dlq = MemoryQueue::new("dlq");
    q.send(Outgoing::new("{}")).await.unwrap(); // no task_name
    let mut attrs = std::collections::BTreeMap::new();
    attrs.insert("task_name".to_owned(), "t".to_owned());
    q.send(Outgoing::new("not json").attributes(attrs.clone())).await.unwrap();
    q.send(Outgoing::new(r#"{"n": "seven"}"#).attributes(attrs)).await.unwrap();
    let mut handlers = Handlers::new();
    handlers.task("t", |_: Job, _| async {}).unwrap();
    let running = start(&q, Some(&dlq), handlers, config());
    tokio::time::sleep(S(5)).await;
    running.finish().await;
    let mut reasons: Vec<_> = drain(&dlq).await.iter().map(|m| m.attributes[DEAD_LETTER_REASON].clone()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("no task_name")));
    assert!(reasons.iter().any(|r| r.contains("not JSON")));
    assert!(reasons.iter().any(|r| r.contains("do not fit task `t`")));
    assert_eq!(q.attributes().await.unwrap().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn settings_given_after_the_health_was_taken_still_apply() {
    // A service hands the worker's health to its readiness check while it
    // still builds the worker: a setting given afterwards must not be lost,
    // and the handle must be the running worker's.
    let q = MemoryQueue::new("q");
    let dlq = MemoryQueue::new("dlq");
    q.send(Outgoing::new("{}")).await.unwrap(); // no task_name
    let worker = chassis_tasks::Worker::new(q.clone(), Handlers::new(), config()).unwrap();
    let health = worker.health();
    let worker = worker.dead_letter(dlq.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(S(5)).await;
    assert!(health.is_ready(), "the handle taken before is the running worker's");
    stop.cancel();
    let report = handle.await.unwrap();
    assert_eq!((report.dead_lettered, report.discarded), (1, 0));
    assert_eq!(drain(&dlq).await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_dead_letter_queue_a_bad_message_ends_once_deleted() {
    // The Python original's rule: an end state, never an endless loop.
    let q = MemoryQueue::new("q");
    q.send(Outgoing::new("{}")).await.unwrap();
    let running = start(&q, None, Handlers::new(), config());
    tokio::time::sleep(S(5)).await;
    let report = running.finish().await;
    tokio::time::sleep(S(60)).await;
    assert_eq!((report.received, report.discarded), (1, 1));
    assert!(drain(&q).await.is_empty(), "deleted");
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_keeps_a_long_task_from_running_twice() {
    let q = MemoryQueue::new("q");
    let runs = Arc::new(AtomicUsize::new(0));
    let seen = runs.clone();
    let mut handlers = Handlers::new();
    handlers
        .task("long", move |_: Job, _| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(S(100)).await; // more than 3 visibility timeouts
            }
        })
        .unwrap();
    let producer = Producer::new(q.clone());
    producer.send(producer.task("long", &Job { n: 1 })).await.unwrap();
    let mut c = config();
    c.shutdown_deadline_secs = 200;
    let running = start(&q, None, handlers, c);
    tokio::time::sleep(S(150)).await;
    let report = running.finish().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(report.succeeded, 1);
}

#[tokio::test(start_paused = true)]
async fn task_timeouts_and_explicit_retries() {
    let q = MemoryQueue::new("q");
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = attempts.clone();
    let mut handlers = Handlers::new();
    handlers
        .task_with("slow", TaskPolicy::default().timeout(S(2)).max_failures(1), |_: Job, _| async {
            tokio::time::sleep(S(60)).await;
        })
        .unwrap();
    handlers
        .task("later", move |_: Job, ctx: TaskContext| {
            seen.store(ctx.attempt, Ordering::SeqCst);
            async move { if ctx.attempt < 2 { TaskResult::Retry(Some(S(5))) } else { TaskResult::Success } }
        })
        .unwrap();
    let producer = Producer::new(q.clone());
    producer.send(producer.task("slow", &Job { n: 1 })).await.unwrap();
    producer.send(producer.task("later", &Job { n: 1 })).await.unwrap();
    let running = start(&q, None, handlers, config());
    tokio::time::sleep(S(20)).await;
    let report = running.finish().await;
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(report.succeeded, 1);
    assert_eq!(report.failed, 1, "the timed-out task");
}

#[tokio::test(start_paused = true)]
async fn shutdown_leaves_nothing_invisible() {
    let q = MemoryQueue::new("q");
    let mut handlers = Handlers::new();
    handlers
        .task("quick", |_: Job, _| async {
            tokio::time::sleep(S(1)).await;
        })
        .unwrap();
    handlers
        .task("endless", |_: Job, _| async {
            tokio::time::sleep(S(3600)).await;
        })
        .unwrap();
    let producer = Producer::new(q.clone());
    for n in 0..6 {
        producer.send(producer.task(if n % 2 == 0 { "quick" } else { "endless" }, &Job { n })).await.unwrap();
    }
    let mut c = config();
    c.concurrency = 10;
    c.shutdown_deadline_secs = 5;
    let running = start(&q, None, handlers, c);
    tokio::time::sleep(S(2)).await;
    let report = running.finish().await;
    assert_eq!(report.succeeded, 3);
    assert_eq!(report.released, 3, "the endless ones were handed back");
    let attributes = q.attributes().await.unwrap();
    assert_eq!(attributes.in_flight, 0, "nothing left invisible");
    assert_eq!(attributes.visible, 3);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_and_rolling() {
    let q = MemoryQueue::new("q");
    let running_now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running_now.clone(), peak.clone());
    let mut handlers = Handlers::new();
    handlers
        .task("work", move |job: Job, _| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                // One slow task must not hold back the others (no batch-by-batch).
                tokio::time::sleep(if job.n == 0 { S(50) } else { S(1) }).await;
                r.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    let producer = Producer::new(q.clone());
    for n in 0..40 {
        producer.send(producer.task("work", &Job { n })).await.unwrap();
    }
    let mut c = config();
    c.concurrency = 4;
    c.shutdown_deadline_secs = 100;
    let running = start(&q, None, handlers, c);
    tokio::time::sleep(S(20)).await;
    assert_eq!(q.attributes().await.unwrap().visible, 0, "39 quick tasks done while the slow one runs");
    let report = running.finish().await;
    assert_eq!(peak.load(Ordering::SeqCst), 4);
    assert_eq!(report.succeeded, 40);
}

#[tokio::test(start_paused = true)]
async fn a_task_due_later_waits_until_then() {
    let q = MemoryQueue::new("q");
    let ran_at = Arc::new(std::sync::Mutex::new(None));
    let seen = ran_at.clone();
    let mut handlers = Handlers::new();
    handlers
        .task("scheduled", move |_: Job, _| {
            *seen.lock().unwrap() = Some(crate::support::tokio_wall());
            async {}
        })
        .unwrap();
    let _ = crate::support::tokio_wall(); // fix the base before sending
    let producer = Producer::new(q.clone()).with_clock(crate::support::tokio_wall);
    // Beyond SQS's 15-minute delay: delayed 15 minutes, then hidden again until due.
    let due = crate::support::tokio_wall() + S(20 * 60);
    producer.send(producer.task("scheduled", &Job { n: 1 }).at(due)).await.unwrap();
    let running = start(&q, None, handlers, config());
    tokio::time::sleep(S(19 * 60)).await;
    assert!(ran_at.lock().unwrap().is_none(), "not before it is due");
    tokio::time::sleep(S(2 * 60)).await;
    running.finish().await;
    assert!(ran_at.lock().unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn oversized_tasks_are_refused_before_sending() {
    let q = MemoryQueue::builder("q").max_message_size(1024).build();
    let producer = Producer::new(q.clone());
    let big = "x".repeat(2000);
    let err = producer.send(producer.task("t", &big)).await.unwrap_err();
    assert!(matches!(err, chassis_tasks::Error::TooLarge { max: 1024, .. }), "{err}");
    assert_eq!(q.attributes().await.unwrap().visible, 0);
    let results = producer
        .send_all(vec![producer.task("t", &"small"), producer.task("t", &big), producer.task("t", &"small")])
        .await
        .unwrap();
    assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
    assert_eq!(q.attributes().await.unwrap().visible, 2);
}

/// The memory queue, failing its first receives like a throttled or
/// unreachable SQS.
#[derive(Clone)]
struct Flaky {
    inner: MemoryQueue,
    failures_left: Arc<AtomicUsize>,
}

impl Queue for Flaky {
    async fn send(&self, m: Outgoing) -> Result<String, chassis_tasks::QueueError> {
        self.inner.send(m).await
    }
    async fn send_batch(
        &self,
        m: Vec<Outgoing>,
    ) -> Result<Vec<chassis_tasks::EntryResult<String>>, chassis_tasks::QueueError> {
        self.inner.send_batch(m).await
    }
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        vis: Duration,
    ) -> Result<Vec<chassis_tasks::Message>, chassis_tasks::QueueError> {
        let left = self.failures_left.load(Ordering::SeqCst);
        if left > 0 {
            self.failures_left.store(left - 1, Ordering::SeqCst);
            return Err(chassis_tasks::QueueError::Transient("ThrottlingException: slow down".into()));
        }
        self.inner.receive(max, wait, vis).await
    }
    async fn delete_batch(
        &self,
        r: Vec<String>,
    ) -> Result<Vec<chassis_tasks::EntryResult<()>>, chassis_tasks::QueueError> {
        self.inner.delete_batch(r).await
    }
    async fn change_visibility(&self, r: &str, t: Duration) -> Result<(), chassis_tasks::QueueError> {
        self.inner.change_visibility(r, t).await
    }
    async fn attributes(&self) -> Result<chassis_tasks::QueueAttributes, chassis_tasks::QueueError> {
        self.inner.attributes().await
    }
}

#[tokio::test(start_paused = true)]
async fn transient_queue_errors_back_off_report_to_health_and_recover() {
    let memory = MemoryQueue::new("q");
    let flaky = Flaky { inner: memory.clone(), failures_left: Arc::new(AtomicUsize::new(5)) };
    let done = Arc::new(AtomicUsize::new(0));
    let seen = done.clone();
    let mut handlers = Handlers::new();
    handlers
        .task("t", move |_: Job, _| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .unwrap();
    let producer = Producer::new(memory.clone());
    producer.send(producer.task("t", &Job { n: 1 })).await.unwrap();
    let mut c = config();
    c.concurrency = 10; // one poller
    let worker = chassis_tasks::Worker::new(flaky, handlers, c).unwrap();
    let health = worker.health();
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(health.consumer_alive());
    assert!(!health.queue_reachable(), "the failing queue shows in the health");
    assert!(health.last_error().unwrap().contains("Throttling"));
    tokio::time::sleep(S(30)).await;
    assert!(health.is_ready(), "recovered");
    assert_eq!(done.load(Ordering::SeqCst), 1);
    stop.cancel();
    handle.await.unwrap();
}

#[test]
fn the_config_is_validated_with_the_field_named() {
    let mut c = chassis_tasks::Config::default();
    let err = chassis_tasks::Worker::new(MemoryQueue::new("q"), Handlers::new(), c.clone()).unwrap_err();
    assert!(err.to_string().contains("task_pool"), "{err}");
    c.task_pool = "q".into();
    c.wait_time_secs = 21;
    let err = chassis_tasks::Worker::new(MemoryQueue::new("q"), Handlers::new(), c).unwrap_err();
    assert!(err.to_string().contains("wait_time_secs"), "{err}");
    let err = Handlers::new().task("x", |_: Job, _| async {}).unwrap().task("x", |_: Job, _| async {}).unwrap_err();
    assert!(err.to_string().contains("registered twice"));
}

#[tokio::test(start_paused = true)]
async fn metrics_count_tasks_by_outcome() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let q = MemoryQueue::new("q");
    let mut handlers = Handlers::new();
    handlers.task("t", |job: Job, _| async move { job.n != 2 }).unwrap();
    // Metric handles are registered when the worker is built.
    let worker =
        metrics::with_local_recorder(&recorder, || chassis_tasks::Worker::new(q.clone(), handlers, config())).unwrap();
    let producer = Producer::new(q.clone());
    producer.send(producer.task("t", &Job { n: 1 })).await.unwrap();
    producer.send(producer.task("t", &Job { n: 2 })).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(S(3)).await;
    stop.cancel();
    handle.await.unwrap();
    let values: std::collections::HashMap<String, DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
        .collect();
    assert_eq!(values.get("chassis_tasks_received_total"), Some(&DebugValue::Counter(2)));
    assert_eq!(values.get("chassis_tasks_succeeded_total"), Some(&DebugValue::Counter(1)));
    assert_eq!(values.get("chassis_tasks_failed_total"), Some(&DebugValue::Counter(1)));
    assert_eq!(values.get("chassis_tasks_retried_total"), Some(&DebugValue::Counter(1)));
    assert!(
        matches!(values.get("chassis_tasks_handler_duration_seconds"), Some(DebugValue::Histogram(h)) if h.len() == 2)
    );
}
