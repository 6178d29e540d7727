//! Range checks that run while the section deserializes (`#[serde(deserialize_with)]`),
//! so a value of the right type but out of range is a deserialization error at
//! its own key: chassis-config reports it with the key, the variable and the
//! source, next to every other problem, instead of a build step failing later.

pub(super) use chassis_bounds::at_least;

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn out_of_range_values_fail_to_deserialize_naming_the_range() {
        let cases = [
            (r#"{"pool_size": 0}"#, "an integer of at least 1"),
            (r#"{"stranded_grace_secs": 9}"#, "an integer of at least 10"),
        ];
        for (json, expected) in cases {
            let err = serde_json::from_str::<Config>(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
        assert_eq!(serde_json::from_str::<Config>("{}").unwrap(), Config::default());
    }

    #[test]
    fn what_from_config_would_refuse_is_a_check_at_its_key() {
        use chassis_bounds::Check;

        use crate::config::Backend;

        let memory = Config { backend: Backend::Memory, ..Config::default() };
        assert!(memory.check().is_empty());
        let postgres = Config { backend: Backend::Postgres, table_prefix: "my-app".into(), ..Config::default() };
        let keys: Vec<_> = postgres.check().into_iter().map(|v| v.key).collect();
        let mut expected = vec!["url", "table_prefix"];
        if !cfg!(feature = "postgres") {
            expected.insert(0, "backend");
        }
        assert_eq!(keys, expected);
        let sqlite = Config::default().check();
        assert_eq!(sqlite.is_empty(), cfg!(feature = "sqlite"), "{sqlite:?}");
    }
}
