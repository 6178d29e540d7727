//! Structured logs for chassis services, on `tracing`.
//!
//! ```no_run
//! let _guard = chassis_log::init(&chassis_log::Config::new("billing", "1.4.2"))?;
//! chassis_log::with_job("0190c5e2", "import-catalog", || tracing::info!(rows = 120, "imported"));
//! # Ok::<(), chassis_log::Error>(())
//! ```
//!
//! - Formats: `pretty` (local development; colours only on a terminal),
//!   `compact`, `json` and `gcp` (Google Cloud Logging's structured format).
//! - In `json` and `gcp`, every line carries `service` and `version` (and the
//!   static labels), and the fields of every enclosing span — `job_id`,
//!   `job_name`, `task`, `exec_id`, `attempt`, your own — at the top level of the
//!   line, the innermost span winning a name clash. [`with_job`] and [`in_job`]
//!   open a job scope.
//! - `gcp` lines have `severity`, `message`, `time` (RFC 3339, nanoseconds),
//!   `logging.googleapis.com/sourceLocation`, `logging.googleapis.com/labels`
//!   (service, job id and name, static labels), the trace keys when a W3C
//!   `traceparent` (or `trace_id`/`span_id`/`trace_sampled`) is recorded on a
//!   span and `gcp_project` is set, `serviceContext` on ERROR lines, and an error
//!   field's source chain in `stack_trace`.
//! - Lines are always valid JSON; a line over `max_line_bytes` (256 KiB) is
//!   filled to the limit and no further: its longest string values are cut to
//!   one common length (short ones stay whole), always the same way for the
//!   same event, and the line is marked `"truncated":true`.
//! - Records of the `log` crate are captured, and a panic writes one ERROR line
//!   before the default hook runs; in `gcp` its `sourceLocation` is the panic's
//!   file, line and function (from a backtrace, when debug info has it), so
//!   Error Reporting groups panics by where they happened.
//!
//! Span fields are rendered once, when the span is created or recorded (a
//! field recorded later on a span reaches the spans opened inside it after that,
//! not those already open).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod encode;
mod error;
mod fields;
mod job;
mod layer;
mod panic;
mod time;
mod trace;

use std::io::{IsTerminal as _, Write as _};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;

pub use config::{Config, Format, Output};
pub use error::{Error, Result};
pub use job::{in_job, job_span, with_job};
pub use layer::JsonLayer;
pub use panic::install_panic_hook;

/// The README's code blocks, compiled and run as doctests so that they keep
/// matching the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Keeps logging alive; dropping it flushes every line logged so far.
#[must_use = "dropping the guard flushes and, with non_blocking, stops the writer thread"]
#[derive(Debug)]
pub struct Guard {
    worker: Option<tracing_appender::non_blocking::WorkerGuard>,
    output: Output,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // The worker guard joins the writer thread after it drained the queue.
        drop(self.worker.take());
        let _ = match self.output {
            Output::Stdout => std::io::stdout().flush(),
            Output::Stderr => std::io::stderr().flush(),
        };
    }
}

/// Installs the global subscriber described by `config`, captures `log`
/// records, and (unless disabled) the panic hook.
///
/// # Errors
/// Invalid filter directives (in `config.filter` or `RUST_LOG`), a bad label
/// or line-limit setting, or a subscriber already installed.
pub fn init(config: &Config) -> Result<Guard> {
    init_with(config, None)
}

/// A layer to install under chassis-log's own, in the same subscriber: an
/// OpenTelemetry layer, for instance (chassis-service's `otel` feature).
pub type ExtraLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// [`init`], with `extra` installed too: it sees every span and event the
/// filter lets through, as the format's layer does.
///
/// # Errors
/// As [`init`].
pub fn init_with(config: &Config, extra: Option<ExtraLayer>) -> Result<Guard> {
    #[allow(clippy::disallowed_methods)] // RUST_LOG is the standard override
    let rust_log = if config.use_rust_log { std::env::var("RUST_LOG").ok() } else { None };
    let filter = filter(config, rust_log.as_deref())?;
    let (writer, worker) = writer(config);
    let ansi = match config.output {
        Output::Stdout => std::io::stdout().is_terminal(),
        Output::Stderr => std::io::stderr().is_terminal(),
    };
    let layer: Box<dyn tracing_subscriber::Layer<_> + Send + Sync> = match config.format {
        Format::Json | Format::Gcp => Box::new(JsonLayer::new(config, writer)?),
        Format::Compact => Box::new(tracing_subscriber::fmt::layer().compact().with_ansi(ansi).with_writer(writer)),
        Format::Pretty => Box::new(tracing_subscriber::fmt::layer().pretty().with_ansi(ansi).with_writer(writer)),
    };
    tracing_subscriber::registry()
        .with(extra)
        .with(layer)
        .with(filter)
        .try_init()
        .map_err(Error::AlreadyInitialized)?;
    if config.panic_hook {
        install_panic_hook();
    }
    Ok(Guard { worker, output: config.output })
}

/// The filter: `RUST_LOG` when given and non-empty, else `config.filter`.
fn filter(config: &Config, rust_log: Option<&str>) -> Result<EnvFilter> {
    let (directives, origin) = match rust_log.filter(|r| !r.trim().is_empty()) {
        Some(r) => (r, "RUST_LOG"),
        None => (config.filter.as_str(), "log.filter"),
    };
    EnvFilter::builder().parse(directives).map_err(|source| Error::Filter {
        directives: directives.to_owned(),
        origin,
        source,
    })
}

fn writer(config: &Config) -> (BoxMakeWriter, Option<tracing_appender::non_blocking::WorkerGuard>) {
    match (config.output, config.non_blocking) {
        (Output::Stdout, false) => (BoxMakeWriter::new(std::io::stdout), None),
        (Output::Stderr, false) => (BoxMakeWriter::new(std::io::stderr), None),
        (output, true) => {
            let builder = tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false);
            let (writer, guard) = match output {
                Output::Stdout => builder.finish(std::io::stdout()),
                Output::Stderr => builder.finish(std::io::stderr()),
            };
            (BoxMakeWriter::new(writer), Some(guard))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_over_the_config_and_bad_directives_are_named() {
        let config = Config { filter: "warn".into(), ..Config::default() };
        assert_eq!(filter(&config, Some("debug")).unwrap().to_string(), "debug");
        assert_eq!(filter(&config, Some(" ")).unwrap().to_string(), "warn");
        assert_eq!(filter(&config, None).unwrap().to_string(), "warn");
        let err = filter(&config, Some("app=notalevel")).unwrap_err();
        assert!(err.to_string().contains("RUST_LOG") && err.to_string().contains("app=notalevel"), "{err}");
        let bad = Config { filter: "=[".into(), ..Config::default() };
        assert!(filter(&bad, None).unwrap_err().to_string().contains("log.filter"));
    }
}
