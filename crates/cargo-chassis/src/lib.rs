//! `cargo chassis new NAME`: a new chassis service in one command.
//!
//! The templates are embedded in the binary (no network, no `cargo-generate`)
//! and rendered with minijinja. A generated service has `Cargo.toml` (the
//! chassis facade with exactly the features chosen), `src/lib.rs` (settings,
//! loader and the builder `main` and the tests share), a short `src/main.rs`,
//! `src/tasks.rs` with one example task, `config/default.toml` and
//! `config/production.toml`, tests on chassis-testkit, a multi-stage non-root
//! `Dockerfile`, `deploy/k8s/` (Deployment with probes on the admin port, a
//! Secret for `*_FILE` settings, a Service), a CI workflow and a README.
//!
//! ```
//! use cargo_chassis::{Discovery, JobStore, Options, QueueBackend, generate};
//!
//! let dir = tempfile::tempdir()?;
//! let options = Options::new("billing")?.queue(QueueBackend::Sqlite).jobs(JobStore::Sqlite);
//! let files = generate(&options, &dir.path().join("billing"))?;
//! assert!(files.iter().any(|f| f.ends_with("deploy/k8s/deployment.yaml")));
//! assert!(Options::new("2fast").is_err(), "a crate name starts with a letter");
//! # let _ = Discovery::None;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The README's code blocks, compiled as doctests so that they keep matching
/// the code (it has only a shell block yet; a Rust block added later is
/// compiled).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Why a service could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name is not a valid crate name.
    #[error("`{name}` is not a valid crate name: {why}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An option's value is not one it takes.
    #[error("`{value}` is not a value of {option} (expected one of: {expected})")]
    InvalidValue {
        /// The option (`--queue`).
        option: &'static str,
        /// The value given.
        value: String,
        /// The values it takes.
        expected: &'static str,
    },
    /// The target directory exists and is not empty.
    #[error("{} already exists and is not empty: choose another name or directory", .0.display())]
    NotEmpty(PathBuf),
    /// A template did not render (a bug of this crate).
    #[error("template {name}")]
    Template {
        /// The template.
        name: &'static str,
        /// Why.
        #[source]
        source: minijinja::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! choice {
    ($(#[$doc:meta])* $name:ident, $option:literal, $expected:literal, { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in the order `--help` lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// Its name on the command line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(value: &str) -> Result<Self> {
                match value {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(Error::InvalidValue { option: $option, value: value.to_owned(), expected: $expected }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// The task queue (`--queue`).
    QueueBackend, "--queue", "memory, sqlite, sqs, postgres", {
        /// In memory: lost when the process stops (feature `tasks`).
        Memory = "memory",
        /// A durable SQLite file (feature `tasks-sqlite`).
        Sqlite = "sqlite",
        /// AWS SQS (feature `tasks-sqs`).
        Sqs = "sqs",
        /// PostgreSQL, shared by every instance (feature `tasks-postgres`).
        Postgres = "postgres",
    }
);

choice!(
    /// The job store (`--jobs`).
    JobStore, "--jobs", "none, sqlite, postgres", {
        /// No job tracking.
        None = "none",
        /// SQLite (features `jobs-sqlite`, `jobs-http`).
        Sqlite = "sqlite",
        /// PostgreSQL (features `jobs-postgres`, `jobs-http`).
        Postgres = "postgres",
    }
);

choice!(
    /// Service registration and discovery (`--discovery`).
    Discovery, "--discovery", "none, dns, etcd", {
        /// None.
        None = "none",
        /// DNS (SRV, A/AAAA) (feature `discovery-dns`).
        Dns = "dns",
        /// etcd, registering while ready (feature `discovery-etcd`).
        Etcd = "etcd",
    }
);

/// What to generate: the name and the choices. Defaults: `--queue sqlite`,
/// `--jobs none`, `--discovery none`, no `--otel`, chassis from crates.io.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    name: String,
    queue: QueueBackend,
    jobs: JobStore,
    discovery: Discovery,
    otel: bool,
    chassis_path: Option<PathBuf>,
}

/// Words a crate cannot be named: Rust keywords, and the names the generated
/// crate already uses for its dependencies.
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "test",
    "core",
    "std",
    "alloc",
    "proc_macro",
    "chassis",
    "chassis_kit",
    "chassis_testkit",
    "axum",
    "serde",
    "serde_json",
    "tokio",
    "tracing",
    "reqwest",
    "tempfile",
];

impl Options {
    /// Options for a service named `name`: ASCII letters, digits, `-` and
    /// `_`, starting with a letter, at most 64 characters, not a Rust keyword
    /// nor a dependency's name.
    ///
    /// # Errors
    /// [`Error::InvalidName`] saying what is wrong.
    pub fn new(name: &str) -> Result<Self> {
        let invalid = |why| Err(Error::InvalidName { name: name.to_owned(), why });
        if name.is_empty() {
            return invalid("it is empty");
        }
        if name.len() > 64 {
            return invalid("it is longer than 64 characters");
        }
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return invalid("it must start with an ASCII letter");
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return invalid("only ASCII letters, digits, `-` and `_` are allowed");
        }
        if RESERVED.contains(&name.replace('-', "_").as_str()) {
            return invalid("it is a Rust keyword or the name of a dependency of the service");
        }
        Ok(Self {
            name: name.to_owned(),
            queue: QueueBackend::Sqlite,
            jobs: JobStore::None,
            discovery: Discovery::None,
            otel: false,
            chassis_path: None,
        })
    }

    /// The task queue.
    #[must_use]
    pub fn queue(mut self, queue: QueueBackend) -> Self {
        self.queue = queue;
        self
    }

    /// The job store.
    #[must_use]
    pub fn jobs(mut self, jobs: JobStore) -> Self {
        self.jobs = jobs;
        self
    }

    /// Registration and discovery.
    #[must_use]
    pub fn discovery(mut self, discovery: Discovery) -> Self {
        self.discovery = discovery;
        self
    }

    /// Span export over OTLP/HTTP (feature `otel`).
    #[must_use]
    pub fn otel(mut self, otel: bool) -> Self {
        self.otel = otel;
        self
    }

    /// Depends on a local clone of the chassis repository at `path` instead
    /// of crates.io (for chassis' own tests, and for trying unreleased work).
    #[must_use]
    pub fn chassis_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.chassis_path = Some(path.into());
        self
    }

    /// The chassis facade's features for these choices, in a fixed order.
    pub fn features(&self) -> Vec<&'static str> {
        let mut features = vec!["config", "log", "service"];
        features.push(match self.queue {
            QueueBackend::Memory => "tasks",
            QueueBackend::Sqlite => "tasks-sqlite",
            QueueBackend::Sqs => "tasks-sqs",
            QueueBackend::Postgres => "tasks-postgres",
        });
        match self.jobs {
            JobStore::None => {}
            JobStore::Sqlite => features.extend(["jobs-sqlite", "jobs-http"]),
            JobStore::Postgres => features.extend(["jobs-postgres", "jobs-http"]),
        }
        match self.discovery {
            Discovery::None => {}
            Discovery::Dns => features.push("discovery-dns"),
            Discovery::Etcd => features.push("discovery-etcd"),
        }
        if self.otel {
            features.push("otel");
        }
        features
    }
}

