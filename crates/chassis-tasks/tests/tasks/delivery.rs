//! At-least-once delivery on the memory queue, with tokio's paused clock:
//! every task has exactly one end state, postponing is not an attempt, and
//! batches fit SQS's limits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chassis_tasks::{
    Config, DEAD_LETTER_REASON, FaultyQueue, Handlers, MemoryQueue, Outgoing, Producer, Queue, QueueError, TaskContext,
    TaskPolicy, TaskResult, Worker,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{drain, tokio_wall};

const S: fn(u64) -> Duration = Duration::from_secs;

/// Every run of a task: (task, exec_id, attempt).
type Runs = Arc<Mutex<Vec<(String, String, u32)>>>;

/// `doomed` always ends with `end`; `refund` (its on_fail task) and `fine` succeed.
fn handlers(runs: &Runs, policy: TaskPolicy, end: fn() -> TaskResult) -> Handlers {
    let mut handlers = Handlers::new();
    for (name, policy) in [("doomed", policy), ("refund", TaskPolicy::default()), ("fine", TaskPolicy::default())] {
        let seen = runs.clone();
        let doomed = name == "doomed";
        handlers
            .task_with(name, policy, move |_: serde_json::Value, ctx: TaskContext| {
                seen.lock().unwrap().push((ctx.task.clone(), ctx.exec_id.clone(), ctx.attempt));
                async move { if doomed { end() } else { TaskResult::Success } }
            })
            .unwrap();
    }
    handlers
}

fn count(runs: &Runs, task: &str) -> usize {
    runs.lock().unwrap().iter().filter(|(t, _, _)| t == task).count()
}

