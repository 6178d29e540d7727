//! Point 5: never invalid JSON, never a panic; long lines cut and marked.

use chassis_log::{Config, Format};
use proptest::prelude::*;

use crate::support::{config, lines_of};

const QUOTE: &str = "quo\"te";
const BACKSLASH: &str = "back\\slash";
const NEWLINE: &str = "new\nline";
const CONTROL: &str = "ctl\u{1}\u{1f}";
const UNICODE: &str = "ünïcødé-名前";
const EMPTY: &str = "";

struct Nasty(String);

impl std::fmt::Debug for Nasty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nasty {{ {} }}\u{0}", self.0)
    }
}

fn write_all(value: &str, number: f64) {
    let span = tracing::info_span!("s", { QUOTE } = value, r#type = value, job_id = value);
    let _e = span.enter();
    tracing::info!(
        { QUOTE } = value,
        { BACKSLASH } = value,
        { NEWLINE } = value,
        { CONTROL } = value,
        { UNICODE } = value,
        { EMPTY } = value,
        dup = 1,
        dup = value,
        r#type = value,
        number,
        nasty = ?Nasty(value.to_owned()),
        "{value}"
    );
    tracing::error!(message = value, "{}", value);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_line_is_one_json_object(value in any::<String>(), number in any::<f64>()) {
        for format in [Format::Json, Format::Gcp] {
            let lines = lines_of(&config(format), || write_all(&value, number));
            prop_assert_eq!(lines.len(), 2);
            let line = &lines[0];
            prop_assert_eq!(line[QUOTE].as_str(), Some(value.as_str()));
            prop_assert_eq!(line[CONTROL].as_str(), Some(value.as_str()));
            prop_assert_eq!(line["type"].as_str(), Some(value.as_str()));
            prop_assert_eq!(line["message"].as_str(), Some(value.as_str()));
            prop_assert_eq!(&line["dup"], &serde_json::json!(1));
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn long_values_are_cut_to_the_limit_and_marked(len in 1usize..200_000, c in any::<char>()) {
        let value: String = std::iter::repeat_n(c, len / c.len_utf8().max(1)).collect();
        for format in [Format::Json, Format::Gcp] {
            let mut config = config(format);
            config.max_line_bytes = 64 * 1024;
            let (subscriber, capture) = crate::support::subscriber(&config);
            tracing::subscriber::with_default(subscriber, || write_all(&value, 1.0));
            for raw in capture.text().lines() {
                prop_assert!(raw.len() < config.max_line_bytes, "{} bytes", raw.len());
            }
            let lines = capture.lines();
            prop_assert_eq!(lines.len(), 2);
            for line in &lines {
                match line.get("truncated") {
                    // Whole: every value is there in full.
                    None => prop_assert_eq!(line["message"].as_str(), Some(value.as_str())),
                    // Cut: what is there is the start of the value.
                    Some(flag) => {
                        prop_assert_eq!(flag, &serde_json::json!(true));
                        if let Some(shown) = line.get(QUOTE).and_then(|v| v.as_str()) {
                            prop_assert!(value.starts_with(shown));
                        }
                    }
                }
                if value.len() < 2000 {
                    prop_assert!(line.get("truncated").is_none());
                }
                if value.len() > config.max_line_bytes {
                    prop_assert!(line.get("truncated").is_some());
                }
            }
        }
    }
}

#[test]
fn an_over_long_line_fills_the_budget_before_cutting() {
    let limit = 256 * 1024;
    let big = "x".repeat(300 * 1024);
    let other = "y".repeat(200 * 1024);
    for format in [Format::Json, Format::Gcp] {
        let (subscriber, capture) = crate::support::subscriber(&config(format));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(big = %big, small = "kept whole", "m");
            tracing::info!(big = %big, small = "kept whole", "m");
            tracing::info!(a = %big, b = %other, "two");
        });
        let text = capture.text();
        let raw: Vec<&str> = text.lines().collect();
        assert_eq!(raw.len(), 3);
        for line in &raw {
            assert!(line.len() < limit, "{format:?}: {} bytes", line.len());
            assert!(line.len() > limit - 1024, "{format:?}: the budget is filled, not {} bytes", line.len());
        }
        assert_eq!(raw[0], raw[1], "{format:?}: the cut is deterministic");
        let lines = capture.lines();
        assert_eq!(lines[0]["truncated"], true, "{format:?}: the cut is marked");
        assert_eq!(lines[0]["small"], "kept whole");
        assert!(big.starts_with(lines[0]["big"].as_str().unwrap()));
        // Two long values share the budget: neither is cut to a sliver.
        let (a, b) = (lines[2]["a"].as_str().unwrap().len(), lines[2]["b"].as_str().unwrap().len());
        assert!(a > 100 * 1024 && b > 100 * 1024 && a.abs_diff(b) < 1024, "{format:?}: {a} and {b}");
    }
}

#[test]
fn the_default_limit_is_cloud_loggings_256_kib() {
    assert_eq!(Config::default().max_line_bytes, 256 * 1024);
    let value = "x".repeat(300 * 1024);
    let (subscriber, capture) = crate::support::subscriber(&config(Format::Gcp));
    tracing::subscriber::with_default(subscriber, || tracing::info!(big = %value, "m"));
    let raw = capture.text();
    assert!(raw.len() <= 256 * 1024, "{}", raw.len());
    let line = &capture.lines()[0];
    assert_eq!(line["truncated"], true);
    assert_eq!(line["message"], "m");
    assert!(line["big"].as_str().unwrap().len() < value.len());
    assert_eq!(line["logging.googleapis.com/labels"]["service"], "billing", "metadata survives the cut");
}

#[test]
fn a_field_whose_debug_logs_does_not_deadlock_or_panic() {
    struct Chatty;
    impl std::fmt::Debug for Chatty {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            tracing::info!("logged from inside Debug");
            f.write_str("Chatty")
        }
    }
    // tracing drops events raised while the subscriber is busy with another on the
    // same thread; what matters is that the outer line is whole and nothing breaks.
    let lines = lines_of(&config(Format::Json), || tracing::info!(chatty = ?Chatty, "outer"));
    assert!(lines.iter().any(|l| l["message"] == "outer" && l["chatty"] == "Chatty"));
}
