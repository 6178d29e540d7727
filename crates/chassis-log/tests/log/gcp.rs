//! Point 4: the `gcp` format, key by key.

use std::fmt;

use chassis_log::Format;
use serde_json::json;

use crate::support::{config, lines_of};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn severities_map_as_cloud_logging_expects() {
    let lines = lines_of(&config(Format::Gcp), || {
        tracing::trace!("t");
        tracing::debug!("d");
        tracing::info!("i");
        tracing::warn!("w");
        tracing::error!("e");
    });
    let severities: Vec<_> = lines.iter().map(|l| l["severity"].clone()).collect();
    assert_eq!(severities, [json!("DEBUG"), json!("DEBUG"), json!("INFO"), json!("WARNING"), json!("ERROR")]);
}

#[test]
fn message_time_and_source_location() {
    let lines = lines_of(&config(Format::Gcp), || tracing::info!("hello {}", "world"));
    let line = &lines[0];
    assert_eq!(line["message"], "hello world");
    assert_eq!(line["time"], "2026-11-29T02:10:00.123456789Z");
    let location = &line["logging.googleapis.com/sourceLocation"];
    assert_eq!(location["file"], file!());
    assert!(location["line"].is_string(), "line is a string: {location}");
    assert!(location["line"].as_str().unwrap().parse::<u32>().is_ok());
    assert_eq!(location["function"], module_path!());
}

#[test]
fn labels_are_strings_with_job_context() {
    let lines = lines_of(&config(Format::Gcp), || {
        let span = tracing::info_span!("job", job_id = 17u64, job_name = "import");
        let _e = span.enter();
        tracing::info!("x");
    });
    let labels = lines[0]["logging.googleapis.com/labels"].as_object().unwrap().clone();
    assert_eq!(json!(labels), json!({"service": "billing", "job_id": "17", "job_name": "import", "team": "payments"}));
    assert!(labels.values().all(serde_json::Value::is_string));
}

#[test]
fn trace_keys_need_a_trace_context_and_a_project() {
    let mut with_project = config(Format::Gcp);
    with_project.gcp_project = Some("acme-prod".into());
    let in_trace = || {
        let span = tracing::info_span!("request", traceparent = TRACEPARENT);
        let _e = span.enter();
        tracing::info!("traced");
    };
    let line = &lines_of(&with_project, in_trace)[0];
    assert_eq!(line["logging.googleapis.com/trace"], "projects/acme-prod/traces/4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
    assert_eq!(line["logging.googleapis.com/trace_sampled"], true);

    let without_project = &lines_of(&config(Format::Gcp), in_trace)[0];
    assert!(without_project.get("logging.googleapis.com/trace").is_none());
    // Without trace keys to write, the trace fields are not read, only written.
    assert_eq!(without_project["traceparent"], TRACEPARENT);
    let json = &lines_of(&config(Format::Json), in_trace)[0];
    assert_eq!(json["traceparent"], TRACEPARENT);
    assert!(json.get("logging.googleapis.com/trace").is_none());
    let outside = &lines_of(&with_project, || tracing::info!("untraced"))[0];
    assert!(outside.get("logging.googleapis.com/trace").is_none());

    let explicit = &lines_of(&with_project, || {
        let span = tracing::info_span!("r", trace_id = "abc", span_id = "def", trace_sampled = false);
        let _e = span.enter();
        let inner = tracing::info_span!("inner", span_id = "123");
        let _i = inner.enter();
        tracing::info!("explicit");
    })[0];
    assert_eq!(explicit["logging.googleapis.com/trace"], "projects/acme-prod/traces/abc");
    assert_eq!(explicit["logging.googleapis.com/spanId"], "123");
    assert_eq!(explicit["logging.googleapis.com/trace_sampled"], false);
}

#[derive(Debug)]
struct Outer(Inner);
#[derive(Debug)]
struct Inner;

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("charging card failed")
    }
}
impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection reset")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl std::error::Error for Inner {}

#[test]
fn errors_carry_service_context_and_their_source_chain() {
    let lines = lines_of(&config(Format::Gcp), || {
        let err = Outer(Inner);
        tracing::error!(error = &err as &(dyn std::error::Error + 'static), "payment failed");
        tracing::warn!("no context on warnings");
    });
    let error = &lines[0];
    assert_eq!(error["serviceContext"], json!({"service": "billing", "version": "1.4.2"}));
    assert_eq!(error["stack_trace"], "charging card failed\ncaused by: connection reset");
    assert_eq!(error["error"], "charging card failed");
    assert!(lines[1].get("serviceContext").is_none() && lines[1].get("stack_trace").is_none());
}
