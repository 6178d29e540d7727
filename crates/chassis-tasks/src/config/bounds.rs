//! Range checks that run while the section deserializes (`#[serde(deserialize_with)]`),
//! so a value of the right type but out of range is a deserialization error at
//! its own key: chassis-config reports it with the key, the variable and the
//! source, next to every other problem, instead of a build step failing later.

pub(super) use chassis_bounds::{at_least, some_at_least, uint};

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn out_of_range_values_fail_to_deserialize_naming_the_range() {
        let cases = [
            (r#"{"concurrency": 0}"#, "an integer from 1 to 10000"),
            (r#"{"concurrency": 10001}"#, "an integer from 1 to 10000"),
            (r#"{"pollers": 0}"#, "an integer of at least 1"),
            (r#"{"visibility_timeout_secs": 43201}"#, "an integer from 1 to 43200"),
            (r#"{"wait_time_secs": 21}"#, "an integer from 0 to 20"),
            (r#"{"max_failures": 0}"#, "an integer of at least 1"),
            (r#"{"unknown_task_receives": 0}"#, "an integer of at least 1"),
            (r#"{"task_timeout_secs": 0}"#, "an integer of at least 1"),
        ];
        for (json, expected) in cases {
            let err = serde_json::from_str::<Config>(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn values_at_the_bounds_and_absent_options_load() {
        let json = r#"{"task_pool": "p", "concurrency": 10000, "pollers": 1, "visibility_timeout_secs": 1,
            "wait_time_secs": 0, "max_failures": 1, "unknown_task_receives": 1, "task_timeout_secs": null}"#;
        let config: Config = serde_json::from_str(json).unwrap();
        assert_eq!((config.concurrency, config.pollers, config.task_timeout_secs), (10_000, Some(1), None));
        assert!(config.validate().is_ok());
        let empty: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Config::default());
    }
}
