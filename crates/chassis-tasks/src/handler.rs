//! [`Handlers`]: task names → async handlers with typed attributes.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::retry::Backoff;
use crate::wire::JobRef;

/// What became of a task run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskResult {
    /// Done: the message is deleted.
    Success,
    /// Failed; tried again after the task's backoff, up to its max failures.
    Failure(String),
    /// Try again after the given delay (or the backoff), without it counting
    /// as a failure of the callee's making (it still counts towards max failures).
    Retry(Option<Duration>),
    /// Failed for good: no retry; the `on_fail` task is sent, the message dead-lettered.
    Abandon(String),
}

/// What a handler may return: `()`, a [`TaskResult`], or a `Result` of either
/// (an `Err` is a [`TaskResult::Failure`] with the error's text).
pub trait IntoTaskResult {
    /// The task result.
    fn into_task_result(self) -> TaskResult;
}

impl IntoTaskResult for TaskResult {
    fn into_task_result(self) -> TaskResult {
        self
    }
}

impl IntoTaskResult for () {
    fn into_task_result(self) -> TaskResult {
        TaskResult::Success
    }
}

impl IntoTaskResult for bool {
    /// The original's convention: `true` is success, `false` a failure.
    fn into_task_result(self) -> TaskResult {
        if self { TaskResult::Success } else { TaskResult::Failure("the handler returned false".into()) }
    }
}

impl<T: IntoTaskResult, E: fmt::Display> IntoTaskResult for Result<T, E> {
    fn into_task_result(self) -> TaskResult {
        match self {
            Ok(value) => value.into_task_result(),
            Err(e) => TaskResult::Failure(e.to_string()),
        }
    }
}

/// What a handler knows about the run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskContext {
    /// The task's name.
    pub task: String,
    /// This execution's id.
    pub exec_id: String,
    /// Which receive this is (SQS's ApproximateReceiveCount), from 1.
    pub attempt: u32,
    /// The job, if the task belongs to one.
    pub job: Option<JobRef>,
}

/// Where a task goes when its failures are exhausted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnFail {
    /// The task to send, with the same attributes.
    pub task: String,
    /// Another service's pool (a queue registered with the worker), or this one.
    pub pool: Option<String>,
}

/// Per-task policy; unset values come from the worker's config.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TaskPolicy {
    /// Failures before giving up (default: config `max_failures`, 10).
    pub max_failures: Option<u32>,
    /// The retry backoff (default: config `backoff`).
    pub backoff: Option<Backoff>,
    /// The task sent when failures are exhausted.
    pub on_fail: Option<OnFail>,
    /// An execution timeout (default: config `task_timeout_secs`).
    pub timeout: Option<Duration>,
}

impl TaskPolicy {
    /// Sets the max failures.
    #[must_use]
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = Some(n.max(1));
        self
    }

    /// Sets the backoff.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Sends `task` (same attributes) to this pool when failures are exhausted.
    #[must_use]
    pub fn on_fail(mut self, task: impl Into<String>) -> Self {
        self.on_fail = Some(OnFail { task: task.into(), pool: None });
        self
    }

    /// Sends `task` to another pool when failures are exhausted.
    #[must_use]
    pub fn on_fail_in(mut self, task: impl Into<String>, pool: impl Into<String>) -> Self {
        self.on_fail = Some(OnFail { task: task.into(), pool: Some(pool.into()) });
        self
    }

    /// Sets an execution timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A boxed, sendable future (futures-util's, `'static`).
pub type BoxFuture<T> = futures_util::future::BoxFuture<'static, T>;

/// A handler, erased: the JSON body in, a future of the result out; `Err` when
/// the body is not JSON or does not fit the attribute type.
pub(crate) type Handler =
    Arc<dyn Fn(&str, TaskContext) -> Result<BoxFuture<TaskResult>, crate::wire::Malformed> + Send + Sync>;

pub(crate) struct Registered {
    pub(crate) handler: Handler,
    pub(crate) policy: TaskPolicy,
}

