//! The stores under test. PostgreSQL is the server on 127.0.0.1:5432 (database
//! `test`), or `CHASSIS_TEST_POSTGRES_URL`; each store gets its own table
//! prefix so runs never collide, and drops its tables afterwards.

use chassis_jobs::{Jobs, MemoryStore};

/// A store for one test, and how to clean it up.
pub struct TestStore {
    pub jobs: Jobs,
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    sql: Option<chassis_jobs::SqlStore>,
    #[cfg(feature = "sqlite")]
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub async fn cleanup(self) {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(sql) = self.sql {
            sql.drop_tables().await.unwrap();
        }
    }
}

pub fn memory() -> TestStore {
    TestStore {
        jobs: Jobs::new(MemoryStore::new()),
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        sql: None,
        #[cfg(feature = "sqlite")]
        _dir: None,
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn prefix() -> String {
    format!("t{}_", uuid::Uuid::new_v4().simple())
}

#[cfg(feature = "sqlite")]
pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
    let sql = chassis_jobs::SqlStore::connect(&url, 4, &prefix()).await.unwrap();
    TestStore { jobs: Jobs::new(sql.clone()), sql: Some(sql), _dir: Some(dir) }
}

/// The PostgreSQL server under test.
#[cfg(feature = "postgres")]
pub fn postgres_url() -> String {
    #[allow(clippy::disallowed_methods)] // the test's own switch
    std::env::var("CHASSIS_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[cfg(feature = "postgres")]
pub async fn postgres() -> TestStore {
    let url = postgres_url();
    let sql = chassis_jobs::SqlStore::connect(&url, 8, &prefix())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is needed at {url} (start it, or set CHASSIS_TEST_POSTGRES_URL): {e}"));
    TestStore {
        jobs: Jobs::new(sql.clone()),
        sql: Some(sql),
        #[cfg(feature = "sqlite")]
        _dir: None,
    }
}

/// Runs `suite` against every store this build has.
#[macro_export]
macro_rules! for_each_store {
    ($memory:ident, $sqlite:ident, $postgres:ident, $suite:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $memory() {
            let store = $crate::stores::memory();
            $suite(&store.jobs).await;
            store.cleanup().await;
        }

        #[cfg(feature = "sqlite")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let store = $crate::stores::sqlite().await;
            $suite(&store.jobs).await;
            store.cleanup().await;
        }

        #[cfg(feature = "postgres")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let store = $crate::stores::postgres().await;
            $suite(&store.jobs).await;
            store.cleanup().await;
        }
    };
}
