//! Log capture: a [`Capture`] that chassis-log's JSON layer writes into, and
//! its lines as JSON maps.
//!
//! A [`TestService`](crate::TestService) has a capture of its own (its
//! runtime's threads log into it). For code that runs on the test's own
//! runtime, [`capture`] installs one global capture per process: tests that
//! run in parallel in one binary then see each other's lines, and pick theirs
//! by a field of their own (a request id, a job id).

use std::io;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde_json::{Map, Value};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// One log line: a JSON object, its fields by name.
pub type Line = Map<String, Value>;

/// Captures everything written to it; clones share the buffer. A
/// [`MakeWriter`] for a `tracing` layer (chassis-log's `JsonLayer`).
///
/// ```
/// use chassis_testkit::logs::Capture;
/// use tracing_subscriber::prelude::*;
///
/// let capture = Capture::default();
/// let config = chassis_log::Config::new("billing", "1.4.2").format(chassis_log::Format::Json);
/// let layer = chassis_log::JsonLayer::new(&config, capture.clone()).unwrap();
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || tracing::info!(rows = 3, "imported"));
/// let lines = capture.lines();
/// assert_eq!(lines[0]["message"], "imported");
/// assert_eq!(lines[0]["rows"], 3);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

/// The writer of a [`Capture`], one per event.
#[derive(Debug)]
pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(self.0.clone())
    }
}

impl Capture {
    /// Everything written so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// How many bytes were written so far: an offset for [`lines_since`](Self::lines_since).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every line, each of which must be one JSON object.
    ///
    /// # Panics
    /// On a line that is not one JSON object, showing it: a test of JSON
    /// output fails there.
    #[allow(clippy::panic)] // a test helper: the failure is the test's
    pub fn lines(&self) -> Vec<Line> {
        self.text()
            .lines()
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(map)) => map,
                other => panic!("not one JSON object: {other:?}\n{line}"),
            })
            .collect()
    }

    /// The lines written after the first `offset` bytes ([`len`](Self::len)
    /// before), skipping any that is not one JSON object.
    pub fn lines_since(&self, offset: usize) -> Logs {
        let buffer = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let tail = String::from_utf8_lossy(buffer.get(offset..).unwrap_or_default()).into_owned();
        drop(buffer);
        Logs(tail.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()?.as_object().cloned()).collect())
    }
}

/// A dispatcher writing chassis-log's JSON format (with `config`'s service,
/// version, labels and filter) into `capture`.
pub(crate) fn dispatch(config: &chassis_log::Config, capture: Capture) -> chassis_log::Result<tracing::Dispatch> {
    let config = config.clone().format(chassis_log::Format::Json);
    let filter = tracing_subscriber::EnvFilter::try_new(&config.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let layer = chassis_log::JsonLayer::new(&config, capture)?;
    Ok(tracing::Dispatch::new(tracing_subscriber::registry().with(layer.with_filter(filter))))
}

/// Installs, once per process, a global subscriber writing chassis-log's JSON
/// format (with `config`'s service, version, labels and filter; the first
/// call's config wins) into one [`Capture`], and returns it. When another
/// global subscriber was installed first, the capture stays empty and a
/// warning says so.
///
/// ```
/// let config = chassis_log::Config::new("billing", "1.4.2");
/// let capture = chassis_testkit::logs::capture(&config);
/// let before = capture.len();
/// tracing::info!(order = 7, "shipped");
/// assert!(capture.lines_since(before).find(|l| l["order"] == 7).is_some());
/// ```
pub fn capture(config: &chassis_log::Config) -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let installed = dispatch(config, capture.clone()).map(tracing::dispatcher::set_global_default);
        if !matches!(installed, Ok(Ok(()))) {
            tracing::warn!("a global subscriber was already installed: chassis-testkit captures no log lines");
        }
        capture
    })
}

/// Captured log lines, with ways to look for one.
///
/// ```
/// # let capture = chassis_testkit::logs::Capture::default();
/// # use std::io::Write;
/// # use tracing_subscriber::fmt::MakeWriter;
/// # capture.make_writer().write_all(b"{\"message\":\"request\",\"request_id\":\"r-1\"}\n").unwrap();
/// let logs = capture.lines_since(0);
/// let line = logs.find(|l| l["message"] == "request").unwrap();
/// assert_eq!(line["request_id"], "r-1");
/// assert_eq!(logs.with("request_id", "r-1").len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Logs(Vec<Line>);

impl Logs {
    /// The first line `predicate` accepts.
    pub fn find(&self, mut predicate: impl FnMut(&Line) -> bool) -> Option<&Line> {
        self.0.iter().find(|line| predicate(line))
    }

    /// Every line `predicate` accepts.
    pub fn filter(&self, mut predicate: impl FnMut(&Line) -> bool) -> Vec<&Line> {
        self.0.iter().filter(|line| predicate(line)).collect()
    }

    /// Every line whose field `key` is the string `value` (`"request_id"`, `"job_id"`).
    pub fn with(&self, key: &str, value: &str) -> Vec<&Line> {
        self.filter(|line| line.get(key).and_then(Value::as_str) == Some(value))
    }

    /// Every line.
    pub fn all(&self) -> &[Line] {
        &self.0
    }

    /// How many lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
