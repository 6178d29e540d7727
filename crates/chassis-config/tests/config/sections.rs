//! Point 3: extract the whole config or any section into any `Deserialize` type.

use chassis_config::Loader;
use serde::Deserialize;

use crate::support::Dir;

/// Stands in for another crate's config: plain serde, documented defaults, no
/// dependency on chassis-config.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(default)]
struct TasksConfig {
    task_pool: String,
    workers: usize,
    task_timeout_secs: u64,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self { task_pool: "tasks".into(), workers: 3, task_timeout_secs: 120 }
    }
}

#[derive(Debug, PartialEq, Deserialize)]
struct Replica {
    url: String,
    weight: u8,
}

#[test]
fn sections_extract_into_other_crates_types() {
    let dir = Dir::new();
    dir.write(
        "default.toml",
        "[tasks]\ntask_pool = 'billing-tasks'\n\n[db.replica]\nurl = 'postgres://r'\nweight = 2\n",
    );
    let config = Loader::new("APP").dir(dir.path()).env([("APP_TASKS__WORKERS", "8")]).load().unwrap();
    let tasks: TasksConfig = config.section("tasks").unwrap();
    assert_eq!(tasks, TasksConfig { task_pool: "billing-tasks".into(), workers: 8, task_timeout_secs: 120 });
    let replica: Replica = config.section("db.replica").unwrap();
    assert_eq!(replica, Replica { url: "postgres://r".into(), weight: 2 });
}

#[test]
fn an_absent_section_reads_as_defaults() {
    let config = Loader::new("APP").no_dir().env(Vec::<(String, String)>::new()).load().unwrap();
    assert_eq!(config.section::<TasksConfig>("tasks").unwrap(), TasksConfig::default());
}

#[test]
fn section_errors_carry_the_full_key_path_and_variable() {
    let config = Loader::new("APP").no_dir().env([("APP_DB__REPLICA__WEIGHT", "heavy")]).load().unwrap();
    let err = config.section::<Replica>("db.replica").unwrap_err();
    let keys: Vec<_> = err.problems().iter().map(|p| (p.key(), p.env_var())).collect();
    assert_eq!(
        keys,
        [
            (Some("db.replica.url"), Some("APP_DB__REPLICA__URL")),
            (Some("db.replica.weight"), Some("APP_DB__REPLICA__WEIGHT"))
        ]
    );
    assert!(config.section::<Replica>("db..replica").is_err());
}

#[test]
fn loaded_config_extracts_more_sections() {
    #[derive(Deserialize)]
    struct App {
        name: String,
    }
    let loaded =
        Loader::new("APP").no_dir().env([("APP_NAME", "svc"), ("APP_TASKS__TASK_POOL", "p")]).extract::<App>().unwrap();
    assert_eq!(loaded.name, "svc");
    assert_eq!(loaded.section::<TasksConfig>("tasks").unwrap().task_pool, "p");
}
