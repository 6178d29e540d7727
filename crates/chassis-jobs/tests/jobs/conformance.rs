//! One conformance suite, run against every store.

use std::collections::BTreeMap;

use chassis_jobs::{Error, Filter, Jobs, NewJob, Status, now_ms};
use serde_json::json;

use crate::for_each_store;

async fn create_get_and_round_trip(jobs: &Jobs) {
    let job = jobs
        .create(NewJob::new("import", json!({"catalog": 42, "tags": ["a", "é\"\n"]})).tasks(3).label("team", "data"))
        .await
        .unwrap();
    assert_eq!(job.status, Status::Pending);
    assert_eq!(job.id.get_version_num(), 7);
    let got = jobs.get(job.id).await.unwrap();
    assert_eq!(got, job);
    assert_eq!(got.labels, BTreeMap::from([("team".to_owned(), "data".to_owned())]));
    assert!(matches!(jobs.get(uuid::Uuid::now_v7()).await, Err(Error::NotFound(_))));
    let done = jobs.start(job.id).await.unwrap();
    let done = jobs.succeed(done.id, json!({"rows": 120})).await.unwrap();
    let got = jobs.get(job.id).await.unwrap();
    assert_eq!(got.result, Some(json!({"rows": 120})));
    assert_eq!(got.status, Status::Succeeded);
    assert!(got.started_ms.is_some() && got.finished_ms.is_some());
    assert_eq!(got.version, done.version);
    let failed = jobs.create(NewJob::new("import", json!(null))).await.unwrap();
    jobs.fail(failed.id, "source unreachable", Some("fetch")).await.unwrap();
    let got = jobs.get(failed.id).await.unwrap();
    assert_eq!(
        got.error.as_ref().map(|e| (e.message.as_str(), e.task.as_deref())),
        Some(("source unreachable", Some("fetch")))
    );
}
for_each_store!(memory_create_get, sqlite_create_get, postgres_create_get, create_get_and_round_trip);

async fn conditional_updates(jobs: &Jobs) {
    let job = jobs.create(NewJob::new("x", json!({}))).await.unwrap();
    let mut first = job.clone();
    first.message = Some("first".into());
    let updated = jobs.store().update(first).await.unwrap();
    assert_eq!(updated.version, job.version + 1);
    let mut stale = job.clone();
    stale.message = Some("stale".into());
    assert!(matches!(jobs.store().update(stale).await, Err(Error::Conflict { .. })));
    assert_eq!(jobs.get(job.id).await.unwrap().message.as_deref(), Some("first"));
    let mut gone = job.clone();
    gone.id = uuid::Uuid::now_v7();
    assert!(matches!(jobs.store().update(gone).await, Err(Error::NotFound(_))));
}
for_each_store!(memory_conditional, sqlite_conditional, postgres_conditional, conditional_updates);

async fn the_state_machine_is_enforced(jobs: &Jobs) {
    let job = jobs.create(NewJob::new("x", json!({}))).await.unwrap();
    assert!(matches!(
        jobs.succeed(job.id, json!(1)).await,
        Err(Error::IllegalTransition { from: Status::Pending, to: Status::Succeeded, .. })
    ));
    let cancelled = jobs.cancel(job.id).await.unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    for result in [jobs.start(job.id).await, jobs.cancel(job.id).await, jobs.fail(job.id, "x", None).await] {
        assert!(matches!(result, Err(Error::IllegalTransition { from: Status::Cancelled, .. })));
    }
    assert_eq!(jobs.get(job.id).await.unwrap().version, cancelled.version, "nothing written");
    assert!(matches!(jobs.progress(job.id, Some(50.0), None).await, Err(Error::IllegalTransition { .. })));
    let other = jobs.create(NewJob::new("x", json!({}))).await.unwrap();
    assert!(matches!(jobs.progress(other.id, Some(150.0), None).await, Err(Error::Invalid(_))));
    let p = jobs.progress(other.id, Some(40.0), Some("halfway")).await.unwrap();
    assert_eq!((p.percent, p.message.as_deref()), (Some(40.0), Some("halfway")));
}
for_each_store!(memory_state_machine, sqlite_state_machine, postgres_state_machine, the_state_machine_is_enforced);

async fn listing_filters_and_pages(jobs: &Jobs) {
    let start = now_ms();
    let mut ids = Vec::new();
    for i in 0..25 {
        let job = jobs.create(NewJob::new(if i % 2 == 0 { "even" } else { "odd" }, json!(i))).await.unwrap();
        if i % 5 == 0 {
            jobs.cancel(job.id).await.unwrap();
        }
        ids.push(job.id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = jobs.list(Filter::default(), cursor, 10).await.unwrap();
        assert!(page.jobs.len() <= 10);
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every job once");
    let even = Filter::default().name("even");
    assert_eq!(jobs.list(even, None, 100).await.unwrap().jobs.len(), 13);
    let cancelled = Filter::default().status(Status::Cancelled);
    assert_eq!(jobs.list(cancelled, None, 100).await.unwrap().jobs.len(), 5);
    let recent = Filter::default().created(start, Some(now_ms() + 1));
    assert_eq!(jobs.list(recent, None, 100).await.unwrap().jobs.len(), 25);
    let future = Filter::default().created(now_ms() + 60_000, None);
    assert!(jobs.list(future, None, 100).await.unwrap().jobs.is_empty());
    assert!(matches!(jobs.list(Filter::default(), Some("not-a-cursor".into()), 10).await, Err(Error::Invalid(_))));
}
for_each_store!(memory_listing, sqlite_listing, postgres_listing, listing_filters_and_pages);

async fn delete_and_purge(jobs: &Jobs) {
    let old = jobs.create(NewJob::new("x", json!({}))).await.unwrap();
    jobs.cancel(old.id).await.unwrap();
    let running = jobs.create(NewJob::new("x", json!({}))).await.unwrap();
    jobs.start(running.id).await.unwrap();
    let gone = jobs.create(NewJob::new("x", json!({}))).await.unwrap();
    jobs.store().delete(gone.id).await.unwrap();
    jobs.store().delete(gone.id).await.unwrap();
    assert!(matches!(jobs.get(gone.id).await, Err(Error::NotFound(_))));
    let purged = jobs.store().purge(now_ms() + 1000).await.unwrap();
    assert_eq!(purged, 1, "only the finished job");
    assert!(jobs.get(running.id).await.is_ok());
    assert_eq!(jobs.purge(std::time::Duration::from_secs(3600)).await.unwrap(), 0);
}
for_each_store!(memory_purge, sqlite_purge, postgres_purge, delete_and_purge);
