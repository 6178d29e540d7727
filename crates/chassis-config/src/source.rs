//! Where a configuration value came from.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// The origin of one configuration value, used in error reports and in the
/// effective-configuration dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// The default declared with [`Require::default`](crate::Require::default).
    Requirement,
    /// A configuration file.
    File {
        /// The file's path as it was given to the loader.
        path: PathBuf,
    },
    /// An environment variable.
    Env {
        /// The variable's name, e.g. `APP_DB__URL`.
        var: String,
    },
    /// A file named by a `<NAME>_FILE` environment variable (a mounted secret).
    SecretFile {
        /// The variable that named the file, e.g. `APP_DB__PASSWORD_FILE`.
        var: String,
        /// The file that was read.
        path: PathBuf,
    },
    /// An explicit programmatic override ([`Loader::set`](crate::Loader::set)).
    Override,
    /// The serde default of the target type (the key was in no source).
    Default,
}

impl Source {
    /// Whether values from this source are text that is parsed according to the
    /// type it is read into (environment variables and secret files are).
    pub(crate) fn is_text(&self) -> bool {
        matches!(self, Self::Env { .. } | Self::SecretFile { .. })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Requirement => f.write_str("declared default"),
            Self::File { path } => write!(f, "file {}", path.display()),
            Self::Env { var } => write!(f, "env {var}"),
            Self::SecretFile { var, path } => write!(f, "file {} (via env {var})", path.display()),
            Self::Override => f.write_str("override"),
            Self::Default => f.write_str("default"),
        }
    }
}

/// Index of a [`Source`] in a [`Sources`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceId(pub(crate) usize);

/// The sources of one load; nodes refer to them by [`SourceId`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources(Vec<Source>);

impl Sources {
    pub(crate) fn add(&mut self, source: Source) -> SourceId {
        self.0.push(source);
        SourceId(self.0.len() - 1)
    }

    /// The id the next [`add`](Self::add) returns.
    pub(crate) fn next_id(&self) -> SourceId {
        SourceId(self.0.len())
    }

    pub(crate) fn get(&self, id: SourceId) -> &Source {
        // Ids are only ever created by `add` on the same table.
        &self.0[id.0]
    }
}
