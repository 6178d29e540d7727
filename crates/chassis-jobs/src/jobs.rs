//! [`Jobs`]: the operations a service uses, over any [`JobStore`].

use std::sync::Arc;

use chassis_tasks::{Producer, Queue, Task};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Filter, Job, JobError, NewJob, Page, Status, TaskEnd, now_ms};
use crate::store::JobStore;

/// How many times an update is retried after a conflict before giving up.
const MAX_RETRIES: usize = 1000;

/// Rounds of sending a job's tasks (the first and two retries of transient failures).
const SEND_ROUNDS: u32 = 3;

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
    /// The store, when it is a [`SqlStore`](crate::SqlStore): a job and its
    /// tasks can then share a transaction with a task queue in its database.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    sql: Option<crate::SqlStore>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl Jobs {
    /// Jobs in `store`.
    pub fn new(store: impl JobStore) -> Self {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        let sql = (&store as &dyn std::any::Any).downcast_ref::<crate::SqlStore>().cloned();
        Self {
            store: Arc::new(store),
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            sql,
        }
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn sql(&self) -> Option<&crate::SqlStore> {
        self.sql.as_ref()
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

    /// Records that task execution `exec_id` of job `id` ended as `end`, and
    /// applies `change` with it — once: if the execution is recorded already
    /// (the task was delivered twice), nothing changes and `Ok(None)` is
    /// returned. Conflicts are retried as in [`modify`](Self::modify).
    pub(crate) async fn record_task(
        &self,
        id: Uuid,
        exec_id: &str,
        end: TaskEnd,
        mut change: impl FnMut(&mut Job) -> Result<()> + Send,
    ) -> Result<Option<Job>> {
        for _ in 0..MAX_RETRIES {
            let mut job = self.store.get(id).await?;
            change(&mut job)?;
            match self.store.update_recording(job, exec_id.to_owned(), end).await {
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
    /// **When the job store and the queue share a database** — a
    /// [`SqlStore`](crate::SqlStore) and a `SqliteQueue` or `PostgresQueue`
    /// reaching the same database — the job and all its tasks are written in
    /// one transaction: both exist, or neither does (the outbox pattern without
    /// an outbox), and the job says `tasks_sent = tasks_total` from the start.
    ///
    /// Otherwise, what is guaranteed, whatever fails and wherever the process stops:
    /// - the job exists before any of its tasks is sent (pending, with
    ///   `tasks_sent` 0), so no task arrives before its job;
    /// - a send that fails transiently is retried (3 rounds, 100 ms then
    ///   200 ms apart) with the task's own `exec_id`, so a send that did go
    ///   through despite the error counts once;
    /// - `Ok` means every task was sent, and the job says `tasks_sent = tasks_total`;
    /// - otherwise the job is failed with the error and `tasks_sent` tells how
    ///   many went out (those run, and count, but the job stays failed);
    /// - if the process dies, or the store fails, before that last write, the
    ///   job keeps `tasks_sent < tasks_total`, and [`fail_stranded`](Self::fail_stranded)
    ///   (run it periodically) fails it once it has not changed for its grace
    ///   period. A job never waits forever for tasks that were never sent.
    ///
    /// # Errors
    /// [`Error::Invalid`] when two tasks share an execution id (the job could
    /// never complete; nothing is created); the store's; [`Error::Tasks`] when
    /// a task could not be sent (the job is then failed — or, in one
    /// transaction, never created).
    pub async fn start_with_tasks<Q: Queue>(
        &self,
        producer: &Producer<Q>,
        job: NewJob,
        tasks: Vec<Task>,
    ) -> Result<Job> {
        let mut seen = std::collections::HashSet::with_capacity(tasks.len());
        if let Some(twice) = tasks.iter().find(|t| !seen.insert(t.exec_id())) {
            return Err(Error::Invalid(format!(
                "task `{}` with exec_id {} is in the job twice; build each task anew",
                twice.name(),
                twice.exec_id()
            )));
        }
        let total = u32::try_from(tasks.len())
            .map_err(|_| Error::Invalid(format!("{} tasks in one job; at most {}", tasks.len(), u32::MAX)))?;
        let job = job.tasks(total);
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(started) = self.start_atomically(producer, &job, &tasks).await {
            return started;
        }
        let mut new_job = job;
        new_job.sending = true;
        let job = self.create(new_job).await?;
        let id = job.id.to_string();
        let mut unsent: Vec<Task> = tasks.into_iter().map(|t| t.job(id.clone(), job.name.clone())).collect();
        let mut sent = 0u32;
        // A failure that retrying cannot mend (too large, not serializable, invalid) …
        let mut permanent: Option<chassis_tasks::Error> = None;
        // … and the last transient one, which matters if retries run out.
        let mut transient: Option<chassis_tasks::Error> = None;
        for round in 0..SEND_ROUNDS {
            if round > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(100 << (round - 1))).await;
            }
            let results = match producer.send_all(unsent.clone()).await {
                Ok(results) => results,
                Err(e) => {
                    transient = Some(e);
                    continue;
                }
            };
            let mut retry = Vec::new();
            for (task, result) in unsent.into_iter().zip(results) {
                match result {
                    Ok(_) => sent += 1,
                    Err(e) if matches!(&e, chassis_tasks::Error::Queue(q) if q.is_transient()) => {
                        transient = Some(e);
                        retry.push(task);
                    }
                    Err(e) => {
                        permanent.get_or_insert(e);
                    }
                }
            }
            unsent = retry;
            if unsent.is_empty() {
                break;
            }
        }
        let error = permanent.or(if unsent.is_empty() { None } else { transient });
        let message =
            error.as_ref().map(|e| format!("could not send {} of the job's {total} tasks: {e}", total - sent));
        let job = self
            .modify(job.id, |job| {
                job.tasks_sent = sent;
                if let (Some(message), false) = (&message, job.status.is_terminal()) {
                    job.transition(Status::Failed, now_ms())?;
                    job.error = Some(JobError { message: message.clone(), task: None });
                }
                Ok(())
            })
            .await?;
        match error {
            Some(error) => Err(Error::Tasks(error)),
            None => Ok(job),
        }
    }

    /// Fails every unfinished job that is still short of sent tasks
    /// (`tasks_sent < tasks_total`: its [`start_with_tasks`](Self::start_with_tasks)
    /// stopped before it could send them all or say so) and has not changed
    /// for `grace`; returns how many. Run it periodically (the quickstart does
    /// each minute, with the job purge); `grace` must exceed the longest send
    /// of one job's tasks (a few seconds for thousands), e.g. 10 minutes.
    ///
    /// # Errors
    /// The store's.
    pub async fn fail_stranded(&self, grace: std::time::Duration) -> Result<u64> {
        let grace = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let before = now_ms().saturating_sub(grace);
        let mut failed = 0;
        for status in [Status::Pending, Status::Running] {
            let mut cursor = None;
            loop {
                let page = self.list(Filter::default().status(status), cursor, 1000).await?;
                for job in page.jobs.iter().filter(|j| j.tasks_sent < j.tasks_total && j.updated_ms < before) {
                    let changed = self
                        .modify(job.id, |job| {
                            if job.status.is_terminal() || job.tasks_sent >= job.tasks_total || job.updated_ms >= before
                            {
                                return Err(Error::IllegalTransition {
                                    id: job.id,
                                    from: job.status,
                                    to: Status::Failed,
                                });
                            }
                            let message = format!(
                                "only {} of its {} tasks were sent: the sender stopped before sending the rest",
                                job.tasks_sent, job.tasks_total
                            );
                            job.transition(Status::Failed, now_ms())?;
                            job.error = Some(JobError { message, task: None });
                            Ok(())
                        })
                        .await;
                    match changed {
                        Ok(_) => failed += 1,
                        // Finished, completed or moved meanwhile.
                        Err(Error::IllegalTransition { .. } | Error::NotFound(_)) => {}
                        Err(other) => return Err(other),
                    }
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        Ok(failed)
    }

    /// Deletes finished jobs older than `retention`; returns how many.
    ///
    /// # Errors
    /// The store's.
    pub async fn purge(&self, retention: std::time::Duration) -> Result<u64> {
        let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.store.purge(now_ms().saturating_sub(retention)).await
    }

    /// Whether the store answers: lists one job. What a readiness check
    /// calls (chassis-service's `Service::jobs` registers it as `job_store`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let jobs = chassis_jobs::Jobs::new(chassis_jobs::MemoryStore::new());
    /// assert!(jobs.ping().await.is_ok());
    /// # }
    /// ```
    ///
    /// # Errors
    /// The store's.
    pub async fn ping(&self) -> Result<()> {
        self.list(Filter::default(), None, 1).await.map(|_| ())
    }

    /// The store's housekeeping, as a long-running component: each minute it
    /// fails stranded jobs ([`fail_stranded`](Self::fail_stranded) with
    /// `config.stranded_grace_secs`), and each hour, starting at once, it
    /// purges finished jobs older than `config.retention_days`
    /// ([`purge`](Self::purge)). Errors are logged as warnings and tried again
    /// next round. Returns when `shutdown` fires.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use chassis_jobs::{Config, Jobs, MemoryStore};
    ///
    /// let jobs = Jobs::new(MemoryStore::new());
    /// let shutdown = chassis_tasks::CancellationToken::new();
    /// let housekeeping = tokio::spawn(jobs.clone().housekeeping(&Config::default(), shutdown.clone()));
    /// shutdown.cancel();
    /// housekeeping.await.unwrap();
    /// # }
    /// ```
    pub fn housekeeping(
        self,
        config: &crate::Config,
        shutdown: chassis_tasks::CancellationToken,
    ) -> impl Future<Output = ()> + Send + use<> {
        let (grace, retention) = (config.stranded_grace(), config.retention());
        async move {
            for minute in 0u64.. {
                match self.fail_stranded(grace).await {
                    Ok(n) if n > 0 => tracing::warn!(failed = n, "jobs whose tasks were not all sent failed"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "looking for stranded jobs failed"),
                }
                if minute % 60 == 0 {
                    match self.purge(retention).await {
                        Ok(n) if n > 0 => tracing::info!(purged = n, "old jobs purged"),
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "purging old jobs failed"),
                    }
                }
                // Ok: the token fired within the minute.
                if tokio::time::timeout(HOUSEKEEPING_EVERY, shutdown.cancelled()).await.is_ok() {
                    return;
                }
            }
        }
    }
}

/// How often [`Jobs::housekeeping`] looks for stranded jobs.
const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Config, MemoryStore};

    #[tokio::test(start_paused = true)]
    async fn housekeeping_purges_at_once_and_stops_on_shutdown() {
        let jobs = Jobs::new(MemoryStore::new());
        let job = jobs.create(NewJob::new("old", serde_json::json!({}))).await.unwrap();
        let job = jobs.cancel(job.id).await.unwrap();
        // A purge with no retention removes jobs finished strictly before now.
        while now_ms() <= job.finished_ms.unwrap() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let config = Config { retention_days: 0, ..Config::default() };
        let shutdown = chassis_tasks::CancellationToken::new();
        let housekeeping = tokio::spawn(jobs.clone().housekeeping(&config, shutdown.clone()));
        let mut rounds = 0;
        while jobs.get(job.id).await.is_ok() {
            assert!(rounds < 1000, "the first round did not purge the finished job");
            rounds += 1;
            tokio::task::yield_now().await;
        }
        shutdown.cancel();
        housekeeping.await.unwrap();
        assert!(jobs.ping().await.is_ok());
    }
}
