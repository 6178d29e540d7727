//! [`Queue`]: what a task backend must do — SQS's semantics.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Outgoing {
    /// The body.
    pub body: String,
    /// String message attributes.
    pub attributes: BTreeMap<String, String>,
    /// Hidden for this long after sending (SQS allows up to 15 minutes).
    pub delay: Duration,
    /// FIFO queues: the message group.
    pub group_id: Option<String>,
    /// FIFO queues: the deduplication id.
    pub dedup_id: Option<String>,
}

impl Outgoing {
    /// A message with `body` and nothing else.
    pub fn new(body: impl Into<String>) -> Self {
        Self { body: body.into(), ..Self::default() }
    }

    /// Sets the attributes.
    #[must_use]
    pub fn attributes(mut self, attributes: BTreeMap<String, String>) -> Self {
        self.attributes = attributes;
        self
    }

    /// Sets the delay.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the FIFO group and deduplication ids.
    #[must_use]
    pub fn fifo(mut self, group_id: impl Into<String>, dedup_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self.dedup_id = Some(dedup_id.into());
        self
    }

    /// The size SQS counts against `MaximumMessageSize`: the body plus each
    /// attribute's name, type (`String`) and value.
    pub fn size(&self) -> usize {
        self.body.len() + self.attributes.iter().map(|(k, v)| k.len() + "String".len() + v.len()).sum::<usize>()
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The message id.
    pub id: String,
    /// The receipt handle of this receive: delete and change visibility with it.
    pub receipt: String,
    /// The body.
    pub body: String,
    /// String message attributes.
    pub attributes: BTreeMap<String, String>,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    /// FIFO queues: the message group.
    pub group_id: Option<String>,
}

impl Message {
    /// A message with `body`, for tests of code that handles messages.
    pub fn for_test(body: &str) -> Self {
        Self {
            id: "test".into(),
            receipt: "test".into(),
            body: body.into(),
            attributes: BTreeMap::new(),
            receive_count: 1,
            group_id: None,
        }
    }
}

/// What a queue says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueueAttributes {
    /// Messages available to receive.
    pub visible: u64,
    /// Messages received and not yet deleted or visible again.
    pub in_flight: u64,
    /// Messages sent with a delay that has not passed.
    pub delayed: u64,
    /// The largest message the queue accepts, in bytes.
    pub max_message_size: usize,
    /// The queue's default visibility timeout.
    pub visibility_timeout: Duration,
    /// Whether it is a FIFO queue.
    pub fifo: bool,
    /// How long the oldest message waiting to be received has been in the
    /// queue, where the backend can tell (the SQL queues; SQS reports it only
    /// as a CloudWatch metric). `None` when nothing waits or it cannot tell.
    pub oldest_age: Option<Duration>,
}

/// A queue error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue does not exist.
    #[error("queue {0} does not exist")]
    NoSuchQueue(String),
    /// A receipt handle that no longer designates a received message.
    #[error("receipt handle is invalid or expired")]
    InvalidReceipt,
    /// The message is larger than the queue accepts.
    #[error("message of {size} bytes exceeds the queue's maximum of {max} bytes")]
    TooLarge {
        /// The message's size.
        size: usize,
        /// The queue's limit.
        max: usize,
    },
    /// The entries of one batch call together exceed the queue's batch payload
    /// limit ([`batch_payload_limit`]); nothing of the batch was sent.
    #[error("a batch of {size} bytes exceeds the queue's batch limit of {max} bytes")]
    BatchTooLarge {
        /// The sum of the entries' sizes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A value SQS rejects (delay over 15 minutes, visibility over 12 hours, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Throttling, a 5xx, a lost connection: worth retrying.
    #[error("transient queue error: {0}")]
    Transient(String),
    /// Anything else the backend reported.
    #[error("queue error: {0}")]
    Other(String),
}

impl QueueError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// The outcome of one entry of a batch call.
pub type EntryResult<T> = Result<T, QueueError>;

/// SQS allows at most 10 entries per batch call.
pub const MAX_BATCH: usize = 10;
/// SQS's largest message and largest batch payload: 1 MiB (1 048 576 bytes,
/// since August 2025; 256 KiB before).
pub const MAX_BATCH_BYTES: usize = 1_048_576;

/// The most bytes one batch send may carry in all, for a queue whose
/// `MaximumMessageSize` is `max_message_size`: SQS counts the sum of the
/// entries' sizes (body and attributes, as [`Outgoing::size`]) against the same
/// limit as one message, at least 256 KiB and at most [`MAX_BATCH_BYTES`].
pub fn batch_payload_limit(max_message_size: usize) -> usize {
    max_message_size.clamp(262_144, MAX_BATCH_BYTES)
}

/// SQS's longest delay: 15 minutes.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SQS's longest visibility timeout: 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// SQS's longest long-poll wait: 20 seconds.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// A task queue with SQS's semantics: messages are received with a visibility
/// timeout and a receipt handle, and come back unless deleted in time.
///
/// Batch calls return one result per entry, in order: partial failures are
/// the caller's to see and handle.
pub trait Queue: Send + Sync + 'static {
    /// Whether a `receive` future may be dropped before it completes without
    /// losing messages to their visibility timeout. SQS's may not (the service
    /// may already have handed the messages out), so a stopping worker lets a
    /// receive in progress finish — usually within the long-poll wait — but
    /// never past its shutdown deadline: a receive that hangs (a connection
    /// that never answers) is abandoned then, and any messages it received
    /// come back after their visibility timeout. A cancel-safe receive is
    /// dropped as soon as the stop begins. Default: `false`.
    const CANCEL_SAFE_RECEIVE: bool = false;

    /// Sends one message; returns its id.
    fn send(&self, message: Outgoing) -> impl Future<Output = Result<String, QueueError>> + Send;

    /// Sends up to [`MAX_BATCH`] messages.
    fn send_batch(
        &self,
        messages: Vec<Outgoing>,
    ) -> impl Future<Output = Result<Vec<EntryResult<String>>, QueueError>> + Send;

    /// Receives up to `max` (≤ 10) messages, waiting up to `wait` (≤ 20 s) for
    /// one to arrive, and hides them for `visibility`.
    fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Message>, QueueError>> + Send;

    /// Deletes up to [`MAX_BATCH`] received messages by receipt handle.
    fn delete_batch(
        &self,
        receipts: Vec<String>,
    ) -> impl Future<Output = Result<Vec<EntryResult<()>>, QueueError>> + Send;

    /// Hides a received message for `timeout` from now (0 makes it visible now).
    fn change_visibility(
        &self,
        receipt: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// The queue's attributes and approximate depth.
    fn attributes(&self) -> impl Future<Output = Result<QueueAttributes, QueueError>> + Send;

    /// Another queue of the same backend, by name: what a worker opens for
    /// `tasks.dead_letter_queue`. SQS opens the queue of that name in the same
    /// account and region (creating it when the queue was configured with
    /// `create_queue`); the memory queue returns the queue of that name among
    /// the queues built from the same root (created on first use).
    ///
    /// # Errors
    /// [`QueueError::NoSuchQueue`], or the backend's error. The default
    /// implementation says the backend cannot open queues by name.
    fn sibling(&self, name: &str) -> impl Future<Output = Result<Self, QueueError>> + Send
    where
        Self: Sized,
    {
        let name = name.to_owned();
        async move { Err(QueueError::Invalid(format!("this backend cannot open queue `{name}` by name"))) }
    }
}
