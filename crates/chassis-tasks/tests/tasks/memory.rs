//! The queue conformance suite on the memory queue (tokio's paused clock), and
//! the memory queue's own extras: long polling, redrive, FIFO, limits.

use std::time::Duration;

use chassis_tasks::{MemoryQueue, Outgoing, Queue, QueueError};

use crate::conformance::{
    attributes, change_visibility, delays_and_batches, stale_receipts, visibility_and_receive_counts,
};

const S: fn(u64) -> Duration = Duration::from_secs;

fn msg(body: &str) -> Outgoing {
    Outgoing::new(body)
}

#[tokio::test(start_paused = true)]
async fn memory_visibility_and_receive_counts() {
    visibility_and_receive_counts(&MemoryQueue::new("q"), S(2)).await;
}

#[tokio::test(start_paused = true)]
async fn memory_change_visibility() {
    change_visibility(&MemoryQueue::new("q"), S(2)).await;
}

#[tokio::test(start_paused = true)]
async fn memory_delays_and_batches() {
    delays_and_batches(&MemoryQueue::new("q")).await;
}

#[tokio::test(start_paused = true)]
async fn memory_attributes() {
    attributes(&MemoryQueue::new("q")).await;
}

#[tokio::test(start_paused = true)]
async fn memory_stale_receipts() {
    stale_receipts(&MemoryQueue::new("q"), S(2)).await;
}

#[tokio::test(start_paused = true)]
async fn memory_long_poll_returns_when_a_message_arrives() {
    let q = MemoryQueue::new("q");
    let sender = q.clone();
    let started = tokio::time::Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(S(3)).await;
        sender.send(msg("late")).await.unwrap();
    });
    let got = q.receive(10, S(20), S(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(started.elapsed(), S(3), "woken by the send, not the 20 s wait");
}

#[tokio::test(start_paused = true)]
async fn memory_redrive_moves_to_the_dead_letter_queue() {
    let dlq = MemoryQueue::new("dlq");
    let q = MemoryQueue::builder("q").redrive(dlq.clone(), 2).build();
    q.send(msg("poison")).await.unwrap();
    for _ in 0..2 {
        let m = q.receive(1, S(1), S(1)).await.unwrap();
        assert_eq!(m.len(), 1);
        tokio::time::sleep(S(2)).await;
    }
    assert!(q.receive(1, S(1), S(1)).await.unwrap().is_empty());
    assert_eq!(dlq.receive(1, S(1), S(1)).await.unwrap()[0].body, "poison");
}

#[tokio::test(start_paused = true)]
async fn memory_fifo_keeps_group_order_and_dedups() {
    let q = MemoryQueue::builder("q.fifo").fifo().build();
    for (i, group) in ["a", "b", "a", "a", "b"].iter().enumerate() {
        q.send(msg(&format!("{group}{i}")).fifo(*group, format!("d{i}"))).await.unwrap();
    }
    q.send(msg("dup").fifo("a", "d0")).await.unwrap();
    let first = q.receive(10, S(1), S(30)).await.unwrap();
    let bodies: Vec<_> = first.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["a0", "b1", "a2", "a3", "b4"], "group order kept, duplicate dropped");
    assert!(q.receive(10, Duration::ZERO, S(30)).await.unwrap().is_empty());
    assert!(q.send(msg("no group")).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn memory_limits_are_errors() {
    let q = MemoryQueue::builder("q").max_message_size(10).build();
    assert!(matches!(q.send(msg("01234567890")).await, Err(QueueError::TooLarge { size: 11, max: 10 })));
    assert!(matches!(q.send(msg("x").delay(S(901))).await, Err(QueueError::Invalid(_))));
    assert!(q.receive(11, S(1), S(1)).await.is_err());
    assert!(q.receive(1, S(21), S(1)).await.is_err());
}
