//! Issue 10, item 8: checks between the fields of a section (`Loader::check`)
//! land in the one report, at the key of the value out of line.

use chassis_config::{Check, Loader, ProblemKind, Require, Rule, Secret, Source, Violation};
use serde::Deserialize;

use crate::support::{Dir, env_loader};

/// Stands in for a crate's section: plain serde, its checks in chassis-bounds' trait.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Pool {
    min: u32,
    max: u32,
    password: Option<Secret<String>>,
}

impl Default for Pool {
    fn default() -> Self {
        Self { min: 1, max: 10, password: None }
    }
}

impl Check for Pool {
    fn check(&self) -> Vec<Violation> {
        let mut found = Vec::new();
        if self.max < self.min {
            found.push(Violation::new("max", self.max, format_args!("at least min ({})", self.min)).related("min"));
        }
        if let Some(password) = &self.password {
            if password.expose().len() < 8 {
                found.push(Violation::new("password", password.expose(), "at least 8 characters"));
            }
        }
        found
    }
}

#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(default)]
    pool: Pool,
    port: u16,
}

#[test]
fn a_violation_names_its_key_variable_source_and_the_keys_it_depends_on() {
    let dir = Dir::new();
    dir.write("default.toml", "[db.pool]\nmin = 5\n");
    let err = dir.loader().env([("APP_DB__POOL__MAX", "2")]).check::<Pool>("db.pool").load().unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    let p = &err.problems()[0];
    assert_eq!((p.key(), p.env_var()), (Some("db.pool.max"), Some("APP_DB__POOL__MAX")));
    assert_eq!(p.source(), Some(&Source::Env { var: "APP_DB__POOL__MAX".into() }));
    let ProblemKind::Check { expected, found, related } = p.kind() else { panic!("{err}") };
    assert_eq!((expected.as_str(), found.as_str()), ("at least min (5)", "2"));
    assert_eq!(related[0].key(), "db.pool.min");
    assert!(matches!(related[0].source(), Some(Source::File { .. })), "{err}");
    let text = err.to_string();
    assert!(text.contains("db.pool.max: invalid value 2, expected at least min (5)"), "{text}");
    assert!(text.contains("depends on db.pool.min, from file"), "{text}");
}

#[test]
fn a_value_no_source_sets_is_from_the_default_and_a_secret_is_withheld() {
    let err = env_loader(&[("APP_POOL__MIN", "20"), ("APP_POOL__PASSWORD", "hunter2")])
        .check::<Pool>("pool")
        .load()
        .unwrap_err();
    let keys: Vec<_> = err.problems().iter().map(|p| p.key().unwrap_or("?")).collect();
    assert_eq!(keys, ["pool.max", "pool.password"], "{err}");
    assert_eq!(err.problems()[0].source(), Some(&Source::Default), "{err}");
    let ProblemKind::Check { found, .. } = err.problems()[1].kind() else { panic!("{err}") };
    assert_eq!(found, "a secret value");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn checks_join_the_type_errors_and_rules_of_the_extraction() {
    let err = env_loader(&[("APP_POOL__MIN", "20"), ("APP_PORT", "eighty"), ("APP_NAME", "")])
        .require(Require::key("name").rule(Rule::not_empty()))
        .check::<Pool>("pool")
        .extract::<Settings>()
        .unwrap_err();
    let keys: Vec<_> = err.problems().iter().map(|p| p.key().unwrap_or("?")).collect();
    assert_eq!(keys, ["port", "name", "pool.max"], "{err}");
}

#[test]
fn a_section_that_fails_to_read_is_reported_once_and_not_checked() {
    // Read by the target too: its problem is reported by the extraction alone.
    let err = env_loader(&[("APP_POOL__MIN", "many"), ("APP_PORT", "80")])
        .check::<Pool>("pool")
        .extract::<Settings>()
        .unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(err.problems()[0].key(), Some("pool.min"));
    // Read only by the check: its own problems are in the report.
    let err = env_loader(&[("APP_POOL__MAX", "-1")]).check::<Pool>("pool").load().unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert!(matches!(err.problems()[0].kind(), ProblemKind::WrongType { .. }), "{err}");
}

#[test]
fn a_key_with_a_failed_rule_is_not_reported_twice() {
    let err = env_loader(&[("APP_POOL__MIN", "20"), ("APP_POOL__MAX", "3")])
        .require(Require::key("pool.max").rule(Rule::range(5.0, 100.0)))
        .check::<Pool>("pool")
        .load()
        .unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert!(matches!(err.problems()[0].kind(), ProblemKind::Rule { .. }), "{err}");
}

#[test]
fn a_closure_checks_a_section_or_the_whole_configuration() {
    let loader = env_loader(&[("APP_PORT", "80"), ("APP_POOL__MAX", "100")])
        .check_with("", |s: &Settings| {
            let mut found = Vec::new();
            if s.port < 1024 && s.pool.max > 50 {
                found.push(Violation::new("port", s.port, "1024 or over with a pool this large").related("pool.max"));
            }
            found
        })
        .check_with("pool", |p: &Pool| if p.min == 1 { vec![Violation::new("min", 1, "not 1")] } else { Vec::new() });
    let err = loader.extract::<Settings>().unwrap_err();
    let keys: Vec<_> = err.problems().iter().map(|p| p.key().unwrap_or("?")).collect();
    assert_eq!(keys, ["port", "pool.min"], "{err}");
    assert!(matches!(err.problems()[0].kind(), ProblemKind::Check { related, .. } if related[0].key() == "pool.max"));
}

#[test]
fn a_consistent_section_loads_and_a_bad_section_name_is_a_problem() {
    let loaded = env_loader(&[("APP_PORT", "80")]).check::<Pool>("pool").extract::<Settings>().unwrap();
    assert_eq!(loaded.pool.max, 10);
    let err = Loader::new("APP").no_dir().env([("APP_PORT", "80")]).check::<Pool>("a..b").load().unwrap_err();
    assert!(matches!(err.problems()[0].kind(), ProblemKind::Source { .. }), "{err}");
}
