//! [`MemoryStore`]: jobs in a map, for tests and single-process examples.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use chassis_tasks::BoxFuture;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Filter, Job, NewJob, Page, TaskEnd, now_ms, storable_text};
use crate::store::{JobStore, parse_cursor};

/// An in-process job store. Cheap to clone: clones share the jobs.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    jobs: BTreeMap<Uuid, Job>,
    /// Task executions recorded per job.
    tasks: HashSet<(Uuid, String)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<Uuid, Job>) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner).jobs)
    }

    fn write(state: &mut State, job: Job) -> Result<Job> {
        let mut job = job.into_storable()?;
        let stored = state.jobs.get_mut(&job.id).ok_or(Error::NotFound(job.id))?;
        if stored.version != job.version {
            return Err(Error::Conflict { id: job.id, expected: job.version });
        }
        job.version += 1;
        job.updated_ms = now_ms();
        *stored = job.clone();
        Ok(job)
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
        let job = job.into_job(now_ms()).into_storable();
        if let Ok(job) = &job {
            self.with(|jobs| jobs.insert(job.id, job.clone()));
        }
        Box::pin(async move { job })
    }

    fn get(&self, id: Uuid) -> BoxFuture<Result<Job>> {
        let found = self.with(|jobs| jobs.get(&id).cloned()).ok_or(Error::NotFound(id));
        Box::pin(async move { found })
    }

    fn update(&self, job: Job) -> BoxFuture<Result<Job>> {
        let result = Self::write(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner), job);
        Box::pin(async move { result })
    }

    fn update_recording(&self, job: Job, exec_id: String, _end: TaskEnd) -> BoxFuture<Result<Option<Job>>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (job.id, storable_text(exec_id));
        let result = if state.tasks.contains(&key) {
            Ok(None)
        } else {
            Self::write(&mut state, job).map(|job| {
                state.tasks.insert(key);
                Some(job)
            })
        };
        drop(state);
        Box::pin(async move { result })
    }

    fn list(&self, mut filter: Filter, cursor: Option<String>, limit: u32) -> BoxFuture<Result<Page>> {
        filter.name = filter.name.map(storable_text);
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
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.jobs.remove(&id);
        state.tasks.retain(|(job, _)| *job != id);
        drop(state);
        Box::pin(async { Ok(()) })
    }

    fn purge(&self, before_ms: i64) -> BoxFuture<Result<u64>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let before = state.jobs.len();
        state.jobs.retain(|_, j| !(j.status.is_terminal() && j.finished_ms.is_some_and(|f| f < before_ms)));
        let removed = (before - state.jobs.len()) as u64;
        let State { jobs, tasks } = &mut *state;
        tasks.retain(|(job, _)| jobs.contains_key(job));
        drop(state);
        Box::pin(async move { Ok(removed) })
    }
}
