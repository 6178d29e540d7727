//! [`TestService`]: the user's service, in this process, on free loopback ports.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use chassis_config::Loader;
use chassis_service::{CancellationToken, Health, Phase, Service};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::logs::{Capture, Line, Logs};
use crate::{Error, Metrics, Result};

/// How often readiness and logs are polled while waiting.
const POLL: Duration = Duration::from_millis(20);

/// The lines chassis-service writes when a drain is not clean.
const UNCLEAN: [&str; 2] = ["components still running at the shutdown deadline", "a component panicked"];

/// How a [`TestService`] is started: the configuration loader, test overrides,
/// the environment it sees (none of the process's), the name and how long it
/// may take to become ready. Made by [`TestService::builder`].
#[derive(Debug)]
pub struct TestServiceBuilder {
    loader: Loader,
    env: Vec<(String, String)>,
    overrides: Vec<(String, serde_json::Value)>,
    name: String,
    version: String,
    ready_within: Duration,
}

impl TestServiceBuilder {
    /// The service's name and version, as `main` gives them to `boot`
    /// (default: `app`, `0.0.0`): on every log line and on `/info`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        (self.name, self.version) = (name.into(), version.into());
        self
    }

    /// Overrides a configuration key (`"tasks.concurrency"`), above every
    /// file; later calls win. (A value that does not serialize is ignored.)
    #[must_use]
    pub fn set(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        if let Ok(value) = serde_json::to_value(value) {
            self.overrides.push((key.into(), value));
        }
        self
    }

    /// Adds a variable to the environment the configuration reads
    /// (`"APP_JOBS__BACKEND"`). The process environment is never read, so
    /// nothing leaks in from the shell or from other tests.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long the service may take to answer `/readyz` with 200. Default: 30 s.
    #[must_use]
    pub fn ready_within(mut self, within: Duration) -> Self {
        self.ready_within = within;
        self
    }

    /// Loads the configuration into `T` with the overrides — the API on a free
    /// loopback port, the admin server on another, no drain delay — builds the
    /// [`Service`] from its `service` section (installing the metrics
    /// recorder), hands both to `build` (the builder `main` uses), runs what it
    /// returns and waits until `/readyz` answers 200.
    ///
    /// The service runs on a runtime of its own (two worker threads) whose
    /// threads log through chassis-log's JSON layer (the `log` section's
    /// service, labels and filter) into this service's own capture
    /// ([`logs`](TestService::logs)), so tests in parallel each see their own
    /// lines. `build` runs there too.
    ///
    /// # Errors
    /// [`Error::Config`] with the whole report, [`Error::Build`] with
    /// `build`'s error, [`Error::NotReady`] with the last `/readyz` answer,
    /// [`Error::Io`] when no free port is found or the runtime cannot start.
    pub async fn start<T, F, Fut, E>(self, build: F) -> Result<TestService>
    where
        T: DeserializeOwned + Send + 'static,
        F: FnOnce(Service, T) -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Service, E>> + Send,
        E: Display,
    {
        let (api, admin) = (crate::free_addr()?, crate::free_addr()?);
        let mut loader = self
            .loader
            .env(self.env)
            .set("service.http_addr", api.to_string())
            .set("service.admin_addr", admin.to_string())
            .set("service.drain_delay_secs", 0)
            .check::<chassis_log::Config>("log")
            .check::<chassis_service::Config>("service");
        for (key, value) in self.overrides {
            loader = loader.set(key, value);
        }
        let loaded = loader.extract::<T>().map_err(|e| Error::Config(e.to_string()))?;
        let mut log: chassis_log::Config = loaded.section("log").map_err(|e| Error::Config(e.to_string()))?;
        if log.service == chassis_log::Config::default().service {
            log.service.clone_from(&self.name);
        }
        log.version.clone_from(&self.version);
        let config: chassis_service::Config = loaded.section("service").map_err(|e| Error::Config(e.to_string()))?;
        let (api, admin) = (config.http_addr, config.admin_addr);
        let wait = Duration::from_secs(config.drain_delay_secs.saturating_add(config.shutdown_deadline_secs) + 10);
        let capture = Capture::default();
        let dispatch = crate::logs::dispatch(&log, capture.clone()).map_err(|e| Error::Config(e.to_string()))?;
        let on_start = dispatch.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            // Every thread of the service's runtime logs into its capture, for its life.
            .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&on_start)))
            .build()?;
        let (started, ready) = tokio::sync::oneshot::channel();
        let (ended, done) = tokio::sync::oneshot::channel();
        let (name, version) = (self.name, self.version);
        std::thread::Builder::new().name(format!("test-service-{name}")).spawn(move || {
            let _default = tracing::dispatcher::set_default(&dispatch);
            runtime.block_on(async move {
                let service = Service::new(name, version, config);
                let tokens = (service.health().clone(), service.shutdown_token(), service.drain_now_token());
                match build(service, loaded.into_value()).await {
                    Err(error) => {
                        let _ = started.send(Err(Error::Build(error.to_string())));
                    }
                    Ok(service) => {
                        let _ = started.send(Ok(tokens));
                        let _ = ended.send(service.run().await.map_err(|e| e.to_string()));
                    }
                }
            });
        })?;
        let (health, shutdown, drain_now) = ready.await.map_err(|_| Error::Build("the builder panicked".into()))??;
        let http = reqwest::Client::new();
        let mut test = TestService {
            api: Client { base: format!("http://{api}"), http: http.clone() },
            admin: Client { base: format!("http://{admin}"), http },
            api_addr: api,
            admin_addr: admin,
            health,
            shutdown,
            drain_now,
            done: Some(done),
            capture,
            wait,
        };
        test.wait_ready(self.ready_within).await?;
        Ok(test)
    }
}

