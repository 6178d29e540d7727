//! Queue operations: depth and age metrics, dead-letter inspection and redrive.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::queue::{MAX_BATCH, Message, Outgoing, Queue, QueueError};
use crate::worker::DEAD_LETTER_REASON;

/// Publishes `queue`'s depth and the age of its oldest waiting message as
/// metrics every `interval`, until `shutdown` fires:
///
/// - `chassis_tasks_queue_depth{queue, state}` (gauge, messages): `state` is
///   `visible` (waiting to be received), `in_flight` (received, not yet
///   deleted or visible again) or `delayed` (sent with a delay not yet passed);
/// - `chassis_tasks_oldest_age_seconds{queue}` (gauge, seconds): how long the
///   oldest visible message has waited, 0 when none does — on the backends
///   that can tell ([`QueueAttributes::oldest_age`](crate::QueueAttributes::oldest_age):
///   SQLite and PostgreSQL; SQS publishes `ApproximateAgeOfOldestMessage` to
///   CloudWatch instead).
///
/// `name` is the `queue` label (a configured name, so the label set is bounded).
/// A failed read is logged and tried again at the next interval.
pub async fn monitor<Q: Queue>(queue: Q, name: String, interval: Duration, shutdown: CancellationToken) {
    metrics::describe_gauge!("chassis_tasks_queue_depth", metrics::Unit::Count, "Messages in the task queue, by state");
    metrics::describe_gauge!(
        "chassis_tasks_oldest_age_seconds",
        metrics::Unit::Seconds,
        "How long the oldest message waiting in the task queue has waited"
    );
    let gauge =
        |state: &'static str| metrics::gauge!("chassis_tasks_queue_depth", "queue" => name.clone(), "state" => state);
    let (visible, in_flight, delayed) = (gauge("visible"), gauge("in_flight"), gauge("delayed"));
    let oldest = metrics::gauge!("chassis_tasks_oldest_age_seconds", "queue" => name.clone());
    loop {
        match queue.attributes().await {
            Ok(a) => {
                visible.set(a.visible as f64);
                in_flight.set(a.in_flight as f64);
                delayed.set(a.delayed as f64);
                if let Some(age) = a.oldest_age {
                    oldest.set(age.as_secs_f64());
                } else if a.visible == 0 {
                    oldest.set(0.0);
                }
            }
            Err(error) => tracing::warn!(%error, queue = %name, "could not read the task queue's depth"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Up to `max` messages of a dead-letter queue, for inspection. They are
/// received for a moment and made visible again at once, so they stay in the
/// queue (each look counts as a receive, as in SQS's console).
///
/// # Errors
/// The queue's.
pub async fn peek<Q: Queue>(dead_letter: &Q, max: usize) -> Result<Vec<Message>, QueueError> {
    let mut seen: Vec<Message> = Vec::new();
    while seen.len() < max {
        let batch =
            dead_letter.receive((max - seen.len()).min(MAX_BATCH), Duration::ZERO, Duration::from_secs(30)).await?;
        if batch.is_empty() {
            break;
        }
        seen.extend(batch);
    }
    for message in &seen {
        dead_letter.change_visibility(&message.receipt, Duration::ZERO).await?;
    }
    Ok(seen)
}

/// Moves up to `max` messages from a dead-letter queue back to `to` (without
/// their `dead_letter_reason`), to run again; returns how many moved. A
/// message leaves the dead-letter queue only after `to` accepted it; one that
/// could not be sent stays (and is visible again at once). A crash between the
/// send and the delete leaves a copy in both, with one `exec_id`.
///
/// # Errors
/// The queues' (messages already moved stay moved).
pub async fn redrive<Q: Queue>(dead_letter: &Q, to: &Q, max: usize) -> Result<usize, QueueError> {
    let mut moved = 0;
    while moved < max {
        let batch = dead_letter.receive((max - moved).min(MAX_BATCH), Duration::ZERO, Duration::from_secs(60)).await?;
        if batch.is_empty() {
            break;
        }
        let outgoing = batch
            .iter()
            .map(|m| {
                let attributes: BTreeMap<String, String> = m
                    .attributes
                    .iter()
                    .filter(|(k, _)| *k != DEAD_LETTER_REASON)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let message = Outgoing::new(m.body.clone()).attributes(attributes);
                match &m.group_id {
                    Some(group) => message.fifo(group, format!("redrive-{}-{}", m.id, m.receive_count)),
                    None => message,
                }
            })
            .collect();
        let sent = to.send_batch(outgoing).await;
        let mut done = Vec::new();
        for (i, message) in batch.iter().enumerate() {
            match sent.as_ref().map(|results| results.get(i).map(Result::is_ok)) {
                Ok(Some(true)) => done.push(message.receipt.clone()),
                _ => dead_letter.change_visibility(&message.receipt, Duration::ZERO).await?,
            }
        }
        moved += done.len();
        let stop = done.len() < batch.len();
        if !done.is_empty() {
            dead_letter.delete_batch(done).await?;
        }
        if stop {
            sent?;
            break;
        }
    }
    Ok(moved)
}
