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
//!
//! Checks *between* fields (`pollers` at most `concurrency`) cannot run while
//! one field deserializes: a section implements [`Check`] for them, returning
//! every [`Violation`] at the key of the value out of line. chassis-config's
//! `Loader::check` runs it after the section deserialized and puts each
//! violation in the same report; any other loader can call [`Check::check`].
#![forbid(unsafe_code)]

mod secret;

pub use secret::{REDACTED, SECRET_NEWTYPE, Secret};

use std::fmt::{self, Display};

use serde::de::{Deserialize, Deserializer, Error, Unexpected};

/// The README's code blocks, compiled as doctests so that they keep matching
/// the code (it has none yet; any added later is compiled).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

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

/// The checks of a configuration section that no single field's bound can
/// express — values that depend on each other, like `pollers` at most
/// `concurrency` — run once the section has deserialized.
///
/// ```
/// use chassis_bounds::{Check, Violation};
///
/// #[derive(serde::Deserialize)]
/// struct Pool {
///     min: u32,
///     max: u32,
/// }
///
/// impl Check for Pool {
///     fn check(&self) -> Vec<Violation> {
///         let mut found = Vec::new();
///         if self.max < self.min {
///             found.push(Violation::new("max", self.max, format_args!("at least min ({})", self.min)).related("min"));
///         }
///         found
///     }
/// }
///
/// let pool: Pool = serde_json::from_str(r#"{"min": 5, "max": 2}"#).unwrap();
/// let found = pool.check();
/// assert_eq!(found[0].to_string(), "max: invalid value 2, expected at least min (5)");
/// ```
pub trait Check {
    /// Every value out of line, each at its key relative to the section; empty
    /// when the section is consistent.
    fn check(&self) -> Vec<Violation>;
}

/// One value a [`Check`] rejects: its key, the value, what was expected, and
/// the other keys the expectation depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Violation {
    /// The key of the value out of line, relative to the section, with `.`
    /// between levels (`failure_rate.min_calls`).
    pub key: String,
    /// The value as found, for the report (`9`, `"  "`); never a secret.
    pub found: String,
    /// What was expected, naming the related keys and their values
    /// (`at most concurrency (8)`).
    pub expected: String,
    /// The other keys (relative to the section) the expectation depends on.
    pub related: Vec<String>,
}

impl Violation {
    /// The value at `key`, `found`, is not `expected`.
    pub fn new(key: impl Into<String>, found: impl Display, expected: impl Display) -> Self {
        Self { key: key.into(), found: found.to_string(), expected: expected.to_string(), related: Vec::new() }
    }

    /// Names another key (relative to the section) the expectation depends on.
    pub fn related(mut self, key: impl Into<String>) -> Self {
        self.related.push(key.into());
        self
    }
}

impl Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: invalid value {}, expected {}", self.key, self.found, self.expected)
    }
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
