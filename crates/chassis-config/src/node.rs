//! The configuration tree: every value remembers the source it came from.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::source::SourceId;

/// One node of the merged configuration tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A table; tables of later layers merge into tables of earlier ones.
    Table(BTreeMap<String, Node>),
    /// A list; a later layer replaces it whole.
    List(Vec<Node>, SourceId),
    Str(String, SourceId),
    Bool(bool, SourceId),
    Int(i128, SourceId),
    Float(f64, SourceId),
    Null(SourceId),
    /// Stands in for a value that was missing or wrong, so that one load can go on
    /// to find the next problem. The number picks which stand-in value it offers.
    Placeholder(u8),
}

/// The key under which the `toml` crate hands over a date-time's text, and the
/// struct name its `Datetime` asks a deserializer for (`toml_datetime`'s
/// `FIELD` and `NAME`, stable since toml 0.5).
pub(crate) const TOML_DATETIME_FIELD: &str = "$__toml_private_datetime";
/// See [`TOML_DATETIME_FIELD`].
pub(crate) const TOML_DATETIME_NAME: &str = "$__toml_private_Datetime";

impl Node {
    pub(crate) fn table() -> Self {
        Self::Table(BTreeMap::new())
    }

    pub(crate) fn source(&self) -> Option<SourceId> {
        match self {
            Self::List(_, s)
            | Self::Str(_, s)
            | Self::Bool(_, s)
            | Self::Int(_, s)
            | Self::Float(_, s)
            | Self::Null(s) => Some(*s),
            Self::Table(t) => t.values().find_map(Self::source),
            Self::Placeholder(_) => None,
        }
    }

    /// Merges `other` over `self`: tables merge key by key, anything else replaces.
    pub(crate) fn merge(&mut self, other: Node) {
        match (self, other) {
            (Self::Table(mine), Self::Table(theirs)) => {
                for (key, value) in theirs {
                    match mine.get_mut(&key) {
                        Some(existing) => existing.merge(value),
                        None => {
                            mine.insert(key, value);
                        }
                    }
                }
            }
            (this, other) => *this = other,
        }
    }

    /// Merges `other` over `self` as [`merge`](Self::merge) does, and hands
    /// each node it replaces to `replaced`, with its path (`path` is where
    /// `self` is).
    pub(crate) fn merge_keeping(
        &mut self,
        other: Node,
        path: &mut Vec<String>,
        replaced: &mut Vec<(Vec<String>, Node)>,
    ) {
        match (self, other) {
            (Self::Table(mine), Self::Table(theirs)) => {
                for (key, value) in theirs {
                    match mine.get_mut(&key) {
                        Some(existing) => {
                            path.push(key);
                            existing.merge_keeping(value, path, replaced);
                            path.pop();
                        }
                        None => {
                            mine.insert(key, value);
                        }
                    }
                }
            }
            (this, other) => replaced.push((path.clone(), std::mem::replace(this, other))),
        }
    }

    /// Inserts `value` at `path` (all segments are keys), creating tables on the way
    /// and replacing any non-table in the way.
    pub(crate) fn insert(&mut self, path: &[String], value: Node) {
        let Some((last, parents)) = path.split_last() else {
            self.merge(value);
            return;
        };
        let mut here = self;
        for key in parents {
            if !matches!(here, Self::Table(_)) {
                *here = Self::table();
            }
            let Self::Table(table) = here else { return };
            here = table.entry(key.clone()).or_insert_with(Self::table);
        }
        if !matches!(here, Self::Table(_)) {
            *here = Self::table();
        }
        if let Self::Table(table) = here {
            match table.get_mut(last) {
                Some(existing) => existing.merge(value),
                None => {
                    table.insert(last.clone(), value);
                }
            }
        }
    }

    pub(crate) fn get(&self, path: &[Seg]) -> Option<&Node> {
        let mut here = self;
        for seg in path {
            here = match (here, seg) {
                (Self::Table(t), Seg::Key(k)) => t.get(k)?,
                (Self::List(l, _), Seg::Index(i)) => l.get(*i)?,
                _ => return None,
            };
        }
        Some(here)
    }

    pub(crate) fn get_mut(&mut self, path: &[Seg]) -> Option<&mut Node> {
        let mut here = self;
        for seg in path {
            here = match (here, seg) {
                (Self::Table(t), Seg::Key(k)) => t.get_mut(k)?,
                (Self::List(l, _), Seg::Index(i)) => l.get_mut(*i)?,
                _ => return None,
            };
        }
        Some(here)
    }

