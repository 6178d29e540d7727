//! [`SqliteQueue`]: a durable queue in a SQLite file (`sqlite` feature) — the
//! embedded default.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{
    DEDUP_WINDOW, SqlQueueOptions, Wakers, check, check_batch, check_receive, delete_results, encode_attributes,
    in_order, long_poll, millis, now_ms, parse_receipt,
};
use crate::queue::{EntryResult, MAX_BATCH, MAX_VISIBILITY, Message, Outgoing, Queue, QueueAttributes, QueueError};

/// The schema, by version; applied in order under the database's write lock.
/// `{p}` is the table prefix.
const MIGRATIONS: &[(i64, &[&str])] = &[(
    1,
    &[
        // AUTOINCREMENT: an id is never reused, so an old receipt never names a new message.
        "CREATE TABLE IF NOT EXISTS {p}tasks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            queue TEXT NOT NULL,
            body TEXT NOT NULL,
            attributes TEXT NOT NULL,
            group_id TEXT,
            visible_at INTEGER NOT NULL,
            receive_count INTEGER NOT NULL DEFAULT 0,
            sent_at INTEGER NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS {p}tasks_claim ON {p}tasks (queue, visible_at, id)",
        "CREATE TABLE IF NOT EXISTS {p}task_dedup (
            queue TEXT NOT NULL,
            dedup_id TEXT NOT NULL,
            message_id INTEGER NOT NULL,
            sent_at INTEGER NOT NULL,
            PRIMARY KEY (queue, dedup_id)
        )",
    ],
)];

/// A durable queue in a SQLite file, with SQS's semantics: visibility
/// timeouts, per-receive receipt handles (a stale one is refused), receive
/// counts, delays, batches with per-entry results, attributes, redrive to a
/// dead-letter queue, FIFO groups (a name ending in `.fifo`). Cheap to clone.
///
/// **Durability.** The file is in WAL mode with `synchronous = NORMAL`: a
/// message whose send returned `Ok` survives the process being killed
/// (`kill -9`) at any moment; a power loss or OS crash may lose the
/// transactions of the last moments before it (SQLite's WAL guarantees, not
/// fsynced on every commit). [`SqliteQueue::open_with`] can set `FULL`.
///
/// **Sharing.** Several processes on one machine may share the file (writes
/// serialize on SQLite's lock, waiting up to 5 s for it). A receive waiting
/// for messages wakes at once when this process (any clone or sibling of the
/// queue) sends one, and within [`poll_interval`](SqlQueueOptions::poll_interval)
/// when another process does.
#[derive(Clone)]
pub struct SqliteQueue {
    pool: SqlitePool,
    name: String,
    fifo: bool,
    options: Arc<SqlQueueOptions>,
    sql: Arc<Statements>,
    wakers: Wakers,
}

impl fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteQueue").field("name", &self.name).field("options", &self.options).finish_non_exhaustive()
    }
}

/// The statements of one table prefix, rendered once.
#[derive(Debug)]
struct Statements {
    insert: String,
    /// `insert_rows[k]`: one INSERT of `k + 1` rows.
    insert_rows: Vec<String>,
    dedup_find: String,
    dedup_insert: String,
    dedup_expire: String,
    any_visible: String,
    redrive: String,
    redriven: String,
    claim: String,
    claim_fifo: String,
    /// `delete_rows[k]`: deletes `k + 1` (id, receive count) pairs of a queue.
    delete_rows: Vec<String>,
    /// `existing[k]`: which of `k + 1` ids still exist in a queue.
    existing: Vec<String>,
    change_visibility: String,
    depth: String,
}

