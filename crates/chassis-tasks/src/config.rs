//! [`Config`]: the `tasks` section.

use std::time::Duration;

use chassis_bounds::{Check, Violation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::retry::Backoff;

mod bounds;

/// Task configuration: the `tasks` section of a chassis configuration.
///
/// Deserializing rejects a value out of its field's range, at its key (so
/// chassis-config reports it with the others); its [`Check`] finds the rest —
/// the fields that depend on each other, such as `pollers` over `concurrency`
/// — so `Loader::check::<chassis_tasks::Config>("tasks")` puts them in the
/// same report; [`validate`](Self::validate) checks everything again when a
/// worker is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The queue (pool) this service sends to and consumes from, by name.
    /// Required (no default).
    pub task_pool: String,
    /// The queue's URL, instead of looking the name up (SQS). Default: none.
    pub queue_url: Option<String>,
    /// An endpoint override for local emulators (`http://127.0.0.1:5000`). Default: none.
    pub endpoint: Option<String>,
    /// The AWS region; default: from the standard AWS chain.
    pub region: Option<String>,
    /// Create the queue when missing (SQS). Default: false.
    pub create_queue: bool,
    /// Tasks run at once by one worker, 1 to 10 000. Default: 32.
    #[serde(deserialize_with = "bounds::uint::<_, usize, 1, 10_000>")]
    pub concurrency: usize,
    /// Receives in flight at once, each for up to 10 messages as slots free up.
    /// At least 1 (and at most `concurrency`). Default: concurrency ÷ 10, rounded up.
    #[serde(deserialize_with = "bounds::some_at_least::<_, usize, 1>")]
    pub pollers: Option<usize>,
    /// How long a received task stays hidden from other workers, in seconds;
    /// extended by the heartbeat while the task runs; 1 to 43 200. Default: 120 (the original's).
    #[serde(deserialize_with = "bounds::uint::<_, u64, 1, 43_200>")]
    pub visibility_timeout_secs: u64,
    /// Long-poll wait per receive, in seconds (≤ 20). Default: 10.
    #[serde(deserialize_with = "bounds::uint::<_, u64, 0, 20>")]
    pub wait_time_secs: u64,
    /// Failures before a task is given up (its `on_fail` task sent), at least 1. Default: 10 (the original's).
    #[serde(deserialize_with = "bounds::at_least::<_, u32, 1>")]
    pub max_failures: u32,
    /// The default retry backoff. Default: exponential from 10 s, capped at 15 min.
    pub backoff: Backoff,
    /// Receives of a task with no registered handler before it is dead-lettered, at least 1. Default: 50.
    #[serde(deserialize_with = "bounds::at_least::<_, u32, 1>")]
    pub unknown_task_receives: u32,
    /// How long a task with no handler is postponed each time, in seconds
    /// (1 to 900, SQS's longest delay: it is sent again with this delay). Default: 10.
    #[serde(deserialize_with = "bounds::uint::<_, u64, 1, 900>")]
    pub unknown_task_delay_secs: u64,
    /// The dead-letter queue, by name (opened in the same account and region,
    /// or among the embedded queues): malformed, unknown and exhausted tasks
    /// go there with the reason in the `dead_letter_reason` attribute. Without
    /// one, such a task's message is deleted once it ends, with an ERROR line
    /// and `chassis_tasks_discarded_total` (as the Python original did).
    /// Default: none.
    pub dead_letter_queue: Option<String>,
    /// An execution timeout for every task, in seconds, at least 1. Default: none.
    #[serde(deserialize_with = "bounds::some_at_least::<_, u64, 1>")]
    pub task_timeout_secs: Option<u64>,
    /// The longest a worker's shutdown takes, in seconds: in-flight tasks may
    /// run on for this less a fifth (at most 2 s), which is kept for handing
    /// back unfinished messages and flushing deletes; queue calls still
    /// waiting at the end are abandoned (see [`Worker::run`](crate::Worker::run)).
    /// Default: 30.
    pub shutdown_deadline_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            task_pool: String::new(),
            queue_url: None,
            endpoint: None,
            region: None,
            create_queue: false,
            concurrency: 32,
            pollers: None,
            visibility_timeout_secs: 120,
            wait_time_secs: 10,
            max_failures: 10,
            backoff: Backoff::default(),
            unknown_task_receives: 50,
            unknown_task_delay_secs: 10,
            dead_letter_queue: None,
            task_timeout_secs: None,
            shutdown_deadline_secs: 30,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig { field, reason: reason.into() }
}

