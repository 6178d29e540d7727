//! Point 8: variables with the prefix that map to no field produce a warning.

use serde::Deserialize;

use crate::support::env_loader;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct S {
    #[serde(default)]
    db: Db,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
#[allow(dead_code)]
struct Db {
    password: Option<String>,
    pool_size: u16,
}

#[test]
fn unknown_keys_warn_with_a_suggestion() {
    let loaded =
        env_loader(&[("APP_DB__PASWORD", "hunter2-typo"), ("APP_DB__POOL_SIZE", "3"), ("APP_CACHE__TTL", "5")])
            .extract::<S>()
            .unwrap();
    let warnings: Vec<_> = loaded.warnings().iter().map(|w| (w.key(), w.suggestion())).collect();
    assert_eq!(warnings, [("cache", None), ("db.pasword", Some("db.password"))]);
    let text = loaded.warnings()[1].to_string();
    assert!(text.contains("env APP_DB__PASWORD") && text.contains("did you mean `db.password`"), "{text}");
    assert!(!text.contains("hunter2"), "values are not shown: {text}");
}

#[test]
fn warnings_ride_along_in_a_failed_report() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Strict {
        url: String,
    }
    let err = env_loader(&[("APP_UR", "postgres://x")]).extract::<Strict>().unwrap_err();
    assert_eq!(err.warnings()[0].suggestion(), Some("url"));
    assert!(err.to_string().contains("did you mean `url`?"), "{err}");
}

#[test]
fn unusable_variable_names_warn() {
    let loaded = env_loader(&[("APP_DB____POOL_SIZE", "3")]).extract::<S>().unwrap();
    assert_eq!(loaded.warnings()[0].key(), "APP_DB____POOL_SIZE");
}

#[test]
fn deny_unknown_fields_turns_a_typo_into_a_problem_and_the_load_goes_on() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        url: String,
        port: u16,
    }
    let err = env_loader(&[("APP_URL", "u"), ("APP_PROT", "1"), ("APP_PORT", "x")]).extract::<Strict>().unwrap_err();
    let keys: Vec<_> = err.problems().iter().map(|p| p.key()).collect();
    assert_eq!(keys, [Some("port"), Some("prot")], "{err}");
    assert!(err.problems()[1].to_string().contains("unknown"), "{err}");
}
