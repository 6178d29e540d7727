//! The extraction engine: deserialize a [`Merged`] tree into a type; on a
//! problem, record it, put a stand-in in its place and go again, so one report
//! holds every problem.

use std::borrow::Cow;
use std::sync::PoisonError;

use serde::de::DeserializeOwned;

use crate::de::{Ctx, DeError, Kind, ValueDe, loose_eq};
use crate::env;
use crate::error::{Problem, ProblemKind, Warning};
use crate::merged::Merged;
use crate::node::{DisplayPath, Node, Seg};

/// How many passes one extraction may make before it gives up looking for more
/// problems. Each problem costs one pass, plus a few more for stand-ins the
/// target type rejects.
const MAX_PASSES: usize = 512;

impl Merged {
    /// The extraction engine: deserialize; on a problem, record it, put a
    /// stand-in in its place and go again, so one report holds every problem.
    pub(crate) fn extract_at<T: DeserializeOwned>(&self, base: &[Seg]) -> (Option<T>, Vec<Problem>, Vec<Warning>) {
        // Read in place; copied only when a problem needs a stand-in put in.
        let mut tree: Cow<'_, Node> = self.tree.get(base).map_or_else(|| Cow::Owned(Node::table()), Cow::Borrowed);
        let mut problems = Vec::new();
        let mut previous: Option<Vec<Seg>> = None;
        // Keys left out because no stand-in passed the target type's checks.
        let mut removed: Vec<Vec<Seg>> = Vec::new();
        let mut value = None;
        let mut record = None;
        for _ in 0..MAX_PASSES {
            let ctx = Ctx::new(&self.sources);
            let result = T::deserialize(ValueDe::new(&tree, base, &ctx));
            record = Some(ctx.record.into_inner());
            let error = match result {
                Ok(v) => {
                    value = Some(v);
                    break;
                }
                Err(error) => error,
            };
            let key = error.key_path();
            let rel = resolve(&tree, key.get(base.len()..).unwrap_or_default());
            let rel = rel.as_slice();
            match tree.to_mut().get_mut(rel) {
                Some(Node::Placeholder(n)) if usize::from(*n) + 1 < crate::de::STRING_STAND_INS.len() => {
                    *n += 1;
                    continue;
                }
                Some(Node::Placeholder(_)) => {
                    // No stand-in passes the type's own checks (`1..=10000`, a
                    // filter syntax): leave the key out, so its default stands in.
                    if !removed.iter().any(|r| r == rel) && remove(tree.to_mut(), rel) {
                        removed.push(rel.to_vec());
                        continue;
                    }
                    problems.push(self.hidden(&key));
                    break;
                }
                _ => {}
            }
            if matches!(error.kind, Kind::Missing(_)) && removed.iter().any(|r| r == rel) {
                // A key left out above has no default: nothing more can stand in.
                problems.push(self.hidden(&key));
                break;
            }
            if let Kind::Missing(_) = error.kind {
                // A missing table stood in for by a placeholder is reported through
                // its own missing keys, not as well as a whole.
                let shown = DisplayPath(&key).to_string();
                problems.retain(|p: &Problem| {
                    p.kind != ProblemKind::Missing
                        || !p.key.as_deref().is_some_and(|k| shown.strip_prefix(k).is_some_and(|r| r.starts_with('.')))
                });
            }
            problems.push(self.problem(&error));
            if previous.as_ref() == Some(&key) || !patch(tree.to_mut(), rel, &error.kind) {
                problems.push(self.hidden(&key));
                break;
            }
            previous = Some(key);
        }
        // Report in key order, whatever order the target type reads its fields in.
        problems.sort_by(|a, b| a.key.cmp(&b.key));
        let record = record.unwrap_or_default();
        self.secrets.lock().unwrap_or_else(PoisonError::into_inner).extend(record.secrets);
        let warnings = record
            .unknown
            .into_iter()
            .map(|u| {
                let suggestion = u.suggestion.map(|s| {
                    let mut path = u.path[..u.path.len().saturating_sub(1)].to_vec();
                    path.push(Seg::Key(s));
                    DisplayPath(&path).to_string()
                });
                Warning {
                    key: DisplayPath(&u.path).to_string(),
                    source: u.source.map(|s| self.sources.get(s).clone()),
                    suggestion,
                }
            })
            .collect();
        (value, problems, warnings)
    }

