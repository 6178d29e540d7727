//! The default middleware stack of the API and admin servers.
//!
//! From the outside in: the request id and the request span (with its line at
//! the end, and the timeout), the panic guard, the body size limit. The stack
//! is added with `Router::layer`, so it runs after routing and knows the
//! matched route template (axum's `MatchedPath`).

mod config;
mod observe;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub use config::{ClientErrorLevel, Config};
pub use observe::RequestId;

/// The header that carries the request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// The API's request duration histogram, OpenTelemetry's
/// `http.server.request.duration`: labels `http_request_method` (one of the
/// nine standard methods or `_OTHER`), `http_route` (the route template,
/// `/jobs/{id}`; empty for requests that matched no route, so unknown paths
/// share one series) and `http_response_status_code`; in seconds, until the
/// response head.
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";

/// The API's requests in progress, OpenTelemetry's
/// `http.server.active_requests`: label `http_request_method`.
pub const ACTIVE_REQUESTS: &str = "http_server_active_requests";

/// Describes the API's metrics (after the recorder is installed).
pub(crate) fn describe_metrics() {
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Duration of HTTP requests the API served, until the response head, by method, route template and status"
    );
    metrics::describe_gauge!(ACTIVE_REQUESTS, metrics::Unit::Count, "HTTP requests the API is serving now, by method");
}

/// Which server a stack serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// The user's API: every request logged.
    Api,
    /// The admin server: probes and scrapes (`/livez`, `/readyz`,
    /// `/startupz`, `/metrics`) get no span and write no line, so a probe
    /// every few seconds drowns neither the log nor the exported traces.
    Admin,
}

/// Wraps every route of `router` (and its fallback) in the API's stack, as
/// [`Service::run`](crate::Service::run) does: for a router served some other
/// way (a test, an embedding). Add it last, after every route.
///
/// ```
/// let config = chassis_service::http::Config::default();
/// let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" }));
/// let app = chassis_service::http::layer(app, &config);
/// # let _ = app;
/// ```
pub fn layer(router: Router, config: &Config) -> Router {
    stack(router, config, Server::Api)
}

/// Wraps every route of `router` (and its fallback) in the stack.
pub(crate) fn stack(router: Router, config: &Config, server: Server) -> Router {
    let observe = Arc::new(observe::Observe::new(config, server));
    // One `layer` call: axum boxes the route's service again at each call, and
    // every box costs a clone and a boxed future per request. The first is
    // the outermost.
    router.layer((
        observe::ObserveLayer(observe),
        tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
        // axum's own 2 MiB extractor limit would cap a larger configured limit.
        axum::extract::DefaultBodyLimit::disable(),
        tower_http::limit::RequestBodyLimitLayer::new(config.body_limit_bytes),
    ))
}

/// A JSON error body: `{"status": 500, "error": "internal server error"}`.
pub(crate) fn error(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("error").to_ascii_lowercase();
    (status, axum::Json(serde_json::json!({"status": status.as_u16(), "error": reason}))).into_response()
}

/// A panicking handler: logged (inside the request span) with its message,
/// answered 500 with a JSON body that does not repeat it.
#[allow(clippy::needless_pass_by_value)] // the signature CatchPanicLayer calls
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)");
    tracing::error!(target: "chassis::http", panic = message, "the handler panicked");
    error(StatusCode::INTERNAL_SERVER_ERROR)
}
