//! Loading ~50 keys from a TOML file plus environment variables: chassis-config
//! next to plain figment doing the same (`Toml::file` + `Env::prefixed().split("__")`).
//!
//! Both read the real process environment. Setting variables in-process needs
//! `unsafe` in edition 2024, so the bench re-runs itself with them set.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

const MARKER: &str = "CHASSIS_CONFIG_BENCH_CHILD";

const ENV: [(&str, &str); 10] = [
    ("BENCH_SERVICE__NAME", "billing"),
    ("BENCH_SERVICE__REPLICAS", "4"),
    ("BENCH_DB__POOL_SIZE", "40"),
    ("BENCH_DB__URL", "postgres://db.internal/billing"),
    ("BENCH_HTTP__PORT", "9090"),
    ("BENCH_HTTP__GZIP", "true"),
    ("BENCH_TASKS__WORKERS", "12"),
    ("BENCH_LOG__LEVEL", "debug"),
    ("BENCH_BREAKER__FAILURE_RATE", "0.25"),
    ("BENCH_BREAKER__ENABLED", "false"),
];

const FILE: &str = r#"
environment = "production"
region = "eu-west-1"

[service]
name = "svc"
version = "v2"
replicas = 2
owner = "platform"
tier = "gold"
debug = false
started_by = "ci"
description = "the billing service"

[db]
url = "postgres://localhost/app"
pool_size = 10
timeout_ms = 5000
idle_ms = 60000
ssl = true
schema = "public"
statement_cache = 100
replicas = ["r1.internal", "r2.internal"]

[http]
host = "0.0.0.0"
port = 8080
gzip = false
max_body = 1048576
read_timeout_ms = 3000
write_timeout_ms = 3000
keepalive = true
cors_origins = ["https://a.example", "https://b.example"]

[tasks]
pool = "billing-tasks"
workers = 3
max_workers = 6
timeout_secs = 120
max_failures = 10
backoff = "exponential"
visibility_secs = 30
dead_letter = "billing-dlq"

[log]
level = "info"
format = "json"
stderr = false
project = "acme"
non_blocking = true
max_line = 262144
labels = ["team", "tier"]
color = false

[breaker]
enabled = true
failure_rate = 0.5
threshold = 5
open_ms = 10000
half_open_calls = 1
window = 100
min_calls = 20
slow_ms = 2000
"#;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Settings {
    environment: String,
    region: String,
    service: Service,
    db: Db,
    http: Http,
    tasks: Tasks,
    log: Log,
    breaker: Breaker,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Service {
    name: String,
    version: String,
    replicas: u32,
    owner: String,
    tier: String,
    debug: bool,
    started_by: String,
    description: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Db {
    url: String,
    pool_size: u16,
    timeout_ms: u64,
    idle_ms: u64,
    ssl: bool,
    schema: String,
    statement_cache: u32,
    replicas: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Http {
    host: String,
    port: u16,
    gzip: bool,
    max_body: u64,
    read_timeout_ms: u64,
    write_timeout_ms: u64,
    keepalive: bool,
    cors_origins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Tasks {
    pool: String,
    workers: u32,
    max_workers: u32,
    timeout_secs: u64,
    max_failures: u32,
    backoff: String,
    visibility_secs: u64,
    dead_letter: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Log {
    level: String,
    format: String,
    stderr: bool,
    project: String,
    non_blocking: bool,
    max_line: u64,
    labels: Vec<String>,
    color: bool,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Breaker {
    enabled: bool,
    failure_rate: f64,
    threshold: u32,
    open_ms: u64,
    half_open_calls: u32,
    window: u32,
    min_calls: u32,
    slow_ms: u64,
}

fn chassis(path: &Path) -> Settings {
    chassis_config::Loader::new("BENCH").no_dir().file(path).extract::<Settings>().unwrap().into_value()
}

fn figment(path: &Path) -> Settings {
    Figment::new().merge(Toml::file_exact(path)).merge(Env::prefixed("BENCH_").split("__")).extract().unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.toml");
    std::fs::write(&path, FILE).unwrap();

    // Both must load the same thing before their speed means anything.
    let (ours, theirs) = (chassis(&path), figment(&path));
    assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
    assert_eq!(ours.db.pool_size, 40);
    assert!(!ours.breaker.enabled);

    let mut group = c.benchmark_group("load_50_keys_file_and_env");
    group.bench_function("chassis_config", |b| b.iter(|| chassis(black_box(&path))));
    group.bench_function("figment", |b| b.iter(|| figment(black_box(&path))));
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    #[allow(clippy::disallowed_methods)] // the bench controls its own environment
    if std::env::var_os(MARKER).is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .envs(ENV)
            .env(MARKER, "1")
            .status()
            .unwrap();
        std::process::exit(status.code().unwrap_or(1));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
