//! The chassis service runtime: a lifecycle (starting → ready → draining →
//! stopped) driven by SIGTERM/SIGINT, an admin server with health checks and
//! Prometheus metrics, a default middleware stack on the API ([`http`]:
//! request spans and lines, `x-request-id`, RED metrics, W3C trace context,
//! timeout, body limit, panic guard), and a graceful shutdown: readiness fails at once, the
//! API keeps serving for the drain delay (`drain_delay_secs`, 5 s) while load
//! balancers catch up, then stops accepting and drains every component.
//!
//! ```no_run
//! # async fn example() -> Result<(), chassis_service::Error> {
//! use chassis_service::{Config, Service};
//!
//! let mut service = Service::new("billing", "1.4.2", Config::default()); // installs the metrics recorder
//! service.health().check("database", || async { Ok(()) });
//! service.router(axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" })));
//! service.spawn("worker", |shutdown| async move { shutdown.cancelled().await });
//! service.run().await // until SIGTERM; not ready but serving for 5 s, then drains and returns
//! # }
//! ```
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `boot` | `boot`: load the configuration and start logging in one call | Yes |
//! | `process-metrics` | `process_cpu_seconds_total`, `process_resident_memory_bytes`, open fds, threads and start time on `/metrics` (metrics-process) | Yes |
//! | `discovery` | `Service::discovery`: register in a service registry while ready, deregister first on shutdown | No |
//! | `tasks` | `Service::worker`: a task worker as a component, with its readiness check | No |
//! | `jobs` | `Service::jobs`: a job store's readiness check and upkeep (stranded jobs, purge) | No |
//! | `otel` | span export over OTLP/HTTP, installed by `boot` | No |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admin;
#[cfg(feature = "boot")]
mod boot;
mod components;
mod config;
mod health;
pub mod http;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;
#[cfg(feature = "discovery")]
mod registration;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

#[cfg(feature = "boot")]
#[cfg_attr(docsrs, doc(cfg(feature = "boot")))]
pub use boot::{Boot, boot};
#[cfg(feature = "jobs")]
#[cfg_attr(docsrs, doc(cfg(feature = "jobs")))]
pub use components::JOB_STORE_CHECK;
#[cfg(feature = "tasks")]
#[cfg_attr(docsrs, doc(cfg(feature = "tasks")))]
pub use components::WORKER_CHECK;
pub use config::Config;
pub use health::{CheckResult, Health, Phase, Readiness};
/// The token that tells a component to stop (tokio-util's; the same type as
/// `chassis_tasks::CancellationToken`).
pub use tokio_util::sync::CancellationToken;

/// The README's code blocks, compiled as doctests so that they keep matching
/// the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener could not bind.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A signal handler could not be installed.
    #[error("cannot install the signal handlers")]
    Signals(#[source] std::io::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

type Component = (String, Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>);

/// A service: its API, its long-running components, its checks.
pub struct Service {
    name: String,
    version: String,
    config: Config,
    health: Health,
    routers: Vec<Router>,
    components: Vec<Component>,
    shutdown: CancellationToken,
    drain_now: CancellationToken,
    metrics: Option<PrometheusHandle>,
    #[cfg(feature = "discovery")]
    registration: Option<registration::Registration>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("name", &self.name).field("config", &self.config).finish_non_exhaustive()
    }
}

/// The build info gauge.
const BUILD_INFO: &str = "chassis_build_info";

/// Histogram buckets for every `_seconds` metric: 1 ms to 60 s.
const SECONDS_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Installs the Prometheus recorder once per process; later calls share it.
fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &SECONDS_BUCKETS,
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "a metrics recorder is already installed; /metrics will be unavailable");
                    None
                }
            }
        })
        .clone()
}

impl Service {
    /// A service named `name` at `version`. Installs the Prometheus recorder
    /// first, so every metric the other crates register from now on shows up
    /// on `/metrics`: build breakers and workers after this.
    ///
    /// Also sets `chassis_build_info{service, version, chassis_version}` to 1
    /// and, with the `process-metrics` feature (on by default), adds the
    /// process metrics (`process_cpu_seconds_total`,
    /// `process_resident_memory_bytes`, `process_open_fds`, `process_threads`,
    /// `process_start_time_seconds`, …), read on each scrape.
    pub fn new(name: impl Into<String>, version: impl Into<String>, config: Config) -> Self {
        let metrics = prometheus();
        let (name, version) = (name.into(), version.into());
        metrics::describe_gauge!(BUILD_INFO, "Always 1; labels: the service, its version and the chassis version");
        metrics::gauge!(
            BUILD_INFO,
            "service" => name.clone(),
            "version" => version.clone(),
            "chassis_version" => env!("CARGO_PKG_VERSION"),
        )
        .set(1.0);
        http::describe_metrics();
        #[cfg(feature = "process-metrics")]
        admin::process_collector().describe();
        let health = Health::new(Duration::from_millis(config.check_timeout_ms.max(1)));
        Self {
            name,
            version,
            config,
            health,
            routers: Vec::new(),
            components: Vec::new(),
            shutdown: CancellationToken::new(),
            drain_now: CancellationToken::new(),
            metrics,
            #[cfg(feature = "discovery")]
            registration: None,
        }
    }

