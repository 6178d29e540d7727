//! [`SqlStore`]: jobs in SQLite (a file, the embedded durable default) or
//! PostgreSQL (shared by every instance), through sqlx's `Any` driver with
//! runtime-checked queries. The schema comes from embedded migrations.

use std::collections::BTreeMap;
use std::fmt;

use chassis_tasks::BoxFuture;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Filter, Job, JobError, NewJob, Page, Status, TaskEnd, now_ms, storable_text};
use crate::store::{JobStore, parse_cursor};

mod migrate;

/// The scope of the job store's migration lock (see [`migrate::lock_key`]).
const MIGRATION_SCOPE: &str = "chassis-jobs";

/// Embedded migrations, applied in order once per database (and table prefix),
/// each in one transaction with its version row, under the migration lock
/// ([`migrate`]). `{p}` is the table prefix.
//
// Not `sqlx::migrate!` (sqlx 0.8), because of the table prefix:
// - `migrate!` embeds each migration's SQL as fixed text at compile time, and
//   `Migrator` runs that text as it is, so the tables' names cannot carry a
//   prefix chosen at run time (`SqlStore::connect(url, pool, prefix)`);
// - `Migrator` records versions in one table per database, `_sqlx_migrations`,
//   whose name it fixes: two stores with different prefixes in one database (or
//   the durable task queue's tables, which share the database) would read each
//   other's version 1, 2, … as applied and skip their own;
// - its PostgreSQL lock is an advisory lock keyed by the database name (one
//   lock for every prefix), and on SQLite it takes no lock at all, where we
//   need `BEGIN IMMEDIATE` so replicas opening one new file together all start.
const MIGRATIONS: &[migrate::Migration] = &[
    (
        1,
        &["CREATE TABLE IF NOT EXISTS {p}jobs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            tasks_total BIGINT NOT NULL,
            tasks_done BIGINT NOT NULL,
            percent_hundredths BIGINT,
            message TEXT,
            attempts BIGINT NOT NULL,
            input TEXT NOT NULL,
            result TEXT,
            error_message TEXT,
            error_task TEXT,
            labels TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            started_ms BIGINT,
            finished_ms BIGINT,
            updated_ms BIGINT NOT NULL,
            version BIGINT NOT NULL
        )"],
    ),
    (2, &["CREATE INDEX IF NOT EXISTS {p}jobs_status_name ON {p}jobs (status, name)"]),
    (3, &["CREATE INDEX IF NOT EXISTS {p}jobs_finished ON {p}jobs (finished_ms)"]),
    // One row per task execution a job has recorded: a task delivered twice counts once.
    (
        4,
        &["CREATE TABLE IF NOT EXISTS {p}job_tasks (
            job_id TEXT NOT NULL,
            exec_id TEXT NOT NULL,
            outcome TEXT NOT NULL,
            recorded_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, exec_id)
        )"],
    ),
    // Jobs from before this column had all their tasks sent.
    (
        5,
        &[
            "ALTER TABLE {p}jobs ADD COLUMN tasks_sent BIGINT NOT NULL DEFAULT 0",
            "UPDATE {p}jobs SET tasks_sent = tasks_total",
        ],
    ),
];

const COLUMNS: &str = "id, name, status, tasks_total, tasks_done, tasks_sent, percent_hundredths, message, attempts, input, result, \
                       error_message, error_task, labels, created_ms, started_ms, finished_ms, updated_ms, version";

