//! [`Jobs`]: the operations a service uses, over any [`JobStore`].

use std::sync::Arc;

use chassis_tasks::{Producer, Queue, Task};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Filter, Job, JobError, NewJob, Page, Status, now_ms};
use crate::store::JobStore;

/// How many times an update is retried after a conflict before giving up.
const MAX_RETRIES: usize = 1000;

/// Job operations over a store. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chassis_jobs::Result<()> {
/// use chassis_jobs::{Jobs, MemoryStore, NewJob, Status};
///
/// let jobs = Jobs::new(MemoryStore::new());
/// let job = jobs.create(NewJob::new("import-catalog", serde_json::json!({"catalog": 42}))).await?;
/// let job = jobs.cancel(job.id).await?;
/// assert_eq!(job.status, Status::Cancelled);
/// assert!(jobs.start(job.id).await.is_err(), "terminal states never change");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn JobStore>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl Jobs {
    /// Jobs in `store`.
    pub fn new(store: impl JobStore) -> Self {
        Self { store: Arc::new(store) }
    }

    /// The store.
    pub fn store(&self) -> &dyn JobStore {
        &*self.store
    }

    /// Creates a pending job.
    ///
    /// # Errors
    /// The store's.
    pub async fn create(&self, job: NewJob) -> Result<Job> {
        self.store.create(job).await
    }

    /// The job with `id`.
    ///
    /// # Errors
    /// [`Error::NotFound`], or the store's.
    pub async fn get(&self, id: Uuid) -> Result<Job> {
        self.store.get(id).await
    }

    /// Jobs matching `filter`, newest first, a page at a time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad cursor, or the store's.
    pub async fn list(&self, filter: Filter, cursor: Option<String>, limit: u32) -> Result<Page> {
        self.store.list(filter, cursor, limit).await
    }

    /// Applies `change` to the job and writes it, reloading and reapplying on
    /// a conflict, so concurrent changes are never lost. `change` returning an
    /// error (an illegal transition) stops it; nothing is written.
    ///
    /// # Errors
    /// `change`'s error, [`Error::NotFound`], or the store's.
    pub async fn modify(&self, id: Uuid, mut change: impl FnMut(&mut Job) -> Result<()> + Send) -> Result<Job> {
        for _ in 0..MAX_RETRIES {
            let mut job = self.store.get(id).await?;
            change(&mut job)?;
            match self.store.update(job).await {
                Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                other => return other,
            }
        }
        Err(Error::Store(format!("job {id} kept changing under {MAX_RETRIES} attempts to update it")))
    }

    /// pending → running.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] from any other state.
    pub async fn start(&self, id: Uuid) -> Result<Job> {
        self.modify(id, |job| job.transition(Status::Running, now_ms())).await
    }

    /// running → succeeded, with a result.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] unless running.
    pub async fn succeed(&self, id: Uuid, result: serde_json::Value) -> Result<Job> {
        self.modify(id, |job| {
            job.transition(Status::Succeeded, now_ms())?;
            job.result = Some(result.clone());
            Ok(())
        })
        .await
    }

    /// → failed, with the error and the failing task.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] from a terminal state.
    pub async fn fail(&self, id: Uuid, message: &str, task: Option<&str>) -> Result<Job> {
        self.modify(id, |job| {
            job.transition(Status::Failed, now_ms())?;
            job.error = Some(JobError { message: message.to_owned(), task: task.map(str::to_owned) });
            Ok(())
        })
        .await
    }

    /// pending or running → cancelled; its remaining tasks are skipped.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] from a terminal state.
    pub async fn cancel(&self, id: Uuid) -> Result<Job> {
        self.modify(id, |job| job.transition(Status::Cancelled, now_ms())).await
    }

    /// Sets a user percentage (0–100) and message.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a percentage out of range; [`Error::IllegalTransition`] on a finished job.
    pub async fn progress(&self, id: Uuid, percent: Option<f64>, message: Option<&str>) -> Result<Job> {
        if percent.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
            return Err(Error::Invalid(format!("percentage {percent:?} is not 0 to 100")));
        }
        self.modify(id, |job| {
            if job.status.is_terminal() {
                return Err(Error::IllegalTransition { id, from: job.status, to: job.status });
            }
            job.percent = percent;
            job.message = message.map(str::to_owned);
            Ok(())
        })
        .await
    }

    /// Creates a job of `tasks.len()` tasks and sends them, each carrying the
    /// job's id and name; the worker's [`JobHook`](crate::JobHook) then moves
    /// the job along as they run.
    ///
    /// # Errors
    /// The store's; if a task cannot be sent the job is marked failed and the
    /// error returned.
    pub async fn start_with_tasks<Q: Queue>(
        &self,
        producer: &Producer<Q>,
        job: NewJob,
        tasks: Vec<Task>,
    ) -> Result<Job> {
        let job = self.create(job.tasks(u32::try_from(tasks.len()).unwrap_or(u32::MAX))).await?;
        let id = job.id.to_string();
        let tasks = tasks.into_iter().map(|t| t.job(id.clone(), job.name.clone())).collect();
        let sent = producer.send_all(tasks).await;
        let failure = match sent {
            Ok(results) => results.into_iter().find_map(std::result::Result::err),
            Err(e) => Some(e),
        };
        if let Some(error) = failure {
            let _ = self.fail(job.id, &format!("could not send the job's tasks: {error}"), None).await;
            return Err(Error::Tasks(error));
        }
        Ok(job)
    }

    /// Deletes finished jobs older than `retention`; returns how many.
    ///
    /// # Errors
    /// The store's.
    pub async fn purge(&self, retention: std::time::Duration) -> Result<u64> {
        let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.store.purge(now_ms().saturating_sub(retention)).await
    }
}
