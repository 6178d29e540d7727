//! Queue operations: depth and age metrics, dead-letter inspection and redrive.

use std::time::Duration;

use chassis_tasks::monitor::{monitor, peek, redrive};
use chassis_tasks::{DEAD_LETTER_REASON, MemoryQueue, Outgoing, Queue};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio_util::sync::CancellationToken;

const S: fn(u64) -> Duration = Duration::from_secs;

fn dead(body: &str) -> Outgoing {
    let attributes = [("task_name".to_owned(), "t".to_owned()), (DEAD_LETTER_REASON.to_owned(), "boom".to_owned())];
    Outgoing::new(body).attributes(attributes.into())
}

#[tokio::test(start_paused = true)]
async fn peek_leaves_dead_letters_where_they_are_and_redrive_moves_them_back_once() {
    let work = MemoryQueue::new("work");
    let dlq = work.sibling("work-dead").await.unwrap();
    for n in 0..13 {
        dlq.send(dead(&n.to_string())).await.unwrap();
    }
    let seen = peek(&dlq, 100).await.unwrap();
    assert_eq!(seen.len(), 13);
    assert_eq!(dlq.attributes().await.unwrap().visible, 13, "still there after a look");
    assert_eq!(redrive(&dlq, &work, 5).await.unwrap(), 5, "at most max");
    assert_eq!(redrive(&dlq, &work, 100).await.unwrap(), 8);
    assert_eq!(dlq.attributes().await.unwrap().visible, 0);
    let back = work.receive(10, Duration::ZERO, S(30)).await.unwrap();
    assert!(back.iter().all(|m| !m.attributes.contains_key(DEAD_LETTER_REASON) && m.attributes["task_name"] == "t"));
    assert_eq!(back.len() + work.receive(10, Duration::ZERO, S(30)).await.unwrap().len(), 13);
}

#[tokio::test(start_paused = true)]
async fn a_redrive_that_cannot_send_keeps_the_dead_letters() {
    let work = MemoryQueue::builder("work").max_message_size(1024).build();
    let dlq = MemoryQueue::new("dead");
    dlq.send(dead(&"x".repeat(2000))).await.unwrap();
    assert_eq!(redrive(&dlq, &work, 10).await.unwrap(), 0);
    assert_eq!(dlq.attributes().await.unwrap().visible, 1, "kept, and visible again");
}

#[tokio::test(start_paused = true)]
async fn the_monitor_publishes_depth_by_state() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);
    let q = MemoryQueue::new("work");
    q.send(Outgoing::new("a")).await.unwrap();
    q.send(Outgoing::new("b")).await.unwrap();
    q.send(Outgoing::new("later").delay(S(60))).await.unwrap();
    q.receive(1, Duration::ZERO, S(30)).await.unwrap();
    let stop = CancellationToken::new();
    stop.cancel(); // one pass
    monitor(q, "work".into(), S(15), stop).await;
    let mut depth = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if key.name() == "chassis_tasks_queue_depth" {
            let state = key.labels().find(|l| l.key() == "state").unwrap().value().to_owned();
            let DebugValue::Gauge(v) = value else { panic!("a gauge") };
            depth.insert(state, v.into_inner());
        }
    }
    assert_eq!(depth, [("delayed".into(), 1.0), ("in_flight".into(), 1.0), ("visible".into(), 1.0)].into());
}
