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
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::node::{DisplayPath, Node, Seg};
use crate::source::{Source, SourceId, Sources};

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
pub(crate) const SECRET_NEWTYPE: &str = "chassis_config::Secret";

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
    fn new(kind: Kind) -> Self {
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
    fn redact(mut self) -> Self {
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

struct OneOf(&'static [&'static str]);

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

type Result<T> = std::result::Result<T, DeError>;

/// Deserializes one node.
#[derive(Debug, Clone)]
pub(crate) struct ValueDe<'a, 's> {
    node: &'a Node,
    path: Vec<Seg>,
    ctx: &'a Ctx<'s>,
    /// Whether the value is secret: errors then never show it.
    secret: bool,
}

impl<'a, 's> ValueDe<'a, 's> {
    pub(crate) fn new(node: &'a Node, path: Vec<Seg>, ctx: &'a Ctx<'s>) -> Self {
        Self { node, path, ctx, secret: false }
    }

    fn child(&self, node: &'a Node, seg: Seg) -> Self {
        let mut path = self.path.clone();
        path.push(seg);
        Self { node, path, ctx: self.ctx, secret: self.secret }
    }

    /// The same position, over another node (one parsed from this node's text).
    fn over<'b>(&self, node: &'b Node) -> ValueDe<'b, 's>
    where
        'a: 'b,
    {
        ValueDe { node, path: self.path.clone(), ctx: self.ctx, secret: self.secret }
    }

    fn attach(&self, mut e: DeError) -> DeError {
        if e.path.is_none() {
            e.path = Some(self.path.clone());
            e.source = self.node.source();
        }
        if self.secret { e.redact() } else { e }
    }

    fn fail(&self, kind: Kind) -> DeError {
        self.attach(DeError::new(kind))
    }

    /// The node's text when it comes from a text source (env, secret file): such
    /// text is parsed according to the type asked for.
    fn text(&self) -> Option<&'a str> {
        match self.node {
            Node::Str(s, src) if self.ctx.sources.get(*src).is_text() => Some(s),
            _ => None,
        }
    }

    fn found(&self) -> String {
        if self.secret {
            return "a secret value".into();
        }
        match self.node {
            Node::Str(s, _) => format!("string {s:?}"),
            other => other.render(),
        }
    }

    fn parse_error(&self, expected: impl Into<String>) -> DeError {
        self.fail(Kind::InvalidType { found: self.found(), expected: expected.into() })
    }

    /// The typed node a config file would hold for this text, when the text
    /// reads as one without loss: `true`/`false`, an integer or a number written
    /// as Rust prints it (`20`, `0.5`, not `007` or `1.10`), a JSON array or
    /// object. `None` keeps it text.
    fn typed(&self, text: &str) -> Option<Node> {
        let source = self.node.source()?;
        match text {
            "true" => return Some(Node::Bool(true, source)),
            "false" => return Some(Node::Bool(false, source)),
            _ => {}
        }
        if let Ok(n) = text.parse::<i128>() {
            return (n.to_string() == text).then_some(Node::Int(n, source));
        }
        if let Ok(x) = text.parse::<f64>() {
            return (x.is_finite() && x.to_string() == text).then_some(Node::Float(x, source));
        }
        let trimmed = text.trim();
        if trimmed.starts_with('[') || trimmed.starts_with('{') {
            return serde_json::from_str(trimmed).ok().map(|v| Node::from_json(v, source));
        }
        None
    }

    /// Text parsed as JSON (`[..]` for lists, `{..}` for tables) into a node.
    fn parse_json(&self, text: &str, expected: &str) -> Result<Node> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            self.fail(Kind::InvalidType { found: format!("{} ({e})", self.found()), expected: expected.into() })
        })?;
        let source = self.node.source().unwrap_or(SourceId(0));
        Ok(Node::from_json(value, source))
    }
}

