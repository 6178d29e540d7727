//! Range checks that run while the section deserializes (`#[serde(deserialize_with)]`),
//! so a value of the right type but out of range is a deserialization error at
//! its own key: chassis-config reports it with the key, the variable and the
//! source, next to every other problem, instead of a build step failing later.

use chassis_bounds::out_of_range;
pub(super) use chassis_bounds::{at_least, uint};
use serde::de::{Deserialize, Deserializer, Unexpected};

/// A rate: `0 < x ≤ 1`.
pub(super) fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if x > 0.0 && x <= 1.0 { Ok(x) } else { Err(out_of_range(Unexpected::Float(x), "a number in (0, 1]")) }
}

/// A fraction: `0 ≤ x ≤ 1`.
pub(super) fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if (0.0..=1.0).contains(&x) { Ok(x) } else { Err(out_of_range(Unexpected::Float(x), "a number in [0, 1]")) }
}

/// A growth factor: a finite number `≥ 1`.
pub(super) fn factor<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if x.is_finite() && x >= 1.0 { Ok(x) } else { Err(out_of_range(Unexpected::Float(x), "a number ≥ 1")) }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn out_of_range_values_fail_to_deserialize_naming_the_range() {
        let cases = [
            (r#"{"failure_threshold": 0}"#, "an integer of at least 1"),
            (r#"{"open_timeout_ms": 0}"#, "an integer from 1 to 1099511627775"),
            (r#"{"half_open_max_calls": 65536}"#, "an integer from 1 to 65535"),
            (r#"{"probe_timeout_ms": 0}"#, "an integer from 1 to"),
            (r#"{"request_timeout_ms": 0}"#, "an integer of at least 1"),
            (r#"{"failure_rate": {"threshold": 1.5}}"#, "a number in (0, 1]"),
            (r#"{"failure_rate": {"window": 0}}"#, "an integer from 1 to 10000"),
            (r#"{"failure_rate": {"min_calls": 0}}"#, "an integer of at least 1"),
            (r#"{"slow_call": {"threshold_ms": 0}}"#, "an integer of at least 1"),
            (r#"{"slow_call": {"rate": 0.0}}"#, "a number in (0, 1]"),
            (r#"{"backoff": {"multiplier": 0.5}}"#, "a number ≥ 1"),
            (r#"{"backoff": {"max_ms": 0}}"#, "an integer from 1 to"),
            (r#"{"backoff": {"jitter": -0.1}}"#, "a number in [0, 1]"),
        ];
        for (json, expected) in cases {
            let err = serde_json::from_str::<Config>(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn values_at_the_bounds_load() {
        let json = r#"{"failure_threshold": 1, "half_open_max_calls": 65535, "open_timeout_ms": 1,
            "failure_rate": {"threshold": 1.0, "window": 1, "min_calls": 1},
            "slow_call": {"rate": 1.0}, "backoff": {"multiplier": 1.0, "jitter": 0.0, "max_ms": 1}}"#;
        let config: Config = serde_json::from_str(json).unwrap();
        assert!(config.validate().is_ok(), "{config:?}");
        assert_eq!(serde_json::from_str::<Config>("{}").unwrap(), Config::default());
    }
}
