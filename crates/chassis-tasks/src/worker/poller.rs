//! The poller: receives messages while there are free slots, and starts their runs.

use super::*;

/// The pause after `failures` failed queue calls in a row (receives, or
/// opening the dead-letter queue): [`RECEIVE_BACKOFF`]'s, 200 ms doubling, at
/// most [`MAX_RECEIVE_PAUSE`], so that the worker sees a queue that is back
/// (and reports ready) within about a second.
pub(super) fn receive_backoff(failures: u32) -> Duration {
    RECEIVE_BACKOFF.delay(failures)
}

/// The backoff of failing receives: 200 ms doubling up to [`MAX_RECEIVE_PAUSE`], no jitter.
const RECEIVE_BACKOFF: Backoff = Backoff::new(Progression::Exponential, Duration::from_millis(200), MAX_RECEIVE_PAUSE);

/// The longest pause between receives while the queue fails.
pub(super) const MAX_RECEIVE_PAUSE: Duration = Duration::from_secs(1);

pub(super) struct Poller<Q> {
    pub(super) shared: Arc<Shared<Q>>,
    pub(super) slots: Arc<Semaphore>,
    pub(super) tracker: TaskTracker,
    pub(super) shutdown: CancellationToken,
    pub(super) hard_stop: CancellationToken,
    /// Cancelled at the shutdown deadline: tasks still running are dropped.
    pub(super) abandon: CancellationToken,
    pub(super) acks: mpsc::UnboundedSender<String>,
}

impl<Q: Queue + Clone> Poller<Q> {
    pub(super) async fn run(self) {
        let mut failures = 0u32;
        loop {
            // Wait for one free slot, then take up to 10.
            let first = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                permit = self.slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            };
            let mut permits = vec![first];
            // Take up to a full batch; tasks that just finished may be about to
            // free their slots, so give them one turn before settling for less.
            for round in 0..2 {
                while permits.len() < MAX_BATCH {
                    match self.slots.clone().try_acquire_owned() {
                        Ok(p) => permits.push(p),
                        Err(_) => break,
                    }
                }
                if round == 0 && permits.len() < MAX_BATCH {
                    tokio::task::yield_now().await;
                }
            }
            let config = &self.shared.config;
            // After a failure, no long poll: a queue that is back answers (and
            // the worker reports ready) at once, not after the wait time.
            let wait = if failures == 0 { config.wait() } else { Duration::ZERO };
            let receive = self.shared.queue.receive(permits.len(), wait, config.visibility());
            let received = if Q::CANCEL_SAFE_RECEIVE {
                tokio::select! {
                    biased;
                    () = self.shutdown.cancelled() => return,
                    received = receive => received,
                }
            } else {
                // Abandoning an SQS receive would hide the messages it got:
                // it may finish, until tasks must stop.
                tokio::select! {
                    biased;
                    received = receive => received,
                    () = self.hard_stop.cancelled() => {
                        tracing::warn!(
                            "a receive still waiting at the shutdown deadline is abandoned; messages it received \
                             come back after their visibility timeout"
                        );
                        return;
                    }
                }
            };
            let messages = match received {
                Ok(messages) => {
                    failures = 0;
                    self.shared.health.queue(Ok(()));
                    messages
                }
                Err(error) => {
                    failures += 1;
                    self.shared.health.queue(Err(error.to_string()));
                    let pause = receive_backoff(failures);
                    tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "receiving tasks failed");
                    drop(permits);
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(pause) => continue,
                    }
                }
            };
            self.shared.counters.received.fetch_add(messages.len() as u64, Ordering::Relaxed);
            if self.shutdown.is_cancelled() {
                // Received as shutdown began: hand them straight back.
                for message in messages {
                    release(&self.shared, &message).await;
                }
                return;
            }
            for group in groups(messages) {
                let permits: Vec<_> = permits.drain(..group.len().min(permits.len())).collect();
                let run =
                    Run { shared: self.shared.clone(), acks: self.acks.clone(), hard_stop: self.hard_stop.clone() };
                let abandon = self.abandon.clone();
                self.tracker.spawn(abandon.run_until_cancelled_owned(async move {
                    let mut rest = group.into_iter();
                    while let Some(message) = rest.next() {
                        let id = message.id.clone();
                        if run.process(message).await {
                            run.shared.ended(&id);
                        } else {
                            // It stays (retried, postponed, released, kept):
                            // the rest of its group must not run before it.
                            release_behind(&run.shared, rest).await;
                            break;
                        }
                    }
                    drop(permits);
                }));
            }
        }
    }
}

/// Messages of one FIFO group run in order, in one task; others one task each.
fn groups(messages: Vec<Message>) -> Vec<Vec<Message>> {
    let mut out: Vec<Vec<Message>> = Vec::new();
    let mut by_group: HashMap<String, usize> = HashMap::new();
    for message in messages {
        match message.group_id.clone() {
            Some(group) => match by_group.get(&group) {
                Some(&at) => out[at].push(message),
                None => {
                    by_group.insert(group, out.len());
                    out.push(vec![message]);
                }
            },
            None => out.push(vec![message]),
        }
    }
    out
}

/// Hands back, unrun, the messages of a FIFO group received after one that
/// did not end. The queue delivers nothing more of the group while that one is
/// in flight, and then it comes first: the group stays in order. A release
/// that fails leaves its message in flight until its visibility timeout, which
/// holds the group back the same way.
pub(super) async fn release_behind<Q: Queue>(shared: &Shared<Q>, messages: impl Iterator<Item = Message>) {
    for message in messages {
        match shared.queue.change_visibility(&message.receipt, Duration::ZERO).await {
            Ok(()) => shared.released_unrun(&message),
            Err(error) => tracing::warn!(
                %error,
                message_id = %message.id,
                "could not hand back a message behind a failed one of its FIFO group; it returns after its \
                 visibility timeout"
            ),
        }
    }
}

pub(super) async fn release<Q: Queue>(shared: &Shared<Q>, message: &Message) {
    match shared.queue.change_visibility(&message.receipt, Duration::ZERO).await {
        Ok(()) => {
            shared.counters.released.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => tracing::warn!(%error, message_id = %message.id, "could not release a message at shutdown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_between_failed_receives_grows_to_a_second_and_stays_there() {
        let pauses: Vec<u64> = (1..=8).map(|n| receive_backoff(n).as_millis() as u64).collect();
        assert_eq!(pauses, [200, 400, 800, 1000, 1000, 1000, 1000, 1000]);
        assert_eq!(receive_backoff(u32::MAX), MAX_RECEIVE_PAUSE);
    }
}
