//! Wire compatibility with the Python original.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chassis_tasks::{Handlers, MemoryQueue, Outgoing, Producer, Queue, TaskContext};
use serde_json::json;

use crate::support::{config, start};

#[tokio::test(start_paused = true)]
async fn we_send_exactly_the_python_attributes() {
    let q = MemoryQueue::new("q");
    let producer = Producer::new(q.clone());
    let exec_id =
        producer.send(producer.task("send_email", &json!({"to": "a@b.c"})).job("j-1", "welcome")).await.unwrap();
    let m = q.receive(1, Duration::ZERO, Duration::from_secs(30)).await.unwrap().remove(0);
    let keys: Vec<_> = m.attributes.keys().map(String::as_str).collect();
    assert_eq!(keys, ["exec_id", "job_id", "job_name", "task_name", "when"]);
    assert_eq!(m.attributes["task_name"], "send_email");
    assert_eq!(m.attributes["exec_id"], exec_id);
    assert_eq!(uuid::Uuid::parse_str(&exec_id).unwrap().get_version_num(), 4);
    assert_eq!((m.attributes["job_id"].as_str(), m.attributes["job_name"].as_str()), ("j-1", "welcome"));
    assert!(chassis_tasks::wire::parse_when(&m.attributes["when"]).is_some(), "{}", m.attributes["when"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&m.body).unwrap(), json!({"to": "a@b.c"}));

    producer.send(producer.task("no_job", &json!({}))).await.unwrap();
    let m = q.receive(1, Duration::ZERO, Duration::from_secs(30)).await.unwrap().remove(0);
    assert_eq!((m.attributes["job_id"].as_str(), m.attributes["job_name"].as_str()), ("unknown", "unknown"));
}

/// The five attributes the Python original sends with a task (no job).
fn python_attributes(task: &str) -> BTreeMap<String, String> {
    [
        ("task_name", task),
        ("exec_id", "6f1c1c1e-8a39-4c9c-9f6a-3c1a2b3c4d5e"),
        ("when", "01/01/20 00:00:00"),
        ("job_id", "unknown"),
        ("job_name", "unknown"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[tokio::test(start_paused = true)]
async fn a_message_in_the_python_shape_is_consumed() {
    let q = MemoryQueue::new("q");
    let attributes = python_attributes("send_email");
    q.send(Outgoing::new(r#"{"to": "a@b.c", "retries": 2}"#).attributes(attributes)).await.unwrap();
    let seen = Arc::new(Mutex::new(None));
    let slot = seen.clone();
    let mut handlers = Handlers::new();
    handlers
        .task("send_email", move |attrs: serde_json::Value, ctx: TaskContext| {
            *slot.lock().unwrap() = Some((attrs, ctx));
            async {}
        })
        .unwrap();
    let running = start(&q, None, handlers, config());
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.finish().await;
    let (attrs, ctx) = seen.lock().unwrap().clone().expect("consumed");
    assert_eq!(attrs, json!({"to": "a@b.c", "retries": 2}));
    assert_eq!(ctx.exec_id, "6f1c1c1e-8a39-4c9c-9f6a-3c1a2b3c4d5e");
    assert_eq!(ctx.job, None, "\"unknown\" reads as no job");
    assert_eq!(ctx.attempt, 1);
}

/// A sender's `traceparent` attribute, in lowercase as the spec has senders
/// write it, and in uppercase (read as well): the task continues the sender's
/// trace, and its lines name the sender's span, always in lowercase.
#[tokio::test(start_paused = true)]
async fn a_traceparent_in_either_case_is_continued_and_logged_in_lowercase() {
    let capture = chassis_testkit::logs::capture(&chassis_log::Config::new("tasks-test", "0.0.0"));
    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for traceparent in [sent.to_owned(), sent.to_ascii_uppercase()] {
        let before = capture.len();
        let q = MemoryQueue::new("q");
        let mut attributes = python_attributes("traced");
        attributes.insert("traceparent".to_owned(), traceparent.clone());
        q.send(Outgoing::new("{}").attributes(attributes)).await.unwrap();
        let seen = Arc::new(Mutex::new(None));
        let slot = seen.clone();
        let mut handlers = Handlers::new();
        handlers
            .task("traced", move |_: serde_json::Value, _| {
                *slot.lock().unwrap() = chassis_trace::current();
                tracing::info!("inside the traced task");
                async {}
            })
            .unwrap();
        let running = start(&q, None, handlers, config());
        tokio::time::sleep(Duration::from_secs(3)).await;
        running.finish().await;
        let context = seen.lock().unwrap().clone().expect("the task ran inside a trace");
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "{traceparent}: the sender's trace");
        assert_ne!(context.span_id(), "00f067aa0ba902b7", "a span of its own");
        let logs = capture.lines_since(before);
        let line = logs.find(|l| l["message"] == "inside the traced task").expect("the task's line");
        assert_eq!(line["trace_parent_span_id"], "00f067aa0ba902b7", "{traceparent}");
        assert_eq!(line["traceparent"], context.traceparent().as_str());
    }
}
