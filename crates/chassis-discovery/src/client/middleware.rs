//! [`DiscoveryMiddleware`]: logical names to instances, before the breaker.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::Extensions;
use reqwest::{Method, Request, Response, Url};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use tracing::Instrument;

use crate::config::Balance;
use crate::error::Error;
use crate::metrics;

use super::resolver::{Cached, Endpoint, Resolver};

/// Marks a request as safe to send twice (a `POST` with an idempotency key):
/// `client.post(url).with_extension(Idempotent)`. `GET`, `HEAD`, `OPTIONS`,
/// `TRACE`, `PUT` and `DELETE` are idempotent without it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Idempotent;

/// The `reqwest-middleware` middleware that sends a request for a logical
/// name (`http://inventory/items/7`) to one live instance of that service.
///
/// Which URLs are logical names ([`ClientConfig`](crate::ClientConfig)): those with
/// the configured `scheme` (`svc://inventory/…`, sent over `http`), or whose
/// host ends with the configured `host_suffix` (`http://inventory.svc/…`);
/// with neither configured, those whose host is a single DNS label other
/// than `localhost`, without a port (`http://inventory/…`). Other URLs pass
/// through untouched.
///
/// The instance is picked by [`Balance`](crate::Balance): round robin, or the
/// less busy of two at random. Instances whose breaker (in the
/// [`chassis_breaker::Breakers`] given to [`breakers`](Self::breakers)) is
/// open are skipped while another one is available. An idempotent request
/// (see [`Idempotent`]) that fails to connect, that the instance's breaker
/// rejects, or whose connection breaks before an answer (not a timeout), is
/// sent once more to another instance.
///
/// Each request runs in a span `discovery` with `peer.service`, `instance`
/// (the id) and `addr`. Place it before the breaker (as [`client`] does) so
/// that each instance gets its own breaker.
#[derive(Clone)]
pub struct DiscoveryMiddleware {
    resolver: Resolver,
    breakers: Option<chassis_breaker::Breakers>,
}

impl fmt::Debug for DiscoveryMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryMiddleware").field("resolver", &self.resolver).finish_non_exhaustive()
    }
}

/// A logical request: the service, and the scheme to send it with.
struct Logical<'a> {
    service: &'a str,
    scheme: Option<&'static str>,
}

impl DiscoveryMiddleware {
    /// Resolves through `resolver`, without skipping open breakers.
    pub fn new(resolver: Resolver) -> Self {
        Self { resolver, breakers: None }
    }

    /// Skips instances whose breaker in `breakers` is open: the registry the
    /// breaker middleware behind this one uses, keyed by host.
    #[must_use]
    pub fn breakers(mut self, breakers: chassis_breaker::Breakers) -> Self {
        self.breakers = Some(breakers);
        self
    }

    fn logical<'u>(&self, url: &'u Url) -> Option<Logical<'u>> {
        let config = self.resolver.config();
        let host = url.domain()?;
        if let Some(scheme) = &config.scheme {
            if url.scheme() == scheme {
                return Some(Logical { service: host, scheme: Some("http") });
            }
        }
        if let Some(suffix) = &config.host_suffix {
            return host
                .strip_suffix(suffix.as_str())
                .filter(|s| !s.is_empty())
                .map(|service| Logical { service, scheme: None });
        }
        let bare = config.scheme.is_none()
            && url.port().is_none()
            && !host.contains('.')
            && !host.eq_ignore_ascii_case("localhost");
        bare.then_some(Logical { service: host, scheme: None })
    }

    /// Whether the breaker of `endpoint` rejects calls now (a look, without
    /// creating a breaker or marking it used).
    fn is_open(&self, endpoint: &Endpoint, scheme: &str) -> bool {
        let Some(breakers) = &self.breakers else { return false };
        let key = if scheme == "https" { &endpoint.https_key } else { &endpoint.http_key };
        let breaker = breakers.peek(key);
        breaker.is_some_and(|breaker| match breaker.state() {
            chassis_breaker::State::ForcedOpen => true,
            chassis_breaker::State::Open => breaker.snapshot().retry_after.is_some_and(|d| !d.is_zero()),
            _ => false,
        })
    }

    /// Picks an instance other than `exclude`, preferring closed breakers.
    fn pick(&self, cached: &Cached, exclude: Option<&Arc<Endpoint>>, scheme: &str) -> Option<Arc<Endpoint>> {
        let list = cached.list();
        let usable = |e: &Arc<Endpoint>| exclude.is_none_or(|x| !Arc::ptr_eq(x, e));
        let healthy = |e: &Arc<Endpoint>| usable(e) && !self.is_open(e, scheme);
        let n = list.len();
        if n == 0 {
            return None;
        }
        let chosen = match self.resolver.config().balance {
            Balance::RoundRobin => {
                let start = cached.next.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|i| &list[(start.wrapping_add(i)) % n]).find(|e| healthy(e))
            }
            Balance::PowerOfTwo => {
                let a = &list[fastrand::usize(..n)];
                let b = &list[fastrand::usize(..n)];
                match (healthy(a), healthy(b)) {
                    (true, true) => {
                        Some(if b.in_flight.load(Ordering::Relaxed) < a.in_flight.load(Ordering::Relaxed) {
                            b
                        } else {
                            a
                        })
                    }
                    (true, false) => Some(a),
                    (false, true) => Some(b),
                    (false, false) => {
                        let start = fastrand::usize(..n);
                        (0..n).map(|i| &list[(start + i) % n]).find(|e| healthy(e))
                    }
                }
            }
        };
        // Every breaker open: let one of them answer (it rejects, or lets a trial through).
        chosen.or_else(|| list.iter().find(|e| usable(e))).cloned()
    }

    async fn send(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
        service: &str,
        scheme: Option<&'static str>,
        endpoint: &Endpoint,
    ) -> reqwest_middleware::Result<Response> {
        match (scheme, endpoint.socket) {
            (None, Some(socket)) if point_at(&mut req, socket) => {}
            _ => rewrite(&mut req, scheme, &endpoint.instance.addr)?,
        }
        let span = tracing::info_span!(
            "discovery",
            peer.service = service,
            instance = %endpoint.instance.id,
            addr = %endpoint.instance.addr,
        );
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&endpoint.in_flight);
        next.run(req, extensions).instrument(span).await
    }
}

