//! The quickstart: a small but real chassis service.
//!
//! ```text
//! cargo run --example quickstart
//! curl -s -XPOST localhost:8080/jobs -H 'content-type: application/json' -d '{"items": 20}'
//! curl -s localhost:8080/jobs/<id>          # pending → running (tasks_done/20) → succeeded
//! curl -s localhost:9090/readyz             # and /livez /startupz /metrics /info
//! curl -s localhost:9090/metrics | grep 'http_route="/jobs"'   # RED metrics of POST /jobs
//! ```
//!
//! - configuration from `examples/quickstart/config/` + `APP_*` env (a bad one
//!   prints every problem and exits 78);
//! - logs (`pretty` on a terminal; `APP_LOG__FORMAT=json` or `gcp`);
//! - an HTTP API: `POST /jobs {"items": N}` starts a job of N tasks; `GET /jobs/{id}`,
//!   `GET /jobs`, `POST /jobs/{id}/cancel`;
//! - each task asks an in-process "pricing service" for a quote through a circuit
//!   breaker; the pricing service fails a few seconds out of every ten, so the
//!   breaker opens, tasks wait and retry, the breaker recovers, the job finishes;
//!   the call goes to the logical name `http://pricing/…`, resolved by the
//!   `static` discovery backend (`discovery.instances.pricing`, this process by
//!   default);
//! - with `APP_DISCOVERY__BACKEND=etcd` (feature `discovery-etcd`) the service
//!   registers itself in etcd once ready, and deregisters first on SIGTERM;
//! - a durable SQLite task queue and a SQLite job store in `data/` by default
//!   (a `kill -9` loses no task: they all run when it starts again); the
//!   memory queue, PostgreSQL or SQS by configuration (`APP_QUEUE=memory`,
//!   `APP_QUEUE=postgres` with `APP_JOBS__BACKEND=postgres`, `APP_QUEUE=sqs`;
//!   features `tasks-postgres`, `tasks-sqs`, `jobs-postgres`);
//! - every API request: one log line with its `x-request-id` (taken or generated,
//!   returned) and its W3C trace, which the job's tasks and their pricing calls
//!   continue; RED metrics by route template on `/metrics`;
//! - with `--features otel`, the spans to an OpenTelemetry collector
//!   (`APP_OTEL__ENDPOINT=http://localhost:4318` or `OTEL_EXPORTER_OTLP_ENDPOINT`);
//! - an admin port with health and Prometheus metrics; SIGTERM drains and exits 0.
#![allow(clippy::print_stderr)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chassis::breaker::Rejected;
use chassis::config::{Require, Rule};
use chassis::prelude::*;
use chassis::tasks::MemoryQueue;
use serde::{Deserialize, Serialize};

