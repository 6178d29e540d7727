//! [`Worker`]: receives tasks and runs them — rolling concurrency, batched
//! acks, visibility heartbeats, retries through visibility, dead letters,
//! graceful shutdown.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::config::Config;
use crate::error::Result;
use crate::handler::{Hook, OnFail, Proceed, Registered, Registry, RunOutcome, TaskContext, TaskResult};
use crate::queue::{MAX_BATCH, MAX_DELAY, MAX_VISIBILITY, Message, Outgoing, Queue};
use crate::wire::{self, Envelope};

/// The attribute naming why a message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "dead_letter_reason";

/// Whether the worker's queue is reachable and its consumer loop alive: what a
/// readiness endpoint reads. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<HealthInner>,
}

#[derive(Debug, Default)]
struct HealthInner {
    queue_ok: AtomicBool,
    consumer_alive: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Health {
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

    fn queue(&self, result: std::result::Result<(), String>) {
        self.inner.queue_ok.store(result.is_ok(), Ordering::Release);
        *self.inner.last_error.lock().unwrap_or_else(PoisonError::into_inner) = result.err();
    }
}

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
    shared: Arc<Shared<Q>>,
}

impl<Q: Queue + Clone> std::fmt::Debug for Worker<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

struct Shared<Q> {
    queue: Q,
    dead_letter: Option<Q>,
    pools: HashMap<String, Q>,
    registry: Registry,
    config: Config,
    health: Health,
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
        let known = self.registry.tasks.contains_key(task);
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

struct TaskMetrics {
    received: metrics::Counter,
    succeeded: metrics::Counter,
    failed: metrics::Counter,
    retried: metrics::Counter,
    duration: metrics::Histogram,
}

impl TaskMetrics {
    fn new(task: &str) -> Self {
        let labels = [("task", task.to_owned())];
        Self {
            received: metrics::counter!("chassis_tasks_received_total", &labels),
            succeeded: metrics::counter!("chassis_tasks_succeeded_total", &labels),
            failed: metrics::counter!("chassis_tasks_failed_total", &labels),
            retried: metrics::counter!("chassis_tasks_retried_total", &labels),
            duration: metrics::histogram!("chassis_tasks_handler_duration_seconds", &labels),
        }
    }
}

/// The `# HELP` of the worker's metrics. Described when a worker is built
/// (after the service installed its recorder, which keeps the descriptions).
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("chassis_tasks_received_total", Unit::Count, "Task messages received by the worker, by task");
    describe_counter!("chassis_tasks_succeeded_total", Unit::Count, "Task runs that succeeded, by task");
    describe_counter!(
        "chassis_tasks_failed_total",
        Unit::Count,
        "Task runs that failed (error, panic or timeout), by task"
    );
    describe_counter!(
        "chassis_tasks_retried_total",
        Unit::Count,
        "Failed task runs left in the queue for another attempt, by task"
    );
    describe_histogram!("chassis_tasks_handler_duration_seconds", Unit::Seconds, "How long task handlers ran, by task");
    describe_gauge!("chassis_tasks_in_flight", Unit::Count, "Task handlers running now");
    describe_counter!("chassis_tasks_hook_failures_total", Unit::Count, "Job hook calls that failed, by task");
    describe_counter!("chassis_tasks_discarded_total", Unit::Count, "Task messages discarded without a run, by task");
    describe_counter!(
        "chassis_tasks_dead_lettered_total",
        Unit::Count,
        "Task messages moved to the dead letters, by task"
    );
}

