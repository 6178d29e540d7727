//! Building a store from the `jobs` config section.

use chassis_jobs::{Backend, Config, Error, Jobs, NewJob};

#[tokio::test]
async fn memory_and_errors_from_config() {
    let mut config = Config::default();
    config.backend = Backend::Memory;
    let jobs = Jobs::from_config(&config).await.unwrap();
    assert!(jobs.create(NewJob::new("x", serde_json::json!({}))).await.is_ok());

    let parsed: Config = serde_json::from_value(serde_json::json!({"backend": "postgres"})).unwrap();
    assert_eq!(parsed.backend, Backend::Postgres);
    assert!(serde_json::from_value::<Config>(serde_json::json!({"backend": "mysql"})).is_err());
    assert_eq!(Config::default().retention(), std::time::Duration::from_secs(30 * 86_400));
    #[cfg(feature = "postgres")]
    {
        let err = Jobs::from_config(&parsed).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(ref m) if m.contains("jobs.url")), "{err}");
    }
    #[cfg(not(feature = "postgres"))]
    {
        let err = Jobs::from_config(&parsed).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(ref m) if m.contains("feature")), "{err}");
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_sqlite_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.path = dir.path().join("nested/dir/jobs.db").display().to_string();
    let id = {
        let jobs = Jobs::from_config(&config).await.unwrap();
        jobs.create(NewJob::new("durable", serde_json::json!({"n": 1}))).await.unwrap().id
    };
    let reopened = Jobs::from_config(&config).await.unwrap();
    assert_eq!(reopened.get(id).await.unwrap().name, "durable");
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[tokio::test]
async fn a_bad_table_prefix_is_refused() {
    let err = chassis_jobs::SqlStore::connect("sqlite::memory:", 1, "x; DROP TABLE").await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
}
