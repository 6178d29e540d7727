//! `init`: the global subscriber, run in child processes (it is once per process).
//! Each test re-runs this binary with `CHASSIS_LOG_CHILD` naming a scenario.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use chassis_log::{Config, Format};

const CHILD: &str = "CHASSIS_LOG_CHILD";

fn scenario() -> Option<String> {
    #[allow(clippy::disallowed_methods)] // the test's own switch
    std::env::var(CHILD).ok()
}

fn run_child(test: &str, envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", test, "--nocapture", "--test-threads=1"]).env(CHILD, test).env_remove("RUST_LOG");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    // The test harness may print `test name ... ` in front of a line.
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.find("{\"").map(|at| serde_json::from_str(&l[at..]).unwrap()))
        .collect()
}

fn json_config() -> Config {
    Config::new("svc", "9.9.9").format(Format::Json)
}

#[test]
fn nothing_logged_before_the_guard_drops_is_lost() {
    if scenario().is_some() {
        let mut config = json_config();
        config.non_blocking = true;
        let guard = chassis_log::init(&config).unwrap();
        for i in 0..20_000 {
            tracing::info!(i, "line");
        }
        drop(guard);
        return;
    }
    let out = run_child("nothing_logged_before_the_guard_drops_is_lost", &[]);
    assert!(out.status.success());
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 20_000);
    assert!(lines.iter().enumerate().all(|(i, l)| l["i"] == i && l["service"] == "svc"));
}

#[test]
fn log_crate_records_are_captured() {
    if scenario().is_some() {
        let _guard = chassis_log::init(&json_config()).unwrap();
        log::warn!(target: "legacy", "from the log crate {}", 42);
        return;
    }
    let out = run_child("log_crate_records_are_captured", &[]);
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines[0]["message"], "from the log crate 42");
    assert_eq!(lines[0]["target"], "legacy");
    assert!(lines[0].get("log.target").is_none());
    assert_eq!(lines[0]["level"], "WARN");
    assert_eq!(lines[0]["service"], "svc");
}

#[test]
fn a_panic_writes_one_error_line_before_the_default_hook() {
    if scenario().is_some() {
        let mut config = json_config();
        config.output = chassis_log::Output::Stderr;
        let _guard = chassis_log::init(&config).unwrap();
        let _ = std::thread::spawn(|| panic!("boom {}", 7)).join();
        return;
    }
    let out = run_child("a_panic_writes_one_error_line_before_the_default_hook", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = json_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0]["level"], "ERROR");
    let message = lines[0]["message"].as_str().unwrap();
    assert!(message.contains("boom 7") && message.contains("global.rs"), "{message}");
    // The default hook's own report starts with `thread '<name>' panicked at`.
    let json_at = stderr.find("{\"timestamp\"").unwrap();
    let default_at = stderr.find("thread '").expect("the default hook still runs");
    assert!(json_at < default_at, "our line comes first:\n{stderr}");
}

/// The line of the `panic!` in [`explode`].
const PANIC_LINE: u32 = line!() + 4;

#[inline(never)]
fn explode(n: u32) {
    panic!("boom {n}");
}

#[test]
fn a_panics_gcp_line_points_at_the_panic_site_not_the_hook() {
    if scenario().is_some() {
        let mut config = json_config().format(Format::Gcp);
        config.output = chassis_log::Output::Stderr;
        let _guard = chassis_log::init(&config).unwrap();
        let _ = std::thread::spawn(|| explode(7)).join();
        return;
    }
    let out = run_child("a_panics_gcp_line_points_at_the_panic_site_not_the_hook", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = json_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    let location = &lines[0]["logging.googleapis.com/sourceLocation"];
    assert_eq!(location["file"], file!(), "relative, as for events: {stderr}");
    assert_eq!(location["line"], PANIC_LINE.to_string(), "{stderr}");
    let function = location["function"].as_str().unwrap_or_default();
    assert!(function.ends_with("explode"), "{function:?}: {stderr}");
    assert_eq!(lines[0]["severity"], "ERROR");
}

#[test]
fn rust_log_overrides_the_configured_filter() {
    if scenario().is_some() {
        let mut config = json_config();
        config.filter = "error".into();
        let _guard = chassis_log::init(&config).unwrap();
        tracing::debug!("debug line");
        tracing::trace!("filtered out");
        return;
    }
    let out = run_child("rust_log_overrides_the_configured_filter", &[("RUST_LOG", "debug")]);
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines[0]["message"], "debug line");
}

#[test]
fn a_second_init_is_an_error_not_a_panic() {
    if scenario().is_some() {
        let _guard = chassis_log::init(&json_config()).unwrap();
        let err = chassis_log::init(&json_config()).unwrap_err();
        tracing::info!(err = %err, "second init");
        return;
    }
    let out = run_child("a_second_init_is_an_error_not_a_panic", &[]);
    assert!(out.status.success());
    let lines = json_lines(&out.stdout);
    assert_eq!(lines[0]["err"], "logging is already initialised");
}

#[test]
fn a_bad_filter_is_an_error_naming_it() {
    let mut config = json_config();
    config.filter = "app=loud".into();
    config.use_rust_log = false;
    let err = chassis_log::init(&config).unwrap_err();
    assert!(err.to_string().contains("app=loud") && err.to_string().contains("log.filter"), "{err}");
}
