//! Schema migrations under a lock, so that replicas starting together all start.
//!
//! The mechanism, for every schema-creating path of chassis (the job store here;
//! the durable task queues mirror it):
//!
//! 1. One connection is taken from the pool. Its backend decides the lock:
//!    - **PostgreSQL**: each transaction begins with `BEGIN` and then
//!      `SELECT 1 FROM pg_advisory_xact_lock($1)`, `$1` being [`lock_key`] of the
//!      scope and the table prefix. The lock is transaction-scoped: it is released
//!      by the `COMMIT` or `ROLLBACK`, and by the server if the connection dies,
//!      so a crashed replica never leaves it held.
//!    - **SQLite**: each transaction begins with `BEGIN IMMEDIATE`, which takes the
//!      database's write lock at once; a concurrent opener waits for it (up to the
//!      connection's busy timeout, 5 s by default in sqlx) instead of failing in
//!      the middle of a migration.
//! 2. Under the lock, `CREATE TABLE IF NOT EXISTS <table> (version BIGINT PRIMARY KEY,
//!    applied_ms BIGINT NOT NULL)`, `SELECT version FROM <table>`, then `COMMIT`.
//!    If every version is there (the usual start), that is all.
//! 3. Each pending migration then runs in a transaction of its own, begun as in 1:
//!    it re-checks `SELECT version FROM <table> WHERE version = $1` under the lock
//!    (another replica may have applied it meanwhile: then `COMMIT` and go on),
//!    runs the migration's statements, `INSERT INTO <table> (version, applied_ms)
//!    VALUES ($1, $2)`, and `COMMIT`s: the schema change and its version row are
//!    applied together or not at all.

use sqlx::{AnyConnection, AnyPool, Connection, Row, Transaction};

/// A migration: its version (applied in increasing order) and its statements.
pub(crate) type Migration = (i64, &'static [&'static str]);

/// The 64-bit key of the PostgreSQL advisory lock that guards the migrations of
/// `scope` (e.g. `"chassis-jobs"`) under table prefix `prefix`.
///
/// It is 64-bit FNV-1a (offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`) over the bytes of `scope`, one `0x00` byte, and the bytes of
/// `prefix`, read as a two's-complement `i64` (PostgreSQL's `bigint`). FNV-1a is
/// fixed by its definition, unlike `std`'s `Hasher`s, so every version of every
/// replica derives the same key for the same tables. Distinct prefixes that
/// collide only make their migrations wait for each other, never skip.
pub(crate) fn lock_key(scope: &str, prefix: &str) -> i64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = scope.bytes().chain(std::iter::once(0)).chain(prefix.bytes());
    let hash = bytes.fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME));
    i64::from_be_bytes(hash.to_be_bytes())
}

/// Begins a transaction holding the migration lock (see the module docs).
async fn begin_locked<'c>(
    conn: &'c mut AnyConnection,
    postgres: bool,
    key: i64,
) -> Result<Transaction<'c, sqlx::Any>, sqlx::Error> {
    if postgres {
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)").bind(key).execute(&mut *tx).await?;
        Ok(tx)
    } else {
        conn.begin_with("BEGIN IMMEDIATE").await
    }
}

/// Applies the `migrations` not yet recorded in the table `versions`, each in
/// its own transaction with its version row, under the lock of [`lock_key`]`(scope,
/// prefix)` (see the module docs). Safe to run from any number of processes at
/// once: each migration is applied exactly once, and every caller returns once
/// all are applied.
///
/// `versions` and the statements must already hold the table prefix.
///
/// # Errors
/// The database's, e.g. when it cannot be reached, a statement fails (that
/// migration is rolled back, earlier ones stay), or the SQLite lock is not
/// obtained within the busy timeout.
pub(crate) async fn run(
    pool: &AnyPool,
    scope: &str,
    prefix: &str,
    versions: &str,
    migrations: &[(i64, Vec<String>)],
) -> Result<(), sqlx::Error> {
    let key = lock_key(scope, prefix);
    let mut conn = pool.acquire().await?;
    let postgres = conn.backend_name().eq_ignore_ascii_case("postgresql");

    let mut tx = begin_locked(&mut conn, postgres, key).await?;
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {versions} (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)"
    ))
    .execute(&mut *tx)
    .await?;
    let applied = sqlx::query(&format!("SELECT version FROM {versions}"))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<std::collections::BTreeSet<i64>, _>>()?;
    tx.commit().await?;

    for (version, statements) in migrations.iter().filter(|(v, _)| !applied.contains(v)) {
        let mut tx = begin_locked(&mut conn, postgres, key).await?;
        let done = sqlx::query(&format!("SELECT version FROM {versions} WHERE version = $1"))
            .bind(*version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_none() {
            for statement in statements {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query(&format!("INSERT INTO {versions} (version, applied_ms) VALUES ($1, $2)"))
                .bind(*version)
                .bind(crate::model::now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn the_lock_key_is_stable() {
        // FNV-1a 64 of the one byte 0x00, and of "chassis-jobs\0p_" (checked with an
        // independent implementation). These are fixed forever: a change would let
        // old and new replicas migrate at once.
        assert_eq!(lock_key("", "").to_be_bytes(), 0xaf63_bd4c_8601_b7dfu64.to_be_bytes());
        assert_eq!(lock_key("chassis-jobs", "p_"), 2_425_339_409_415_472_851);
        assert_eq!(lock_key("chassis-jobs", "p_"), lock_key("chassis-jobs", "p_"));
        assert_ne!(lock_key("chassis-jobs", "p_"), lock_key("chassis-jobs", "q_"));
        assert_ne!(lock_key("chassis-jobs", "p_"), lock_key("chassis-tasks", "p_"));
    }
}
