//! One suite of queue semantics, run against every backend: the memory queue
//! in `memory.rs` (on tokio's paused clock), SQS on moto in `tests/sqs/`.

use std::time::Duration;

use chassis_tasks::{Outgoing, Queue, QueueError};

const S: fn(u64) -> Duration = Duration::from_secs;

fn msg(body: &str) -> Outgoing {
    Outgoing::new(body)
}

/// Receive, hide, come back with a higher receive count; delete for good.
pub async fn visibility_and_receive_counts<Q: Queue>(q: &Q, step: Duration) {
    q.send(msg("a")).await.unwrap();
    let first = q.receive(10, S(1), step).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].body.as_str(), first[0].receive_count), ("a", 1));
    assert!(q.receive(10, Duration::ZERO, step).await.unwrap().is_empty(), "hidden while in flight");
    tokio::time::sleep(step + Duration::from_millis(1500)).await;
    let again = q.receive(10, S(2), step).await.unwrap();
    assert_eq!(again.len(), 1, "back after the visibility timeout");
    assert_eq!(again[0].receive_count, 2);
    let deleted = q.delete_batch(vec![again[0].receipt.clone()]).await.unwrap();
    assert!(deleted[0].is_ok());
    tokio::time::sleep(step + Duration::from_millis(1500)).await;
    assert!(q.receive(10, Duration::ZERO, step).await.unwrap().is_empty(), "deleted for good");
}

/// Visibility 0 returns a message at once; extending keeps it hidden.
pub async fn change_visibility<Q: Queue>(q: &Q, step: Duration) {
    q.send(msg("b")).await.unwrap();
    let m = q.receive(1, S(1), step).await.unwrap().remove(0);
    q.change_visibility(&m.receipt, Duration::ZERO).await.unwrap();
    let m = q.receive(1, S(1), step).await.unwrap().remove(0);
    assert_eq!(m.receive_count, 2);
    q.change_visibility(&m.receipt, step * 4).await.unwrap();
    tokio::time::sleep(step + Duration::from_millis(1500)).await;
    assert!(q.receive(1, Duration::ZERO, step).await.unwrap().is_empty(), "the extension holds");
    q.delete_batch(vec![m.receipt]).await.unwrap();
}

/// Delays hide a new message; batches report each entry.
pub async fn delays_and_batches<Q: Queue>(q: &Q) {
    q.send(msg("later").delay(S(2))).await.unwrap();
    assert!(q.receive(10, Duration::ZERO, S(30)).await.unwrap().is_empty(), "delayed");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let later = q.receive(10, S(1), S(30)).await.unwrap();
    assert_eq!(later.len(), 1);
    let batch: Vec<_> = (0..10).map(|i| msg(&format!("m{i}"))).collect();
    let sent = q.send_batch(batch).await.unwrap();
    assert_eq!(sent.len(), 10);
    assert!(sent.iter().all(Result::is_ok));
    let mut received = Vec::new();
    for _ in 0..20 {
        received.extend(q.receive(10, S(1), S(30)).await.unwrap());
        if received.len() == 10 {
            break;
        }
    }
    assert_eq!(received.len(), 10);
    let receipts: Vec<_> = received.iter().map(|m| m.receipt.clone()).chain([later[0].receipt.clone()]).collect();
    for chunk in receipts.chunks(10) {
        assert!(q.delete_batch(chunk.to_vec()).await.unwrap().iter().all(Result::is_ok));
    }
    let too_many: Vec<_> = (0..11).map(|i| msg(&i.to_string())).collect();
    assert!(q.send_batch(too_many).await.is_err(), "at most 10 per batch");
}

/// Attributes: depth and limits.
pub async fn attributes<Q: Queue>(q: &Q) {
    q.send(msg("x")).await.unwrap();
    q.send(msg("y").delay(S(60))).await.unwrap();
    let m = q.receive(1, S(1), S(30)).await.unwrap().remove(0);
    let a = q.attributes().await.unwrap();
    assert_eq!((a.visible, a.in_flight, a.delayed), (0, 1, 1));
    assert!(a.max_message_size >= 1024);
    q.delete_batch(vec![m.receipt]).await.unwrap();
}

/// A stale receipt (the message was received again since) cannot change visibility.
pub async fn stale_receipts<Q: Queue>(q: &Q, step: Duration) {
    q.send(msg("z")).await.unwrap();
    let first = q.receive(1, S(1), step).await.unwrap().remove(0);
    tokio::time::sleep(step + Duration::from_millis(1500)).await;
    let second = q.receive(1, S(2), step).await.unwrap().remove(0);
    assert_eq!(first.id, second.id);
    let stale = q.change_visibility(&first.receipt, S(60)).await;
    assert!(matches!(stale, Err(QueueError::InvalidReceipt)), "{stale:?}");
    q.delete_batch(vec![second.receipt]).await.unwrap();
}
