//! [`PostgresQueue`]: a durable queue on PostgreSQL (`postgres` feature),
//! shared by many processes on many machines.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Row};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{
    DEDUP_WINDOW, SqlQueueOptions, Wakers, check, check_batch, check_receive, delete_results, encode_attributes,
    in_order, lock_key, long_poll, millis, parse_receipt,
};
use crate::queue::{EntryResult, MAX_BATCH, MAX_VISIBILITY, Message, Outgoing, Queue, QueueAttributes, QueueError};

/// The database's clock in ms: every instance compares visibility deadlines
/// against the same clock, whatever the skew between machines. The start of
/// the statement, not `clock_timestamp()`: a stable value can bound an index
/// scan (`visible_at <= NOW` as an index condition), so a claim never walks
/// the delayed and in-flight rows that sort after the visible ones.
const NOW: &str = "(floor(extract(epoch from statement_timestamp()) * 1000)::bigint)";

/// The schema, by version; applied in order under an advisory lock.
const MIGRATIONS: &[(i64, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE IF NOT EXISTS {p}tasks (
            id BIGSERIAL PRIMARY KEY,
            queue TEXT NOT NULL,
            body TEXT NOT NULL,
            attributes TEXT NOT NULL,
            group_id TEXT,
            visible_at BIGINT NOT NULL,
            receive_count BIGINT NOT NULL DEFAULT 0,
            sent_at BIGINT NOT NULL
        )",
        // A claim scans only the rows visible now: in-flight and delayed rows
        // sort after them, finished rows are deleted.
        "CREATE INDEX IF NOT EXISTS {p}tasks_claim ON {p}tasks (queue, visible_at, id)",
        "CREATE TABLE IF NOT EXISTS {p}task_dedup (
            queue TEXT NOT NULL,
            dedup_id TEXT NOT NULL,
            message_id BIGINT NOT NULL,
            sent_at BIGINT NOT NULL,
            PRIMARY KEY (queue, dedup_id)
        )",
    ],
)];

/// A durable queue on PostgreSQL with SQS's semantics (as [`SqliteQueue`](crate::SqliteQueue)),
/// for many processes on many machines: claims take rows with `FOR UPDATE
/// SKIP LOCKED` (workers never wait on each other's claims), a send does
/// `pg_notify` in its transaction so long polls everywhere wake when it
/// commits, with a fallback poll ([`poll_interval`](SqlQueueOptions::poll_interval),
/// 1 s) for a lost notification. Times are the database's clock. The schema
/// comes from versioned migrations, applied under an advisory lock keyed by
/// the table prefix, so instances starting together all start. A send is
/// durable as PostgreSQL's commits are (`synchronous_commit` as the server
/// sets it); claims, deletes and visibility changes commit asynchronously, on
/// a second pool to the same server, so a server crash may run a task again
/// but never loses one. Cheap to clone.
#[derive(Clone)]
pub struct PostgresQueue {
    /// Sends (and the user's transactions): durable at commit.
    pool: PgPool,
    /// Claims, deletes and visibility changes: the same server, with sessions
    /// that commit asynchronously (`synchronous_commit = off`, no wait for the
    /// WAL flush). A server crash may undo the last of those — a task runs
    /// again, a message is visible again — which at-least-once delivery
    /// allows; a send is never undone.
    ops: PgPool,
    name: String,
    fifo: bool,
    options: Arc<SqlQueueOptions>,
    sql: Arc<Statements>,
    wakers: Wakers,
    /// Stops the notification listener when the last clone is dropped.
    _listening: Arc<DropGuard>,
}

impl fmt::Debug for PostgresQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's options hold the URL, which may hold a password.
        f.debug_struct("PostgresQueue")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Statements {
    channel: String,
    insert: String,
    /// Inserts many rows from arrays (in their order) and notifies the channel.
    insert_all: String,
    dedup_find: String,
    dedup_insert: String,
    dedup_expire: String,
    redrive: String,
    claim: String,
    claim_fifo: String,
    delete: String,
    existing: String,
    change_visibility: String,
    depth: String,
}