    /// Registers this service in `registry` as `config` (the `discovery`
    /// section) says, following the lifecycle:
    ///
    /// - once ready, it registers an instance: `config.service` (default: the
    ///   service's name), `config.address` (default: the bound API address,
    ///   loopback for `0.0.0.0`), `config.instance_id` (default:
    ///   `<service>-<address>`), `config.metadata` plus `version` and `admin`
    ///   (the admin server's URL), for `config.ttl_secs`;
    /// - every third of the TTL it renews the lease, **only while readiness
    ///   passes**: an unready instance lapses and drops out of clients'
    ///   lists; ready again, it registers again;
    /// - on shutdown it **deregisters first** (waiting up to 5 s), then fails
    ///   readiness and drains as [`run`](Self::run) describes;
    /// - a crash leaves the registration to expire with its TTL.
    ///
    /// `/info` shows the registration under `discovery`.
    #[cfg(feature = "discovery")]
    #[cfg_attr(docsrs, doc(cfg(feature = "discovery")))]
    pub fn discovery(
        &mut self,
        registry: std::sync::Arc<dyn chassis_discovery::Registry>,
        config: chassis_discovery::Config,
    ) -> &mut Self {
        self.registration = Some(registration::Registration { registry, config });
        self
    }

    /// Runs `resolver`'s watches as a component (until shutdown), and adds the
    /// readiness detail `discovery_resolver`: while the registry is unreachable
    /// the resolver keeps each service's last known list, and `/readyz` says so
    /// — `{"ok": true, "warning": "registry unreachable; kept the last list of:
    /// pricing (2 instances)"}` — without failing readiness (the service still
    /// works on that list).
    #[cfg(feature = "discovery")]
    #[cfg_attr(docsrs, doc(cfg(feature = "discovery")))]
    pub fn resolver(&mut self, resolver: chassis_discovery::Resolver) -> &mut Self {
        let watched = resolver.clone();
        self.health.detail("discovery_resolver", move || {
            let stale = watched.stale();
            async move {
                if stale.is_empty() {
                    return None;
                }
                let kept: Vec<String> = stale
                    .iter()
                    .map(|(service, n)| format!("{service} ({n} instance{})", if *n == 1 { "" } else { "s" }))
                    .collect();
                Some(format!("registry unreachable; kept the last list of: {}", kept.join(", ")))
            }
        });
        self.spawn("discovery_resolver", move |shutdown| resolver.run(shutdown))
    }

    /// The readiness checks and phase.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Fires a shutdown as SIGTERM would (for tests and embedding).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Ends the drain delay (`drain_delay_secs`) early, as a second SIGTERM
    /// or SIGINT would: the API stops accepting new connections and in-flight
    /// requests drain. Cancelled before a shutdown begins, the shutdown skips
    /// the delay. Cancelling it alone does not start a shutdown.
    pub fn drain_now_token(&self) -> CancellationToken {
        self.drain_now.clone()
    }

    /// Adds routes to the service's HTTP API.
    pub fn router(&mut self, router: Router) -> &mut Self {
        self.routers.push(router);
        self
    }

