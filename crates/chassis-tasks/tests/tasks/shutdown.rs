//! Shutdown is bounded by its deadline (issue 15 §6), on the memory queue with
//! tokio's paused clock: a receive that hangs, releases that hang, deletes
//! that hang — the worker returns by `shutdown_deadline_secs` after the stop,
//! and what it abandoned comes back after its visibility timeout.

use std::time::Duration;

use chassis_tasks::{
    EntryResult, FaultyQueue, Handlers, MemoryQueue, Message, Outgoing, Producer, Queue, QueueAttributes, QueueError,
    Report, Worker,
};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::{config, drain, tokio_wall};

const S: fn(u64) -> Duration = Duration::from_secs;

/// A queue whose receive may not be dropped midway (as SQS's): the worker
/// must let it finish, up to the deadline.
#[derive(Clone)]
struct NotCancelSafe(FaultyQueue<MemoryQueue>);

impl Queue for NotCancelSafe {
    const CANCEL_SAFE_RECEIVE: bool = false;

    async fn send(&self, m: Outgoing) -> Result<String, QueueError> {
        self.0.send(m).await
    }
    async fn send_batch(&self, m: Vec<Outgoing>) -> Result<Vec<EntryResult<String>>, QueueError> {
        self.0.send_batch(m).await
    }
    async fn receive(&self, max: usize, wait: Duration, vis: Duration) -> Result<Vec<Message>, QueueError> {
        self.0.receive(max, wait, vis).await
    }
    async fn delete_batch(&self, r: Vec<String>) -> Result<Vec<EntryResult<()>>, QueueError> {
        self.0.delete_batch(r).await
    }
    async fn change_visibility(&self, r: &str, t: Duration) -> Result<(), QueueError> {
        self.0.change_visibility(r, t).await
    }
    async fn attributes(&self) -> Result<QueueAttributes, QueueError> {
        self.0.attributes().await
    }
}

/// `quick` takes a second; `endless` an hour.
fn handlers() -> Handlers {
    let mut handlers = Handlers::new();
    handlers
        .task("quick", |_: serde_json::Value, _| async {
            tokio::time::sleep(S(1)).await;
        })
        .unwrap();
    handlers
        .task("endless", |_: serde_json::Value, _| async {
            tokio::time::sleep(S(3600)).await;
        })
        .unwrap();
    handlers
}

async fn send(memory: &MemoryQueue, task: &str, n: usize) {
    let producer = Producer::new(memory.clone());
    for _ in 0..n {
        producer.send(producer.task(task, &json!({}))).await.unwrap();
    }
}

/// Starts a worker, arms `fault`, lets it run `before`, stops it, and returns
/// its report and how long the stop took (an hour if it did not return).
async fn stop_after<Q: Queue + Clone>(
    queue: Q,
    deadline_secs: u64,
    before: Duration,
    fault: impl FnOnce(),
) -> (Report, Duration) {
    let mut c = config();
    c.shutdown_deadline_secs = deadline_secs;
    c.concurrency = 10;
    let worker = Worker::new(queue, handlers(), c).unwrap().with_clock(tokio_wall);
    let stop = CancellationToken::new();
    let mut handle = tokio::spawn(worker.run(stop.clone()));
    fault();
    tokio::time::sleep(before).await;
    let stopped = Instant::now();
    stop.cancel();
    match tokio::time::timeout(S(3600), &mut handle).await {
        Ok(report) => (report.unwrap(), stopped.elapsed()),
        Err(_) => {
            handle.abort();
            panic!("the worker had not returned an hour after the stop (deadline {deadline_secs} s)");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_receive_is_abandoned_at_the_deadline() {
    // The input: a stop during a receive that never answers.
    let memory = MemoryQueue::new("q");
    let faulty = FaultyQueue::new(memory.clone());
    let queue = NotCancelSafe(faulty.clone());
    let (_, took) = stop_after(queue, 5, S(2), || faulty.hang_receives(true)).await;
    assert!(took <= S(5), "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_cancel_safe_hung_receive_ends_at_once() {
    let memory = MemoryQueue::new("q");
    let faulty = FaultyQueue::new(memory.clone());
    let (_, took) = stop_after(faulty.clone(), 5, S(2), || faulty.hang_receives(true)).await;
    assert_eq!(took, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn hung_releases_are_abandoned_at_the_deadline_and_come_back_later() {
    let memory = MemoryQueue::new("q");
    send(&memory, "endless", 3).await;
    let faulty = FaultyQueue::new(memory.clone());
    let queue = NotCancelSafe(faulty.clone());
    let (report, took) = stop_after(queue, 5, S(2), || faulty.hang_visibility_changes(true)).await;
    assert!(took <= S(5), "took {took:?}");
    assert_eq!(report.released, 0);
    assert_eq!(memory.attributes().await.unwrap().in_flight, 3, "abandoned in flight");
    tokio::time::sleep(S(60)).await;
    assert_eq!(drain(&memory).await.len(), 3, "back after their visibility timeout");
}

#[tokio::test(start_paused = true)]
async fn hung_deletes_are_abandoned_at_the_deadline() {
    let memory = MemoryQueue::new("q");
    send(&memory, "quick", 4).await;
    let faulty = FaultyQueue::new(memory.clone());
    faulty.hang_deletes(true);
    let (report, took) = stop_after(NotCancelSafe(faulty.clone()), 3, S(5), || {}).await;
    assert!(took <= S(3), "took {took:?}");
    assert_eq!(report.succeeded, 4);
    tokio::time::sleep(S(60)).await;
    assert_eq!(drain(&memory).await.len(), 4, "undeleted: they run again (at least once)");
}

#[tokio::test(start_paused = true)]
async fn without_faults_unfinished_tasks_are_still_released_within_the_deadline() {
    let memory = MemoryQueue::new("q");
    send(&memory, "endless", 3).await;
    send(&memory, "quick", 3).await;
    let (report, took) = stop_after(NotCancelSafe(FaultyQueue::new(memory.clone())), 5, S(2), || {}).await;
    assert!(took <= S(5), "took {took:?}");
    assert_eq!((report.succeeded, report.released), (3, 3));
    let attributes = memory.attributes().await.unwrap();
    assert_eq!((attributes.visible, attributes.in_flight), (3, 0));
}
