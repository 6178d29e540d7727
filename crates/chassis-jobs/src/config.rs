//! [`Config`]: the `jobs` section.

use chassis_config::Secret;
use serde::{Deserialize, Serialize};

/// Where jobs are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Backend {
    /// In memory: lost on restart (tests, examples).
    Memory,
    /// A SQLite file (feature `sqlite`): the embedded durable default.
    #[default]
    Sqlite,
    /// PostgreSQL (feature `postgres`), shared by every instance.
    Postgres,
}

/// Job tracking configuration: the `jobs` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The backend. Default: `sqlite`.
    pub backend: Backend,
    /// The SQLite file. Default: `data/jobs.db` (created, with its directory).
    pub path: String,
    /// The PostgreSQL URL (`postgres://user:password@host/db`); a secret, so
    /// `APP_JOBS__URL_FILE` can read it from a mounted file. Default: none.
    pub url: Option<Secret<String>>,
    /// Connections in the pool. Default: 5.
    pub pool_size: u32,
    /// Prefix of the table names, so services can share a database. Default: `chassis_`.
    pub table_prefix: String,
    /// Finished jobs are purged after this many days. Default: 30.
    pub retention_days: u64,
    /// A job still short of sent tasks (its sender stopped half-way) is failed
    /// by [`Jobs::fail_stranded`](crate::Jobs::fail_stranded) once it has not
    /// changed for this many seconds. Default: 600.
    pub stranded_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            path: "data/jobs.db".into(),
            url: None,
            pool_size: 5,
            table_prefix: "chassis_".into(),
            retention_days: 30,
            stranded_grace_secs: 600,
        }
    }
}

impl Config {
    /// The grace period of a stranded job as a duration.
    pub fn stranded_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.stranded_grace_secs)
    }

    /// The retention as a duration.
    pub fn retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.retention_days.saturating_mul(86_400))
    }
}
