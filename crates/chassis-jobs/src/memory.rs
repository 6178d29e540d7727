//! [`MemoryStore`]: jobs in a map, for tests and single-process examples.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chassis_tasks::BoxFuture;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Filter, Job, NewJob, Page, now_ms};
use crate::store::{JobStore, parse_cursor};

/// An in-process job store. Cheap to clone: clones share the jobs.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    jobs: Arc<Mutex<BTreeMap<Uuid, Job>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<Uuid, Job>) -> T) -> T {
        f(&mut self.jobs.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn matches(job: &Job, filter: &Filter) -> bool {
    filter.name.as_ref().is_none_or(|n| &job.name == n)
        && filter.status.is_none_or(|s| job.status == s)
        && filter.created_from.is_none_or(|t| job.created_ms >= t)
        && filter.created_until.is_none_or(|t| job.created_ms < t)
}

impl JobStore for MemoryStore {
    fn create(&self, job: NewJob) -> BoxFuture<Result<Job>> {
        let job = job.into_job(now_ms());
        self.with(|jobs| jobs.insert(job.id, job.clone()));
        Box::pin(async move { Ok(job) })
    }

    fn get(&self, id: Uuid) -> BoxFuture<Result<Job>> {
        let found = self.with(|jobs| jobs.get(&id).cloned()).ok_or(Error::NotFound(id));
        Box::pin(async move { found })
    }

    fn update(&self, mut job: Job) -> BoxFuture<Result<Job>> {
        let result = self.with(|jobs| {
            let stored = jobs.get_mut(&job.id).ok_or(Error::NotFound(job.id))?;
            if stored.version != job.version {
                return Err(Error::Conflict { id: job.id, expected: job.version });
            }
            job.version += 1;
            job.updated_ms = now_ms();
            *stored = job.clone();
            Ok(job)
        });
        Box::pin(async move { result })
    }

    fn list(&self, filter: Filter, cursor: Option<String>, limit: u32) -> BoxFuture<Result<Page>> {
        let result = parse_cursor(cursor.as_deref()).map(|after| {
            self.with(|jobs| {
                let limit = limit.clamp(1, 1000) as usize;
                let mut page: Vec<Job> = jobs
                    .values()
                    .rev()
                    .filter(|j| after.is_none_or(|a| j.id < a))
                    .filter(|j| matches(j, &filter))
                    .take(limit + 1)
                    .cloned()
                    .collect();
                let more = page.len() > limit;
                page.truncate(limit);
                let next_cursor = if more { page.last().map(|j| j.id.to_string()) } else { None };
                Page { jobs: page, next_cursor }
            })
        });
        Box::pin(async move { result })
    }

    fn delete(&self, id: Uuid) -> BoxFuture<Result<()>> {
        self.with(|jobs| jobs.remove(&id));
        Box::pin(async { Ok(()) })
    }

    fn purge(&self, before_ms: i64) -> BoxFuture<Result<u64>> {
        let removed = self.with(|jobs| {
            let before = jobs.len();
            jobs.retain(|_, j| !(j.status.is_terminal() && j.finished_ms.is_some_and(|f| f < before_ms)));
            (before - jobs.len()) as u64
        });
        Box::pin(async move { Ok(removed) })
    }
}
