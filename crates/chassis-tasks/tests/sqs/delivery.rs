//! At-least-once delivery on SQS (moto): one end state per task, postponing
//! is not an attempt (nor a receive a redrive policy counts), batches that fit
//! the payload limit, and `create_queue` joining a queue that exists.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use chassis_tasks::{
    Backoff, Config, CreateOptions, DEAD_LETTER_REASON, Handlers, Outgoing, Producer, Progression, Queue, SqsQueue,
    TaskContext, TaskPolicy, TaskResult, Worker,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::moto::Moto;

const S: fn(u64) -> Duration = Duration::from_secs;

fn config() -> Config {
    let mut config = Config::new("work");
    config.visibility_timeout_secs = 5;
    config.wait_time_secs = 1;
    config.concurrency = 4;
    config.shutdown_deadline_secs = 5;
    config.backoff = Backoff::new(Progression::None, S(1), S(1));
    config.unknown_task_delay_secs = 1;
    config
}

/// Every run: (task, exec_id, attempt).
type Runs = Arc<Mutex<Vec<(String, String, u32)>>>;

fn handlers(runs: &Runs, tasks: &[(&'static str, TaskPolicy, bool)]) -> Handlers {
    let mut handlers = Handlers::new();
    for (name, policy, succeeds) in tasks.iter().cloned() {
        let seen = runs.clone();
        handlers
            .task_with(name, policy, move |_: serde_json::Value, ctx: TaskContext| {
                seen.lock().unwrap().push((ctx.task.clone(), ctx.exec_id.clone(), ctx.attempt));
                async move { if succeeds { TaskResult::Success } else { TaskResult::Failure("declined".into()) } }
            })
            .unwrap();
    }
    handlers
}

fn runs_of(runs: &Runs, task: &str) -> Vec<u32> {
    runs.lock().unwrap().iter().filter(|(t, _, _)| t == task).map(|(_, _, a)| *a).collect()
}

async fn run_for(queue: &SqsQueue, handlers: Handlers, config: Config, time: Duration) -> chassis_tasks::Report {
    let worker = Worker::new(queue.clone(), handlers, config).unwrap();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(time).await;
    stop.cancel();
    handle.await.unwrap()
}

async fn depth(queue: &SqsQueue) -> u64 {
    let a = queue.attributes().await.unwrap();
    a.visible + a.in_flight + a.delayed
}

#[tokio::test]
async fn an_exhausted_task_without_a_dead_letter_queue_ends_once_on_sqs() {
    let moto = Moto::start();
    let q = moto.queue("work", &CreateOptions::default()).await;
    let runs = Runs::default();
    let handlers = handlers(
        &runs,
        &[
            ("doomed", TaskPolicy::default().max_failures(2).on_fail("refund"), false),
            ("refund", TaskPolicy::default(), true),
        ],
    );
    let producer = Producer::new(q.clone());
    producer.send(producer.task("doomed", &json!({"order": 7}))).await.unwrap();
    let report = run_for(&q, handlers, config(), S(10)).await;
    assert_eq!(runs_of(&runs, "doomed"), [1, 2]);
    assert_eq!(runs_of(&runs, "refund").len(), 1);
    assert_eq!(report.discarded, 1);
    assert_eq!(depth(&q).await, 0);
}

#[tokio::test]
async fn the_configured_dead_letter_queue_and_unknown_tasks_end_once_on_sqs() {
    let moto = Moto::start();
    let q = moto.queue("work", &CreateOptions::default()).await; // create_queue: the DLQ is created too
    let producer = Producer::new(q.clone());
    producer.send(producer.task("nobody_handles_this", &json!({}))).await.unwrap();
    q.send(Outgoing::new("not a task")).await.unwrap();
    let mut c = config();
    c.dead_letter_queue = Some("work-dead".into());
    c.unknown_task_receives = 2;
    let report = run_for(&q, Handlers::new(), c, S(8)).await;
    assert_eq!(report.dead_lettered, 2);
    let dead = SqsQueue::open(moto.client(), "work-dead").await.unwrap();
    let mut reasons = Vec::new();
    loop {
        let batch = dead.receive(10, S(1), S(60)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        reasons.extend(batch.into_iter().map(|m| m.attributes[DEAD_LETTER_REASON].clone()));
    }
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("no handler for task `nobody_handles_this` after 2 receives"), "{reasons:?}");
    assert!(reasons[1].contains("no task_name"), "{reasons:?}");
    assert_eq!(depth(&q).await, 0);
}

#[tokio::test]
async fn postponing_uses_up_neither_attempts_nor_the_redrive_policys_receives() {
    let moto = Moto::start();
    let dead = moto.queue("redriven", &CreateOptions::default()).await;
    let mut options = CreateOptions::default();
    options.redrive = Some((dead.url().to_owned(), 2));
    let q = moto.queue("work", &options).await;
    let producer = Producer::new(q.clone());
    producer.send(producer.task("late", &json!({}))).await.unwrap();
    producer.send(producer.task("scheduled", &json!({})).at(std::time::SystemTime::now() + S(4))).await.unwrap();
    // A worker without `late`'s handler postpones it, several times.
    let mut c = config();
    c.unknown_task_receives = 50;
    let runs = Runs::default();
    let early = handlers(&runs, &[("scheduled", TaskPolicy::default(), true)]);
    let report = run_for(&q, early, c.clone(), S(6)).await;
    assert!(report.received >= 4, "postponed again and again: {report:?}");
    assert_eq!(runs_of(&runs, "scheduled"), [1], "due in 4 s, postponed once, run as attempt 1");
    // A worker that knows it runs it from attempt 1, for both its attempts.
    let known = handlers(&runs, &[("late", TaskPolicy::default().max_failures(2), false)]);
    run_for(&q, known, c, S(6)).await;
    assert_eq!(runs_of(&runs, "late"), [1, 2]);
    assert_eq!(depth(&dead).await, 0, "nothing redriven");
}

#[tokio::test]
async fn six_tasks_of_200_kb_are_sent_in_batches_that_fit() {
    // The input: a 1 MiB queue, 6 × ~200 kB = 1.2 MB in one call was refused.
    let moto = Moto::start();
    let q = moto.queue("big", &CreateOptions::default()).await;
    assert_eq!(q.attributes().await.unwrap().max_message_size, 1_048_576);
    let producer = Producer::new(q.clone());
    let blob = "x".repeat(200_000);
    let tasks = (0..6).map(|n| producer.task("t", &json!({"n": n, "blob": blob}))).collect();
    let results = producer.send_all(tasks).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(q.attributes().await.unwrap().visible, 6);
    // And a batch call that is too large says so, whole.
    let err = q.send_batch(vec![Outgoing::new("y".repeat(400_000)); 3]).await.unwrap_err();
    assert!(matches!(err, chassis_tasks::QueueError::BatchTooLarge { .. }), "{err}");
}

#[tokio::test]
async fn create_queue_joins_a_queue_another_service_created_with_other_attributes() {
    let moto = Moto::start();
    // The Python original's pool: VisibilityTimeout 120, ReceiveMessageWaitTimeSeconds 2.
    let python = moto
        .client()
        .create_queue()
        .queue_name("python-pool")
        .attributes(QueueAttributeName::VisibilityTimeout, "120")
        .attributes(QueueAttributeName::ReceiveMessageWaitTimeSeconds, "2")
        .send()
        .await
        .unwrap();
    let mut ours = CreateOptions::default();
    ours.visibility_timeout = Some(S(30));
    ours.wait_time = Some(S(10));
    let joined = SqsQueue::create(moto.client(), "python-pool", &ours).await.unwrap();
    assert_eq!(Some(joined.url()), python.queue_url());
    assert_eq!(joined.attributes().await.unwrap().visibility_timeout, S(120), "the queue keeps its own");
    // Two instances starting together on a fresh name, with different ideas.
    let mut other = CreateOptions::default();
    other.visibility_timeout = Some(S(60));
    let (a, b) =
        tokio::join!(SqsQueue::create(moto.client(), "fresh", &ours), SqsQueue::create(moto.client(), "fresh", &other));
    assert_eq!(a.unwrap().url(), b.unwrap().url());
}
