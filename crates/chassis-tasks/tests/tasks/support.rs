//! Helpers: a worker on the memory queue, run until told.

use std::time::Duration;

use chassis_tasks::{Config, Handlers, MemoryQueue, Queue, Report, Worker};
use tokio_util::sync::CancellationToken;

pub fn config() -> Config {
    let mut config = Config::new("tasks");
    config.visibility_timeout_secs = 30;
    config.wait_time_secs = 1;
    config.concurrency = 4;
    config.shutdown_deadline_secs = 5;
    config.backoff = chassis_tasks::Backoff::new(
        chassis_tasks::Progression::Linear,
        Duration::from_secs(10),
        Duration::from_secs(100),
    );
    config
}

/// A running worker and how to stop it.
pub struct Running {
    pub stop: CancellationToken,
    pub handle: tokio::task::JoinHandle<Report>,
    pub health: chassis_tasks::WorkerHealth,
}

impl Running {
    pub async fn finish(self) -> Report {
        self.stop.cancel();
        self.handle.await.unwrap()
    }
}

/// Wall time that moves with tokio's (paused) clock.
pub fn tokio_wall() -> std::time::SystemTime {
    static BASE: std::sync::OnceLock<(std::time::SystemTime, tokio::time::Instant)> = std::sync::OnceLock::new();
    let (wall, instant) = *BASE.get_or_init(|| (std::time::SystemTime::now(), tokio::time::Instant::now()));
    wall + tokio::time::Instant::now().saturating_duration_since(instant)
}

pub fn start(queue: &MemoryQueue, dlq: Option<&MemoryQueue>, registry: Handlers, config: Config) -> Running {
    let mut worker = Worker::new(queue.clone(), registry, config).unwrap().with_clock(tokio_wall);
    if let Some(dlq) = dlq {
        worker = worker.dead_letter(dlq.clone());
    }
    let health = worker.health();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    Running { stop, handle, health }
}

/// Every message left in `queue`, received with a long visibility.
pub async fn drain(queue: &MemoryQueue) -> Vec<chassis_tasks::Message> {
    let mut out = Vec::new();
    loop {
        let batch = queue.receive(10, Duration::ZERO, Duration::from_secs(3600)).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}
