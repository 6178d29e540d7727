//! The job model and its state machine.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The deepest nesting of JSON arrays and objects a job's input or result may
/// have: 100 levels (a scalar is depth 0, `[1]` depth 1). Every store refuses a
/// deeper value at write time with [`Error::Invalid`], because it could not be
/// read back: `serde_json` stops parsing at 128 levels, and a job is itself
/// sent inside other JSON (`GET /jobs` wraps it three levels deeper).
pub const MAX_JSON_DEPTH: usize = 100;

/// U+0000 in a text field (a job's name, message, error message and task, and
/// a task's `exec_id`) is stored as U+FFFD (the replacement character) by every
/// store: PostgreSQL's `text` cannot hold U+0000, and a write refused forever
/// would leave a job unfinished forever. Text inside JSON (input, result,
/// labels) is stored as JSON, escaped, and reads back unchanged.
pub(crate) fn storable_text(text: String) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text }
}

/// How deeply `value` nests arrays and objects (a scalar: 0), without recursing.
fn json_depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match value {
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            serde_json::Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// Where a job is in its life.
///
/// ```text
/// pending ──► running ──► succeeded
///    │           ├──────► failed
///    └───────────┴──────► cancelled
/// ```
///
/// Terminal states never change; anything else is an [`Error::IllegalTransition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Created; no task has started.
    Pending,
    /// A task has started.
    Running,
    /// Every task succeeded.
    Succeeded,
    /// A task failed for good.
    Failed,
    /// Cancelled by a user; remaining tasks are skipped.
    Cancelled,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 5] = [Self::Pending, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled];

    /// Whether the job is finished.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// Whether `self → next` is allowed.
    pub fn can_become(self, next: Status) -> bool {
        matches!(
            (self, next),
            (Self::Pending, Self::Running | Self::Cancelled | Self::Failed)
                | (Self::Running, Self::Succeeded | Self::Failed | Self::Cancelled)
        )
    }

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    ///
    /// # Errors
    /// [`Error::Invalid`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| Error::Invalid(format!("unknown status {text:?}")))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// What went wrong.
    pub message: String,
    /// The task that failed, if a task did.
    pub task: Option<String>,
}

/// A job: one asynchronous piece of work a client asked for, carried out by
/// one or more tasks. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Job {
    /// A UUID v7 (time-ordered).
    pub id: Uuid,
    /// What kind of job (`import-catalog`).
    pub name: String,
    /// The status.
    pub status: Status,
    /// Tasks the job consists of (0: not tracked by task count).
    pub tasks_total: u32,
    /// Distinct tasks (by `exec_id`) that finished successfully: a task that
    /// runs twice (at-least-once delivery) counts once.
    pub tasks_done: u32,
    /// Tasks confirmed sent to the queue by [`Jobs::start_with_tasks`](crate::Jobs::start_with_tasks)
    /// (for other jobs, `tasks_total`). Below `tasks_total` on a job that is
    /// not finished, the sender stopped before sending all of them — see
    /// [`Jobs::fail_stranded`](crate::Jobs::fail_stranded).
    #[serde(default)]
    pub tasks_sent: u32,
    /// A user-set percentage, 0 to 100, kept to hundredths (`33.333` is stored as `33.33`).
    pub percent: Option<f64>,
    /// A user-set progress message.
    pub message: Option<String>,
    /// Task runs started for this job (retries included).
    pub attempts: u32,
    /// The job's input.
    pub input: serde_json::Value,
    /// The job's result, once succeeded.
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<JobError>,
    /// Labels / metadata.
    pub labels: BTreeMap<String, String>,
    /// Created.
    pub created_ms: i64,
    /// When the first task started.
    pub started_ms: Option<i64>,
    /// When it reached a terminal state.
    pub finished_ms: Option<i64>,
    /// Last changed.
    pub updated_ms: i64,
    /// Bumped by every update: the optimistic-concurrency check.
    pub version: i64,
}

