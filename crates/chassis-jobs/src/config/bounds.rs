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
}
