//! Points 2 and 3: service fields on every line; job context on every line inside
//! a job, at the top level, following `.await`, never leaking.

use chassis_log::{Format, in_job, job_span, with_job};
use serde_json::json;
use tracing::Instrument;

use crate::support::{config, lines_of, subscriber};

#[test]
fn every_line_carries_service_version_and_labels() {
    for format in [Format::Json, Format::Gcp] {
        let lines = lines_of(&config(format), || {
            for i in 0..100 {
                tracing::info!(i, "line");
            }
            with_job("j-1", "import", || tracing::warn!("inside"));
            tracing::error!("after");
        });
        assert_eq!(lines.len(), 102);
        for line in &lines {
            match format {
                Format::Gcp => {
                    let labels = &line["logging.googleapis.com/labels"];
                    assert_eq!(labels["service"], "billing", "{line:?}");
                    assert_eq!(labels["team"], "payments", "{line:?}");
                }
                _ => {
                    assert_eq!(line["service"], "billing", "{line:?}");
                    assert_eq!(line["version"], "1.4.2", "{line:?}");
                    assert_eq!(line["team"], "payments", "{line:?}");
                }
            }
        }
    }
}

#[test]
fn span_fields_are_top_level_and_the_innermost_span_wins() {
    let lines = lines_of(&config(Format::Json), || {
        let job = job_span("j-42", "import-catalog");
        let _job = job.enter();
        let task = tracing::info_span!("task", task = "fetch", exec_id = "e-7", attempt = 2u32, job_name = "override");
        let _task = task.enter();
        tracing::info!(rows = 10, "fetched");
        tracing::info!(attempt = 3, "event fields win over span fields");
    });
    assert_eq!(lines.len(), 2);
    let line = &lines[0];
    for (key, value) in [
        ("job_id", json!("j-42")),
        ("job_name", json!("override")),
        ("task", json!("fetch")),
        ("exec_id", json!("e-7")),
        ("attempt", json!(2)),
        ("rows", json!(10)),
        ("message", json!("fetched")),
    ] {
        assert_eq!(line[key], value, "{key} in {line:?}");
    }
    assert_eq!(lines[1]["attempt"], json!(3));
    // Exactly one `attempt` key in the raw line (no duplicates).
}

#[test]
fn no_job_leaks_into_the_next_call() {
    // The Python original's bug: one call's job id appeared on the next call's line.
    let lines = lines_of(&config(Format::Json), || {
        with_job("j-1", "first", || tracing::info!("in first"));
        tracing::info!("between jobs");
        with_job("j-2", "second", || tracing::info!("in second"));
        tracing::info!("after");
    });
    let ids: Vec<_> = lines.iter().map(|l| l.get("job_id").cloned()).collect();
    assert_eq!(ids, [Some(json!("j-1")), None, Some(json!("j-2")), None]);
    assert!(lines[1].get("job_name").is_none() && lines[3].get("job_name").is_none());
}

#[test]
fn context_follows_await_and_instrumented_spawned_futures() {
    let (subscriber, capture) = subscriber(&config(Format::Json));
    let _default = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let a = in_job("j-a", "alpha", async {
            tracing::info!("a before");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            tracing::info!("a after");
        });
        let b = tokio::spawn(
            async {
                tokio::task::yield_now().await;
                tracing::info!("b spawned");
            }
            .instrument(job_span("j-b", "beta")),
        );
        let ((), b) = tokio::join!(a, b);
        b.unwrap();
        tracing::info!("outside");
    });
    let lines = capture.lines();
    let by_message = |m: &str| lines.iter().find(|l| l["message"] == m).cloned().unwrap();
    assert_eq!(by_message("a before")["job_id"], "j-a");
    assert_eq!(by_message("a after")["job_id"], "j-a");
    assert_eq!(by_message("b spawned")["job_id"], "j-b");
    assert!(by_message("outside").get("job_id").is_none());
}

#[test]
fn fields_recorded_later_reach_later_lines() {
    let lines = lines_of(&config(Format::Json), || {
        let span = tracing::info_span!("task", exec_id = tracing::field::Empty);
        let _entered = span.enter();
        tracing::info!("before");
        span.record("exec_id", "e-9");
        tracing::info!("after");
    });
    assert!(lines[0].get("exec_id").is_none());
    assert_eq!(lines[1]["exec_id"], "e-9");
}

