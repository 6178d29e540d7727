//! [`Secret`]: a value that never shows itself by accident.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret prints and serializes as.
pub const REDACTED: &str = "***";

/// The newtype name a [`Secret`] deserializes through: a deserializer that
/// knows it (chassis-config's) marks the key as secret, so its dumps and error
/// messages redact the value; every other deserializer reads straight through.
pub const SECRET_NEWTYPE: &str = "chassis_config::Secret";

/// A configuration value that must not leak: a password, a token, a key.
///
/// `Debug`, `Display` and `Serialize` all show [`REDACTED`] (`***`); the value is
/// reachable only through [`Secret::expose`]. Loading it with chassis-config
/// marks the key as secret, so the effective-configuration dump and every error
/// message about it are redacted too, and it can be read from a file named by a
/// `<NAME>_FILE` environment variable (a Kubernetes or Docker secret). It lives
/// here, beside the range checks, so that a crate's configuration section can
/// hold one without depending on chassis-config (re-exported there as
/// `chassis_config::Secret`, the same type).
///
/// ```
/// use chassis_bounds::Secret;
///
/// let password = Secret::new(String::from("hunter2"));
/// assert_eq!(format!("{password:?} {password}"), "*** ***");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value itself. Keep what you do with it out of logs.
    pub const fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value.
    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for SecretVisitor<T> {
            type Value = Secret<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret value")
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                T::deserialize(d).map(Secret)
            }
        }

        // The newtype name lets the chassis deserializer mark the key as secret;
        // other deserializers (serde_json, toml, figment) read through it.
        deserializer.deserialize_newtype_struct(SECRET_NEWTYPE, SecretVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rendering_is_redacted() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s:#?}"), "***");
        assert_eq!(s.to_string(), "***");
        assert_eq!(serde_json::to_string(&s).ok().as_deref(), Some("\"***\""));
    }

    #[test]
    fn other_deserializers_read_through_the_newtype() {
        let s: Secret<String> = serde_json::from_str("\"hunter2\"").unwrap_or_default();
        assert_eq!(s.expose(), "hunter2");
    }
}
