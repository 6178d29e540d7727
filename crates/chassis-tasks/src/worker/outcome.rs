//! A run's [`Outcome`] and [`Run::apply`], the one place that applies it: the
//! metrics and the report's counters, the hook, then the message's end (ack,
//! retry, `on_fail` task, dead letter, release).

use super::poller::release;
use super::run::Run;
use super::*;

/// What a message came to. Decided by [`Run`] (`run.rs`), applied by
/// [`Run::apply`]: nothing counts, records or acks before that.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The shutdown deadline passed before or while it ran: handed back.
    Released,
    /// Not to run yet (due later, or no handler here): sent again after
    /// `wait` without using up an attempt; `unknown_receives` is recorded on
    /// the new message.
    Postponed { wait: Duration, unknown_receives: Option<u32> },
    /// The hook said not to run it: deleted.
    Skipped,
    /// The handler succeeded: recorded by the hook, then deleted.
    Succeeded(TaskContext),
    /// The run failed, or asked to be retried, with attempts left: hidden for `wait`.
    Retrying { ctx: TaskContext, cause: Cause, wait: Duration },
    /// The run failed for good (failures exhausted, or it gave up): recorded,
    /// its `on_fail` task sent, dead-lettered.
    Exhausted { ctx: TaskContext, cause: Cause, on_fail: Option<OnFail> },
    /// The message cannot run (malformed, or no handler after
    /// `unknown_task_receives` receives): recorded when its task is known
    /// (`ctx`), then dead-lettered.
    Rejected { reason: String, ctx: Option<TaskContext> },
}

/// Why a run is retried or exhausted.
#[derive(Debug)]
pub(super) enum Cause {
    /// The handler failed (an error, a panic, a timeout) or gave up.
    Failed(String),
    /// The handler asked to be retried ([`TaskResult::Retry`]).
    Asked,
}

/// What the metrics and the [`Report`] count of a message's end.
#[derive(Debug, Clone, Copy)]
enum Tally {
    Succeeded,
    /// Retried; `failed` when the handler failed (rather than asked for it).
    Retried {
        failed: bool,
    },
    /// Given up; `failed` as above.
    Exhausted {
        failed: bool,
    },
    DeadLettered,
    Discarded,
}

/// How a message that cannot run left the queue.
enum Disposal {
    DeadLettered,
    Discarded,
}

impl Outcome {
    fn tally(&self) -> Option<(&str, Tally)> {
        match self {
            Self::Succeeded(ctx) => Some((&ctx.task, Tally::Succeeded)),
            Self::Retrying { ctx, cause, .. } => Some((&ctx.task, Tally::Retried { failed: cause.failed() })),
            Self::Exhausted { ctx, cause, .. } => Some((&ctx.task, Tally::Exhausted { failed: cause.failed() })),
            Self::Released | Self::Postponed { .. } | Self::Skipped | Self::Rejected { .. } => None,
        }
    }
}

impl Cause {
    fn failed(&self) -> bool {
        matches!(self, Self::Failed(_))
    }
}

impl<Q: Queue + Clone> Run<Q> {
    /// Applies a message's outcome, once: counts it (metrics and report),
    /// tells the hook, then ends or keeps the message. Whether the message
    /// ended (it is deleted, or its delete is queued) rather than staying in
    /// the queue. Nothing is deleted, sent on or dead-lettered whose final
    /// outcome the hook did not record ([`Run::record`]).
    pub(super) async fn apply(&self, message: &Message, outcome: Outcome) -> bool {
        if let Some((task, tally)) = outcome.tally() {
            self.count(task, tally);
        }
        match outcome {
            Outcome::Released => {
                release(&self.shared, message).await;
                false
            }
            Outcome::Postponed { wait, unknown_receives } => self.postpone(message, wait, unknown_receives).await,
            Outcome::Skipped => {
                tracing::info!("task skipped by the worker's hook");
                self.ack(message)
            }
            Outcome::Succeeded(ctx) => {
                tracing::debug!("task succeeded");
                self.record(&ctx, RunOutcome::Succeeded, message).await && self.ack(message)
            }
            Outcome::Retrying { ctx, cause, wait } => {
                let retry_in_ms = wait.as_millis() as u64;
                let reason = match cause {
                    Cause::Asked => {
                        tracing::info!(retry_in_ms, "task asked to be retried");
                        "the task asked to be retried".to_owned()
                    }
                    Cause::Failed(reason) => {
                        tracing::warn!(%reason, retry_in_ms, "task failed; it will be retried");
                        reason
                    }
                };
                // Nothing final to record: a hook that misses a retry loses nothing.
                self.notify(&ctx, RunOutcome::Retrying(reason)).await;
                self.hide(message, wait).await;
                false
            }
            Outcome::Exhausted { ctx, cause, on_fail } => {
                let reason = match cause {
                    Cause::Failed(reason) => reason,
                    Cause::Asked => "retries exhausted".to_owned(),
                };
                tracing::error!(%reason, attempt = message.receive_count, "TASK_FAILED: failures exhausted");
                self.record(&ctx, RunOutcome::Failed(reason.clone()), message).await
                    && self.send_on_fail(message, &ctx, on_fail.as_ref()).await
                    && self.dead_letter(message, &ctx.task, &reason).await
            }
            Outcome::Rejected { reason, ctx } => {
                if let Some(ctx) = &ctx {
                    if !self.record(ctx, RunOutcome::Failed(reason.clone()), message).await {
                        return false;
                    }
                }
                let task = ctx.as_ref().map_or("unknown", |ctx| ctx.task.as_str());
                self.dead_letter(message, task, &reason).await
            }
        }
    }

