//! Queue helpers: run a worker until N tasks finished or its queue is idle,
//! and look at what waits in a queue or its dead-letter queue — on any
//! backend (memory, SQLite, PostgreSQL, SQS).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chassis_tasks::{
    BoxFuture, CancellationToken, Hook, HookError, Message, Proceed, Queue, Report, RunOutcome, TaskContext, Worker,
};

use crate::{Error, Result};

/// How often a goal is checked while a worker runs (tokio's clock).
const POLL: Duration = Duration::from_millis(10);

/// A [`Hook`] that counts task outcomes, optionally around another hook
/// (a `JobHook`), which it calls first. Cheap to clone; clones share counts.
///
/// ```
/// use chassis_testkit::queue::Tally;
///
/// let tally = Tally::new();
/// // worker.hook(tally.clone()) — or Tally::around(JobHook::new(jobs)) to keep the job hook
/// assert_eq!((tally.finished(), tally.succeeded(), tally.failed(), tally.retried()), (0, 0, 0, 0));
/// ```
#[derive(Clone, Default)]
pub struct Tally {
    counts: Arc<Counts>,
    inner: Option<Arc<dyn Hook>>,
}

#[derive(Debug, Default)]
struct Counts {
    succeeded: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tally").field("counts", &self.counts).finish_non_exhaustive()
    }
}

impl Tally {
    /// A tally with no inner hook.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tally that calls `inner` first and counts what it heard.
    pub fn around(inner: impl Hook) -> Self {
        Self { counts: Arc::default(), inner: Some(Arc::new(inner)) }
    }

    /// Tasks that ended: succeeded or failed for good.
    pub fn finished(&self) -> u64 {
        self.succeeded() + self.failed()
    }

    /// Tasks that succeeded.
    pub fn succeeded(&self) -> u64 {
        self.counts.succeeded.load(Ordering::Acquire)
    }

    /// Tasks that failed for good (failures exhausted, abandoned, dead-lettered).
    pub fn failed(&self) -> u64 {
        self.counts.failed.load(Ordering::Acquire)
    }

    /// Runs that failed and will be tried again.
    pub fn retried(&self) -> u64 {
        self.counts.retried.load(Ordering::Acquire)
    }
}

impl Hook for Tally {
    fn before(&self, run: &TaskContext) -> BoxFuture<Proceed> {
        match &self.inner {
            Some(inner) => inner.before(run),
            None => Box::pin(async { Proceed::Run }),
        }
    }

    fn after(&self, run: &TaskContext, outcome: RunOutcome) -> BoxFuture<std::result::Result<(), HookError>> {
        let counter = match &outcome {
            RunOutcome::Succeeded => Some(&self.counts.succeeded),
            RunOutcome::Failed(_) => Some(&self.counts.failed),
            RunOutcome::Retrying(_) => Some(&self.counts.retried),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::AcqRel);
        }
        match &self.inner {
            Some(inner) => inner.after(run, outcome),
            None => Box::pin(async { Ok(()) }),
        }
    }
}

/// Runs `worker` until `tally` (its hook, or around its hook) has seen
/// `tasks` tasks finish, then stops it gracefully and returns its report.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use chassis_tasks::{Config, MemoryQueue, Producer, Handlers, Worker};
/// use chassis_testkit::queue::{Tally, run_until_finished};
///
/// let queue = MemoryQueue::new("billing");
/// let mut handlers = Handlers::new();
/// handlers.task("add", |n: u32, _ctx| async move { Ok::<_, std::io::Error>(()) })?;
/// let tally = Tally::new();
/// let worker = Worker::new(queue.clone(), handlers, Config::new("billing"))?.hook(tally.clone());
/// let producer = Producer::new(queue);
/// for n in 0..3u32 {
///     producer.send(producer.task("add", &n)).await?;
/// }
/// let report = run_until_finished(worker, &tally, 3, Duration::from_secs(30)).await?;
/// assert_eq!(report.succeeded, 3);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Timeout`] when they did not finish `within` (tokio's clock); the
/// worker is stopped first.
pub async fn run_until_finished<Q: Queue + Clone>(
    worker: Worker<Q>,
    tally: &Tally,
    tasks: u64,
    within: Duration,
) -> Result<Report> {
    run_until(worker, within, || {
        let done = tally.finished() >= tasks;
        async move { done }
    })
    .await
}

/// Runs `worker` until `queue` (its queue) is idle — nothing visible, in
/// flight or delayed — then stops it gracefully and returns its report.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use chassis_tasks::{Config, MemoryQueue, Producer, Handlers, Worker};
///
/// let queue = MemoryQueue::new("billing");
/// let mut handlers = Handlers::new();
/// handlers.task("noop", |_: (), _ctx| async { Ok::<_, std::io::Error>(()) })?;
/// Producer::new(queue.clone()).send(Producer::new(queue.clone()).task("noop", &())).await?;
/// let worker = Worker::new(queue.clone(), handlers, Config::new("billing"))?;
/// let report = chassis_testkit::queue::run_until_idle(worker, &queue, Duration::from_secs(30)).await?;
/// assert_eq!(report.succeeded, 1);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Timeout`] when it is not idle `within` (tokio's clock); the
/// worker is stopped first.
pub async fn run_until_idle<Q: Queue + Clone>(worker: Worker<Q>, queue: &Q, within: Duration) -> Result<Report> {
    run_until(worker, within, || async {
        queue.attributes().await.is_ok_and(|a| a.visible == 0 && a.in_flight == 0 && a.delayed == 0)
    })
    .await
}

async fn run_until<Q, F, Fut>(worker: Worker<Q>, within: Duration, mut done: F) -> Result<Report>
where
    Q: Queue + Clone,
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    let reached = tokio::time::timeout(within, async {
        while !done().await {
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .is_ok();
    shutdown.cancel();
    let report = running.await.unwrap_or_default();
    if reached { Ok(report) } else { Err(Error::Timeout { secs: within.as_secs() }) }
}

/// Up to `max` messages waiting in `queue` (received for a moment and made
/// visible again at once, so they stay; each look counts as a receive).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use chassis_tasks::{MemoryQueue, Producer};
///
/// let queue = MemoryQueue::new("billing");
/// let producer = Producer::new(queue.clone());
/// producer.send(producer.task("send_email", &"ada@example.com")).await?;
/// let waiting = chassis_testkit::queue::pending(&queue, 10).await?;
/// assert_eq!(waiting[0].attributes["task_name"], "send_email");
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Queue`].
pub async fn pending<Q: Queue>(queue: &Q, max: usize) -> Result<Vec<Message>> {
    Ok(chassis_tasks::monitor::peek(queue, max).await?)
}

/// Up to `max` messages of `queue`'s dead-letter queue named `dead_letter`
/// (`tasks.dead_letter_queue`), each with its `dead_letter_reason` attribute.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let queue = chassis_tasks::MemoryQueue::new("billing");
/// assert!(chassis_testkit::queue::dead_letters(&queue, "billing-dead", 10).await?.is_empty());
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Queue`] when it cannot be opened or read.
pub async fn dead_letters<Q: Queue>(queue: &Q, dead_letter: &str, max: usize) -> Result<Vec<Message>> {
    let dead = queue.sibling(dead_letter).await?;
    pending(&dead, max).await
}