/// The user's service, started in this process by [`TestService::builder`]:
/// clients for its API and admin ports, its captured log lines and metrics,
/// and a shutdown that says whether the drain was clean. Dropped without
/// [`shutdown`](Self::shutdown), it starts a shutdown it does not wait for.
///
/// ```no_run
/// # #[derive(serde::Deserialize)] struct Settings {}
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use chassis_testkit::TestService;
///
/// let service = TestService::builder(chassis_config::Loader::new("APP").no_dir())
///     .name("billing", "1.4.2")
///     .start(|mut service: chassis_service::Service, _settings: Settings| async move {
///         service.router(axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" })));
///         Ok::<_, std::convert::Infallible>(service)
///     })
///     .await?;
/// assert_eq!(service.api().get("/hello").send().await?.text().await?, "hi");
/// let metrics = service.metrics().await?;
/// assert!(metrics.counter("http_server_request_duration_seconds_count", &[("http_route", "/hello")]).is_some());
/// let line = service.wait_for_log(|l| l["message"] == "request").await;
/// assert!(line.is_some());
/// service.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestService {
    api: Client,
    admin: Client,
    api_addr: SocketAddr,
    admin_addr: SocketAddr,
    health: Health,
    shutdown: CancellationToken,
    drain_now: CancellationToken,
    done: Option<tokio::sync::oneshot::Receiver<std::result::Result<(), String>>>,
    capture: Capture,
    wait: Duration,
}

impl TestService {
    /// A builder over `loader`: the same loader `main` uses
    /// (`Loader::new("APP")`, its directory, requirements and checks), so the
    /// test reads the service's own `config/` files.
    pub fn builder(loader: Loader) -> TestServiceBuilder {
        TestServiceBuilder {
            loader,
            env: Vec::new(),
            overrides: Vec::new(),
            name: "app".into(),
            version: "0.0.0".into(),
            ready_within: Duration::from_secs(30),
        }
    }

    /// A client for the API, at `http://127.0.0.1:<port>`.
    pub fn api(&self) -> &Client {
        &self.api
    }

    /// A client for the admin server (`/livez`, `/readyz`, `/startupz`, `/metrics`, `/info`).
    pub fn admin(&self) -> &Client {
        &self.admin
    }

