//! Job scopes: every line logged inside one carries `job_id` and `job_name`.
//!
//! A scope is a `tracing` span, so the context follows `.await` points and ends
//! with the scope — nothing carries over to the next call, unlike the Python
//! original's shared default.

use std::future::Future;

use tracing::Span;
use tracing::instrument::{Instrument, Instrumented};

/// The span of a job: `job_id` and `job_name` on every line logged inside it.
///
/// It is an ERROR-level span, so that it is enabled whenever any line in it is.
pub fn job_span(job_id: &str, job_name: &str) -> Span {
    tracing::error_span!(target: "chassis::job", "job", job_id = job_id, job_name = job_name)
}

/// Runs `f` inside the scope of a job.
///
/// ```
/// chassis_log::with_job("0190c5e2", "import-catalog", || tracing::info!("started"));
/// ```
pub fn with_job<R>(job_id: &str, job_name: &str, f: impl FnOnce() -> R) -> R {
    job_span(job_id, job_name).in_scope(f)
}

/// Runs a future inside the scope of a job, across every `.await`.
///
/// ```
/// # async fn import() {}
/// # async fn example() {
/// chassis_log::in_job("0190c5e2", "import-catalog", async {
///     tracing::info!("started");
///     import().await;
///     tracing::info!("done");
/// })
/// .await;
/// # }
/// ```
pub fn in_job<F: Future>(job_id: &str, job_name: &str, future: F) -> Instrumented<F> {
    future.instrument(job_span(job_id, job_name))
}