/// The service's whole configuration, one section per concern (`service` and
/// `log` are read by `boot`, and listed here so their keys are known).
#[derive(Debug, Serialize, Deserialize)]
struct Settings {
    #[serde(default)]
    queue: QueueBackend,
    /// The SQLite queue's file (`queue = "sqlite"`); default: the job store's
    /// file, so a job and its tasks are created in one transaction.
    #[serde(default)]
    queue_path: Option<String>,
    #[serde(default)]
    service: chassis::service::Config,
    #[serde(default)]
    log: chassis::log::Config,
    tasks: chassis::tasks::Config,
    #[serde(default)]
    jobs: chassis::jobs::Config,
    #[serde(default)]
    breaker: chassis::breaker::Config,
    #[serde(default)]
    downstream: Downstream,
    /// The span export (`--features otel`), read by `boot`.
    #[cfg(feature = "otel")]
    #[serde(default)]
    otel: chassis::service::otel::Config,
    #[serde(default)]
    discovery: chassis::discovery::Config,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum QueueBackend {
    /// Embedded, in memory: lost when the process stops.
    Memory,
    /// Embedded and durable: a SQLite file.
    #[default]
    Sqlite,
    /// PostgreSQL: the job store's database (`jobs.url`), shared by every instance.
    Postgres,
    /// AWS SQS.
    Sqs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
struct Downstream {
    fail_every_secs: u64,
    fail_for_secs: u64,
    /// How long each quote takes, in milliseconds.
    latency_ms: u64,
}

impl Default for Downstream {
    fn default() -> Self {
        Self { fail_every_secs: 10, fail_for_secs: 3, latency_ms: 0 }
    }
}

/// One task: price one item of a job.
#[derive(Debug, Serialize, Deserialize)]
struct PriceItem {
    item: u32,
}

#[derive(Debug, Deserialize)]
struct StartJob {
    items: u32,
}

fn fail(message: &str) -> ! {
    eprintln!("quickstart: {message}");
    std::process::exit(1)
}

#[tokio::main]
async fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart/config");
    let loader = Loader::new("APP").dir(dir).require(Require::key("tasks.task_pool").rule(Rule::not_empty()));
    // The checks between fields (`tasks.pollers` ≤ `tasks.concurrency`, …) of the
    // sections boot does not know, in the same report (boot adds `service`, `log`).
    let loader = loader
        .check::<chassis::tasks::Config>("tasks")
        .check::<chassis::breaker::Config>("breaker")
        .check::<chassis::jobs::Config>("jobs");
    // Configuration (a bad one: every problem, exit 78), logging, and the
    // service with its metrics recorder — before anything registers metrics.
    let booted = boot::<Settings>("quickstart", env!("CARGO_PKG_VERSION"), loader);
    let settings = booted.config.value();
    let jobs =
        Jobs::from_config(&settings.jobs).await.unwrap_or_else(|e| fail(&format!("cannot open the job store: {e}")));

    let pool = &settings.tasks.task_pool;
    let result = match settings.queue {
        QueueBackend::Memory => serve(booted.service, settings, jobs, MemoryQueue::new(pool)).await,
        #[cfg(feature = "tasks-sqlite")]
        QueueBackend::Sqlite => {
            let path = settings.queue_path.as_ref().unwrap_or(&settings.jobs.path);
            let queue = chassis::tasks::SqliteQueue::open(path, pool)
                .await
                .unwrap_or_else(|e| fail(&format!("cannot open the task queue {path}: {e}")));
            serve(booted.service, settings, jobs, queue).await
        }
        #[cfg(feature = "tasks-postgres")]
        QueueBackend::Postgres => {
            let url = settings.jobs.url.as_ref().unwrap_or_else(|| fail("queue = \"postgres\" uses jobs.url; set it"));
            let options = chassis::tasks::PostgresQueue::options().table_prefix(settings.jobs.table_prefix.clone());
            let queue = chassis::tasks::PostgresQueue::connect(url.expose(), settings.jobs.pool_size, pool, options)
                .await
                .unwrap_or_else(|e| fail(&format!("cannot open the PostgreSQL task queue: {e}")));
            serve(booted.service, settings, jobs, queue).await
        }
        #[cfg(feature = "tasks-sqs")]
        QueueBackend::Sqs => {
            let queue = chassis::tasks::SqsQueue::from_config(&settings.tasks)
                .await
                .unwrap_or_else(|e| fail(&format!("cannot open the SQS queue: {e}")));
            serve(booted.service, settings, jobs, queue).await
        }
        #[allow(unreachable_patterns)]
        other => fail(&format!(
            "queue = {other:?} needs its feature (tasks-sqlite, tasks-postgres or tasks-sqs: cargo run --features …)"
        )),
    };
    if let Err(e) = result {
        fail(&e);
    }
}

#[derive(Clone)]
struct Api<Q: Queue + Clone> {
    jobs: Jobs,
    producer: Producer<Q>,
}

async fn serve<Q: Queue + Clone>(
    mut service: Service,
    settings: &Settings,
    jobs: Jobs,
    queue: Q,
) -> Result<(), String> {
    // Registration in the configured registry (none by default) follows the lifecycle.
    if let Some(registry) = chassis::discovery::from_config(&settings.discovery).map_err(|e| e.to_string())? {
        service.discovery(registry, settings.discovery.clone());
    }
    let worker = Worker::new(queue.clone(), tasks(&mut service, settings)?, settings.tasks.clone())
        .map_err(|e| e.to_string())?
        .hook(JobHook::new(jobs.clone()));
    // The worker with its readiness check `task_queue`; the job store's check
    // `job_store` and its upkeep (stranded jobs each minute, old jobs purged).
    service.worker(worker).jobs(jobs.clone(), &settings.jobs);
    let (name, monitored) = (settings.tasks.task_pool.clone(), queue.clone());
    service.spawn("queue_monitor", move |shutdown| {
        chassis::tasks::monitor::monitor(monitored, name, Duration::from_secs(15), shutdown)
    });
    service.router(routes(settings, jobs, queue).await?);
    service.run().await.map_err(|e| e.to_string())
}

/// The API: `POST /jobs`, the jobs' routes, the pricing service, the dead letters.
async fn routes<Q: Queue + Clone>(settings: &Settings, jobs: Jobs, queue: Q) -> Result<axum::Router, String> {
    let dead_letter = match &settings.tasks.dead_letter_queue {
        Some(name) => Some(queue.sibling(name).await.map_err(|e| format!("cannot open the dead-letter queue: {e}"))?),
        None => None,
    };
    let operations = Operations { queue: queue.clone(), dead_letter };
    let api = Api { jobs: jobs.clone(), producer: Producer::new(queue) };
    let downstream = settings.downstream.clone();
    Ok(axum::Router::new()
        .route("/jobs", post(start_job::<Q>))
        .with_state(api)
        .merge(chassis::jobs::router(jobs))
        .route("/pricing/quote/{item}", get(move |item| quote(downstream.clone(), item)))
        .merge(
            axum::Router::new()
                .route("/dead-letters", get(dead_letters::<Q>))
                .route("/dead-letters/redrive", post(redrive_dead_letters::<Q>))
                .with_state(operations),
        ))
}

/// The task handlers: `price_item` asks the pricing service for a quote
/// through a breaker per instance. `http://pricing/…` is a logical name: the
/// static backend resolves it to the instances in `discovery.instances.pricing`
/// (default: this process).
fn tasks(service: &mut Service, settings: &Settings) -> Result<Handlers, String> {
    let breakers = Breakers::new(settings.breaker.clone()).map_err(|e| e.to_string())?;
    let local = SocketAddr::from(([127, 0, 0, 1], settings.service.http_addr.port()));
    let mut instances = settings.discovery.instances.clone();
    instances.entry("pricing".into()).or_insert_with(|| vec![local.to_string()]);
    let registry = std::sync::Arc::new(chassis::discovery::StaticRegistry::new(instances));
    let resolver = chassis::discovery::Resolver::new(registry, settings.discovery.client.clone());
    let client = chassis::discovery::client(resolver.clone(), breakers).map_err(|e| e.to_string())?;
    service.resolver(resolver);
    let mut handlers = Handlers::new();
    handlers
        .task("price_item", move |task: PriceItem, ctx: TaskContext| {
            let (client, url) = (client.clone(), format!("http://pricing/pricing/quote/{}", task.item));
            async move {
                match client.get(&url).send().await {
                    Ok(response) if response.status().is_success() => {
                        tracing::info!(item = task.item, attempt = ctx.attempt, "item priced");
                        TaskResult::Success
                    }
                    Ok(response) => TaskResult::Failure(format!("pricing answered {}", response.status())),
                    Err(error) => match Rejected::from_reqwest(&error) {
                        // The breaker is open: wait until it lets calls through again.
                        Some(rejected) => TaskResult::Retry(rejected.retry_after()),
                        None => TaskResult::Failure(error.to_string()),
                    },
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(handlers)
}

#[derive(Clone)]
struct Operations<Q: Queue + Clone> {
    queue: Q,
    dead_letter: Option<Q>,
}

/// `GET /dead-letters`: up to 100 dead-lettered tasks, with why.
async fn dead_letters<Q: Queue + Clone>(State(ops): State<Operations<Q>>) -> Response {
    let Some(dead_letter) = &ops.dead_letter else {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no tasks.dead_letter_queue"})))
            .into_response();
    };
    match chassis::tasks::monitor::peek(dead_letter, 100).await {
        Ok(messages) => Json(
            messages
                .iter()
                .map(|m| serde_json::json!({"id": m.id, "attributes": m.attributes, "body": m.body}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"error": e.to_string()}))).into_response(),
    }
}

/// `POST /dead-letters/redrive`: moves up to 1 000 dead-lettered tasks back to run again.
async fn redrive_dead_letters<Q: Queue + Clone>(State(ops): State<Operations<Q>>) -> Response {
    let Some(dead_letter) = &ops.dead_letter else {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no tasks.dead_letter_queue"})))
            .into_response();
    };
    match chassis::tasks::monitor::redrive(dead_letter, &ops.queue, 1000).await {
        Ok(moved) => Json(serde_json::json!({ "moved": moved })).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"error": e.to_string()}))).into_response(),
    }
}

