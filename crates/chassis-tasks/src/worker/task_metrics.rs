//! The worker's metrics: handles per task name, registered once, and their `# HELP`.

pub(super) struct TaskMetrics {
    pub(super) received: metrics::Counter,
    pub(super) succeeded: metrics::Counter,
    pub(super) failed: metrics::Counter,
    pub(super) retried: metrics::Counter,
    pub(super) duration: metrics::Histogram,
}

impl TaskMetrics {
    pub(super) fn new(task: &str) -> Self {
        let labels = [("task", task.to_owned())];
        Self {
            received: metrics::counter!("chassis_tasks_received_total", &labels),
            succeeded: metrics::counter!("chassis_tasks_succeeded_total", &labels),
            failed: metrics::counter!("chassis_tasks_failed_total", &labels),
            retried: metrics::counter!("chassis_tasks_retried_total", &labels),
            duration: metrics::histogram!("chassis_tasks_handler_duration_seconds", &labels),
        }
    }
}

/// The `# HELP` of the worker's metrics. Described when a worker is built
/// (after the service installed its recorder, which keeps the descriptions).
pub(super) fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("chassis_tasks_received_total", Unit::Count, "Task messages received by the worker, by task");
    describe_counter!("chassis_tasks_succeeded_total", Unit::Count, "Task runs that succeeded, by task");
    describe_counter!(
        "chassis_tasks_failed_total",
        Unit::Count,
        "Task runs that failed (error, panic or timeout), by task"
    );
    describe_counter!(
        "chassis_tasks_retried_total",
        Unit::Count,
        "Failed task runs left in the queue for another attempt, by task"
    );
    describe_histogram!("chassis_tasks_handler_duration_seconds", Unit::Seconds, "How long task handlers ran, by task");
    describe_gauge!("chassis_tasks_in_flight", Unit::Count, "Task handlers running now");
    describe_counter!("chassis_tasks_hook_failures_total", Unit::Count, "Job hook calls that failed, by task");
    describe_counter!("chassis_tasks_discarded_total", Unit::Count, "Task messages discarded without a run, by task");
    describe_counter!(
        "chassis_tasks_dead_lettered_total",
        Unit::Count,
        "Task messages moved to the dead letters, by task"
    );
}
