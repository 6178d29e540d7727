//! The quickstart: a service's configuration and logging, the chassis way.
//!
//! ```text
//! cargo run --example quickstart
//! APP_LOG__FORMAT=gcp cargo run --example quickstart                      # Cloud Logging lines
//! APP_PORT=eighty APP_DB__POOL_SIZE=-1 cargo run --example quickstart   # see the report
//! APP_PROFILE=production cargo run --example quickstart                   # config/production.toml
//! ```
//!
//! It reads `examples/quickstart/config/default.toml`, the profile file named by
//! `APP_PROFILE`, and `APP_*` environment variables; starts logging from the
//! `log` section; logs a small job; and prints the effective configuration with
//! where each value came from. A bad configuration prints one report of every
//! problem and exits with code 78.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;

use chassis::config::{Loader, Require, Rule, Secret};
use serde::{Deserialize, Serialize};

/// The service's whole configuration, one section per concern.
#[derive(Debug, Serialize, Deserialize)]
struct Settings {
    /// The service name, on every log line.
    name: String,
    /// The port of the service's HTTP API.
    #[serde(default = "default_port")]
    port: u16,
    /// The job database.
    db: Db,
    /// Logging (`chassis::log::Config`; its `service` defaults to `name`).
    #[serde(default)]
    log: chassis::log::Config,
    /// Static labels added to every log line.
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Db {
    url: Secret<String>,
    #[serde(default = "default_pool_size")]
    pool_size: u16,
}

fn default_port() -> u16 {
    8080
}

fn default_pool_size() -> u16 {
    10
}

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart/config");
    let loaded = Loader::new("APP")
        .dir(dir)
        .require(Require::key("db.url").rule(Rule::url()))
        .require(Require::key("port").optional().rule(Rule::range(1.0, 65535.0)))
        .extract_or_exit::<Settings>();
    let settings = loaded.value();

    let mut log = settings.log.clone();
    if log.service == chassis::log::Config::default().service {
        log.service.clone_from(&settings.name);
    }
    log.version = env!("CARGO_PKG_VERSION").into();
    log.labels.extend(settings.labels.clone());
    let _guard = match chassis::log::init(&log) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("cannot start logging: {e}");
            std::process::exit(1);
        }
    };

    for warning in loaded.warnings() {
        tracing::warn!(%warning, "configuration");
    }
    tracing::info!(port = settings.port, pool_size = settings.db.pool_size, "configuration loaded");
    chassis::log::with_job("0190c5e2-7b1a-7cc1-9f0e-3d2d6c9b5a10", "import-catalog", || {
        let task = tracing::info_span!("task", task = "fetch", attempt = 1u32);
        let _task = task.enter();
        tracing::info!(rows = 120, "imported");
    });
    tracing::info!("outside the job: no job fields on this line");
    println!("\nEffective configuration:\n{}", loaded.effective());
}
