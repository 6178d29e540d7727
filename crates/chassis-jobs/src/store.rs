//! [`JobStore`]: where jobs live.

use chassis_tasks::BoxFuture;
use uuid::Uuid;

use crate::error::Result;
use crate::model::{Filter, Job, NewJob, Page, TaskEnd};

/// Storage for jobs. Every backend passes the same conformance suite.
///
/// Updates are conditional: [`update`](Self::update) writes only if the stored
/// version is still the job's `version`, and bumps it; otherwise it returns
/// [`Error::Conflict`](crate::Error::Conflict) and the caller reloads and retries.
///
/// Writes record what `get` and `list` read back (see the crate docs: U+0000 in
/// text fields becomes U+FFFD, percentages are kept to hundredths, and JSON
/// nested deeper than [`MAX_JSON_DEPTH`](crate::MAX_JSON_DEPTH) is refused with
/// [`Error::Invalid`](crate::Error::Invalid)); `create` and `update` return the
/// job as stored. `list` skips (and logs) rows that do not read.
pub trait JobStore: Send + Sync + 'static {
    /// Stores a new pending job.
    fn create(&self, job: NewJob) -> BoxFuture<Result<Job>>;

    /// The job with `id`.
    fn get(&self, id: Uuid) -> BoxFuture<Result<Job>>;

    /// Writes `job` if its stored version is still `job.version`; returns it
    /// with the new version.
    fn update(&self, job: Job) -> BoxFuture<Result<Job>>;

    /// Writes `job` as [`update`](Self::update) does, together with the record
    /// that its task execution `exec_id` ended as `end` — in one transaction
    /// (or one conditional write), so that the record exists exactly when the
    /// change does. If that execution is recorded for this job already,
    /// nothing is written and `Ok(None)` is returned: a task delivered twice
    /// changes its job once.
    ///
    /// # Errors
    /// As [`update`](Self::update).
    fn update_recording(&self, job: Job, exec_id: String, end: TaskEnd) -> BoxFuture<Result<Option<Job>>>;

    /// Up to `limit` jobs matching `filter`, newest first, after `cursor`.
    fn list(&self, filter: Filter, cursor: Option<String>, limit: u32) -> BoxFuture<Result<Page>>;

    /// Deletes a job and its task records (no error if it is already gone).
    fn delete(&self, id: Uuid) -> BoxFuture<Result<()>>;

    /// Deletes finished jobs that finished before `before_ms`, and their task
    /// records; returns how many jobs.
    fn purge(&self, before_ms: i64) -> BoxFuture<Result<u64>>;
}

/// The cursor of a listing: the last id returned (UUID v7 ids sort by time).
pub(crate) fn parse_cursor(cursor: Option<&str>) -> Result<Option<Uuid>> {
    cursor
        .map(|c| Uuid::parse_str(c).map_err(|e| crate::Error::Invalid(format!("cursor {c:?} is not a job id: {e}"))))
        .transpose()
}
