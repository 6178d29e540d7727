//! [`SqsQueue`]: the AWS SQS backend (`sqs` feature).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

use crate::config::Config;
use crate::queue::{
    EntryResult, MAX_BATCH, MAX_BATCH_BYTES, MAX_DELAY, MAX_VISIBILITY, MAX_WAIT, Message, Outgoing, Queue,
    QueueAttributes, QueueError,
};

/// A queue on AWS SQS (or an emulator speaking its JSON protocol). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    /// Opened by [`SqsQueue::create`]: siblings are created when missing too.
    creates: bool,
}

/// How a missing queue is created ([`SqsQueue::create`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateOptions {
    /// The queue's default visibility timeout.
    pub visibility_timeout: Option<Duration>,
    /// The queue's default long-poll wait.
    pub wait_time: Option<Duration>,
    /// Redrive to this dead-letter queue (by URL) after `max_receive_count` receives.
    pub redrive: Option<(String, u32)>,
    /// A FIFO queue (its name must end in `.fifo`).
    pub fifo: bool,
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    error: &SdkError<E, R>,
) -> QueueError {
    let code = error.code().unwrap_or_default();
    let message = match error.message() {
        Some(m) => format!("{code}: {m}"),
        None => format!("{code} {}", aws_sdk_sqs::error::DisplayErrorContext(error)),
    };
    match error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            QueueError::Transient(message)
        }
        _ if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") => {
            QueueError::NoSuchQueue(message)
        }
        _ if code.contains("ReceiptHandleIsInvalid") || code.contains("MessageNotInflight") => {
            QueueError::InvalidReceipt
        }
        _ if code.contains("Throttl") || code.contains("RequestThrottled") || code.contains("ServiceUnavailable") => {
            QueueError::Transient(message)
        }
        _ if code.contains("InternalError") || code.contains("InternalFailure") => QueueError::Transient(message),
        _ if code.contains("InvalidParameter") || code.contains("TooLong") || code.contains("BatchEntry") => {
            QueueError::Invalid(message)
        }
        _ => QueueError::Other(message),
    }
}

/// Whole seconds, rounded up: SQS counts delays, waits and visibility in
/// seconds, and a sub-second wait must not become 0 (immediately visible).
fn secs(d: Duration) -> i32 {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(whole).unwrap_or(i32::MAX)
}

impl SqsQueue {
    /// A client from the standard AWS chain (region, credentials), with the
    /// config's region and endpoint overrides, and an HTTP attempt timeout that
    /// exceeds the long-poll wait (a known cause of hung pollers otherwise).
    pub async fn client(config: &Config) -> Client {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        Client::from_conf(Self::tune(aws_sdk_sqs::config::Builder::from(&sdk), config.wait()).build())
    }

    /// Sets the timeouts the worker needs on an SQS client config builder.
    pub fn tune(builder: aws_sdk_sqs::config::Builder, wait: Duration) -> aws_sdk_sqs::config::Builder {
        let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(wait + Duration::from_secs(10))
            .build();
        builder.timeout_config(timeouts)
    }

