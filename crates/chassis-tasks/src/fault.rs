//! [`FaultyQueue`]: a queue that injects the faults real queues have, for
//! testing code that must survive them (ours and a service's own).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::queue::{EntryResult, Message, Outgoing, Queue, QueueAttributes, QueueError};

/// Wraps a queue and, on demand, fails its calls the way SQS can: throttled
/// receives and sends, deletes whose receipt is reported invalid (the message
/// stays and comes back after its visibility timeout — a lost delete), and
/// calls that never complete (a process stopping mid-send, a connection that
/// never answers). Cheap to clone:
/// clones share the faults, so a test keeps one to steer the worker's.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use chassis_tasks::{FaultyQueue, MemoryQueue, Outgoing, Queue};
///
/// let queue = FaultyQueue::new(MemoryQueue::new("q"));
/// queue.fail_receives(2);
/// assert!(queue.receive(1, std::time::Duration::ZERO, std::time::Duration::from_secs(30)).await.is_err());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FaultyQueue<Q> {
    inner: Q,
    faults: Arc<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
    receives_to_fail: AtomicU32,
    sends_to_fail: AtomicU32,
    deletes_to_lose: AtomicU32,
    lose_every_nth_delete: AtomicU32,
    deletes_seen: AtomicU64,
    deletes_lost: AtomicU64,
    hang_sends: AtomicBool,
    hang_receives: AtomicBool,
    hang_deletes: AtomicBool,
    hang_visibility_changes: AtomicBool,
}

/// Takes one from `counter` if it is above zero; whether it did.
fn take(counter: &AtomicU32) -> bool {
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

/// Never completes if `hang` is set when called.
async fn hang_while(hang: &AtomicBool) {
    if hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}

impl<Q> FaultyQueue<Q> {
    /// `inner`, with no faults yet.
    pub fn new(inner: Q) -> Self {
        Self { inner, faults: Arc::default() }
    }

    /// The wrapped queue.
    pub fn inner(&self) -> &Q {
        &self.inner
    }

    /// The next `n` receives fail with a transient (throttling) error.
    pub fn fail_receives(&self, n: u32) {
        self.faults.receives_to_fail.store(n, Ordering::SeqCst);
    }

    /// The next `n` send calls (single or batch) fail as a whole with a
    /// transient error; nothing of them is sent.
    pub fn fail_sends(&self, n: u32) {
        self.faults.sends_to_fail.store(n, Ordering::SeqCst);
    }

    /// The next `n` delete entries report [`QueueError::InvalidReceipt`] and
    /// delete nothing: their messages come back after the visibility timeout.
    pub fn lose_deletes(&self, n: u32) {
        self.faults.deletes_to_lose.store(n, Ordering::SeqCst);
    }

    /// Every `n`th delete entry from now on is lost as in
    /// [`lose_deletes`](Self::lose_deletes) (0: none).
    pub fn lose_every_nth_delete(&self, n: u32) {
        self.faults.lose_every_nth_delete.store(n, Ordering::SeqCst);
    }

    /// While `hang` holds, send calls never complete.
    pub fn hang_sends(&self, hang: bool) {
        self.faults.hang_sends.store(hang, Ordering::SeqCst);
    }

    /// While `hang` holds, receives never complete (a connection that never
    /// answers). A receive already waiting in the wrapped queue is not affected.
    pub fn hang_receives(&self, hang: bool) {
        self.faults.hang_receives.store(hang, Ordering::SeqCst);
    }

    /// While `hang` holds, delete calls never complete.
    pub fn hang_deletes(&self, hang: bool) {
        self.faults.hang_deletes.store(hang, Ordering::SeqCst);
    }

    /// While `hang` holds, visibility changes (releases, retries, heartbeats)
    /// never complete.
    pub fn hang_visibility_changes(&self, hang: bool) {
        self.faults.hang_visibility_changes.store(hang, Ordering::SeqCst);
    }

    /// How many delete entries were lost so far.
    pub fn deletes_lost(&self) -> u64 {
        self.faults.deletes_lost.load(Ordering::SeqCst)
    }

    async fn before_send(&self) -> Result<(), QueueError> {
        if self.faults.hang_sends.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if take(&self.faults.sends_to_fail) {
            return Err(QueueError::Transient("injected: ThrottlingException on send".into()));
        }
        Ok(())
    }

    fn lose_this_delete(&self) -> bool {
        let seen = self.faults.deletes_seen.fetch_add(1, Ordering::SeqCst) + 1;
        let nth = u64::from(self.faults.lose_every_nth_delete.load(Ordering::SeqCst));
        let lost = take(&self.faults.deletes_to_lose) || (nth > 0 && seen % nth == 0);
        if lost {
            self.faults.deletes_lost.fetch_add(1, Ordering::SeqCst);
        }
        lost
    }
}

impl<Q: Queue + Clone> Queue for FaultyQueue<Q> {
    const CANCEL_SAFE_RECEIVE: bool = Q::CANCEL_SAFE_RECEIVE;

    async fn send(&self, message: Outgoing) -> Result<String, QueueError> {
        self.before_send().await?;
        self.inner.send(message).await
    }

    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<Vec<EntryResult<String>>, QueueError> {
        self.before_send().await?;
        self.inner.send_batch(messages).await
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Message>, QueueError> {
        hang_while(&self.faults.hang_receives).await;
        if take(&self.faults.receives_to_fail) {
            return Err(QueueError::Transient("injected: ThrottlingException on receive".into()));
        }
        self.inner.receive(max, wait, visibility).await
    }

    async fn delete_batch(&self, receipts: Vec<String>) -> Result<Vec<EntryResult<()>>, QueueError> {
        hang_while(&self.faults.hang_deletes).await;
        let (lost, kept): (Vec<_>, Vec<_>) = receipts.into_iter().enumerate().partition(|_| self.lose_this_delete());
        let (positions, kept): (Vec<usize>, Vec<String>) = kept.into_iter().unzip();
        let mut results: Vec<EntryResult<()>> = vec![Err(QueueError::InvalidReceipt); lost.len() + kept.len()];
        if !kept.is_empty() {
            for (at, result) in positions.into_iter().zip(self.inner.delete_batch(kept).await?) {
                results[at] = result;
            }
        }
        Ok(results)
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        hang_while(&self.faults.hang_visibility_changes).await;
        self.inner.change_visibility(receipt, timeout).await
    }

    async fn attributes(&self) -> Result<QueueAttributes, QueueError> {
        self.inner.attributes().await
    }

    /// The sibling, wrapped with faults of its own (none to begin with).
    async fn sibling(&self, name: &str) -> Result<Self, QueueError> {
        Ok(Self::new(self.inner.sibling(name).await?))
    }
}
