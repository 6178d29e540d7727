//! Point 5: one complete report — every problem at once, each naming the key,
//! the variable, the source and what was expected — and the exit helper.

use chassis_config::{EX_CONFIG, Loader, ProblemKind, Require, Rule, Source};
use serde::Deserialize;

use crate::support::Dir;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct App {
    name: String,
    port: u16,
    debug: bool,
    db: Db,
    log: Log,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Db {
    url: String,
    pool_size: u16,
    timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Log {
    format: Format,
    level: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    Json,
    Pretty,
}

fn broken(dir: &Dir) -> Loader {
    dir.write(
        "default.toml",
        "name = 'svc'\nport = 'eighty'\n\n[db]\npool_size = -1\ntimeout_ms = 5\n\n[log]\nformat = 'xml'\n",
    );
    Loader::new("APP")
        .dir(dir.path())
        .env([("APP_DEBUG", "perhaps"), ("APP_LOG__LEVEL", "loud")])
        .require(Require::key("log.level").rule(Rule::one_of(["debug", "info", "warn", "error"])))
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = Dir::new();
    let err = broken(&dir).extract::<App>().unwrap_err();
    let file = Source::File { path: dir.path().join("default.toml") };
    let got: Vec<_> = err
        .problems()
        .iter()
        .map(|p| (p.key().unwrap_or(""), p.env_var().unwrap_or(""), p.source().cloned()))
        .collect();
    assert_eq!(
        got,
        [
            ("db.pool_size", "APP_DB__POOL_SIZE", Some(file.clone())),
            ("db.url", "APP_DB__URL", None),
            ("debug", "APP_DEBUG", Some(Source::Env { var: "APP_DEBUG".into() })),
            ("log.format", "APP_LOG__FORMAT", Some(file.clone())),
            ("port", "APP_PORT", Some(file)),
            ("log.level", "APP_LOG__LEVEL", Some(Source::Env { var: "APP_LOG__LEVEL".into() })),
        ],
        "{err}"
    );
    let kinds: Vec<_> = err.problems().iter().map(|p| p.kind().clone()).collect();
    assert!(
        matches!(&kinds[0], ProblemKind::InvalidValue { expected, found } if expected == "u16" && found == "integer `-1`")
    );
    assert_eq!(kinds[1], ProblemKind::Missing);
    assert!(
        matches!(&kinds[2], ProblemKind::WrongType { expected, found } if expected.starts_with("a boolean") && found == "string \"perhaps\"")
    );
    assert!(
        matches!(&kinds[3], ProblemKind::Other { message } if message.contains("`xml`") && message.contains("`json`, `pretty`"))
    );
    assert!(
        matches!(&kinds[4], ProblemKind::WrongType { expected, found } if expected == "u16" && found == "string \"eighty\"")
    );
    assert!(
        matches!(&kinds[5], ProblemKind::Rule { message } if message.contains("one of debug, info") && message.contains("\"loud\""))
    );

    let text = err.to_string();
    assert!(text.starts_with("configuration is invalid: 6 problems\n"), "{text}");
    for needle in ["set it with APP_DB__URL", "from env APP_DEBUG", "default.toml", "missing required value"] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
}

#[test]
fn source_and_value_problems_come_in_one_report() {
    let dir = Dir::new();
    let bad = dir.write("bad.toml", "port = [\n");
    let err = broken(&dir).file(bad).extract::<App>().unwrap_err();
    assert!(err.problems().len() >= 7, "{err}");
    assert!(
        matches!(err.problems()[0].kind(), ProblemKind::Source { message } if message.contains("bad.toml") && message.contains("line"))
    );
}

#[test]
fn the_report_serializes_for_machines() {
    let dir = Dir::new();
    let err = broken(&dir).extract::<App>().unwrap_err();
    let json = serde_json::to_value(&err).unwrap();
    assert_eq!(json["problems"][1]["key"], "db.url");
    assert_eq!(json["problems"][1]["env_var"], "APP_DB__URL");
    assert_eq!(json["problems"][1]["kind"]["kind"], "missing");
    assert_eq!(json["problems"][2]["source"]["kind"], "env");
    assert_eq!(json["problems"][2]["source"]["var"], "APP_DEBUG");
}

/// The exit helper: run this test binary again as a child that calls it.
#[test]
fn exit_prints_the_report_and_exits_78() {
    #[allow(clippy::disallowed_methods)]
    if std::env::var_os("CHASSIS_CONFIG_EXIT_CHILD").is_some() {
        Loader::new("APP").no_dir().env([("APP_PORT", "x")]).extract_or_exit::<App>();
        unreachable!("extract_or_exit returned on a bad config");
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "report::exit_prints_the_report_and_exits_78", "--nocapture", "--test-threads=1"])
        .env("CHASSIS_CONFIG_EXIT_CHILD", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EX_CONFIG));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("configuration is invalid") && stderr.contains("APP_PORT"), "{stderr}");
}

/// A type that accepts none of the loader's stand-in values.
#[derive(Debug)]
struct Url(#[allow(dead_code)] String);

impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.starts_with("chassis://") { Ok(Self(s)) } else { Err(serde::de::Error::custom("not a URL")) }
    }
}

#[test]
fn a_value_no_stand_in_satisfies_is_reported_and_marked_as_hiding_more() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct S {
        a: Url,
        b: u16,
    }
    let err = Loader::new("APP").no_dir().env([("APP_A", "nope"), ("APP_B", "x")]).extract::<S>().unwrap_err();
    let kinds: Vec<_> = err.problems().iter().map(|p| (p.key(), p.kind().clone())).collect();
    assert_eq!(kinds[0], (Some("a"), ProblemKind::Other { message: "not a URL".into() }), "{err}");
    assert_eq!(kinds[1], (Some("a"), ProblemKind::Hidden), "{err}");
    // Left out, `a` no longer stops the search: `b`'s problem is found too.
    assert_eq!(kinds[2].0, Some("b"), "{err}");
    assert_eq!(kinds.len(), 3, "{err}");
}
