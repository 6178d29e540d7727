//! Shared fixtures: HTTP instances that count their hits, etcd, free ports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chassis_testkit::{FakeUpstream, Reply};

/// An HTTP instance on a free loopback port (chassis-testkit's
/// `FakeUpstream`): `GET|POST /hit` answers its name (or 500 once failing)
/// after `delay`. Stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    name: String,
    delay: Duration,
    server: Arc<FakeUpstream>,
}

impl Upstream {
    pub(crate) async fn start(name: &str, delay: Duration) -> Self {
        let server = Arc::new(FakeUpstream::start().await.unwrap());
        let up = Self { addr: server.addr(), name: name.to_owned(), delay, server };
        up.answer(200);
        up
    }

    fn answer(&self, status: u16) {
        self.server.route("*", "/hit", [Reply::status(status).body(self.name.clone()).delay(self.delay)]);
    }

    /// From now on, answers 500.
    pub(crate) fn fail(&self) {
        self.answer(500);
    }

    pub(crate) fn hits(&self) -> usize {
        self.server.hits("/hit")
    }
}

/// A loopback address nothing listens on.
pub(crate) async fn dead_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A free loopback port (bound, read, released).
#[cfg(any(feature = "etcd", feature = "dns"))]
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
