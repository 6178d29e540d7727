//! The admin server: `/livez`, `/readyz`, `/startupz`, `/metrics`, `/info`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::health::{Health, Phase};

#[derive(Clone)]
pub(crate) struct Admin {
    pub(crate) health: Health,
    pub(crate) metrics: Option<PrometheusHandle>,
    pub(crate) info: serde_json::Value,
}

pub(crate) fn router(admin: Admin) -> Router {
    Router::new()
        .route("/livez", get(|| async { axum::Json(json!({"status": "alive"})) }))
        .route("/readyz", get(readyz))
        .route("/startupz", get(startupz))
        .route("/metrics", get(metrics))
        .route("/info", get(info))
        .with_state(admin)
}

async fn readyz(State(admin): State<Admin>) -> Response {
    let readiness = admin.health.readiness().await;
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(readiness)).into_response()
}

async fn startupz(State(admin): State<Admin>) -> Response {
    let phase = admin.health.phase();
    let status = if phase == Phase::Starting { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, axum::Json(json!({"phase": phase}))).into_response()
}

async fn metrics(State(admin): State<Admin>) -> Response {
    match &admin.metrics {
        Some(handle) => {
            #[cfg(feature = "process-metrics")]
            process_collector().collect();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
        }
        None => {
            (StatusCode::SERVICE_UNAVAILABLE, "another metrics recorder is installed in this process\n").into_response()
        }
    }
}

async fn info(State(admin): State<Admin>) -> Response {
    axum::Json(admin.info).into_response()
}

/// The process metrics collector (its start time is read once).
#[cfg(feature = "process-metrics")]
pub(crate) fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}
