//! The conformance suite on both SQL queues, and what they have beyond it:
//! sharing between handles (processes), FIFO groups and deduplication,
//! redrive, transactional sends, migrations under a lock, a worker on them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chassis_tasks::{CancellationToken, Config, Handlers, Outgoing, Producer, Queue, QueueError, TaskContext, Worker};

use crate::conformance;

const S: fn(u64) -> Duration = Duration::from_secs;

/// Everything a durable queue must do, on `q` and a sibling of it.
async fn suite<Q: Queue + Clone>(q: &Q) {
    conformance::visibility_and_receive_counts(q, S(1)).await;
    conformance::change_visibility(q, S(1)).await;
    conformance::delays_and_batches(q).await;
    conformance::attributes(&q.sibling("attributes").await.unwrap()).await;
    conformance::stale_receipts(q, S(1)).await;
}

/// FIFO: a group's messages in order, one batch of a group in flight at a
/// time, a duplicate deduplication id sent once.
async fn fifo<Q: Queue + Clone>(q: &Q) {
    for (group, n) in [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)] {
        q.send(Outgoing::new(format!("{group}{n}")).fifo(group, format!("{group}-{n}"))).await.unwrap();
    }
    let again = q.send(Outgoing::new("a1 again").fifo("a", "a-1")).await.unwrap();
    let first = q.receive(10, S(1), S(30)).await.unwrap();
    let bodies: Vec<_> = first.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["a1", "b1", "a2", "a3", "b2"], "in order, the duplicate dropped");
    assert_eq!(again, first[0].id, "the duplicate's id is the first's");
    // While a1 is in flight (retrying), nothing more of group a comes.
    q.send(Outgoing::new("a4").fifo("a", "a-4")).await.unwrap();
    q.send(Outgoing::new("c1").fifo("c", "c-1")).await.unwrap();
    let receipts: Vec<_> = first[1..].iter().map(|m| m.receipt.clone()).collect();
    q.delete_batch(receipts).await.unwrap();
    let next = q.receive(10, S(1), S(30)).await.unwrap();
    assert_eq!(next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["c1"]);
    q.change_visibility(&first[0].receipt, Duration::ZERO).await.unwrap();
    let retried = q.receive(10, S(1), S(30)).await.unwrap();
    assert_eq!(retried.iter().map(|m| (m.body.as_str(), m.receive_count)).collect::<Vec<_>>(), [("a1", 2), ("a4", 1)]);
    assert!(matches!(q.send(Outgoing::new("no group")).await, Err(QueueError::Invalid(_))));
}

/// Redrive: received `max` times, then moved to the dead-letter queue.
async fn redrive<Q: Queue + Clone>(q: &Q, dead: &Q) {
    q.send(Outgoing::new("poison")).await.unwrap();
    for _ in 0..2 {
        let m = q.receive(1, S(1), S(30)).await.unwrap().remove(0);
        q.change_visibility(&m.receipt, Duration::ZERO).await.unwrap();
    }
    assert!(q.receive(1, Duration::ZERO, S(30)).await.unwrap().is_empty(), "moved, not delivered");
    let moved = dead.receive(1, S(1), S(30)).await.unwrap();
    assert_eq!((moved[0].body.as_str(), moved[0].receive_count), ("poison", 1));
}

