//! FIFO groups stay in order when a message fails (issue 15 §3), on the memory
//! queue with tokio's paused clock: the queue's own group semantics, then the
//! worker's — a failed, retried, postponed or released message is never
//! overtaken by the rest of its group.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chassis_tasks::{
    Backoff, Config, Handlers, MemoryQueue, Outgoing, Producer, Progression, Queue, TaskContext, TaskPolicy,
    TaskResult, Worker,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::tokio_wall;

const S: fn(u64) -> Duration = Duration::from_secs;

/// Every run: (group, step, attempt), in the order they started.
type Runs = Arc<Mutex<Vec<(String, u32, u32)>>>;

/// How a step ends on a given attempt.
type Plan = fn(group: &str, step: u32, attempt: u32) -> TaskResult;

/// One task, `step`, whose attributes are `{"group": .., "step": n}`; `plan`
/// says how each run ends; `slow` steps take that long.
fn handlers(runs: &Runs, plan: Plan, slow: Option<(u32, Duration)>) -> Handlers {
    let seen = runs.clone();
    let mut handlers = Handlers::new();
    handlers
        .task_with("step", TaskPolicy::default().max_failures(5), move |args: serde_json::Value, ctx: TaskContext| {
            let group = args["group"].as_str().unwrap_or_default().to_owned();
            let step = u32::try_from(args["step"].as_u64().unwrap_or_default()).unwrap_or_default();
            seen.lock().unwrap().push((group.clone(), step, ctx.attempt));
            async move {
                if let Some((slow_step, time)) = slow {
                    if step == slow_step {
                        tokio::time::sleep(time).await;
                    }
                }
                plan(&group, step, ctx.attempt)
            }
        })
        .unwrap();
    handlers
}

fn config(concurrency: usize) -> Config {
    let mut config = Config::new("steps.fifo");
    config.visibility_timeout_secs = 30;
    config.wait_time_secs = 1;
    config.concurrency = concurrency;
    config.shutdown_deadline_secs = 5;
    config.backoff = Backoff::new(Progression::None, Duration::ZERO, Duration::ZERO);
    config
}

async fn send_steps(queue: &MemoryQueue, order: &[(&str, u32)]) {
    let producer = Producer::new(queue.clone());
    for (group, step) in order {
        let task =
            producer.task("step", &json!({"group": group, "step": step})).fifo(*group, format!("{group}-step-{step}"));
        producer.send(task).await.unwrap();
    }
}

fn start(
    queue: &MemoryQueue,
    handlers: Handlers,
    config: Config,
) -> (CancellationToken, tokio::task::JoinHandle<chassis_tasks::Report>) {
    let worker = Worker::new(queue.clone(), handlers, config).unwrap().with_clock(tokio_wall);
    let stop = CancellationToken::new();
    (stop.clone(), tokio::spawn(worker.run(stop)))
}

/// The runs of each group, in order: (step, attempt).
fn by_group(runs: &Runs) -> BTreeMap<String, Vec<(u32, u32)>> {
    let mut out: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
    for (group, step, attempt) in runs.lock().unwrap().iter() {
        out.entry(group.clone()).or_default().push((*step, *attempt));
    }
    out
}

/// Whether a group's runs keep its order: steps never go back, and each
/// step's attempts count up from 1.
fn in_order(runs: &[(u32, u32)]) -> bool {
    runs.windows(2).all(|w| {
        let ((s0, a0), (s1, a1)) = (w[0], w[1]);
        (s1 == s0 && a1 == a0 + 1) || (s1 > s0 && a1 == 1)
    }) && runs.first().is_none_or(|&(_, a)| a == 1)
}

#[tokio::test(start_paused = true)]
async fn memory_fifo_a_released_message_comes_back_first_in_its_group() {
    let q = MemoryQueue::builder("q.fifo").fifo().build();
    for n in 1..=3 {
        q.send(Outgoing::new(format!("g{n}")).fifo("g", format!("d{n}"))).await.unwrap();
    }
    q.send(Outgoing::new("h1").fifo("h", "e1")).await.unwrap();
    let first = q.receive(1, S(1), S(30)).await.unwrap();
    assert_eq!(first[0].body, "g1");
    // While g1 is in flight nothing more of `g` is delivered; `h` is.
    let other = q.receive(10, S(0), S(30)).await.unwrap();
    assert_eq!(other.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["h1"]);
    q.change_visibility(&first[0].receipt, Duration::ZERO).await.unwrap();
    let again = q.receive(10, S(1), S(30)).await.unwrap();
    assert_eq!(again.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["g1", "g2", "g3"]);
}

#[tokio::test(start_paused = true)]
async fn memory_fifo_a_message_whose_visibility_ends_comes_back_first_in_its_group() {
    let q = MemoryQueue::builder("q.fifo").fifo().build();
    for n in 1..=3 {
        q.send(Outgoing::new(format!("g{n}")).fifo("g", format!("d{n}"))).await.unwrap();
    }
    let first = q.receive(2, S(1), S(5)).await.unwrap();
    assert_eq!(first.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["g1", "g2"]);
    // g2 handed back at once, g1 left to time out: still g1 first.
    q.change_visibility(&first[1].receipt, Duration::ZERO).await.unwrap();
    assert!(q.receive(10, S(0), S(30)).await.unwrap().is_empty(), "g1 is in flight: the group waits");
    assert!(q.send(Outgoing::new("late").fifo("g", "d9").delay(S(5))).await.is_err(), "SQS refuses it too");
    tokio::time::sleep(S(6)).await;
    let again = q.receive(10, S(1), S(30)).await.unwrap();
    assert_eq!(again.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["g1", "g2", "g3"]);
}

