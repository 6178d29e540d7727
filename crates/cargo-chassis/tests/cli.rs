//! `cargo chassis new`, end to end: refusals (exit code and message), the
//! generated manifests against chassis-service's defaults, the Dockerfile's
//! structure, and generated services that pass their own `cargo test`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cargo_chassis::{Discovery, JobStore, Options, QueueBackend};
use serde_yaml::Value;

fn cargo_chassis(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cargo-chassis")).current_dir(dir).arg("chassis").args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// This workspace: the chassis the generated services depend on.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().and_then(Path::parent).unwrap().to_owned()
}

#[test]
fn refusals_have_an_exit_code_and_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad_name = cargo_chassis(dir.path(), &["new", "2fast"]);
    assert_eq!(bad_name.status.code(), Some(2));
    assert!(stderr(&bad_name).contains("`2fast` is not a valid crate name: it must start with an ASCII letter"));
    let keyword = cargo_chassis(dir.path(), &["new", "self"]);
    assert_eq!(keyword.status.code(), Some(2));
    assert!(stderr(&keyword).contains("not a valid crate name"), "{}", stderr(&keyword));

    let bad_value = cargo_chassis(dir.path(), &["new", "billing", "--queue", "mysql"]);
    assert_eq!(bad_value.status.code(), Some(2));
    let message = stderr(&bad_value);
    assert!(message.contains("'mysql'") && message.contains("memory, sqlite, sqs, postgres"), "{message}");
    let bad_jobs = cargo_chassis(dir.path(), &["new", "billing", "--jobs", "redis"]);
    assert_eq!(bad_jobs.status.code(), Some(2));
    let unknown = cargo_chassis(dir.path(), &["new", "billing", "--frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));

    std::fs::create_dir(dir.path().join("billing")).unwrap();
    std::fs::write(dir.path().join("billing/notes.txt"), "mine").unwrap();
    let taken = cargo_chassis(dir.path(), &["new", "billing"]);
    assert_eq!(taken.status.code(), Some(1));
    assert!(stderr(&taken).contains("already exists and is not empty"), "{}", stderr(&taken));
    let left: Vec<_> = std::fs::read_dir(dir.path().join("billing")).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing written into it");

    assert!(!dir.path().join("2fast").exists() && !dir.path().join("self").exists());
    let made = cargo_chassis(dir.path(), &["new", "ledger", "--jobs", "sqlite"]);
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    assert!(
        dir.path().join("ledger/src/main.rs").exists() && dir.path().join("ledger/deploy/k8s/secret.yaml").exists()
    );
    // An empty directory is fine.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let into_empty = cargo_chassis(dir.path(), &["new", "ledger", "--dir", "empty"]);
    assert_eq!(into_empty.status.code(), Some(0), "{}", stderr(&into_empty));
}

fn rendered(options: &Options, path: &str) -> String {
    let files = cargo_chassis::render(options).unwrap();
    files.into_iter().find(|(p, _)| *p == path).map(|(_, text)| text).unwrap()
}

fn all_options() -> Vec<Options> {
    let mut all = Vec::new();
    for queue in QueueBackend::ALL {
        for jobs in JobStore::ALL {
            for discovery in Discovery::ALL {
                for otel in [false, true] {
                    all.push(
                        Options::new("billing").unwrap().queue(*queue).jobs(*jobs).discovery(*discovery).otel(otel),
                    );
                }
            }
        }
    }
    all
}

#[test]
fn the_manifests_probe_the_admin_port_and_outlast_the_drain() {
    let defaults = chassis_service::Config::default();
    let admin = defaults.admin_addr.port();
    assert_eq!(cargo_chassis::ADMIN_PORT, admin);
    assert_eq!(cargo_chassis::API_PORT, defaults.http_addr.port());
    for options in all_options() {
        let deployment: Value = serde_yaml::from_str(&rendered(&options, "deploy/k8s/deployment.yaml")).unwrap();
        let pod = &deployment["spec"]["template"]["spec"];
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(grace > defaults.drain_delay_secs + defaults.shutdown_deadline_secs, "{grace}");
        let container = &pod["containers"][0];
        let ports = container["ports"].as_sequence().unwrap();
        let named =
            |name: &str| ports.iter().find(|p| p["name"] == name).and_then(|p| p["containerPort"].as_u64()).unwrap();
        assert_eq!(named("admin"), u64::from(admin));
        assert_eq!(named("http"), u64::from(defaults.http_addr.port()));
        for (probe, path) in [("startupProbe", "/startupz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/livez")]
        {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
            assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
        }
        assert!(container["resources"]["requests"]["cpu"].is_string());
        assert!(container["resources"]["limits"]["memory"].is_string());
        // Every *_FILE variable names a file in the mounted Secret, whose key exists.
        let secret: Value = serde_yaml::from_str(&rendered(&options, "deploy/k8s/secret.yaml")).unwrap();
        let mount = container["volumeMounts"].as_sequence().unwrap().iter().find(|m| m["name"] == "secrets").unwrap();
        let mount_path = mount["mountPath"].as_str().unwrap();
        let volume = pod["volumes"].as_sequence().unwrap().iter().find(|v| v["name"] == "secrets").unwrap();
        assert_eq!(volume["secret"]["secretName"], secret["metadata"]["name"]);
        for var in container["env"].as_sequence().unwrap() {
            let name = var["name"].as_str().unwrap();
            if name.ends_with("_FILE") {
                let file = var["value"].as_str().unwrap().strip_prefix(&format!("{mount_path}/")).unwrap();
                assert!(secret["stringData"][file].is_string(), "{name}: no key {file} in the Secret");
            }
        }
        let postgres = rendered(&options, "Cargo.toml").contains("postgres");
        let files =
            container["env"].as_sequence().unwrap().iter().filter(|v| v["name"].as_str().unwrap().ends_with("_FILE"));
        assert_eq!(files.count() > 0, postgres, "a database URL comes from the Secret");
        let service: Value = serde_yaml::from_str(&rendered(&options, "deploy/k8s/service.yaml")).unwrap();
        assert_eq!(service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"]);
        let production: toml::Value = toml::from_str(&rendered(&options, "config/production.toml")).unwrap();
        let admin_addr: std::net::SocketAddr = production["service"]["admin_addr"].as_str().unwrap().parse().unwrap();
        assert_eq!(admin_addr.port(), admin);
        let _: Value = serde_yaml::from_str(&rendered(&options, ".github/workflows/ci.yml")).unwrap();
        let _: toml::Value = toml::from_str(&rendered(&options, "config/default.toml")).unwrap();
    }
}

#[test]
fn the_manifest_has_exactly_the_chosen_features() {
    for options in all_options() {
        let manifest: toml::Value = toml::from_str(&rendered(&options, "Cargo.toml")).unwrap();
        let chassis = &manifest["dependencies"]["chassis"];
        assert_eq!(chassis["package"].as_str(), Some("chassis-kit"));
        assert_eq!(chassis["default-features"].as_bool(), Some(false));
        let features: Vec<&str> = chassis["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert_eq!(features, options.features());
    }
    let local = Options::new("billing").unwrap().chassis_path("/src/chassis");
    let manifest: toml::Value = toml::from_str(&rendered(&local, "Cargo.toml")).unwrap();
    assert_eq!(manifest["dependencies"]["chassis"]["path"].as_str(), Some("/src/chassis"));
    assert_eq!(
        manifest["dev-dependencies"]["chassis-testkit"]["path"].as_str(),
        Some("/src/chassis/crates/chassis-testkit")
    );
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_as_a_non_root_user() {
    for options in all_options() {
        let dockerfile = rendered(&options, "Dockerfile");
        // Instructions, with continuation lines joined.
        let joined = dockerfile.replace("\\\n", " ");
        let instructions: Vec<(&str, &str)> = joined
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split_once(' ').unwrap_or((l, "")))
            .collect();
        let known = ["FROM", "WORKDIR", "COPY", "RUN", "USER", "ENV", "EXPOSE", "ENTRYPOINT"];
        assert!(instructions.iter().all(|(i, _)| known.contains(i)), "{instructions:?}");
        let stages: Vec<usize> =
            instructions.iter().enumerate().filter(|(_, (i, _))| *i == "FROM").map(|(n, _)| n).collect();
        assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
        assert!(instructions[stages[0]].1.ends_with(" AS build"));
        let (build, runtime) = instructions.split_at(stages[1]);
        // The dependencies are built from the manifests before the sources are copied.
        let manifests = build.iter().position(|(i, a)| *i == "COPY" && a.starts_with("Cargo.toml")).unwrap();
        let first_build = build.iter().position(|(i, a)| *i == "RUN" && a.contains("cargo build --release")).unwrap();
        let sources = build.iter().position(|(i, a)| *i == "COPY" && *a == "src src").unwrap();
        assert!(manifests < first_build && first_build < sources);
        assert!(!runtime[0].1.contains("rust:"), "no toolchain in the runtime image");
        assert!(runtime.iter().any(|(i, a)| *i == "COPY" && a.starts_with("--from=build ")));
        let user = runtime.iter().rfind(|(i, _)| *i == "USER").unwrap().1;
        assert!(user != "root" && user != "0", "{user}");
        let user_at = runtime.iter().position(|(i, _)| *i == "USER").unwrap();
        assert!(runtime[user_at..].iter().all(|(i, _)| *i != "RUN"), "nothing runs as root after USER");
        let entrypoint = runtime.iter().find(|(i, _)| *i == "ENTRYPOINT").unwrap().1;
        let exec: Vec<String> = serde_yaml::from_str(entrypoint).unwrap(); // the exec (JSON) form
        assert_eq!(exec, ["/usr/local/bin/billing"]);
        let exposed = runtime.iter().find(|(i, _)| *i == "EXPOSE").unwrap().1;
        assert!(exposed.split(' ').any(|p| p == cargo_chassis::ADMIN_PORT.to_string()));
    }
}

/// Generates services that need no server (the SQLite and memory queues,
/// with and without a SQLite job store) against this workspace and runs
/// their own `cargo test`, sharing one target directory (`target/generated`)
/// and this workspace's Cargo.lock, so it is built once.
#[test]
fn generated_services_pass_their_own_tests() {
    let workspace = workspace();
    let target = workspace.join("target").join("generated");
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("billing", &["--queue", "sqlite", "--jobs", "sqlite"][..]),
        ("notes", &["--queue", "memory", "--jobs", "none"][..]),
    ] {
        let path = workspace.display().to_string();
        let mut all = vec!["new", name, "--chassis-path", path.as_str()];
        all.extend_from_slice(args);
        let made = cargo_chassis(dir.path(), &all);
        assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
        let service = dir.path().join(name);
        std::fs::copy(workspace.join("Cargo.lock"), service.join("Cargo.lock")).unwrap();
        let test = Command::new(env!("CARGO"))
            .current_dir(&service)
            .args(["test", "--quiet"])
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(
            test.status.success(),
            "cargo test of {name} failed:\n{}\n{}",
            String::from_utf8_lossy(&test.stdout),
            stderr(&test)
        );
        let stdout = String::from_utf8_lossy(&test.stdout);
        assert!(stdout.contains("3 passed"), "{stdout}");
    }
}
