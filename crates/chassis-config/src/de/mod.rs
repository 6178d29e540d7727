//! A serde deserializer over the configuration tree.
//!
//! It exists because figment's deserializer (like config-rs's) stops at the first
//! problem and cannot say which environment variable a value came from. Ours:
//! - tracks the key path and the source of every value, so each error names both;
//! - parses text from the environment according to the type it is read into
//!   (`"1.10"` stays a string for a `String`, becomes a number for an `f64`, and
//!   `"a,b"` becomes a list for a `Vec`);
//! - matches environment keys to struct fields case-insensitively, so serde renames
//!   are honoured, and records keys that match no field (the typo guard);
//! - reads `<NAME>_FILE` secret files for the field `<name>`;
//! - offers stand-in values ([`Node::Placeholder`]) so a load can go on past a
//!   problem and report all of them.

use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::node::Seg;
use crate::source::{SourceId, Sources};

mod access;
mod error;
mod names;
mod value;

pub(crate) use error::{DeError, Kind};
pub(crate) use names::loose_eq;
pub(crate) use value::ValueDe;

/// Stand-ins for a bad string value, tried in turn until the target type takes
/// one: plain text, then the shapes common `FromStr` types parse (socket
/// address, URL, UUID, timestamp, duration).
pub(crate) const STRING_STAND_INS: [&str; 8] = [
    "",
    "x",
    "0",
    "0.0.0.0:0",
    "http://localhost/",
    "00000000-0000-0000-0000-000000000000",
    "1970-01-01T00:00:00Z",
    "1s",
];

/// The newtype name [`Secret`](crate::Secret) deserializes through; the
/// deserializer marks the path as secret when it sees it.
pub(crate) use chassis_bounds::SECRET_NEWTYPE;

/// Where a value sits: a chain of borrowed steps back to the extraction's
/// base, grown as the deserializer descends without copying anything, and
/// turned into a [`Seg`] path only when an error, a secret or an unknown key
/// needs one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum At<'p> {
    /// The base of the extraction (the section's path).
    Base(&'p [Seg]),
    /// A table key below a position.
    Key(&'p At<'p>, &'p str),
    /// A list index below a position.
    Index(&'p At<'p>, usize),
}

impl At<'_> {
    /// The path from the root of the tree.
    pub(crate) fn to_path(self) -> Vec<Seg> {
        let mut path = Vec::new();
        self.push_onto(&mut path);
        path
    }

    fn push_onto(self, path: &mut Vec<Seg>) {
        match self {
            Self::Base(base) => path.extend_from_slice(base),
            Self::Key(up, key) => {
                up.push_onto(path);
                path.push(Seg::Key(key.to_owned()));
            }
            Self::Index(up, index) => {
                up.push_onto(path);
                path.push(Seg::Index(index));
            }
        }
    }
}

/// Shared state of one deserialization pass.
#[derive(Debug)]
pub(crate) struct Ctx<'s> {
    pub(crate) sources: &'s Sources,
    pub(crate) record: RefCell<Record>,
}

impl<'s> Ctx<'s> {
    pub(crate) fn new(sources: &'s Sources) -> Self {
        Self { sources, record: RefCell::new(Record::default()) }
    }
}

/// What a pass learned about the keys it saw.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// Keys present in a source that no field of the target reads.
    pub(crate) unknown: Vec<Unknown>,
    /// Paths (dotted) read into a [`Secret`](crate::Secret) or from a secret file.
    pub(crate) secrets: BTreeSet<String>,
}

/// A key that maps to no field.
#[derive(Debug, Clone)]
pub(crate) struct Unknown {
    pub(crate) path: Vec<Seg>,
    pub(crate) source: Option<SourceId>,
    pub(crate) suggestion: Option<String>,
}