    fn problem(&self, e: &DeError) -> Problem {
        let path = e.key_path();
        let kind = match &e.kind {
            Kind::Missing(_) => ProblemKind::Missing,
            Kind::InvalidType { found, expected } => {
                ProblemKind::WrongType { expected: expected.clone(), found: found.clone() }
            }
            Kind::InvalidValue { found, expected } => {
                ProblemKind::InvalidValue { expected: expected.clone(), found: found.clone() }
            }
            Kind::InvalidLength { len, expected } => {
                ProblemKind::InvalidValue { expected: expected.clone(), found: format!("{len} elements") }
            }
            Kind::SecretFile(message) => ProblemKind::Source { message: message.clone() },
            other => ProblemKind::Other { message: other.to_string() },
        };
        let source = match kind {
            ProblemKind::Missing => None,
            _ => e.source.map(|s| self.sources.get(s).clone()),
        };
        Problem {
            key: (!path.is_empty()).then(|| DisplayPath(&path).to_string()),
            env_var: env::var_for_key(&self.prefix, &path),
            source,
            kind,
        }
    }

    fn hidden(&self, path: &[Seg]) -> Problem {
        Problem {
            key: (!path.is_empty()).then(|| DisplayPath(path).to_string()),
            env_var: None,
            source: None,
            kind: ProblemKind::Hidden,
        }
    }
}

/// The path as the tree spells it. A key path from the target type names its
/// fields (`poolSize`, `password`); the tree holds keys as the sources wrote
/// them (`poolsize` from `APP_POOLSIZE`, `password_file` from
/// `APP_PASSWORD_FILE`), which the deserializer matched loosely.
pub(crate) fn resolve(tree: &Node, rel: &[Seg]) -> Vec<Seg> {
    let mut out = Vec::with_capacity(rel.len());
    let mut here = Some(tree);
    for seg in rel {
        let raw = match (here, seg) {
            (Some(Node::Table(table)), Seg::Key(field)) if !table.contains_key(field) => {
                let file = format!("{field}_file");
                table
                    .keys()
                    .find(|raw| loose_eq(field, raw))
                    .or_else(|| table.keys().find(|raw| loose_eq(&file, raw)))
                    .map_or_else(|| seg.clone(), |raw| Seg::Key(raw.clone()))
            }
            _ => seg.clone(),
        };
        here = here.and_then(|node| node.get(std::slice::from_ref(&raw)));
        out.push(raw);
    }
    out
}

/// Removes the key at `rel` from its table; `false` when it is not in one.
fn remove(tree: &mut Node, rel: &[Seg]) -> bool {
    let Some((Seg::Key(last), parent)) = rel.split_last() else { return false };
    match tree.get_mut(parent) {
        Some(Node::Table(table)) => table.remove(last).is_some(),
        _ => false,
    }
}

/// Puts a stand-in where a problem was found, so the next pass goes past it.
fn patch(tree: &mut Node, rel: &[Seg], kind: &Kind) -> bool {
    let remove = match kind {
        Kind::UnknownField { field, .. } => Some(field.as_str()),
        Kind::Conflict { raw_key, .. } => Some(raw_key.as_str()),
        _ => None,
    };
    if let Some(raw_key) = remove {
        let parent = rel.get(..rel.len().saturating_sub(1)).unwrap_or_default();
        return match tree.get_mut(parent) {
            Some(Node::Table(table)) => table.remove(raw_key).is_some(),
            _ => false,
        };
    }
    if let Kind::Missing(_) = kind {
        let Some((Seg::Key(last), parent)) = rel.split_last() else { return false };
        return match tree.get_mut(parent) {
            Some(node @ Node::Placeholder(_)) => {
                *node = Node::Table([(last.clone(), Node::Placeholder(0))].into_iter().collect());
                true
            }
            Some(Node::Table(table)) => table.insert(last.clone(), Node::Placeholder(0)).is_none(),
            _ => false,
        };
    }
    // The deepest node on the path: a list parsed from an env var's text has no
    // nodes of its own below the text, so the whole text is stood in for.
    let mut depth = rel.len();
    while tree.get(&rel[..depth]).is_none() {
        let Some(up) = depth.checked_sub(1) else { return false };
        depth = up;
    }
    match tree.get_mut(&rel[..depth]) {
        Some(node) if depth == rel.len() || node.source().is_some_and(|_| !matches!(node, Node::Table(_))) => {
            *node = Node::Placeholder(0);
            true
        }
        _ => false,
    }
}
