use std::time::Duration;

use chassis_tasks::{Config, Handlers, MemoryQueue, Producer, TaskContext, TaskResult, Worker};
use chassis_testkit::queue::{Tally, dead_letters, pending, run_until_finished, run_until_idle};

fn handlers() -> Handlers {
    let mut handlers = Handlers::new();
    handlers.task("ok", |_: u32, _ctx: TaskContext| async { TaskResult::Success }).unwrap();
    handlers.task("bad", |_: u32, _ctx: TaskContext| async { TaskResult::Abandon("never".into()) }).unwrap();
    handlers
}

#[tokio::test(start_paused = true)]
async fn run_until_finished_counts_successes_and_failures_and_dead_letters_are_seen() {
    let queue = MemoryQueue::new("kit");
    let producer = Producer::new(queue.clone());
    for n in 0..4u32 {
        producer.send(producer.task("ok", &n)).await.unwrap();
    }
    producer.send(producer.task("bad", &9u32)).await.unwrap();
    assert_eq!(pending(&queue, 10).await.unwrap().len(), 5);
    let mut config = Config::new("kit");
    config.dead_letter_queue = Some("kit-dead".into());
    let tally = Tally::new();
    let worker = Worker::new(queue.clone(), handlers(), config).unwrap().hook(tally.clone());
    let report = run_until_finished(worker, &tally, 5, Duration::from_secs(60)).await.unwrap();
    assert_eq!((report.succeeded, tally.succeeded(), tally.failed()), (4, 4, 1));
    let dead = dead_letters(&queue, "kit-dead", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["task_name"], "bad");
    assert!(dead[0].attributes.contains_key(chassis_tasks::DEAD_LETTER_REASON));
}

#[tokio::test(start_paused = true)]
async fn run_until_idle_empties_the_queue_and_a_goal_not_reached_times_out() {
    let queue = MemoryQueue::new("kit-idle");
    let producer = Producer::new(queue.clone());
    for n in 0..3u32 {
        producer.send(producer.task("ok", &n)).await.unwrap();
    }
    let worker = Worker::new(queue.clone(), handlers(), Config::new("kit-idle")).unwrap();
    let report = run_until_idle(worker, &queue, Duration::from_secs(60)).await.unwrap();
    assert_eq!(report.succeeded, 3);
    assert!(pending(&queue, 10).await.unwrap().is_empty());
    let tally = Tally::new();
    let worker = Worker::new(queue.clone(), handlers(), Config::new("kit-idle")).unwrap().hook(tally.clone());
    let late = run_until_finished(worker, &tally, 1, Duration::from_secs(5)).await;
    assert!(matches!(late, Err(chassis_testkit::Error::Timeout { secs: 5 })), "{late:?}");
}

#[tokio::test]
async fn a_sqlite_queue_shows_what_waits_and_what_was_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let queue = chassis_tasks::SqliteQueue::open(dir.path().join("tasks.db"), "kit-sqlite").await.unwrap();
    let producer = Producer::new(queue.clone());
    producer.send(producer.task("ok", &1u32)).await.unwrap();
    producer.send(producer.task("bad", &2u32)).await.unwrap();
    let waiting = pending(&queue, 10).await.unwrap();
    let mut names: Vec<&str> = waiting.iter().map(|m| m.attributes["task_name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["bad", "ok"]);
    assert_eq!(pending(&queue, 10).await.unwrap().len(), 2, "looking leaves them there");
    let mut config = Config::new("kit-sqlite");
    config.dead_letter_queue = Some("kit-sqlite-dead".into());
    config.wait_time_secs = 0;
    let worker = Worker::new(queue.clone(), handlers(), config).unwrap();
    let report = run_until_idle(worker, &queue, Duration::from_secs(60)).await.unwrap();
    assert_eq!((report.succeeded, report.dead_lettered), (1, 1));
    let dead = dead_letters(&queue, "kit-sqlite-dead", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["task_name"], "bad");
}