#[test]
fn user_fields_named_like_format_keys_do_not_clobber_them() {
    let lines = lines_of(&config(Format::Json), || {
        let span = tracing::info_span!("s", service = "spoof", level = "x");
        let _entered = span.enter();
        tracing::info!(timestamp = 5, "hi");
    });
    let line = &lines[0];
    assert_eq!(line["service"], "billing");
    assert_eq!(line["field.service"], "spoof");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["field.level"], "x");
    assert_eq!(line["field.timestamp"], 5);
}

/// The same callsite's fields under two layers on one thread, whose formats
/// reserve different names: each layer writes the keys its own format asks
/// for (rendered keys are cached per layer).
#[test]
fn each_layer_renders_the_same_field_names_by_its_own_format() {
    fn event() {
        let span = tracing::info_span!("s", level = "x", severity = "y");
        let _entered = span.enter();
        tracing::info!(time = 5, timestamp = 6, "hi");
    }
    for _ in 0..2 {
        let json = &lines_of(&config(Format::Json), event)[0];
        assert_eq!((&json["field.level"], &json["severity"]), (&"x".into(), &"y".into()));
        assert_eq!((&json["time"], &json["field.timestamp"]), (&5.into(), &6.into()));
        let gcp = &lines_of(&config(Format::Gcp), event)[0];
        assert_eq!((&gcp["level"], &gcp["field.severity"]), (&"x".into(), &"y".into()));
        assert_eq!((&gcp["field.time"], &gcp["timestamp"]), (&5.into(), &6.into()));
    }
}

/// A field recorded after the span was created reads exactly as if it had been
/// given at creation: same keys, same order, same trace keys — whether the
/// record only adds fields (appended after the span's own) or changes one
/// (the span rendered again).
#[test]
fn a_later_record_renders_the_same_line_as_fields_given_at_creation() {
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut gcp = config(Format::Gcp);
    gcp.gcp_project = Some("acme".into());
    for config in [config(Format::Json), gcp] {
        let raw = |f: &dyn Fn()| {
            let (subscriber, capture) = subscriber(&config);
            tracing::subscriber::with_default(subscriber, f);
            capture.text()
        };
        let upfront = raw(&|| {
            let outer = tracing::info_span!("request", job_id = "j-1", table = "outer", attempt = 1);
            let _o = outer.enter();
            let span = tracing::info_span!(
                "task",
                table = "t",
                attempt = 2,
                rows = 7,
                traceparent = PARENT,
                job_name = "n",
                job_id = "j-2",
            );
            let _entered = span.enter();
            tracing::info!("done");
        });
        let recorded = raw(&|| {
            let outer =
                tracing::info_span!("request", job_id = "j-1", table = "outer", attempt = tracing::field::Empty);
            let _o = outer.enter();
            let span = tracing::info_span!(
                "task",
                table = "t",
                attempt = tracing::field::Empty,
                rows = tracing::field::Empty,
                traceparent = tracing::field::Empty,
                job_name = tracing::field::Empty,
                job_id = tracing::field::Empty,
            );
            outer.record("attempt", 1);
            // New fields, one shadowing an inherited one, a trace, a Cloud Logging label.
            span.record("attempt", 2);
            span.record("rows", 6);
            span.record("rows", 7); // a change: rendered again
            span.record("traceparent", PARENT);
            span.record("job_name", "n");
            span.record("job_id", "j-2"); // shadows the inherited one: rendered again
            let _entered = span.enter();
            tracing::info!("done");
        });
        assert_eq!(recorded, upfront, "{:?}", config.format);

        // Only new fields recorded (each appended after the span's own fields,
        // before the inherited ones), the trace and a label among them.
        let upfront = raw(&|| {
            let outer = tracing::info_span!("request", job_id = "j-1", table = "outer");
            let _o = outer.enter();
            let span = tracing::info_span!("task", table = "t", rows = 7, traceparent = PARENT, job_name = "n");
            let _entered = span.enter();
            tracing::info!("done");
        });
        let recorded = raw(&|| {
            let outer = tracing::info_span!("request", job_id = "j-1", table = "outer");
            let _o = outer.enter();
            let span = tracing::info_span!(
                "task",
                table = "t",
                rows = tracing::field::Empty,
                traceparent = tracing::field::Empty,
                job_name = tracing::field::Empty,
            );
            span.record("rows", 7);
            span.record("traceparent", PARENT);
            span.record("job_name", "n");
            let _entered = span.enter();
            tracing::info!("done");
        });
        assert_eq!(recorded, upfront, "{:?}, appended", config.format);
    }
}
