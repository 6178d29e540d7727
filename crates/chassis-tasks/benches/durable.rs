//! The durable queues (SQLite file, PostgreSQL on 127.0.0.1:5432, database
//! `test`) next to apalis 0.7 with its SQLite and PostgreSQL storages, in the
//! same run:
//!
//! - `durable_worker/*`: N tasks queued first, then a worker runs them
//!   (receive → decode → no-op handler → delete); the time to the last
//!   completion, per task. Ours: the default worker config (concurrency 32,
//!   3 pollers of 10). apalis: `concurrency(32)`, a buffer of 32 per fetch and
//!   a 1 ms poll interval (its default of 100 ms would cap it at 320 tasks/s).
//! - `durable_enqueue/*`: `Producer::send_all` of 10 000 tasks.
//! - `durable_claim/*`: one receive of 10 with 100 standing visible messages,
//!   with no backlog and behind a backlog of delayed rows in the same queue and
//!   rows of other queues (finished rows do not exist: a delete deletes the
//!   row). Prints the PostgreSQL plan of the claim's selection.
//!
//! Every PostgreSQL run uses fresh tables (a random prefix) and drops them;
//! apalis, whose schema is fixed (`apalis.*`), gets a fresh database, dropped
//! after. Run with `cargo bench -p chassis-tasks --features sqlite,postgres
//! --bench durable`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

#[path = "support/noop.rs"]
#[allow(dead_code)] // this bench sends its own tasks
mod noop;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::{Data, Error as ApalisError, Storage, WorkerBuilder, WorkerBuilderExt, WorkerFactoryFn};
use apalis_sql::Config as ApalisConfig;
use apalis_sql::postgres::PostgresStorage;
use apalis_sql::sqlite::SqliteStorage;
use chassis_tasks::{MemoryQueue, Outgoing, PostgresQueue, Producer, Queue, SqliteQueue};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Executor, PgConnection, PgPool, SqlitePool};
use tokio::sync::Notify;

const PG: &str = "postgres://postgres@127.0.0.1:5432";
const PG_DB: &str = "test";
/// Connections of each PostgreSQL pool, ours and apalis's alike.
const PG_POOL: u32 = 8;
/// apalis's fetch size and concurrency, as our worker's concurrency.
const APALIS_BUFFER: usize = 32;
const APALIS_POLL: Duration = Duration::from_millis(1);

/// Sizes: the real ones under `cargo bench`, small ones when `cargo test`
/// runs each bench once.
struct Sizes {
    worker: u64,
    enqueue: u64,
    delayed: u64,
    others: u64,
}

fn sizes() -> Sizes {
    if std::env::args().any(|a| a == "--bench") {
        Sizes { worker: 10_000, enqueue: 10_000, delayed: 100_000, others: 1_000_000 }
    } else {
        Sizes { worker: 200, enqueue: 200, delayed: 1_000, others: 2_000 }
    }
}

fn pg_url() -> String {
    format!("{PG}/{PG_DB}")
}

fn prefix() -> String {
    format!("bench{}_", uuid::Uuid::new_v4().simple())
}

/// A SQLite queue in a fresh temporary file (the directory lives as long as the guard).
async fn sqlite_queue(name: &str) -> (SqliteQueue, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open(dir.path().join("tasks.db"), name).await.unwrap();
    (queue, dir)
}

/// A PostgreSQL queue on fresh tables.
async fn postgres_queue(name: &str) -> (PostgresQueue, String) {
    let prefix = prefix();
    let options = PostgresQueue::options().table_prefix(prefix.clone());
    let queue = PostgresQueue::connect(&pg_url(), PG_POOL, name, options)
        .await
        .unwrap_or_else(|e| panic!("the bench needs PostgreSQL at {PG}/{PG_DB} with trust auth: {e}"));
    (queue, prefix)
}

async fn drop_tables(pool: &PgPool, prefix: &str) {
    for table in ["tasks", "task_dedup", "tasks_migrations"] {
        pool.execute(format!("DROP TABLE IF EXISTS {prefix}{table}").as_str()).await.unwrap();
    }
}

