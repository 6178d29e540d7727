//! Golden files, one per format: a fixed scenario, a fixed clock, byte for byte.
//! `UPDATE_GOLDEN=1 cargo test -p chassis-log` rewrites them after an intended change.

use std::path::PathBuf;

use chassis_log::{Format, JsonLayer, with_job};
use tracing_subscriber::prelude::*;

use crate::support::{Capture, config, fixed_clock};

/// The scenario every format writes. Line numbers below are part of the golden
/// output of the `gcp` format: edit with care.
fn scenario() {
    tracing::info!(user = "ada", count = 3, ratio = 0.5, ok = true, "plain event");
    with_job("0190c5e2-7b1a-7cc1-9f0e-3d2d6c9b5a10", "import-catalog", || {
        let task = tracing::info_span!("task", task = "fetch", exec_id = "e-1", attempt = 1u32);
        let _t = task.enter();
        tracing::warn!(url = "https://api.example/x?a=\"b\"", "retrying \"fetch\"\n(second line)");
        tracing::error!(code = 503, "gave up");
    });
    tracing::debug!(r#type = "raw", "after the job");
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    #[allow(clippy::disallowed_methods)] // a test switch, not configuration
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(actual, expected, "{name} changed; rerun with UPDATE_GOLDEN=1 if intended");
}

fn json_format(format: Format) -> String {
    let mut c = config(format);
    c.gcp_project = Some("acme-prod".into());
    let capture = Capture::default();
    let layer = JsonLayer::new(&c, capture.clone()).unwrap().with_clock(fixed_clock);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), scenario);
    capture.text()
}

fn fmt_format(pretty: bool) -> String {
    let capture = Capture::default();
    let layer = tracing_subscriber::fmt::layer().without_time().with_ansi(false).with_writer(capture.clone());
    if pretty {
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer.pretty()), scenario);
    } else {
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer.compact()), scenario);
    }
    capture.text()
}

#[test]
fn json_golden() {
    golden("json.jsonl", &json_format(Format::Json));
}

#[test]
fn gcp_golden() {
    golden("gcp.jsonl", &json_format(Format::Gcp));
}

#[test]
fn compact_golden() {
    golden("compact.txt", &fmt_format(false));
}

#[test]
fn pretty_golden() {
    golden("pretty.txt", &fmt_format(true));
}