    /// Calls `f` with the path and node of every leaf (non-table) of the tree.
    pub(crate) fn walk_leaves<'a>(&'a self, prefix: &mut Vec<String>, f: &mut impl FnMut(&[String], &'a Node)) {
        match self {
            Self::Table(t) => {
                for (k, v) in t {
                    prefix.push(k.clone());
                    v.walk_leaves(prefix, f);
                    prefix.pop();
                }
            }
            leaf => f(prefix, leaf),
        }
    }

    /// Sets the source of this node and of every node below it.
    pub(crate) fn set_source(&mut self, source: SourceId) {
        match self {
            Self::Table(t) => t.values_mut().for_each(|v| v.set_source(source)),
            Self::List(items, s) => {
                *s = source;
                items.iter_mut().for_each(|v| v.set_source(source));
            }
            Self::Str(_, s) | Self::Bool(_, s) | Self::Int(_, s) | Self::Float(_, s) | Self::Null(s) => *s = source,
            Self::Placeholder(_) => {}
        }
    }

    /// Converts a JSON value (programmatic overrides, JSON text in env vars) into a node.
    pub(crate) fn from_json(value: serde_json::Value, source: SourceId) -> Self {
        use serde_json::Value as J;
        match value {
            J::Null => Self::Null(source),
            J::Bool(b) => Self::Bool(b, source),
            J::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Self::Int(i.into(), source),
                (None, Some(u)) => Self::Int(u.into(), source),
                _ => Self::Float(n.as_f64().unwrap_or(f64::NAN), source),
            },
            J::String(s) => Self::Str(s, source),
            J::Array(a) => Self::List(a.into_iter().map(|v| Self::from_json(v, source)).collect(), source),
            J::Object(o) => Self::Table(o.into_iter().map(|(k, v)| (k, Self::from_json(v, source))).collect()),
        }
    }

    /// A short rendering of the value, for dumps and error messages.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Self::Str(s, _) => {
                let _ = write!(out, "{s:?}");
            }
            Self::Bool(b, _) => {
                let _ = write!(out, "{b}");
            }
            Self::Int(i, _) => {
                let _ = write!(out, "{i}");
            }
            Self::Float(x, _) => {
                let _ = write!(out, "{x:?}");
            }
            Self::Null(_) => out.push_str("null"),
            Self::Placeholder(_) => out.push('?'),
            Self::List(items, _) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.render_into(out);
                }
                out.push(']');
            }
            Self::Table(t) => {
                out.push('{');
                for (i, (k, v)) in t.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{k} = ");
                    v.render_into(out);
                }
                out.push('}');
            }
        }
    }
}

/// One step of a key path: a table key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path as `db.hosts[2].name`.
pub(crate) struct DisplayPath<'a>(pub(crate) &'a [Seg]);

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A path of table keys as segments.
pub(crate) fn key_segs(path: &[String]) -> Vec<Seg> {
    path.iter().map(|k| Seg::Key(k.clone())).collect()
}

/// Splits a dotted key (`db.pool_size`) into its parts; `None` for an empty part.
pub(crate) fn split_key(key: &str) -> Option<Vec<String>> {
    key.split('.').map(|part| (!part.is_empty()).then(|| part.to_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Node {
        Node::Str(v.into(), SourceId(0))
    }

    #[test]
    fn merge_replaces_leaves_and_merges_tables() {
        let mut base = Node::table();
        base.insert(&["db".into(), "url".into()], s("a"));
        base.insert(&["db".into(), "pool".into()], s("1"));
        let mut over = Node::table();
        over.insert(&["db".into(), "pool".into()], s("2"));
        base.merge(over);
        assert_eq!(base.render(), r#"{db = {pool = "2", url = "a"}}"#);
    }

    #[test]
    fn insert_replaces_a_leaf_in_the_way() {
        let mut base = Node::table();
        base.insert(&["db".into()], s("flat"));
        base.insert(&["db".into(), "url".into()], s("x"));
        assert_eq!(base.render(), r#"{db = {url = "x"}}"#);
    }

    #[test]
    fn paths_render_with_indexes() {
        let path = [Seg::Key("db".into()), Seg::Key("hosts".into()), Seg::Index(2)];
        assert_eq!(DisplayPath(&path).to_string(), "db.hosts[2]");
        assert_eq!(split_key("a..b"), None);
        assert_eq!(split_key("a.b"), Some(vec!["a".into(), "b".into()]));
    }
}
