//! Issue 15 §5: TOML date, time and date-time values read as their RFC 3339
//! text into strings, into the time types a target asks for, and dump cleanly.

use serde::{Deserialize, Serialize};

use crate::support::Dir;

const TOML: &str = "
starts_at = 1979-05-27T07:32:00Z
offset = 1979-05-27T00:32:00.999999-07:00
local = 1979-05-27T07:32:00
day = 1979-05-27
at = 07:32:00
list = [1979-05-27, 2000-01-01]
[window]
from = 00:00:00
";

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct AsText {
    starts_at: String,
    offset: String,
    local: String,
    day: String,
    at: String,
    list: Vec<String>,
    window: Window,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct Window {
    from: String,
}

#[test]
fn toml_date_times_read_as_rfc3339_text() {
    let dir = Dir::new();
    dir.write("default.toml", TOML);
    let loaded = dir.loader().extract::<AsText>().unwrap();
    assert_eq!(
        *loaded.value(),
        AsText {
            starts_at: "1979-05-27T07:32:00Z".into(),
            offset: "1979-05-27T00:32:00.999999-07:00".into(),
            local: "1979-05-27T07:32:00".into(),
            day: "1979-05-27".into(),
            at: "07:32:00".into(),
            list: vec!["1979-05-27".into(), "2000-01-01".into()],
            window: Window { from: "00:00:00".into() },
        }
    );
    let dump = loaded.effective();
    assert_eq!(dump.get("starts_at").map(|e| e.value.as_str()), Some("\"1979-05-27T07:32:00Z\""));
    assert_eq!(dump.get("window.from").map(|e| e.value.as_str()), Some("\"00:00:00\""));
    assert!(!dump.to_string().contains("toml_private"), "{dump}");
}

#[derive(Debug, Deserialize)]
struct AsTypes {
    #[serde(with = "time::serde::rfc3339")]
    starts_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    offset: time::OffsetDateTime,
    local: toml_datetime::Datetime,
    day: toml_datetime::Datetime,
    at: toml_datetime::Datetime,
}

#[test]
fn toml_date_times_read_into_time_types() {
    let dir = Dir::new();
    dir.write("default.toml", TOML);
    let loaded = dir.loader().extract::<AsTypes>().unwrap();
    let v = loaded.value();
    assert_eq!(v.starts_at.unix_timestamp(), 296_638_320);
    assert_eq!(v.offset.unix_timestamp(), 296_638_320);
    assert_eq!(v.offset.nanosecond(), 999_999_000);
    assert_eq!(v.local.to_string(), "1979-05-27T07:32:00");
    assert_eq!(v.day.to_string(), "1979-05-27");
    assert_eq!(v.at.to_string(), "07:32:00");
}

#[test]
fn the_same_text_from_the_environment_reads_alike() {
    let loaded =
        crate::support::env_loader(&[("APP_STARTS_AT", "1979-05-27T07:32:00Z"), ("APP_LOCAL", "1979-05-27T07:32:00")])
            .extract::<EnvTypes>()
            .unwrap();
    assert_eq!(loaded.value().starts_at.unix_timestamp(), 296_638_320);
    assert_eq!(loaded.value().local.to_string(), "1979-05-27T07:32:00");
}

#[derive(Debug, Deserialize)]
struct EnvTypes {
    #[serde(with = "time::serde::rfc3339")]
    starts_at: time::OffsetDateTime,
    local: toml_datetime::Datetime,
}
