//! [`Worker`]: receives tasks and runs them — rolling concurrency, batched
//! acks, visibility heartbeats, retries through visibility, dead letters,
//! graceful shutdown.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::config::Config;
use crate::error::Result;
use crate::handler::{Handlers, Hook, OnFail, Proceed, Registered, RunOutcome, TaskContext, TaskResult};
use crate::queue::{MAX_BATCH, MAX_DELAY, MAX_VISIBILITY, Message, Outgoing, Queue};
use crate::retry::{Backoff, Progression};
use crate::wire::{self, Envelope};

/// The attribute naming why a message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "dead_letter_reason";

mod acker;
mod health;
mod outcome;
mod poller;
mod run;
mod task_metrics;

use acker::acker;
pub use health::WorkerHealth;
use poller::{Poller, receive_backoff};
use run::Run;
use task_metrics::{TaskMetrics, describe_metrics};

/// What a worker did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Messages received.
    pub received: u64,
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Task runs that failed (and were retried or given up).
    pub failed: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Messages released at shutdown (visible again at once).
    pub released: u64,
    /// Messages of tasks that could not run (malformed, unknown, or failures
    /// exhausted) deleted for want of a dead-letter queue.
    pub discarded: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    released: AtomicU64,
    discarded: AtomicU64,
}

/// Consumes one queue's tasks.
pub struct Worker<Q: Queue + Clone> {
    /// Owned here while the builder methods set it, so that none of them can
    /// be lost; [`run`](Self::run) shares it with the pollers and runs.
    shared: Shared<Q>,
}

impl<Q: Queue + Clone> std::fmt::Debug for Worker<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

/// The worker's settings and state: owned by [`Worker`] until it runs, then
/// shared (in an `Arc`) by its pollers and task runs.
struct Shared<Q> {
    queue: Q,
    dead_letter: Option<Q>,
    pools: HashMap<String, Q>,
    handlers: Handlers,
    config: Config,
    health: WorkerHealth,
    counters: Counters,
    clock: fn() -> SystemTime,
    /// Metric handles per task, registered when the worker is built.
    metrics: HashMap<String, TaskMetrics>,
    hook: Option<Arc<dyn Hook>>,
    in_flight: metrics::Gauge,
    /// FIFO messages this worker received and released unrun behind a failed
    /// message of their group, by message id: receives that were not attempts.
    unrun: Mutex<HashMap<String, u32>>,
}

/// The most messages [`Shared::unrun`] remembers; past it, it starts afresh
/// (attempts then count those receives, as they would on another worker).
const MAX_UNRUN: usize = 10_000;

/// The `task` label of a task name that is not registered: names arrive in
/// messages (another service's tasks, malformed messages), and each label value
/// is a series kept for the life of the process. (A task registered as
/// `unknown` shares the bucket.)
const UNKNOWN_TASK_LABEL: &str = "unknown";

impl<Q> Shared<Q> {
    /// The `task` label for a name taken from a message: the name if it is
    /// registered, else [`UNKNOWN_TASK_LABEL`].
    fn task_label(&self, task: &str) -> String {
        let known = self.handlers.tasks.contains_key(task);
        if known { task } else { UNKNOWN_TASK_LABEL }.to_owned()
    }

    /// Takes the receives this worker released unrun off the message's count,
    /// so that its attempt counts its runs.
    fn correct_attempt(&self, message: &mut Message) {
        let unrun = self.unrun.lock().unwrap_or_else(PoisonError::into_inner).get(&message.id).copied();
        if let Some(unrun) = unrun {
            message.receive_count = message.receive_count.saturating_sub(unrun).max(1);
        }
    }

    fn released_unrun(&self, message: &Message) {
        let mut unrun = self.unrun.lock().unwrap_or_else(PoisonError::into_inner);
        if unrun.len() >= MAX_UNRUN && !unrun.contains_key(&message.id) {
            unrun.clear();
        }
        *unrun.entry(message.id.clone()).or_default() += 1;
    }

    fn ended(&self, message_id: &str) {
        let mut unrun = self.unrun.lock().unwrap_or_else(PoisonError::into_inner);
        if !unrun.is_empty() {
            unrun.remove(message_id);
        }
    }
}

