//! [`MemoryQueue`]: an embedded queue with SQS's semantics — visibility
//! timeouts, receipt handles, receive counts, delays, dead-letter redrive — so
//! examples and tests run without a server. Time is tokio's, so tests can
//! pause it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::queue::{
    EntryResult, MAX_BATCH, MAX_DELAY, MAX_VISIBILITY, MAX_WAIT, Message, Outgoing, Queue, QueueAttributes, QueueError,
    batch_payload_limit,
};

/// The queues built from one root, by name, for [`Queue::sibling`]. They live
/// as long as any queue of the family (an embedded queue lives as long as the
/// process that uses it).
type Family = Arc<Mutex<HashMap<String, MemoryQueue>>>;

/// How long a FIFO queue remembers deduplication ids (SQS: 5 minutes).
const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// An in-process queue. Cheap to clone: clones share the queue.
#[derive(Clone, Debug)]
pub struct MemoryQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    fifo: bool,
    max_message_size: usize,
    visibility_timeout: Duration,
    redrive: Option<(MemoryQueue, u32)>,
    family: Family,
    next_id: AtomicU64,
    state: Mutex<State>,
    arrived: Notify,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<u64, Entry>,
    /// Visible messages, oldest first.
    ready: VecDeque<u64>,
    /// Hidden messages (delayed or in flight) by when they become visible; an
    /// item whose version is not the entry's current one is stale.
    hidden: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    dedup: HashMap<String, (Instant, u64)>,
}

#[derive(Debug)]
struct Entry {
    /// Shared with the receives under way: a receive copies it into its
    /// `Message` after the lock is released, not while every other caller waits.
    payload: Arc<Payload>,
    group_id: Option<String>,
    receive_count: u32,
    /// Bumped on every receive and visibility change: heap items of an older
    /// version are stale.
    version: u64,
    status: Status,
}

/// What a message carries.
#[derive(Debug)]
struct Payload {
    body: String,
    attributes: std::collections::BTreeMap<String, String>,
}

/// A message taken under the lock, made into a [`Message`] after it.
struct Taken {
    id: u64,
    receive_count: u32,
    payload: Arc<Payload>,
    group_id: Option<String>,
}

