//! The moto harness.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use chassis_tasks::{CreateOptions, SqsQueue};

/// A running `moto_server`; killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Self {
        // A free loopback port: bind, read it, release it.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}). The SQS tests need it on PATH: \
                     pip install 'moto[server]' (scripts/test does this)"
                )
            });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not listen on {addr} within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, endpoint: format!("http://{addr}") }
    }

    pub fn client(&self) -> Client {
        client_for(&self.endpoint)
    }

    pub async fn queue(&self, name: &str, options: &CreateOptions) -> SqsQueue {
        SqsQueue::create(self.client(), name, options).await.unwrap()
    }
}

/// An SQS client for the emulator at `endpoint`, with dummy credentials.
pub fn client_for(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        // What `aws_config::defaults` (and so `SqsQueue::client`) sets: a bare
        // builder would disable the SDK's retries, hiding their delays from tests.
        .retry_config(RetryConfig::standard());
    Client::from_conf(SqsQueue::tune(config, Duration::from_secs(20)).build())
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
