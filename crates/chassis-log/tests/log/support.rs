//! A writer that captures lines, a fixed clock, and subscribers built from them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chassis_log::{Config, Format, JsonLayer};
use serde_json::{Map, Value};
use tracing::Subscriber;
use tracing_subscriber::prelude::*;

/// Captures everything written to it (chassis-testkit's).
pub use chassis_testkit::logs::Capture;

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