/// Queues `n` no-op tasks with `send_all`, 4 calls of 1 000 at a time.
async fn fill<Q: Queue + Clone>(queue: &Q, n: u64) {
    let producer = Producer::new(queue.clone());
    let mut sent = 0;
    while sent < n {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let chunk = (n - sent).min(1000);
            let tasks: Vec<_> = (sent..sent + chunk).map(|i| producer.task("noop", &json!({ "i": i }))).collect();
            let producer = producer.clone();
            calls.spawn(async move { producer.send_all(tasks).await });
            sent += chunk;
        }
        for result in calls.join_all().await {
            assert!(result.unwrap().iter().all(Result::is_ok));
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noop {
    i: u64,
}

struct Done {
    count: AtomicU64,
    n: u64,
    all: Notify,
}

async fn apalis_noop(_job: Noop, done: Data<Arc<Done>>) -> Result<(), ApalisError> {
    if done.count.fetch_add(1, Ordering::Relaxed) + 1 == done.n {
        done.all.notify_one();
    }
    Ok(())
}

fn apalis_config() -> ApalisConfig {
    ApalisConfig::new("bench::noop").set_buffer_size(APALIS_BUFFER).set_poll_interval(APALIS_POLL)
}

/// Pushes `n` jobs into an apalis storage one by one (its API).
async fn push_all<S: Storage<Job = Noop>>(storage: &mut S, n: u64)
where
    S::Error: std::fmt::Debug,
{
    for i in 0..n {
        storage.push(Noop { i }).await.unwrap();
    }
    // apalis runs jobs whose `run_at` (whole seconds) is before now: let the second turn.
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// The longest an apalis run may take before it counts as stalled.
const APALIS_LIMIT: Duration = Duration::from_secs(120);

/// Runs an apalis worker of concurrency 32 on `$storage`, holding `$n` jobs,
/// until all are done; the time from its start to the last completion. (A
/// macro: the worker's bounds are written for each concrete storage.)
macro_rules! run_apalis {
    ($storage:expr, $n:expr) => {{
        let done = Arc::new(Done { count: AtomicU64::new(0), n: $n, all: Notify::new() });
        let worker = WorkerBuilder::new("bench")
            .concurrency(APALIS_BUFFER)
            .data(done.clone())
            .backend($storage)
            .build_fn(apalis_noop);
        let started = Instant::now();
        let runnable = worker.run();
        let handle = runnable.get_handle();
        let task = tokio::spawn(runnable);
        // The peer has been seen to stall (once in a CI run): bounded, so a
        // stuck apalis cannot hang the run. Under `cargo test` (criterion's
        // test mode: one smoke run of each bench, no `--bench`) that is a
        // warning, since it is not our code; in a measurement, a failure.
        if tokio::time::timeout(APALIS_LIMIT, done.all.notified()).await.is_err() {
            let message = format!(
                "apalis ran {} of {} jobs in {APALIS_LIMIT:?} and stalled (the peer, not chassis)",
                done.count.load(Ordering::Relaxed),
                $n
            );
            assert!(!std::env::args().any(|arg| arg == "--bench"), "{message}");
            eprintln!("warning: {message}");
        }
        let elapsed = started.elapsed();
        handle.stop();
        task.abort();
        let _ = task.await;
        elapsed
    }};
}

fn sqlite_options(path: &std::path::Path) -> SqliteConnectOptions {
    SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
}

async fn apalis_sqlite(n: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let pool: SqlitePool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(sqlite_options(&dir.path().join("apalis.db")))
        .await
        .unwrap();
    SqliteStorage::setup(&pool).await.unwrap();
    let mut storage: SqliteStorage<Noop> = SqliteStorage::new_with_config(pool.clone(), apalis_config());
    push_all(&mut storage, n).await;
    let elapsed = run_apalis!(storage, n);
    pool.close().await;
    elapsed
}

/// A fresh database for apalis (its schema name is fixed), dropped after.
async fn apalis_postgres(n: u64) -> Duration {
    let db = format!("bench_apalis_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&pg_url()).await.unwrap();
    admin.execute(format!("CREATE DATABASE {db}").as_str()).await.unwrap();
    let pool =
        sqlx::postgres::PgPoolOptions::new().max_connections(PG_POOL).connect(&format!("{PG}/{db}")).await.unwrap();
    PostgresStorage::setup(&pool).await.unwrap();
    let mut storage: PostgresStorage<Noop> = PostgresStorage::new_with_config(pool.clone(), apalis_config());
    push_all(&mut storage, n).await;
    let elapsed = run_apalis!(storage, n);
    pool.close().await;
    admin.execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str()).await.unwrap();
    elapsed
}

fn worker(c: &mut Criterion, rt: &tokio::runtime::Runtime, n: u64) {
    let mut group = c.benchmark_group("durable_worker");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    // Each sample runs a fixed batch through a fresh queue and worker and
    // scales the time to the iterations criterion asked for.
    let scale = move |elapsed: Duration, iters: u64| elapsed.mul_f64(iters as f64 / n as f64);
    group.bench_function("sqlite/chassis", |b| {
        b.iter_custom(|iters| {
            let elapsed = rt.block_on(async {
                let (queue, _dir) = sqlite_queue("bench").await;
                fill(&queue, n).await;
                noop::run_noops(queue, n).await
            });
            scale(elapsed, iters)
        });
    });
    group.bench_function("sqlite/apalis", |b| b.iter_custom(|iters| scale(rt.block_on(apalis_sqlite(n)), iters)));
    group.bench_function("postgres/chassis", |b| {
        b.iter_custom(|iters| {
            let elapsed = rt.block_on(async {
                let (queue, prefix) = postgres_queue("bench").await;
                fill(&queue, n).await;
                let pool = queue.pool().clone();
                let elapsed = noop::run_noops(queue, n).await;
                drop_tables(&pool, &prefix).await;
                elapsed
            });
            scale(elapsed, iters)
        });
    });
    group.bench_function("postgres/apalis", |b| b.iter_custom(|iters| scale(rt.block_on(apalis_postgres(n)), iters)));
    group.finish();
}

fn enqueue(c: &mut Criterion, rt: &tokio::runtime::Runtime, n: u64) {
    let mut group = c.benchmark_group("durable_enqueue");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    let scale = move |elapsed: Duration, iters: u64| elapsed.mul_f64(iters as f64 / n as f64);
    async fn send_all<Q: Queue + Clone>(queue: &Q, n: u64) -> Duration {
        let producer = Producer::new(queue.clone());
        producer.send_all(Vec::new()).await.unwrap(); // reads the attributes once, untimed
        let tasks = (0..n).map(|i| producer.task("noop", &json!({ "i": i }))).collect();
        let started = Instant::now();
        let results = producer.send_all(tasks).await.unwrap();
        let elapsed = started.elapsed();
        assert!(results.iter().all(Result::is_ok));
        elapsed
    }
    group.bench_function("memory", |b| {
        b.iter_custom(|iters| scale(rt.block_on(send_all(&MemoryQueue::new("bench"), n)), iters));
    });
    group.bench_function("sqlite", |b| {
        b.iter_custom(|iters| {
            scale(
                rt.block_on(async {
                    let (queue, _dir) = sqlite_queue("bench").await;
                    send_all(&queue, n).await
                }),
                iters,
            )
        });
    });
    group.bench_function("postgres", |b| {
        b.iter_custom(|iters| {
            scale(
                rt.block_on(async {
                    let (queue, prefix) = postgres_queue("bench").await;
                    let elapsed = send_all(&queue, n).await;
                    drop_tables(queue.pool(), &prefix).await;
                    elapsed
                }),
                iters,
            )
        });
    });
    group.finish();
}

const STANDING: usize = 100;

/// Times one receive of 10 per iteration (deleting and replacing what it
/// took, untimed), with `STANDING` visible messages in the queue.
async fn claims<Q: Queue>(queue: &Q, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let started = Instant::now();
        let messages = queue.receive(10, Duration::ZERO, Duration::from_secs(300)).await.unwrap();
        total += started.elapsed();
        assert_eq!(messages.len(), 10);
        let receipts = messages.iter().map(|m| m.receipt.clone()).collect();
        assert!(queue.delete_batch(receipts).await.unwrap().iter().all(Result::is_ok));
        let outgoing = (0..10).map(|i| Outgoing::new(format!("{{\"i\":{i}}}"))).collect();
        assert!(queue.send_batch(outgoing).await.unwrap().iter().all(Result::is_ok));
    }
    total
}

/// Times one receive of 10 per iteration on a queue with nothing visible.
async fn idle_polls<Q: Queue>(queue: &Q, iters: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        assert!(queue.receive(10, Duration::ZERO, Duration::from_secs(300)).await.unwrap().is_empty());
    }
    started.elapsed()
}

async fn standing<Q: Queue>(queue: &Q) {
    for _ in 0..STANDING / 10 {
        let outgoing = (0..10).map(|i| Outgoing::new(format!("{{\"i\":{i}}}"))).collect();
        queue.send_batch(outgoing).await.unwrap();
    }
}

/// The backlog, written straight into the table: `delayed` rows of `queue`
/// visible in 15 minutes, `others` visible rows spread over 10 other queues.
const BACKLOG_SQLITE: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
     INSERT INTO {t} (queue, body, attributes, group_id, visible_at, receive_count, sent_at) \
     SELECT CASE WHEN i <= ?2 THEN ?3 ELSE 'other-' || (i % 10) END, '{\"i\":0}', '{}', NULL, \
            CASE WHEN i <= ?2 THEN ?4 ELSE ?5 END, 0, ?5 FROM n";
const BACKLOG_POSTGRES: &str = "INSERT INTO {t} (queue, body, attributes, group_id, visible_at, receive_count, sent_at) \
     SELECT CASE WHEN i <= $2 THEN $3 ELSE 'other-' || (i % 10) END, '{\"i\":0}', '{}', NULL, \
            CASE WHEN i <= $2 THEN $4::bigint ELSE $5::bigint END, 0, $5::bigint FROM generate_series(1, $1::bigint) i";

/// The selection of the claim in `src/sql/postgres.rs` (`Statements::claim`), for EXPLAIN.
const CLAIM_SELECTION: &str = "SELECT id FROM {t} WHERE queue = 'bench' \
     AND visible_at <= (floor(extract(epoch from statement_timestamp()) * 1000)::bigint) \
     ORDER BY visible_at, id LIMIT 10 FOR UPDATE SKIP LOCKED";

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn claim(c: &mut Criterion, rt: &tokio::runtime::Runtime, s: &Sizes) {
    let mut group = c.benchmark_group("durable_claim");
    group.sample_size(20);
    let backlog_name = format!("{} delayed + {} other", s.delayed, s.others);
    // The idle queue's backlog: its own delayed rows, behind everything above.
    let idle_name = format!("{} delayed + {} other", s.delayed, s.delayed + s.others);
    let total = i64::try_from(s.delayed + s.others).unwrap();
    let delayed = i64::try_from(s.delayed).unwrap();

    // SQLite.
    let (sqlite, _dir) = rt.block_on(sqlite_queue("bench"));
    let sqlite_idle = rt.block_on(sqlite.sibling("idle")).unwrap();
    rt.block_on(standing(&sqlite));
    group.bench_function(BenchmarkId::new("sqlite", "no backlog"), |b| {
        b.iter_custom(|iters| rt.block_on(claims(&sqlite, iters)));
    });
    group.bench_function(BenchmarkId::new("sqlite_idle", "no backlog"), |b| {
        b.iter_custom(|iters| rt.block_on(idle_polls(&sqlite_idle, iters)));
    });
    let started = Instant::now();
    rt.block_on(async {
        let now = now_ms();
        sqlx::query(&BACKLOG_SQLITE.replace("{t}", "chassis_tasks"))
            .bind(total)
            .bind(delayed)
            .bind("bench")
            .bind(now + 15 * 60 * 1000)
            .bind(now)
            .execute(sqlite.pool())
            .await
            .unwrap();
        sqlx::query(&BACKLOG_SQLITE.replace("{t}", "chassis_tasks"))
            .bind(delayed)
            .bind(delayed)
            .bind("idle")
            .bind(now + 15 * 60 * 1000)
            .bind(now)
            .execute(sqlite.pool())
            .await
            .unwrap();
        sqlite.pool().execute("ANALYZE").await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
            "EXPLAIN QUERY PLAN {}",
            "SELECT id FROM chassis_tasks WHERE queue = 'bench' AND visible_at <= 0 ORDER BY visible_at, id LIMIT 10"
        ))
        .fetch_all(sqlite.pool())
        .await
        .unwrap();
        println!("sqlite backlog of {backlog_name} rows written in {:.1?}", started.elapsed());
        for row in plan {
            println!("sqlite claim plan: {}", row.3);
        }
    });
    group.bench_function(BenchmarkId::new("sqlite", &backlog_name), |b| {
        b.iter_custom(|iters| rt.block_on(claims(&sqlite, iters)));
    });
    group.bench_function(BenchmarkId::new("sqlite_idle", &idle_name), |b| {
        b.iter_custom(|iters| rt.block_on(idle_polls(&sqlite_idle, iters)));
    });

    // PostgreSQL.
    let (postgres, prefix) = rt.block_on(postgres_queue("bench"));
    let postgres_idle = rt.block_on(postgres.sibling("idle")).unwrap();
    rt.block_on(standing(&postgres));
    group.bench_function(BenchmarkId::new("postgres", "no backlog"), |b| {
        b.iter_custom(|iters| rt.block_on(claims(&postgres, iters)));
    });
    group.bench_function(BenchmarkId::new("postgres_idle", "no backlog"), |b| {
        b.iter_custom(|iters| rt.block_on(idle_polls(&postgres_idle, iters)));
    });
    let started = Instant::now();
    rt.block_on(async {
        let t = format!("{prefix}tasks");
        let now = now_ms();
        sqlx::query(&BACKLOG_POSTGRES.replace("{t}", &t))
            .bind(total)
            .bind(delayed)
            .bind("bench")
            .bind(now + 15 * 60 * 1000)
            .bind(now)
            .execute(postgres.pool())
            .await
            .unwrap();
        sqlx::query(&BACKLOG_POSTGRES.replace("{t}", &t))
            .bind(delayed)
            .bind(delayed)
            .bind("idle")
            .bind(now + 15 * 60 * 1000)
            .bind(now)
            .execute(postgres.pool())
            .await
            .unwrap();
        postgres.pool().execute(format!("VACUUM ANALYZE {t}").as_str()).await.unwrap();
        println!("postgres backlog of {backlog_name} rows written in {:.1?}", started.elapsed());
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) {}", CLAIM_SELECTION.replace("{t}", &t)))
                .fetch_all(postgres.pool())
                .await
                .unwrap();
        for line in &plan {
            println!("postgres claim plan: {line}");
        }
        assert!(plan.iter().any(|l| l.contains(&format!("{prefix}tasks_claim"))), "the claim does not use the index");
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN (ANALYZE, BUFFERS) {}",
            CLAIM_SELECTION.replace("{t}", &t).replace("'bench'", "'idle'")
        ))
        .fetch_all(postgres.pool())
        .await
        .unwrap();
        for line in &plan {
            println!("postgres claim plan, nothing visible: {line}");
        }
    });
    group.bench_function(BenchmarkId::new("postgres", &backlog_name), |b| {
        b.iter_custom(|iters| rt.block_on(claims(&postgres, iters)));
    });
    group.bench_function(BenchmarkId::new("postgres_idle", &idle_name), |b| {
        b.iter_custom(|iters| rt.block_on(idle_polls(&postgres_idle, iters)));
    });
    group.finish();
    rt.block_on(drop_tables(postgres.pool(), &prefix));
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s = sizes();
    worker(c, &rt, s.worker);
    enqueue(c, &rt, s.enqueue);
    claim(c, &rt, &s);
}

criterion_group!(benches, bench);
criterion_main!(benches);
