//! [`JobHook`]: task execution drives job status.

use std::sync::Arc;

use chassis_tasks::{BoxFuture, Hook, HookError, Proceed, RunOutcome, TaskContext};
use uuid::Uuid;

use crate::error::Error;
use crate::jobs::Jobs;
use crate::model::{JobError, Status, TaskEnd, now_ms};

/// Install on a task worker (`Worker::hook`): a job moves to running when its
/// first task starts, counts its finished tasks (progress = done / total),
/// succeeds when all its tasks succeeded, fails (with the error and the task)
/// when one fails for good or is dead-lettered; tasks of a cancelled job are
/// skipped. Updates are conditional and retried, so workers finishing tasks of
/// one job at once never lose a count.
///
/// Exactly once per task: each final outcome is recorded with the task's
/// `exec_id`, in the same transaction as the job's change, so a task that runs
/// twice (at-least-once delivery: a lost delete, a crash before the delete, a
/// duplicate message) changes its job once — `tasks_done` is the number of
/// distinct tasks that succeeded, and the first final outcome of an execution
/// is the one that counts. When the store cannot be written the hook returns an
/// error, and the worker keeps the message, so the count is made when the task
/// comes back. `attempts` counts runs, repeats included.
#[derive(Debug, Clone)]
pub struct JobHook {
    jobs: Jobs,
    /// One lock per stripe of job ids: this process's tasks of one job update
    /// it one at a time instead of racing (and retrying) on its version;
    /// other processes' updates still meet the conditional write.
    stripes: Arc<[tokio::sync::Mutex<()>; STRIPES]>,
}

const STRIPES: usize = 64;

impl JobHook {
    /// A hook over `jobs`.
    pub fn new(jobs: Jobs) -> Self {
        Self { jobs, stripes: Arc::new(std::array::from_fn(|_| tokio::sync::Mutex::new(()))) }
    }
}

/// The stripe of job `id`: its random low bits (UUID v7).
fn stripe(id: Uuid) -> usize {
    (id.as_u128() % STRIPES as u128) as usize
}

fn job_id(run: &TaskContext) -> Option<Uuid> {
    run.job.as_ref().and_then(|j| Uuid::parse_str(&j.id).ok())
}

impl Hook for JobHook {
    fn before(&self, run: &TaskContext) -> BoxFuture<Proceed> {
        let jobs = self.jobs.clone();
        let id = job_id(run);
        let stripes = self.stripes.clone();
        Box::pin(async move {
            let Some(id) = id else { return Proceed::Run };
            let _turn = stripes[stripe(id)].lock().await;
            let updated = jobs
                .modify(id, |job| {
                    if job.status == Status::Cancelled {
                        return Err(Error::IllegalTransition { id, from: job.status, to: Status::Running });
                    }
                    job.attempts += 1;
                    if job.status == Status::Pending {
                        job.transition(Status::Running, now_ms())?;
                    }
                    Ok(())
                })
                .await;
            match updated {
                Err(Error::IllegalTransition { from: Status::Cancelled, .. }) => Proceed::Skip,
                Err(Error::NotFound(_)) => {
                    tracing::warn!(job_id = %id, "task of an unknown job; running it");
                    Proceed::Run
                }
                Err(error) => {
                    tracing::warn!(%error, job_id = %id, "could not record the task's start on its job");
                    Proceed::Run
                }
                Ok(_) => Proceed::Run,
            }
        })
    }

    fn after(&self, run: &TaskContext, outcome: RunOutcome) -> BoxFuture<Result<(), HookError>> {
        let jobs = self.jobs.clone();
        let id = job_id(run);
        let task = run.task.clone();
        let exec_id = run.exec_id.clone();
        let stripes = self.stripes.clone();
        Box::pin(async move {
            let Some(id) = id else { return Ok(()) };
            let _turn = stripes[stripe(id)].lock().await;
            let recorded = match outcome {
                RunOutcome::Succeeded => {
                    jobs.record_task(id, &exec_id, TaskEnd::Succeeded, |job| {
                        job.tasks_done = job.tasks_done.saturating_add(1);
                        if job.status.is_terminal() {
                            return Ok(()); // e.g. cancelled meanwhile: counted, nothing else changes
                        }
                        if job.status == Status::Pending {
                            job.transition(Status::Running, now_ms())?;
                        }
                        if job.tasks_total > 0 && job.tasks_done >= job.tasks_total {
                            job.transition(Status::Succeeded, now_ms())?;
                        }
                        Ok(())
                    })
                    .await
                }
                RunOutcome::Failed(reason) => {
                    jobs.record_task(id, &exec_id, TaskEnd::Failed, |job| {
                        if job.status.is_terminal() {
                            return Ok(());
                        }
                        job.transition(Status::Failed, now_ms())?;
                        job.error = Some(JobError { message: reason.clone(), task: Some(task.clone()) });
                        Ok(())
                    })
                    .await
                }
                // Retrying: nothing changes for the job yet.
                _ => return Ok(()),
            };
            match recorded {
                Ok(Some(_)) => Ok(()),
                Ok(None) => {
                    tracing::info!(job_id = %id, "this task's outcome is recorded on its job already (a repeat delivery)");
                    Ok(())
                }
                Err(Error::NotFound(_)) => {
                    tracing::warn!(job_id = %id, "task of an unknown job (deleted?); nothing to record");
                    Ok(())
                }
                Err(error) => Err(HookError(format!("could not record the task's outcome on job {id}: {error}"))),
            }
        })
    }
}
