//! Real servers for tests: `moto_server` (SQS), etcd, a PostgreSQL schema —
//! each on free loopback ports, stopped when dropped.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Error, Result};

/// How `moto_server` is installed.
const INSTALL_MOTO: &str = "the SQS tests need it on PATH: pip install 'moto[server]' (scripts/test does this)";

/// How etcd is installed.
const INSTALL_ETCD: &str = "these tests start a real etcd. Install Debian's etcd-server \
                            (apt-get install -y etcd-server) or put etcd v3.4+ on PATH; scripts/test installs it";

/// A running `moto_server` (AWS emulator; SQS) on a free loopback port,
/// killed when dropped.
///
/// ```no_run
/// let moto = chassis_testkit::Moto::start()?;
/// // APP_TASKS__ENDPOINT=moto.endpoint(), region us-east-1, any credentials
/// assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
/// # Ok::<(), chassis_testkit::Error>(())
/// ```
#[derive(Debug)]
pub struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    /// Starts `moto_server` and waits (up to 30 s; this blocks the thread)
    /// until it accepts connections.
    ///
    /// # Errors
    /// [`Error::Missing`] when `moto_server` is not on `PATH`;
    /// [`Error::Unreachable`] when it does not listen within 30 s.
    pub fn start() -> Result<Self> {
        Self::start_with("moto_server")
    }

    /// [`start`](Self::start) with the program at `program` (a path, or a
    /// name looked up on `PATH`).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_with(program: impl AsRef<std::ffi::OsStr>) -> Result<Self> {
        let addr = crate::free_addr()?;
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::Missing { program: "moto_server", install: INSTALL_MOTO },
                _ => Error::Io(e),
            })?;
        let mut moto = Self { child, endpoint: format!("http://{addr}") };
        for _ in 0..150 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(Error::Unreachable { what: "moto_server".into(), detail: format!("it exited: {status}") });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::Unreachable { what: format!("moto_server on {addr}"), detail: "no listener within 30 s".into() })
    }

    /// Its URL, `http://127.0.0.1:<port>`: the SQS endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real etcd on free loopback ports with a temporary data directory,
/// killed when dropped; it can be stopped and started again on the same ports
/// and data (an outage).
///
/// ```no_run
/// # async fn example() -> Result<(), chassis_testkit::Error> {
/// let mut etcd = chassis_testkit::Etcd::start().await?;
/// let endpoint = etcd.endpoint(); // http://127.0.0.1:<port>
/// etcd.stop();                    // SIGKILL: an outage
/// etcd.restart().await?;          // back, same data
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Etcd {
    program: std::ffi::OsString,
    child: Option<Child>,
    dir: tempfile::TempDir,
    client: SocketAddr,
    peer: SocketAddr,
}

impl Etcd {
    /// Starts etcd and waits (up to 10 s) until `/health` answers.
    ///
    /// # Errors
    /// [`Error::Missing`] when `etcd` is not on `PATH`; [`Error::Unreachable`]
    /// with its log when it does not become healthy.
    pub async fn start() -> Result<Self> {
        Self::start_with("etcd").await
    }

    /// [`start`](Self::start) with the program at `program` (a path, or a
    /// name looked up on `PATH`).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn start_with(program: impl AsRef<std::ffi::OsStr>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let (client, peer) = (crate::free_addr()?, crate::free_addr()?);
        let mut etcd = Self { program: program.as_ref().to_owned(), child: None, dir, client, peer };
        etcd.restart().await?;
        Ok(etcd)
    }

    /// Its client URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.client)
    }

    /// Kills etcd (SIGKILL) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd (again, on the same ports and data) and waits until it is healthy.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        let peer = format!("http://{}", self.peer);
        let log = std::fs::File::create(self.dir.path().join("etcd.log"))?;
        let spawned = Command::new(&self.program)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args([
                "--name",
                "test",
                "--listen-client-urls",
                &self.endpoint(),
                "--advertise-client-urls",
                &self.endpoint(),
            ])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}"), "--log-level", "warn"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn();
        self.child = Some(spawned.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Missing { program: "etcd", install: INSTALL_ETCD },
            _ => Error::Io(e),
        })?);
        let http = reqwest::Client::new();
        for _ in 0..200 {
            let health = http.get(format!("{}/health", self.endpoint())).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        Err(Error::Unreachable { what: "etcd".into(), detail: format!("not healthy within 10 s; its log:\n{log}") })
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL schema of its own for one test, on the server the project's
/// machines run (`127.0.0.1:5432`, database `test`, trust auth:
/// [`DEFAULT_URL`](Self::DEFAULT_URL)), with a random name and a
/// table prefix of the same name, so tests in parallel never share a table.
/// [`drop_schema`](Self::drop_schema) removes it with everything in it.
///
/// ```no_run
/// # async fn example() -> Result<(), chassis_testkit::Error> {
/// use chassis_testkit::PgSchema;
///
/// let schema = PgSchema::create(PgSchema::DEFAULT_URL).await?;
/// // A URL whose connections use the schema: APP_JOBS__URL=schema.url()
/// let _ = (schema.url(), schema.prefix());
/// schema.drop_schema().await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub struct PgSchema {
    pool: sqlx::PgPool,
    name: String,
    url: String,
}

#[cfg(feature = "postgres")]
impl PgSchema {
    /// The test server of the project's machines.
    pub const DEFAULT_URL: &'static str = "postgres://postgres@127.0.0.1:5432/test";

    /// Creates a schema named `t_<random>` on the server at `server_url`.
    ///
    /// # Errors
    /// [`Error::Unreachable`] naming the server and what to start when it
    /// does not answer; [`Error::Sql`] when the schema cannot be created.
    pub async fn create(server_url: &str) -> Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(server_url)
            .await
            .map_err(|e| Error::Unreachable {
                what: format!("PostgreSQL at {server_url}"),
                detail: format!("{e}; start it (on Debian: apt-get install postgresql, trust auth, database `test`)"),
            })?;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&pool).await?;
        let separator = if server_url.contains('?') { '&' } else { '?' };
        let url = format!("{server_url}{separator}options=-c%20search_path%3D{name}");
        Ok(Self { pool, name, url })
    }

    /// A URL whose connections use the schema (`search_path`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name, `t_<32 hex digits>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A table prefix unique to this test, `t_<32 hex digits>_`, for stores
    /// that take one (`jobs.table_prefix`) on the server's default schema.
    pub fn prefix(&self) -> String {
        format!("{}_", self.name)
    }

    /// Drops the schema and everything in it, and the tables named with
    /// [`prefix`](Self::prefix) in any other schema.
    ///
    /// # Errors
    /// [`Error::Sql`].
    pub async fn drop_schema(self) -> Result<()> {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)).execute(&self.pool).await?;
        let prefixed: Vec<(String, String)> =
            sqlx::query_as("SELECT schemaname::text, tablename::text FROM pg_tables WHERE left(tablename, $2) = $1")
                .bind(self.prefix())
                .bind(i32::try_from(self.prefix().len()).unwrap_or(i32::MAX))
                .fetch_all(&self.pool)
                .await?;
        for (schema, table) in prefixed {
            sqlx::query(&format!("DROP TABLE IF EXISTS \"{schema}\".\"{table}\" CASCADE")).execute(&self.pool).await?;
        }
        self.pool.close().await;
        Ok(())
    }
}
