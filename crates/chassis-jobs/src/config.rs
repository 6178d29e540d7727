//! [`Config`]: the `jobs` section.

use chassis_bounds::Secret;
use chassis_bounds::{Check, Violation};
use serde::{Deserialize, Serialize};

mod bounds;

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
///
/// Its [`Check`] (`Loader::check::<chassis_jobs::Config>("jobs")`) finds what
/// [`Jobs::from_config`](crate::Jobs::from_config) would refuse, so it is in
/// the one configuration report instead.
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
    /// Connections in the pool, at least 1 (opened as needed). Default: 5.
    #[serde(deserialize_with = "bounds::at_least::<_, u32, 1>")]
    pub pool_size: u32,
    /// Prefix of the table names, so services can share a database. Default: `chassis_`.
    pub table_prefix: String,
    /// Finished jobs are purged after this many days: `0` purges every
    /// finished job at each purge; the largest values (up to `u64::MAX`)
    /// saturate and never purge. Default: 30.
    pub retention_days: u64,
    /// A job still short of sent tasks (its sender stopped half-way) is failed
    /// by [`Jobs::fail_stranded`](crate::Jobs::fail_stranded) once it has not
    /// changed for this many seconds, at least 10 (a shorter grace would fail
    /// jobs whose tasks are still being sent: a send retries for up to a few
    /// seconds); the largest values (up to `u64::MAX`) never fail one. Default: 600.
    #[serde(deserialize_with = "bounds::at_least::<_, u64, 10>")]
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

/// What [`Jobs::from_config`](crate::Jobs::from_config) needs beyond each
/// field's range: a `backend` whose crate feature is on, a `url` with
/// `backend = "postgres"`, and a `table_prefix` of letters, digits and `_`.
impl Check for Config {
    fn check(&self) -> Vec<Violation> {
        let mut found = Vec::new();
        let feature = match self.backend {
            Backend::Memory => None,
            Backend::Sqlite => (!cfg!(feature = "sqlite")).then_some("sqlite"),
            Backend::Postgres => (!cfg!(feature = "postgres")).then_some("postgres"),
        };
        if let Some(feature) = feature {
            found.push(Violation::new(
                "backend",
                format_args!("{feature:?}"),
                format_args!("a backend this build has (`memory`, or enable the chassis-jobs feature `{feature}`)"),
            ));
        }
        if self.backend == Backend::Postgres && self.url.is_none() {
            found.push(
                Violation::new("url", "none", "a PostgreSQL URL (postgres://…) with backend = \"postgres\"")
                    .related("backend"),
            );
        }
        if !self.table_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            found.push(Violation::new(
                "table_prefix",
                format_args!("{:?}", self.table_prefix),
                "letters, digits and `_` only",
            ));
        }
        found
    }
}
