//! reqwest integration: a `reqwest-middleware` middleware with a breaker per
//! host, and a ready client — the drop-in the Python original's
//! `chassis.get(url)` was.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Extensions;
use reqwest::{Request, Response, ResponseBuilderExt, Url};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};

use crate::body::PermitBody;
use crate::breaker::Breaker;
use crate::breakers::Breakers;
use crate::error::Rejected;
use crate::permit::{Outcome, Permit};

/// Decides what an HTTP result says about the server.
///
/// [`classify`](Self::classify) judges the response head (or the error that
/// came instead). A [`Success`](Outcome::Success) is provisional: the call
/// ends when its body does, and [`body_error`](Self::body_error) judges an
/// error while reading it (see [`PermitBody`](crate::PermitBody)).
pub trait Classify: Send + Sync + 'static {
    /// Success, failure, or nothing to say, from the status and headers (or the error).
    fn classify(&self, result: &reqwest_middleware::Result<Response>) -> Outcome;

    /// What an error while reading the body of a response that
    /// [`classify`](Self::classify) called a success says: a timeout, a
    /// connection cut mid-body, a body that cannot be decoded. Default: a
    /// [`Failure`](Outcome::Failure).
    fn body_error(&self, error: &reqwest::Error) -> Outcome {
        let _ = error;
        Outcome::Failure
    }
}

impl<F> Classify for F
where
    F: Fn(&reqwest_middleware::Result<Response>) -> Outcome + Send + Sync + 'static,
{
    fn classify(&self, result: &reqwest_middleware::Result<Response>) -> Outcome {
        self(result)
    }
}

/// The default HTTP classification: connect errors, timeouts, body and other
/// transport errors, 5xx, 408 and 429 are failures; other responses, 4xx
/// included, are successes (the server is healthy); a request that could not
/// be built, a redirect-policy error or another middleware's error say nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpClassifier;

impl HttpClassifier {
    /// The default classification of a status code.
    pub fn status(status: http::StatusCode) -> Outcome {
        crate::permit::status_outcome(status)
    }
}

impl Classify for HttpClassifier {
    fn classify(&self, result: &reqwest_middleware::Result<Response>) -> Outcome {
        match result {
            Ok(response) => Self::status(response.status()),
            Err(reqwest_middleware::Error::Reqwest(e)) if e.is_builder() || e.is_redirect() => Outcome::Ignore,
            Err(reqwest_middleware::Error::Reqwest(_)) => Outcome::Failure,
            Err(reqwest_middleware::Error::Middleware(_)) => Outcome::Ignore,
        }
    }
}

/// A per-request classifier, set as a request extension:
/// `client.get(url).with_extension(ClassifyWith::new(|r: &_| …))`.
#[derive(Clone)]
pub struct ClassifyWith(Arc<dyn Classify>);

impl ClassifyWith {
    /// Wraps a classifier.
    pub fn new(classify: impl Classify) -> Self {
        Self(Arc::new(classify))
    }
}

impl fmt::Debug for ClassifyWith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClassifyWith(..)")
    }
}

type KeyFn = Arc<dyn Fn(&Url) -> String + Send + Sync>;

/// The default key: scheme, host and port (`https://api.example:443`).
pub fn host_key(url: &Url) -> String {
    let port = url.port_or_known_default().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{}{port}", url.scheme(), url.host_str().unwrap_or(""))
}

/// A key function for a breaker per host and the first `segments` path
/// segments (`https://api.example:443/v1/orders`), as the Python original kept.
pub fn path_prefix_key(segments: usize) -> impl Fn(&Url) -> String + Send + Sync + 'static {
    move |url| {
        let mut key = host_key(url);
        for segment in url.path_segments().into_iter().flatten().filter(|s| !s.is_empty()).take(segments) {
            key.push('/');
            key.push_str(segment);
        }
        key
    }
}