impl<Q: Queue + Clone> Worker<Q> {
    /// A worker running the tasks of `handlers` from `queue`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    pub fn new(queue: Q, handlers: Handlers, config: Config) -> Result<Self> {
        config.validate()?;
        describe_metrics();
        Ok(Self {
            shared: Shared {
                queue,
                dead_letter: None,
                pools: HashMap::new(),
                config,
                health: WorkerHealth::default(),
                counters: Counters::default(),
                clock: SystemTime::now,
                metrics: handlers.tasks.keys().map(|task| (task.clone(), TaskMetrics::new(task))).collect(),
                in_flight: metrics::gauge!("chassis_tasks_in_flight"),
                hook: None,
                unrun: Mutex::default(),
                handlers,
            },
        })
    }

    /// The dead-letter queue: malformed, unknown and exhausted tasks go there,
    /// with the reason in the `dead_letter_reason` attribute. Overrides
    /// `tasks.dead_letter_queue`, which [`run`](Self::run) otherwise opens by
    /// name ([`Queue::sibling`]). Without either, such tasks are deleted with
    /// an ERROR line once they end.
    #[must_use]
    pub fn dead_letter(mut self, queue: Q) -> Self {
        self.shared.dead_letter = Some(queue);
        self
    }

    /// Another service's pool, for `on_fail` tasks sent there.
    #[must_use]
    pub fn pool(mut self, name: impl Into<String>, queue: Q) -> Self {
        self.shared.pools.insert(name.into(), queue);
        self
    }

    /// Replaces the wall clock that `when` attributes are compared with (for
    /// tests on a paused clock).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> Self {
        self.shared.clock = clock;
        self
    }

    /// Observes every run (and may skip tasks); see [`Hook`].
    #[must_use]
    pub fn hook(mut self, hook: impl Hook) -> Self {
        self.shared.hook = Some(Arc::new(hook));
        self
    }

    /// The health a readiness check reads. Settings given after it was taken
    /// still apply.
    pub fn health(&self) -> WorkerHealth {
        self.shared.health.clone()
    }

    /// Runs until `shutdown` fires; then stops receiving, lets in-flight tasks
    /// finish within the shutdown deadline, releases what it cannot finish,
    /// flushes acks and returns.
    ///
    /// It returns at most `shutdown_deadline_secs` after `shutdown` fires,
    /// whatever the queue does. Tasks, and a receive in progress that may not
    /// be dropped ([`Queue::CANCEL_SAFE_RECEIVE`]), have the deadline less a
    /// fifth of it (at most 2 s); then unfinished tasks are stopped and their
    /// messages handed back, and pending deletes flushed, in the time left.
    /// Whatever is still waiting on the queue at the deadline (a hung receive,
    /// release or delete) is abandoned: its messages come back after their
    /// visibility timeout, and a task whose delete was abandoned runs again.
    ///
    /// A configured `tasks.dead_letter_queue` is opened first; until it is
    /// open, the worker receives nothing and its [`WorkerHealth`] says why.
    pub async fn run(self, shutdown: CancellationToken) -> Report {
        let mut shared = self.shared;
        if let Some(name) = shared.config.dead_letter_queue.clone().filter(|_| shared.dead_letter.is_none()) {
            let Some(dead_letter) = open_dead_letter(&shared, &name, &shutdown).await else {
                return Report::default();
            };
            shared.dead_letter = Some(dead_letter);
        }
        let shared = Arc::new(shared);
        let concurrency = shared.config.concurrency;
        let slots = Arc::new(Semaphore::new(concurrency));
        let tracker = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        let abandon = CancellationToken::new();
        let (ack_tx, ack_rx) = mpsc::unbounded_channel::<String>();
        let mut acker = tokio::spawn(acker(shared.queue.clone(), ack_rx));
        shared.health.consumer(true);
        shared.health.queue(Ok(()));

        // By default every poller can always take a full batch of 10.
        let pollers = shared.config.pollers.unwrap_or(concurrency / MAX_BATCH).max(1);
        let mut polling = tokio::task::JoinSet::new();
        for _ in 0..pollers {
            let ctx = Poller {
                shared: shared.clone(),
                slots: slots.clone(),
                tracker: tracker.clone(),
                shutdown: shutdown.clone(),
                hard_stop: hard_stop.clone(),
                abandon: abandon.clone(),
                acks: ack_tx.clone(),
            };
            polling.spawn(ctx.run());
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = async { while polling.join_next().await.is_some() {} } => {}
        }
        // Every wait from here on ends by `finish_by`. Tasks, and a receive
        // in progress, have until `tasks_by`; the rest is kept for handing
        // back what is unfinished and flushing deletes.
        let deadline = Duration::from_secs(shared.config.shutdown_deadline_secs);
        let finish_by = tokio::time::Instant::now() + deadline;
        let tasks_by = finish_by - cleanup_reserve(deadline);
        let finished = tokio::time::timeout_at(tasks_by, async {
            while polling.join_next().await.is_some() {}
            tracker.close();
            tracker.wait().await;
        })
        .await;
        shared.health.consumer(false);
        if finished.is_err() {
            tracing::warn!(
                deadline_secs = deadline.as_secs(),
                "tasks or a receive still running at the shutdown deadline; releasing them"
            );
            hard_stop.cancel();
        }
        let cleaned = tokio::time::timeout_at(finish_by, async {
            while polling.join_next().await.is_some() {}
            tracker.close();
            tracker.wait().await;
            drop(ack_tx);
            let _ = (&mut acker).await;
        })
        .await;
        if cleaned.is_err() {
            tracing::warn!(
                deadline_secs = deadline.as_secs(),
                "queue calls unfinished at the shutdown deadline (releases, deletes, a receive) are abandoned; their \
                 messages come back after their visibility timeout"
            );
            abandon.cancel();
            polling.abort_all();
            acker.abort();
        }
        let c = &shared.counters;
        Report {
            received: c.received.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            released: c.released.load(Ordering::Relaxed),
            discarded: c.discarded.load(Ordering::Relaxed),
        }
    }
}

/// The part of the shutdown deadline kept, after tasks are stopped, for
/// handing back their messages and flushing deletes: a fifth, at most 2 s.
fn cleanup_reserve(deadline: Duration) -> Duration {
    (deadline / 5).min(Duration::from_secs(2))
}

/// Opens the configured dead-letter queue, retrying with a capped backoff
/// (reported to the health) until it opens or `shutdown` fires (`None`).
async fn open_dead_letter<Q: Queue + Clone>(shared: &Shared<Q>, name: &str, shutdown: &CancellationToken) -> Option<Q> {
    let mut failures = 0u32;
    loop {
        let opened = tokio::select! {
            () = shutdown.cancelled() => return None,
            opened = shared.queue.sibling(name) => opened,
        };
        match opened {
            Ok(queue) => return Some(queue),
            Err(error) => {
                failures += 1;
                let pause = receive_backoff(failures);
                let error = format!("cannot open the dead-letter queue `{name}`: {error}");
                tracing::error!(%error, retry_in_ms = pause.as_millis() as u64, "the worker waits for it");
                shared.health.queue(Err(error));
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}
