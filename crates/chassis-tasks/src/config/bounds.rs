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

    /// Each check agrees with `validate`, which worker builders still call.
    #[test]
    fn checks_between_fields_name_the_value_out_of_line_and_agree_with_validate() {
        use chassis_bounds::Check;

        let base = || Config::new("p");
        assert!(base().check().is_empty());
        let mut pollers = base();
        (pollers.concurrency, pollers.pollers) = (8, Some(9));
        let no_pool = Config::new(" ");
        let mut short_max = base();
        (short_max.backoff.base_secs, short_max.backoff.max_secs) = (60, 30);
        let mut long_max = base();
        long_max.backoff.max_secs = 43_201;
        let mut jitter = base();
        jitter.backoff.jitter = 1.5;
        let mut dlq = base();
        dlq.dead_letter_queue = Some(String::new());
        let cases = [
            (pollers, "pollers", "at most concurrency (8)", vec!["concurrency"]),
            (no_pool, "task_pool", "a queue name (or a queue_url)", vec!["queue_url"]),
            (short_max, "backoff.max_secs", "backoff.base_secs (60) to 43200", vec!["backoff.base_secs"]),
            (long_max, "backoff.max_secs", "backoff.base_secs (10) to 43200", vec!["backoff.base_secs"]),
            (jitter, "backoff.jitter", "a number from 0 to 1", vec![]),
            (dlq, "dead_letter_queue", "a queue name, not empty", vec![]),
        ];
        for (config, key, expected, related) in cases {
            let found = config.check();
            assert_eq!(found.len(), 1, "{key}: {found:?}");
            assert_eq!((found[0].key.as_str(), found[0].expected.as_str()), (key, expected));
            assert_eq!(found[0].related, related);
            assert!(config.validate().is_err(), "{key}: validate accepts what check rejects");
        }
        let mut at_limit = base();
        (at_limit.concurrency, at_limit.pollers) = (8, Some(8));
        at_limit.queue_url = Some("http://q".into());
        at_limit.task_pool.clear();
        assert!(at_limit.check().is_empty() && at_limit.validate().is_ok());
    }
}
