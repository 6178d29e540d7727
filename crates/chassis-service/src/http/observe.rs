//! The request span, its end-of-request line, the request id and the timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
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

/// One request in `http_server_active_requests` (incremented when it began),
/// until dropped (a request whose connection closes mid-way is dropped, not
/// finished).
struct Active<'a>(&'a metrics::Gauge);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The layer of [`Observe`]: the outermost of the stack.
#[derive(Clone)]
pub(crate) struct ObserveLayer(pub(crate) Arc<Observe>);

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService { observe: self.0.clone(), inner }
    }
}

/// A service wrapped in [`Observe`]. Written as a `tower` service rather
/// than with axum's `from_fn`, which clones the inner service and boxes it
/// again on every request: the request's set-up runs in `call`, the inner
/// service is called there, and only the wait for its response is boxed.
#[derive(Clone)]
pub(crate) struct ObserveService<S> {
    observe: Arc<Observe>,
    inner: S,
}

impl<S> tower_service::Service<Request> for ObserveService<S>
where
    S: tower_service::Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let begun = Begun::new(&self.observe, &mut request);
        let run = self.inner.call(request);
        let observe = self.observe.clone();
        Box::pin(async move { Ok(begun.finish(&observe, run).await) })
    }
}

/// A request under way: what its end needs from its start.
struct Begun {
    started: Instant,
    /// The timeout and its deadline, on tokio's clock (which tests can pause).
    deadline: Option<(Duration, tokio::time::Instant)>,
    /// The request id's header value, for the response.
    header: Option<HeaderValue>,
    matched: Option<MatchedPath>,
    method_index: usize,
    probe: bool,
    span: tracing::Span,
}

impl Begun {
    /// Takes or makes the request id, opens the request span (continuing the
    /// caller's trace) and counts the request as active.
    fn new(observe: &Observe, request: &mut Request) -> Self {
        let started = Instant::now();
        let deadline = observe.timeout.map(|limit| (limit, tokio::time::Instant::now() + limit));
        let (id, header, generated) = request_id(request);
        if generated {
            if let Some(header) = &header {
                request.headers_mut().insert(REQUEST_ID_HEADER, header.clone());
            }
        }
        let matched = request.extensions().get::<MatchedPath>().cloned(); // an `Arc<str>` inside
        let route = matched.as_ref().map(MatchedPath::as_str);
        let method_index = method_index(request.method());
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
            let traceparent = context.header();
            let span = tracing::error_span!(
                target: "chassis::http",
                "request",
                "http.request.method" = METHODS[method_index],
                "http.route" = route,
                "url.path" = request.uri().path(),
                request_id = id,
                "http.response.status_code" = tracing::field::Empty,
                traceparent = traceparent.as_str(),
                trace_parent_span_id = caller.as_ref().map(chassis_trace::TraceContext::span_id),
            );
            chassis_trace::start_recorded(&span, caller.as_ref(), context);
            span
        };
        request.extensions_mut().insert(RequestId(id));
        if observe.server == Server::Api {
            observe.metrics.active(method_index).increment(1.0);
        }
        Self { started, deadline, header, matched, method_index, probe, span }
    }

    /// Waits for the response (within the timeout), then records its status,
    /// duration and line.
    async fn finish<F, R>(self, observe: &Observe, run: F) -> Response
    where
        F: Future<Output = Result<R, Infallible>>,
        R: IntoResponse,
    {
        // Counted out however the request ends, a dropped connection included.
        let _active = (observe.server == Server::Api).then(|| Active(observe.metrics.active(self.method_index)));
        let span = &self.span;
        let run = async move {
            match run.await {
                Ok(response) => response.into_response(),
                Err(never) => match never {},
            }
        };
        let mut response = match self.deadline {
            Some((limit, deadline)) => match within(run, deadline).instrument(span.clone()).await {
                Some(response) => response,
                None => {
                    span.in_scope(|| tracing::warn!(target: "chassis::http", timeout_ms = limit.as_millis() as u64, "the request timed out"));
                    super::error(observe.timeout_status)
                }
            },
            None => run.instrument(span.clone()).await,
        };
        if let Some(header) = self.header {
            response.headers_mut().insert(REQUEST_ID_HEADER, header);
        }
        let status = response.status().as_u16();
        span.record("http.response.status_code", status);
        let seconds = self.started.elapsed().as_secs_f64();
        if observe.server == Server::Api {
            let route = self.matched.as_ref().map_or("", MatchedPath::as_str);
            observe.metrics.record_duration(METHODS[self.method_index], route, response.status(), seconds);
        }
        if observe.log_requests && !self.probe {
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
}