impl Taken {
    fn into_message(self) -> Message {
        Message {
            id: self.id.to_string(),
            receipt: receipt(self.id, self.receive_count),
            body: self.payload.body.clone(),
            attributes: self.payload.attributes.clone(),
            receive_count: self.receive_count,
            group_id: self.group_id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ready,
    Delayed,
    InFlight,
}

/// Builds a [`MemoryQueue`].
#[derive(Debug)]
#[must_use]
pub struct MemoryQueueBuilder {
    name: String,
    fifo: bool,
    max_message_size: usize,
    visibility_timeout: Duration,
    redrive: Option<(MemoryQueue, u32)>,
    family: Option<Family>,
}

impl MemoryQueueBuilder {
    /// A FIFO queue: groups are delivered in order, one in-flight batch per group
    /// (nothing more of a group while one of its messages is in flight), a
    /// message that comes back is first in its group again, and deduplication
    /// ids are remembered for 5 minutes.
    pub fn fifo(mut self) -> Self {
        self.fifo = true;
        self
    }

    /// The largest message accepted (default: 262 144 bytes, SQS's default).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The default visibility timeout reported in the attributes (default: 30 s).
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Moves a message to `dead_letter` instead of delivering it once it has
    /// been received `max_receive_count` times (SQS's redrive policy).
    pub fn redrive(mut self, dead_letter: MemoryQueue, max_receive_count: u32) -> Self {
        self.redrive = Some((dead_letter, max_receive_count.max(1)));
        self
    }

    /// Builds the queue.
    pub fn build(self) -> MemoryQueue {
        MemoryQueue {
            inner: Arc::new(Inner {
                name: self.name,
                fifo: self.fifo,
                max_message_size: self.max_message_size,
                visibility_timeout: self.visibility_timeout,
                redrive: self.redrive,
                family: self.family.unwrap_or_default(),
                next_id: AtomicU64::new(1),
                state: Mutex::new(State::default()),
                arrived: Notify::new(),
            }),
        }
    }
}

/// A receipt names one receive of one message: `<id>.<receive count>`.
fn receipt(id: u64, receive_count: u32) -> String {
    format!("{id}.{receive_count}")
}

fn parse_receipt(receipt: &str) -> Option<(u64, u32)> {
    let (id, count) = receipt.split_once('.')?;
    Some((id.parse().ok()?, count.parse().ok()?))
}

impl MemoryQueue {
    /// A standard queue named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self::builder(name).build()
    }

    /// A builder.
    pub fn builder(name: impl Into<String>) -> MemoryQueueBuilder {
        MemoryQueueBuilder {
            name: name.into(),
            fifo: false,
            max_message_size: 262_144,
            visibility_timeout: Duration::from_secs(30),
            redrive: None,
            family: None,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enqueue(&self, message: Outgoing) -> Result<String, QueueError> {
        if message.delay > MAX_DELAY {
            return Err(QueueError::Invalid(format!("delay of {:?} exceeds 15 minutes", message.delay)));
        }
        let size = message.size();
        if size > self.inner.max_message_size {
            return Err(QueueError::TooLarge { size, max: self.inner.max_message_size });
        }
        if self.inner.fifo && message.group_id.is_none() {
            return Err(QueueError::Invalid("a FIFO queue needs a message group id".into()));
        }
        if self.inner.fifo && !message.delay.is_zero() {
            return Err(QueueError::Invalid("a FIFO queue refuses per-message delays".into()));
        }
        let now = Instant::now();
        let mut state = self.state();
        if let (true, Some(dedup)) = (self.inner.fifo, &message.dedup_id) {
            state.dedup.retain(|_, (at, _)| now.duration_since(*at) < DEDUP_WINDOW);
            if let Some((_, id)) = state.dedup.get(dedup) {
                return Ok(id.to_string());
            }
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        if let (true, Some(dedup)) = (self.inner.fifo, message.dedup_id) {
            state.dedup.insert(dedup, (now, id));
        }
        let entry = Entry {
            payload: Arc::new(Payload { body: message.body, attributes: message.attributes }),
            group_id: message.group_id,
            receive_count: 0,
            version: 0,
            status: if message.delay.is_zero() { Status::Ready } else { Status::Delayed },
        };
        state.entries.insert(id, entry);
        if message.delay.is_zero() {
            state.ready.push_back(id);
        } else {
            state.hidden.push(Reverse((now + message.delay, 0, id)));
        }
        drop(state);
        self.inner.arrived.notify_waiters();
        Ok(id.to_string())
    }

    /// Takes up to `max` visible messages, hiding them for `visibility`.
    fn take(&self, max: usize, visibility: Duration) -> (Vec<Message>, Option<Instant>) {
        let (taken, next) = self.take_locked(max, visibility);
        (taken.into_iter().map(Taken::into_message).collect(), next)
    }

    /// [`take`](Self::take)'s part under the lock.
    fn take_locked(&self, max: usize, visibility: Duration) -> (Vec<Taken>, Option<Instant>) {
        let now = Instant::now();
        let mut state = self.state();
        let state = &mut *state;
        // Messages whose delay or visibility timeout ended become visible.
        while let Some(Reverse((at, version, id))) = state.hidden.peek().copied() {
            if at > now {
                break;
            }
            state.hidden.pop();
            if let Some(entry) = state.entries.get_mut(&id) {
                if entry.version == version {
                    entry.status = Status::Ready;
                    Self::make_ready(&mut state.ready, id, self.inner.fifo);
                }
            }
        }
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        let mut busy_groups: HashSet<String> = HashSet::new();
        if self.inner.fifo {
            busy_groups = state
                .entries
                .values()
                .filter(|e| e.status == Status::InFlight)
                .filter_map(|e| e.group_id.clone())
                .collect();
        }
        while out.len() < max {
            let Some(id) = state.ready.pop_front() else { break };
            let Some(entry) = state.entries.get_mut(&id) else { continue };
            if self.inner.fifo {
                let group = entry.group_id.clone().unwrap_or_default();
                // One group's messages go out in order, and not while an
                // earlier batch of the group is in flight.
                if busy_groups.contains(&group) {
                    skipped.push(id);
                    continue;
                }
            }
            if let Some((dead_letter, max_receives)) = &self.inner.redrive {
                if entry.receive_count >= *max_receives {
                    if let Some(entry) = state.entries.remove(&id) {
                        let payload = Arc::try_unwrap(entry.payload).unwrap_or_else(|shared| Payload {
                            body: shared.body.clone(),
                            attributes: shared.attributes.clone(),
                        });
                        let moved = Outgoing::new(payload.body).attributes(payload.attributes);
                        let moved = match entry.group_id {
                            Some(group) => moved.fifo(group, format!("redrive-{id}")),
                            None => moved,
                        };
                        let _ = dead_letter.enqueue(moved);
                    }
                    continue;
                }
            }
            entry.receive_count += 1;
            entry.version += 1;
            entry.status = Status::InFlight;
            state.hidden.push(Reverse((now + visibility, entry.version, id)));
            out.push(Taken {
                id,
                receive_count: entry.receive_count,
                payload: entry.payload.clone(),
                group_id: entry.group_id.clone(),
            });
        }
        for id in skipped.into_iter().rev() {
            state.ready.push_front(id);
        }
        let next = state.hidden.peek().map(|Reverse((at, _, _))| *at);
        (out, next)
    }

    /// Queues a message that became visible. On a FIFO queue `ready` stays in
    /// send order (ids grow with each send), so a message that comes back —
    /// released, or its visibility timeout over — is again first in its
    /// group, as on SQS; on a standard queue it goes to the back.
    fn make_ready(ready: &mut VecDeque<u64>, id: u64, fifo: bool) {
        if fifo {
            let at = ready.partition_point(|&other| other < id);
            ready.insert(at, id);
        } else {
            ready.push_back(id);
        }
    }

    /// The entry a receipt designates, if it is the latest receipt of a message in flight.
    fn in_flight_mut<'s>(state: &'s mut State, receipt: &str) -> Option<(u64, &'s mut Entry)> {
        let (id, count) = parse_receipt(receipt)?;
        let entry = state.entries.get_mut(&id)?;
        (entry.receive_count == count && entry.status == Status::InFlight).then_some((id, entry))
    }
}

impl Queue for MemoryQueue {
    // Messages are taken under the lock, with no await in between.
    const CANCEL_SAFE_RECEIVE: bool = true;

    async fn send(&self, message: Outgoing) -> Result<String, QueueError> {
        self.enqueue(message)
    }

    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<Vec<EntryResult<String>>, QueueError> {
        if messages.len() > MAX_BATCH {
            return Err(QueueError::Invalid(format!("{} entries in one batch; at most 10", messages.len())));
        }
        // SQS rejects the whole call when the entries together are too large.
        let size: usize = messages.iter().map(Outgoing::size).sum();
        let max = batch_payload_limit(self.inner.max_message_size);
        if size > max {
            return Err(QueueError::BatchTooLarge { size, max });
        }
        Ok(messages.into_iter().map(|m| self.enqueue(m)).collect())
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Message>, QueueError> {
        if !(1..=MAX_BATCH).contains(&max) {
            return Err(QueueError::Invalid(format!("receive of {max} messages; 1 to 10")));
        }
        if wait > MAX_WAIT || visibility > MAX_VISIBILITY {
            return Err(QueueError::Invalid("wait over 20 s or visibility over 12 h".into()));
        }
        let deadline = Instant::now() + wait;
        loop {
            let arrived = self.inner.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let (messages, next_visible) = self.take(max, visibility);
            if !messages.is_empty() || Instant::now() >= deadline {
                return Ok(messages);
            }
            let until = next_visible.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                () = arrived => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn delete_batch(&self, receipts: Vec<String>) -> Result<Vec<EntryResult<()>>, QueueError> {
        if receipts.len() > MAX_BATCH {
            return Err(QueueError::Invalid(format!("{} entries in one batch; at most 10", receipts.len())));
        }
        let mut state = self.state();
        Ok(receipts
            .iter()
            .map(|r| {
                let (id, count) = parse_receipt(r).ok_or(QueueError::InvalidReceipt)?;
                match state.entries.get(&id) {
                    Some(entry) if entry.receive_count == count => {
                        state.entries.remove(&id);
                        Ok(())
                    }
                    // Already deleted: SQS accepts a repeated delete.
                    None => Ok(()),
                    Some(_) => Err(QueueError::InvalidReceipt),
                }
            })
            .collect())
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        if timeout > MAX_VISIBILITY {
            return Err(QueueError::Invalid(format!("visibility of {timeout:?} exceeds 12 hours")));
        }
        let now = Instant::now();
        let mut guard = self.state();
        let state = &mut *guard;
        let (id, entry) = Self::in_flight_mut(state, receipt).ok_or(QueueError::InvalidReceipt)?;
        entry.version += 1;
        let version = entry.version;
        if timeout.is_zero() {
            entry.status = Status::Ready;
            Self::make_ready(&mut state.ready, id, self.inner.fifo);
        } else {
            state.hidden.push(Reverse((now + timeout, version, id)));
        }
        drop(guard);
        self.inner.arrived.notify_waiters();
        Ok(())
    }

    async fn attributes(&self) -> Result<QueueAttributes, QueueError> {
        let state = self.state();
        let mut attributes = QueueAttributes {
            max_message_size: self.inner.max_message_size,
            visibility_timeout: self.inner.visibility_timeout,
            fifo: self.inner.fifo,
            ..QueueAttributes::default()
        };
        for entry in state.entries.values() {
            match entry.status {
                Status::Ready => attributes.visible += 1,
                Status::Delayed => attributes.delayed += 1,
                Status::InFlight => attributes.in_flight += 1,
            }
        }
        Ok(attributes)
    }

    /// The queue named `name` among those built from the same root: this
    /// queue itself, one of its siblings, or a new standard queue (FIFO when
    /// the name ends in `.fifo`) that joins the family.
    async fn sibling(&self, name: &str) -> Result<Self, QueueError> {
        if name == self.inner.name {
            return Ok(self.clone());
        }
        let mut family = self.inner.family.lock().unwrap_or_else(PoisonError::into_inner);
        let queue = family.entry(name.to_owned()).or_insert_with(|| {
            let mut builder = Self::builder(name);
            builder.fifo = name.ends_with(".fifo");
            builder.family = Some(self.inner.family.clone());
            builder.build()
        });
        Ok(queue.clone())
    }
}