/// The templates: (path in the service, template text).
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("templates/Cargo.toml.j2")),
    ("README.md", include_str!("templates/README.md.j2")),
    (".gitignore", include_str!("templates/gitignore.j2")),
    (".dockerignore", include_str!("templates/dockerignore.j2")),
    ("Dockerfile", include_str!("templates/Dockerfile.j2")),
    ("src/lib.rs", include_str!("templates/src/lib.rs.j2")),
    ("src/main.rs", include_str!("templates/src/main.rs.j2")),
    ("src/tasks.rs", include_str!("templates/src/tasks.rs.j2")),
    ("config/default.toml", include_str!("templates/config/default.toml.j2")),
    ("config/production.toml", include_str!("templates/config/production.toml.j2")),
    ("tests/service.rs", include_str!("templates/tests/service.rs.j2")),
    ("deploy/k8s/deployment.yaml", include_str!("templates/deploy/k8s/deployment.yaml.j2")),
    ("deploy/k8s/service.yaml", include_str!("templates/deploy/k8s/service.yaml.j2")),
    ("deploy/k8s/secret.yaml", include_str!("templates/deploy/k8s/secret.yaml.j2")),
    (".github/workflows/ci.yml", include_str!("templates/github/ci.yml.j2")),
];

/// The admin port the templates probe: chassis-service's default `admin_addr` port.
pub const ADMIN_PORT: u16 = 9090;
/// The API port: chassis-service's default `http_addr` port.
pub const API_PORT: u16 = 8080;
/// chassis-service's default `drain_delay_secs`.
pub const DRAIN_DELAY_SECS: u64 = 5;
/// chassis-service's default `shutdown_deadline_secs`.
pub const SHUTDOWN_DEADLINE_SECS: u64 = 30;
/// `terminationGracePeriodSeconds`: the drain delay and the shutdown deadline, plus 10 s to spare.
pub const GRACE_PERIOD_SECS: u64 = DRAIN_DELAY_SECS + SHUTDOWN_DEADLINE_SECS + 10;

