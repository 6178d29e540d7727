//! Point 1: layered sources in a documented precedence order.

use chassis_config::{Loader, ProblemKind, Source};
use serde::Deserialize;

use crate::support::Dir;

#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(default = "default_level")]
    level: String,
    a: String,
    b: String,
    c: String,
    d: String,
}

fn default_level() -> String {
    "from-serde-default".into()
}

#[test]
fn each_layer_overrides_the_one_below() {
    let dir = Dir::new();
    dir.write("default.toml", "a = 'base'\nb = 'base'\nc = 'base'\nd = 'base'\n");
    dir.write("prod.toml", "b = 'profile'\nc = 'profile'\nd = 'profile'\n");
    let loaded = Loader::new("APP")
        .dir(dir.path())
        .env([("APP_PROFILE", "prod"), ("APP_C", "env"), ("APP_D", "env")])
        .set("d", "override")
        .extract::<Settings>()
        .unwrap();
    assert_eq!(loaded.level, "from-serde-default");
    assert_eq!((&*loaded.a, &*loaded.b, &*loaded.c, &*loaded.d), ("base", "profile", "env", "override"));
    assert_eq!(loaded.merged().profile(), Some("prod"));
}

#[test]
fn explicit_files_come_after_the_default_file_in_order() {
    let dir = Dir::new();
    dir.write("default.toml", "a = 'default'\nb = 'default'\nc = 'default'\nd = 'default'\n");
    let one = dir.write("one.toml", "b = 'one'\nc = 'one'\n");
    let two = dir.write("two.toml", "c = 'two'\n");
    let s = dir.loader().file(one).file(two).extract::<Settings>().unwrap();
    assert_eq!((&*s.a, &*s.b, &*s.c), ("default", "one", "two"));
}

#[test]
fn tables_merge_and_lists_are_replaced() {
    #[derive(Debug, Deserialize)]
    struct S {
        db: Db,
    }
    #[derive(Debug, Deserialize)]
    struct Db {
        url: String,
        hosts: Vec<String>,
    }
    let dir = Dir::new();
    dir.write("default.toml", "[db]\nurl = 'u'\nhosts = ['a', 'b']\n");
    dir.write("dev.toml", "[db]\nhosts = ['c']\n");
    let s = dir.loader().profile("dev").extract::<S>().unwrap();
    assert_eq!(s.db.url, "u");
    assert_eq!(s.db.hosts, ["c"]);
}

#[test]
fn a_missing_optional_file_is_fine_and_a_missing_named_file_is_an_error() {
    #[derive(Debug, Deserialize)]
    struct S {
        #[serde(default)]
        _x: u8,
    }
    let dir = Dir::new();
    assert!(dir.loader().optional_file(dir.path().join("nope.toml")).extract::<S>().is_ok());
    let err = dir.loader().file(dir.path().join("nope.toml")).extract::<S>().unwrap_err();
    assert_eq!(err.problems().len(), 1);
    let p = &err.problems()[0];
    assert!(
        matches!(p.kind(), ProblemKind::Source { message } if message.contains("nope.toml") && message.contains("does not exist"))
    );
    assert!(matches!(p.source(), Some(Source::File { path }) if path.ends_with("nope.toml")));
}

#[test]
fn no_default_file_is_fine_but_a_selected_profile_without_a_file_is_an_error() {
    #[derive(Debug, Deserialize)]
    struct S {}
    let dir = Dir::new();
    assert!(dir.loader().extract::<S>().is_ok());
    let err = Loader::new("APP").dir(dir.path()).env([("APP_PROFILE", "prodution")]).extract::<S>().unwrap_err();
    assert!(err.to_string().contains("profile `prodution` is selected"), "{err}");
}

#[test]
fn profile_names_cannot_leave_the_config_dir() {
    #[derive(Debug, Deserialize)]
    struct S {}
    let dir = Dir::new();
    let err = dir.loader().profile("../etc/passwd").extract::<S>().unwrap_err();
    assert!(err.to_string().contains("may hold only letters"), "{err}");
}

#[cfg(feature = "yaml")]
#[test]
fn yaml_and_json_files_load_with_their_features() {
    let dir = Dir::new();
    dir.write("default.yaml", "a: yaml\nb: yaml\n");
    let json = dir.write("extra.json", r#"{"c": "json", "d": "json"}"#);
    let s = dir.loader().file(json).extract::<Settings>();
    #[cfg(feature = "json")]
    {
        let s = s.unwrap();
        assert_eq!((&*s.a, &*s.c), ("yaml", "json"));
    }
    #[cfg(not(feature = "json"))]
    assert!(s.unwrap_err().to_string().contains("JSON support is off"));
}

#[cfg(not(feature = "yaml"))]
#[test]
fn a_yaml_file_without_the_feature_is_an_error_not_ignored() {
    #[derive(Debug, Deserialize)]
    struct S {}
    let dir = Dir::new();
    dir.write("default.yaml", "a: 1\n");
    let err = dir.loader().extract::<S>().unwrap_err();
    assert!(err.to_string().contains("YAML support is off"), "{err}");
}