/// Runs a worker on `queue` for `time` of (paused) time.
async fn run_for<Q: Queue + Clone>(
    queue: &Q,
    handlers: Handlers,
    config: Config,
    time: Duration,
) -> chassis_tasks::Report {
    let worker = Worker::new(queue.clone(), handlers, config).unwrap().with_clock(tokio_wall);
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(time).await;
    stop.cancel();
    handle.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_task_without_a_dead_letter_queue_runs_max_failures_times_and_sends_on_fail_once() {
    // The input: default worker config, no dead-letter queue, one hour.
    let q = MemoryQueue::new("q");
    let runs = Runs::default();
    let policy = TaskPolicy::default().max_failures(3).on_fail("refund");
    let handlers = handlers(&runs, policy, || TaskResult::Failure("card declined".into()));
    let producer = Producer::new(q.clone());
    producer.send(producer.task("doomed", &json!({"order": 7}))).await.unwrap();
    let report = run_for(&q, handlers, Config::new("q"), S(3600)).await;
    assert_eq!(count(&runs, "doomed"), 3, "{:?}", runs.lock().unwrap());
    assert_eq!(count(&runs, "refund"), 1, "{:?}", runs.lock().unwrap());
    assert_eq!(report.discarded, 1);
    let left = q.attributes().await.unwrap();
    assert_eq!((left.visible, left.in_flight, left.delayed), (0, 0, 0), "deleted once it ended");
}

#[tokio::test(start_paused = true)]
async fn abandon_and_exhausted_retries_end_once_too() {
    for end in [(|| TaskResult::Abandon("no such customer".into())) as fn() -> TaskResult, || TaskResult::Retry(None)] {
        let q = MemoryQueue::new("q");
        let runs = Runs::default();
        let handlers = handlers(&runs, TaskPolicy::default().max_failures(2).on_fail("refund"), end);
        let producer = Producer::new(q.clone());
        producer.send(producer.task("doomed", &json!({}))).await.unwrap();
        run_for(&q, handlers, Config::new("q"), S(3600)).await;
        let expected_runs = if matches!(end(), TaskResult::Abandon(_)) { 1 } else { 2 };
        assert_eq!(count(&runs, "doomed"), expected_runs);
        assert_eq!(count(&runs, "refund"), 1);
        assert!(drain(&q).await.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn the_configured_dead_letter_queue_is_opened_by_name_and_gets_each_end_once() {
    let q = MemoryQueue::new("q");
    let runs = Runs::default();
    let handlers = handlers(&runs, TaskPolicy::default().max_failures(2), || TaskResult::Failure("nope".into()));
    let producer = Producer::new(q.clone());
    producer.send(producer.task("doomed", &json!({}))).await.unwrap();
    producer.send(producer.task("nobody_handles_this", &json!({}))).await.unwrap();
    q.send(Outgoing::new("not a task")).await.unwrap();
    let mut config = Config::new("q");
    config.dead_letter_queue = Some("q-dead".into()); // APP_TASKS__DEAD_LETTER_QUEUE
    config.unknown_task_receives = 2;
    let report = run_for(&q, handlers, config, S(3600)).await;
    let dead = drain(&q.sibling("q-dead").await.unwrap()).await;
    let mut reasons: Vec<_> = dead.iter().map(|m| m.attributes[DEAD_LETTER_REASON].clone()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("no handler for task `nobody_handles_this` after 2 receives"), "{reasons:?}");
    assert_eq!(reasons[1], "nope");
    assert!(reasons[2].contains("no task_name"), "{reasons:?}");
    assert_eq!((report.dead_lettered, report.discarded), (3, 0));
    assert!(drain(&q).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_dead_letter_queue_that_cannot_be_opened_keeps_the_worker_not_ready_and_says_why() {
    // The SQS backend opens it by name; a backend that cannot (this one's
    // receives work, but it is not a MemoryQueue) must not drop the setting.
    #[derive(Clone)]
    struct Plain(MemoryQueue);
    impl Queue for Plain {
        async fn send(&self, m: Outgoing) -> Result<String, QueueError> {
            self.0.send(m).await
        }
        async fn send_batch(&self, m: Vec<Outgoing>) -> Result<Vec<chassis_tasks::EntryResult<String>>, QueueError> {
            self.0.send_batch(m).await
        }
        async fn receive(&self, n: usize, w: Duration, v: Duration) -> Result<Vec<chassis_tasks::Message>, QueueError> {
            self.0.receive(n, w, v).await
        }
        async fn delete_batch(&self, r: Vec<String>) -> Result<Vec<chassis_tasks::EntryResult<()>>, QueueError> {
            self.0.delete_batch(r).await
        }
        async fn change_visibility(&self, r: &str, t: Duration) -> Result<(), QueueError> {
            self.0.change_visibility(r, t).await
        }
        async fn attributes(&self) -> Result<chassis_tasks::QueueAttributes, QueueError> {
            self.0.attributes().await
        }
    }
    let q = MemoryQueue::new("q");
    let producer = Producer::new(q.clone());
    producer.send(producer.task("fine", &json!({}))).await.unwrap();
    let mut config = Config::new("q");
    config.dead_letter_queue = Some("q-dead".into());
    let runs = Runs::default();
    let worker =
        Worker::new(Plain(q.clone()), handlers(&runs, TaskPolicy::default(), || TaskResult::Success), config).unwrap();
    let health = worker.health();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(S(10)).await;
    assert!(!health.is_ready());
    assert!(health.last_error().unwrap().contains("cannot open the dead-letter queue `q-dead`"));
    assert_eq!(count(&runs, "fine"), 0, "nothing runs without its dead-letter queue");
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn unknown_and_malformed_messages_without_a_dead_letter_queue_end_once() {
    let q = MemoryQueue::new("q");
    let producer = Producer::new(q.clone());
    producer.send(producer.task("nobody_handles_this", &json!({}))).await.unwrap();
    q.send(Outgoing::new("no attributes at all")).await.unwrap();
    let mut config = Config::new("q");
    config.unknown_task_receives = 3;
    config.unknown_task_delay_secs = 10;
    let report = run_for(&q, Handlers::new(), config, S(3600)).await;
    assert_eq!(report.discarded, 2);
    assert_eq!(report.received, 1 + 3, "the malformed one once, the unknown one 3 times");
    assert!(drain(&q).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_lost_delete_of_an_exhausted_task_sends_its_on_fail_again_with_the_same_exec_id() {
    let q = FaultyQueue::new(MemoryQueue::new("q"));
    let runs = Runs::default();
    let handlers = handlers(&runs, TaskPolicy::default().max_failures(1).on_fail("refund"), || {
        TaskResult::Failure("declined".into())
    });
    let producer = Producer::new(q.clone());
    producer.send(producer.task("doomed", &json!({}))).await.unwrap();
    q.lose_deletes(1); // the exhausted message's delete is lost: it comes back
    let mut config = Config::new("q");
    config.visibility_timeout_secs = 30;
    run_for(&q, handlers, config, S(600)).await;
    assert_eq!(q.deletes_lost(), 1);
    let runs = runs.lock().unwrap().clone();
    let refunds: Vec<_> = runs.iter().filter(|(t, _, _)| t == "refund").map(|(_, e, _)| e.clone()).collect();
    assert_eq!(count(&Arc::new(Mutex::new(runs.clone())), "doomed"), 2, "{runs:?}");
    assert_eq!(refunds.len(), 2, "{runs:?}");
    assert_eq!(refunds[0], refunds[1], "one on_fail execution, delivered twice: {runs:?}");
    let doomed_exec = runs.iter().find(|(t, _, _)| t == "doomed").unwrap().1.clone();
    assert_ne!(refunds[0], doomed_exec);
}

#[tokio::test(start_paused = true)]
async fn a_task_due_in_an_hour_runs_as_attempt_one_even_with_a_redrive_policy() {
    let dead = MemoryQueue::new("dead");
    let q = MemoryQueue::builder("q").redrive(dead.clone(), 2).build();
    let runs = Runs::default();
    let handlers = handlers(&runs, TaskPolicy::default(), || TaskResult::Success);
    let _ = tokio_wall();
    let producer = Producer::new(q.clone()).with_clock(tokio_wall);
    producer.send(producer.task("fine", &json!({})).at(tokio_wall() + S(3600))).await.unwrap();
    let worker = run_for(&q, handlers, Config::new("q"), S(3500));
    let report = worker.await;
    assert_eq!(count(&runs, "fine"), 0, "not before it is due");
    assert!(report.received >= 3, "postponed several times (15 minutes at most each)");
    let runs2 = Runs::default();
    run_for(&q, registry_fine(&runs2), Config::new("q"), S(300)).await;
    assert_eq!(*runs2.lock().unwrap().iter().map(|(_, _, a)| a).collect::<Vec<_>>(), [&1], "attempt 1 when it runs");
    assert!(drain(&dead).await.is_empty(), "postponing used up no receive of the redrive policy");
}

fn registry_fine(runs: &Runs) -> Handlers {
    handlers(runs, TaskPolicy::default(), || TaskResult::Success)
}

#[tokio::test(start_paused = true)]
async fn a_postponed_unknown_task_keeps_its_retry_budget_for_when_it_is_known() {
    let q = MemoryQueue::new("q");
    let producer = Producer::new(q.clone());
    producer.send(producer.task("doomed", &json!({}))).await.unwrap();
    let mut config = Config::new("q");
    config.unknown_task_receives = 50;
    config.unknown_task_delay_secs = 10;
    // A worker that does not know the task postpones it 5 times …
    run_for(&q, Handlers::new(), config.clone(), S(45)).await;
    // … then one that knows it runs it from attempt 1, for all its 3 attempts.
    let runs = Runs::default();
    let handlers = handlers(&runs, TaskPolicy::default().max_failures(3), || TaskResult::Failure("x".into()));
    run_for(&q, handlers, config, S(3600)).await;
    let attempts: Vec<u32> = runs.lock().unwrap().iter().map(|(_, _, a)| *a).collect();
    assert_eq!(attempts, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn postponing_an_unknown_task_counts_its_receives_across_the_resends() {
    let q = MemoryQueue::new("q");
    let producer = Producer::new(q.clone());
    producer.send(producer.task("nobody_handles_this", &json!({}))).await.unwrap();
    let mut config = Config::new("q");
    config.unknown_task_receives = 4;
    config.unknown_task_delay_secs = 10;
    run_for(&q, Handlers::new(), config.clone(), S(15)).await; // receives at 0 s and 10 s
    tokio::time::sleep(S(10)).await;
    let left = drain(&q).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].receive_count, 1, "a fresh message …");
    assert_eq!(left[0].attributes[chassis_tasks::wire::UNKNOWN_RECEIVES], "2", "… that remembers 2 receives");
}

#[tokio::test(start_paused = true)]
async fn batches_are_split_by_payload_as_well_as_by_count() {
    // The input on the embedded queue: 6 tasks of ~200 kB, a 1 MiB queue.
    let q = MemoryQueue::builder("q").max_message_size(1_048_576).build();
    let producer = Producer::new(q.clone());
    let big = "x".repeat(200_000);
    let tasks = (0..6).map(|n| producer.task("fine", &json!({"n": n, "blob": big}))).collect();
    let results = producer.send_all(tasks).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(q.attributes().await.unwrap().visible, 6);
    // A 256 KiB queue: 1 task per batch, still all sent; and many small ones by 10.
    let small = MemoryQueue::new("small");
    let producer = Producer::new(small.clone());
    let tasks = (0..4).map(|n| producer.task("fine", &json!({"n": n, "blob": "y".repeat(150_000)}))).collect();
    assert!(producer.send_all(tasks).await.unwrap().iter().all(Result::is_ok));
    let tasks = (0..25).map(|n| producer.task("fine", &n)).collect();
    assert!(producer.send_all(tasks).await.unwrap().iter().all(Result::is_ok));
    assert_eq!(small.attributes().await.unwrap().visible, 29);
}

#[tokio::test]
async fn the_memory_queue_refuses_a_batch_over_the_payload_limit_as_sqs_does() {
    let q = MemoryQueue::new("q"); // 256 KiB
    let batch = vec![Outgoing::new("x".repeat(100_000)); 3];
    let err = q.send_batch(batch).await.unwrap_err();
    assert!(matches!(err, QueueError::BatchTooLarge { size: 300_000, max: 262_144 }), "{err}");
    assert_eq!(q.attributes().await.unwrap().visible, 0, "nothing of the batch was sent");
    assert_eq!(chassis_tasks::batch_payload_limit(1024), 262_144);
    assert_eq!(chassis_tasks::batch_payload_limit(4 << 20), chassis_tasks::MAX_BATCH_BYTES);
}

#[tokio::test(start_paused = true)]
async fn a_resent_task_keeps_its_exec_id() {
    let q = FaultyQueue::new(MemoryQueue::new("q"));
    let producer = Producer::new(q.clone());
    let task = producer.task("fine", &json!({}));
    q.fail_sends(1);
    assert!(producer.send(task.clone()).await.is_err());
    let id = producer.send(task.clone()).await.unwrap();
    assert_eq!(id, task.exec_id());
    let sent = drain(q.inner()).await;
    assert_eq!(sent[0].attributes["exec_id"], task.exec_id());
}
