//! One transaction for a job and its tasks, when the job store and the task
//! queue share a database.

use std::any::Any;

use chassis_tasks::{Producer, Queue, Task};

use crate::error::{Error, Result};
use crate::jobs::Jobs;
use crate::model::{Job, NewJob, now_ms};
use crate::sql::SqlStore;

impl Jobs {
    /// Creates `job` and sends `tasks` in one transaction of the queue's
    /// database, when the store is a [`SqlStore`] and the producer's queue a
    /// `SqliteQueue` or `PostgresQueue` that reach the same database; `None`
    /// when they do not (the caller then sends the tasks after the job).
    ///
    /// The same database is recognised by the queue's migration stamp: the
    /// `applied_ms` of its first migration, read through both pools.
    pub(crate) async fn start_atomically<Q: Queue>(
        &self,
        producer: &Producer<Q>,
        job: &NewJob,
        tasks: &[Task],
    ) -> Option<Result<Job>> {
        let store = self.sql()?;
        let producer: &dyn Any = producer;
        #[cfg(feature = "sqlite")]
        if let Some(producer) = producer.downcast_ref::<Producer<chassis_tasks::SqliteQueue>>() {
            let queue = producer.queue();
            if !same_database(store, queue.table_prefix(), queue.pool()).await {
                return None;
            }
            let started = async {
                let mut tx = queue.pool().begin().await.map_err(|e| Error::Store(e.to_string()))?;
                let job = insert_job_and_tasks::<sqlx::Sqlite, _>(store, producer, &mut tx, job, tasks).await?;
                tx.commit().await.map_err(|e| Error::Store(e.to_string()))?;
                Ok(job)
            };
            return Some(started.await);
        }
        #[cfg(feature = "postgres")]
        if let Some(producer) = producer.downcast_ref::<Producer<chassis_tasks::PostgresQueue>>() {
            let queue = producer.queue();
            if !same_database(store, queue.table_prefix(), queue.pool()).await {
                return None;
            }
            let started = async {
                let mut tx = queue.pool().begin().await.map_err(|e| Error::Store(e.to_string()))?;
                let job = insert_job_and_tasks::<sqlx::Postgres, _>(store, producer, &mut tx, job, tasks).await?;
                tx.commit().await.map_err(|e| Error::Store(e.to_string()))?;
                Ok(job)
            };
            return Some(started.await);
        }
        None
    }
}

/// Whether the queue's pool reaches the store's database.
async fn same_database<DB: sqlx::Database>(store: &SqlStore, prefix: &str, pool: &sqlx::Pool<DB>) -> bool
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let Some(stamp) = store.queue_stamp(prefix).await else { return false };
    let queue_stamp: Option<i64> =
        sqlx::query_scalar::<DB, i64>(&format!("SELECT applied_ms FROM {prefix}tasks_migrations WHERE version = 1"))
            .fetch_optional(pool)
            .await
            .ok()
            .flatten();
    queue_stamp == Some(stamp)
}

/// Writes the job (all its tasks counted as sent) and its tasks on `conn`; an
/// error for any task is an error for all, and the caller's transaction,
/// dropped uncommitted, rolls back the job too.
async fn insert_job_and_tasks<DB, Q>(
    store: &SqlStore,
    producer: &Producer<Q>,
    conn: &mut Q::Connection,
    job: &NewJob,
    tasks: &[Task],
) -> Result<Job>
where
    DB: sqlx::Database,
    Q: chassis_tasks::TransactionalQueue<Connection = DB::Connection>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut job = job.clone().into_job(now_ms()).into_storable()?;
    job.tasks_sent = job.tasks_total;
    store.insert_on::<DB>(conn, &job).await?;
    let id = job.id.to_string();
    let tasks = tasks.iter().map(|t| t.clone().job(id.clone(), job.name.clone())).collect();
    for sent in producer.send_in(conn, tasks).await? {
        sent?;
    }
    Ok(job)
}