impl Job {
    /// The job as every store records it: U+0000 in text fields replaced (see
    /// [`storable_text`]), the percentage rounded to hundredths, and refused
    /// ([`Error::Invalid`]) when input or result nest deeper than
    /// [`MAX_JSON_DEPTH`] or the percentage is not 0 to 100.
    pub(crate) fn into_storable(mut self) -> Result<Self> {
        for (what, value) in [("input", Some(&self.input)), ("result", self.result.as_ref())] {
            let depth = value.map_or(0, json_depth);
            if depth > MAX_JSON_DEPTH {
                return Err(Error::Invalid(format!(
                    "the job's {what} nests {depth} levels deep; a store keeps at most {MAX_JSON_DEPTH}"
                )));
            }
        }
        if let Some(p) = self.percent.filter(|p| !(0.0..=100.0).contains(p)) {
            return Err(Error::Invalid(format!("percentage {p} is not 0 to 100")));
        }
        // Kept in hundredths by the SQL stores; every store rounds alike.
        self.percent = self.percent.map(|p| (p * 100.0).round() / 100.0);
        self.name = storable_text(self.name);
        self.message = self.message.map(storable_text);
        self.error =
            self.error.map(|e| JobError { message: storable_text(e.message), task: e.task.map(storable_text) });
        Ok(self)
    }
}

/// A job to create.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct NewJob {
    /// What kind of job.
    pub name: String,
    /// Its input.
    pub input: serde_json::Value,
    /// How many tasks it consists of (0: not tracked by task count).
    pub tasks_total: u32,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Created by `start_with_tasks`, before its tasks are sent (`tasks_sent` 0).
    pub(crate) sending: bool,
}

impl NewJob {
    /// A job `name` with `input`.
    pub fn new(name: impl Into<String>, input: serde_json::Value) -> Self {
        Self { name: name.into(), input, ..Self::default() }
    }

    /// The number of tasks (progress = done / total).
    #[must_use]
    pub fn tasks(mut self, total: u32) -> Self {
        self.tasks_total = total;
        self
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub(crate) fn into_job(self, now: i64) -> Job {
        Job {
            id: Uuid::now_v7(),
            name: self.name,
            status: Status::Pending,
            tasks_total: self.tasks_total,
            tasks_done: 0,
            tasks_sent: if self.sending { 0 } else { self.tasks_total },
            percent: None,
            message: None,
            attempts: 0,
            input: self.input,
            result: None,
            error: None,
            labels: self.labels,
            created_ms: now,
            started_ms: None,
            finished_ms: None,
            updated_ms: now,
            version: 1,
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Job {
    /// Moves to `next`, stamping the times.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] when the state machine forbids it.
    pub fn transition(&mut self, next: Status, now: i64) -> Result<()> {
        if !self.status.can_become(next) {
            return Err(Error::IllegalTransition { id: self.id, from: self.status, to: next });
        }
        if next == Status::Running {
            self.started_ms = Some(now);
        }
        if next.is_terminal() {
            self.finished_ms = Some(now);
        }
        self.status = next;
        Ok(())
    }

    /// Tasks done over total, 0 to 1 (None when not tracked by task count).
    pub fn progress(&self) -> Option<f64> {
        (self.tasks_total > 0).then(|| f64::from(self.tasks_done) / f64::from(self.tasks_total))
    }
}

/// How a task of a job ended, as the job records it: once per task execution
/// (`exec_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskEnd {
    /// The task succeeded.
    Succeeded,
    /// The task failed for good (or was dead-lettered).
    Failed,
}

impl TaskEnd {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// Which jobs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Filter {
    /// Only this name.
    pub name: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Created at or after (ms).
    pub created_from: Option<i64>,
    /// Created before (ms).
    pub created_until: Option<i64>,
}

impl Filter {
    /// Only jobs named `name`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only jobs in `status`.
    #[must_use]
    pub fn status(mut self, status: Status) -> Self {
        self.status = Some(status);
        self
    }

    /// Only jobs created at or after `from` (ms) and, if given, before `until`.
    #[must_use]
    pub fn created(mut self, from: i64, until: Option<i64>) -> Self {
        self.created_from = Some(from);
        self.created_until = until;
        self
    }
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Page {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Pass it back to get the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_machine() {
        use Status::*;
        let allowed = [
            (Pending, Running),
            (Pending, Cancelled),
            (Pending, Failed),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Cancelled),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()).unwrap(), s);
        }
        assert!(Status::parse("done").is_err());
    }

    #[test]
    fn illegal_transitions_are_errors_and_change_nothing() {
        let mut job = NewJob::new("x", serde_json::Value::Null).into_job(1);
        job.transition(Status::Running, 2).unwrap();
        job.transition(Status::Succeeded, 3).unwrap();
        let before = job.clone();
        let err = job.transition(Status::Running, 4).unwrap_err();
        assert!(matches!(err, Error::IllegalTransition { from: Status::Succeeded, to: Status::Running, .. }));
        assert_eq!(job, before);
        assert_eq!((job.started_ms, job.finished_ms), (Some(2), Some(3)));
    }
}
