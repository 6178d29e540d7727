//! The run of one task: decode, trace, handler, outcome (metrics, report, hook), ack or retry.

use super::poller::release;
use super::*;

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

pub(super) struct Run<Q> {
    pub(super) shared: Arc<Shared<Q>>,
    pub(super) acks: mpsc::UnboundedSender<String>,
    pub(super) hard_stop: CancellationToken,
}

impl<Q: Queue + Clone> Run<Q> {
    /// Runs one message to its outcome; whether the message ended (it is
    /// deleted, or its delete is queued) rather than staying in the queue.
    pub(super) async fn process(&self, mut message: Message) -> bool {
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
}
