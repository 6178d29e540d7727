//! Queues under test, each on its own file or table prefix, cleaned up after.

#[cfg(feature = "postgres")]
#[allow(clippy::disallowed_methods)] // the test's own switch
pub fn postgres_url() -> String {
    std::env::var("CHASSIS_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[cfg(feature = "postgres")]
pub fn prefix() -> String {
    format!("t{}_", uuid::Uuid::new_v4().simple())
}

#[cfg(feature = "sqlite")]
pub struct Sqlite {
    pub queue: chassis_tasks::SqliteQueue,
    pub path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

#[cfg(feature = "sqlite")]
pub async fn sqlite(name: &str) -> Sqlite {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    let queue = chassis_tasks::SqliteQueue::open(&path, name).await.unwrap();
    Sqlite { queue, path, _dir: dir }
}

#[cfg(feature = "postgres")]
pub struct Postgres {
    pub queue: chassis_tasks::PostgresQueue,
    pub prefix: String,
}

#[cfg(feature = "postgres")]
pub async fn postgres(name: &str) -> Postgres {
    postgres_with(name, chassis_tasks::PostgresQueue::options()).await
}

#[cfg(feature = "postgres")]
pub async fn postgres_with(name: &str, options: chassis_tasks::SqlQueueOptions) -> Postgres {
    let url = postgres_url();
    let prefix = prefix();
    let queue = chassis_tasks::PostgresQueue::connect(&url, 4, name, options.table_prefix(prefix.clone()))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is needed at {url} (start it, or set CHASSIS_TEST_POSTGRES_URL): {e}"));
    Postgres { queue, prefix }
}

#[cfg(feature = "postgres")]
impl Postgres {
    pub async fn cleanup(self) {
        for table in ["tasks", "task_dedup", "tasks_migrations"] {
            sqlx::query(&format!("DROP TABLE IF EXISTS {}{table}", self.prefix))
                .execute(self.queue.pool())
                .await
                .unwrap();
        }
    }
}