impl<Q: Queue + Clone> Worker<Q> {
    /// A worker running `registry`'s tasks from `queue`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    pub fn new(queue: Q, registry: Registry, config: Config) -> Result<Self> {
        config.validate()?;
        describe_metrics();
        Ok(Self {
            shared: Arc::new(Shared {
                queue,
                dead_letter: None,
                pools: HashMap::new(),
                config,
                health: Health::default(),
                counters: Counters::default(),
                clock: SystemTime::now,
                metrics: registry.tasks.keys().map(|task| (task.clone(), TaskMetrics::new(task))).collect(),
                in_flight: metrics::gauge!("chassis_tasks_in_flight"),
                hook: None,
                unrun: Mutex::default(),
                registry,
            }),
        })
    }

    fn shared_mut(&mut self) -> Option<&mut Shared<Q>> {
        Arc::get_mut(&mut self.shared)
    }

    /// The dead-letter queue: malformed, unknown and exhausted tasks go there,
    /// with the reason in the `dead_letter_reason` attribute. Overrides
    /// `tasks.dead_letter_queue`, which [`run`](Self::run) otherwise opens by
    /// name ([`Queue::sibling`]). Without either, such tasks are deleted with
    /// an ERROR line once they end.
    #[must_use]
    pub fn dead_letter(mut self, queue: Q) -> Self {
        if let Some(shared) = self.shared_mut() {
            shared.dead_letter = Some(queue);
        }
        self
    }

    /// Another service's pool, for `on_fail` tasks sent there.
    #[must_use]
    pub fn pool(mut self, name: impl Into<String>, queue: Q) -> Self {
        if let Some(shared) = self.shared_mut() {
            shared.pools.insert(name.into(), queue);
        }
        self
    }

    /// Replaces the wall clock that `when` attributes are compared with (for
    /// tests on a paused clock).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> Self {
        if let Some(shared) = self.shared_mut() {
            shared.clock = clock;
        }
        self
    }

    /// Observes every run (and may skip tasks); see [`Hook`].
    #[must_use]
    pub fn hook(mut self, hook: impl Hook) -> Self {
        if let Some(shared) = self.shared_mut() {
            shared.hook = Some(Arc::new(hook));
        }
        self
    }

    /// The health a readiness check reads.
    pub fn health(&self) -> Health {
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
    /// open, the worker receives nothing and its [`Health`] says why.
    pub async fn run(self, shutdown: CancellationToken) -> Report {
        let mut shared = self.shared;
        if let Some(name) = shared.config.dead_letter_queue.clone().filter(|_| shared.dead_letter.is_none()) {
            let Some(dead_letter) = open_dead_letter(&shared, &name, &shutdown).await else {
                return Report::default();
            };
            match Arc::get_mut(&mut shared) {
                Some(owned) => owned.dead_letter = Some(dead_letter),
                None => tracing::error!("the worker's state is shared before it runs; the dead-letter queue is unused"),
            }
        }
        let concurrency = shared.config.concurrency;
        let slots = Arc::new(Semaphore::new(concurrency));
        let tracker = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        let abandon = CancellationToken::new();
        let (ack_tx, ack_rx) = mpsc::unbounded_channel::<String>();
        let mut acker = tokio::spawn(acker(shared.queue.clone(), ack_rx));
        shared.health.inner.consumer_alive.store(true, Ordering::Release);
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
        shared.health.inner.consumer_alive.store(false, Ordering::Release);
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

/// The pause after `failures` failed queue calls in a row: 100 ms doubling,
/// at most [`MAX_RECEIVE_PAUSE`], so that the worker sees a queue that is back
/// (and reports ready) within about a second.
fn receive_backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64 << failures.clamp(1, 4)).min(MAX_RECEIVE_PAUSE)
}

/// The longest pause between receives while the queue fails.
const MAX_RECEIVE_PAUSE: Duration = Duration::from_secs(1);

/// Deletes acknowledged messages in batches of up to 10, off the receive path,
/// with up to 16 batch calls in flight (a queue call may take a round trip).
async fn acker<Q: Queue + Clone>(queue: Q, mut rx: mpsc::UnboundedReceiver<String>) {
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
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(error) => {
                tracing::error!(%error, count = receipts.len(), "could not delete finished tasks' messages");
                return;
            }
        }
    }
}

