//! Ready-made components of the other chassis crates: a task worker
//! (`tasks` feature) and a job store's upkeep (`jobs` feature), each with its
//! readiness check, so a service wires them in one line.

use crate::Service;

/// The readiness check of [`Service::worker`].
#[cfg(feature = "tasks")]
pub const WORKER_CHECK: &str = "task_queue";

/// The readiness check of [`Service::jobs`].
#[cfg(feature = "jobs")]
pub const JOB_STORE_CHECK: &str = "job_store";

impl Service {
    /// Runs `worker` as the component `task_worker` and adds the readiness
    /// check `task_queue` ([`WORKER_CHECK`]): it passes while the worker's
    /// consumer loop runs and its last receive reached the queue, and fails
    /// with the queue's last error (or `consumer not running`) otherwise.
    ///
    /// The worker starts with the service and stops receiving at shutdown,
    /// finishing its in-flight tasks within its own deadline; its
    /// [`Report`](chassis_tasks::Report) is logged at INFO when it stops.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use chassis_tasks::{Config, MemoryQueue, Handlers, Worker};
    ///
    /// let mut service = chassis_service::Service::new("billing", "1.4.2", chassis_service::Config::default());
    /// let worker = Worker::new(MemoryQueue::new("billing"), Handlers::new(), Config::new("billing"))?;
    /// service.worker(worker);
    /// service.run().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tasks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tasks")))]
    pub fn worker<Q>(&mut self, worker: chassis_tasks::Worker<Q>) -> &mut Self
    where
        Q: chassis_tasks::Queue + Clone,
    {
        let health = worker.health();
        self.health.check(WORKER_CHECK, move || {
            let health = health.clone();
            async move {
                if health.is_ready() {
                    Ok(())
                } else {
                    Err(health.last_error().unwrap_or_else(|| "consumer not running".into()))
                }
            }
        });
        self.spawn("task_worker", move |shutdown| async move {
            let report = worker.run(shutdown).await;
            tracing::info!(?report, "task worker stopped");
        })
    }

    /// Adds the job store's readiness check `job_store` ([`JOB_STORE_CHECK`],
    /// [`Jobs::ping`](chassis_jobs::Jobs::ping)) and its upkeep as the
    /// component `job_purge` ([`Jobs::housekeeping`](chassis_jobs::Jobs::housekeeping):
    /// stranded jobs failed each minute after `config.stranded_grace_secs`,
    /// finished jobs purged each hour after `config.retention_days`).
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use chassis_jobs::{Jobs, MemoryStore};
    ///
    /// let mut service = chassis_service::Service::new("billing", "1.4.2", chassis_service::Config::default());
    /// service.jobs(Jobs::new(MemoryStore::new()), &chassis_jobs::Config::default());
    /// service.run().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jobs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jobs")))]
    pub fn jobs(&mut self, jobs: chassis_jobs::Jobs, config: &chassis_jobs::Config) -> &mut Self {
        let store = jobs.clone();
        self.health.check(JOB_STORE_CHECK, move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        });
        let config = config.clone();
        self.spawn("job_purge", move |shutdown| jobs.housekeeping(&config, shutdown))
    }
}
