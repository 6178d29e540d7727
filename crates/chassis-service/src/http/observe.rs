//! The request span, its end-of-request line, the request id and the timeout.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use super::{ClientErrorLevel, Config, REQUEST_ID, Server};

/// The header names, parsed once (a name given as `&str` is parsed and
/// hashed again at every lookup).
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(REQUEST_ID);
const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(chassis_trace::TRACEPARENT);
const TRACESTATE_HEADER: HeaderName = HeaderName::from_static(chassis_trace::TRACESTATE);

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
    metrics: Handles,
}

/// The API's metric handles, each looked up in the recorder once: building a
/// key with its labels and finding it costs more than the rest of the
/// request's metrics together. Taken on first use (by then the service's
/// recorder is installed).
/// One duration series: method, status code, handle.
type Series = (&'static str, u16, metrics::Histogram);

#[derive(Default)]
struct Handles {
    /// `http_server_active_requests` by method (the index of [`METHODS`]).
    active: [OnceLock<metrics::Gauge>; METHODS.len()],
    /// `http_server_request_duration_seconds` by route template (`""` for
    /// none), then method and status. Bounded: routes are templates, methods
    /// are [`METHODS`], and a status is a `u16`.
    durations: RwLock<HashMap<String, Vec<Series>>>,
}

impl Handles {
    fn active(&self, method: usize) -> &metrics::Gauge {
        self.active[method]
            .get_or_init(|| metrics::gauge!(super::ACTIVE_REQUESTS, "http_request_method" => METHODS[method]))
    }

    /// Records `seconds` in the duration series of `method`, `route`, `status`.
    fn record_duration(&self, method: &'static str, route: &str, status: StatusCode, seconds: f64) {
        let code = status.as_u16();
        let find = |series: &[Series]| series.iter().position(|(m, c, _)| *m == method && *c == code);
        {
            let durations = self.durations.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = durations.get(route) {
                if let Some(i) = find(series) {
                    series[i].2.record(seconds);
                    return;
                }
            }
        }
        let mut durations = self.durations.write().unwrap_or_else(PoisonError::into_inner);
        let series = durations.entry(route.to_owned()).or_default();
        let i = find(series).unwrap_or_else(|| {
            let histogram = metrics::histogram!(
                super::REQUEST_DURATION,
                "http_request_method" => method,
                "http_route" => route.to_owned(),
                "http_response_status_code" => status.as_str().to_owned(),
            );
            series.push((method, code, histogram));
            series.len() - 1
        });
        series[i].2.record(seconds);
    }
}

impl Observe {
    pub(crate) fn new(config: &Config, server: Server) -> Self {
        Self {
            timeout: (config.request_timeout_ms > 0).then(|| Duration::from_millis(config.request_timeout_ms)),
            timeout_status: StatusCode::from_u16(config.timeout_status).unwrap_or(StatusCode::REQUEST_TIMEOUT),
            client_error_level: config.client_error_level,
            log_requests: config.log_requests,
            server,
            metrics: Handles::default(),
        }
    }

    /// A probe or scrape of the admin server: no span, no trace, no line (a
    /// probe every few seconds would otherwise fill the log and, with the
    /// `otel` feature, the exported traces).
    fn is_probe(&self, route: Option<&str>) -> bool {
        self.server == Server::Admin && matches!(route, Some("/livez" | "/readyz" | "/startupz" | "/metrics"))
    }
}

/// The caller's id if it is reasonable to log, else a new one; with its
/// header value (the caller's own, shared, or made from the new id).
fn request_id(request: &Request) -> (String, Option<HeaderValue>, bool) {
    let taken = request.headers().get(REQUEST_ID_HEADER).and_then(|value| {
        let id = value.to_str().ok()?;
        ((1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())).then(|| (id.to_owned(), value))
    });
    match taken {
        Some((id, value)) => (id, Some(value.clone()), false),
        None => {
            let id = new_id();
            let value = HeaderValue::from_str(&id).ok();
            (id, value, true)
        }
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

/// The methods as OpenTelemetry names them: the nine standard methods, then
/// `_OTHER` for any other (so made-up methods cannot explode label values).
const METHODS: [&str; 10] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER"];

/// The index of `method` in [`METHODS`].
fn method_index(method: &axum::http::Method) -> usize {
    use axum::http::Method as M;
    match *method {
        M::GET => 0,
        M::HEAD => 1,
        M::POST => 2,
        M::PUT => 3,
        M::DELETE => 4,
        M::CONNECT => 5,
        M::OPTIONS => 6,
        M::TRACE => 7,
        M::PATCH => 8,
        _ => 9,
    }
}

/// `run`'s output, or `None` once `deadline` passed. The timer is set only
/// if `run` is not done at its first poll: most handlers answer at once, and
/// a timer entry made and dropped per request costs more than the rest of
/// the timeout.
async fn within<F: Future>(run: F, deadline: tokio::time::Instant) -> Option<F::Output> {
    let mut run = std::pin::pin!(run);
    let mut timer = std::pin::pin!(None::<tokio::time::Sleep>);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(output) = run.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if timer.is_none() {
            timer.set(Some(tokio::time::sleep_until(deadline)));
        }
        match timer.as_mut().as_pin_mut() {
            Some(sleep) => sleep.poll(cx).map(|()| None),
            None => Poll::Pending,
        }
    })
    .await
}

/// One request in `http_server_active_requests`, until dropped (a request
/// whose connection closes mid-way is dropped, not finished).
struct Active<'a>(&'a metrics::Gauge);

