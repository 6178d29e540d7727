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