macro_rules! int_methods {
    ($($method:ident $visit:ident $ty:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            if let Some(text) = self.text() {
                let n: $ty = text.trim().parse().map_err(|_| {
                    self.parse_error(format!("an integer from {} to {}", <$ty>::MIN, <$ty>::MAX))
                })?;
                return visitor.$visit(n).map_err(|e| self.attach(e));
            }
            if let Node::Placeholder(n) = self.node {
                return visitor.$visit(<$ty>::from(*n % 2 == 1)).map_err(|e| self.attach(e));
            }
            self.deserialize_any(visitor)
        }
    )*};
}

macro_rules! float_methods {
    ($($method:ident $visit:ident $ty:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            if let Some(text) = self.text() {
                let n: $ty = text.trim().parse().map_err(|_| self.parse_error("a number"))?;
                return visitor.$visit(n).map_err(|e| self.attach(e));
            }
            if let Node::Placeholder(n) = self.node {
                return visitor.$visit(<$ty>::from(*n % 2 == 1)).map_err(|e| self.attach(e));
            }
            self.deserialize_any(visitor)
        }
    )*};
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `pool_size`, `poolSize`, `pool-size` and `POOL_SIZE` name the same field.
pub(crate) fn loose_eq(field: &str, key: &str) -> bool {
    let norm = |c: char| if c == '-' { '_' } else { c.to_ascii_lowercase() };
    let strip = |s: &str| s.chars().filter(|c| *c != '_' && *c != '-').map(norm).collect::<String>();
    field.chars().map(norm).eq(key.chars().map(norm)) || strip(field) == strip(key)
}

/// The closest field name to a mistyped key, if one is close enough to suggest.
fn suggest(key: &str, fields: &[&str]) -> Option<String> {
    fields
        .iter()
        .map(|f| (edit_distance(&key.to_ascii_lowercase(), &f.to_ascii_lowercase()), f))
        .filter(|(d, f)| *d <= 2.max(f.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| (*f).to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(here).min(row[j]) };
            prev = here;
        }
    }
    row[b.len()]
}

