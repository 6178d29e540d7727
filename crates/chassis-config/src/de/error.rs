//! [`DeError`]: a deserialization problem with the path and source of its value.

use std::fmt;

use serde::de;

use crate::node::{DisplayPath, Seg};
use crate::source::SourceId;

/// A deserialization problem, with where it happened.
#[derive(Debug, Clone)]
pub(crate) struct DeError {
    /// Path of the value the problem is about (for `Missing`, of the struct).
    pub(crate) path: Option<Vec<Seg>>,
    pub(crate) source: Option<SourceId>,
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Missing(String),
    InvalidType {
        found: String,
        expected: String,
    },
    InvalidValue {
        found: String,
        expected: String,
    },
    InvalidLength {
        len: usize,
        expected: String,
    },
    UnknownVariant {
        variant: String,
        expected: &'static [&'static str],
    },
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    Duplicate(String),
    /// Two keys of one table feed the same field; `raw_key` is the later one.
    Conflict {
        raw_key: String,
        message: String,
    },
    SecretFile(String),
    Message(String),
}

impl DeError {
    pub(super) fn new(kind: Kind) -> Self {
        Self { path: None, source: None, kind }
    }

    /// The full path of the key the problem is about.
    pub(crate) fn key_path(&self) -> Vec<Seg> {
        let mut path = self.path.clone().unwrap_or_default();
        match &self.kind {
            Kind::Missing(field) | Kind::Duplicate(field) | Kind::UnknownField { field, .. } => {
                path.push(Seg::Key(field.clone()));
            }
            _ => {}
        }
        path
    }

    /// Replaces any rendering of the value with a redaction marker.
    pub(super) fn redact(mut self) -> Self {
        match &mut self.kind {
            Kind::InvalidType { found, .. } | Kind::InvalidValue { found, .. } => *found = "a secret value".into(),
            Kind::UnknownVariant { variant, .. } => *variant = "***".into(),
            Kind::Message(m) => *m = "the secret value was rejected (message withheld)".into(),
            _ => {}
        }
        self
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(_) => f.write_str("missing required value"),
            Self::InvalidType { found, expected } => write!(f, "expected {expected}, found {found}"),
            Self::InvalidValue { found, expected } => write!(f, "invalid value {found}, expected {expected}"),
            Self::InvalidLength { len, expected } => write!(f, "wrong length {len}, expected {expected}"),
            Self::UnknownVariant { variant, expected } => {
                write!(f, "unknown variant `{variant}`, expected one of {}", OneOf(expected))
            }
            Self::UnknownField { expected, .. } => write!(f, "unknown key, expected one of {}", OneOf(expected)),
            Self::Duplicate(_) => f.write_str("set twice in the same source"),
            Self::SecretFile(m) | Self::Message(m) | Self::Conflict { message: m, .. } => f.write_str(m),
        }
    }
}

pub(super) struct OneOf(pub(super) &'static [&'static str]);

impl fmt::Display for OneOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", DisplayPath(&self.key_path()), self.kind)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(Kind::Message(msg.to_string()))
    }
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(Kind::InvalidType { found: unexp.to_string(), expected: exp.to_string() })
    }
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(Kind::InvalidValue { found: unexp.to_string(), expected: exp.to_string() })
    }
    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        Self::new(Kind::InvalidLength { len, expected: exp.to_string() })
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::new(Kind::UnknownVariant { variant: variant.into(), expected })
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::new(Kind::UnknownField { field: field.into(), expected })
    }
    fn missing_field(field: &'static str) -> Self {
        Self::new(Kind::Missing(field.into()))
    }
    fn duplicate_field(field: &'static str) -> Self {
        Self::new(Kind::Duplicate(field.into()))
    }
}

/// The result of a deserializer method.
pub(super) type Result<T> = std::result::Result<T, DeError>;
