//! Label values taken from messages are bounded (issue 15 §4): a task name
//! that arrives from the queue is a `task` label only if it is registered;
//! every other name (another service's task, a malformed message) is counted
//! under `unknown`.

use std::collections::BTreeSet;
use std::time::Duration;

use chassis_tasks::{
    BoxFuture, Handlers, Hook, HookError, MemoryQueue, Outgoing, Proceed, Producer, Queue, RunOutcome, TaskContext,
    TaskPolicy, TaskResult, Worker,
};
use metrics_util::debugging::DebuggingRecorder;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{config, tokio_wall};

const S: fn(u64) -> Duration = Duration::from_secs;

/// A hook that records nothing: every final outcome fails to be recorded.
struct Broken;

impl Hook for Broken {
    fn before(&self, _: &TaskContext) -> BoxFuture<Proceed> {
        Box::pin(async { Proceed::Run })
    }
    fn after(&self, _: &TaskContext, _: RunOutcome) -> BoxFuture<Result<(), HookError>> {
        Box::pin(async { Err(HookError("the store is down".into())) })
    }
}

/// 40 tasks with distinct unknown names, 3 malformed messages and one
/// registered task that fails for good, through a worker with `dead_letter`
/// and `hook` as given.
async fn flood(dead_letter: bool, hook: bool) {
    let q = MemoryQueue::new("q");
    let producer = Producer::new(q.clone());
    for n in 0..40 {
        producer.send(producer.task(format!("other_service_task_{n}"), &json!({}))).await.unwrap();
    }
    producer.send(producer.task("t", &json!({}))).await.unwrap();
    q.send(Outgoing::new("{}")).await.unwrap();
    let mut attributes = std::collections::BTreeMap::new();
    attributes.insert("task_name".to_owned(), "\u{0}weird name".to_owned());
    q.send(Outgoing::new("not json").attributes(attributes)).await.unwrap();
    let mut handlers = Handlers::new();
    handlers
        .task_with("t", TaskPolicy::default().max_failures(1), |_: serde_json::Value, _| async {
            TaskResult::Failure("no".into())
        })
        .unwrap();
    let mut c = config();
    c.unknown_task_receives = 1;
    c.concurrency = 10;
    let mut worker = Worker::new(q.clone(), handlers, c).unwrap().with_clock(tokio_wall);
    if dead_letter {
        worker = worker.dead_letter(MemoryQueue::new("dlq"));
    }
    if hook {
        worker = worker.hook(Broken);
    }
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(S(5)).await;
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn task_labels_are_registered_names_or_unknown() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The test runs on one thread: the worker's tasks record here too.
    let _recording = metrics::set_default_local_recorder(&recorder);
    flood(true, false).await;
    flood(false, false).await;
    flood(false, true).await;
    let mut labels: BTreeSet<(String, String)> = BTreeSet::new();
    for (key, _, _, _) in snapshotter.snapshot().into_vec() {
        for label in key.key().labels().filter(|l| l.key() == "task") {
            labels.insert((key.key().name().to_owned(), label.value().to_owned()));
        }
    }
    let names: BTreeSet<&str> = labels.iter().map(|(name, _)| name.as_str()).collect();
    for name in
        ["chassis_tasks_dead_lettered_total", "chassis_tasks_discarded_total", "chassis_tasks_hook_failures_total"]
    {
        assert!(names.contains(name), "{name} was recorded: {labels:?}");
    }
    let values: BTreeSet<&str> = labels.iter().map(|(_, value)| value.as_str()).collect();
    assert_eq!(values, BTreeSet::from(["t", "unknown"]), "{labels:?}");
}
