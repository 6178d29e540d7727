//! The quickstart: load a service's configuration the chassis way.
//!
//! ```text
//! cargo run --example quickstart
//! APP_PORT=eighty APP_DB__POOL_SIZE=-1 cargo run --example quickstart   # see the report
//! APP_PROFILE=production cargo run --example quickstart                   # needs config/production.toml
//! ```
//!
//! It reads `examples/quickstart/config/default.toml`, the profile file named by
//! `APP_PROFILE`, and `APP_*` environment variables, then prints the effective
//! configuration with where each value came from. A bad configuration prints one
//! report of every problem and exits with code 78.
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

    for warning in loaded.warnings() {
        eprintln!("warning: {warning}");
    }
    let settings = loaded.value();
    println!(
        "{} would listen on port {} with {} database connections.",
        settings.name, settings.port, settings.db.pool_size
    );
    println!("Debug view (secrets stay hidden): {settings:?}\n");
    println!("Effective configuration:\n{}", loaded.effective());
}
