//! Sends tasks and consumes them on the embedded queue: one succeeds, one fails
//! twice and then succeeds, one keeps failing and ends in the dead-letter
//! queue. Logs show each run's `task`, `exec_id`, `attempt` and job.
//!
//! ```text
//! cargo run --example tasks
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use chassis::tasks::{
    Backoff, CancellationToken, Config, Handlers, MemoryQueue, Producer, Progression, Queue, TaskContext, TaskPolicy,
    Worker,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Charge {
    invoice: u32,
    cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _log = chassis::log::init(&chassis::log::Config::new("tasks-example", env!("CARGO_PKG_VERSION")))?;

    let queue = MemoryQueue::new("billing-tasks");
    let dead_letters = MemoryQueue::new("billing-dead-letters");

    let mut handlers = Handlers::new();
    handlers.task_with(
        "charge",
        TaskPolicy::default().max_failures(3).on_fail("notify_finance"),
        |charge: Charge, ctx: TaskContext| async move {
            // Invoice 2 fails on its first two attempts; invoice 3 always fails.
            match (charge.invoice, ctx.attempt) {
                (2, 1 | 2) | (3, _) => Err(format!("card declined for invoice {}", charge.invoice)),
                _ => {
                    tracing::info!(invoice = charge.invoice, cents = charge.cents, "charged");
                    Ok(())
                }
            }
        },
    )?;
    handlers.task("notify_finance", |charge: Charge, _ctx: TaskContext| async move {
        tracing::warn!(invoice = charge.invoice, "finance notified of a charge that could not be made");
    })?;

    let producer = Producer::new(queue.clone());
    for invoice in 1..=3 {
        let task = producer.task("charge", &Charge { invoice, cents: 1999 }).job(format!("job-{invoice}"), "month-end");
        producer.send(task).await?;
    }

    let mut config = Config::new("billing-tasks");
    config.wait_time_secs = 1;
    config.backoff = Backoff::new(Progression::Linear, Duration::from_secs(1), Duration::from_secs(2));
    let worker = Worker::new(queue.clone(), handlers, config)?.dead_letter(dead_letters.clone());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(6)).await;
    shutdown.cancel();
    let report = running.await?;

    let dead = dead_letters.receive(10, Duration::ZERO, Duration::from_secs(30)).await?;
    println!(
        "\nreceived {}, succeeded {}, failed runs {}, dead-lettered {}",
        report.received, report.succeeded, report.failed, report.dead_lettered
    );
    for message in dead {
        println!("dead letter: {} — {}", message.body, message.attributes["dead_letter_reason"]);
    }
    Ok(())
}
