//! The request span, its end-of-request line, the request id and the timeout.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use super::{ClientErrorLevel, Config, REQUEST_ID, Server};

/// The request's id (a request extension): the caller's `x-request-id` if it
/// is 1 to 128 visible ASCII characters, otherwise a new UUID v7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

pub(crate) struct Observe {
    timeout: Option<Duration>,
    timeout_status: StatusCode,
    client_error_level: ClientErrorLevel,
    log_requests: bool,
    server: Server,
}

impl Observe {
    pub(crate) fn new(config: &Config, server: Server) -> Self {
        Self {
            timeout: (config.request_timeout_ms > 0).then(|| Duration::from_millis(config.request_timeout_ms)),
            timeout_status: StatusCode::from_u16(config.timeout_status).unwrap_or(StatusCode::REQUEST_TIMEOUT),
            client_error_level: config.client_error_level,
            log_requests: config.log_requests,
            server,
        }
    }

    /// A probe or scrape of the admin server: no span, no trace, no line (a
    /// probe every few seconds would otherwise fill the log and, with the
    /// `otel` feature, the exported traces).
    fn is_probe(&self, route: Option<&str>) -> bool {
        self.server == Server::Admin && matches!(route, Some("/livez" | "/readyz" | "/startupz" | "/metrics"))
    }
}

/// The caller's id if it is reasonable to log, else a new one.
fn request_id(request: &Request) -> (String, bool) {
    let taken = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()));
    match taken {
        Some(id) => (id.to_owned(), false),
        None => (new_id(), true),
    }
}

/// A new UUID v7: the time in milliseconds, then random bits from fastrand
/// (`Uuid::now_v7` asks the OS for them, a system call per request; a request
/// id needs to be unique, not unpredictable).
fn new_id() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let millis = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    let random: [u8; 10] = fastrand::u128(..).to_le_bytes()[..10].try_into().unwrap_or_default();
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid().to_string()
}

/// The method as OpenTelemetry names it: one of the nine standard methods,
/// or `_OTHER` (so made-up methods cannot explode metric label values).
pub(crate) fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::CONNECT => "CONNECT",
        M::OPTIONS => "OPTIONS",
        M::TRACE => "TRACE",
        M::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

/// One request in `http_server_active_requests`, until dropped (a request
/// whose connection closes mid-way is dropped, not finished).
struct Active(metrics::Gauge);

impl Active {
    fn new(method: &'static str) -> Self {
        let gauge = metrics::gauge!(super::ACTIVE_REQUESTS, "http_request_method" => method);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

pub(crate) async fn observe(
    State(observe): State<std::sync::Arc<Observe>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let (id, generated) = request_id(&request);
    let header = HeaderValue::from_str(&id).ok();
    if generated {
        if let Some(header) = &header {
            request.headers_mut().insert(REQUEST_ID, header.clone());
        }
    }
    request.extensions_mut().insert(RequestId(id.clone()));
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = method_label(request.method());
    let caller = {
        let incoming = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        incoming(chassis_trace::TRACEPARENT).and_then(|traceparent| {
            chassis_trace::TraceContext::parse(traceparent, incoming(chassis_trace::TRACESTATE))
        })
    };
    let probe = observe.is_probe(route.as_deref());
    let span = if probe {
        tracing::Span::none()
    } else {
        tracing::error_span!(
        target: "chassis::http",
        "request",
        "http.request.method" = method,
        "http.route" = route.as_deref(),
        "url.path" = request.uri().path(),
        request_id = id,
        "http.response.status_code" = tracing::field::Empty,
        traceparent = tracing::field::Empty,
        trace_parent_span_id = caller.as_ref().map(chassis_trace::TraceContext::span_id),
        )
    };
    if !probe {
        // The caller's trace continues here, in a span of its own; or one starts.
        chassis_trace::start(&span, caller.as_ref());
    }
    let _active = (observe.server == Server::Api).then(|| Active::new(method));
    let run = next.run(request);
    let mut response = match observe.timeout {
        Some(limit) => match tokio::time::timeout(limit, run).instrument(span.clone()).await {
            Ok(response) => response,
            Err(_) => {
                span.in_scope(|| tracing::warn!(target: "chassis::http", timeout_ms = limit.as_millis() as u64, "the request timed out"));
                super::error(observe.timeout_status)
            }
        },
        None => run.instrument(span.clone()).await,
    };
    if let Some(header) = header {
        response.headers_mut().insert(REQUEST_ID, header);
    }
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if observe.server == Server::Api {
        let labels = [
            ("http_request_method", method.to_owned()),
            ("http_route", route.clone().unwrap_or_default()),
            ("http_response_status_code", response.status().as_str().to_owned()),
        ];
        metrics::histogram!(super::REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    }
    if observe.log_requests && !probe {
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let _entered = span.enter();
        match status {
            500.. => tracing::error!(target: "chassis::http", latency_ms, "request"),
            400..500 if observe.client_error_level == ClientErrorLevel::Warn => {
                tracing::warn!(target: "chassis::http", latency_ms, "request");
            }
            _ => tracing::info!(target: "chassis::http", latency_ms, "request"),
        }
    }
    response
}