#[tokio::test(start_paused = true)]
async fn a_fifo_group_stays_in_order_when_a_message_fails() {
    // The input: step 1 fails on its first attempt, backoff none.
    let q = MemoryQueue::builder("steps.fifo").fifo().build();
    send_steps(&q, &[("account-42", 1), ("account-42", 2), ("account-42", 3)]).await;
    let runs = Runs::default();
    let plan: Plan = |_, step, attempt| {
        if step == 1 && attempt == 1 { TaskResult::Failure("first try fails".into()) } else { TaskResult::Success }
    };
    let (stop, handle) = start(&q, handlers(&runs, plan, None), config(4));
    tokio::time::sleep(S(30)).await;
    stop.cancel();
    let report = handle.await.unwrap();
    assert_eq!(by_group(&runs)["account-42"], [(1, 1), (1, 2), (2, 1), (3, 1)]);
    assert_eq!(report.succeeded, 3);
    assert_eq!(q.attributes().await.unwrap().visible + q.attributes().await.unwrap().in_flight, 0);
}

/// Interleaved groups, failures and explicit retries with a backoff, at
/// several concurrencies: every group keeps its order and every step ends.
#[tokio::test(start_paused = true)]
async fn interleaved_groups_with_retries_stay_in_order() {
    for concurrency in [1, 3, 10, 25] {
        let q = MemoryQueue::builder("steps.fifo").fifo().build();
        let mut order = Vec::new();
        for step in 1..=5 {
            for group in ["a", "b", "c", "d"] {
                order.push((group, step));
            }
        }
        send_steps(&q, &order).await;
        let runs = Runs::default();
        let plan: Plan = |group, step, attempt| match (group, step, attempt) {
            ("a", 1, 1) | ("b", 3, 1 | 2) | ("c", 5, 1) => TaskResult::Failure("not yet".into()),
            ("d", 2, 1) => TaskResult::Retry(Some(S(7))),
            _ => TaskResult::Success,
        };
        let mut c = config(concurrency);
        c.backoff = Backoff::new(Progression::Linear, S(3), S(30));
        let (stop, handle) = start(&q, handlers(&runs, plan, Some((4, S(2)))), c);
        tokio::time::sleep(S(120)).await;
        stop.cancel();
        let report = handle.await.unwrap();
        let groups = by_group(&runs);
        for (group, runs) in &groups {
            assert!(in_order(runs), "concurrency {concurrency}, group {group}: {runs:?}");
            assert_eq!(runs.iter().filter(|(_, a)| *a == 1).count(), 5, "{group}: {runs:?}");
        }
        assert_eq!(groups["b"].iter().filter(|(s, _)| *s == 3).count(), 3);
        assert_eq!(report.succeeded, 20, "concurrency {concurrency}");
    }
}

/// A step due later holds back the rest of its group until it runs.
#[tokio::test(start_paused = true)]
async fn a_postponed_step_holds_back_its_group() {
    let q = MemoryQueue::builder("steps.fifo").fifo().build();
    let producer = Producer::new(q.clone()).with_clock(tokio_wall);
    let due = tokio_wall() + S(60);
    let first = producer.task("step", &json!({"group": "g", "step": 1})).at(due).fifo("g", "g-1");
    producer.send(first).await.unwrap();
    send_steps(&q, &[("g", 2), ("g", 3)]).await;
    let runs = Runs::default();
    let (stop, handle) = start(&q, handlers(&runs, |_, _, _| TaskResult::Success, None), config(4));
    tokio::time::sleep(S(40)).await;
    assert!(runs.lock().unwrap().is_empty(), "nothing of the group runs before its first step: {runs:?}");
    tokio::time::sleep(S(60)).await;
    stop.cancel();
    handle.await.unwrap();
    let steps: Vec<u32> = by_group(&runs)["g"].iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, [1, 2, 3]);
}

/// A worker stopped mid-group (its deadline passes while step 1 runs) hands
/// the group back; the next worker runs it from step 1, in order.
#[tokio::test(start_paused = true)]
async fn a_worker_stopped_mid_group_hands_it_back_in_order() {
    let q = MemoryQueue::builder("steps.fifo").fifo().build();
    send_steps(&q, &[("g", 1), ("g", 2), ("g", 3), ("h", 1), ("h", 2)]).await;
    let runs = Runs::default();
    let mut c = config(10);
    c.shutdown_deadline_secs = 1;
    let slow: Plan = |_, _, _| TaskResult::Success;
    let (stop, handle) = start(&q, handlers(&runs, slow, Some((1, S(600)))), c.clone());
    tokio::time::sleep(S(2)).await;
    stop.cancel();
    handle.await.unwrap();
    assert_eq!(runs.lock().unwrap().iter().map(|(_, s, _)| *s).collect::<Vec<_>>(), [1, 1], "both first steps began");
    let attributes = q.attributes().await.unwrap();
    assert_eq!((attributes.visible, attributes.in_flight), (5, 0), "the groups were handed back");

    let (stop, handle) = start(&q, handlers(&runs, |_, _, _| TaskResult::Success, None), c);
    tokio::time::sleep(S(10)).await;
    stop.cancel();
    assert_eq!(handle.await.unwrap().succeeded, 5);
    // Attempts here count the receives of the stopped worker too (another
    // worker cannot know they were not runs): the steps are what keep order.
    let steps = |group: &str| by_group(&runs)[group].iter().map(|(s, _)| *s).collect::<Vec<_>>();
    assert_eq!(steps("g"), [1, 1, 2, 3]);
    assert_eq!(steps("h"), [1, 1, 2]);
}
