//! A job and its tasks in one transaction when the job store and the task
//! queue share a database: both exist, or neither.

use chassis_jobs::{Error, Filter, Jobs, NewJob, SqlStore, Status};
use chassis_tasks::{Producer, Queue};
use serde_json::json;

/// A job of `n` small tasks and one too large to send.
async fn refused_and_accepted<Q: Queue + Clone>(jobs: &Jobs, queue: &Q, shared: bool) {
    let producer = Producer::new(queue.clone());
    let mut tasks: Vec<_> = (0..3u32).map(|n| producer.task("step", &n)).collect();
    tasks.push(producer.task("step", &"x".repeat(300_000)));
    let err = jobs.start_with_tasks(&producer, NewJob::new("refused", json!({})), tasks).await.unwrap_err();
    assert!(matches!(err, Error::Tasks(chassis_tasks::Error::TooLarge { .. })), "{err}");
    let refused = jobs.list(Filter::default().name("refused"), None, 10).await.unwrap().jobs;
    let queued = queue.attributes().await.unwrap().visible;
    if shared {
        assert!(refused.is_empty(), "no job without its tasks: {refused:?}");
        assert_eq!(queued, 0, "no task without its job");
    } else {
        // Two databases: the job existed first, and is failed with what was sent.
        assert_eq!((refused[0].status, refused[0].tasks_sent, queued), (Status::Failed, 3, 3));
        let drained = queue.receive(10, std::time::Duration::ZERO, std::time::Duration::from_secs(60)).await.unwrap();
        queue.delete_batch(drained.into_iter().map(|m| m.receipt).collect()).await.unwrap();
    }
    let tasks = (0..5u32).map(|n| producer.task("step", &n)).collect();
    let job = jobs.start_with_tasks(&producer, NewJob::new("accepted", json!({})), tasks).await.unwrap();
    assert_eq!((job.status, job.tasks_sent, job.tasks_total), (Status::Pending, 5, 5));
    assert_eq!(jobs.get(job.id).await.unwrap().tasks_sent, 5);
    let messages = queue.receive(10, std::time::Duration::ZERO, std::time::Duration::from_secs(60)).await.unwrap();
    assert_eq!(messages.len(), 5);
    assert!(messages.iter().all(|m| m.attributes["job_id"] == job.id.to_string()));
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_file_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.db");
    let store = SqlStore::connect(&format!("sqlite://{}?mode=rwc", path.display()), 2, "j_").await.unwrap();
    let queue = chassis_tasks::SqliteQueue::open(&path, "work").await.unwrap();
    refused_and_accepted(&Jobs::new(store), &queue, true).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_files_job_first() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
    let store = SqlStore::connect(&url, 2, "j_").await.unwrap();
    let queue = chassis_tasks::SqliteQueue::open(dir.path().join("tasks.db"), "work").await.unwrap();
    refused_and_accepted(&Jobs::new(store), &queue, false).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_database_one_transaction() {
    use chassis_tasks::PostgresQueue;
    #[allow(clippy::disallowed_methods)] // the test's own switch
    let url =
        std::env::var("CHASSIS_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let prefix = format!("t{}_", uuid::Uuid::new_v4().simple());
    let store = SqlStore::connect(&url, 2, &prefix)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is needed at {url} (start it, or set CHASSIS_TEST_POSTGRES_URL): {e}"));
    let queue =
        PostgresQueue::connect(&url, 2, "work", PostgresQueue::options().table_prefix(prefix.clone())).await.unwrap();
    refused_and_accepted(&Jobs::new(store.clone()), &queue, true).await;
    store.drop_tables().await.unwrap();
    for table in ["tasks", "task_dedup", "tasks_migrations"] {
        sqlx::query(&format!("DROP TABLE IF EXISTS {prefix}{table}")).execute(queue.pool()).await.unwrap();
    }
}