/// The checks no single field's bound expresses, each at the key of the
/// value out of line: `task_pool` (required unless `queue_url` is set),
/// `pollers` (at most `concurrency`), `backoff.max_secs` (`backoff.base_secs`
/// to 43 200, each with its `_ms`), `backoff.jitter` (0 to 1), `dead_letter_queue` (not empty).
impl Check for Config {
    fn check(&self) -> Vec<Violation> {
        let mut found = Vec::new();
        if self.task_pool.trim().is_empty() && self.queue_url.is_none() {
            found.push(
                Violation::new("task_pool", format_args!("{:?}", self.task_pool), "a queue name (or a queue_url)")
                    .related("queue_url"),
            );
        }
        if let Some(pollers) = self.pollers.filter(|&p| p > self.concurrency) {
            found.push(
                Violation::new("pollers", pollers, format_args!("at most concurrency ({})", self.concurrency))
                    .related("concurrency"),
            );
        }
        let backoff = &self.backoff;
        if backoff.max_out_of_line() {
            let max = crate::MAX_VISIBILITY.as_secs();
            let (base_shown, max_shown) = backoff.shown();
            found.push(
                Violation::new(
                    "backoff.max_secs",
                    max_shown,
                    format_args!("backoff.base_secs ({base_shown}) to {max}"),
                )
                .related("backoff.base_secs"),
            );
        }
        if !(0.0..=1.0).contains(&backoff.jitter) {
            found.push(Violation::new("backoff.jitter", backoff.jitter, "a number from 0 to 1"));
        }
        if let Some(name) = self.dead_letter_queue.as_ref().filter(|name| name.trim().is_empty()) {
            found.push(Violation::new("dead_letter_queue", format_args!("{name:?}"), "a queue name, not empty"));
        }
        found
    }
}

impl Config {
    /// A config for the pool `task_pool`, everything else default.
    pub fn new(task_pool: impl Into<String>) -> Self {
        Self { task_pool: task_pool.into(), ..Self::default() }
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        if self.task_pool.trim().is_empty() && self.queue_url.is_none() {
            return Err(invalid("task_pool", "is required (the queue name)"));
        }
        if !(1..=10_000).contains(&self.concurrency) {
            return Err(invalid("concurrency", format!("must be 1 to 10000, got {}", self.concurrency)));
        }
        if let Some(pollers) = self.pollers {
            if pollers == 0 || pollers > self.concurrency {
                return Err(invalid(
                    "pollers",
                    format!("must be 1 to concurrency ({}), got {pollers}", self.concurrency),
                ));
            }
        }
        if !(1..=43_200).contains(&self.visibility_timeout_secs) {
            return Err(invalid(
                "visibility_timeout_secs",
                format!("must be 1 to 43200, got {}", self.visibility_timeout_secs),
            ));
        }
        if self.wait_time_secs > 20 {
            return Err(invalid("wait_time_secs", format!("must be 0 to 20, got {}", self.wait_time_secs)));
        }
        if self.max_failures == 0 {
            return Err(invalid("max_failures", "must be at least 1"));
        }
        self.backoff.validate().map_err(|reason| invalid("backoff", reason))?;
        if self.unknown_task_receives == 0 {
            return Err(invalid("unknown_task_receives", "must be at least 1"));
        }
        if !(1..=900).contains(&self.unknown_task_delay_secs) {
            return Err(invalid(
                "unknown_task_delay_secs",
                format!("must be 1 to 900, got {}", self.unknown_task_delay_secs),
            ));
        }
        if self.dead_letter_queue.as_ref().is_some_and(|name| name.trim().is_empty()) {
            return Err(invalid("dead_letter_queue", "must be a queue name, not empty"));
        }
        if self.task_timeout_secs == Some(0) {
            return Err(invalid("task_timeout_secs", "must be at least 1"));
        }
        Ok(())
    }

    pub(crate) fn visibility(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout_secs)
    }

    pub(crate) fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_time_secs)
    }
}
