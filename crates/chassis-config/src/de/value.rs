//! [`ValueDe`]: the deserializer of one node — a value read for the type
//! that asks for it (one concept: serde's `Deserializer` for the tree).

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::access::{EnumDe, MapDe, SeqDe};
use super::error::{DeError, Kind, OneOf, Result};
use super::{At, Ctx, SECRET_NEWTYPE, STRING_STAND_INS};
use crate::node::{DisplayPath, Node, Seg};
use crate::source::SourceId;

/// Deserializes one node.
#[derive(Debug, Clone)]
pub(crate) struct ValueDe<'a, 's> {
    pub(super) node: &'a Node,
    pub(super) path: At<'a>,
    pub(super) ctx: &'a Ctx<'s>,
    /// Whether the value is secret: errors then never show it.
    pub(super) secret: bool,
}

impl<'a, 's> ValueDe<'a, 's> {
    pub(crate) fn new(node: &'a Node, base: &'a [Seg], ctx: &'a Ctx<'s>) -> Self {
        Self { node, path: At::Base(base), ctx, secret: false }
    }

    /// The deserializer of `node`, the value at `key` of this table.
    pub(super) fn key<'p>(&'p self, key: &'p str, node: &'p Node) -> ValueDe<'p, 's> {
        ValueDe { node, path: At::Key(&self.path, key), ctx: self.ctx, secret: self.secret }
    }

    /// The deserializer of `node`, the item at `index` of this list.
    pub(super) fn index<'p>(&'p self, index: usize, node: &'p Node) -> ValueDe<'p, 's> {
        ValueDe { node, path: At::Index(&self.path, index), ctx: self.ctx, secret: self.secret }
    }

    /// The same position, over another node (one parsed from this node's text).
    fn over<'b>(&self, node: &'b Node) -> ValueDe<'b, 's>
    where
        'a: 'b,
    {
        ValueDe { node, path: self.path, ctx: self.ctx, secret: self.secret }
    }

    pub(super) fn attach(&self, mut e: DeError) -> DeError {
        if e.path.is_none() {
            e.path = Some(self.path.to_path());
            e.source = self.node.source();
        }
        if self.secret { e.redact() } else { e }
    }

    pub(super) fn fail(&self, kind: Kind) -> DeError {
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
            self.ctx.record.borrow_mut().secrets.insert(DisplayPath(&self.path.to_path()).to_string());
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
                let access = EnumDe { variant, value: self.key(variant, value) };
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
