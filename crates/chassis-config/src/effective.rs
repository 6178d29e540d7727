//! The effective configuration, with where each value came from.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::merged::Merged;
use crate::node::Node;
use crate::source::Source;
use chassis_bounds::REDACTED;

/// Every key of the configuration with its value, its source and what it
/// overrode. Secrets are redacted. `Display` renders a table; `Serialize` gives
/// the structured form (e.g. for a `/config` admin endpoint).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Effective {
    /// The keys, sorted.
    pub entries: Vec<Entry>,
}

/// One key of the [`Effective`] configuration.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Entry {
    /// The key path, e.g. `db.pool_size`.
    pub key: String,
    /// The effective value, rendered (`***` for a secret).
    pub value: String,
    /// Where the effective value came from.
    pub source: Source,
    /// The values it overrode, the most recent first.
    pub overrode: Vec<Overridden>,
}

/// A value that a higher-precedence source overrode.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Overridden {
    /// The overridden value, rendered (`***` for a secret).
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

impl Effective {
    /// The entry of one key.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// Key names that hold secrets even when not read into a [`Secret`](crate::Secret).
const SECRET_WORDS: [&str; 8] =
    ["password", "passwd", "secret", "token", "api_key", "apikey", "private_key", "credential"];

/// Whether a key's value must be redacted: it was read into a `Secret` (or lies
/// below one), or its name says it is a secret.
pub(crate) fn is_secret(key: &str, secrets: &BTreeSet<String>) -> bool {
    let below_secret = secrets.iter().any(|s| {
        key == s || key.strip_prefix(s.as_str()).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    });
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    below_secret || SECRET_WORDS.iter().any(|w| last.contains(w))
}

pub(crate) fn build<'c>(config: &'c Merged, typed: Option<&serde_json::Value>) -> Effective {
    let secrets = config.secrets();
    // Every layer's values: those the tree kept and those later layers
    // replaced, in the order the layers came (within a layer, in key order).
    let mut leaves: Vec<(String, usize, Vec<String>, &'c Node)> = Vec::new();
    let mut collect = |mut prefix: Vec<String>, node: &'c Node| {
        node.walk_leaves(&mut prefix, &mut |path, leaf| {
            let layer = leaf.source().map_or(0, |s| config.layer_of(s));
            leaves.push((path.join("."), layer, path.to_vec(), leaf));
        });
    };
    collect(Vec::new(), &config.tree);
    for (path, node) in &config.replaced {
        collect(path.clone(), node);
    }
    leaves.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for (key, _, _, node) in leaves {
        let value = if is_secret(&key, &secrets) { REDACTED.to_owned() } else { node.render() };
        let source = node.source().map_or(Source::Default, |s| config.sources().get(s).clone());
        match entries.get_mut(&key) {
            Some(entry) => {
                let old_value = std::mem::replace(&mut entry.value, value);
                let old_source = std::mem::replace(&mut entry.source, source);
                entry.overrode.insert(0, Overridden { value: old_value, source: old_source });
            }
            None => {
                entries.insert(key.clone(), Entry { key, value, source, overrode: Vec::new() });
            }
        }
    }
    if let Some(typed) = typed {
        let mut path = Vec::new();
        walk_json(typed, &mut path, &mut |key, value| {
            entries.entry(key.clone()).or_insert_with(|| {
                let value = if is_secret(&key, &secrets) { REDACTED.to_owned() } else { value };
                Entry { key, value, source: Source::Default, overrode: Vec::new() }
            });
        });
    }
    Effective { entries: entries.into_values().collect() }
}

fn walk_json(value: &serde_json::Value, path: &mut Vec<String>, f: &mut impl FnMut(String, String)) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                walk_json(v, path, f);
                path.pop();
            }
        }
        // An empty table at the root has no keys to show.
        serde_json::Value::Object(_) if path.is_empty() => {}
        other => f(path.join("."), other.to_string()),
    }
}

impl fmt::Display for Effective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 4]> = self
            .entries
            .iter()
            .map(|e| {
                let overrode =
                    e.overrode.iter().map(|o| format!("{} ({})", o.value, o.source)).collect::<Vec<_>>().join(", ");
                [e.key.clone(), e.value.clone(), e.source.to_string(), overrode]
            })
            .collect();
        let header = ["KEY", "VALUE", "SOURCE", "OVERRODE"].map(String::from);
        let mut widths = header.clone().map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let line = format!(
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}
