//! The run of one task: decode, trace, handler — up to the [`Outcome`] it
//! comes to, which [`Run::apply`] (in `outcome.rs`) then applies.

use futures_util::FutureExt as _;

use super::outcome::{Cause, Outcome};
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

/// Whether a received message runs here now.
enum Admission<'a> {
    /// It runs, with this handler; and the sender's span id, if it sent a trace.
    Run(Envelope, &'a Registered, Option<chassis_trace::SpanIdText<'a>>),
    /// It does not: what it comes to instead.
    Not(Outcome),
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
        let (envelope, registered, sender_span_id) = match self.admit(&message) {
            Admission::Run(envelope, registered, sender_span_id) => (envelope, registered, sender_span_id),
            Admission::Not(outcome) => return self.apply(&message, outcome).await,
        };
        let link = task_trace(envelope.trace.as_ref(), message.receive_count);
        let (parent, parent_span_id) = match link {
            TraceLink::Parent(parent) => (Some(parent), sender_span_id),
            TraceLink::Link(_) | TraceLink::None => (None, None),
        };
        // The span's trace is in its fields from its creation (a record
        // after it would make the log layer render the span again).
        let context = chassis_trace::TraceContext::next(parent);
        let traceparent = context.header();
        let span = tracing::error_span!(
            target: "chassis::task",
            "task",
            task = %envelope.task,
            exec_id = %envelope.exec_id,
            attempt = message.receive_count,
            job_id = envelope.job.as_ref().map(|j| j.id.as_str()),
            job_name = envelope.job.as_ref().map(|j| j.name.as_str()),
            traceparent = traceparent.as_str(),
            trace_parent_span_id = parent_span_id.as_ref().map(chassis_trace::SpanIdText::as_str),
            trace_link = tracing::field::Empty,
        );
        chassis_trace::start_recorded(&span, parent, context);
        if let TraceLink::Link(previous) = link {
            chassis_trace::link(&span, previous);
        }
        async {
            let outcome = self.execute(&message, &envelope, registered).await;
            self.apply(&message, outcome).await
        }
        .instrument(span)
        .await
    }

    /// The message's envelope and handler when it is to run here now; else
    /// the outcome of a message that does not run: released (the shutdown
    /// deadline passed), rejected (malformed), postponed (due later, or no
    /// handler here) or rejected (no handler after `unknown_task_receives`).
    fn admit<'a>(&'a self, message: &'a Message) -> Admission<'a> {
        if self.hard_stop.is_cancelled() {
            return Admission::Not(Outcome::Released);
        }
        let (mut envelope, sender_span_id) = match wire::decode(message) {
            Ok(decoded) => decoded,
            Err(malformed) => return Admission::Not(Outcome::Rejected { reason: malformed.to_string(), ctx: None }),
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
                    return Admission::Not(Outcome::Postponed { wait: ahead, unknown_receives: None });
                }
            }
        }
        match self.shared.handlers.tasks.get(&envelope.task) {
            Some(registered) => Admission::Run(envelope, registered, sender_span_id),
            None => Admission::Not(self.unknown(message, &envelope)),
        }
    }

    /// The outcome of a task with no handler here: postponed, or rejected
    /// once it was received `unknown_task_receives` times.
    fn unknown(&self, message: &Message, envelope: &Envelope) -> Outcome {
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
            return Outcome::Rejected { reason, ctx: Some(ctx) };
        }
        tracing::warn!(task = %envelope.task, receives, "no handler for this task; postponed");
        let wait = Duration::from_secs(self.shared.config.unknown_task_delay_secs);
        Outcome::Postponed { wait, unknown_receives: Some(receives) }
    }

    /// Runs the handler (unless the hook skips it) and decides what its
    /// result comes to; nothing here counts, records or acks.
    async fn execute(&self, message: &Message, envelope: &Envelope, registered: &Registered) -> Outcome {
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
                return Outcome::Skipped;
            }
        }
        let future = match (registered.handler)(&message.body, ctx.clone()) {
            Ok(future) => future,
            Err(malformed) => {
                let reason = match malformed {
                    wire::Malformed::Attributes(e) => format!("the attributes do not fit task `{task}`: {e}"),
                    other => other.to_string(),
                };
                return Outcome::Rejected { reason, ctx: Some(ctx) };
            }
        };
        let timeout = registered.policy.timeout.or(self.shared.config.task_timeout_secs.map(Duration::from_secs));
        self.shared.in_flight.increment(1.0);
        let started = tokio::time::Instant::now();
        let result = {
            // A panic in the handler is caught here and counts as a failure.
            let run = async {
                let caught = std::panic::AssertUnwindSafe(future)
                    .catch_unwind()
                    .map(|caught| caught.unwrap_or_else(|payload| panicked(payload.as_ref())));
                match timeout {
                    Some(limit) => match tokio::time::timeout(limit, caught).await {
                        Ok(result) => result,
                        Err(_) => TaskResult::Failure(format!("timed out after {} ms", limit.as_millis())),
                    },
                    None => caught.await,
                }
            };
            tokio::select! {
                result = run => Some(result),
                () = self.heartbeat(message) => None,
                () = self.hard_stop.cancelled() => None,
            }
        };
        self.shared.in_flight.decrement(1.0);
        if let Some(m) = metrics {
            m.duration.record(started.elapsed().as_secs_f64());
        }
        let Some(result) = result else {
            // Shutdown deadline passed: the handler was dropped; give the
            // message back for another worker.
            return Outcome::Released;
        };
        let policy = &registered.policy;
        let max_failures = policy.max_failures.unwrap_or(self.shared.config.max_failures);
        let attempt = message.receive_count;
        let backoff = policy.backoff.as_ref().unwrap_or(&self.shared.config.backoff);
        let on_fail = || policy.on_fail.clone();
        match result {
            TaskResult::Success => Outcome::Succeeded(ctx),
            TaskResult::Retry(after) if attempt < max_failures => {
                Outcome::Retrying { ctx, cause: Cause::Asked, wait: after.unwrap_or_else(|| backoff.delay(attempt)) }
            }
            TaskResult::Failure(reason) if attempt < max_failures => {
                Outcome::Retrying { ctx, cause: Cause::Failed(reason), wait: backoff.delay(attempt) }
            }
            TaskResult::Failure(reason) | TaskResult::Abandon(reason) => {
                Outcome::Exhausted { ctx, cause: Cause::Failed(reason), on_fail: on_fail() }
            }
            TaskResult::Retry(_) => Outcome::Exhausted { ctx, cause: Cause::Asked, on_fail: on_fail() },
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
}

/// A handler's panic: logged, and a failure of the run.
fn panicked(payload: &(dyn std::any::Any + Send)) -> TaskResult {
    let message = panic_message(payload);
    tracing::error!(panic = %message, "task handler panicked");
    TaskResult::Failure(format!("panicked: {message}"))
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
