//! Point 9: bad input never panics; every error names the file and line or the
//! variable.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use chassis_config::{Loader, ProblemKind};
use proptest::prelude::*;
use serde::Deserialize;

use crate::support::Dir;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct S {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    db: Option<Db>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Db {
    url: String,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    weights: Vec<f32>,
}

fn source_message(err: &chassis_config::Error) -> String {
    err.problems()
        .iter()
        .find_map(|p| match p.kind() {
            ProblemKind::Source { message } => Some(message.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no source problem in {err}"))
}

#[test]
fn malformed_toml_names_file_and_line() {
    let dir = Dir::new();
    dir.write("default.toml", "name = 'ok'\nport = \n");
    let err = dir.loader().extract::<S>().unwrap_err();
    let message = source_message(&err);
    assert!(message.contains("default.toml") && message.contains("line 2"), "{message}");
}

#[cfg(feature = "yaml")]
#[test]
fn malformed_yaml_names_file_and_line() {
    let dir = Dir::new();
    dir.write("default.yaml", "name: ok\n  port: [\n");
    let message = source_message(&dir.loader().extract::<S>().unwrap_err());
    assert!(message.contains("default.yaml") && message.contains("line"), "{message}");
}

#[cfg(feature = "json")]
#[test]
fn malformed_json_names_file_and_line() {
    let dir = Dir::new();
    let file = dir.write("app.json", "{\n \"name\": \"ok\",\n}");
    let message = source_message(&dir.loader().file(file).extract::<S>().unwrap_err());
    assert!(message.contains("app.json") && message.contains("line 3"), "{message}");
}

#[test]
fn a_file_that_is_not_utf8_is_named() {
    let dir = Dir::new();
    dir.write("default.toml", b"name = '\xff\xfe'\n");
    let message = source_message(&dir.loader().extract::<S>().unwrap_err());
    assert!(message.contains("default.toml") && message.contains("not valid UTF-8"), "{message}");
}

#[test]
fn an_unreadable_file_is_named() {
    let dir = Dir::new();
    std::fs::create_dir(dir.path().join("dir.toml")).unwrap();
    let message = source_message(&dir.loader().file(dir.path().join("dir.toml")).extract::<S>().unwrap_err());
    assert!(message.contains("cannot read config file") && message.contains("dir.toml"), "{message}");
}

#[test]
fn a_file_with_an_unknown_extension_is_named() {
    let dir = Dir::new();
    let file = dir.write("app.ini", "name=x");
    let message = source_message(&dir.loader().file(file).extract::<S>().unwrap_err());
    assert!(message.contains("app.ini") && message.contains("no known extension"), "{message}");
}

#[test]
fn a_non_utf8_variable_value_is_named() {
    let vars = vec![(OsString::from("APP_NAME"), OsString::from_vec(vec![0x66, 0xff, 0x6f]))];
    let err = Loader::new("APP").no_dir().env(vars).extract::<S>().unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.env_var(), Some("APP_NAME"));
    assert!(
        matches!(p.kind(), ProblemKind::Source { message } if message.contains("APP_NAME") && message.contains("UTF-8"))
    );
}

#[test]
fn a_non_utf8_variable_name_under_the_prefix_is_a_problem() {
    let vars = vec![(OsString::from_vec(b"APP_N\xffME".to_vec()), OsString::from("x"))];
    let err = Loader::new("APP").no_dir().env(vars).extract::<S>().unwrap_err();
    assert!(source_message(&err).contains("is not valid UTF-8"));
}

#[test]
fn a_value_and_a_table_for_one_key_are_a_problem_not_a_silent_choice() {
    let err = Loader::new("APP").no_dir().env([("APP_DB", "x"), ("APP_DB__URL", "y")]).extract::<S>().unwrap_err();
    let p = &err.problems()[0];
    assert_eq!((p.key(), p.env_var()), (Some("db.url"), Some("APP_DB__URL")));
    assert!(source_message(&err).contains("env APP_DB sets as a value"), "{err}");
}

#[test]
fn an_array_of_tables_at_the_top_is_an_unknown_key() {
    let dir = Dir::new();
    dir.write("default.toml", "[[x]]\n");
    // A TOML document is always a table; `x` is simply an unknown key here.
    let loaded = dir.loader().extract::<S>().unwrap();
    assert_eq!(loaded.warnings()[0].key(), "x");
}

#[cfg(feature = "yaml")]
#[test]
fn a_yaml_file_that_is_not_a_table_is_named() {
    let dir = Dir::new();
    dir.write("default.yaml", "- a\n- b\n");
    let message = source_message(&dir.loader().extract::<S>().unwrap_err());
    assert!(message.contains("default.yaml") && message.contains("malformed"), "{message}");
}

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\[\\]{}\",:a-z0-9 .\\-]{0,40}",
        Just(String::from("[")),
        Just(String::from("{\"a\":")),
        Just(String::from("1e999")),
        Just(String::from("-0")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_environments_never_panic(
        vars in proptest::collection::vec(
            (prop_oneof![
                Just("APP_NAME"), Just("APP_PORT"), Just("APP_DB"), Just("APP_DB__URL"),
                Just("APP_DB__HOSTS"), Just("APP_DB__WEIGHTS"), Just("APP_DB__URL_FILE"),
                Just("APP_"), Just("APP___"), Just("APP_DB__HOSTS__0"),
            ], hostile_text()),
            0..8,
        )
    ) {
        let result = Loader::new("APP").no_dir().env(vars).extract::<S>();
        if let Err(err) = result {
            prop_assert!(!err.problems().is_empty());
            let _ = err.to_string();
        }
    }

    #[test]
    fn hostile_files_never_panic(content in proptest::collection::vec(any::<u8>(), 0..200), text in hostile_text()) {
        let dir = Dir::new();
        dir.write("default.toml", &content);
        dir.write("extra.toml", format!("[db]\nurl = {text}\nhosts = {text}\n"));
        let result = dir.loader().optional_file(dir.path().join("extra.toml")).extract::<S>();
        if let Err(err) = result {
            prop_assert!(!err.problems().is_empty());
            let _ = err.to_string();
        }
    }
}
