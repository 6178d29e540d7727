//! A fault-injecting loopback TCP proxy to put in front of moto: while it is
//! down it drops new connections as soon as they are accepted and cuts the
//! ones it carries, so the SDK's pooled keep-alive connections fail too.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A proxy on a free loopback port, forwarding to `target`; stopped on drop.
pub struct Proxy {
    pub endpoint: String,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding to `target` (a loopback `http://host:port` endpoint).
    pub async fn start(target: &str) -> Self {
        let target: SocketAddr = target.trim_start_matches("http://").parse().unwrap();
        assert!(target.ip().is_loopback(), "the proxy only forwards to loopback addresses, not {target}");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (up, _) = watch::channel(true);
        let state = up.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { continue };
                // Down: close it at once (the client sees a reset or an EOF).
                if !*state.borrow() {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(carry(inbound, target, state.subscribe()));
            }
        });
        Self { endpoint, up, task }
    }

    /// Takes the proxy down (`false`) or brings it back up (`true`).
    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// Carries one connection until either side closes it or the proxy goes down.
async fn carry(mut inbound: TcpStream, target: SocketAddr, mut up: watch::Receiver<bool>) {
    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = up.wait_for(|up| !up) => {}
    }
    // Dropping both streams cuts the connection.
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.set_up(false);
    }
}
