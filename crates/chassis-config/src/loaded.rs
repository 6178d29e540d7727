//! [`Loaded`]: a typed configuration with the merged tree it came from.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::effective::{self, Effective};
use crate::error::{Result, Warning};
use crate::merged::Merged;

/// A loaded, typed configuration, with the merged sources it came from.
#[derive(Debug)]
pub struct Loaded<T> {
    value: T,
    merged: Merged,
    warnings: Vec<Warning>,
}

impl<T> Loaded<T> {
    pub(crate) fn new(value: T, merged: Merged, warnings: Vec<Warning>) -> Self {
        Self { value, merged, warnings }
    }

    /// The typed configuration.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The typed configuration, by value.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The merged sources, to extract more sections from.
    pub fn merged(&self) -> &Merged {
        &self.merged
    }

    /// Keys that were set but that nothing reads (likely typos). Log them once
    /// logging is up.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Extracts one section into another type; see [`Merged::section`].
    ///
    /// # Errors
    /// As [`Merged::section`].
    pub fn section<S: DeserializeOwned>(&self, key: &str) -> Result<S> {
        self.merged.section(key)
    }

    /// Every key with its effective value (secrets redacted), its source and
    /// what it overrode — including the keys set only by `T`'s defaults.
    pub fn effective(&self) -> Effective
    where
        T: Serialize,
    {
        let typed = serde_json::to_value(&self.value).ok();
        effective::build(&self.merged, typed.as_ref())
    }
}

impl<T> std::ops::Deref for Loaded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}