/// A job store on SQLite or PostgreSQL. Cheap to clone.
///
/// A SQLite file is put in WAL mode with `synchronous = NORMAL`: a committed
/// change survives the process being killed; a power loss may lose the last
/// moments' commits.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    prefix: String,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's options hold the URL, which may hold a password.
        f.debug_struct("SqlStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(store_error)`
fn store_error(e: sqlx::Error) -> Error {
    Error::Store(e.to_string())
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(json_error)`
fn json_error(e: serde_json::Error) -> Error {
    Error::Store(format!("a stored JSON column does not parse: {e}"))
}

impl SqlStore {
    /// Connects to `url` (`sqlite://data/jobs.db?mode=rwc`, `postgres://…`) with
    /// up to `pool_size` connections, and applies the migrations. `prefix` goes in
    /// front of every table name (letters, digits and `_`), so several services
    /// or test runs can share one database.
    ///
    /// Any number of instances may connect at once, also to a fresh database:
    /// the migrations run under a lock (a PostgreSQL transaction-scoped advisory
    /// lock keyed by the prefix; SQLite's `BEGIN IMMEDIATE`), each migration in
    /// its own transaction with its version row, so each is applied once and
    /// every instance starts.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad prefix; [`Error::Store`] when the database
    /// cannot be reached or migrated.
    pub async fn connect(url: &str, pool_size: u32, prefix: &str) -> Result<Self> {
        if !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::Invalid(format!("table prefix {prefix:?} may hold only letters, digits and `_`")));
        }
        sqlx::any::install_default_drivers();
        // Switching a new SQLite file to WAL takes a lock SQLite's busy timeout
        // does not wait for: instances opening a new file at once may find it
        // locked for a moment. Such a connect is tried again (up to about 5 s).
        let mut attempt = 0;
        loop {
            attempt += 1;
            let connected = async {
                let pool = AnyPoolOptions::new()
                    .max_connections(pool_size.max(1))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // SQLite: WAL with synchronous = NORMAL — a committed write
                            // survives the process being killed; a power loss may lose
                            // the last moments' commits (the task queue's promise too).
                            if conn.backend_name() == "SQLite" {
                                sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                                sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await
                    .map_err(store_error)?;
                let store = Self { pool, prefix: prefix.to_owned() };
                store.migrate().await?;
                Ok::<_, Error>(store)
            }
            .await;
            match connected {
                Err(Error::Store(reason)) if attempt < 50 && reason.contains("database is locked") => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    fn sql(&self, template: &str) -> String {
        template.replace("{p}", &self.prefix)
    }

    /// Applies the pending migrations under the migration lock (see [`migrate`]).
    async fn migrate(&self) -> Result<()> {
        let migrations: Vec<(i64, Vec<String>)> = MIGRATIONS
            .iter()
            .map(|(version, statements)| (*version, statements.iter().map(|s| self.sql(s)).collect()))
            .collect();
        migrate::run(&self.pool, MIGRATION_SCOPE, &self.prefix, &self.sql("{p}jobs_migrations"), &migrations)
            .await
            .map_err(|e| Error::Store(format!("migrating the job tables (prefix {:?}): {e}", self.prefix)))
    }

    /// Writes `next` if the stored version is still `expected`; whether it did.
    async fn write<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
        &self,
        executor: E,
        next: &Job,
        expected: i64,
    ) -> Result<bool> {
        let sql = self.sql(
            "UPDATE {p}jobs SET name = $2, status = $3, tasks_total = $4, tasks_done = $5, tasks_sent = $6, \
             percent_hundredths = $7, message = $8, attempts = $9, input = $10, result = $11, error_message = $12, \
             error_task = $13, labels = $14, created_ms = $15, started_ms = $16, finished_ms = $17, \
             updated_ms = $18, version = $19 WHERE id = $1 AND version = $20",
        );
        let query = sqlx::query(&sql).bind(next.id.to_string());
        let done = bind_job(query, next)?.bind(expected).execute(executor).await.map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    /// Why a conditional write wrote nothing: the job is gone, or changed.
    async fn why_not_written(&self, id: Uuid, expected: i64) -> Error {
        match self.get(id).await {
            Ok(_) => Error::Conflict { id, expected },
            Err(e) => e,
        }
    }

    /// Up to `limit` rows matching `filter` with an id below `before`, newest first.
    async fn list_rows(&self, filter: &Filter, before: Option<&str>, limit: usize) -> Result<Vec<AnyRow>> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.name.is_some() {
            conditions.push(format!("name = {}", next()));
        }
        if filter.status.is_some() {
            conditions.push(format!("status = {}", next()));
        }
        if filter.created_from.is_some() {
            conditions.push(format!("created_ms >= {}", next()));
        }
        if filter.created_until.is_some() {
            conditions.push(format!("created_ms < {}", next()));
        }
        if before.is_some() {
            conditions.push(format!("id < {}", next()));
        }
        let limit_param = next();
        let where_clause =
            if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql =
            self.sql(&format!("SELECT {COLUMNS} FROM {{p}}jobs {where_clause} ORDER BY id DESC LIMIT {limit_param}"));
        let mut query = sqlx::query(&sql);
        if let Some(name) = &filter.name {
            query = query.bind(storable_text(name.clone()));
        }
        if let Some(status) = filter.status {
            query = query.bind(status.as_str());
        }
        if let Some(from) = filter.created_from {
            query = query.bind(from);
        }
        if let Some(until) = filter.created_until {
            query = query.bind(until);
        }
        if let Some(before) = before {
            query = query.bind(before.to_owned());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        query.bind(limit).fetch_all(&self.pool).await.map_err(store_error)
    }

    /// Drops this prefix's tables (for tests that clean up after themselves).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn drop_tables(&self) -> Result<()> {
        for table in ["{p}job_tasks", "{p}jobs", "{p}jobs_migrations"] {
            sqlx::query(&format!("DROP TABLE IF EXISTS {}", self.sql(table)))
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    /// Whether the database answers (for readiness checks).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

fn to_i64(n: u32) -> i64 {
    i64::from(n)
}

fn to_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn row_to_job(row: &AnyRow) -> Result<Job> {
    let id = row.try_get::<String, _>("id").map_err(store_error)?;
    // Every error names the job, so an unreadable row can be found and mended.
    let context = |e: Error| Error::Store(format!("job {id} does not read: {e}"));
    row_fields(row, &id).map_err(context)
}

fn row_fields(row: &AnyRow, id: &str) -> Result<Job> {
    let get_s = |c: &str| row.try_get::<String, _>(c).map_err(store_error);
    let get_os = |c: &str| row.try_get::<Option<String>, _>(c).map_err(store_error);
    let get_i = |c: &str| row.try_get::<i64, _>(c).map_err(store_error);
    let get_oi = |c: &str| row.try_get::<Option<i64>, _>(c).map_err(store_error);
    let error = match (get_os("error_message")?, get_os("error_task")?) {
        (Some(message), task) => Some(JobError { message, task }),
        (None, _) => None,
    };
    Ok(Job {
        id: Uuid::parse_str(id).map_err(|e| Error::Store(format!("stored id {id:?}: {e}")))?,
        name: get_s("name")?,
        status: Status::parse(&get_s("status")?)?,
        tasks_total: to_u32(get_i("tasks_total")?),
        tasks_done: to_u32(get_i("tasks_done")?),
        tasks_sent: to_u32(get_i("tasks_sent")?),
        // Stored in hundredths: sqlx's Any driver cannot bind a NULL float to PostgreSQL reliably.
        percent: get_oi("percent_hundredths")?.map(|h| h as f64 / 100.0),
        message: get_os("message")?,
        attempts: to_u32(get_i("attempts")?),
        input: serde_json::from_str(&get_s("input")?).map_err(json_error)?,
        result: get_os("result")?.map(|r| serde_json::from_str(&r)).transpose().map_err(json_error)?,
        error,
        labels: serde_json::from_str::<BTreeMap<String, String>>(&get_s("labels")?).map_err(json_error)?,
        created_ms: get_i("created_ms")?,
        started_ms: get_oi("started_ms")?,
        finished_ms: get_oi("finished_ms")?,
        updated_ms: get_i("updated_ms")?,
        version: get_i("version")?,
    })
}

/// The job as written over `job`'s version: the version bumped, the time stamped.
fn next_version(job: Job) -> (Job, i64) {
    let expected = job.version;
    let mut next = job;
    next.version = expected + 1;
    next.updated_ms = now_ms();
    (next, expected)
}

/// Binds a job's columns (after `id`) in `COLUMNS` order, for any database
/// (the store's own, or a task queue's connection: [`SqlStore::insert_on`]).
fn bind_job<'q, DB: sqlx::Database>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    job: &Job,
) -> Result<sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let input = serde_json::to_string(&job.input).map_err(json_error)?;
    let result = job.result.as_ref().map(serde_json::to_string).transpose().map_err(json_error)?;
    let labels = serde_json::to_string(&job.labels).map_err(json_error)?;
    Ok(query
        .bind(job.name.clone())
        .bind(job.status.as_str().to_owned())
        .bind(to_i64(job.tasks_total))
        .bind(to_i64(job.tasks_done))
        .bind(to_i64(job.tasks_sent))
        .bind(job.percent.map(|p| (p * 100.0).round() as i64))
        .bind(job.message.clone())
        .bind(to_i64(job.attempts))
        .bind(input)
        .bind(result)
        .bind(job.error.as_ref().map(|e| e.message.clone()))
        .bind(job.error.as_ref().and_then(|e| e.task.clone()))
        .bind(labels)
        .bind(job.created_ms)
        .bind(job.started_ms)
        .bind(job.finished_ms)
        .bind(job.updated_ms)
        .bind(job.version))
}

impl SqlStore {
    fn insert_sql(&self) -> String {
        self.sql(&format!(
            "INSERT INTO {{p}}jobs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        ))
    }

    /// Writes a new job's row on `conn`: a connection (a transaction) of a
    /// task queue in this store's own database, so the job and its tasks
    /// commit together ([`Jobs::start_with_tasks`](crate::Jobs::start_with_tasks)).
    pub(crate) async fn insert_on<DB: sqlx::Database>(&self, conn: &mut DB::Connection, job: &Job) -> Result<()>
    where
        for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
        for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
        for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        let sql = self.insert_sql();
        let query = sqlx::query::<DB>(&sql).bind(job.id.to_string());
        bind_job(query, job)?.execute(&mut *conn).await.map_err(store_error)?;
        Ok(())
    }

    /// The `applied_ms` of the first migration of the task queue tables with
    /// `prefix`, as this store's database has it: two pools that read the same
    /// value reach the same database (it is stamped once per database).
    pub(crate) async fn queue_stamp(&self, prefix: &str) -> Option<i64> {
        sqlx::query_scalar::<_, i64>(&format!("SELECT applied_ms FROM {prefix}tasks_migrations WHERE version = 1"))
            .fetch_optional(&self.pool)
            .await
            .ok()
            .flatten()
    }
}

impl JobStore for SqlStore {
    fn create(&self, job: NewJob) -> BoxFuture<Result<Job>> {
        let store = self.clone();
        Box::pin(async move {
            let job = job.into_job(now_ms()).into_storable()?;
            let sql = store.insert_sql();
            let query = sqlx::query(&sql).bind(job.id.to_string());
            bind_job(query, &job)?.execute(&store.pool).await.map_err(store_error)?;
            Ok(job)
        })
    }

    fn get(&self, id: Uuid) -> BoxFuture<Result<Job>> {
        let store = self.clone();
        Box::pin(async move {
            let sql = store.sql(&format!("SELECT {COLUMNS} FROM {{p}}jobs WHERE id = $1"));
            let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&store.pool).await.map_err(store_error)?;
            row.as_ref().map(row_to_job).transpose()?.ok_or(Error::NotFound(id))
        })
    }

    fn update(&self, job: Job) -> BoxFuture<Result<Job>> {
        let store = self.clone();
        Box::pin(async move {
            let (next, expected) = next_version(job.into_storable()?);
            if store.write(&store.pool, &next, expected).await? {
                return Ok(next);
            }
            Err(store.why_not_written(next.id, expected).await)
        })
    }

    fn update_recording(&self, job: Job, exec_id: String, end: TaskEnd) -> BoxFuture<Result<Option<Job>>> {
        let store = self.clone();
        Box::pin(async move {
            let (next, expected) = next_version(job.into_storable()?);
            let exec_id = storable_text(exec_id);
            let mut tx = store.pool.begin().await.map_err(store_error)?;
            // First the record: a second delivery of the task stops here. On
            // PostgreSQL a concurrent insert of the same key waits for the
            // first transaction and then finds the row.
            let sql = store.sql(
                "INSERT INTO {p}job_tasks (job_id, exec_id, outcome, recorded_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            );
            let inserted = sqlx::query(&sql)
                .bind(next.id.to_string())
                .bind(exec_id)
                .bind(end.as_str())
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            if inserted.rows_affected() == 0 {
                tx.rollback().await.map_err(store_error)?;
                return Ok(None);
            }
            if store.write(&mut *tx, &next, expected).await? {
                tx.commit().await.map_err(store_error)?;
                return Ok(Some(next));
            }
            tx.rollback().await.map_err(store_error)?;
            Err(store.why_not_written(next.id, expected).await)
        })
    }

    fn list(&self, filter: Filter, cursor: Option<String>, limit: u32) -> BoxFuture<Result<Page>> {
        let store = self.clone();
        Box::pin(async move {
            let after = parse_cursor(cursor.as_deref())?;
            let limit = limit.clamp(1, 1000) as usize;
            // Rows that do not read as a job (damaged, or written by a newer
            // version) are logged and skipped, so one of them never hides every
            // other job; reading goes on past them until the page is full.
            let mut bound = after.map(|a| a.to_string());
            let mut jobs = Vec::with_capacity(limit + 1);
            loop {
                let rows = store.list_rows(&filter, bound.as_deref(), limit + 1).await?;
                for row in &rows {
                    let id = row.try_get::<String, _>("id").map_err(store_error)?;
                    match row_to_job(row) {
                        Ok(job) => jobs.push(job),
                        Err(error) => tracing::warn!(%error, job_id = %id, "skipping a job row that does not read"),
                    }
                    bound = Some(id);
                    if jobs.len() > limit {
                        break;
                    }
                }
                if jobs.len() > limit || rows.len() <= limit {
                    break;
                }
            }
            let more = jobs.len() > limit;
            jobs.truncate(limit);
            let next_cursor = if more { jobs.last().map(|j| j.id.to_string()) } else { None };
            Ok(Page { jobs, next_cursor })
        })
    }

    fn delete(&self, id: Uuid) -> BoxFuture<Result<()>> {
        let store = self.clone();
        Box::pin(async move {
            let mut tx = store.pool.begin().await.map_err(store_error)?;
            for sql in ["DELETE FROM {p}job_tasks WHERE job_id = $1", "DELETE FROM {p}jobs WHERE id = $1"] {
                sqlx::query(&store.sql(sql)).bind(id.to_string()).execute(&mut *tx).await.map_err(store_error)?;
            }
            tx.commit().await.map_err(store_error)
        })
    }

    fn purge(&self, before_ms: i64) -> BoxFuture<Result<u64>> {
        let store = self.clone();
        Box::pin(async move {
            const FINISHED: &str = "status IN ('succeeded', 'failed', 'cancelled') AND finished_ms < $1";
            let mut tx = store.pool.begin().await.map_err(store_error)?;
            let records =
                format!("DELETE FROM {{p}}job_tasks WHERE job_id IN (SELECT id FROM {{p}}jobs WHERE {FINISHED})");
            sqlx::query(&store.sql(&records)).bind(before_ms).execute(&mut *tx).await.map_err(store_error)?;
            let jobs = format!("DELETE FROM {{p}}jobs WHERE {FINISHED}");
            let done = sqlx::query(&store.sql(&jobs)).bind(before_ms).execute(&mut *tx).await.map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            Ok(done.rows_affected())
        })
    }
}