    /// The metrics and the report's counters of a message's end: the one
    /// place that counts outcomes.
    fn count(&self, task: &str, tally: Tally) {
        let metrics = self.shared.metrics.get(task);
        let counters = &self.shared.counters;
        match tally {
            Tally::Succeeded => {
                if let Some(m) = metrics {
                    m.succeeded.increment(1);
                }
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Tally::Retried { failed } => {
                if let Some(m) = metrics {
                    if failed {
                        m.failed.increment(1);
                    }
                    m.retried.increment(1);
                }
                if failed {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Tally::Exhausted { failed } => {
                if let Some(m) = metrics.filter(|_| failed) {
                    m.failed.increment(1);
                }
                // A task that asked for retries until none were left failed too.
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            Tally::DeadLettered => {
                metrics::counter!("chassis_tasks_dead_lettered_total", "task" => self.shared.task_label(task))
                    .increment(1);
                counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
            }
            Tally::Discarded => {
                metrics::counter!("chassis_tasks_discarded_total", "task" => self.shared.task_label(task)).increment(1);
                counters.discarded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues the message's delete; it ended.
    fn ack(&self, message: &Message) -> bool {
        let _ = self.acks.send(message.receipt.clone());
        true
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
            Ok(_) => self.ack(message),
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
        for attempt in 1..=HOOK_ATTEMPTS {
            match hook.after(ctx, outcome.clone()).await {
                Ok(()) => return true,
                Err(error) if attempt < HOOK_ATTEMPTS => {
                    let wait = HOOK_BACKOFF.delay(attempt);
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "the worker's hook failed");
                    tokio::time::sleep(wait).await;
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

    /// Sends the `on_fail` task of an exhausted task (with an `exec_id`
    /// derived from the task's, so a repeat sends the same execution);
    /// `false` when it could not: the message is kept and comes back, and the
    /// steps of its end repeat.
    async fn send_on_fail(&self, message: &Message, ctx: &TaskContext, on_fail: Option<&OnFail>) -> bool {
        let Some(on_fail) = on_fail else { return true };
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
            None => Err(format!("pool `{}` is not registered with the worker", on_fail.pool.as_deref().unwrap_or(""))),
        };
        let Err(error) = sent else { return true };
        let again = self.shared.config.backoff.delay(message.receive_count);
        tracing::error!(
            %error,
            on_fail = %on_fail.task,
            retry_in_ms = again.as_millis() as u64,
            "could not send the on_fail task; the message is kept and comes back"
        );
        self.hide(message, again).await;
        false
    }

    /// The end of a task that cannot run: sent to the dead-letter queue with
    /// the reason, then deleted; with no dead-letter queue, deleted with an
    /// ERROR line (as the Python original did). If the dead-letter send fails
    /// the message is kept and comes back.
    async fn dead_letter(&self, message: &Message, task: &str, reason: &str) -> bool {
        match self.dispose(message, reason).await {
            Some(Disposal::DeadLettered) => self.count(task, Tally::DeadLettered),
            Some(Disposal::Discarded) => self.count(task, Tally::Discarded),
            None => return false,
        }
        self.ack(message)
    }

    /// Sends the message to the dead-letter queue, or, with none, says it is
    /// discarded; `None` when the dead-letter send failed.
    async fn dispose(&self, message: &Message, reason: &str) -> Option<Disposal> {
        let Some(dead_letter) = &self.shared.dead_letter else {
            tracing::error!(
                %reason,
                message_id = %message.id,
                body = %truncated(&message.body),
                "task cannot run and there is no dead-letter queue (tasks.dead_letter_queue); its message is deleted"
            );
            return Some(Disposal::Discarded);
        };
        let mut attributes: BTreeMap<String, String> = message.attributes.clone();
        attributes.insert(DEAD_LETTER_REASON.to_owned(), reason.to_owned());
        let mut outgoing = Outgoing::new(message.body.clone()).attributes(attributes);
        if let Some(group) = &message.group_id {
            outgoing = outgoing.fifo(group, format!("dlq-{}", message.id));
        }
        match dead_letter.send(outgoing).await {
            Ok(_) => {
                tracing::error!(%reason, message_id = %message.id, "task dead-lettered");
                Some(Disposal::DeadLettered)
            }
            Err(error) => {
                tracing::error!(%error, %reason, "could not dead-letter; the message will come back");
                None
            }
        }
    }
}

/// How many times a failing hook is called for one final outcome, and the
/// waits between the calls: 100 ms doubling (100, 200, 400 ms).
const HOOK_ATTEMPTS: u32 = 4;
const HOOK_BACKOFF: Backoff =
    Backoff::new(Progression::Exponential, Duration::from_millis(100), Duration::from_millis(400));

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_hook_is_called_again_after_100_ms_doubling() {
        let pauses: Vec<u64> = (1..HOOK_ATTEMPTS).map(|n| HOOK_BACKOFF.delay(n).as_millis() as u64).collect();
        assert_eq!(pauses, [100, 200, 400]);
    }
}