/// A long poll wakes when a clone sends; a second handle (as another process
/// would) sees the message within its poll interval.
async fn sharing<Q: Queue + Clone>(q: &Q, other: &Q) {
    let sender = q.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sender.send(Outgoing::new("hello")).await.unwrap();
    });
    let started = std::time::Instant::now();
    let got = q.receive(10, S(10), S(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(started.elapsed() < S(8), "woken by the send, not the end of the wait");
    q.delete_batch(vec![got[0].receipt.clone()]).await.unwrap();
    q.send(Outgoing::new("to the other")).await.unwrap();
    let got = other.receive(10, S(5), S(30)).await.unwrap();
    assert_eq!(got.len(), 1, "the other handle sees it");
    assert!(q.delete_batch(vec![got[0].receipt.clone()]).await.unwrap()[0].is_ok(), "receipts work across handles");
}

/// A worker runs 50 tasks from the queue; nothing is left.
async fn worker<Q: Queue + Clone>(q: &Q) {
    let done = Arc::new(AtomicUsize::new(0));
    let seen = done.clone();
    let mut handlers = Handlers::new();
    handlers
        .task("count", move |_: u32, _: TaskContext| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .unwrap();
    let producer = Producer::new(q.clone());
    let tasks = (0..50u32).map(|n| producer.task("count", &n)).collect();
    assert!(producer.send_all(tasks).await.unwrap().iter().all(Result::is_ok));
    assert!(q.attributes().await.unwrap().oldest_age.is_some(), "the age of the oldest waiting task");
    let mut config = Config::new("work");
    config.wait_time_secs = 1;
    let stop = CancellationToken::new();
    let handle = tokio::spawn(Worker::new(q.clone(), handlers, config).unwrap().run(stop.clone()));
    let started = std::time::Instant::now();
    while done.load(Ordering::SeqCst) < 50 {
        assert!(started.elapsed() < S(60), "the worker did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let report = handle.await.unwrap();
    assert_eq!(report.succeeded, 50);
    let a = q.attributes().await.unwrap();
    assert_eq!((a.visible, a.in_flight, a.delayed), (0, 0, 0), "every message deleted");
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use chassis_tasks::{Outgoing, Queue, SqliteQueue};

    use super::*;
    use crate::support::sqlite;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_conformance() {
        suite(&sqlite("work").await.queue).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_fifo() {
        fifo(&sqlite("work.fifo").await.queue).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_redrive() {
        let db = sqlite("dead").await;
        let options = SqliteQueue::options().redrive("dead", 2);
        let q = SqliteQueue::open_with(&db.path, "work", options, false).await.unwrap();
        redrive(&q, &db.queue).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_sharing_between_handles() {
        let db = sqlite("work").await;
        let other = SqliteQueue::open(&db.path, "work").await.unwrap();
        sharing(&db.queue, &other).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_worker() {
        worker(&sqlite("work").await.queue).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_send_in_a_transaction_commits_or_rolls_back_with_it() {
        let db = sqlite("work").await;
        let q = &db.queue;
        let mut tx = q.pool().begin().await.unwrap();
        sqlx::query("CREATE TABLE orders (id INTEGER)").execute(&mut *tx).await.unwrap();
        q.send_in(&mut tx, vec![Outgoing::new("ship order 1")]).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(q.attributes().await.unwrap().visible, 0, "rolled back with the caller's writes");
        let mut tx = q.pool().begin().await.unwrap();
        sqlx::query("CREATE TABLE orders (id INTEGER)").execute(&mut *tx).await.unwrap();
        q.send_in(&mut tx, vec![Outgoing::new("ship order 2")]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(q.attributes().await.unwrap().visible, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_processes_opening_a_new_file_together_all_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db");
        let opens = (0..8).map(|_| SqliteQueue::open(path.clone(), "work"));
        for opened in futures_join(opens).await {
            opened.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_refuses_what_sqs_refuses() {
        let db = sqlite("work").await;
        let q = &db.queue;
        let big = Outgoing::new("x".repeat(300_000));
        assert!(matches!(q.send(big).await, Err(QueueError::TooLarge { .. })));
        assert!(matches!(q.send(Outgoing::new("nul \0 byte")).await, Err(QueueError::Invalid(_))));
        let batch = vec![Outgoing::new("y".repeat(100_000)); 3];
        assert!(matches!(q.send_batch(batch).await, Err(QueueError::BatchTooLarge { .. })));
        assert!(matches!(q.change_visibility("nonsense", S(1)).await, Err(QueueError::InvalidReceipt)));
        assert_eq!(q.attributes().await.unwrap().visible, 0);
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use chassis_tasks::{Outgoing, PostgresQueue, Queue};

    use super::*;
    use crate::support::{postgres, postgres_url, postgres_with, prefix};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_conformance() {
        let db = postgres("work").await;
        suite(&db.queue).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_fifo() {
        let db = postgres("work.fifo").await;
        fifo(&db.queue).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_redrive() {
        let db = postgres_with("work", PostgresQueue::options().redrive("dead", 2)).await;
        let dead = db.queue.sibling("dead").await.unwrap();
        redrive(&db.queue, &dead).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_sharing_between_connections() {
        let db = postgres("work").await;
        let options = PostgresQueue::options().table_prefix(db.prefix.clone());
        let other = PostgresQueue::connect(&postgres_url(), 2, "work", options).await.unwrap();
        sharing(&db.queue, &other).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_worker() {
        let db = postgres("work").await;
        worker(&db.queue).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_send_in_a_transaction_commits_or_rolls_back_with_it() {
        let db = postgres("work").await;
        let q = &db.queue;
        let mut tx = q.pool().begin().await.unwrap();
        q.send_in(&mut tx, vec![Outgoing::new("ship order 1")]).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(q.attributes().await.unwrap().visible, 0, "rolled back with the caller's writes");
        let mut tx = q.pool().begin().await.unwrap();
        q.send_in(&mut tx, vec![Outgoing::new("ship order 2")]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(q.attributes().await.unwrap().visible, 1);
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_instances_starting_together_all_start() {
        for _ in 0..10 {
            let prefix = prefix();
            let opens = (0..8).map(|_| {
                let options = PostgresQueue::options().table_prefix(prefix.clone());
                async move { PostgresQueue::connect(&postgres_url(), 1, "work", options).await }
            });
            let opened: Vec<_> = futures_join(opens).await.into_iter().map(Result::unwrap).collect();
            crate::support::Postgres { queue: opened[0].clone(), prefix }.cleanup().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_claims_use_the_index_whatever_lies_behind_the_visible_rows() {
        let db = postgres("work").await;
        let q = &db.queue;
        // 20 000 delayed rows and 20 000 of another queue; the claim's plan is an index scan.
        let t = format!("{}tasks", db.prefix);
        sqlx::query(&format!(
            "INSERT INTO {t} (queue, body, attributes, visible_at, sent_at) \
             SELECT CASE WHEN g % 2 = 0 THEN 'work' ELSE 'other' END, '{{}}', '{{}}', 9000000000000, 0 \
             FROM generate_series(1, 40000) g"
        ))
        .execute(q.pool())
        .await
        .unwrap();
        sqlx::query(&format!("ANALYZE {t}")).execute(q.pool()).await.unwrap();
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN SELECT id FROM {t} WHERE queue = 'work' AND visible_at <= 1000 ORDER BY visible_at, id LIMIT 10"
        ))
        .fetch_all(q.pool())
        .await
        .unwrap();
        assert!(plan.iter().any(|l| l.contains(&format!("{}tasks_claim", db.prefix))), "{plan:#?}");
        q.send(Outgoing::new("now")).await.unwrap();
        assert_eq!(q.receive(10, S(1), S(30)).await.unwrap().len(), 1);
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_refuses_what_sqs_refuses() {
        let db = postgres("work").await;
        let q = &db.queue;
        assert!(matches!(q.send(Outgoing::new("x".repeat(300_000))).await, Err(QueueError::TooLarge { .. })));
        assert!(matches!(q.send(Outgoing::new("nul \0 byte")).await, Err(QueueError::Invalid(_))));
        assert!(matches!(q.change_visibility("1.x", S(1)).await, Err(QueueError::InvalidReceipt)));
        assert_eq!(q.attributes().await.unwrap().visible, 0);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn an_unreachable_server_says_what_to_start() {
        let err = PostgresQueue::connect("postgres://postgres@127.0.0.1:1/test", 1, "work", PostgresQueue::options())
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
    }
}

/// Runs futures concurrently, results in order.
async fn futures_join<F: Future + Send + 'static>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