    /// Adds a long-running component (a task worker, a scheduler): it runs from
    /// start and must return when its token is cancelled at shutdown.
    pub fn spawn<F, Fut>(&mut self, name: impl Into<String>, component: F) -> &mut Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.components.push((name.into(), Box::new(move |token| Box::pin(component(token)))));
        self
    }

    /// Binds the listeners, serves, marks the service ready, and waits for
    /// SIGTERM, SIGINT or [`shutdown_token`](Self::shutdown_token); then:
    ///
    /// 0. with [`discovery`](Self::discovery), deregisters;
    /// 1. fails readiness at once (phase [`Phase::Draining`]);
    /// 2. keeps the API accepting and serving for `drain_delay_secs` (default
    ///    5 s; a second signal or [`drain_now_token`](Self::drain_now_token)
    ///    ends it early), so load balancers stop routing here first;
    /// 3. stops accepting, cancels the components, and waits for in-flight
    ///    requests and components within `shutdown_deadline_secs`;
    ///
    /// and returns. The admin server answers throughout, until the end.
    ///
    /// # Errors
    /// [`Error::Bind`] or [`Error::Signals`]: nothing was started.
    pub async fn run(self) -> Result<()> {
        #[cfg(feature = "discovery")]
        let registration = self.registration;
        let Self { name, version, config, health, routers, components, shutdown, drain_now, metrics, .. } = self;
        let api = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| Error::Bind { addr: config.http_addr, source })?;
        let admin_listener = tokio::net::TcpListener::bind(config.admin_addr)
            .await
            .map_err(|source| Error::Bind { addr: config.admin_addr, source })?;
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(Error::Signals)?;
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(Error::Signals)?;
        let api_addr = api.local_addr().unwrap_or(config.http_addr);
        let admin_addr = admin_listener.local_addr().unwrap_or(config.admin_addr);

        #[allow(unused_mut)] // without the discovery feature
        let mut info = serde_json::json!({
            "service": name,
            "version": version,
            "chassis": env!("CARGO_PKG_VERSION"),
            "api": api_addr.to_string(),
            "admin": admin_addr.to_string(),
        });
        #[cfg(feature = "discovery")]
        let registration = registration.map(|r| {
            let instance = r.instance(&name, &version, api_addr, admin_addr);
            info["discovery"] = serde_json::json!({
                "backend": r.config.backend,
                "service": instance.service,
                "id": instance.id,
                "addr": instance.addr,
                "ttl_secs": r.config.ttl_secs,
            });
            (r.registry, instance, Duration::from_secs(r.config.ttl_secs))
        });
        let stopped = CancellationToken::new();
        let admin = admin::Admin { health: health.clone(), metrics, info };
        let admin_stop = stopped.clone();
        let admin_app = http::stack(admin::router(admin), &config.http, http::Server::Admin);
        let admin_server = tokio::spawn(async move {
            let app = admin_app;
            if let Err(error) =
                axum::serve(admin_listener, app).with_graceful_shutdown(admin_stop.cancelled_owned()).await
            {
                tracing::error!(%error, "admin server failed");
            }
        });

        let draining = CancellationToken::new();
        let mut app = Router::new();
        for router in routers {
            app = app.merge(router);
        }
        let app = http::layer(app, &config.http);
        let api_stop = draining.clone();
        let api_server = tokio::spawn(async move {
            if let Err(error) = axum::serve(api, app).with_graceful_shutdown(api_stop.cancelled_owned()).await {
                tracing::error!(%error, "API server failed");
            }
        });
        let mut running = tokio::task::JoinSet::new();
        for (component, start) in components {
            let token = draining.child_token();
            running.spawn(async move {
                start(token).await;
                component
            });
        }
        health.set_phase(Phase::Ready);
        tracing::info!(api = %api_addr, admin = %admin_addr, "service ready");
        #[cfg(feature = "discovery")]
        let registrar = registration.map(|(registry, instance, ttl)| {
            let stop = CancellationToken::new();
            let task = tokio::spawn(registration::keep_registered(
                registry.clone(),
                instance,
                ttl,
                health.clone(),
                stop.clone(),
            ));
            (registry, stop, task)
        });

        let reason = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
            () = shutdown.cancelled() => "shutdown requested",
        };
        // Deregister first: clients watching the registry stop routing here
        // before readiness fails and the drain begins.
        #[cfg(feature = "discovery")]
        if let Some((registry, stop, task)) = registrar {
            stop.cancel();
            if let Ok(Some(lease)) = task.await {
                registration::deregister(registry.as_ref(), &lease).await;
            }
        }
        health.set_phase(Phase::Draining);
        if config.drain_delay_secs > 0 && !drain_now.is_cancelled() {
            // Readiness fails now, but load balancers take a while to notice:
            // until they do, new connections still arrive and must be served.
            tracing::info!(reason, delay_secs = config.drain_delay_secs, "shutting down: not ready, still serving");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(config.drain_delay_secs)) => {}
                () = drain_now.cancelled() => {}
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        tracing::info!(reason, deadline_secs = config.shutdown_deadline_secs, "shutting down: draining");
        draining.cancel();
        let deadline = Duration::from_secs(config.shutdown_deadline_secs);
        let drained = tokio::time::timeout(deadline, async {
            while let Some(done) = running.join_next().await {
                match done {
                    Ok(component) => tracing::info!(component, "component stopped"),
                    Err(error) => tracing::error!(%error, "a component panicked"),
                }
            }
            let _ = api_server.await;
        })
        .await;
        if drained.is_err() {
            tracing::error!(deadline_secs = deadline.as_secs(), "components still running at the shutdown deadline");
            running.abort_all();
        }
        health.set_phase(Phase::Stopped);
        stopped.cancel();
        let _ = admin_server.await;
        tracing::info!("service stopped");
        Ok(())
    }
}