struct Poller<Q> {
    shared: Arc<Shared<Q>>,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    /// Cancelled at the shutdown deadline: tasks still running are dropped.
    abandon: CancellationToken,
    acks: mpsc::UnboundedSender<String>,
}

impl<Q: Queue + Clone> Poller<Q> {
    async fn run(self) {
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
async fn release_behind<Q: Queue>(shared: &Shared<Q>, messages: impl Iterator<Item = Message>) {
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

async fn release<Q: Queue>(shared: &Shared<Q>, message: &Message) {
    match shared.queue.change_visibility(&message.receipt, Duration::ZERO).await {
        Ok(()) => {
            shared.counters.released.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => tracing::warn!(%error, message_id = %message.id, "could not release a message at shutdown"),
    }
}

/// How a task span relates to the trace its message carries.
#[derive(Debug, PartialEq, Eq)]
enum TraceLink<'a> {
    /// The first attempt: a child of the sender's span.
    Parent(&'a chassis_trace::TraceContext),
    /// A retry: a trace of its own, linked to the sender's (a retry minutes
    /// later would otherwise stretch the request's trace over them).
    Link(&'a chassis_trace::TraceContext),
    /// The message carried no trace (a Python sender, an old chassis).
    None,
}

/// How the task span joins the trace: the sender's trace continued on the
/// first attempt, a new trace linked to it on a retry, a new trace without one.
fn task_trace(sent: Option<&chassis_trace::TraceContext>, attempt: u32) -> TraceLink<'_> {
    match sent {
        Some(parent) if attempt <= 1 => TraceLink::Parent(parent),
        Some(previous) => TraceLink::Link(previous),
        None => TraceLink::None,
    }
}

struct Run<Q> {
    shared: Arc<Shared<Q>>,
    acks: mpsc::UnboundedSender<String>,
    hard_stop: CancellationToken,
}

impl<Q: Queue + Clone> Run<Q> {
    /// Runs one message to its outcome; whether the message ended (it is
    /// deleted, or its delete is queued) rather than staying in the queue.
    async fn process(&self, mut message: Message) -> bool {
        self.shared.correct_attempt(&mut message);
        if self.hard_stop.is_cancelled() {
            release(&self.shared, &message).await;
            return false;
        }
        let mut envelope = match wire::decode(&message) {
            Ok(envelope) => envelope,
            Err(malformed) => return self.dead_letter(&message, "unknown", &malformed.to_string()).await,
        };
        if envelope.exec_id.is_empty() {
            // A message without an exec_id (not sent by a chassis): its
            // message id is the same on every delivery.
            envelope.exec_id.clone_from(&message.id);
        }
        if let Some(when) = envelope.when {
            if let Ok(ahead) = when.duration_since((self.shared.clock)()) {
                if ahead > Duration::from_secs(1) {
                    // Not yet: postponed until then, without using up an attempt.
                    return self.postpone(&message, ahead, None).await;
                }
            }
        }
        let Some(registered) = self.shared.registry.tasks.get(&envelope.task) else {
            return self.unknown(&message, &envelope).await;
        };
        let span = tracing::error_span!(
            target: "chassis::task",
            "task",
            task = %envelope.task,
            exec_id = %envelope.exec_id,
            attempt = message.receive_count,
            job_id = envelope.job.as_ref().map(|j| j.id.as_str()),
            job_name = envelope.job.as_ref().map(|j| j.name.as_str()),
            traceparent = tracing::field::Empty,
            trace_parent_span_id = tracing::field::Empty,
            trace_link = tracing::field::Empty,
        );
        match task_trace(envelope.trace.as_ref(), message.receive_count) {
            TraceLink::Parent(parent) => {
                span.record("trace_parent_span_id", parent.span_id());
                chassis_trace::start(&span, Some(parent));
            }
            TraceLink::Link(previous) => {
                chassis_trace::start(&span, None);
                chassis_trace::link(&span, previous);
            }
            TraceLink::None => {
                chassis_trace::start(&span, None);
            }
        }
        self.execute(&message, &envelope, registered).instrument(span).await
    }

    async fn execute(&self, message: &Message, envelope: &Envelope, registered: &Registered) -> bool {
        let task = envelope.task.as_str();
        let metrics = self.shared.metrics.get(task);
        if let Some(m) = metrics {
            m.received.increment(1);
        }
        let ctx = TaskContext {
            task: task.to_owned(),
            exec_id: envelope.exec_id.clone(),
            attempt: message.receive_count,
            job: envelope.job.clone(),
        };
        if let Some(hook) = &self.shared.hook {
            if hook.before(&ctx).await == Proceed::Skip {
                tracing::info!("task skipped by the worker's hook");
                let _ = self.acks.send(message.receipt.clone());
                return true;
            }
        }
        let future = match (registered.handler)(&message.body, ctx.clone()) {
            Ok(future) => future,
            Err(malformed) => {
                let reason = match malformed {
                    wire::Malformed::Attributes(e) => format!("the attributes do not fit task `{task}`: {e}"),
                    other => other.to_string(),
                };
                if !self.record(&ctx, RunOutcome::Failed(reason.clone()), message).await {
                    return false;
                }
                return self.dead_letter(message, task, &reason).await;
            }
        };
        let timeout = registered.policy.timeout.or(self.shared.config.task_timeout_secs.map(Duration::from_secs));
        self.shared.in_flight.increment(1.0);
        let started = tokio::time::Instant::now();
        let outcome = {
            // A panic in the handler is caught here and counts as a failure.
            let run = async {
                let caught = CatchUnwind { future };
                match timeout {
                    Some(limit) => match tokio::time::timeout(limit, caught).await {
                        Ok(result) => result,
                        Err(_) => TaskResult::Failure(format!("timed out after {} ms", limit.as_millis())),
                    },
                    None => caught.await,
                }
            };
            tokio::select! {
                outcome = run => Some(outcome),
                () = self.heartbeat(message) => None,
                () = self.hard_stop.cancelled() => None,
            }
        };
        self.shared.in_flight.decrement(1.0);
        if let Some(m) = metrics {
            m.duration.record(started.elapsed().as_secs_f64());
        }
        let Some(outcome) = outcome else {
            // Shutdown deadline passed: the handler was dropped; give the
            // message back for another worker.
            release(&self.shared, message).await;
            return false;
        };
        let policy = &registered.policy;
        let max_failures = policy.max_failures.unwrap_or(self.shared.config.max_failures);
        let attempt = message.receive_count;
        match outcome {
            TaskResult::Success => {
                if let Some(m) = metrics {
                    m.succeeded.increment(1);
                }
                self.shared.counters.succeeded.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("task succeeded");
                if !self.record(&ctx, RunOutcome::Succeeded, message).await {
                    return false;
                }
                let _ = self.acks.send(message.receipt.clone());
                true
            }
            TaskResult::Retry(after) if attempt < max_failures => {
                if let Some(m) = metrics {
                    m.retried.increment(1);
                }
                let backoff = policy.backoff.as_ref().unwrap_or(&self.shared.config.backoff);
                let wait = after.unwrap_or_else(|| backoff.delay(attempt));
                tracing::info!(retry_in_ms = wait.as_millis() as u64, "task asked to be retried");
                // Nothing final to record: a hook that misses a retry loses nothing.
                self.notify(&ctx, RunOutcome::Retrying("the task asked to be retried".into())).await;
                self.hide(message, wait).await;
                false
            }
            TaskResult::Failure(reason) if attempt < max_failures => {
                if let Some(m) = metrics {
                    m.failed.increment(1);
                    m.retried.increment(1);
                }
                self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                let backoff = policy.backoff.as_ref().unwrap_or(&self.shared.config.backoff);
                let wait = backoff.delay(attempt);
                tracing::warn!(%reason, retry_in_ms = wait.as_millis() as u64, "task failed; it will be retried");
                self.notify(&ctx, RunOutcome::Retrying(reason)).await;
                self.hide(message, wait).await;
                false
            }
            TaskResult::Failure(reason) | TaskResult::Abandon(reason) => {
                if let Some(m) = metrics {
                    m.failed.increment(1);
                }
                self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.exhausted(message, &ctx, policy.on_fail.as_ref(), &reason).await
            }
            TaskResult::Retry(_) => {
                self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.exhausted(message, &ctx, policy.on_fail.as_ref(), "retries exhausted").await
            }
        }
    }

    /// Keeps a running task's message hidden: extends the visibility at half
    /// its length, up to SQS's 12 hours. Never returns on its own before then.
    async fn heartbeat(&self, message: &Message) {
        let visibility = self.shared.config.visibility();
        let mut total = visibility;
        loop {
            tokio::time::sleep(visibility / 2).await;
            if total >= MAX_VISIBILITY {
                tracing::warn!("task ran past the 12-hour visibility limit; it may run twice");
                std::future::pending::<()>().await;
            }
            let extend = visibility.min(MAX_VISIBILITY - total + visibility / 2);
            match self.shared.queue.change_visibility(&message.receipt, extend).await {
                Ok(()) => total += visibility / 2,
                Err(error) => tracing::warn!(%error, "could not extend a running task's visibility"),
            }
        }
    }

    async fn hide(&self, message: &Message, wait: Duration) {
        if let Err(error) = self.shared.queue.change_visibility(&message.receipt, wait.min(MAX_VISIBILITY)).await {
            tracing::warn!(%error, "could not delay the task; it returns after its visibility timeout");
        }
    }

    /// Postpones a task that must not run yet — due later (`when`), or with no
    /// handler here — by `wait`, without using up its attempts: the message is
    /// sent again with a delay (up to SQS's 15 minutes; again and again until
    /// due) and the received one deleted, so its receive count (the attempt,
    /// and what a redrive policy's `maxReceiveCount` counts) starts afresh.
    /// `unknown_receives` is recorded on the new message. A crash between the
    /// send and the delete leaves two copies with one `exec_id`. FIFO messages
    /// are hidden instead (sending again would reorder their group), so there
    /// a postponement does count as a receive.
    async fn postpone(&self, message: &Message, wait: Duration, unknown_receives: Option<u32>) -> bool {
        if message.group_id.is_some() {
            self.hide(message, wait).await;
            return false;
        }
        let mut attributes = message.attributes.clone();
        if let Some(n) = unknown_receives {
            attributes.insert(wire::UNKNOWN_RECEIVES.to_owned(), n.to_string());
        }
        let again = Outgoing::new(message.body.clone()).attributes(attributes).delay(wait.min(MAX_DELAY));
        match self.shared.queue.send(again).await {
            Ok(_) => {
                let _ = self.acks.send(message.receipt.clone());
                true
            }
            Err(error) => {
                tracing::warn!(%error, "could not postpone the task by sending it again; hiding it instead");
                self.hide(message, wait).await;
                false
            }
        }
    }

    /// Tells the hook about a run whose outcome is not final.
    async fn notify(&self, ctx: &TaskContext, outcome: RunOutcome) {
        if let Some(hook) = &self.shared.hook {
            if let Err(error) = hook.after(ctx, outcome).await {
                tracing::warn!(%error, "the worker's hook could not record a retry");
            }
        }
    }

    /// Has the hook record a final outcome, retrying a failing hook with a
    /// short backoff. `false` when it could not: the message is then hidden
    /// for the retry backoff and not deleted, so the task runs again and the
    /// hook hears the outcome again — nothing is deleted, sent on or
    /// dead-lettered whose outcome the hook did not record.
    async fn record(&self, ctx: &TaskContext, outcome: RunOutcome, message: &Message) -> bool {
        let Some(hook) = &self.shared.hook else { return true };
        let mut wait = HOOK_RETRY_FIRST;
        for attempt in 1..=HOOK_ATTEMPTS {
            match hook.after(ctx, outcome.clone()).await {
                Ok(()) => return true,
                Err(error) if attempt < HOOK_ATTEMPTS => {
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "the worker's hook failed");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(error) => {
                    metrics::counter!("chassis_tasks_hook_failures_total", "task" => self.shared.task_label(&ctx.task))
                        .increment(1);
                    let again = self.shared.config.backoff.delay(message.receive_count);
                    tracing::error!(
                        %error,
                        retry_in_ms = again.as_millis() as u64,
                        "the worker's hook could not record the task's outcome; the message is kept and the task \
                         will run again"
                    );
                    self.hide(message, again).await;
                    return false;
                }
            }
        }
        false
    }

    async fn unknown(&self, message: &Message, envelope: &Envelope) -> bool {
        let before: u32 = message.attributes.get(wire::UNKNOWN_RECEIVES).and_then(|n| n.parse().ok()).unwrap_or(0);
        let receives = before.saturating_add(message.receive_count);
        if receives >= self.shared.config.unknown_task_receives {
            let reason = format!("no handler for task `{}` after {receives} receives", envelope.task);
            let ctx = TaskContext {
                task: envelope.task.clone(),
                exec_id: envelope.exec_id.clone(),
                attempt: message.receive_count,
                job: envelope.job.clone(),
            };
            if !self.record(&ctx, RunOutcome::Failed(reason.clone()), message).await {
                return false;
            }
            return self.dead_letter(message, &envelope.task, &reason).await;
        }
        tracing::warn!(task = %envelope.task, receives, "no handler for this task; postponed");
        let wait = Duration::from_secs(self.shared.config.unknown_task_delay_secs);
        self.postpone(message, wait, Some(receives)).await
    }

    /// A task whose failures are exhausted (or that gave up) ends, once: the
    /// hook records the failure, the `on_fail` task is sent (with an `exec_id`
    /// derived from the task's, so a repeat sends the same execution), and the
    /// message is dead-lettered or, with no dead-letter queue, deleted. A step
    /// that fails keeps the message for a rerun, which repeats the steps.
    async fn exhausted(&self, message: &Message, ctx: &TaskContext, on_fail: Option<&OnFail>, reason: &str) -> bool {
        tracing::error!(%reason, attempt = message.receive_count, "TASK_FAILED: failures exhausted");
        if !self.record(ctx, RunOutcome::Failed(reason.to_owned()), message).await {
            return false;
        }
        if let Some(on_fail) = on_fail {
            let queue = match &on_fail.pool {
                Some(pool) => self.shared.pools.get(pool),
                None => Some(&self.shared.queue),
            };
            let sent = match queue {
                Some(queue) => {
                    let exec_id = on_fail_exec_id(&ctx.exec_id, &on_fail.task);
                    let now = (self.shared.clock)();
                    let mut outgoing =
                        wire::encode_body(&on_fail.task, message.body.clone(), &exec_id, now, ctx.job.as_ref());
                    if let Some(trace) = chassis_trace::current() {
                        outgoing.attributes.insert(wire::TRACEPARENT.to_owned(), trace.traceparent());
                    }
                    if let Some(group) = &message.group_id {
                        outgoing = outgoing.fifo(group, exec_id.clone());
                    }
                    queue.send(outgoing).await.map(|_| ()).map_err(|e| e.to_string())
                }
                None => {
                    Err(format!("pool `{}` is not registered with the worker", on_fail.pool.as_deref().unwrap_or("")))
                }
            };
            if let Err(error) = sent {
                let again = self.shared.config.backoff.delay(message.receive_count);
                tracing::error!(
                    %error,
                    on_fail = %on_fail.task,
                    retry_in_ms = again.as_millis() as u64,
                    "could not send the on_fail task; the message is kept and comes back"
                );
                self.hide(message, again).await;
                return false;
            }
        }
        self.dead_letter(message, &ctx.task, reason).await
    }

    /// The end of a task that cannot run: sent to the dead-letter queue with
    /// the reason, then deleted; with no dead-letter queue, deleted with an
    /// ERROR line (as the Python original did). If the dead-letter send fails
    /// the message is kept and comes back.
    async fn dead_letter(&self, message: &Message, task: &str, reason: &str) -> bool {
        let Some(dead_letter) = &self.shared.dead_letter else {
            metrics::counter!("chassis_tasks_discarded_total", "task" => self.shared.task_label(task)).increment(1);
            self.shared.counters.discarded.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                %reason,
                message_id = %message.id,
                body = %truncated(&message.body),
                "task cannot run and there is no dead-letter queue (tasks.dead_letter_queue); its message is deleted"
            );
            let _ = self.acks.send(message.receipt.clone());
            return true;
        };
        let mut attributes: BTreeMap<String, String> = message.attributes.clone();
        attributes.insert(DEAD_LETTER_REASON.to_owned(), reason.to_owned());
        let mut outgoing = Outgoing::new(message.body.clone()).attributes(attributes);
        if let Some(group) = &message.group_id {
            outgoing = outgoing.fifo(group, format!("dlq-{}", message.id));
        }
        match dead_letter.send(outgoing).await {
            Ok(_) => {
                metrics::counter!("chassis_tasks_dead_lettered_total", "task" => self.shared.task_label(task))
                    .increment(1);
                self.shared.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%reason, message_id = %message.id, "task dead-lettered");
                let _ = self.acks.send(message.receipt.clone());
                true
            }
            Err(error) => {
                tracing::error!(%error, %reason, "could not dead-letter; the message will come back");
                false
            }
        }
    }
}

/// How many times a failing hook is called for one final outcome, and the
/// first wait between calls (doubling).
const HOOK_ATTEMPTS: u32 = 4;
const HOOK_RETRY_FIRST: Duration = Duration::from_millis(100);

/// The `exec_id` of the `on_fail` task of execution `exec_id`: a UUID v5
/// (RFC 9562, name-based) of both, the same every time it is sent.
fn on_fail_exec_id(exec_id: &str, on_fail: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("chassis.on_fail/{on_fail}/{exec_id}").as_bytes())
        .to_string()
}

/// At most the first 512 bytes of a body, for a log line.
fn truncated(body: &str) -> &str {
    let mut end = body.len().min(512);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[..end]
}

/// Runs a handler's future, turning a panic into a failure.
struct CatchUnwind {
    future: crate::handler::BoxFuture<TaskResult>,
}

impl Future for CatchUnwind {
    type Output = TaskResult;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<TaskResult> {
        let future = &mut self.future;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!(panic = %message, "task handler panicked");
                std::task::Poll::Ready(TaskResult::Failure(format!("panicked: {message}")))
            }
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_attempt_continues_the_trace_and_a_retry_links_to_it() {
        let sent = chassis_trace::TraceContext::root();
        assert_eq!(task_trace(Some(&sent), 1), TraceLink::Parent(&sent));
        assert_eq!(task_trace(Some(&sent), 2), TraceLink::Link(&sent));
        assert_eq!(task_trace(None, 1), TraceLink::None);
    }

    #[test]
    fn the_pause_between_failed_receives_grows_to_a_second_and_stays_there() {
        let pauses: Vec<u64> = (1..=8).map(|n| receive_backoff(n).as_millis() as u64).collect();
        assert_eq!(pauses, [200, 400, 800, 1000, 1000, 1000, 1000, 1000]);
        assert_eq!(receive_backoff(u32::MAX), MAX_RECEIVE_PAUSE);
    }
}