impl<'a> Active<'a> {
    fn new(gauge: &'a metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Active<'_> {
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
    // On tokio's clock, which tests can pause.
    let deadline = observe.timeout.map(|limit| (limit, tokio::time::Instant::now() + limit));
    let (id, header, generated) = request_id(&request);
    if generated {
        if let Some(header) = &header {
            request.headers_mut().insert(REQUEST_ID_HEADER, header.clone());
        }
    }
    let matched = request.extensions().get::<MatchedPath>().cloned(); // an `Arc<str>` inside
    let route = matched.as_ref().map(MatchedPath::as_str);
    let method_index = method_index(request.method());
    let method = METHODS[method_index];
    let caller = {
        let incoming = |name: &HeaderName| request.headers().get(name).and_then(|v| v.to_str().ok());
        incoming(&TRACEPARENT_HEADER)
            .and_then(|traceparent| chassis_trace::TraceContext::parse(traceparent, incoming(&TRACESTATE_HEADER)))
    };
    let probe = observe.is_probe(route);
    let span = if probe {
        tracing::Span::none()
    } else {
        // The caller's trace continues here, in a span of its own; or one
        // starts. Its context is a field from the start (not recorded after).
        let context = chassis_trace::TraceContext::next(caller.as_ref());
        let span = tracing::error_span!(
            target: "chassis::http",
            "request",
            "http.request.method" = method,
            "http.route" = route,
            "url.path" = request.uri().path(),
            request_id = id,
            "http.response.status_code" = tracing::field::Empty,
            traceparent = %context,
            trace_parent_span_id = caller.as_ref().map(chassis_trace::TraceContext::span_id),
        );
        chassis_trace::start_recorded(&span, caller.as_ref(), context);
        span
    };
    request.extensions_mut().insert(RequestId(id));
    let _active = (observe.server == Server::Api).then(|| Active::new(observe.metrics.active(method_index)));
    let run = next.run(request);
    let mut response = match deadline {
        Some((limit, deadline)) => match within(run, deadline).instrument(span.clone()).await {
            Some(response) => response,
            None => {
                span.in_scope(|| tracing::warn!(target: "chassis::http", timeout_ms = limit.as_millis() as u64, "the request timed out"));
                super::error(observe.timeout_status)
            }
        },
        None => run.instrument(span.clone()).await,
    };
    if let Some(header) = header {
        response.headers_mut().insert(REQUEST_ID_HEADER, header);
    }
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    let seconds = started.elapsed().as_secs_f64();
    if observe.server == Server::Api {
        observe.metrics.record_duration(method, route.unwrap_or_default(), response.status(), seconds);
    }
    if observe.log_requests && !probe {
        let latency_ms = seconds * 1000.0;
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
