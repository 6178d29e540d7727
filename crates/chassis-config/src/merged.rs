//! [`Merged`]: every source of one load, merged in precedence order, with
//! where each value came from.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use serde::de::DeserializeOwned;

use crate::effective::{self, Effective};
use crate::error::{Error, Problem, Result, Warning, source_problem};
use crate::node::{Node, key_segs, split_key};
use crate::require::Require;
use crate::source::{SourceId, Sources};

/// The merged configuration: every source, in precedence order.
pub struct Merged {
    pub(crate) prefix: String,
    pub(crate) profile: Option<String>,
    pub(crate) sources: Sources,
    /// The number of layers merged.
    pub(crate) layers: usize,
    /// For each layer, in order, the first [`SourceId`] after its own: which
    /// layer a value came from, for the [`Effective`] dump.
    pub(crate) layer_ends: Vec<SourceId>,
    /// Every node a later layer replaced, at its path, for the dump's
    /// "overrode" column: with the tree, they are all the layers' values.
    pub(crate) replaced: Vec<(Vec<String>, Node)>,
    /// The layers merged: what an extraction reads.
    pub(crate) tree: Node,
    pub(crate) requirements: Vec<Require>,
    /// Keys that extractions read into a `Secret` (redacted in the dump).
    pub(crate) secrets: Mutex<BTreeSet<String>>,
    pub(crate) warnings: Vec<Warning>,
}

impl fmt::Debug for Merged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: use `effective()` for a redacted dump.
        f.debug_struct("Merged")
            .field("prefix", &self.prefix)
            .field("profile", &self.profile)
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

impl Merged {
    /// Merges the layers, lowest precedence first; each comes with the first
    /// source id after its own.
    ///
    /// The layers are moved into the tree, not copied: what a later layer
    /// replaces is kept aside in `replaced`, which is all the dump needs.
    pub(crate) fn new(
        prefix: String,
        profile: Option<String>,
        sources: Sources,
        layers: Vec<(Node, SourceId)>,
        requirements: Vec<Require>,
        warnings: Vec<Warning>,
    ) -> Self {
        let mut tree = Node::table();
        let mut replaced = Vec::new();
        let count = layers.len();
        let mut layer_ends = Vec::with_capacity(count);
        for (layer, end) in layers {
            tree.merge_keeping(layer, &mut Vec::new(), &mut replaced);
            layer_ends.push(end);
        }
        Self {
            prefix,
            profile,
            sources,
            layers: count,
            layer_ends,
            replaced,
            tree,
            requirements,
            secrets: Mutex::new(BTreeSet::new()),
            warnings,
        }
    }

    /// The environment-variable prefix, without the trailing `_`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The selected profile, if any.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    /// Warnings from reading the sources (unusable variable names).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Whether any source sets `key` (`"db.url"`).
    pub fn contains(&self, key: &str) -> bool {
        split_key(key).is_some_and(|path| self.tree.get(&key_segs(&path)).is_some())
    }

    /// Extracts the whole configuration into `T`.
    ///
    /// # Errors
    /// Every missing, mistyped or invalid value for `T`, in one [`Error`].
    pub fn extract<T: DeserializeOwned>(&self) -> Result<T> {
        let (value, problems, warnings) = self.extract_at(&[]);
        finish(value, problems, warnings)
    }

    /// Extracts one section (`"tasks"`, `"db.replica"`) into `T`. A section no
    /// source sets reads as an empty table, so a `T` with defaults still loads.
    ///
    /// # Errors
    /// Every missing, mistyped or invalid value for `T`, with full key paths, in
    /// one [`Error`]; an empty section name is an error too.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let Some(path) = split_key(key) else {
            let message = format!("{key:?} is not a section name: it needs non-empty parts separated by `.`");
            return Err(Error::new(vec![source_problem(message)], Vec::new()));
        };
        let (value, problems, warnings) = self.extract_at(&key_segs(&path));
        finish(value, problems, warnings)
    }

    /// Every key with its effective value (secrets redacted), its source and
    /// the values it overrode. Keys only the target type's defaults set are not
    /// in it; [`Loaded::effective`](crate::Loaded::effective) has those too.
    pub fn effective(&self) -> Effective {
        effective::build(self, None)
    }

    /// The index of the layer a source belongs to.
    pub(crate) fn layer_of(&self, source: SourceId) -> usize {
        self.layer_ends.partition_point(|end| end.0 <= source.0)
    }

    pub(crate) fn sources(&self) -> &Sources {
        &self.sources
    }

    pub(crate) fn secrets(&self) -> BTreeSet<String> {
        self.secrets.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

pub(crate) fn finish<T>(value: Option<T>, problems: Vec<Problem>, warnings: Vec<Warning>) -> Result<T> {
    match value {
        Some(value) if problems.is_empty() => Ok(value),
        _ => Err(Error::new(problems, warnings)),
    }
}
