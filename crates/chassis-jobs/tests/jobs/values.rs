//! Whatever a store accepts, it records and reads back — on every store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chassis_jobs::{Error, Filter, JobHook, Jobs, MAX_JSON_DEPTH, NewJob, Status};
use chassis_tasks::{CancellationToken, Config, Handlers, MemoryQueue, Producer, TaskContext, TaskPolicy, Worker};
use serde_json::{Value, json};

use crate::for_each_store;

/// The failing input of issue 15 §2: a task error holding U+0000 fails the job
/// under `JobHook` (PostgreSQL's `text` refuses U+0000).
async fn a_task_error_with_nul_fails_the_job(jobs: &Jobs) {
    let queue = MemoryQueue::new("jobs");
    let producer = Producer::new(queue.clone());
    let mut handlers = Handlers::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let seen = runs.clone();
    handlers
        .task_with("parse", TaskPolicy::default().max_failures(1), move |_: u32, _ctx: TaskContext| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move { Err::<(), _>("unexpected byte \u{0} at offset 17".to_owned()) }
        })
        .unwrap();
    let job = jobs.start_with_tasks(&producer, NewJob::new("import", json!({})), vec![producer.task("parse", &1u32)]);
    let job = job.await.unwrap();
    let stop = CancellationToken::new();
    let mut config = Config::new("jobs");
    config.wait_time_secs = 1;
    let worker = Worker::new(queue.clone(), handlers, config).unwrap().hook(JobHook::new(jobs.clone()));
    let handle = tokio::spawn(worker.run(stop.clone()));
    let started = Instant::now();
    while !jobs.get(job.id).await.unwrap().status.is_terminal() {
        assert!(started.elapsed() < Duration::from_secs(20), "the job never finished: {:?}", jobs.get(job.id).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    handle.await.unwrap();
    let job = jobs.get(job.id).await.unwrap();
    assert_eq!(job.status, Status::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.message, "unexpected byte \u{FFFD} at offset 17", "U+0000 is stored as U+FFFD");
    assert_eq!(error.task.as_deref(), Some("parse"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
for_each_store!(memory_nul_error, sqlite_nul_error, postgres_nul_error, a_task_error_with_nul_fails_the_job);

fn nested(depth: usize) -> Value {
    let mut value = json!(0);
    for i in 0..depth {
        value = if i % 2 == 0 { json!([value]) } else { json!({ "k": value }) };
    }
    value
}

/// JSON values at the edges: every one is read back as written, by `get` and by `list`.
fn edge_values() -> Vec<Value> {
    vec![
        json!(null),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(f64::MAX),
        json!(f64::MIN),
        json!(f64::MIN_POSITIVE),
        json!(5e-324),
        json!(-0.0),
        json!(0.1 + 0.2),
        json!("nul \u{0} in a string"),
        json!("line separators \u{2028} \u{2029}, bom \u{feff}, astral 🦀, del \u{7f}"),
        json!({"\u{0}key\u{2028}": "\u{0}"}),
        json!("x".repeat(1 << 20)),
        json!((0..10_000).collect::<Vec<_>>()),
        nested(MAX_JSON_DEPTH),
    ]
}

async fn json_edges_round_trip(jobs: &Jobs) {
    for value in edge_values() {
        let short = value.to_string().chars().take(60).collect::<String>();
        let job = jobs.create(NewJob::new("edge", value.clone()).label("\u{0}k\u{2028}", "v\u{0}")).await.unwrap();
        assert_eq!(job.input, value, "{short}");
        let got = jobs.get(job.id).await.unwrap_or_else(|e| panic!("{short}: {e}"));
        assert_eq!(got, job, "{short}");
        jobs.start(job.id).await.unwrap();
        let done = jobs.succeed(job.id, value.clone()).await.unwrap();
        assert_eq!(jobs.get(job.id).await.unwrap().result.as_ref(), Some(&value), "{short}");
        let listed = jobs.list(Filter::default().name("edge"), None, 1).await.unwrap();
        assert_eq!(listed.jobs, vec![done], "{short}");
    }
}
for_each_store!(memory_json_edges, sqlite_json_edges, postgres_json_edges, json_edges_round_trip);

async fn text_with_nul_is_stored_with_a_replacement(jobs: &Jobs) {
    let job = jobs.create(NewJob::new("na\u{0}me\u{2028}", json!({}))).await.unwrap();
    assert_eq!(job.name, "na\u{FFFD}me\u{2028}", "create returns what is stored");
    assert_eq!(jobs.get(job.id).await.unwrap(), job);
    let job = jobs.progress(job.id, Some(1.0), Some("a\u{0}b")).await.unwrap();
    assert_eq!(job.message.as_deref(), Some("a\u{FFFD}b"));
    assert_eq!(jobs.get(job.id).await.unwrap(), job);
    let job = jobs.fail(job.id, "\u{0}", Some("t\u{0}")).await.unwrap();
    assert_eq!(
        job.error.as_ref().map(|e| (e.message.as_str(), e.task.as_deref())),
        Some(("\u{FFFD}", Some("t\u{FFFD}")))
    );
    assert_eq!(jobs.get(job.id).await.unwrap(), job);
    let listed = jobs.list(Filter::default().name("na\u{0}me\u{2028}"), None, 10).await.unwrap();
    assert_eq!(listed.jobs, vec![job]);
}
for_each_store!(memory_nul_text, sqlite_nul_text, postgres_nul_text, text_with_nul_is_stored_with_a_replacement);

async fn json_too_deep_to_read_back_is_refused(jobs: &Jobs) {
    for depth in [MAX_JSON_DEPTH + 1, 200, 1_000] {
        let refused = jobs.create(NewJob::new("deep", nested(depth))).await;
        assert!(matches!(&refused, Err(Error::Invalid(m)) if m.contains("deep")), "{depth}: {refused:?}");
    }
    let job = jobs.create(NewJob::new("deep", json!(1))).await.unwrap();
    jobs.start(job.id).await.unwrap();
    let refused = jobs.succeed(job.id, nested(MAX_JSON_DEPTH + 1)).await;
    assert!(matches!(&refused, Err(Error::Invalid(_))), "{refused:?}");
    assert_eq!(jobs.get(job.id).await.unwrap().status, Status::Running, "nothing written");
    assert!(jobs.list(Filter::default(), None, 100).await.unwrap().jobs.iter().all(|j| j.name == "deep"));
}
for_each_store!(memory_too_deep, sqlite_too_deep, postgres_too_deep, json_too_deep_to_read_back_is_refused);

/// One row no version of the store can read (written by hand, by a newer
/// version, or damaged) never breaks `list` for every other job.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn an_unreadable_row_does_not_break_list(url: &str) {
    let prefix = format!("u{}_", uuid::Uuid::new_v4().simple());
    let store = chassis_jobs::SqlStore::connect(url, 2, &prefix).await.unwrap();
    let jobs = Jobs::new(store.clone());
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(jobs.create(NewJob::new("x", json!(i))).await.unwrap().id);
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let damage = [
        format!("UPDATE {prefix}jobs SET input = 'not json' WHERE id = '{}'", ids[1]),
        format!("UPDATE {prefix}jobs SET status = 'paused' WHERE id = '{}'", ids[3]),
        format!("UPDATE {prefix}jobs SET id = 'not-a-uuid' WHERE id = '{}'", ids[4]),
    ];
    for sql in damage {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    let page = jobs.list(Filter::default(), None, 100).await.unwrap();
    assert_eq!(page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[2], ids[0]], "the readable ones");
    // Paging steps over unreadable rows too.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = jobs.list(Filter::default(), cursor, 1).await.unwrap();
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec![ids[2], ids[0]]);
    let unreadable = jobs.get(ids[1]).await;
    assert!(matches!(&unreadable, Err(Error::Store(m)) if m.contains(&ids[1].to_string())), "{unreadable:?}");
    store.drop_tables().await.unwrap();
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unreadable_row() {
    let dir = tempfile::tempdir().unwrap();
    an_unreadable_row_does_not_break_list(&format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display())).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreadable_row() {
    an_unreadable_row_does_not_break_list(&crate::stores::postgres_url()).await;
}

async fn percentages_read_back_as_stored(jobs: &Jobs) {
    let job = jobs.create(NewJob::new("p", json!({}))).await.unwrap();
    let job = jobs.progress(job.id, Some(100.0 / 3.0), None).await.unwrap();
    assert_eq!(job.percent, Some(33.33), "kept to hundredths on every store");
    assert_eq!(jobs.get(job.id).await.unwrap(), job);
    for bad in [f64::NAN, f64::INFINITY, -0.5, 100.01, f64::MAX] {
        let mut edited = job.clone();
        edited.percent = Some(bad);
        assert!(matches!(jobs.store().update(edited).await, Err(Error::Invalid(_))), "{bad}");
    }
    let job = jobs.progress(job.id, Some(0.0), None).await.unwrap();
    assert_eq!(jobs.progress(job.id, Some(100.0), None).await.unwrap().percent, Some(100.0));
}
for_each_store!(memory_percent, sqlite_percent, postgres_percent, percentages_read_back_as_stored);
