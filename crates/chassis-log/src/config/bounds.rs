//! Range checks that run while the section deserializes (`#[serde(deserialize_with)]`),
//! so a value of the right type but out of range is a deserialization error at
//! its own key: chassis-config reports it with the key, the variable and the
//! source, next to every other problem, instead of a build step failing later.

pub(super) use chassis_bounds::at_least;
use chassis_bounds::out_of_range;
use serde::de::{Deserialize, Deserializer, Unexpected};

/// Filter directives in `RUST_LOG` syntax.
pub(super) fn filter<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let directives = String::deserialize(d)?;
    match tracing_subscriber::EnvFilter::builder().parse(&directives) {
        Ok(_) => Ok(directives),
        Err(e) => Err(out_of_range(
            Unexpected::Str(&directives),
            format_args!("filter directives in RUST_LOG syntax, like `info,my_crate=debug` ({e})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn a_malformed_filter_or_a_tiny_line_limit_fails_to_deserialize() {
        let cases = [
            (r#"{"filter": "app=notalevel"}"#, "filter directives in RUST_LOG syntax"),
            (r#"{"max_line_bytes": 100}"#, "an integer of at least 4096"),
        ];
        for (json, expected) in cases {
            let err = serde_json::from_str::<Config>(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
        let config: Config =
            serde_json::from_str(r#"{"filter": "warn,my_crate=debug", "max_line_bytes": 4096}"#).unwrap();
        assert_eq!((config.filter.as_str(), config.max_line_bytes), ("warn,my_crate=debug", 4096));
        assert_eq!(serde_json::from_str::<Config>(r#"{"filter": ""}"#).unwrap().filter, "");
    }

    #[test]
    fn more_labels_than_gcp_carries_is_a_check_at_labels() {
        use chassis_bounds::Check;

        let labels = |n: usize| (0..n).map(|i| (format!("l{i}"), "v".to_owned())).collect();
        let mut config = Config { labels: labels(62), ..Config::default() };
        assert!(config.check().is_empty(), "only gcp has the limit");
        config.format = crate::Format::Gcp;
        let found = config.check();
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "labels: invalid value 62 labels, expected at most 61 labels with format = \"gcp\""
        );
        assert_eq!(found[0].related, ["format"]);
        assert!(crate::JsonLayer::new(&config, std::io::sink).is_err(), "the layer refuses it too");
        config.labels = labels(61);
        assert!(config.check().is_empty());
    }
}
