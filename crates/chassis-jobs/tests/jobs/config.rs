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

/// Issue 15 §5: every numeric setting at 0, 1 and its largest accepted value.
#[test]
fn numeric_settings_at_their_extremes() {
    let parse = |v: serde_json::Value| serde_json::from_value::<Config>(v).map_err(|e| e.to_string());
    // A pool of 0 connections cannot serve: refused, not silently 1.
    let err = parse(serde_json::json!({"pool_size": 0})).unwrap_err();
    assert!(err.contains("at least 1"), "{err}");
    assert_eq!(parse(serde_json::json!({"pool_size": 1})).unwrap().pool_size, 1);
    assert_eq!(parse(serde_json::json!({"pool_size": u32::MAX})).unwrap().pool_size, u32::MAX);
    // A grace shorter than a send would fail jobs whose tasks are being sent.
    for short in [0u64, 1, 9] {
        let err = parse(serde_json::json!({"stranded_grace_secs": short})).unwrap_err();
        assert!(err.contains("at least 10"), "{short}: {err}");
    }
    let longest = parse(serde_json::json!({"stranded_grace_secs": u64::MAX, "retention_days": u64::MAX})).unwrap();
    assert_eq!(longest.stranded_grace(), std::time::Duration::from_secs(u64::MAX));
    assert_eq!(longest.retention(), std::time::Duration::from_secs(u64::MAX), "saturates, never wraps");
    let none = parse(serde_json::json!({"retention_days": 0})).unwrap();
    assert_eq!(none.retention(), std::time::Duration::ZERO);
}

/// The largest grace and retention mean "never", not "at once"; a retention
/// of 0 purges every finished job.
#[tokio::test]
async fn the_longest_grace_and_retention_never_act() {
    let jobs = Jobs::new(chassis_jobs::MemoryStore::new());
    let done = jobs.create(NewJob::new("x", serde_json::json!({}))).await.unwrap();
    jobs.cancel(done.id).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let longest: Config =
        serde_json::from_value(serde_json::json!({"stranded_grace_secs": u64::MAX, "retention_days": u64::MAX}))
            .unwrap();
    assert_eq!(jobs.fail_stranded(longest.stranded_grace()).await.unwrap(), 0);
    assert_eq!(jobs.purge(longest.retention()).await.unwrap(), 0);
    assert_eq!(jobs.purge(std::time::Duration::ZERO).await.unwrap(), 1);
}
