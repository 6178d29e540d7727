//! [`WorkerHealth`]: what a readiness check reads of a worker.

use super::*;

/// Whether the worker's queue is reachable and its consumer loop alive: what a
/// readiness endpoint reads. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct WorkerHealth {
    inner: Arc<HealthInner>,
}

#[derive(Debug, Default)]
struct HealthInner {
    queue_ok: AtomicBool,
    consumer_alive: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl WorkerHealth {
    /// The last receive reached the queue.
    pub fn queue_reachable(&self) -> bool {
        self.inner.queue_ok.load(Ordering::Acquire)
    }

    /// The consumer loop is running.
    pub fn consumer_alive(&self) -> bool {
        self.inner.consumer_alive.load(Ordering::Acquire)
    }

    /// Both of the above.
    pub fn is_ready(&self) -> bool {
        self.queue_reachable() && self.consumer_alive()
    }

    /// The last queue error, if the queue is unreachable.
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Marks the consumer loop running or stopped.
    pub(super) fn consumer(&self, alive: bool) {
        self.inner.consumer_alive.store(alive, Ordering::Release);
    }

    pub(super) fn queue(&self, result: std::result::Result<(), String>) {
        self.inner.queue_ok.store(result.is_ok(), Ordering::Release);
        *self.inner.last_error.lock().unwrap_or_else(PoisonError::into_inner) = result.err();
    }
}
