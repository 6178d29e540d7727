//! A writer that captures lines, a fixed clock, and subscribers built from them.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chassis_log::{Config, Format, JsonLayer};
use serde_json::{Map, Value};
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Captures everything written to it.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

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
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("output is UTF-8")
    }

    /// Every line, each of which must be exactly one JSON object.
    pub fn lines(&self) -> Vec<Map<String, Value>> {
        self.text()
            .lines()
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(map)) => map,
                other => panic!("not one JSON object: {other:?}\n{line}"),
            })
            .collect()
    }
}

/// 2026-11-29T02:10:00.123456789Z
pub fn fixed_clock() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_795_918_200, 123_456_789)
}

pub fn config(format: Format) -> Config {
    let mut config = Config::new("billing", "1.4.2").format(format);
    config.labels.insert("team".into(), "payments".into());
    config
}

/// A subscriber writing `config`'s JSON format into a capture, at TRACE.
pub fn subscriber(config: &Config) -> (impl Subscriber + Send + Sync + use<>, Capture) {
    let capture = Capture::default();
    let layer = JsonLayer::new(config, capture.clone()).unwrap().with_clock(fixed_clock);
    (tracing_subscriber::registry().with(layer), capture)
}

/// Runs `f` with a JSON subscriber and returns the lines it wrote.
pub fn lines_of(config: &Config, f: impl FnOnce()) -> Vec<Map<String, Value>> {
    let (subscriber, capture) = subscriber(config);
    tracing::subscriber::with_default(subscriber, f);
    capture.lines()
}
