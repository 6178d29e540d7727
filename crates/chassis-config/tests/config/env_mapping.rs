//! Point 2: env mapping that users don't trip on — table-driven.

use std::collections::BTreeMap;

use chassis_config::Source;
use serde::Deserialize;

use crate::support::env_loader;

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
struct T {
    version: Option<String>,
    zip: Option<String>,
    ratio: Option<f64>,
    port: Option<u16>,
    offset: Option<i32>,
    enabled: Option<bool>,
    hosts: Option<Vec<String>>,
    ports: Option<Vec<u16>>,
    db: Option<Db>,
    #[serde(rename = "poolSize")]
    pool_size: Option<u32>,
    #[serde(rename = "max-conns")]
    max_conns: Option<u32>,
    level: Option<Level>,
    labels: Option<BTreeMap<String, String>>,
    timeout_ms: Option<u64>,
    nickname: Option<String>,
    tags: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
struct Db {
    url: Option<String>,
    pool_size: Option<u16>,
    replica: Option<Replica>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
struct Replica {
    url: String,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Level {
    Debug,
    Info,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn variables_map_to_typed_values() {
    let cases: Vec<(&[(&str, &str)], T)> = vec![
        (&[("APP_DB__POOL_SIZE", "7")], T { db: Some(Db { pool_size: Some(7), ..Db::default() }), ..T::default() }),
        (&[("APP_TIMEOUT_MS", "250")], T { timeout_ms: Some(250), ..T::default() }),
        (
            &[("APP_DB__REPLICA__URL", "postgres://r")],
            T {
                db: Some(Db { replica: Some(Replica { url: "postgres://r".into() }), ..Db::default() }),
                ..T::default()
            },
        ),
        (&[("APP_VERSION", "1.10")], T { version: Some("1.10".into()), ..T::default() }),
        (&[("APP_ZIP", "01234")], T { zip: Some("01234".into()), ..T::default() }),
        (&[("APP_VERSION", "true")], T { version: Some("true".into()), ..T::default() }),
        (&[("APP_RATIO", "1.10")], T { ratio: Some(1.1), ..T::default() }),
        (&[("APP_RATIO", "3")], T { ratio: Some(3.0), ..T::default() }),
        (&[("APP_PORT", " 8080 ")], T { port: Some(8080), ..T::default() }),
        (&[("APP_OFFSET", "-5")], T { offset: Some(-5), ..T::default() }),
        (&[("APP_ENABLED", "yes")], T { enabled: Some(true), ..T::default() }),
        (&[("APP_ENABLED", "0")], T { enabled: Some(false), ..T::default() }),
        (&[("APP_ENABLED", "FALSE")], T { enabled: Some(false), ..T::default() }),
        (&[("APP_HOSTS", "a, b,c")], T { hosts: Some(strings(&["a", "b", "c"])), ..T::default() }),
        (&[("APP_HOSTS", r#"["a,1", "b"]"#)], T { hosts: Some(strings(&["a,1", "b"])), ..T::default() }),
        (&[("APP_HOSTS", "")], T::default()),
        (&[("APP_TAGS", "")], T::default()),
        (&[("APP_TAGS", "x")], T { tags: vec!["x".into()], ..T::default() }),
        (&[("APP_PORTS", "80,443")], T { ports: Some(vec![80, 443]), ..T::default() }),
        (&[("APP_PORTS", "[80, 443]")], T { ports: Some(vec![80, 443]), ..T::default() }),
        (&[("APP_POOLSIZE", "3")], T { pool_size: Some(3), ..T::default() }),
        (&[("APP_MAX_CONNS", "9")], T { max_conns: Some(9), ..T::default() }),
        (&[("APP_LEVEL", "INFO")], T { level: Some(Level::Info), ..T::default() }),
        (&[("APP_LEVEL", "debug")], T { level: Some(Level::Debug), ..T::default() }),
        (
            &[("APP_LABELS", r#"{"team": "billing", "tier": "1"}"#)],
            T { labels: Some([("team".into(), "billing".into()), ("tier".into(), "1".into())].into()), ..T::default() },
        ),
        (
            &[("APP_LABELS__TEAM", "billing")],
            T { labels: Some([("team".into(), "billing".into())].into()), ..T::default() },
        ),
        (&[("APP_NICKNAME", "")], T::default()),
        (&[("OTHER_PORT", "1"), ("APPPORT", "2"), ("PORT", "3")], T::default()),
    ];
    for (vars, want) in cases {
        let got = env_loader(vars).extract::<T>().unwrap_or_else(|e| panic!("{vars:?}: {e}"));
        assert_eq!(*got, want, "{vars:?}");
    }
}

#[test]
fn unparsable_values_name_the_variable_and_the_expected_type() {
    // (variable, value, key reported, expected type, value shown)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        ("APP_PORT", "70000", "port", "an integer from 0 to 65535", "\"70000\""),
        ("APP_PORT", "http", "port", "an integer from 0 to 65535", "\"http\""),
        ("APP_OFFSET", "1.5", "offset", "an integer from -2147483648 to 2147483647", "\"1.5\""),
        ("APP_ENABLED", "maybe", "enabled", "a boolean", "\"maybe\""),
        ("APP_RATIO", "fast", "ratio", "a number", "\"fast\""),
        ("APP_PORTS", "80,x", "ports[1]", "an integer from 0 to 65535", "\"x\""),
        ("APP_PORTS", "[80,", "ports", "a list (a JSON array)", "\"[80,\""),
        ("APP_LEVEL", "loud", "level", "variant", "`loud`"),
    ];
    for (var, value, key, expected, shown) in cases {
        let err = env_loader(&[(var, value)]).extract::<T>().unwrap_err();
        assert_eq!(err.problems().len(), 1, "{var}={value}: {err}");
        let p = &err.problems()[0];
        assert_eq!(p.key(), Some(*key), "{var}={value}");
        assert_eq!(p.env_var(), Some(*var), "{var}={value}");
        assert_eq!(p.source(), Some(&Source::Env { var: (*var).to_owned() }), "{var}={value}");
        let text = p.to_string();
        assert!(text.contains(expected), "{var}={value}: {text}");
        assert!(text.contains(shown), "{var}={value}: the bad value is shown: {text}");
    }
}

#[test]
fn file_values_are_not_reinterpreted_as_text() {
    #[derive(Debug, Deserialize)]
    struct S {
        #[allow(dead_code)]
        port: u16,
    }
    let dir = crate::support::Dir::new();
    dir.write("default.toml", "port = '8080'\n");
    let err = dir.loader().extract::<S>().unwrap_err();
    assert!(err.to_string().contains("expected u16, found string \"8080\""), "{err}");
}
