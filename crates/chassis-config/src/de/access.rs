//! The serde accessors over a list, a table and an enum of the tree.

use serde::de::{self, DeserializeSeed, IntoDeserializer};

use super::Unknown;
use super::error::{DeError, Kind, Result};
use super::names::{loose_eq, secret_file_field, suggest};
use super::value::ValueDe;
use crate::node::{DisplayPath, Node, Seg};
use crate::source::Source;

pub(super) struct SeqDe<'p, 'a, 's> {
    pub(super) parent: &'p ValueDe<'a, 's>,
    pub(super) items: std::slice::Iter<'a, Node>,
    pub(super) index: usize,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_, '_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let Some(item) = self.items.next() else { return Ok(None) };
        let child = self.parent.index(self.index, item);
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
pub(super) struct Entry<'a> {
    key: &'a str,
    node: &'a Node,
    /// The value is the path of a secret file to read (`<name>_FILE`).
    read_file: bool,
}

pub(super) struct MapDe<'p, 'a, 's> {
    pub(super) parent: &'p ValueDe<'a, 's>,
    pub(super) entries: std::vec::IntoIter<Entry<'a>>,
    pub(super) value: Option<Entry<'a>>,
}

impl<'p, 'a, 's> MapDe<'p, 'a, 's> {
    pub(super) fn plain(parent: &'p ValueDe<'a, 's>, table: &'a std::collections::BTreeMap<String, Node>) -> Self {
        let entries: Vec<Entry<'a>> =
            table.iter().map(|(key, node)| Entry { key: key.as_str(), node, read_file: false }).collect();
        Self { parent, entries: entries.into_iter(), value: None }
    }

    /// Resolves the table's keys to the struct's field names.
    pub(super) fn for_struct(
        parent: &'p ValueDe<'a, 's>,
        table: &'a std::collections::BTreeMap<String, Node>,
        fields: &'static [&'static str],
    ) -> Result<Self> {
        let mut entries: Vec<Entry<'a>> = Vec::with_capacity(table.len());
        for (key, node) in table {
            let entry = if fields.contains(&key.as_str()) {
                Entry { key: key.as_str(), node, read_file: false }
            } else if let Some(field) = fields.iter().find(|f| loose_eq(f, key)) {
                Entry { key: field, node, read_file: false }
            } else if let Some(field) = secret_file_field(parent.ctx.sources, key, node, fields) {
                // A stand-in for a bad secret file's value is the value itself.
                Entry { key: field, node, read_file: !matches!(node, Node::Placeholder(_)) }
            } else {
                let mut path = parent.path.to_path();
                path.push(Seg::Key(key.clone()));
                let suggestion = suggest(key, fields);
                parent.ctx.record.borrow_mut().unknown.push(Unknown { path, source: node.source(), suggestion });
                Entry { key: key.as_str(), node, read_file: false }
            };
            if let Some(prev) = entries.iter().find(|e| e.key == entry.key) {
                let sources: Vec<String> = [prev.node, entry.node]
                    .iter()
                    .filter_map(|n| n.source().map(|s| parent.ctx.sources.get(s).to_string()))
                    .collect();
                let message = format!("set twice, by {}", sources.join(" and "));
                let mut e = DeError::new(Kind::Conflict { raw_key: key.clone(), message });
                let mut path = parent.path.to_path();
                path.push(Seg::Key(entry.key.to_owned()));
                e.path = Some(path);
                e.source = entry.node.source();
                return Err(e);
            }
            entries.push(entry);
        }
        Ok(Self { parent, entries: entries.into_iter(), value: None })
    }
}

impl<'de> de::MapAccess<'de> for MapDe<'_, '_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some(entry) = self.entries.next() else { return Ok(None) };
        let key = seed.deserialize(entry.key.into_deserializer()).map_err(|mut e: DeError| {
            let mut path = self.parent.path.to_path();
            if !matches!(e.kind, Kind::UnknownField { .. }) {
                path.push(Seg::Key(entry.key.to_owned()));
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
        let child = self.parent.key(entry.key, entry.node);
        if !entry.read_file {
            let at = child.clone();
            return seed.deserialize(child).map_err(|e| at.attach(e));
        }
        let Node::Str(file, src) = entry.node else { return seed.deserialize(child) };
        child.ctx.record.borrow_mut().secrets.insert(DisplayPath(&child.path.to_path()).to_string());
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
        let secret_child = ValueDe { node: &node, path: child.path, ctx: child.ctx, secret: true };
        let at = secret_child.clone();
        seed.deserialize(secret_child).map_err(|e| at.attach(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

pub(super) struct EnumDe<'a, 's> {
    pub(super) variant: &'a str,
    pub(super) value: ValueDe<'a, 's>,
}

impl<'de, 'a, 's> de::EnumAccess<'de> for EnumDe<'a, 's> {
    type Error = DeError;
    type Variant = ValueDe<'a, 's>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant)> {
        let variant = seed.deserialize(self.variant.into_deserializer())?;
        Ok((variant, self.value))
    }
}