impl<'de> de::Deserializer<'de> for ValueDe<'_, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        // A self-describing read (serde buffering for `flatten`, untagged and
        // internally tagged enums; `serde_json::Value`) gets the value a config
        // file would hold for the same text.
        if let Some(text) = self.text() {
            if let Some(typed) = self.typed(text) {
                return self.over(&typed).deserialize_any(visitor);
            }
        }
        let result = match self.node {
            Node::Str(s, _) => visitor.visit_str(s),
            Node::Bool(b, _) => visitor.visit_bool(*b),
            Node::Int(i, _) => match (i64::try_from(*i), u64::try_from(*i)) {
                (Ok(v), _) => visitor.visit_i64(v),
                (_, Ok(v)) => visitor.visit_u64(v),
                _ => visitor.visit_i128(*i),
            },
            Node::Float(x, _) => visitor.visit_f64(*x),
            Node::Null(_) | Node::Placeholder(0) => visitor.visit_unit(),
            Node::List(items, _) => return visitor.visit_seq(SeqDe { parent: &self, items: items.iter(), index: 0 }),
            Node::Table(table) => return visitor.visit_map(MapDe::plain(&self, table)),
            Node::Placeholder(1) => visitor.visit_str(""),
            Node::Placeholder(_) => {
                return visitor.visit_map(MapDe { parent: &self, entries: Vec::new().into_iter(), value: None });
            }
        };
        result.map_err(|e| self.attach(e))
    }

    int_methods! {
        deserialize_i8 visit_i8 i8;
        deserialize_i16 visit_i16 i16;
        deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64;
        deserialize_i128 visit_i128 i128;
        deserialize_u8 visit_u8 u8;
        deserialize_u16 visit_u16 u16;
        deserialize_u32 visit_u32 u32;
        deserialize_u64 visit_u64 u64;
        deserialize_u128 visit_u128 u128;
    }

    float_methods! {
        deserialize_f32 visit_f32 f32;
        deserialize_f64 visit_f64 f64;
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if let Some(text) = self.text() {
            let b = parse_bool(text).ok_or_else(|| self.parse_error("a boolean (true/false, yes/no, on/off, 1/0)"))?;
            return visitor.visit_bool(b).map_err(|e| self.attach(e));
        }
        if let Node::Placeholder(n) = self.node {
            return visitor.visit_bool(*n == 1).map_err(|e| self.attach(e));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Placeholder(_) => visitor.visit_char('x').map_err(|e| self.attach(e)),
            Node::Str(s, _) => visitor.visit_str(s).map_err(|e| self.attach(e)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Placeholder(n) => {
                let stand_in = STRING_STAND_INS[usize::from(*n).min(STRING_STAND_INS.len() - 1)];
                visitor.visit_str(stand_in).map_err(|e| self.attach(e))
            }
            // Text stays text for a string, whatever it looks like (`"1.10"`).
            Node::Str(s, _) => visitor.visit_str(s).map_err(|e| self.attach(e)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Str(s, _) => visitor.visit_bytes(s.as_bytes()).map_err(|e| self.attach(e)),
            Node::Placeholder(_) => visitor.visit_bytes(b"").map_err(|e| self.attach(e)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let none = match self.node {
            Node::Null(_) | Node::Placeholder(_) => true,
            _ => self.text().is_some_and(|t| t.trim().is_empty()),
        };
        if none {
            visitor.visit_none().map_err(|e| self.attach(e))
        } else {
            visitor.visit_some(self.clone()).map_err(|e| self.attach(e))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let unit = matches!(self.node, Node::Null(_) | Node::Placeholder(_)) || self.text().is_some_and(str::is_empty);
        if unit { visitor.visit_unit().map_err(|e| self.attach(e)) } else { self.deserialize_any(visitor) }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value> {
        if name == SECRET_NEWTYPE {
            self.ctx.record.borrow_mut().secrets.insert(DisplayPath(&self.path).to_string());
            let inner = Self { secret: true, ..self.clone() };
            return visitor.visit_newtype_struct(inner).map_err(|e| self.attach(e).redact());
        }
        visitor.visit_newtype_struct(self.clone()).map_err(|e| self.attach(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if let Some(text) = self.text() {
            let trimmed = text.trim();
            let parsed = if trimmed.starts_with('[') {
                self.parse_json(trimmed, "a list (a JSON array)")?
            } else {
                let source = self.node.source().unwrap_or(SourceId(0));
                let items = if trimmed.is_empty() {
                    Vec::new()
                } else {
                    trimmed.split(',').map(|item| Node::Str(item.trim().to_owned(), source)).collect()
                };
                Node::List(items, source)
            };
            return self.over(&parsed).deserialize_seq(visitor);
        }
        match self.node {
            Node::List(items, _) => visitor.visit_seq(SeqDe { parent: &self, items: items.iter(), index: 0 }),
            Node::Placeholder(_) => visitor.visit_seq(SeqDe { parent: &self, items: [].iter(), index: 0 }),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if let Some(text) = self.text().filter(|t| t.trim_start().starts_with('{')) {
            let parsed = self.parse_json(text, "a table (a JSON object)")?;
            return self.over(&parsed).deserialize_map(visitor);
        }
        match self.node {
            Node::Placeholder(_) => {
                visitor.visit_map(MapDe { parent: &self, entries: Vec::new().into_iter(), value: None })
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        // `toml::value::Datetime` (and `toml_datetime`'s) asks for a struct with
        // one private field holding the text: give it the text, from any source.
        if _name == crate::node::TOML_DATETIME_NAME {
            if let Node::Str(text, _) = self.node {
                let entry = std::iter::once((crate::node::TOML_DATETIME_FIELD, text.trim()));
                return visitor.visit_map(de::value::MapDeserializer::new(entry)).map_err(|e: DeError| self.attach(e));
            }
        }
        if let Some(text) = self.text().filter(|t| t.trim_start().starts_with('{')) {
            let parsed = self.parse_json(text, "a table (a JSON object)")?;
            return self.over(&parsed).deserialize_struct(_name, fields, visitor);
        }
        match self.node {
            Node::Table(table) => {
                let map = MapDe::for_struct(&self, table, fields)?;
                visitor.visit_map(map).map_err(|e| self.attach(e))
            }
            Node::Placeholder(_) => visitor
                .visit_map(MapDe { parent: &self, entries: Vec::new().into_iter(), value: None })
                .map_err(|e| self.attach(e)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.node {
            Node::Str(s, _) => {
                // Text from the environment matches variants case-insensitively.
                let name = match self.text() {
                    Some(t) => variants.iter().find(|v| v.eq_ignore_ascii_case(t.trim())).map_or(t, |v| *v),
                    None => s.as_str(),
                };
                visitor.visit_enum(name.into_deserializer()).map_err(|e| self.attach(e))
            }
            Node::Table(table) if table.len() == 1 => {
                let Some((variant, value)) = table.iter().next() else { return self.deserialize_any(visitor) };
                let access = EnumDe { variant, value: self.child(value, Seg::Key(variant.clone())) };
                visitor.visit_enum(access).map_err(|e| self.attach(e))
            }
            Node::Placeholder(_) => match variants.first() {
                Some(first) => visitor.visit_enum((*first).into_deserializer()).map_err(|e| self.attach(e)),
                None => Err(self.fail(Kind::Message("an enum with no variants cannot be configured".into()))),
            },
            _ => Err(self.parse_error(format!("one of {}", OneOf(variants)))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
}

struct SeqDe<'p, 'a, 's> {
    parent: &'p ValueDe<'a, 's>,
    items: std::slice::Iter<'a, Node>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_, '_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let Some(item) = self.items.next() else { return Ok(None) };
        let child = self.parent.child(item, Seg::Index(self.index));
        self.index += 1;
        // A type's own check after reading (`TryFrom`, a custom `Deserialize`)
        // fails outside the child deserializer: give its error the child's path.
        let at = child.clone();
        seed.deserialize(child).map(Some).map_err(|e| at.attach(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// One entry of a table as a map or struct sees it.
struct Entry<'a> {
    key: String,
    node: &'a Node,
    /// The value is the path of a secret file to read (`<name>_FILE`).
    read_file: bool,
}

struct MapDe<'p, 'a, 's> {
    parent: &'p ValueDe<'a, 's>,
    entries: std::vec::IntoIter<Entry<'a>>,
    value: Option<Entry<'a>>,
}

impl<'p, 'a, 's> MapDe<'p, 'a, 's> {
    fn plain(parent: &'p ValueDe<'a, 's>, table: &'a std::collections::BTreeMap<String, Node>) -> Self {
        let entries: Vec<Entry<'a>> =
            table.iter().map(|(key, node)| Entry { key: key.clone(), node, read_file: false }).collect();
        Self { parent, entries: entries.into_iter(), value: None }
    }

    /// Resolves the table's keys to the struct's field names.
    fn for_struct(
        parent: &'p ValueDe<'a, 's>,
        table: &'a std::collections::BTreeMap<String, Node>,
        fields: &'static [&'static str],
    ) -> Result<Self> {
        let mut entries: Vec<Entry<'a>> = Vec::with_capacity(table.len());
        for (key, node) in table {
            let entry = if fields.contains(&key.as_str()) {
                Entry { key: key.clone(), node, read_file: false }
            } else if let Some(field) = fields.iter().find(|f| loose_eq(f, key)) {
                Entry { key: (*field).to_owned(), node, read_file: false }
            } else if let Some(field) = secret_file_field(parent.ctx.sources, key, node, fields) {
                // A stand-in for a bad secret file's value is the value itself.
                Entry { key: field.to_owned(), node, read_file: !matches!(node, Node::Placeholder(_)) }
            } else {
                let mut path = parent.path.clone();
                path.push(Seg::Key(key.clone()));
                let suggestion = suggest(key, fields);
                parent.ctx.record.borrow_mut().unknown.push(Unknown { path, source: node.source(), suggestion });
                Entry { key: key.clone(), node, read_file: false }
            };
            if let Some(prev) = entries.iter().find(|e| e.key == entry.key) {
                let sources: Vec<String> = [prev.node, entry.node]
                    .iter()
                    .filter_map(|n| n.source().map(|s| parent.ctx.sources.get(s).to_string()))
                    .collect();
                let message = format!("set twice, by {}", sources.join(" and "));
                let mut e = DeError::new(Kind::Conflict { raw_key: key.clone(), message });
                let mut path = parent.path.clone();
                path.push(Seg::Key(entry.key.clone()));
                e.path = Some(path);
                e.source = entry.node.source();
                return Err(e);
            }
            entries.push(entry);
        }
        Ok(Self { parent, entries: entries.into_iter(), value: None })
    }
}

/// `password_file` set by an env var ending in `_FILE` feeds the field `password`
/// when the struct has no field `password_file` of its own.
fn secret_file_field(sources: &Sources, key: &str, node: &Node, fields: &[&'static str]) -> Option<&'static str> {
    let base = key.strip_suffix("_file")?;
    match node {
        Node::Str(_, src) if matches!(sources.get(*src), Source::SecretFile { .. }) => {}
        // Where the loader stood in for a secret file's bad value.
        Node::Placeholder(_) => {}
        _ => return None,
    }
    fields.iter().find(|f| loose_eq(f, base)).copied()
}

impl<'de> de::MapAccess<'de> for MapDe<'_, '_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some(entry) = self.entries.next() else { return Ok(None) };
        let key = seed.deserialize(entry.key.as_str().into_deserializer()).map_err(|mut e: DeError| {
            let mut path = self.parent.path.clone();
            if !matches!(e.kind, Kind::UnknownField { .. }) {
                path.push(Seg::Key(entry.key.clone()));
            }
            e.path = Some(path);
            e.source = entry.node.source();
            e
        })?;
        self.value = Some(entry);
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let Some(entry) = self.value.take() else {
            return Err(self.parent.fail(Kind::Message("value requested before its key".into())));
        };
        let child = self.parent.child(entry.node, Seg::Key(entry.key.clone()));
        if !entry.read_file {
            let at = child.clone();
            return seed.deserialize(child).map_err(|e| at.attach(e));
        }
        let Node::Str(file, src) = entry.node else { return seed.deserialize(child) };
        child.ctx.record.borrow_mut().secrets.insert(DisplayPath(&child.path).to_string());
        let var = match child.ctx.sources.get(*src) {
            Source::SecretFile { var, .. } => var.as_str(),
            _ => "",
        };
        let content = std::fs::read(file).map_err(|e| {
            child.fail(Kind::SecretFile(format!("cannot read the secret file {file} named by {var}: {e}")))
        })?;
        let content = String::from_utf8(content)
            .map_err(|_| child.fail(Kind::SecretFile(format!("the secret file {file} named by {var} is not UTF-8"))))?;
        // Mounted secrets usually end with one newline that is not part of the value.
        let value = content.strip_suffix('\n').map_or(content.as_str(), |v| v.strip_suffix('\r').unwrap_or(v));
        let node = Node::Str(value.to_owned(), *src);
        let secret_child = ValueDe { node: &node, path: child.path.clone(), ctx: child.ctx, secret: true };
        let at = secret_child.clone();
        seed.deserialize(secret_child).map_err(|e| at.attach(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumDe<'a, 's> {
    variant: &'a str,
    value: ValueDe<'a, 's>,
}

impl<'de, 'a, 's> de::EnumAccess<'de> for EnumDe<'a, 's> {
    type Error = DeError;
    type Variant = ValueDe<'a, 's>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant)> {
        let variant = seed.deserialize(self.variant.into_deserializer())?;
        Ok((variant, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for ValueDe<'_, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<()> {
        match self.node {
            Node::Null(_) | Node::Placeholder(_) => Ok(()),
            Node::Table(t) if t.is_empty() => Ok(()),
            _ => Err(self.parse_error("nothing (a unit variant)")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_matching_honours_case_and_separators() {
        assert!(loose_eq("poolSize", "poolsize"));
        assert!(loose_eq("pool-size", "pool_size"));
        assert!(loose_eq("pool_size", "pool_size"));
        assert!(!loose_eq("pool", "pool_size"));
    }

    #[test]
    fn suggestions_pick_the_closest_field() {
        assert_eq!(suggest("pasword", &["password", "url"]), Some("password".into()));
        assert_eq!(suggest("zzz", &["password", "url"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn booleans_accept_the_usual_spellings() {
        for t in ["true", "YES", "on", "1"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "No", "OFF", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }
}