/// Writes the service `options` describe into `dir` (created; it must not
/// exist or be empty) and returns the files written, in order.
///
/// # Errors
/// [`Error::NotEmpty`] when `dir` has anything in it (nothing is written);
/// [`Error::Io`] when a file cannot be written.
pub fn generate(options: &Options, dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            if entries.into_iter().next().is_some() {
                return Err(Error::NotEmpty(dir.to_owned()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Err(Error::NotEmpty(dir.to_owned())),
        Err(e) => return Err(io(dir)(e)),
    }
    let rendered = render(options)?;
    let mut written = Vec::with_capacity(rendered.len());
    for (path, text) in rendered {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// Renders every file of the service `options` describe: (path, text).
///
/// # Errors
/// [`Error::Template`]: a bug of this crate.
pub fn render(options: &Options) -> Result<Vec<(&'static str, String)>> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    let chassis = match &options.chassis_path {
        Some(path) => format!("path = {}", toml_string(&path.display().to_string())),
        None => format!("version = \"{}\"", env!("CARGO_PKG_VERSION")),
    };
    let testkit = match &options.chassis_path {
        Some(path) => format!("path = {}", toml_string(&path.join("crates/chassis-testkit").display().to_string())),
        None => format!("version = \"{}\"", env!("CARGO_PKG_VERSION")),
    };
    let features: Vec<String> = options.features().iter().map(|f| format!("\"{f}\"")).collect();
    let context = minijinja::context! {
        name => options.name,
        crate_name => options.name.replace('-', "_"),
        queue => options.queue.as_str(),
        jobs => options.jobs.as_str(),
        discovery => options.discovery.as_str(),
        otel => options.otel,
        chassis_source => chassis,
        testkit_source => testkit,
        testkit_postgres => options.queue == QueueBackend::Postgres || options.jobs == JobStore::Postgres,
        features => features.join(", "),
        local_chassis => options.chassis_path.is_some(),
        admin_port => ADMIN_PORT,
        api_port => API_PORT,
        grace_period_secs => GRACE_PERIOD_SECS,
    };
    TEMPLATES
        .iter()
        .map(|(name, text)| {
            let rendered = env.render_str(text, &context).map_err(|source| Error::Template { name, source })?;
            Ok((*name, rendered))
        })
        .collect()
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["billing", "billing-api", "b2", "a_b"] {
            assert!(Options::new(good).is_ok(), "{good}");
        }
        for bad in ["", "2fast", "-x", "bil ling", "bïlling", "self", "test", "chassis", "tokio", &"x".repeat(65)] {
            assert!(matches!(Options::new(bad), Err(Error::InvalidName { .. })), "{bad}");
        }
    }

    #[test]
    fn features_are_exactly_the_choices() {
        let options = Options::new("b").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(options.features(), ["config", "log", "service", "tasks-sqlite"]);
        let all = options.queue(QueueBackend::Sqs).jobs(JobStore::Postgres).discovery(Discovery::Etcd).otel(true);
        assert_eq!(
            all.features(),
            ["config", "log", "service", "tasks-sqs", "jobs-postgres", "jobs-http", "discovery-etcd", "otel"]
        );
    }

    #[test]
    fn values_parse_or_say_what_is_expected() {
        assert_eq!("postgres".parse::<QueueBackend>().ok(), Some(QueueBackend::Postgres));
        let error = "mysql".parse::<JobStore>().err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("`mysql` is not a value of --jobs (expected one of: none, sqlite, postgres)")
        );
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
