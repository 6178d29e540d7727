//! Shared fixtures: small axum instances that count their hits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;

/// An HTTP instance on a free loopback port: `GET|POST /hit` answers its name
/// (or 500 once `failing` is set) after `delay`.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) hits: Arc<AtomicUsize>,
    pub(crate) failing: Arc<AtomicBool>,
}

impl Upstream {
    pub(crate) async fn start(name: &str, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let (h, f, n) = (hits.clone(), failing.clone(), name.to_owned());
        let handler = move || {
            let (h, f, n) = (h.clone(), f.clone(), n.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                if f.load(Ordering::SeqCst) { (StatusCode::INTERNAL_SERVER_ERROR, n) } else { (StatusCode::OK, n) }
            }
        };
        let app = axum::Router::new().route("/hit", axum::routing::get(handler.clone()).post(handler));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, hits, failing }
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A loopback address nothing listens on.
pub(crate) async fn dead_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A free loopback port (bound, read, released).
pub(crate) fn free_port() -> u16 {
    chassis_testkit::free_addr().unwrap().port()
}

/// A real etcd on free loopback ports with a temporary data dir, started by
/// the test and killed when dropped (chassis-testkit's fixture).
#[cfg(feature = "etcd")]
pub(crate) struct Etcd(chassis_testkit::Etcd);

#[cfg(feature = "etcd")]
impl Etcd {
    pub(crate) async fn start() -> Self {
        Self(chassis_testkit::Etcd::start().await.unwrap_or_else(|e| panic!("{e}")))
    }

    pub(crate) fn endpoint(&self) -> String {
        self.0.endpoint()
    }

    /// Kills etcd (SIGKILL) and waits for it to exit.
    pub(crate) fn stop(&mut self) {
        self.0.stop();
    }

    /// Starts etcd (again, on the same ports and data) and waits until it answers.
    pub(crate) async fn restart(&mut self) {
        self.0.restart().await.unwrap_or_else(|e| panic!("{e}"));
    }
}
