//! The conformance suite and the worker's key paths on SQS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use chassis_tasks::{
    Backoff, Config, CreateOptions, DEAD_LETTER_REASON, Handlers, Producer, Progression, Queue, SqsQueue, TaskContext,
    TaskPolicy, Worker,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::conformance;
use crate::moto::Moto;

const S: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test]
async fn conformance_suite_on_sqs() {
    let moto = Moto::start();
    let q = moto.queue("conformance", &CreateOptions::default()).await;
    conformance::visibility_and_receive_counts(&q, S(1)).await;
    conformance::change_visibility(&q, S(1)).await;
    conformance::delays_and_batches(&q).await;
    conformance::attributes(&q).await;
    // `stale_receipts` is not run here: moto accepts any receipt a message ever had.
}

fn config() -> Config {
    let mut config = Config::new("tasks");
    config.visibility_timeout_secs = 5;
    config.wait_time_secs = 1;
    config.concurrency = 4;
    config.shutdown_deadline_secs = 5;
    config.backoff = Backoff::new(Progression::None, S(1), S(1));
    config
}

async fn run_for(worker: Worker<SqsQueue>, time: Duration) -> chassis_tasks::Report {
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(time).await;
    stop.cancel();
    handle.await.unwrap()
}

async fn drain(q: &SqsQueue) -> Vec<chassis_tasks::Message> {
    let mut out = Vec::new();
    loop {
        let batch = q.receive(10, S(1), S(60)).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

#[tokio::test]
async fn a_message_sent_by_a_raw_sdk_call_in_the_python_shape_is_consumed() {
    let moto = Moto::start();
    let q = moto.queue("python-pool", &CreateOptions::default()).await;
    let string = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build().unwrap();
    q.sdk()
        .send_message()
        .queue_url(q.url())
        .message_body(r#"{"to": "a@b.c"}"#)
        .message_attributes("task_name", string("send_email"))
        .message_attributes("exec_id", string("6f1c1c1e-8a39-4c9c-9f6a-3c1a2b3c4d5e"))
        .message_attributes("when", string("01/01/20 00:00:00"))
        .message_attributes("job_id", string("j-9"))
        .message_attributes("job_name", string("welcome"))
        .send()
        .await
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let slot = seen.clone();
    let mut handlers = Handlers::new();
    handlers
        .task("send_email", move |attrs: serde_json::Value, ctx: TaskContext| {
            *slot.lock().unwrap() = Some((attrs, ctx));
            async {}
        })
        .unwrap();
    let report = run_for(Worker::new(q.clone(), handlers, config()).unwrap(), S(3)).await;
    assert_eq!(report.succeeded, 1);
    let (attrs, ctx) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(attrs, json!({"to": "a@b.c"}));
    assert_eq!(ctx.job.unwrap().id, "j-9");
    assert_eq!(q.attributes().await.unwrap().visible + q.attributes().await.unwrap().in_flight, 0, "deleted");
}

#[tokio::test]
async fn messages_we_send_carry_exactly_the_python_attributes_as_strings() {
    let moto = Moto::start();
    let q = moto.queue("ours", &CreateOptions::default()).await;
    let producer = Producer::new(q.clone());
    producer.send(producer.task("send_email", &json!({"to": "a@b.c"}))).await.unwrap();
    let out = q
        .sdk()
        .receive_message()
        .queue_url(q.url())
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let message = &out.messages()[0];
    let attributes = message.message_attributes().unwrap();
    let mut keys: Vec<_> = attributes.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["exec_id", "job_id", "job_name", "task_name", "when"]);
    assert!(attributes.values().all(|v| v.data_type() == "String"));
    assert_eq!(attributes["job_id"].string_value(), Some("unknown"));
    assert_eq!(message.body(), Some(r#"{"to":"a@b.c"}"#));
}

#[tokio::test]
async fn failures_retry_then_dead_letter_and_unknown_tasks_too() {
    let moto = Moto::start();
    let dlq = moto.queue("dlq", &CreateOptions::default()).await;
    let q = moto.queue("work", &CreateOptions::default()).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let mut handlers = Handlers::new();
    handlers
        .task_with("flaky", TaskPolicy::default().max_failures(2), move |_: serde_json::Value, _| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("nope") }
        })
        .unwrap();
    let mut c = config();
    c.unknown_task_receives = 1;
    let producer = Producer::new(q.clone());
    producer.send(producer.task("flaky", &json!({}))).await.unwrap();
    producer.send(producer.task("nobody", &json!({}))).await.unwrap();
    let worker = Worker::new(q.clone(), handlers, c).unwrap().dead_letter(dlq.clone());
    let report = run_for(worker, S(6)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(report.dead_lettered, 2);
    let mut reasons: Vec<String> = drain(&dlq).await.iter().map(|m| m.attributes[DEAD_LETTER_REASON].clone()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("no handler") || reasons[1].contains("no handler"));
    assert!(drain(&q).await.is_empty());
}

#[tokio::test]
async fn shutdown_leaves_nothing_invisible_on_sqs() {
    let moto = Moto::start();
    let q = moto.queue("shutdown", &CreateOptions::default()).await;
    let mut handlers = Handlers::new();
    handlers
        .task("endless", |_: serde_json::Value, _| async {
            tokio::time::sleep(S(3600)).await;
        })
        .unwrap();
    let producer = Producer::new(q.clone());
    for _ in 0..3 {
        producer.send(producer.task("endless", &json!({}))).await.unwrap();
    }
    let mut c = config();
    c.shutdown_deadline_secs = 1;
    c.visibility_timeout_secs = 300;
    let report = run_for(Worker::new(q.clone(), handlers, c).unwrap(), S(3)).await;
    assert_eq!(report.released, 3);
    let attributes = q.attributes().await.unwrap();
    assert_eq!((attributes.in_flight, attributes.visible), (0, 3), "{attributes:?}");
    let _ = BTreeMap::<String, String>::new();
}
