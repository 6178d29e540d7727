//! Replicas that start together all start: concurrent `SqlStore::connect` on a
//! fresh table prefix migrate once, under a lock, and every one succeeds.

#![cfg(any(feature = "sqlite", feature = "postgres"))]

use chassis_jobs::{Jobs, NewJob, SqlStore};
use serde_json::json;

const REPLICAS: usize = 8;
const ROUNDS: usize = 10;

/// `REPLICAS` connects at once on a fresh prefix, `ROUNDS` times; all must start
/// and see one working schema.
#[cfg(feature = "postgres")]
async fn replicas_start_together(url: &str) {
    for round in 0..ROUNDS {
        let prefix = format!("m{}_", uuid::Uuid::new_v4().simple());
        let connects = (0..REPLICAS).map(|_| {
            let url = url.to_owned();
            let prefix = prefix.clone();
            tokio::spawn(async move { SqlStore::connect(&url, 2, &prefix).await })
        });
        let mut stores = Vec::new();
        let mut failures = Vec::new();
        for handle in connects.collect::<Vec<_>>() {
            match handle.await.unwrap() {
                Ok(store) => stores.push(store),
                Err(e) => failures.push(e.to_string()),
            }
        }
        let cleanup = stores.first().cloned();
        if let Some(store) = &cleanup {
            let jobs = Jobs::new(store.clone());
            let job = jobs.create(NewJob::new("x", json!({"round": round}))).await.unwrap();
            assert_eq!(jobs.get(job.id).await.unwrap().tasks_sent, 0);
            store.drop_tables().await.unwrap();
        }
        assert!(failures.is_empty(), "round {round}: {} of {REPLICAS} failed to start: {failures:?}", failures.len());
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_start_together() {
    replicas_start_together(&crate::stores::postgres_url()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replicas_start_together() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..ROUNDS {
        // A fresh file each round as well as a fresh prefix: the file's own creation races too.
        let url = format!("sqlite://{}?mode=rwc", dir.path().join(format!("jobs{round}.db")).display());
        replicas_start_together_once(&url).await;
    }
}

#[cfg(feature = "sqlite")]
async fn replicas_start_together_once(url: &str) {
    let prefix = "p_";
    let connects: Vec<_> = (0..REPLICAS)
        .map(|_| {
            let url = url.to_owned();
            tokio::spawn(async move { SqlStore::connect(&url, 2, prefix).await })
        })
        .collect();
    let mut failures = Vec::new();
    let mut any = None;
    for handle in connects {
        match handle.await.unwrap() {
            Ok(store) => any = Some(store),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{} of {REPLICAS} failed to start: {failures:?}", failures.len());
    let jobs = Jobs::new(any.unwrap());
    let job = jobs.create(NewJob::new("x", json!({}))).await.unwrap();
    assert_eq!(jobs.get(job.id).await.unwrap().id, job.id);
}