    /// The API's address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The admin server's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The log lines the service wrote so far (its runtime's threads, as
    /// JSON), with ways to look for one.
    pub fn logs(&self) -> Logs {
        self.capture.lines_since(0)
    }

    /// Waits up to 5 s for a log line `predicate` accepts (lines are written
    /// as requests and tasks end, a moment after their response).
    pub async fn wait_for_log(&self, mut predicate: impl FnMut(&Line) -> bool) -> Option<Line> {
        for _ in 0..250 {
            if let Some(line) = self.logs().find(&mut predicate) {
                return Some(line.clone());
            }
            tokio::time::sleep(POLL).await;
        }
        None
    }

    /// Scrapes `/metrics`.
    ///
    /// # Errors
    /// [`Error::Http`] when the admin server does not answer.
    pub async fn metrics(&self) -> Result<Metrics> {
        let text = self.admin.get("/metrics").send().await?.error_for_status()?.text().await?;
        Ok(Metrics::parse(&text))
    }

    /// Shuts the service down as SIGTERM would and waits for the drain; `Ok`
    /// only if it was clean: `run` returned `Ok`, the phase is `stopped`, no
    /// component panicked or outlived the shutdown deadline, all within the
    /// drain delay and shutdown deadline (plus 10 s).
    ///
    /// # Errors
    /// [`Error::UncleanDrain`] saying what was not clean.
    pub async fn shutdown(mut self) -> Result<()> {
        self.shutdown.cancel();
        self.drain_now.cancel();
        let Some(done) = self.done.take() else { return Ok(()) };
        match tokio::time::timeout(self.wait, done).await {
            Err(_) => return Err(Error::UncleanDrain(format!("still running after {} s", self.wait.as_secs()))),
            Ok(Err(_)) => return Err(Error::UncleanDrain("the service's runtime stopped without an end".into())),
            Ok(Ok(Err(error))) => return Err(Error::UncleanDrain(format!("run returned an error: {error}"))),
            Ok(Ok(Ok(()))) => {}
        }
        if self.health.phase() != Phase::Stopped {
            return Err(Error::UncleanDrain(format!("the phase is {:?}, not stopped", self.health.phase())));
        }
        let logs = self.logs();
        let unclean =
            logs.find(|l| l.get("message").and_then(serde_json::Value::as_str).is_some_and(|m| UNCLEAN.contains(&m)));
        match unclean {
            Some(line) => Err(Error::UncleanDrain(serde_json::Value::Object(line.clone()).to_string())),
            None => Ok(()),
        }
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let mut last = String::from("no answer yet");
        let rounds = within.as_millis() / POLL.as_millis();
        for _ in 0..=rounds {
            if let Some(done) = &mut self.done {
                match done.try_recv() {
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
                    Ok(Err(error)) => return Err(Error::NotReady { secs: within.as_secs(), last: error }),
                    _ => return Err(Error::NotReady { secs: within.as_secs(), last: "the service stopped".into() }),
                }
            }
            match self.admin.get("/readyz").send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last = format!("{} {}", response.status(), response.text().await.unwrap_or_default()),
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(POLL).await;
        }
        Err(Error::NotReady { secs: within.as_secs(), last })
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        if self.done.is_some() {
            self.shutdown.cancel();
            self.drain_now.cancel();
        }
    }
}

/// An HTTP client for one of the service's ports: paths are joined to its base URL.
///
/// ```no_run
/// # async fn example(service: &chassis_testkit::TestService) -> Result<(), reqwest::Error> {
/// let job: serde_json::Value =
///     service.api().post("/jobs").json(&serde_json::json!({"items": 3})).send().await?.json().await?;
/// let ready = service.admin().get("/readyz").send().await?.status();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// `http://127.0.0.1:<port>` followed by `path` (`"/jobs"`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with any method.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// A `GET`.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    /// A `POST`.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }

    /// A `PUT`.
    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.put(self.url(path))
    }

    /// A `DELETE`.
    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.url(path))
    }
}