/// Task names and their handlers.
///
/// ```
/// use chassis_tasks::{Handlers, TaskContext};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct SendEmail { to: String }
///
/// let mut handlers = Handlers::new();
/// handlers.task("send_email", |email: SendEmail, ctx: TaskContext| async move {
///     tracing::info!(to = %email.to, attempt = ctx.attempt, "sending");
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), chassis_tasks::Error>(())
/// ```
#[derive(Default)]
pub struct Handlers {
    pub(crate) tasks: HashMap<String, Registered>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.tasks.keys().collect();
        names.sort();
        f.debug_struct("Handlers").field("tasks", &names).finish()
    }
}

impl Handlers {
    /// No handlers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for the task `name`, with the default policy.
    ///
    /// # Errors
    /// [`Error::Duplicate`] if `name` is registered already.
    pub fn task<A, F, Fut, R>(&mut self, name: impl Into<String>, handler: F) -> Result<&mut Self>
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(A, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoTaskResult + 'static,
    {
        self.task_with(name, TaskPolicy::default(), handler)
    }

    /// Registers `handler` for the task `name` with a policy.
    ///
    /// # Errors
    /// [`Error::Duplicate`] if `name` is registered already.
    pub fn task_with<A, F, Fut, R>(
        &mut self,
        name: impl Into<String>,
        policy: TaskPolicy,
        handler: F,
    ) -> Result<&mut Self>
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(A, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoTaskResult + 'static,
    {
        let name = name.into();
        if self.tasks.contains_key(&name) {
            return Err(Error::Duplicate(name));
        }
        let handler: Handler = Arc::new(move |body: &str, ctx| {
            let attributes: A = serde_json::from_str(body).map_err(|e| match e.classify() {
                serde_json::error::Category::Data => crate::wire::Malformed::Attributes(e.to_string()),
                _ => crate::wire::Malformed::Body(e.to_string()),
            })?;
            let future = handler(attributes, ctx);
            Ok(Box::pin(async move { future.await.into_task_result() }) as BoxFuture<TaskResult>)
        });
        self.tasks.insert(name, Registered { handler, policy });
        Ok(self)
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }
}

/// What a [`Hook`] hears after a run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// The task succeeded; its message is deleted.
    Succeeded,
    /// The task failed and will be tried again.
    Retrying(String),
    /// The task failed for good: failures exhausted, abandoned, or dead-lettered.
    Failed(String),
}

/// Whether a [`Hook`] lets a task run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Proceed {
    /// Run it.
    Run,
    /// Do not run it; delete its message (e.g. its job was cancelled).
    Skip,
}

/// Why a [`Hook`] could not record a run's outcome (its store is unreachable,
/// a timeout, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

/// Observes task runs: called before a task runs (and may skip it) and after
/// each run with its outcome. `chassis-jobs` ties job status to tasks with one.
///
/// # Delivery
/// Tasks are delivered at least once, so `after` may hear the same outcome of
/// the same execution (`exec_id`) more than once — after a lost delete, a
/// crash between the hook and the delete, or a duplicate message — and must
/// record it idempotently by `exec_id`. When `after` returns an error for a
/// final outcome (succeeded or failed for good), the worker retries it a few
/// times with a short backoff, then leaves the message undeleted: it comes
/// back and runs again, and the hook hears the outcome again. No message whose
/// final outcome the hook did not record is deleted, and no `on_fail` task or
/// dead letter is sent for it.
pub trait Hook: Send + Sync + 'static {
    /// Before the handler runs.
    fn before(&self, run: &TaskContext) -> BoxFuture<Proceed>;
    /// After a run, or when a task of a known kind is dead-lettered.
    ///
    /// # Errors
    /// A [`HookError`] when the outcome could not be recorded.
    fn after(&self, run: &TaskContext, outcome: RunOutcome) -> BoxFuture<Result<(), HookError>>;
}
