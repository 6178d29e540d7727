//! Range checks that run while the section deserializes (`#[serde(deserialize_with)]`),
//! so a value of the right type but out of range is a deserialization error at
//! its own key: chassis-config reports it with the key, the variable and the
//! source, next to every other problem, instead of a build step failing later.

use std::fmt::Display;

use serde::de::{Deserialize, Deserializer, Error, Unexpected};

fn out_of_range<E: Error>(found: Unexpected<'_>, expected: impl Display) -> E {
    E::invalid_value(found, &expected.to_string().as_str())
}

fn check<E: Error>(n: u64, min: u64, max: u64) -> Result<(), E> {
    if (min..=max).contains(&n) {
        return Ok(());
    }
    Err(if max == u64::MAX {
        out_of_range(Unexpected::Unsigned(n), format_args!("an integer of at least {min}"))
    } else {
        out_of_range(Unexpected::Unsigned(n), format_args!("an integer from {min} to {max}"))
    })
}

/// An unsigned integer from `MIN` to `MAX`.
pub(super) fn uint<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + TryInto<u64>,
{
    let value = T::deserialize(d)?;
    check(value.try_into().unwrap_or(u64::MAX), MIN, MAX)?;
    Ok(value)
}

/// An unsigned integer of at least `MIN`.
pub(super) fn at_least<'de, D, T, const MIN: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + TryInto<u64>,
{
    uint::<D, T, MIN, { u64::MAX }>(d)
}

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
}
