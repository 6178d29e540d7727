//! The moto harness.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use chassis_tasks::{CreateOptions, SqsQueue};

/// A running `moto_server` (chassis-testkit's fixture); killed on drop.
pub struct Moto {
    _server: chassis_testkit::Moto,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Self {
        let server = chassis_testkit::Moto::start().unwrap_or_else(|e| panic!("cannot start moto_server: {e}"));
        let endpoint = server.endpoint().to_owned();
        Self { _server: server, endpoint }
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
