//! Issue 10, item 8: values from the environment deserialize as the same values
//! written in a file, whatever serde container attributes the target uses
//! (`flatten`, untagged and internally tagged enums, `alias`, `default` on the
//! container) — and a bad value is reported the same way from every source.

use std::fmt::Debug;

use chassis_config::{ProblemKind, Secret};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::support::{Dir, env_loader};

/// One case: its name, the variables, and the same values as a TOML file.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

/// Loads `T` once from `vars` and once from `toml`; both must succeed, agree,
/// and warn about nothing.
fn same_from_env_and_file<T: DeserializeOwned + PartialEq + Debug>(case: &str, vars: &[(&str, &str)], toml: &str) {
    let from_env = env_loader(vars).extract::<T>().unwrap_or_else(|e| panic!("{case}: from env: {e}"));
    let dir = Dir::new();
    dir.write("default.toml", toml);
    let from_file = dir.loader().extract::<T>().unwrap_or_else(|e| panic!("{case}: from file: {e}"));
    assert_eq!(from_env.value(), from_file.value(), "{case}");
    assert!(from_env.warnings().is_empty(), "{case}: env warned {:?}", from_env.warnings());
    assert!(from_file.warnings().is_empty(), "{case}: file warned {:?}", from_file.warnings());
}

#[derive(Debug, PartialEq, Deserialize)]
struct Flattened {
    name: String,
    #[serde(flatten)]
    pool: Pool,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Pool {
    pool_size: u16,
    verbose: bool,
    ratio: f64,
    tags: Vec<String>,
}

#[derive(Debug, PartialEq, Deserialize)]
struct WithUntagged {
    port: Port,
    store: Store,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(untagged)]
enum Port {
    Number(u16),
    Name(String),
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(untagged)]
enum Store {
    Sql { url: String, pool: u32 },
    Memory { capacity: u64 },
}

#[derive(Debug, PartialEq, Deserialize)]
struct WithTagged {
    backend: Backend,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Backend {
    Sqs { region: String, batch: u8, fifo: bool },
    Memory,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Aliased {
    #[serde(alias = "size")]
    pool_size: u16,
    #[serde(alias = "hostname")]
    host: String,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(default)]
struct Defaulted {
    pool_size: u16,
    name: String,
    debug: bool,
}

impl Default for Defaulted {
    fn default() -> Self {
        Self { pool_size: 10, name: "app".into(), debug: false }
    }
}

#[test]
fn flatten_reads_env_values_like_file_values() {
    same_from_env_and_file::<Flattened>(
        "flatten",
        &[
            ("APP_NAME", "svc"),
            ("APP_POOL_SIZE", "20"),
            ("APP_VERBOSE", "true"),
            ("APP_RATIO", "0.5"),
            ("APP_TAGS", "[\"a\",\"b\"]"),
        ],
        "name = 'svc'\npool_size = 20\nverbose = true\nratio = 0.5\ntags = ['a', 'b']\n",
    );
}

#[test]
fn untagged_enums_read_env_values_like_file_values() {
    let cases: &[Case<'_>] = &[
        (
            "number + struct variant",
            &[("APP_PORT", "8080"), ("APP_STORE__URL", "postgres://db"), ("APP_STORE__POOL", "3")],
            "port = 8080\n[store]\nurl = 'postgres://db'\npool = 3\n",
        ),
        (
            "name + second struct variant",
            &[("APP_PORT", "http"), ("APP_STORE__CAPACITY", "1000")],
            "port = 'http'\n[store]\ncapacity = 1000\n",
        ),
        (
            "text that only looks like a number stays text",
            &[("APP_PORT", "007"), ("APP_STORE__CAPACITY", "1")],
            "port = '007'\n[store]\ncapacity = 1\n",
        ),
    ];
    for (case, vars, toml) in cases {
        same_from_env_and_file::<WithUntagged>(case, vars, toml);
    }
}

#[test]
fn internally_tagged_enums_read_env_values_like_file_values() {
    let cases: &[Case<'_>] = &[
        (
            "struct variant",
            &[
                ("APP_BACKEND__KIND", "sqs"),
                ("APP_BACKEND__REGION", "eu-west-1"),
                ("APP_BACKEND__BATCH", "5"),
                ("APP_BACKEND__FIFO", "false"),
            ],
            "[backend]\nkind = 'sqs'\nregion = 'eu-west-1'\nbatch = 5\nfifo = false\n",
        ),
        ("unit variant", &[("APP_BACKEND__KIND", "memory")], "[backend]\nkind = 'memory'\n"),
    ];
    for (case, vars, toml) in cases {
        same_from_env_and_file::<WithTagged>(case, vars, toml);
    }
}

#[test]
fn aliases_read_env_values_like_file_values() {
    let cases: &[Case<'_>] = &[
        ("alias", &[("APP_SIZE", "20"), ("APP_HOSTNAME", "db")], "size = 20\nhostname = 'db'\n"),
        ("name", &[("APP_POOL_SIZE", "20"), ("APP_HOST", "db")], "pool_size = 20\nhost = 'db'\n"),
    ];
    for (case, vars, toml) in cases {
        same_from_env_and_file::<Aliased>(case, vars, toml);
    }
}

#[test]
fn container_defaults_read_env_values_like_file_values() {
    let cases: &[Case<'_>] = &[
        (
            "all set",
            &[("APP_POOL_SIZE", "20"), ("APP_NAME", "svc"), ("APP_DEBUG", "yes")],
            "pool_size = 20\nname = 'svc'\ndebug = true\n",
        ),
        ("some set", &[("APP_NAME", "svc")], "name = 'svc'\n"),
        ("none set", &[], ""),
    ];
    for (case, vars, toml) in cases {
        same_from_env_and_file::<Defaulted>(case, vars, toml);
    }
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Db {
    pool_size: Secret<u16>,
    port: u16,
    name: String,
}

fn problem_keys(err: &chassis_config::Error) -> Vec<(Option<&str>, &ProblemKind)> {
    err.problems().iter().map(|p| (p.key(), p.kind())).collect()
}

#[test]
fn a_bad_value_from_a_secret_file_hides_no_other_problem() {
    let dir = Dir::new();
    let file = dir.write("pool-size", "many\n");
    let file = file.to_str().unwrap();
    let from_file = env_loader(&[("APP_POOL_SIZE_FILE", file), ("APP_PORT", "http")]).extract::<Db>().unwrap_err();
    let from_env = env_loader(&[("APP_POOL_SIZE", "many"), ("APP_PORT", "http")]).extract::<Db>().unwrap_err();
    for (err, what) in [(&from_file, "secret file"), (&from_env, "env")] {
        let keys = problem_keys(err);
        assert!(!keys.iter().any(|(_, k)| matches!(k, ProblemKind::Hidden)), "{what}: {err}");
        let keys: Vec<_> = keys.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [Some("name"), Some("pool_size"), Some("port")], "{what}: {err}");
    }
    let text = from_file.to_string();
    assert!(text.contains("APP_POOL_SIZE_FILE") && !text.contains("many"), "{text}");
}

#[test]
fn a_bad_value_under_a_renamed_key_hides_no_other_problem() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Camel {
        #[serde(rename = "poolSize")]
        pool_size: u16,
        port: u16,
    }
    let err = env_loader(&[("APP_POOLSIZE", "many"), ("APP_PORT", "http")]).extract::<Camel>().unwrap_err();
    let keys = problem_keys(&err);
    assert!(!keys.iter().any(|(_, k)| matches!(k, ProblemKind::Hidden)), "{err}");
    assert_eq!(keys.len(), 2, "{err}");
}