/// The `reqwest-middleware` middleware: every request goes through the breaker
/// of its key; an open breaker fails the request at once with a [`Rejected`].
///
/// A call ends when its body does: a response the classifier calls a success
/// carries the permit in its body ([`PermitBody`](crate::PermitBody)), so a
/// body that times out or breaks off is a failure, a slow-call threshold
/// measures the whole call, and a half-open trial ends when its body has been
/// read (or dropped unread: a success). A failing response (5xx, 408, 429)
/// counts at once, whether or not its body is read.
///
/// **Trace context.** Every request carries the current W3C trace context
/// (`traceparent`, `tracestate`; see chassis-trace), or starts a trace.
///
/// **Timeouts.** The client's timeout (`request_timeout_ms` for [`client`],
/// or `RequestBuilder::timeout`) covers the whole call, body included, and a
/// call that hits it is a failure. A caller-side `tokio::time::timeout`
/// around a request is a cancellation: when it fires, before the headers or
/// while the body is read, the call counts **nothing** (a half-open trial
/// slot is freed), because giving up says nothing about the server. To have
/// slow servers open the breaker, use the client's timeout.
///
/// **Streams.** A long-lived body (server-sent events, a long download)
/// holds its permit while it streams: with a slow-call threshold it is a
/// slow call, and as a half-open trial it holds its slot until
/// `probe_timeout_ms` reclaims it. Classify such requests
/// [`Outcome::Ignore`] with a [`ClassifyWith`] (an ignored head is recorded
/// at once and the body is left alone), or send them with a client without
/// the breaker.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let client = chassis_breaker::client(chassis_breaker::Breakers::new(Default::default())?)?;
/// let response = client.get("http://127.0.0.1:8080/health").send().await;
/// if let Err(e) = &response {
///     if let Some(rejected) = chassis_breaker::Rejected::from_reqwest(e) {
///         println!("not even tried: {rejected}");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BreakerMiddleware {
    breakers: Breakers,
    key: KeyFn,
    classify: Arc<dyn Classify>,
}

impl fmt::Debug for BreakerMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerMiddleware").field("breakers", &self.breakers).finish_non_exhaustive()
    }
}

impl BreakerMiddleware {
    /// Breakers from `breakers`, per host, with [`HttpClassifier`].
    pub fn new(breakers: Breakers) -> Self {
        metrics::describe_histogram!(
            CLIENT_DURATION,
            metrics::Unit::Seconds,
            "Duration of outgoing HTTP requests until the response head, by server_address and \
             http_response_status_code (error_type instead when no response came)"
        );
        Self { breakers, key: Arc::new(host_key), classify: Arc::new(HttpClassifier) }
    }

    /// Keys requests with `key` instead of [`host_key`] (e.g. [`path_prefix_key`]).
    #[must_use]
    pub fn key(mut self, key: impl Fn(&Url) -> String + Send + Sync + 'static) -> Self {
        self.key = Arc::new(key);
        self
    }

    /// Classifies results with `classify` (a request's [`ClassifyWith`] still wins).
    #[must_use]
    pub fn classify(mut self, classify: impl Classify) -> Self {
        self.classify = Arc::new(classify);
        self
    }

    /// The breakers.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }
}

#[async_trait::async_trait]
impl Middleware for BreakerMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let key = (self.key)(req.url());
        let breaker = self.breakers.get(&key).map_err(reqwest_middleware::Error::middleware)?;
        let permit = breaker.acquire_owned().map_err(reqwest_middleware::Error::middleware)?;
        let classify = extensions.get::<ClassifyWith>().map_or_else(|| self.classify.clone(), |c| c.0.clone());
        // If the caller drops this future, the permit is dropped unrecorded:
        // cancellation says nothing about the server.
        inject_trace(&mut req);
        let server = req.url().host_str().unwrap_or("").to_owned();
        let started = std::time::Instant::now();
        let result = next.run(req, extensions).await;
        record_duration(server, started.elapsed(), &result);
        match (classify.classify(&result), result) {
            // The outcome is known only when the body has been read.
            (Outcome::Success, Ok(response)) => Ok(hold(response, permit, classify)),
            (outcome, result) => {
                permit.record(outcome);
                result
            }
        }
    }
}

/// Sends the current W3C trace context (`traceparent`, and `tracestate` if
/// the trace has one): the current span's, so the server's request span is
/// its child; outside any trace, a new trace. A request that already carries
/// a `traceparent` keeps it.
fn inject_trace(req: &mut Request) {
    if req.headers().contains_key(chassis_trace::TRACEPARENT) {
        return;
    }
    let context = chassis_trace::current().unwrap_or_else(chassis_trace::TraceContext::root);
    if let Ok(value) = http::HeaderValue::from_str(&context.traceparent()) {
        req.headers_mut().insert(chassis_trace::TRACEPARENT, value);
    }
    if let Some(Ok(value)) = context.tracestate().map(http::HeaderValue::from_str) {
        req.headers_mut().insert(chassis_trace::TRACESTATE, value);
    }
}

