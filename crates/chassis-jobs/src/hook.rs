//! [`JobHook`]: task execution drives job status.

use chassis_tasks::{BoxFuture, Hook, Proceed, RunOutcome, TaskContext};
use uuid::Uuid;

use crate::error::Error;
use crate::jobs::Jobs;
use crate::model::{JobError, Status, now_ms};

/// Install on a task worker (`Worker::hook`): a job moves to running when its
/// first task starts, counts its finished tasks (progress = done / total),
/// succeeds when all its tasks succeeded, fails (with the error and the task)
/// when one fails for good or is dead-lettered; tasks of a cancelled job are
/// skipped. Updates are conditional and retried, so workers finishing tasks of
/// one job at once never lose a count.
#[derive(Debug, Clone)]
pub struct JobHook {
    jobs: Jobs,
}

impl JobHook {
    /// A hook over `jobs`.
    pub fn new(jobs: Jobs) -> Self {
        Self { jobs }
    }
}

fn job_id(run: &TaskContext) -> Option<Uuid> {
    run.job.as_ref().and_then(|j| Uuid::parse_str(&j.id).ok())
}

impl Hook for JobHook {
    fn before(&self, run: &TaskContext) -> BoxFuture<Proceed> {
        let jobs = self.jobs.clone();
        let id = job_id(run);
        Box::pin(async move {
            let Some(id) = id else { return Proceed::Run };
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

    fn after(&self, run: &TaskContext, outcome: RunOutcome) -> BoxFuture<()> {
        let jobs = self.jobs.clone();
        let id = job_id(run);
        let task = run.task.clone();
        Box::pin(async move {
            let Some(id) = id else { return };
            let updated = match outcome {
                RunOutcome::Succeeded => {
                    jobs.modify(id, |job| {
                        if job.status.is_terminal() {
                            return Ok(()); // e.g. cancelled meanwhile: nothing to count
                        }
                        if job.status == Status::Pending {
                            job.transition(Status::Running, now_ms())?;
                        }
                        job.tasks_done += 1;
                        if job.tasks_total > 0 && job.tasks_done >= job.tasks_total {
                            job.transition(Status::Succeeded, now_ms())?;
                        }
                        Ok(())
                    })
                    .await
                }
                RunOutcome::Failed(reason) => {
                    jobs.modify(id, |job| {
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
                _ => return,
            };
            if let Err(error) = updated {
                tracing::warn!(%error, job_id = %id, "could not record the task's outcome on its job");
            }
        })
    }
}
