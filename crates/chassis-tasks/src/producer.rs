//! [`Producer`]: sends tasks.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::queue::{MAX_BATCH, MAX_DELAY, Outgoing, Queue, QueueError, batch_payload_limit};
use crate::wire::{self, JobRef};

/// Sends tasks to a queue. Cheap to clone if the queue is.
#[derive(Debug, Clone)]
pub struct Producer<Q> {
    queue: Q,
    max_size: std::sync::Arc<OnceCell<usize>>,
    clock: fn() -> SystemTime,
}

/// A task to send: built with [`Producer::task`], sent with [`Producer::send`].
#[derive(Debug, Clone)]
#[must_use = "a task is sent only by `.send().await`"]
pub struct Task {
    name: String,
    exec_id: String,
    attributes: std::result::Result<serde_json::Value, String>,
    delay: Duration,
    when: Option<SystemTime>,
    job: Option<JobRef>,
    fifo: Option<(String, String)>,
    trace: Option<chassis_trace::TraceContext>,
}

impl Task {
    /// A task `name` with `attributes` (any `Serialize`: the JSON body), and a
    /// new execution id (a UUID v4).
    ///
    /// The execution id is fixed here, not at sending: sending the same
    /// `Task` again (a retry after an error that may hide a successful send)
    /// sends the same execution, which the job hook and a handler keyed by
    /// `exec_id` count once. Build a new `Task` for a new execution.
    ///
    /// The current W3C trace context (the span this is called in, see
    /// chassis-trace) goes with the task as its `traceparent` attribute, and
    /// the worker's task span continues it.
    pub fn new(name: impl Into<String>, attributes: &impl Serialize) -> Self {
        Self {
            name: name.into(),
            exec_id: uuid::Uuid::new_v4().to_string(),
            attributes: serde_json::to_value(attributes).map_err(|e| e.to_string()),
            delay: Duration::ZERO,
            when: None,
            job: None,
            fifo: None,
            trace: chassis_trace::current(),
        }
    }

    /// Runs no sooner than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Runs no sooner than `when`. Beyond SQS's 15-minute delay limit the
    /// message is hidden again on each receive until then (as the original did).
    pub fn at(mut self, when: SystemTime) -> Self {
        self.when = Some(when);
        self
    }

    /// The job the task belongs to (`job_id` / `job_name` attributes).
    pub fn job(mut self, id: impl Into<String>, name: impl Into<String>) -> Self {
        self.job = Some(JobRef { id: id.into(), name: name.into() });
        self
    }

    /// FIFO queues: the message group and deduplication id. A FIFO message
    /// is sent without a delay (SQS refuses one); a task due later is held
    /// back by the worker, and the rest of its group waits behind it.
    pub fn fifo(mut self, group_id: impl Into<String>, dedup_id: impl Into<String>) -> Self {
        self.fifo = Some((group_id.into(), dedup_id.into()));
        self
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The execution id the task is sent with (the `exec_id` attribute).
    pub fn exec_id(&self) -> &str {
        &self.exec_id
    }

    /// The message and its execution id.
    fn message(&self, now: SystemTime) -> Result<(Outgoing, String)> {
        let attributes = self.attributes.as_ref().map_err(|reason| Error::Serialize {
            task: self.name.clone(),
            source: <serde_json::Error as serde::ser::Error>::custom(reason),
        })?;
        let exec_id = self.exec_id.clone();
        let when = self.when.unwrap_or(now + self.delay);
        let delay = when.duration_since(now).unwrap_or_default().max(self.delay).min(MAX_DELAY);
        let message = wire::encode(&self.name, attributes, &exec_id, when, self.job.as_ref(), self.trace.as_ref())
            .map_err(|source| Error::Serialize { task: self.name.clone(), source })?
            .delay(delay);
        let message = match &self.fifo {
            // FIFO queues refuse per-message delays: the `when` attribute
            // holds the task (and so its group) back until it is due.
            Some((group, dedup)) => message.delay(Duration::ZERO).fifo(group, dedup),
            None => message,
        };
        Ok((message, exec_id))
    }
}

impl<Q: Queue> Producer<Q> {
    /// A producer sending to `queue`.
    pub fn new(queue: Q) -> Self {
        Self { queue, max_size: std::sync::Arc::new(OnceCell::new()), clock: SystemTime::now }
    }

    /// Replaces the wall clock that stamps `when` (for tests on a paused clock).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> Self {
        self.clock = clock;
        self
    }

    /// The queue.
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    /// A task `name` with `attributes`, to configure and send.
    pub fn task(&self, name: impl Into<String>, attributes: &impl Serialize) -> Task {
        Task::new(name, attributes)
    }

    /// The queue's `MaximumMessageSize`, read once.
    async fn max_size(&self) -> Result<usize> {
        let size =
            self.max_size.get_or_try_init(|| async { self.queue.attributes().await.map(|a| a.max_message_size) });
        Ok(*size.await?)
    }

