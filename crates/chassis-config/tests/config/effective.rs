//! Point 7: the effective config with provenance — structured and as a table.

use chassis_config::{Loader, Source};
use serde::{Deserialize, Serialize};

use crate::support::Dir;

#[derive(Debug, Serialize, Deserialize)]
struct S {
    #[serde(default)]
    db: Db,
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
struct Db {
    pool_size: u16,
    timeout_ms: u64,
}

impl Default for Db {
    fn default() -> Self {
        Self { pool_size: 10, timeout_ms: 5000 }
    }
}

#[test]
fn every_key_names_its_source_and_what_it_overrode() {
    let dir = Dir::new();
    let default = dir.write("default.toml", "name = 'base'\n[db]\npool_size = 5\n");
    let prod = dir.write("prod.toml", "[db]\npool_size = 15\n");
    let loaded = Loader::new("APP")
        .dir(dir.path())
        .profile("prod")
        .env([("APP_DB__POOL_SIZE", "20")])
        .set("name", "svc")
        .extract::<S>()
        .unwrap();
    let dump = loaded.effective();

    let pool = dump.get("db.pool_size").unwrap();
    assert_eq!(pool.value, "\"20\"");
    assert_eq!(pool.source, Source::Env { var: "APP_DB__POOL_SIZE".into() });
    let overrode: Vec<_> = pool.overrode.iter().map(|o| (o.value.as_str(), o.source.clone())).collect();
    assert_eq!(overrode, [("15", Source::File { path: prod }), ("5", Source::File { path: default })]);

    let name = dump.get("name").unwrap();
    assert_eq!((name.value.as_str(), &name.source), ("\"svc\"", &Source::Override));

    let timeout = dump.get("db.timeout_ms").unwrap();
    assert_eq!((timeout.value.as_str(), &timeout.source), ("5000", &Source::Default));

    let keys: Vec<_> = dump.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["db.pool_size", "db.timeout_ms", "name"]);

    let json = serde_json::to_value(&dump).unwrap();
    assert_eq!(json["entries"][0]["source"]["kind"], "env");
    assert_eq!(json["entries"][0]["overrode"][0]["value"], "15");

    let table = dump.to_string();
    let lines: Vec<_> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("KEY") && lines[0].contains("SOURCE") && lines[0].contains("OVERRODE"));
    assert!(
        lines[1].starts_with("db.pool_size")
            && lines[1].contains("env APP_DB__POOL_SIZE")
            && lines[1].contains("15 (file")
    );
}

/// The dump shows every layer's values, also under a table that a later layer
/// replaced with a plain value, and a value a later layer replaced with a table.
#[test]
fn values_under_a_replaced_table_are_still_shown() {
    let merged = Loader::new("APP")
        .no_dir()
        .env([("APP_DB__URL", "a"), ("APP_NAME", "n")])
        .set("db", "x")
        .set("name", serde_json::json!({"first": "f"}))
        .load()
        .unwrap();
    let effective = merged.effective();
    let shown = |key: &str| effective.get(key).map(|e| (e.value.clone(), e.source.clone(), e.overrode.len()));
    let env = |var: &str| Source::Env { var: var.into() };
    assert_eq!(shown("db"), Some(("\"x\"".into(), Source::Override, 0)));
    assert_eq!(shown("db.url"), Some(("\"a\"".into(), env("APP_DB__URL"), 0)));
    assert_eq!(shown("name"), Some(("\"n\"".into(), env("APP_NAME"), 0)));
    assert_eq!(shown("name.first"), Some(("\"f\"".into(), Source::Override, 0)));
}