/// `POST /jobs {"items": N}`: a job of N `price_item` tasks.
async fn start_job<Q: Queue + Clone>(State(api): State<Api<Q>>, Json(request): Json<StartJob>) -> Response {
    if !(1..=10_000).contains(&request.items) {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": "items must be 1 to 10000"})))
            .into_response();
    }
    let tasks = (0..request.items).map(|item| api.producer.task("price_item", &PriceItem { item })).collect();
    let job = NewJob::new("price-catalog", serde_json::json!({ "items": request.items }));
    match api.jobs.start_with_tasks(&api.producer, job, tasks).await {
        Ok(job) => (StatusCode::ACCEPTED, Json(job)).into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({"error": e.to_string()}))).into_response()
        }
    }
}

/// The flaky in-process pricing service: 503 for the first `fail_for_secs` of
/// every `fail_every_secs`, counted from its first request.
async fn quote(downstream: Downstream, Path(item): Path<u32>) -> Response {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let now = STARTED.get_or_init(Instant::now).elapsed().as_secs();
    tokio::time::sleep(Duration::from_millis(downstream.latency_ms)).await;
    if downstream.fail_every_secs > 0 && now % downstream.fail_every_secs < downstream.fail_for_secs {
        return (StatusCode::SERVICE_UNAVAILABLE, "pricing is having a bad moment").into_response();
    }
    Json(serde_json::json!({ "item": item, "cents": 100 + item % 50 })).into_response()
}
