//! What the durable SQL queues share: options, receipts, the row format.
//!
//! A queue is the rows of one table (`<prefix>tasks`) with its name in the
//! `queue` column, so one database holds a service's queue, its dead-letter
//! queue and other services' queues side by side. A message is one row: body,
//! attributes (a JSON object of strings), FIFO group, `visible_at` (ms since
//! the Unix epoch) and `receive_count`. A receive sets `visible_at` to now plus
//! the visibility timeout and increments `receive_count`; a delete deletes the
//! row, so finished tasks leave nothing behind and a claim scans only the
//! index range of rows visible now.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::queue::{Outgoing, QueueError};

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// How long a FIFO queue remembers deduplication ids (SQS: 5 minutes).
pub(crate) const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Settings of a durable SQL queue ([`SqliteQueue`](crate::SqliteQueue),
/// [`PostgresQueue`](crate::PostgresQueue)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqlQueueOptions {
    /// Prefix of the table names (letters, digits, `_`), so services can share
    /// a database. Default: `chassis_`.
    pub table_prefix: String,
    /// The largest message accepted, in bytes (body and attributes, as
    /// [`Outgoing::size`]). Default: 262 144 (SQS's default).
    pub max_message_size: usize,
    /// The default visibility timeout reported in the attributes. Default: 30 s.
    pub visibility_timeout: Duration,
    /// How often a long-polling receive looks for messages that no wake-up
    /// announced (sent by another process on SQLite; a lost notification on
    /// PostgreSQL). Default: 100 ms on SQLite, 1 s on PostgreSQL.
    pub poll_interval: Duration,
    /// SQS's redrive policy: a message received this many times is moved to
    /// the named queue (of the same database and prefix) instead of being
    /// delivered again. Default: none.
    pub redrive: Option<(String, u32)>,
}

impl SqlQueueOptions {
    pub(crate) fn with_poll_interval(poll_interval: Duration) -> Self {
        Self {
            table_prefix: "chassis_".into(),
            max_message_size: 262_144,
            visibility_timeout: Duration::from_secs(30),
            poll_interval,
            redrive: None,
        }
    }

    /// Sets the table prefix.
    #[must_use]
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// Sets the largest message accepted.
    #[must_use]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets the poll interval.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Moves a message to `dead_letter` once it has been received
    /// `max_receive_count` times.
    #[must_use]
    pub fn redrive(mut self, dead_letter: impl Into<String>, max_receive_count: u32) -> Self {
        self.redrive = Some((dead_letter.into(), max_receive_count.max(1)));
        self
    }

    pub(crate) fn check_prefix(&self) -> Result<(), QueueError> {
        if self.table_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Ok(())
        } else {
            Err(QueueError::Invalid(format!(
                "table prefix {:?} may hold only letters, digits and `_`",
                self.table_prefix
            )))
        }
    }
}

/// A queue whose sends can join the caller's database transaction: the
/// messages exist exactly when the caller's other writes do (the outbox
/// pattern without an outbox). [`Producer::send_in`](crate::Producer::send_in)
/// sends tasks this way.
pub trait TransactionalQueue: crate::queue::Queue {
    /// The connection a transaction runs on (`SqliteConnection`, `PgConnection`;
    /// a `sqlx::Transaction` dereferences to it).
    type Connection: Send;

    /// Writes `messages` on `conn`; each one's id or error, in order.
    ///
    /// # Errors
    /// Per entry: the message's own; as a whole: the database's.
    fn send_in(
        &self,
        conn: &mut Self::Connection,
        messages: Vec<Outgoing>,
    ) -> impl Future<Output = Result<Vec<crate::queue::EntryResult<String>>, QueueError>> + Send;
}

/// Wake-ups of long-polling receives in this process, by queue name, shared
/// by the clones and siblings of one opened queue.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wakers(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

impl Wakers {
    pub(crate) fn of(&self, queue: &str) -> Arc<Notify> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(queue.to_owned()).or_default().clone()
    }

    pub(crate) fn wake(&self, queue: &str) {
        let notify = self.0.lock().unwrap_or_else(PoisonError::into_inner).get(queue).cloned();
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}

/// A receipt names one receive of one row: `<id>.<receive count>`.
pub(crate) fn receipt(id: i64, receive_count: i64) -> String {
    format!("{id}.{receive_count}")
}

pub(crate) fn parse_receipt(receipt: &str) -> Result<(i64, i64), QueueError> {
    let (id, count) = receipt.split_once('.').ok_or(QueueError::InvalidReceipt)?;
    Ok((id.parse().map_err(|_| QueueError::InvalidReceipt)?, count.parse().map_err(|_| QueueError::InvalidReceipt)?))
}

pub(crate) fn encode_attributes(attributes: &BTreeMap<String, String>) -> Result<String, QueueError> {
    serde_json::to_string(attributes).map_err(|e| QueueError::Invalid(format!("attributes: {e}")))
}

