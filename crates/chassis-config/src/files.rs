//! Configuration files: TOML always, YAML and JSON behind features, parsed by
//! figment's formats straight into the configuration tree.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::Format;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};

use crate::node::{Node, TOML_DATETIME_FIELD};
use crate::source::SourceId;

/// A file's parsed top-level table.
pub(crate) type Table = BTreeMap<String, Node>;

/// The extensions tried for `<dir>/default` and `<dir>/<profile>`.
const EXTENSIONS: [&str; 4] = ["toml", "yaml", "yml", "json"];

/// The files that exist among `<base>.toml`, `.yaml`, `.yml` and `.json`.
pub(crate) fn existing_variants(base: &Path) -> Vec<PathBuf> {
    EXTENSIONS.iter().map(|ext| base.with_extension(ext)).filter(|p| p.is_file()).collect()
}

/// Reads and parses a file into a table whose values all come from `source`;
/// `Ok(None)` when it does not exist. The error names the file and, for a
/// malformed one, the line and column.
pub(crate) fn read(path: &Path, source: SourceId) -> Result<Option<Table>, String> {
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read config file {shown}: {e}")),
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        format!("config file {shown} is not valid UTF-8 (bad byte at offset {})", e.utf8_error().valid_up_to())
    })?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let parsed = match ext.as_deref() {
        Some("toml") => parse::<figment::providers::Toml>(&text),
        Some("yaml" | "yml") => yaml(&text),
        Some("json") => json(&text),
        _ => {
            return Err(format!("config file {shown} has no known extension (.toml, .yaml, .yml or .json)"));
        }
    };
    let mut table = parsed.map_err(|e| format!("config file {shown} is malformed: {e}"))?;
    for node in table.values_mut() {
        node.set_source(source);
    }
    Ok(Some(table))
}

fn parse<F: Format>(text: &str) -> Result<Table, String>
where
    F::Error: fmt::Display,
{
    F::from_str::<FileTable>(text).map(|t| t.0).map_err(|e| without_snippet(&e.to_string()))
}

#[cfg(feature = "yaml")]
fn yaml(text: &str) -> Result<Table, String> {
    parse::<figment::providers::Yaml>(text)
}

#[cfg(not(feature = "yaml"))]
fn yaml(_: &str) -> Result<Table, String> {
    Err("YAML support is off (enable the `yaml` feature of chassis-config)".into())
}

#[cfg(feature = "json")]
fn json(text: &str) -> Result<Table, String> {
    parse::<figment::providers::Json>(text)
}

#[cfg(not(feature = "json"))]
fn json(_: &str) -> Result<Table, String> {
    Err("JSON support is off (enable the `json` feature of chassis-config)".into())
}

/// A file's top level, which must be a table (a TOML document always is).
struct FileTable(Table);

impl<'de> Deserialize<'de> for FileTable {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        match de.deserialize_any(NodeVisitor)? {
            Node::Table(table) => Ok(Self(table)),
            Node::List(..) => Err(de::Error::invalid_type(Unexpected::Seq, &"a table")),
            other => Err(de::Error::invalid_type(Unexpected::Other(&other.render()), &"a table")),
        }
    }
}

/// Builds a node from what a format's parser reads, with no intermediate
/// value tree (figment's `Value` would be one more copy of the file). Every
/// node's source is set by [`read`] once the whole file has parsed.
///
/// A TOML date, time or date-time arrives as a one-key table holding its
/// RFC 3339 text; it is that text. A tagged value (YAML `!tag value`) is a
/// one-key table `{tag = value}`, as figment reads it.
struct NodeVisitor;

const PARSING: SourceId = SourceId(0);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(NodeVisitor)
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a configuration value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v, PARSING))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into(), PARSING))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v, PARSING))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into(), PARSING))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        Ok(i128::try_from(v).map_or(Node::Float(v as f64, PARSING), |v| Node::Int(v, PARSING)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v, PARSING))
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<Node, E> {
        Ok(Node::Str(v.to_string(), PARSING))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned(), PARSING))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v, PARSING))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null(PARSING))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null(PARSING))
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Node, D::Error> {
        de.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<Node, D::Error> {
        de.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items, PARSING))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut table = Table::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: Node = map.next_value()?;
            table.insert(key, value);
        }
        if table.len() == 1 && matches!(table.get(TOML_DATETIME_FIELD), Some(Node::Str(..))) {
            if let Some(text @ Node::Str(..)) = table.remove(TOML_DATETIME_FIELD) {
                return Ok(text);
            }
        }
        Ok(Node::Table(table))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        use de::VariantAccess as _;
        let (tag, variant) = data.variant::<String>()?;
        let value: Node = variant.newtype_variant()?;
        Ok(Node::Table(Table::from([(tag, value)])))
    }
}

/// Parser messages quote the offending line, which may hold a secret: keep the
/// position and the diagnosis, drop the quoted source.
fn without_snippet(message: &str) -> String {
    message
        .lines()
        .map(str::trim_end)
        .filter(|line| {
            let t = line.trim_start();
            let quoted =
                t.starts_with('|') || t.split_once(" |").is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
            !t.is_empty() && !quoted
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_keep_position_and_drop_the_quoted_line() {
        let err = parse::<figment::providers::Toml>("password = \"hunter2\nx = 1").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
