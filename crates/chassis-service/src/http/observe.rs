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
    /// Keys are the application's route templates, not request input, so a
    /// fast hasher without DoS resistance is fine (SipHash cost more than
    /// the rest of the lookup).
    durations: RwLock<HashMap<String, Vec<Series>, foldhash::fast::RandomState>>,
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
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    // Written by uuid into a buffer, not through `Display`'s formatting.
    id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).to_owned()
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
/// than with axum's `from_fn` (which clones the inner service and boxes it
/// again on every request), with a future of its own ([`Observed`]) rather
/// than an `async` block: nothing is boxed and nothing large is moved.
#[derive(Clone)]
pub(crate) struct ObserveService<S> {
    observe: Arc<Observe>,
    inner: S,
}

impl<S> tower_service::Service<Request> for ObserveService<S>
where
    S: tower_service::Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let begun = Begun::new(self.observe.clone(), &mut request);
        let run = {
            let _entered = begun.span.enter();
            self.inner.call(request)
        };
        Observed { run, begun: Some(begun), timer: None }
    }
}

pin_project_lite::pin_project! {
    /// The response of one request: polls the inner service's future inside
    /// the request span, within the timeout, and ends the request when it
    /// is ready.
    pub(crate) struct Observed<F> {
        #[pin]
        run: F,
        // Taken when the request ends.
        begun: Option<Begun>,
        // Set only if the handler was not done at its first poll: most answer
        // at once, and a timer entry made and dropped per request costs more
        // than the rest of the timeout.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F, R> Future for Observed<F>
where
    F: Future<Output = Result<R, Infallible>>,
    R: IntoResponse,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(begun) = this.begun.as_mut() else {
            // Polled again after it ended: a bug of the caller, not a panic here.
            return Poll::Ready(Ok(super::error(StatusCode::INTERNAL_SERVER_ERROR)));
        };
        let polled = {
            let _entered = begun.span.enter();
            this.run.poll(cx)
        };
        let response = match polled {
            Poll::Ready(Ok(response)) => response.into_response(),
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => {
                let Some((limit, deadline)) = begun.deadline else { return Poll::Pending };
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let timeout_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
                begun.span.in_scope(|| tracing::warn!(target: "chassis::http", timeout_ms, "the request timed out"));
                super::error(begun.observe.timeout_status)
            }
        };
        let response = begun.end(response);
        *this.begun = None; // counted out of the active requests
        Poll::Ready(Ok(response))
    }
}

/// A request under way: what its end needs from its start. Dropped, it is
/// counted out of `http_server_active_requests` (a request whose connection
/// closed mid-way is dropped, not ended).
struct Begun {
    observe: Arc<Observe>,
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

impl Drop for Begun {
    fn drop(&mut self) {
        if self.observe.server == Server::Api {
            self.observe.metrics.active(self.method_index).decrement(1.0);
        }
    }
}

impl Begun {
    /// Takes or makes the request id, opens the request span (continuing the
    /// caller's trace) and counts the request as active.
    fn new(observe: Arc<Observe>, request: &mut Request) -> Self {
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
        let incoming = |name: &HeaderName| request.headers().get(name).and_then(|v| v.to_str().ok());
        let (caller, caller_span_id) = match incoming(&TRACEPARENT_HEADER).and_then(|traceparent| {
            chassis_trace::TraceContext::parse_with_span_id(traceparent, incoming(&TRACESTATE_HEADER))
        }) {
            Some((caller, span_id)) => (Some(caller), Some(span_id)),
            None => (None, None),
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
                trace_parent_span_id = caller_span_id.as_ref().map(chassis_trace::SpanIdText::as_str),
            );
            chassis_trace::start_recorded(&span, caller.as_ref(), context);
            span
        };
        request.extensions_mut().insert(RequestId(id));
        if observe.server == Server::Api {
            observe.metrics.active(method_index).increment(1.0);
        }
        Self { observe, started, deadline, header, matched, method_index, probe, span }
    }

    /// Ends the request with `response`: its request id, its status on the
    /// span, its duration and its line.
    fn end(&mut self, mut response: Response) -> Response {
        if let Some(header) = self.header.take() {
            response.headers_mut().insert(REQUEST_ID_HEADER, header);
        }
        let observe = &self.observe;
        let status = response.status().as_u16();
        self.span.record("http.response.status_code", status);
        let seconds = self.started.elapsed().as_secs_f64();
        if observe.server == Server::Api {
            let route = self.matched.as_ref().map_or("", MatchedPath::as_str);
            observe.metrics.record_duration(METHODS[self.method_index], route, response.status(), seconds);
        }
        if observe.log_requests && !self.probe {
            let latency_ms = seconds * 1000.0;
            let _entered = self.span.enter();
            // `message` as a `&str` field: the same line, without a `format_args!` to format.
            match status {
                500.. => tracing::error!(target: "chassis::http", message = "request", latency_ms),
                400..500 if observe.client_error_level == ClientErrorLevel::Warn => {
                    tracing::warn!(target: "chassis::http", message = "request", latency_ms);
                }
                _ => tracing::info!(target: "chassis::http", message = "request", latency_ms),
            }
        }
        response
    }
}
