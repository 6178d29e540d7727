//! FIFO groups stay in order when a message fails (issue 15 §3), on moto.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chassis_tasks::{
    Backoff, Config, CreateOptions, Handlers, Producer, Progression, SqsQueue, TaskContext, TaskPolicy, TaskResult,
    Worker,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::moto::{Moto, client_for};

const S: fn(u64) -> Duration = Duration::from_secs;

/// Every run: (group, step, attempt), in the order they started.
type Runs = Arc<Mutex<Vec<(String, u32, u32)>>>;

type Plan = fn(group: &str, step: u32, attempt: u32) -> TaskResult;

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

fn config() -> Config {
    let mut config = Config::new("steps.fifo");
    config.visibility_timeout_secs = 3;
    config.wait_time_secs = 1;
    config.concurrency = 10;
    config.shutdown_deadline_secs = 5;
    config.backoff = Backoff::new(Progression::None, S(1), S(1));
    config
}

async fn fifo_queue(moto: &Moto) -> SqsQueue {
    let mut options = CreateOptions::default();
    options.fifo = true;
    moto.queue("steps.fifo", &options).await
}

async fn send_steps(queue: &SqsQueue, order: &[(&str, u32)]) {
    let producer = Producer::new(queue.clone());
    for (group, step) in order {
        let task =
            producer.task("step", &json!({"group": group, "step": step})).fifo(*group, format!("{group}-step-{step}"));
        producer.send(task).await.unwrap();
    }
}

async fn run_for(queue: &SqsQueue, handlers: Handlers, time: Duration) -> chassis_tasks::Report {
    let worker = Worker::new(queue.clone(), handlers, config()).unwrap();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(time).await;
    stop.cancel();
    handle.await.unwrap()
}

fn by_group(runs: &Runs) -> BTreeMap<String, Vec<(u32, u32)>> {
    let mut out: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
    for (group, step, attempt) in runs.lock().unwrap().iter() {
        out.entry(group.clone()).or_default().push((*step, *attempt));
    }
    out
}

#[tokio::test]
async fn a_fifo_group_stays_in_order_when_a_message_fails_on_sqs() {
    // The input on moto.
    let moto = Moto::start();
    let q = fifo_queue(&moto).await;
    send_steps(&q, &[("account-42", 1), ("account-42", 2), ("account-42", 3)]).await;
    let runs = Runs::default();
    let plan: Plan = |_, step, attempt| {
        if step == 1 && attempt == 1 { TaskResult::Failure("first try fails".into()) } else { TaskResult::Success }
    };
    let report = run_for(&q, handlers(&runs, plan, None), S(6)).await;
    assert_eq!(by_group(&runs)["account-42"], [(1, 1), (1, 2), (2, 1), (3, 1)]);
    assert_eq!(report.succeeded, 3);
}

#[tokio::test]
async fn interleaved_groups_with_retries_stay_in_order_on_sqs() {
    let moto = Moto::start();
    let q = fifo_queue(&moto).await;
    let mut order = Vec::new();
    for step in 1..=4 {
        for group in ["a", "b", "c"] {
            order.push((group, step));
        }
    }
    send_steps(&q, &order).await;
    let runs = Runs::default();
    let plan: Plan = |group, step, attempt| match (group, step, attempt) {
        ("a", 1, 1) | ("b", 2, 1 | 2) | ("c", 4, 1) => TaskResult::Failure("not yet".into()),
        ("c", 2, 1) => TaskResult::Retry(Some(S(1))),
        _ => TaskResult::Success,
    };
    let report = run_for(&q, handlers(&runs, plan, None), S(15)).await;
    for (group, runs) in by_group(&runs) {
        let steps: Vec<u32> = runs.iter().map(|(s, _)| *s).collect();
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "group {group} out of order: {runs:?}");
        assert_eq!(runs.iter().filter(|(_, a)| *a == 1).count(), 4, "group {group}: {runs:?}");
    }
    assert_eq!(report.succeeded, 12);
}

/// A worker that dies mid-group (its runtime dropped: no release, no delete)
/// leaves the group to the next worker, which runs it from the step that was
/// running, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_crashing_mid_group_leaves_it_in_order_on_sqs() {
    let moto = Moto::start();
    let q = fifo_queue(&moto).await;
    send_steps(&q, &[("g", 1), ("g", 2), ("g", 3)]).await;
    let runs = Runs::default();
    let (endpoint, url, first_runs) = (moto.endpoint.clone(), q.url().to_owned(), runs.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _inside = runtime.enter();
        let queue = SqsQueue::from_url(client_for(&endpoint), url);
        let handlers = handlers(&first_runs, |_, _, _| TaskResult::Success, Some((1, S(60))));
        // One message in flight: moto (5.2) hands back a group whose several
        // in-flight messages time out together last-first, where SQS returns
        // the group's head first (the memory queue's tests cover that case).
        let mut c = config();
        c.concurrency = 1;
        runtime.spawn(Worker::new(queue, handlers, c).unwrap().run(CancellationToken::new()));
        runtime.block_on(tokio::time::sleep(Duration::from_millis(1500)));
        runtime.shutdown_background(); // the crash
    })
    .join()
    .unwrap();
    assert_eq!(runs.lock().unwrap().len(), 1, "the first worker died in step 1: {runs:?}");
    let report = run_for(&q, handlers(&runs, |_, _, _| TaskResult::Success, None), S(8)).await;
    let steps: Vec<u32> = by_group(&runs)["g"].iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, [1, 1, 2, 3]);
    assert_eq!(report.succeeded, 3);
}
