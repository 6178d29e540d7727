//! The one complete report a failed load produces.

use std::fmt;

use serde::Serialize;

use crate::source::Source;

/// `EX_CONFIG` from `sysexits.h`: the exit code for a configuration error.
pub const EX_CONFIG: i32 = 78;

/// A failed load: every problem found, at once.
///
/// Each [`Problem`] names the key, the environment variable that would set it,
/// the source of the bad value and what was expected. `Display` renders the
/// whole report, ready for stderr; [`Error::exit`] prints it and exits with
/// [`EX_CONFIG`].
#[derive(Debug, Clone, Serialize)]
pub struct Error {
    problems: Vec<Problem>,
    warnings: Vec<Warning>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(problems: Vec<Problem>, warnings: Vec<Warning>) -> Self {
        Self { problems, warnings }
    }

    /// Every problem found, in the order: sources, then values, then rules.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Warnings found on the way (unknown keys, with a suggestion when one is close).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Prints the report to stderr and exits the process with [`EX_CONFIG`] (78).
    /// Meant for `main`, before logging is set up.
    pub fn exit(&self) -> ! {
        #[allow(clippy::print_stderr)] // the one place this crate writes to stderr, by design
        {
            eprintln!("{self}");
        }
        std::process::exit(EX_CONFIG)
    }
}

impl std::error::Error for Error {}

/// A problem with the sources themselves, at no key.
pub(crate) fn source_problem(message: String) -> Problem {
    Problem { key: None, env_var: None, source: None, kind: ProblemKind::Source { message } }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(f, "configuration is invalid: {n} problem{}", if n == 1 { "" } else { "s" })?;
        for (i, problem) in self.problems.iter().enumerate() {
            writeln!(f, "  {}. {problem}", i + 1)?;
        }
        if !self.warnings.is_empty() {
            writeln!(f, "warnings:")?;
            for warning in &self.warnings {
                writeln!(f, "  - {warning}")?;
            }
        }
        Ok(())
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub(crate) key: Option<String>,
    pub(crate) env_var: Option<String>,
    pub(crate) source: Option<Source>,
    pub(crate) kind: ProblemKind,
}

impl Problem {
    /// The key path (`db.pool_size`), when the problem is about a key.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The environment variable that would set the key (`APP_DB__POOL_SIZE`).
    pub fn env_var(&self) -> Option<&str> {
        self.env_var.as_deref()
    }

    /// Where the bad value came from; `None` when it is missing.
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// What is wrong.
    pub fn kind(&self) -> &ProblemKind {
        &self.kind
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.kind)?,
            None => write!(f, "{}", self.kind)?,
        }
        if let Some(source) = &self.source {
            write!(f, "\n       from {source}")?;
        }
        if let ProblemKind::Check { related, .. } = &self.kind {
            for other in related {
                match &other.source {
                    Some(source) => write!(f, "\n       depends on {}, from {source}", other.key)?,
                    None => write!(f, "\n       depends on {}", other.key)?,
                }
            }
        }
        if let Some(var) = &self.env_var {
            write!(f, "\n       set it with {var}")?;
            if let Some(key) = &self.key {
                // Within a list, the file sets the whole list.
                let key = key.split_once('[').map_or(key.as_str(), |(list, _)| list);
                write!(f, " or `{key}` in a config file")?;
            }
        }
        Ok(())
    }
}

/// What is wrong, for one [`Problem`].
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// A required value is set by no source and has no default.
    #[error("missing required value")]
    Missing,
    /// The value has the wrong type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the target type reads.
        expected: String,
        /// What the source holds (redacted for secrets).
        found: String,
    },
    /// The value has the right type but is out of range or malformed.
    #[error("invalid value {found}, expected {expected}")]
    InvalidValue {
        /// What the target type reads.
        expected: String,
        /// What the source holds (redacted for secrets).
        found: String,
    },
    /// A section's own check ([`Loader::check`](crate::Loader::check)) rejects
    /// the value: valid on its own, but not with the [`related`](Self::Check::related)
    /// values (`tasks.pollers` over `tasks.concurrency`), or not in a way a
    /// single field's bound can say.
    #[error("invalid value {found}, expected {expected}")]
    Check {
        /// What the check expected, naming the related keys and their values.
        expected: String,
        /// The value as the check found it (redacted for secrets).
        found: String,
        /// The other values the expectation depends on, with their sources.
        related: Vec<Related>,
    },
    /// A declared validation rule failed.
    #[error("{message}")]
    Rule {
        /// Which rule failed and how.
        message: String,
    },
    /// A source could not be read: a missing or unreadable file, malformed
    /// TOML/YAML/JSON, a non-UTF-8 environment variable.
    #[error("{message}")]
    Source {
        /// What went wrong, naming the file and line or the variable.
        message: String,
    },
    /// Any other problem the target type reported.
    #[error("{message}")]
    Other {
        /// The target type's message.
        message: String,
    },
    /// The loader could not find a stand-in for a bad value, so problems past it
    /// may be missing from this report.
    #[error("further problems below this key may be hidden until it is fixed")]
    Hidden,
}

/// A value a failed [`ProblemKind::Check`] depends on: where to change the
/// other side of the conflict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Related {
    pub(crate) key: String,
    pub(crate) source: Option<Source>,
}

impl Related {
    /// The key path (`tasks.concurrency`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Where its value came from: a source, or [`Source::Default`] when no
    /// source sets it.
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }
}

/// Something suspicious that does not stop the load, such as an environment
/// variable with the prefix that maps to no setting (a likely typo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub(crate) key: String,
    pub(crate) source: Option<Source>,
    pub(crate) suggestion: Option<String>,
}

impl Warning {
    /// The key that nothing reads.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Where the key was set.
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// The closest known key, when one is close enough to suggest.
    pub fn suggestion(&self) -> Option<&str> {
        self.suggestion.as_deref()
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{source} sets `{}`, which is not a known setting", self.key)?,
            None => write!(f, "`{}` is not a known setting", self.key)?,
        }
        if let Some(suggestion) = &self.suggestion {
            write!(f, " (did you mean `{suggestion}`?)")?;
        }
        Ok(())
    }
}
