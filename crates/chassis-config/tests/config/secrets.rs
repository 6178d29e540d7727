//! Point 6: secrets — redacted everywhere, readable only explicitly, `_FILE`.

use chassis_config::{Loader, ProblemKind, Secret, Source};
use serde::{Deserialize, Serialize};

use crate::support::{Dir, env_loader};

const SECRET: &str = "s3cr3t-Pa55";

#[derive(Debug, Serialize, Deserialize)]
struct S {
    db: Db,
}

#[derive(Debug, Serialize, Deserialize)]
struct Db {
    user: String,
    password: Secret<String>,
    #[serde(default)]
    token: Option<Secret<String>>,
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET), "secret leaked: {text}");
    assert!(!text.contains("s3cr3t"), "part of the secret leaked: {text}");
}

#[test]
fn no_secret_byte_reaches_debug_the_dump_or_serialization() {
    let loaded = env_loader(&[("APP_DB__USER", "svc"), ("APP_DB__PASSWORD", SECRET), ("APP_DB__TOKEN", SECRET)])
        .extract::<S>()
        .unwrap();
    assert_eq!(loaded.db.password.expose(), SECRET);
    assert_no_secret(&format!("{loaded:?}"));
    assert_no_secret(&format!("{:#?}", loaded.value()));
    assert_no_secret(&format!("{:?}", loaded.merged()));
    assert_no_secret(&loaded.effective().to_string());
    assert_no_secret(&serde_json::to_string(&loaded.effective()).unwrap());
    assert_no_secret(&serde_json::to_string(loaded.value()).unwrap());
    assert_eq!(loaded.effective().get("db.password").unwrap().value, "***");
    assert_eq!(loaded.effective().get("db.user").unwrap().value, "\"svc\"");
}

#[test]
fn no_secret_byte_reaches_an_error_message() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Numeric {
        pin: Secret<u32>,
        key: Secret<Vec<u8>>,
    }
    let err = env_loader(&[("APP_PIN", SECRET), ("APP_KEY", SECRET)]).extract::<Numeric>().unwrap_err();
    assert_eq!(err.problems().len(), 2, "{err}");
    assert_no_secret(&err.to_string());
    assert_no_secret(&format!("{err:?}"));
    assert_no_secret(&serde_json::to_string(&err).unwrap());
    assert!(err.to_string().contains("a secret value"), "{err}");

    let dir = Dir::new();
    dir.write("default.toml", format!("pin = '{SECRET}'\nkey = 5\n"));
    let err = dir.loader().extract::<Numeric>().unwrap_err();
    assert_eq!(err.problems().len(), 2, "{err}");
    assert_no_secret(&err.to_string());

    // A rule on a key read into a secret withholds the value too.
    let err = env_loader(&[("APP_DB__USER", "u"), ("APP_DB__PASSWORD", SECRET)])
        .require(chassis_config::Require::key("db.password").rule(chassis_config::Rule::min_len(40)))
        .extract::<S>()
        .unwrap_err();
    assert_no_secret(&err.to_string());

    // A malformed file quoting the secret does not show the quoted line.
    let dir = Dir::new();
    dir.write("default.toml", format!("[db]\npassword = \"{SECRET}\n"));
    let err = dir.loader().extract::<S>().unwrap_err();
    assert_no_secret(&err.to_string());
}

#[test]
fn file_variables_read_mounted_secrets() {
    let dir = Dir::new();
    let file = dir.write("db-password", format!("{SECRET}\n"));
    let file = file.to_str().unwrap();
    let loaded = env_loader(&[("APP_DB__USER", "svc"), ("APP_DB__PASSWORD_FILE", file)]).extract::<S>().unwrap();
    assert_eq!(loaded.db.password.expose(), SECRET, "one trailing newline is dropped");
    assert!(loaded.warnings().is_empty(), "{:?}", loaded.warnings());
    assert_no_secret(&loaded.effective().to_string());
}

#[test]
fn a_field_named_like_a_file_variable_keeps_its_path() {
    #[derive(Deserialize)]
    struct Log {
        output_file: String,
    }
    let loaded = env_loader(&[("APP_OUTPUT_FILE", "/var/log/app.log")]).extract::<Log>().unwrap();
    assert_eq!(loaded.output_file, "/var/log/app.log");
}

#[test]
fn an_unreadable_secret_file_is_a_problem_naming_the_variable() {
    let err = env_loader(&[("APP_DB__USER", "svc"), ("APP_DB__PASSWORD_FILE", "/nonexistent/pw")])
        .extract::<S>()
        .unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key(), Some("db.password"));
    assert!(
        matches!(p.kind(), ProblemKind::Source { message } if message.contains("/nonexistent/pw") && message.contains("APP_DB__PASSWORD_FILE")),
        "{err}"
    );
    assert!(matches!(p.source(), Some(Source::SecretFile { var, .. }) if var == "APP_DB__PASSWORD_FILE"));
}

#[test]
fn a_value_and_a_file_for_the_same_key_conflict() {
    let dir = Dir::new();
    let file = dir.write("pw", "x");
    let err = env_loader(&[
        ("APP_DB__USER", "svc"),
        ("APP_DB__PASSWORD", SECRET),
        ("APP_DB__PASSWORD_FILE", file.to_str().unwrap()),
    ])
    .extract::<S>()
    .unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    let text = err.to_string();
    assert!(text.contains("set twice") && text.contains("APP_DB__PASSWORD_FILE"), "{text}");
    assert_no_secret(&text);
}

#[test]
fn keys_named_like_secrets_are_redacted_even_untyped() {
    let config = Loader::new("APP").no_dir().env([("APP_API_TOKEN", SECRET), ("APP_NAME", "svc")]).load().unwrap();
    let dump = config.effective();
    assert_eq!(dump.get("api_token").unwrap().value, "***");
    assert_eq!(dump.get("name").unwrap().value, "\"svc\"");
}