/// The client request duration histogram (OpenTelemetry's `http.client.request.duration`).
const CLIENT_DURATION: &str = "http_client_request_duration_seconds";

/// Records one request in `http_client_request_duration_seconds`: labels
/// `server_address` (the host) and `http_response_status_code`, or
/// `error_type` (`timeout`, `connect`, `other`) when no response came.
fn record_duration(server: String, elapsed: Duration, result: &reqwest_middleware::Result<Response>) {
    let labels: [(&'static str, String); 2] = match result {
        Ok(response) => {
            [("server_address", server), ("http_response_status_code", response.status().as_str().to_owned())]
        }
        Err(reqwest_middleware::Error::Reqwest(e)) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "other"
            };
            [("server_address", server), ("error_type", kind.to_owned())]
        }
        Err(reqwest_middleware::Error::Middleware(_)) => {
            [("server_address", server), ("error_type", "other".to_owned())]
        }
    };
    metrics::histogram!(CLIENT_DURATION, &labels).record(elapsed.as_secs_f64());
}

/// Moves `permit` into the body of `response`.
fn hold(response: Response, permit: Permit<Breaker>, classify: Arc<dyn Classify>) -> Response {
    let url = response.url().clone();
    let (mut parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let body = PermitBody::new(body, permit).on_error(move |error| classify.body_error(error));
    // The conversion to `http::Response` drops the URL; reqwest reads it back
    // from an extension only its response builder can set.
    if let Ok(head) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(head.into_parts().0.extensions);
    }
    Response::from(http::Response::from_parts(parts, reqwest::Body::wrap(body)))
}

impl Rejected {
    /// The rejection inside a `reqwest-middleware` error, if the breaker refused
    /// the request.
    pub fn from_reqwest(error: &reqwest_middleware::Error) -> Option<&Rejected> {
        match error {
            reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<Rejected>(),
            reqwest_middleware::Error::Reqwest(_) => None,
        }
    }
}

/// A ready client: a breaker per host from `breakers`, and a default request
/// timeout of the breakers' `request_timeout_ms` (5 s by default).
///
/// # Errors
/// When reqwest cannot build a client (its TLS backend failed to initialise).
pub fn client(breakers: Breakers) -> Result<ClientWithMiddleware, reqwest::Error> {
    client_with(breakers, [])
}

/// Like [`client`], with `before` run ahead of the breaker, first one
/// outermost: a middleware there sees each request before its breaker does
/// (chassis-discovery resolves logical names to an instance there, so the
/// breaker is the instance's).
///
/// # Errors
/// As [`client`].
pub fn client_with(
    breakers: Breakers,
    before: impl IntoIterator<Item = Arc<dyn Middleware>>,
) -> Result<ClientWithMiddleware, reqwest::Error> {
    let timeout = Duration::from_millis(breakers.config().request_timeout_ms);
    let inner = reqwest::Client::builder().timeout(timeout).build()?;
    let builder = before.into_iter().fold(reqwest_middleware::ClientBuilder::new(inner), |b, m| b.with_arc(m));
    Ok(builder.with(BreakerMiddleware::new(breakers)).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let url = Url::parse("https://api.example/v1/orders/7?x=1").unwrap();
        assert_eq!(host_key(&url), "https://api.example:443");
        assert_eq!(path_prefix_key(2)(&url), "https://api.example:443/v1/orders");
        assert_eq!(host_key(&Url::parse("http://127.0.0.1:8080/").unwrap()), "http://127.0.0.1:8080");
    }

    #[test]
    fn status_classification() {
        use http::StatusCode as S;
        for (status, outcome) in [
            (S::OK, Outcome::Success),
            (S::NOT_FOUND, Outcome::Success),
            (S::BAD_REQUEST, Outcome::Success),
            (S::REQUEST_TIMEOUT, Outcome::Failure),
            (S::TOO_MANY_REQUESTS, Outcome::Failure),
            (S::INTERNAL_SERVER_ERROR, Outcome::Failure),
            (S::SERVICE_UNAVAILABLE, Outcome::Failure),
        ] {
            assert_eq!(HttpClassifier::status(status), outcome, "{status}");
        }
    }
}