/// Decrements an in-flight count when the request ends, cancelled or not.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Points `req` at `socket`, keeping its scheme; `false` if the URL cannot
/// take it (then [`rewrite`] says why).
fn point_at(req: &mut Request, socket: std::net::SocketAddr) -> bool {
    let url = req.url_mut();
    url.set_ip_host(socket.ip()).is_ok() && url.set_port(Some(socket.port())).is_ok()
}

/// Points `req` at `addr` (`host:port`), with `scheme` if given.
fn rewrite(req: &mut Request, scheme: Option<&str>, addr: &str) -> reqwest_middleware::Result<()> {
    let url = req.url_mut();
    let rewritten = match scheme {
        // A special scheme cannot replace a custom one in place (WHATWG URL rules).
        Some(scheme) => {
            let mut s = format!("{scheme}://{addr}{}", url.path());
            if let Some(query) = url.query() {
                s.push('?');
                s.push_str(query);
            }
            Url::parse(&s).ok().map(|new| *url = new)
        }
        None => addr.rsplit_once(':').and_then(|(host, port)| {
            let port = port.parse::<u16>().ok()?;
            url.set_host(Some(host)).ok()?;
            url.set_port(Some(port)).ok()
        }),
    };
    rewritten.ok_or_else(|| {
        reqwest_middleware::Error::middleware(Error::InvalidAnswer(format!(
            "instance address `{addr}` is not host:port"
        )))
    })
}

fn idempotent(req: &Request, extensions: &Extensions) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
        || extensions.get::<Idempotent>().is_some()
}

/// Whether an idempotent request may go to another instance: it could not
/// connect, the instance's breaker refused it, or the connection broke before
/// any answer (a pooled keep-alive connection to an instance that died since
/// fails so, not as a connect error). Timeouts are not retried: the
/// instance may be slow rather than gone, and a retry would double the wait.
fn retryable(error: &reqwest_middleware::Error) -> bool {
    match error {
        reqwest_middleware::Error::Reqwest(e) => e.is_connect() || (e.is_request() && !e.is_timeout()),
        e => chassis_breaker::Rejected::from_reqwest(e).is_some(),
    }
}

#[async_trait::async_trait]
impl Middleware for DiscoveryMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(logical) = self.logical(req.url()) else {
            return next.run(req, extensions).await;
        };
        let scheme = logical.scheme;
        let cached = self.resolver.cached(logical.service).await.map_err(reqwest_middleware::Error::middleware)?;
        let service = cached.name.as_str();
        let effective = scheme.unwrap_or(if req.url().scheme() == "https" { "https" } else { "http" });
        let Some(first) = self.pick(&cached, None, effective) else {
            metrics::resolve_error(service);
            return Err(reqwest_middleware::Error::middleware(Error::NoInstances { service: service.to_owned() }));
        };
        // A copy to send again only where another instance could take it.
        let retry = idempotent(&req, extensions) && cached.list_len() > 1;
        let again = if retry { req.try_clone() } else { None };
        let result = self.send(req, extensions, next.clone(), service, scheme, &first).await;
        match (result, again) {
            (Err(error), Some(again)) if retryable(&error) => {
                let Some(second) = self.pick(&cached, Some(&first), effective) else { return Err(error) };
                tracing::debug!(peer.service = %service, instance = %first.instance.id, %error, retry = %second.instance.id, "failed before an answer; retrying on another instance");
                self.send(again, extensions, next, service, scheme, &second).await
            }
            (result, _) => result,
        }
    }
}

/// A ready client: logical names resolved by `resolver`, then a breaker per
/// instance from `breakers` (open ones skipped), with the breaker registry's
/// request timeout — [`chassis_breaker::client_with`] with a
/// [`DiscoveryMiddleware`] in front.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let config = chassis_discovery::Config::default();
/// let resolver = chassis_discovery::Resolver::from_config(&config)?;
/// let client = chassis_discovery::client(resolver, chassis_breaker::Breakers::new(Default::default())?)?;
/// let prices = client.get("http://pricing/prices/7").send().await?;
/// # let _ = prices; Ok(()) }
/// ```
///
/// # Errors
/// When reqwest cannot build a client.
pub fn client(resolver: Resolver, breakers: chassis_breaker::Breakers) -> Result<ClientWithMiddleware, reqwest::Error> {
    let middleware = DiscoveryMiddleware::new(resolver).breakers(breakers.clone());
    chassis_breaker::client_with(breakers, [Arc::new(middleware) as Arc<dyn Middleware>])
}