pub(crate) fn decode_attributes(text: &str) -> BTreeMap<String, String> {
    // Written by `encode_attributes`; a row edited by hand into something else
    // reads as no attributes, which the worker reports as a malformed message.
    serde_json::from_str(text).unwrap_or_default()
}

/// Milliseconds since the Unix epoch, now (SQLite's clock: PostgreSQL uses
/// the server's).
#[cfg(feature = "sqlite")]
pub(crate) fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Checks one message against the queue's rules before it is written.
pub(crate) fn check(message: &Outgoing, max_size: usize, fifo: bool) -> Result<(), QueueError> {
    if message.delay > crate::queue::MAX_DELAY {
        return Err(QueueError::Invalid(format!("delay of {:?} exceeds 15 minutes", message.delay)));
    }
    let size = message.size();
    if size > max_size {
        return Err(QueueError::TooLarge { size, max: max_size });
    }
    if fifo && message.group_id.is_none() {
        return Err(QueueError::Invalid("a FIFO queue needs a message group id".into()));
    }
    if message.body.contains('\0') || message.attributes.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')) {
        return Err(QueueError::Invalid("a message may not contain U+0000 (SQS refuses it too)".into()));
    }
    Ok(())
}

/// Checks a batch call's shape: at most 10 entries and the payload limit.
pub(crate) fn check_batch(messages: &[Outgoing], max_size: usize) -> Result<(), QueueError> {
    if messages.len() > crate::queue::MAX_BATCH {
        return Err(QueueError::Invalid(format!("{} entries in one batch; at most 10", messages.len())));
    }
    let size: usize = messages.iter().map(Outgoing::size).sum();
    let max = crate::queue::batch_payload_limit(max_size);
    if size > max {
        return Err(QueueError::BatchTooLarge { size, max });
    }
    Ok(())
}

/// Checks a receive's arguments: 1 to 10 messages, wait ≤ 20 s, visibility ≤ 12 h.
pub(crate) fn check_receive(max: usize, wait: Duration, visibility: Duration) -> Result<(), QueueError> {
    if !(1..=crate::queue::MAX_BATCH).contains(&max)
        || wait > crate::queue::MAX_WAIT
        || visibility > crate::queue::MAX_VISIBILITY
    {
        return Err(QueueError::Invalid("receive: 1 to 10 messages, wait ≤ 20 s, visibility ≤ 12 h".into()));
    }
    Ok(())
}

/// A long-polling receive: `claim`s until it returns messages or `wait` ends,
/// sleeping in between until a send in this process wakes `queue` or
/// `poll_interval` passes (a send from another process, a lost notification).
pub(crate) async fn long_poll<F, Fut>(
    wakers: &Wakers,
    queue: &str,
    wait: Duration,
    poll_interval: Duration,
    mut claim: F,
) -> Result<Vec<crate::queue::Message>, QueueError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<crate::queue::Message>, QueueError>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let notify = wakers.of(queue);
    loop {
        let woken = notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let messages = claim().await?;
        let now = tokio::time::Instant::now();
        if !messages.is_empty() || now >= deadline {
            return Ok(messages);
        }
        let next = (now + poll_interval).min(deadline);
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

/// Claimed rows (`id`, `body`, `attributes`, `group_id`, `receive_count`) as
/// messages, oldest first (`RETURNING` promises no order).
pub(crate) fn in_order<R: sqlx::Row>(rows: &[R]) -> Result<Vec<crate::queue::Message>, sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let mut messages = rows
        .iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            let receive_count: i64 = row.try_get("receive_count")?;
            let attributes: String = row.try_get("attributes")?;
            Ok((
                id,
                crate::queue::Message {
                    id: id.to_string(),
                    receipt: receipt(id, receive_count),
                    body: row.try_get("body")?,
                    attributes: decode_attributes(&attributes),
                    receive_count: u32::try_from(receive_count).unwrap_or(u32::MAX),
                    group_id: row.try_get("group_id")?,
                },
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    messages.sort_by_key(|(id, _)| *id);
    Ok(messages.into_iter().map(|(_, m)| m).collect())
}

/// Each receipt's delete result: `deleted` are the ids this batch deleted,
/// `still_there` those of the others that still exist (received again since:
/// a stale receipt). A receipt of a row gone already is fine (SQS accepts a
/// repeated delete); one that does not parse is invalid.
pub(crate) fn delete_results(
    parsed: Vec<Option<(i64, i64)>>,
    deleted: &[i64],
    still_there: &[i64],
) -> Vec<crate::queue::EntryResult<()>> {
    parsed
        .into_iter()
        .map(|receipt| match receipt {
            Some((id, _)) if still_there.contains(&id) && !deleted.contains(&id) => Err(QueueError::InvalidReceipt),
            Some(_) => Ok(()),
            None => Err(QueueError::InvalidReceipt),
        })
        .collect()
}

/// A stable 64-bit key for a PostgreSQL advisory lock: FNV-1a of `text`
/// (fixed by its definition, so every version of every instance derives the
/// same key).
#[cfg(feature = "postgres")]
pub(crate) fn lock_key(text: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}