    /// Sends `task`; returns its execution id.
    ///
    /// # Errors
    /// [`Error::Serialize`], [`Error::TooLarge`] (checked before sending), or the queue's error.
    pub async fn send(&self, task: Task) -> Result<String> {
        let (message, exec_id) = task.message((self.clock)())?;
        let max = self.max_size().await?;
        if message.size() > max {
            return Err(Error::TooLarge { task: task.name, size: message.size(), max });
        }
        self.queue.send(message).await?;
        Ok(exec_id)
    }

    /// Sends many tasks in batches that fit SQS's limits — at most 10 entries
    /// and at most [`batch_payload_limit`] bytes in all per call — and returns
    /// each one's execution id or error, in order.
    ///
    /// # Errors
    /// Only when the queue's attributes cannot be read; each task's own failure
    /// ([`Error::TooLarge`], [`Error::Serialize`], the queue's) is in its entry.
    pub async fn send_all(&self, tasks: Vec<Task>) -> Result<Vec<Result<String>>> {
        let max = self.max_size().await?;
        let batch_limit = batch_payload_limit(max);
        let now = (self.clock)();
        let mut results: Vec<Option<Result<String>>> = Vec::with_capacity(tasks.len());
        // Messages ready to send, with their slot in `results`.
        let mut batch: Vec<(usize, Outgoing, String)> = Vec::with_capacity(MAX_BATCH);
        let mut batch_bytes = 0;
        for task in &tasks {
            let slot = results.len();
            results.push(None);
            let (message, exec_id) = match task.message(now) {
                Ok((message, _)) if message.size() > max => {
                    results[slot] = Some(Err(Error::TooLarge { task: task.name.clone(), size: message.size(), max }));
                    continue;
                }
                Ok(ready) => ready,
                Err(e) => {
                    results[slot] = Some(Err(e));
                    continue;
                }
            };
            if batch.len() == MAX_BATCH || batch_bytes + message.size() > batch_limit {
                self.send_batch(std::mem::take(&mut batch), &mut results).await;
                batch_bytes = 0;
            }
            batch_bytes += message.size();
            batch.push((slot, message, exec_id));
        }
        self.send_batch(batch, &mut results).await;
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Queue(QueueError::Other("missing batch entry result".into())))))
            .collect())
    }

    /// Sends one batch and files each entry's result in its slot.
    async fn send_batch(&self, batch: Vec<(usize, Outgoing, String)>, results: &mut [Option<Result<String>>]) {
        if batch.is_empty() {
            return;
        }
        let (slots, messages): (Vec<(usize, String)>, Vec<Outgoing>) =
            batch.into_iter().map(|(slot, message, exec_id)| ((slot, exec_id), message)).unzip();
        match self.queue.send_batch(messages).await {
            Ok(entries) => {
                let mut entries = entries.into_iter();
                for (slot, exec_id) in slots {
                    results[slot] = Some(match entries.next() {
                        Some(Ok(_)) => Ok(exec_id),
                        Some(Err(e)) => Err(Error::Queue(e)),
                        None => Err(Error::Queue(QueueError::Other("missing batch entry result".into()))),
                    });
                }
            }
            // The whole call failed: every entry of the batch did.
            Err(e) => {
                for (slot, _) in slots {
                    results[slot] = Some(Err(Error::Queue(e.clone())));
                }
            }
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl<Q: crate::sql::TransactionalQueue> Producer<Q> {
    /// Sends `tasks` inside the caller's transaction on the queue's database
    /// (`&mut *tx` of a `sqlx::Transaction`): the service commits its own data
    /// and the tasks together, or neither. Each task's execution id or error,
    /// in order; nothing is sent for an entry that fails. Receivers see the
    /// tasks when the transaction commits.
    ///
    /// # Errors
    /// When the queue's attributes cannot be read, or the database fails as a
    /// whole (the transaction is then unusable: roll it back).
    pub async fn send_in(&self, conn: &mut Q::Connection, tasks: Vec<Task>) -> Result<Vec<Result<String>>> {
        let max = self.max_size().await?;
        let now = (self.clock)();
        let mut results: Vec<Option<Result<String>>> = Vec::with_capacity(tasks.len());
        let mut messages = Vec::with_capacity(tasks.len());
        let mut slots = Vec::with_capacity(tasks.len());
        for task in &tasks {
            match task.message(now) {
                Ok((message, _)) if message.size() > max => {
                    results.push(Some(Err(Error::TooLarge { task: task.name.clone(), size: message.size(), max })));
                }
                Ok((message, exec_id)) => {
                    slots.push((results.len(), exec_id));
                    results.push(None);
                    messages.push(message);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let sent = self.queue.send_in(conn, messages).await?;
        for ((slot, exec_id), entry) in slots.into_iter().zip(sent) {
            results[slot] = Some(entry.map(|_| exec_id).map_err(Error::Queue));
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Queue(QueueError::Other("missing entry result".into())))))
            .collect())
    }
}