impl Statements {
    fn new(p: &str) -> Self {
        let t = format!("{p}tasks");
        let d = format!("{p}task_dedup");
        Self {
            channel: format!("{p}tasks"),
            insert: format!(
                "INSERT INTO {t} (queue, body, attributes, group_id, visible_at, receive_count, sent_at) \
                 VALUES ($1, $2, $3, $4, {NOW} + $5, 0, {NOW}) RETURNING id"
            ),
            // The sequence is drawn in the order of the sorted SELECT, so the
            // returned ids, sorted, are in the order of the arrays.
            insert_all: format!(
                "WITH inserted AS (INSERT INTO {t} (queue, body, attributes, group_id, visible_at, receive_count, sent_at) \
                   SELECT $1, m.body, m.attributes, m.group_id, {NOW} + m.delay, 0, {NOW} \
                   FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY \
                     AS m(body, attributes, group_id, delay, n) \
                   ORDER BY m.n RETURNING id) \
                 SELECT inserted.id FROM inserted CROSS JOIN (SELECT pg_notify($6, $1)) AS notified"
            ),
            dedup_find: format!(
                "SELECT message_id FROM {d} WHERE queue = $1 AND dedup_id = $2 AND sent_at > {NOW} - $3"
            ),
            dedup_insert: format!(
                "INSERT INTO {d} (queue, dedup_id, message_id, sent_at) VALUES ($1, $2, $3, {NOW}) \
                 ON CONFLICT (queue, dedup_id) DO UPDATE SET message_id = excluded.message_id, sent_at = excluded.sent_at"
            ),
            dedup_expire: format!("DELETE FROM {d} WHERE queue = $1 AND sent_at <= {NOW} - $2"),
            redrive: format!(
                "WITH moved AS (DELETE FROM {t} WHERE id IN \
                   (SELECT id FROM {t} WHERE queue = $1 AND visible_at <= {NOW} AND receive_count >= $2 \
                    ORDER BY id FOR UPDATE SKIP LOCKED) \
                   RETURNING id, body, attributes, group_id) \
                 INSERT INTO {t} (queue, body, attributes, group_id, visible_at, receive_count, sent_at) \
                 SELECT $3, body, attributes, group_id, {NOW}, 0, {NOW} FROM moved ORDER BY id"
            ),
            claim: format!(
                "WITH picked AS (SELECT id FROM {t} WHERE queue = $1 AND visible_at <= {NOW} \
                   ORDER BY visible_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 UPDATE {t} t SET receive_count = t.receive_count + 1, visible_at = {NOW} + $3 \
                 FROM picked WHERE t.id = picked.id \
                 RETURNING t.id, t.body, t.attributes, t.group_id, t.receive_count"
            ),
            // Under the queue's advisory lock: a group with a message in
            // flight delivers nothing more until it is deleted or visible again.
            claim_fifo: format!(
                "WITH picked AS (SELECT id FROM {t} WHERE queue = $1 AND visible_at <= {NOW} AND group_id NOT IN \
                   (SELECT group_id FROM {t} WHERE queue = $1 AND visible_at > {NOW} AND receive_count > 0 \
                    AND group_id IS NOT NULL) \
                   ORDER BY id LIMIT $2) \
                 UPDATE {t} t SET receive_count = t.receive_count + 1, visible_at = {NOW} + $3 \
                 FROM picked WHERE t.id = picked.id \
                 RETURNING t.id, t.body, t.attributes, t.group_id, t.receive_count"
            ),
            delete: format!(
                "DELETE FROM {t} t USING unnest($1::bigint[], $2::bigint[]) AS r(id, rc) \
                 WHERE t.id = r.id AND t.receive_count = r.rc AND t.queue = $3 RETURNING t.id"
            ),
            existing: format!("SELECT id FROM {t} WHERE id = ANY($1) AND queue = $2"),
            change_visibility: format!(
                "UPDATE {t} SET visible_at = {NOW} + $1 \
                 WHERE id = $2 AND queue = $3 AND receive_count = $4 AND receive_count > 0"
            ),
            depth: format!(
                "SELECT \
                   COUNT(*) FILTER (WHERE visible_at <= n.now), \
                   COUNT(*) FILTER (WHERE visible_at > n.now AND receive_count > 0), \
                   COUNT(*) FILTER (WHERE visible_at > n.now AND receive_count = 0), \
                   MAX(n.now - sent_at) FILTER (WHERE visible_at <= n.now) \
                 FROM {t}, (SELECT {NOW} AS now) n WHERE queue = $1"
            ),
        }
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(db)`
fn db(error: sqlx::Error) -> QueueError {
    match &error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            QueueError::Transient(error.to_string())
        }
        // Serialization failures, deadlocks, a server shutting down or out of connections.
        sqlx::Error::Database(e)
            if e.code().is_some_and(|c| c.starts_with("40") || c.starts_with("57P") || c.starts_with("53")) =>
        {
            QueueError::Transient(error.to_string())
        }
        _ => QueueError::Other(error.to_string()),
    }
}

impl PostgresQueue {
    /// The default options of a PostgreSQL queue (fallback poll every second).
    pub fn options() -> SqlQueueOptions {
        SqlQueueOptions::with_poll_interval(Duration::from_secs(1))
    }

    /// Connects to `url` (`postgres://…`) with up to `pool_size` connections
    /// (one more is the notification listener), applies the migrations and
    /// opens the queue `name`.
    ///
    /// # Errors
    /// [`QueueError::Invalid`] for a bad table prefix; [`QueueError::Transient`]
    /// or [`QueueError::Other`] when the server cannot be reached or migrated.
    pub async fn connect(url: &str, pool_size: u32, name: &str, options: SqlQueueOptions) -> Result<Self, QueueError> {
        // No ping before each use of a pooled connection (sqlx's default): it
        // is a round trip per statement, and a connection found broken fails
        // its statement as a transient error, which callers retry anyway.
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1) + 1)
            .test_before_acquire(false)
            .connect(url)
            .await
            .map_err(db)?;
        Self::with_pool(pool, name, options).await
    }

    /// Opens the queue `name` on an existing pool (e.g. the service's own,
    /// for [`send_in`](Self::send_in) with its transactions). The notification
    /// listener holds one of the pool's connections for as long as the queue lives.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn with_pool(pool: PgPool, name: &str, options: SqlQueueOptions) -> Result<Self, QueueError> {
        options.check_prefix()?;
        let sql = Arc::new(Statements::new(&options.table_prefix));
        migrate(&pool, &options.table_prefix).await?;
        let wakers = Wakers::default();
        let stop = CancellationToken::new();
        let mut listener = PgListener::connect_with(&pool).await.map_err(db)?;
        listener.listen(&sql.channel).await.map_err(db)?;
        tokio::spawn(listen(listener, wakers.clone(), stop.clone()));
        let ops = PgPoolOptions::new()
            .max_connections(pool.options().get_max_connections())
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("SET synchronous_commit = off").execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .connect_lazy_with((*pool.connect_options()).clone());
        Ok(Self {
            pool,
            ops,
            name: name.to_owned(),
            fifo: name.ends_with(".fifo"),
            options: Arc::new(options),
            sql,
            wakers,
            _listening: Arc::new(stop.drop_guard()),
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The prefix of its tables (`<prefix>tasks`, `<prefix>tasks_migrations`).
    pub fn table_prefix(&self) -> &str {
        &self.options.table_prefix
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Writes `messages` in the caller's transaction (or on any connection to
    /// this database): they exist exactly when the caller's other writes do —
    /// the outbox pattern without an outbox — and receivers everywhere wake
    /// when it commits. Returns each one's id or error, in order.
    ///
    /// # Errors
    /// Per entry: [`QueueError::TooLarge`], [`QueueError::Invalid`]; as a
    /// whole: the database's error (the caller's transaction is then unusable).
    pub async fn send_in(
        &self,
        conn: &mut PgConnection,
        messages: Vec<Outgoing>,
    ) -> Result<Vec<EntryResult<String>>, QueueError> {
        if !(self.fifo && messages.iter().any(|m| m.dedup_id.is_some())) {
            return self.insert_all(conn, messages).await;
        }
        // Deduplication looks at the rows before each one: one at a time, in order.
        let mut results = Vec::with_capacity(messages.len());
        for message in messages {
            results.push(match check(&message, self.options.max_message_size, self.fifo) {
                Ok(()) => Ok(self.insert(conn, message).await?),
                Err(e) => Err(e),
            });
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.sql.channel)
            .bind(&self.name)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(results)
    }

    /// Inserts the valid messages of `messages` with one statement, which
    /// also notifies the receivers, and returns each one's id or error, in order.
    async fn insert_all(
        &self,
        conn: &mut PgConnection,
        messages: Vec<Outgoing>,
    ) -> Result<Vec<EntryResult<String>>, QueueError> {
        let mut results: Vec<EntryResult<String>> = Vec::with_capacity(messages.len());
        let mut slots = Vec::with_capacity(messages.len());
        let (mut bodies, mut attributes, mut groups, mut delays) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for message in messages {
            match check(&message, self.options.max_message_size, self.fifo)
                .and_then(|()| encode_attributes(&message.attributes))
            {
                Ok(encoded) => {
                    slots.push(results.len());
                    results.push(Ok(String::new()));
                    bodies.push(message.body);
                    attributes.push(encoded);
                    groups.push(message.group_id);
                    delays.push(millis(message.delay));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if slots.is_empty() {
            return Ok(results);
        }
        let mut ids: Vec<i64> = sqlx::query_scalar(&self.sql.insert_all)
            .bind(&self.name)
            .bind(bodies)
            .bind(attributes)
            .bind(groups)
            .bind(delays)
            .bind(&self.sql.channel)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        ids.sort_unstable();
        if ids.len() != slots.len() {
            return Err(QueueError::Other(format!("{} rows inserted of {}", ids.len(), slots.len())));
        }
        for (slot, id) in slots.into_iter().zip(ids) {
            results[slot] = Ok(id.to_string());
        }
        Ok(results)
    }

    async fn insert(&self, conn: &mut PgConnection, message: Outgoing) -> Result<String, QueueError> {
        let dedup = message.dedup_id.clone().filter(|_| self.fifo);
        let window = millis(DEDUP_WINDOW);
        if let Some(dedup) = &dedup {
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
            .bind(millis(message.delay))
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        if let Some(dedup) = dedup {
            sqlx::query(&self.sql.dedup_insert)
                .bind(&self.name)
                .bind(dedup)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
        Ok(id.to_string())
    }

    async fn claim(&self, max: usize, visibility: Duration) -> Result<Vec<Message>, QueueError> {
        let limit = i64::try_from(max).unwrap_or(10);
        if self.options.redrive.is_none() && !self.fifo {
            // One statement, its own transaction: no BEGIN and COMMIT round trips.
            let rows = sqlx::query(&self.sql.claim)
                .bind(&self.name)
                .bind(limit)
                .bind(millis(visibility))
                .fetch_all(&self.ops)
                .await
                .map_err(db)?;
            return in_order(&rows).map_err(db);
        }
        let mut tx = self.ops.begin().await.map_err(db)?;
        if let Some((dead_letter, max_receives)) = &self.options.redrive {
            let moved = sqlx::query(&self.sql.redrive)
                .bind(&self.name)
                .bind(i64::from(*max_receives))
                .bind(dead_letter)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if moved.rows_affected() > 0 {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(&self.sql.channel)
                    .bind(dead_letter)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
        }
        let rows = if self.fifo {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock_key(&format!("chassis-tasks fifo {}{}", self.options.table_prefix, self.name)))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query(&self.sql.claim_fifo)
        } else {
            sqlx::query(&self.sql.claim)
        }
        .bind(&self.name)
        .bind(limit)
        .bind(millis(visibility))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        in_order(&rows).map_err(db)
    }
}

/// Applies the migrations not applied yet, in one transaction holding an
/// advisory lock keyed by the prefix (FNV-1a of `chassis-tasks migrations
/// <prefix>`): instances starting together serialize, and each finds the
/// versions the one before it applied.
async fn migrate(pool: &PgPool, prefix: &str) -> Result<(), QueueError> {
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(&format!("chassis-tasks migrations {prefix}")))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {prefix}tasks_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)"
    ))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    for (version, statements) in MIGRATIONS {
        let applied: bool =
            sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {prefix}tasks_migrations WHERE version = $1)"))
                .bind(version)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        if applied {
            continue;
        }
        for statement in *statements {
            sqlx::query(&statement.replace("{p}", prefix)).execute(&mut *tx).await.map_err(db)?;
        }
        sqlx::query(&format!("INSERT INTO {prefix}tasks_migrations (version, applied_ms) VALUES ($1, {NOW})"))
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

/// Wakes this process's receives when a send anywhere commits; ends when the
/// last clone of the queue is dropped. A lost connection is re-established
/// by sqlx (notifications in the gap are caught by the fallback poll).
async fn listen(mut listener: PgListener, wakers: Wakers, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            received = listener.recv() => match received {
                Ok(notification) => wakers.wake(notification.payload()),
                Err(error) => {
                    tracing::warn!(%error, "the task queue's notification listener failed; polling meanwhile");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            },
        }
    }
}

impl Queue for PostgresQueue {
    async fn send(&self, message: Outgoing) -> Result<String, QueueError> {
        check(&message, self.options.max_message_size, self.fifo)?;
        let mut results = self.send_batch(vec![message]).await?;
        results.pop().unwrap_or_else(|| Err(QueueError::Other("no result".into())))
    }

    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<Vec<EntryResult<String>>, QueueError> {
        check_batch(&messages, self.options.max_message_size)?;
        if !(self.fifo && messages.iter().any(|m| m.dedup_id.is_some())) {
            // One statement, its own transaction: no BEGIN and COMMIT round trips.
            let mut conn = self.pool.acquire().await.map_err(db)?;
            return self.insert_all(&mut conn, messages).await;
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        let results = self.send_in(&mut tx, messages).await?;
        tx.commit().await.map_err(db)?;
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
        let (ids, counts): (Vec<i64>, Vec<i64>) = parsed.iter().flatten().copied().unzip();
        let deleted: Vec<i64> = sqlx::query_scalar(&self.sql.delete)
            .bind(&ids)
            .bind(&counts)
            .bind(&self.name)
            .fetch_all(&self.ops)
            .await
            .map_err(db)?;
        let missed: Vec<i64> = ids.iter().copied().filter(|id| !deleted.contains(id)).collect();
        let still_there: Vec<i64> = if missed.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar(&self.sql.existing)
                .bind(&missed)
                .bind(&self.name)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?
        };
        Ok(delete_results(parsed, &deleted, &still_there))
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        if timeout > MAX_VISIBILITY {
            return Err(QueueError::Invalid(format!("visibility of {timeout:?} exceeds 12 hours")));
        }
        let (id, count) = parse_receipt(receipt)?;
        let done = sqlx::query(&self.sql.change_visibility)
            .bind(millis(timeout))
            .bind(id)
            .bind(&self.name)
            .bind(count)
            .execute(&self.ops)
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
        let row = sqlx::query(&self.sql.depth).bind(&self.name).fetch_one(&self.pool).await.map_err(db)?;
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
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    /// The queue `name` in the same database and prefix, with the same
    /// options (no redrive) and the same notification listener.
    async fn sibling(&self, name: &str) -> Result<Self, QueueError> {
        let mut options = (*self.options).clone();
        options.redrive = None;
        Ok(Self {
            pool: self.pool.clone(),
            ops: self.ops.clone(),
            name: name.to_owned(),
            fifo: name.ends_with(".fifo"),
            options: Arc::new(options),
            sql: self.sql.clone(),
            wakers: self.wakers.clone(),
            _listening: self._listening.clone(),
        })
    }
}

impl super::TransactionalQueue for PostgresQueue {
    type Connection = PgConnection;

    async fn send_in(
        &self,
        conn: &mut PgConnection,
        messages: Vec<Outgoing>,
    ) -> Result<Vec<EntryResult<String>>, QueueError> {
        PostgresQueue::send_in(self, conn, messages).await
    }
}
