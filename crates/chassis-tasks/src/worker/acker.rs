//! The acker: deletes acknowledged messages in batches, off the receive path.

use super::*;

/// Deletes acknowledged messages in batches of up to 10, off the receive path,
/// with up to 16 batch calls in flight (a queue call may take a round trip).
pub(super) async fn acker<Q: Queue + Clone>(queue: Q, mut rx: mpsc::UnboundedReceiver<String>) {
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(receipt) => batch.push(receipt),
                Err(_) => break,
            }
        }
        while in_flight.len() >= 16 {
            in_flight.join_next().await;
        }
        in_flight.spawn(delete(queue.clone(), batch));
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

/// The pause before retrying a delete that failed with a transient error:
/// 200 ms doubling, up to 3.2 s for the fifth and last retry.
const DELETE_BACKOFF: Backoff =
    Backoff::new(Progression::Exponential, Duration::from_millis(200), Duration::from_millis(3_200));

async fn delete<Q: Queue>(queue: Q, receipts: Vec<String>) {
    let mut attempt = 0u32;
    loop {
        match queue.delete_batch(receipts.clone()).await {
            Ok(results) => {
                for error in results.into_iter().filter_map(std::result::Result::err) {
                    // An expired receipt: the message comes back and runs again (at least once).
                    tracing::warn!(%error, "could not delete a finished task's message");
                }
                return;
            }
            Err(error) if error.is_transient() && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(DELETE_BACKOFF.delay(attempt)).await;
            }
            Err(error) => {
                tracing::error!(%error, count = receipts.len(), "could not delete finished tasks' messages");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_deletes_are_retried_after_200_ms_doubling() {
        let pauses: Vec<u64> = (1..=5).map(|n| DELETE_BACKOFF.delay(n).as_millis() as u64).collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200]);
    }
}
