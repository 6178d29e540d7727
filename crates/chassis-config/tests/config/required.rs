//! Point 4: required settings — declared env vars with defaults and rules, and
//! fields without a default.

use chassis_config::{ProblemKind, Require, Rule, Source};
use serde::Deserialize;

use crate::support::env_loader;

#[derive(Debug, Deserialize)]
struct S {
    db: Db,
    database_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Db {
    url: String,
    #[serde(default)]
    pool_size: u16,
}

#[test]
fn a_field_without_default_is_required() {
    let err = env_loader(&[]).extract::<S>().unwrap_err();
    let p = &err.problems()[0];
    assert_eq!((p.key(), p.env_var(), p.kind()), (Some("db.url"), Some("APP_DB__URL"), &ProblemKind::Missing));
    assert_eq!(err.problems().len(), 1, "{err}");
}

#[test]
fn declared_requirements_use_their_default_and_check_rules() {
    let s = env_loader(&[])
        .require(Require::env("APP_DB__URL").default("postgres://localhost/app").rule(Rule::url()))
        .extract::<S>()
        .unwrap();
    assert_eq!(s.db.url, "postgres://localhost/app");
    let entry = s.merged().effective().get("db.url").cloned().unwrap();
    assert_eq!(entry.source, Source::Requirement);

    let err = env_loader(&[("APP_DB__URL", "localhost")])
        .require(Require::env("APP_DB__URL").default("postgres://localhost/app").rule(Rule::url()))
        .require(Require::key("db.pool_size").rule(Rule::range(1.0, 100.0)))
        .extract::<S>()
        .unwrap_err();
    let problems: Vec<_> = err.problems().iter().map(|p| (p.key(), p.kind().clone())).collect();
    assert_eq!(
        problems,
        [
            (Some("db.url"), ProblemKind::Rule { message: "must be a URL (scheme://...), found \"localhost\"".into() }),
            (Some("db.pool_size"), ProblemKind::Missing),
        ]
    );
    assert_eq!(err.problems()[0].source(), Some(&Source::Env { var: "APP_DB__URL".into() }));
}

#[test]
fn unprefixed_variables_can_be_required_and_land_in_a_key() {
    let s = env_loader(&[("APP_DB__URL", "postgres://x"), ("DATABASE_URL", "postgres://y")])
        .require(Require::env("DATABASE_URL").rule(Rule::not_empty()))
        .extract::<S>()
        .unwrap();
    assert_eq!(s.database_url.as_deref(), Some("postgres://y"));

    let err = env_loader(&[("APP_DB__URL", "postgres://x")]).require(Require::env("DATABASE_URL")).load().unwrap_err();
    assert_eq!(err.problems()[0].env_var(), Some("DATABASE_URL"));
    assert_eq!(err.problems()[0].kind(), &ProblemKind::Missing);
}

#[test]
fn a_requirement_and_a_field_missing_together_are_reported_once() {
    let err = env_loader(&[]).require(Require::key("db.url")).extract::<S>().unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
}

#[test]
fn optional_requirements_check_only_a_present_value() {
    let ok = env_loader(&[("APP_DB__URL", "postgres://x")])
        .require(Require::key("db.pool_size").optional().rule(Rule::range(1.0, 100.0)))
        .extract::<S>();
    assert!(ok.is_ok());
    let err = env_loader(&[("APP_DB__URL", "postgres://x"), ("APP_DB__POOL_SIZE", "500")])
        .require(Require::key("db.pool_size").optional().rule(Rule::range(1.0, 100.0)))
        .extract::<S>()
        .unwrap_err();
    assert!(matches!(err.problems()[0].kind(), ProblemKind::Rule { message } if message.contains("\"500\"")), "{err}");
}

#[test]
fn a_value_of_the_wrong_type_is_not_also_reported_by_its_rules() {
    let err = env_loader(&[("APP_DB__URL", "postgres://x"), ("APP_DB__POOL_SIZE", "many")])
        .require(Require::key("db.pool_size").rule(Rule::range(1.0, 100.0)))
        .extract::<S>()
        .unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert!(matches!(err.problems()[0].kind(), ProblemKind::WrongType { .. }));
}