    /// The queue at `url`.
    pub fn from_url(client: Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into(), creates: false }
    }

    /// The queue named `name`.
    ///
    /// # Errors
    /// [`QueueError::NoSuchQueue`], or the transport's error.
    pub async fn open(client: Client, name: &str) -> Result<Self, QueueError> {
        let out = client.get_queue_url().queue_name(name).send().await.map_err(|e| classify(&e))?;
        let url = out.queue_url().ok_or_else(|| QueueError::NoSuchQueue(name.to_owned()))?.to_owned();
        Ok(Self { client, url, creates: false })
    }

    /// The queue named `name`: an existing queue is joined as it is — created
    /// by another service (the Python original creates its pools with a
    /// visibility timeout of 120 s), by another instance, or earlier — and a
    /// missing one is created with `options`. An attribute of an existing
    /// queue that differs from `options` is logged as a WARN naming it (the
    /// queue keeps its own; the worker passes its visibility timeout and wait
    /// on every receive anyway). Two instances creating the queue at once both
    /// end up with it.
    ///
    /// # Errors
    /// The transport's or the service's error.
    pub async fn create(client: Client, name: &str, options: &CreateOptions) -> Result<Self, QueueError> {
        match Self::open(client.clone(), name).await {
            Ok(mut queue) => {
                queue.creates = true;
                queue.warn_on_differences(name, options).await;
                return Ok(queue);
            }
            Err(QueueError::NoSuchQueue(_)) => {}
            Err(other) => return Err(other),
        }
        match Self::create_missing(client.clone(), name, options).await {
            Ok(queue) => Ok(queue),
            // Created meanwhile by another instance, with other attributes.
            Err(QueueError::Other(text)) if text.contains("QueueAlreadyExists") || text.contains("QueueNameExists") => {
                let mut queue = Self::open(client, name).await?;
                queue.creates = true;
                queue.warn_on_differences(name, options).await;
                Ok(queue)
            }
            Err(other) => Err(other),
        }
    }

    /// Logs each attribute of the existing queue that differs from `options`.
    async fn warn_on_differences(&self, name: &str, options: &CreateOptions) {
        match self.raw_attributes().await {
            Ok(existing) => {
                for (attribute, wanted, found) in differences(options, &existing) {
                    tracing::warn!(
                        queue = name,
                        attribute,
                        configured = %wanted,
                        existing = %found,
                        "the existing queue's attribute differs from the configuration; the queue keeps its own"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, queue = name, "could not read the existing queue's attributes"),
        }
    }

    async fn raw_attributes(&self) -> Result<HashMap<QueueAttributeName, String>, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out.attributes().cloned().unwrap_or_default())
    }

    async fn create_missing(client: Client, name: &str, options: &CreateOptions) -> Result<Self, QueueError> {
        let mut request = client.create_queue().queue_name(name);
        if let Some(v) = options.visibility_timeout {
            request = request.attributes(QueueAttributeName::VisibilityTimeout, secs(v).to_string());
        }
        if let Some(w) = options.wait_time {
            request = request.attributes(QueueAttributeName::ReceiveMessageWaitTimeSeconds, secs(w).to_string());
        }
        if options.fifo {
            request = request.attributes(QueueAttributeName::FifoQueue, "true");
        }
        if let Some((dead_letter_url, max_receives)) = &options.redrive {
            let arn = client
                .get_queue_attributes()
                .queue_url(dead_letter_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| classify(&e))?
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .ok_or_else(|| QueueError::NoSuchQueue(dead_letter_url.clone()))?;
            let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives.to_string()});
            request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let out = request.send().await.map_err(|e| classify(&e))?;
        let url = out.queue_url().ok_or_else(|| QueueError::NoSuchQueue(name.to_owned()))?.to_owned();
        Ok(Self { client, url, creates: true })
    }

    /// The configured pool: by `queue_url` if set, else by `task_pool`'s name,
    /// joined if it exists and created if missing when `create_queue` is set
    /// (with the configured visibility timeout and wait time; see
    /// [`create`](Self::create)).
    ///
    /// # Errors
    /// [`QueueError::NoSuchQueue`], or the transport's or the service's error.
    pub async fn from_config(config: &Config) -> Result<Self, QueueError> {
        let client = Self::client(config).await;
        if let Some(url) = &config.queue_url {
            return Ok(Self::from_url(client, url.clone()));
        }
        if config.create_queue {
            let options = CreateOptions {
                visibility_timeout: Some(config.visibility()),
                wait_time: Some(config.wait()),
                fifo: config.task_pool.ends_with(".fifo"),
                redrive: None,
            };
            return Self::create(client, &config.task_pool, &options).await;
        }
        Self::open(client, &config.task_pool).await
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SDK client.
    pub fn sdk(&self) -> &Client {
        &self.client
    }
}