impl Statements {
    fn new(p: &str) -> Self {
        let t = format!("{p}tasks");
        let d = format!("{p}task_dedup");
        let insert =
            format!("INSERT INTO {t} (queue, body, attributes, group_id, visible_at, receive_count, sent_at) VALUES ");
        let list = |n: usize, item: &str| vec![item; n].join(", ");
        Self {
            insert: format!("{insert}(?, ?, ?, ?, ?, 0, ?) RETURNING id"),
            insert_rows: (1..=MAX_BATCH)
                .map(|n| format!("{insert}{} RETURNING id", list(n, "(?, ?, ?, ?, ?, 0, ?)")))
                .collect(),
            dedup_find: format!("SELECT message_id FROM {d} WHERE queue = ? AND dedup_id = ? AND sent_at > ?"),
            dedup_insert: format!(
                "INSERT INTO {d} (queue, dedup_id, message_id, sent_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (queue, dedup_id) DO UPDATE SET message_id = excluded.message_id, sent_at = excluded.sent_at"
            ),
            dedup_expire: format!("DELETE FROM {d} WHERE queue = ? AND sent_at <= ?"),
            any_visible: format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE queue = ? AND visible_at <= ?)"),
            redrive: format!(
                "INSERT INTO {t} (queue, body, attributes, group_id, visible_at, receive_count, sent_at) \
                 SELECT ?, body, attributes, group_id, ?, 0, ? FROM {t} \
                 WHERE queue = ? AND visible_at <= ? AND receive_count >= ? ORDER BY id"
            ),
            redriven: format!("DELETE FROM {t} WHERE queue = ? AND visible_at <= ? AND receive_count >= ?"),
            claim: format!(
                "UPDATE {t} SET receive_count = receive_count + 1, visible_at = ? WHERE id IN \
                 (SELECT id FROM {t} WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, id LIMIT ?) \
                 RETURNING id, body, attributes, group_id, receive_count"
            ),
            // A group with a message in flight delivers nothing more until it is deleted or visible again.
            claim_fifo: format!(
                "UPDATE {t} SET receive_count = receive_count + 1, visible_at = ? WHERE id IN \
                 (SELECT id FROM {t} WHERE queue = ? AND visible_at <= ? AND group_id NOT IN \
                  (SELECT group_id FROM {t} WHERE queue = ? AND visible_at > ? AND receive_count > 0 \
                   AND group_id IS NOT NULL) \
                 ORDER BY id LIMIT ?) \
                 RETURNING id, body, attributes, group_id, receive_count"
            ),
            delete_rows: (1..=MAX_BATCH)
                .map(|n| {
                    format!(
                        // `id IN` looks the rows up by primary key; the pairs check the receipts.
                        "DELETE FROM {t} WHERE queue = ? AND id IN ({}) AND (id, receive_count) IN (VALUES {}) \
                         RETURNING id",
                        list(n, "?"),
                        list(n, "(?, ?)")
                    )
                })
                .collect(),
            existing: (1..=MAX_BATCH)
                .map(|n| format!("SELECT id FROM {t} WHERE queue = ? AND id IN ({})", list(n, "?")))
                .collect(),
            change_visibility: format!(
                "UPDATE {t} SET visible_at = ? WHERE id = ? AND queue = ? AND receive_count = ? AND receive_count > 0"
            ),
            depth: format!(
                "SELECT \
                   COALESCE(SUM(CASE WHEN visible_at <= ?1 THEN 1 ELSE 0 END), 0), \
                   COALESCE(SUM(CASE WHEN visible_at > ?1 AND receive_count > 0 THEN 1 ELSE 0 END), 0), \
                   COALESCE(SUM(CASE WHEN visible_at > ?1 AND receive_count = 0 THEN 1 ELSE 0 END), 0), \
                   MIN(CASE WHEN visible_at <= ?1 THEN sent_at END) \
                 FROM {t} WHERE queue = ?2"
            ),
        }
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(db)`
fn db(error: sqlx::Error) -> QueueError {
    match &error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            QueueError::Transient(error.to_string())
        }
        // SQLITE_BUSY / SQLITE_LOCKED: another process held the lock too long.
        sqlx::Error::Database(e) if matches!(e.code().as_deref(), Some("5" | "6" | "517" | "262")) => {
            QueueError::Transient(error.to_string())
        }
        _ => QueueError::Other(error.to_string()),
    }
}

impl SqliteQueue {
    /// Opens (creating the file and its directory if missing) the queue
    /// `name` in the SQLite database at `path`, with default options.
    ///
    /// # Errors
    /// [`QueueError::Other`] when the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<std::path::Path>, name: &str) -> Result<Self, QueueError> {
        Self::open_with(path, name, SqlQueueOptions::with_poll_interval(Duration::from_millis(100)), false).await
    }

    /// The default options of a SQLite queue (poll interval 100 ms).
    pub fn options() -> SqlQueueOptions {
        SqlQueueOptions::with_poll_interval(Duration::from_millis(100))
    }

    /// Opens the queue `name` at `path` with `options`; `full_sync` sets
    /// `synchronous = FULL` (every commit fsynced: survives a power loss too,
    /// at a cost in throughput) instead of `NORMAL`.
    ///
    /// # Errors
    /// [`QueueError::Invalid`] for a bad table prefix; [`QueueError::Other`]
    /// when the file cannot be opened or migrated.
    pub async fn open_with(
        path: impl AsRef<std::path::Path>,
        name: &str,
        options: SqlQueueOptions,
        full_sync: bool,
    ) -> Result<Self, QueueError> {
        options.check_prefix()?;
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| QueueError::Other(format!("cannot create {}: {e}", dir.display())))?;
        }
        let connect = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if full_sync { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
            .busy_timeout(Duration::from_secs(5));
        let sql = Arc::new(Statements::new(&options.table_prefix));
        let options = Arc::new(options);
        // Switching a new file to WAL takes a lock SQLite's busy timeout does not
        // wait for: processes opening a new file at once may find it locked for
        // a moment. Such an open is tried again (up to about 5 s).
        let mut attempt = 0;
        let queue = loop {
            attempt += 1;
            let opened = async {
                // No ping before each use of a pooled connection (sqlx's default):
                // a round trip to the connection's thread per statement, for a file.
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .test_before_acquire(false)
                    .connect_with(connect.clone())
                    .await
                    .map_err(db)?;
                let queue = Self {
                    pool,
                    name: name.to_owned(),
                    fifo: name.ends_with(".fifo"),
                    sql: sql.clone(),
                    options: options.clone(),
                    wakers: Wakers::default(),
                };
                queue.migrate().await?;
                Ok::<_, QueueError>(queue)
            }
            .await;
            match opened {
                Err(QueueError::Transient(reason)) if attempt < 50 && reason.contains("locked") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        Ok(queue)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The prefix of its tables (`<prefix>tasks`, `<prefix>tasks_migrations`).
    pub fn table_prefix(&self) -> &str {
        &self.options.table_prefix
    }

    /// The connection pool (for transactional sends, [`send_in`](Self::send_in)).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Applies the migrations not applied yet, all under SQLite's write lock
    /// (`BEGIN IMMEDIATE`): processes opening the file at once serialize, and
    /// each finds the versions the one before it applied.
    async fn migrate(&self) -> Result<(), QueueError> {
        let p = &self.options.table_prefix;
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await.map_err(db)?;
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {p}tasks_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)"
        ))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        for (version, statements) in MIGRATIONS {
            let applied: bool =
                sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {p}tasks_migrations WHERE version = ?)"))
                    .bind(version)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
            if applied {
                continue;
            }
            for statement in *statements {
                sqlx::query(&statement.replace("{p}", p)).execute(&mut *tx).await.map_err(db)?;
            }
            sqlx::query(&format!("INSERT INTO {p}tasks_migrations (version, applied_ms) VALUES (?, ?)"))
                .bind(version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// Writes `messages` in the caller's transaction (or on any connection to
    /// this database): they exist exactly when the caller's other writes do —
    /// the outbox pattern without an outbox. Returns each one's id or error,
    /// in order. Receives in this process are woken at once (they find the
    /// messages when the transaction commits), others within the poll interval.
    ///
    /// # Errors
    /// Per entry: [`QueueError::TooLarge`], [`QueueError::Invalid`]; as a
    /// whole: the database's error (the caller's transaction is then unusable).
    pub async fn send_in(
        &self,
        conn: &mut SqliteConnection,
        messages: Vec<Outgoing>,
    ) -> Result<Vec<EntryResult<String>>, QueueError> {
        let now = now_ms();
        let results = if self.fifo && messages.iter().any(|m| m.dedup_id.is_some()) {
            // Deduplication looks at the rows before each one: one at a time, in order.
            let mut results = Vec::with_capacity(messages.len());
            for message in messages {
                results.push(match check(&message, self.options.max_message_size, self.fifo) {
                    Ok(()) => Ok(self.insert(conn, message, now).await?),
                    Err(e) => Err(e),
                });
            }
            results
        } else {
            self.insert_all(conn, messages, now).await?
        };
        self.wakers.wake(&self.name);
        Ok(results)
    }

    /// Inserts the valid messages of `messages` with one statement per 10,
    /// and returns each one's id or error, in order.
    async fn insert_all(
        &self,
        conn: &mut SqliteConnection,
        messages: Vec<Outgoing>,
        now: i64,
    ) -> Result<Vec<EntryResult<String>>, QueueError> {
        let mut results: Vec<EntryResult<String>> = Vec::with_capacity(messages.len());
        let mut valid = Vec::with_capacity(messages.len());
        for message in messages {
            match check(&message, self.options.max_message_size, self.fifo)
                .and_then(|()| encode_attributes(&message.attributes))
            {
                Ok(attributes) => {
                    valid.push((results.len(), message, attributes));
                    results.push(Ok(String::new()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let mut valid = valid.into_iter().peekable();
        while valid.peek().is_some() {
            let chunk: Vec<_> = valid.by_ref().take(MAX_BATCH).collect();
            let mut insert = sqlx::query_scalar::<_, i64>(&self.sql.insert_rows[chunk.len() - 1]);
            let mut slots = Vec::with_capacity(chunk.len());
            for (slot, message, attributes) in chunk {
                slots.push(slot);
                insert = insert
                    .bind(&self.name)
                    .bind(message.body)
                    .bind(attributes)
                    .bind(message.group_id)
                    .bind(now + millis(message.delay))
                    .bind(now);
            }
            // The rows are inserted in the order of the VALUES and an
            // AUTOINCREMENT id only grows, so the sorted ids are in that order
            // (RETURNING itself promises no order).
            let mut ids = insert.fetch_all(&mut *conn).await.map_err(db)?;
            ids.sort_unstable();
            if ids.len() != slots.len() {
                return Err(QueueError::Other(format!("{} rows inserted of {}", ids.len(), slots.len())));
            }
            for (slot, id) in slots.into_iter().zip(ids) {
                results[slot] = Ok(id.to_string());
            }
        }
        Ok(results)
    }

    async fn insert(&self, conn: &mut SqliteConnection, message: Outgoing, now: i64) -> Result<String, QueueError> {
        let dedup = message.dedup_id.clone().filter(|_| self.fifo);
        if let Some(dedup) = &dedup {
            let window = now - millis(DEDUP_WINDOW);
            sqlx::query(&self.sql.dedup_expire).bind(&self.name).bind(window).execute(&mut *conn).await.map_err(db)?;
            let seen: Option<i64> = sqlx::query_scalar(&self.sql.dedup_find)
                .bind(&self.name)
                .bind(dedup)
                .bind(window)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
            if let Some(id) = seen {
                return Ok(id.to_string());
            }
        }
        let id: i64 = sqlx::query_scalar(&self.sql.insert)
            .bind(&self.name)
            .bind(message.body)
            .bind(encode_attributes(&message.attributes)?)
            .bind(message.group_id)
            .bind(now + millis(message.delay))
            .bind(now)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        if let Some(dedup) = dedup {
            sqlx::query(&self.sql.dedup_insert)
                .bind(&self.name)
                .bind(dedup)
                .bind(id)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
        Ok(id.to_string())
    }

    /// Claims up to `max` visible messages, hiding them for `visibility`.
    async fn claim(&self, max: usize, visibility: Duration) -> Result<Vec<Message>, QueueError> {
        let now = now_ms();
        // A cheap read first: an idle queue takes no write lock.
        let any: bool = sqlx::query_scalar(&self.sql.any_visible)
            .bind(&self.name)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        if !any {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let Some((dead_letter, max_receives)) = &self.options.redrive else {
            // One statement is its own transaction: no BEGIN and COMMIT round trips.
            return self.claim_on(&mut conn, now, max, visibility).await;
        };
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await.map_err(db)?;
        let moved = sqlx::query(&self.sql.redrive)
            .bind(dead_letter)
            .bind(now)
            .bind(now)
            .bind(&self.name)
            .bind(now)
            .bind(i64::from(*max_receives))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if moved.rows_affected() > 0 {
            sqlx::query(&self.sql.redriven)
                .bind(&self.name)
                .bind(now)
                .bind(i64::from(*max_receives))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let messages = self.claim_on(&mut tx, now, max, visibility).await?;
        tx.commit().await.map_err(db)?;
        Ok(messages)
    }

    /// The claim's one statement, on `conn` (in a transaction or not).
    async fn claim_on(
        &self,
        conn: &mut SqliteConnection,
        now: i64,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let until = now.saturating_add(millis(visibility));
        let limit = i64::try_from(max).unwrap_or(10);
        let rows = if self.fifo {
            sqlx::query(&self.sql.claim_fifo)
                .bind(until)
                .bind(&self.name)
                .bind(now)
                .bind(&self.name)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await
        } else {
            sqlx::query(&self.sql.claim).bind(until).bind(&self.name).bind(now).bind(limit).fetch_all(&mut *conn).await
        }
        .map_err(db)?;
        in_order(&rows).map_err(db)
    }
}

impl Queue for SqliteQueue {
    async fn send(&self, message: Outgoing) -> Result<String, QueueError> {
        check(&message, self.options.max_message_size, self.fifo)?;
        let mut results = self.send_batch(vec![message]).await?;
        results.pop().unwrap_or_else(|| Err(QueueError::Other("no result".into())))
    }

    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<Vec<EntryResult<String>>, QueueError> {
        check_batch(&messages, self.options.max_message_size)?;
        let mut conn = self.pool.acquire().await.map_err(db)?;
        if !(self.fifo && messages.iter().any(|m| m.dedup_id.is_some())) {
            // At most 10 messages: one INSERT, which is its own transaction.
            return self.send_in(&mut conn, messages).await;
        }
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await.map_err(db)?;
        let results = self.send_in(&mut tx, messages).await?;
        tx.commit().await.map_err(db)?;
        self.wakers.wake(&self.name);
        Ok(results)
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Message>, QueueError> {
        check_receive(max, wait, visibility)?;
        long_poll(&self.wakers, &self.name, wait, self.options.poll_interval, || self.claim(max, visibility)).await
    }

    async fn delete_batch(&self, receipts: Vec<String>) -> Result<Vec<EntryResult<()>>, QueueError> {
        if receipts.len() > MAX_BATCH {
            return Err(QueueError::Invalid(format!("{} entries in one batch; at most 10", receipts.len())));
        }
        let parsed: Vec<Option<(i64, i64)>> = receipts.iter().map(|r| parse_receipt(r).ok()).collect();
        let pairs: Vec<(i64, i64)> = parsed.iter().flatten().copied().collect();
        let mut deleted = Vec::new();
        if !pairs.is_empty() {
            // One statement for the whole batch.
            let mut delete = sqlx::query_scalar::<_, i64>(&self.sql.delete_rows[pairs.len() - 1]).bind(&self.name);
            for (id, _) in &pairs {
                delete = delete.bind(id);
            }
            for (id, count) in &pairs {
                delete = delete.bind(id).bind(count);
            }
            deleted = delete.fetch_all(&self.pool).await.map_err(db)?;
        }
        let missed: Vec<i64> = pairs.iter().map(|(id, _)| *id).filter(|id| !deleted.contains(id)).collect();
        let mut still_there = Vec::new();
        if !missed.is_empty() {
            let mut existing = sqlx::query_scalar::<_, i64>(&self.sql.existing[missed.len() - 1]).bind(&self.name);
            for id in &missed {
                existing = existing.bind(id);
            }
            still_there = existing.fetch_all(&self.pool).await.map_err(db)?;
        }
        Ok(delete_results(parsed, &deleted, &still_there))
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        if timeout > MAX_VISIBILITY {
            return Err(QueueError::Invalid(format!("visibility of {timeout:?} exceeds 12 hours")));
        }
        let (id, count) = parse_receipt(receipt)?;
        let done = sqlx::query(&self.sql.change_visibility)
            .bind(now_ms().saturating_add(millis(timeout)))
            .bind(id)
            .bind(&self.name)
            .bind(count)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(QueueError::InvalidReceipt);
        }
        if timeout.is_zero() {
            self.wakers.wake(&self.name);
        }
        Ok(())
    }

    async fn attributes(&self) -> Result<QueueAttributes, QueueError> {
        let now = now_ms();
        let row = sqlx::query(&self.sql.depth).bind(now).bind(&self.name).fetch_one(&self.pool).await.map_err(db)?;
        let count = |i: usize| row.try_get::<i64, _>(i).map(|n| u64::try_from(n).unwrap_or(0)).map_err(db);
        Ok(QueueAttributes {
            visible: count(0)?,
            in_flight: count(1)?,
            delayed: count(2)?,
            max_message_size: self.options.max_message_size,
            visibility_timeout: self.options.visibility_timeout,
            fifo: self.fifo,
            oldest_age: row
                .try_get::<Option<i64>, _>(3)
                .map_err(db)?
                .map(|sent| Duration::from_millis(u64::try_from(now.saturating_sub(sent)).unwrap_or(0))),
        })
    }

    /// The queue `name` in the same file, with the same options (no redrive).
    async fn sibling(&self, name: &str) -> Result<Self, QueueError> {
        let mut options = (*self.options).clone();
        options.redrive = None;
        Ok(Self {
            pool: self.pool.clone(),
            name: name.to_owned(),
            fifo: name.ends_with(".fifo"),
            options: Arc::new(options),
            sql: self.sql.clone(),
            wakers: self.wakers.clone(),
        })
    }
}

impl super::TransactionalQueue for SqliteQueue {
    type Connection = SqliteConnection;

    async fn send_in(
        &self,
        conn: &mut SqliteConnection,
        messages: Vec<Outgoing>,
    ) -> Result<Vec<EntryResult<String>>, QueueError> {
        SqliteQueue::send_in(self, conn, messages).await
    }
}
