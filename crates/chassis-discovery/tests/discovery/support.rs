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
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real etcd on free loopback ports with a temporary data dir, started by
/// the test and killed when dropped.
#[cfg(feature = "etcd")]
pub(crate) struct Etcd {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

#[cfg(feature = "etcd")]
impl Etcd {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut etcd = Self { child: None, dir, client_port: free_port(), peer_port: free_port() };
        etcd.restart().await;
        etcd
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Kills etcd (SIGKILL) and waits for it to exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd (again, on the same ports and data) and waits until it answers.
    pub(crate) async fn restart(&mut self) {
        self.stop();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).unwrap();
        let spawned = std::process::Command::new("etcd")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args([
                "--name",
                "test",
                "--listen-client-urls",
                &self.endpoint(),
                "--advertise-client-urls",
                &self.endpoint(),
            ])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}"), "--log-level", "warn"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn();
        match spawned {
            Ok(child) => self.child = Some(child),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`etcd` is not installed: these tests start a real etcd. Install Debian's etcd-server \
                 (apt-get install -y etcd-server) or put etcd v3.4+ on PATH; scripts/test installs it"
            ),
            Err(e) => panic!("cannot start etcd: {e}"),
        }
        let http = reqwest::Client::new();
        for _ in 0..200 {
            let health = http.get(format!("{}/health", self.endpoint())).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        panic!("etcd did not become healthy within 10 s; its log:\n{log}");
    }
}

#[cfg(feature = "etcd")]
impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