/// The attributes `options` sets that the existing queue has otherwise:
/// `(attribute, configured, existing)`.
fn differences(
    options: &CreateOptions,
    existing: &HashMap<QueueAttributeName, String>,
) -> Vec<(&'static str, String, String)> {
    let found = |name: &QueueAttributeName| existing.get(name).cloned().unwrap_or_default();
    let mut out = Vec::new();
    let mut compare = |label: &'static str, name: QueueAttributeName, wanted: String| {
        let have = found(&name);
        if have != wanted {
            out.push((label, wanted, have));
        }
    };
    if let Some(v) = options.visibility_timeout {
        compare("VisibilityTimeout", QueueAttributeName::VisibilityTimeout, secs(v).to_string());
    }
    if let Some(w) = options.wait_time {
        compare(
            "ReceiveMessageWaitTimeSeconds",
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            secs(w).to_string(),
        );
    }
    let fifo = existing.get(&QueueAttributeName::FifoQueue).is_some_and(|v| v == "true");
    if fifo != options.fifo {
        out.push(("FifoQueue", options.fifo.to_string(), fifo.to_string()));
    }
    if let Some((_, max_receives)) = &options.redrive {
        let policy: Option<serde_json::Value> =
            existing.get(&QueueAttributeName::RedrivePolicy).and_then(|p| serde_json::from_str(p).ok());
        let have = policy.as_ref().and_then(|p| p.get("maxReceiveCount")).map(|c| match c {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        if have.as_deref() != Some(max_receives.to_string().as_str()) {
            out.push(("RedrivePolicy.maxReceiveCount", max_receives.to_string(), have.unwrap_or_default()));
        }
    }
    out
}

fn attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Invalid(e.to_string()))
}

fn check(message: &Outgoing) -> Result<(), QueueError> {
    if message.delay > MAX_DELAY {
        return Err(QueueError::Invalid(format!("delay of {:?} exceeds 15 minutes", message.delay)));
    }
    Ok(())
}

