//! Range checks that run while a configuration section deserializes
//! (`#[serde(deserialize_with = "…")]`), so a value of the right type but out
//! of range is a deserialization error at its own key: chassis-config reports
//! it with the key, the variable and the source, next to every other problem.
//!
//! ```
//! #[derive(serde::Deserialize)]
//! struct Section {
//!     #[serde(deserialize_with = "chassis_bounds::uint::<_, usize, 1, 10_000>")]
//!     concurrency: usize,
//! }
//! let err = serde_json::from_str::<Section>(r#"{"concurrency": 0}"#).err().map(|e| e.to_string());
//! assert!(err.is_some_and(|e| e.contains("an integer from 1 to 10000")));
//! ```
#![forbid(unsafe_code)]

use std::fmt::Display;

use serde::de::{Deserialize, Deserializer, Error, Unexpected};

/// The error for `found`, which is not `expected` (serde's "invalid value").
pub fn out_of_range<E: Error>(found: Unexpected<'_>, expected: impl Display) -> E {
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

/// An unsigned integer from `MIN` to `MAX` (inclusive).
///
/// # Errors
/// The deserializer's, or "invalid value: …, expected an integer from MIN to MAX".
pub fn uint<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + TryInto<u64>,
{
    let value = T::deserialize(d)?;
    check(value.try_into().unwrap_or(u64::MAX), MIN, MAX)?;
    Ok(value)
}

/// An unsigned integer of at least `MIN`.
///
/// # Errors
/// The deserializer's, or "invalid value: …, expected an integer of at least MIN".
pub fn at_least<'de, D, T, const MIN: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + TryInto<u64>,
{
    uint::<D, T, MIN, { u64::MAX }>(d)
}

/// No value, or an unsigned integer of at least `MIN`.
///
/// # Errors
/// As [`at_least`].
pub fn some_at_least<'de, D, T, const MIN: u64>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + TryInto<u64>,
{
    let value = Option::<T>::deserialize(d)?;
    if let Some(n) = value {
        check(n.try_into().unwrap_or(u64::MAX), MIN, u64::MAX)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[derive(Debug, serde::Deserialize)]
    struct S {
        #[serde(default, deserialize_with = "super::uint::<_, u16, 1, 10>")]
        a: u16,
        #[serde(default, deserialize_with = "super::some_at_least::<_, u64, 5>")]
        b: Option<u64>,
    }

    #[test]
    fn bounds_are_inclusive_and_named_in_the_error() {
        assert_eq!(serde_json::from_str::<S>(r#"{"a": 10, "b": 5}"#).unwrap().a, 10);
        assert!(serde_json::from_str::<S>(r#"{"b": null}"#).unwrap().b.is_none());
        for (json, expected) in [
            (r#"{"a": 0}"#, "an integer from 1 to 10"),
            (r#"{"a": 11}"#, "an integer from 1 to 10"),
            (r#"{"b": 4}"#, "an integer of at least 5"),
        ] {
            let err = serde_json::from_str::<S>(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