impl Queue for SqsQueue {
    async fn send(&self, message: Outgoing) -> Result<String, QueueError> {
        check(&message)?;
        let mut request = self.client.send_message().queue_url(&self.url).message_body(message.body);
        if !message.delay.is_zero() {
            request = request.delay_seconds(secs(message.delay));
        }
        for (key, value) in &message.attributes {
            request = request.message_attributes(key, attribute(value)?);
        }
        if let Some(group) = message.group_id {
            request = request.message_group_id(group);
        }
        if let Some(dedup) = message.dedup_id {
            request = request.message_deduplication_id(dedup);
        }
        let out = request.send().await.map_err(|e| classify(&e))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }

    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<Vec<EntryResult<String>>, QueueError> {
        if messages.len() > MAX_BATCH {
            return Err(QueueError::Invalid(format!("{} entries in one batch; at most 10", messages.len())));
        }
        let size: usize = messages.iter().map(Outgoing::size).sum();
        if size > MAX_BATCH_BYTES {
            return Err(QueueError::BatchTooLarge { size, max: MAX_BATCH_BYTES });
        }
        let mut results: Vec<EntryResult<String>> = vec![Err(QueueError::Other("no result".into())); messages.len()];
        let mut request = self.client.send_message_batch().queue_url(&self.url);
        let mut any = false;
        for (i, message) in messages.into_iter().enumerate() {
            if let Err(e) = check(&message) {
                results[i] = Err(e);
                continue;
            }
            let mut entry = SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(message.body);
            if !message.delay.is_zero() {
                entry = entry.delay_seconds(secs(message.delay));
            }
            for (key, value) in &message.attributes {
                entry = entry.message_attributes(key, attribute(value)?);
            }
            if let Some(group) = message.group_id {
                entry = entry.message_group_id(group);
            }
            if let Some(dedup) = message.dedup_id {
                entry = entry.message_deduplication_id(dedup);
            }
            request = request.entries(entry.build().map_err(|e| QueueError::Invalid(e.to_string()))?);
            any = true;
        }
        if !any {
            return Ok(results);
        }
        let out = request.send().await.map_err(|e| match classify(&e) {
            // The queue's own limit is below 1 MiB.
            QueueError::Invalid(text) if text.contains("BatchRequestTooLong") => {
                QueueError::BatchTooLarge { size, max: size.saturating_sub(1) }
            }
            other => other,
        })?;
        for ok in out.successful() {
            if let Some(slot) = ok.id().parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *slot = Ok(ok.message_id().to_owned());
            }
        }
        for failed in out.failed() {
            if let Some(slot) = failed.id().parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                let text = format!("{}: {}", failed.code(), failed.message().unwrap_or_default());
                *slot =
                    Err(if failed.sender_fault() { QueueError::Invalid(text) } else { QueueError::Transient(text) });
            }
        }
        Ok(results)
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Message>, QueueError> {
        if !(1..=MAX_BATCH).contains(&max) || wait > MAX_WAIT || visibility > MAX_VISIBILITY {
            return Err(QueueError::Invalid("receive: 1 to 10 messages, wait ≤ 20 s, visibility ≤ 12 h".into()));
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(secs(wait))
            .visibility_timeout(secs(visibility))
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| {
                let system: &HashMap<MessageSystemAttributeName, String> = match m.attributes() {
                    Some(a) => a,
                    None => &HashMap::new(),
                };
                let attributes: BTreeMap<String, String> = m
                    .message_attributes()
                    .map(|a| {
                        a.iter().filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_owned()))).collect()
                    })
                    .unwrap_or_default();
                Message {
                    id: m.message_id().unwrap_or_default().to_owned(),
                    receipt: m.receipt_handle().unwrap_or_default().to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    attributes,
                    receive_count: system
                        .get(&MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1),
                    group_id: system.get(&MessageSystemAttributeName::MessageGroupId).cloned(),
                }
            })
            .collect())
    }

    async fn delete_batch(&self, receipts: Vec<String>) -> Result<Vec<EntryResult<()>>, QueueError> {
        if receipts.len() > MAX_BATCH {
            return Err(QueueError::Invalid(format!("{} entries in one batch; at most 10", receipts.len())));
        }
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = self.client.delete_message_batch().queue_url(&self.url);
        for (i, receipt) in receipts.iter().enumerate() {
            let entry = DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(receipt).build();
            request = request.entries(entry.map_err(|e| QueueError::Invalid(e.to_string()))?);
        }
        let out = request.send().await.map_err(|e| classify(&e))?;
        let mut results: Vec<EntryResult<()>> = vec![Ok(()); receipts.len()];
        for failed in out.failed() {
            if let Some(slot) = failed.id().parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *slot = Err(if failed.code().contains("ReceiptHandle") {
                    QueueError::InvalidReceipt
                } else {
                    QueueError::Other(format!("{}: {}", failed.code(), failed.message().unwrap_or_default()))
                });
            }
        }
        Ok(results)
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        if timeout > MAX_VISIBILITY {
            return Err(QueueError::Invalid(format!("visibility of {timeout:?} exceeds 12 hours")));
        }
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(timeout))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }

    async fn attributes(&self) -> Result<QueueAttributes, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let empty = HashMap::new();
        let a = out.attributes().unwrap_or(&empty);
        let number = |name: QueueAttributeName| a.get(&name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(QueueAttributes {
            visible: number(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: number(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            max_message_size: usize::try_from(number(QueueAttributeName::MaximumMessageSize))
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or(262_144),
            visibility_timeout: Duration::from_secs(number(QueueAttributeName::VisibilityTimeout)),
            fifo: a.get(&QueueAttributeName::FifoQueue).is_some_and(|v| v == "true"),
            oldest_age: None,
        })
    }

    /// The queue `name` in the same account and region; created when missing
    /// if this queue was opened by [`SqsQueue::create`] (`create_queue`).
    async fn sibling(&self, name: &str) -> Result<Self, QueueError> {
        if self.creates {
            let options = CreateOptions { fifo: name.ends_with(".fifo"), ..CreateOptions::default() };
            Self::create(self.client.clone(), name, &options).await
        } else {
            Self::open(self.client.clone(), name).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_second_durations_round_up_not_down_to_zero() {
        assert_eq!(secs(Duration::ZERO), 0);
        assert_eq!(secs(Duration::from_millis(300)), 1);
        assert_eq!(secs(Duration::from_millis(2000)), 2);
        assert_eq!(secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn differing_attributes_are_named() {
        let existing: HashMap<QueueAttributeName, String> = [
            (QueueAttributeName::VisibilityTimeout, "120".to_owned()),
            (QueueAttributeName::ReceiveMessageWaitTimeSeconds, "2".to_owned()),
            (QueueAttributeName::RedrivePolicy, r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":5}"#.to_owned()),
        ]
        .into();
        let same = CreateOptions {
            visibility_timeout: Some(Duration::from_secs(120)),
            wait_time: Some(Duration::from_secs(2)),
            redrive: Some(("url".into(), 5)),
            fifo: false,
        };
        assert!(differences(&same, &existing).is_empty());
        let other = CreateOptions {
            visibility_timeout: Some(Duration::from_secs(30)),
            wait_time: None,
            redrive: Some(("url".into(), 3)),
            fifo: true,
        };
        let found: Vec<_> = differences(&other, &existing).into_iter().map(|(name, _, _)| name).collect();
        assert_eq!(found, ["VisibilityTimeout", "FifoQueue", "RedrivePolicy.maxReceiveCount"]);
    }
}
