//! The environment layer: `APP_DB__POOL_SIZE=20` → `db.pool_size = "20"`.
//!
//! Values stay text here; the deserializer parses them according to the type they
//! are read into, so `APP_VERSION=1.10` stays `"1.10"` for a `String`.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::{Problem, ProblemKind, Warning};
use crate::node::{Node, Seg, key_segs};
use crate::source::{Source, Sources};

/// The variable naming the profile: `<PREFIX>_PROFILE`.
pub(crate) fn profile_var(prefix: &str) -> String {
    format!("{prefix}_PROFILE")
}

/// The key path a prefixed variable maps to: `__` separates levels, a single `_`
/// stays part of the name, names are lower-cased. `None` when the variable is
/// not under the prefix or has an empty level (`APP_DB____URL`).
pub(crate) fn key_for_var(prefix: &str, var: &str) -> Option<Vec<String>> {
    let rest = var.strip_prefix(prefix)?.strip_prefix('_')?;
    rest.split("__").map(|part| (!part.is_empty()).then(|| part.to_ascii_lowercase())).collect()
}

/// The variable that sets a key path: `db.pool_size` → `APP_DB__POOL_SIZE`. For a
/// path into a list, the variable of the whole list.
pub(crate) fn var_for_key(prefix: &str, path: &[Seg]) -> Option<String> {
    let mut var = format!("{prefix}_");
    let mut any = false;
    for seg in path {
        let Seg::Key(key) = seg else { break };
        if any {
            var.push_str("__");
        }
        var.extend(key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }));
        any = true;
    }
    any.then_some(var)
}

/// Builds the environment layer.
pub(crate) fn layer(
    prefix: &str,
    vars: &[(OsString, OsString)],
    aliases: &[(String, Vec<String>)],
    sources: &mut Sources,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Warning>,
) -> Node {
    let profile = profile_var(prefix);
    let under_prefix = format!("{prefix}_");
    let mut tree = Node::table();
    let mut sorted: Vec<&(OsString, OsString)> = vars.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in sorted {
        let Some(name) = name.to_str() else {
            let lossy = name.to_string_lossy();
            if lossy.starts_with(&under_prefix) {
                problems.push(Problem {
                    key: None,
                    env_var: None,
                    source: None,
                    kind: ProblemKind::Source {
                        message: format!("environment variable name {lossy:?} is not valid UTF-8"),
                    },
                });
            }
            continue;
        };
        let path = match aliases.iter().find(|(var, _)| var == name) {
            Some((_, key)) => key.clone(),
            None if name == profile || !name.starts_with(&under_prefix) => continue,
            None => match key_for_var(prefix, name) {
                Some(path) => path,
                None => {
                    warnings.push(Warning {
                        key: name.to_owned(),
                        source: Some(Source::Env { var: name.to_owned() }),
                        suggestion: None,
                    });
                    continue;
                }
            },
        };
        let Some(value) = value.to_str() else {
            problems.push(Problem {
                key: Some(path.join(".")),
                env_var: Some(name.to_owned()),
                source: Some(Source::Env { var: name.to_owned() }),
                kind: ProblemKind::Source { message: format!("the value of {name} is not valid UTF-8") },
            });
            continue;
        };
        let source = if name.ends_with("_FILE") {
            Source::SecretFile { var: name.to_owned(), path: PathBuf::from(value) }
        } else {
            Source::Env { var: name.to_owned() }
        };
        // `APP_DB=x` next to `APP_DB__URL=y`: a value and a table for one key.
        // (Sorted order puts the shorter name first.)
        let shadowed = (1..path.len()).find_map(|n| match tree.get(&key_segs(&path[..n])) {
            Some(Node::Str(_, id)) => Some(sources.get(*id).clone()),
            _ => None,
        });
        if let Some(shadowed) = shadowed {
            problems.push(Problem {
                key: Some(path.join(".")),
                env_var: Some(name.to_owned()),
                source: Some(Source::Env { var: name.to_owned() }),
                kind: ProblemKind::Source {
                    message: format!("{name} sets a key below one that {shadowed} sets as a value; unset one of them"),
                },
            });
            continue;
        }
        let id = sources.add(source);
        tree.insert(&path, Node::Str(value.to_owned(), id));
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_keys() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("APP_DB__POOL_SIZE", Some(&["db", "pool_size"])),
            ("APP_VERSION", Some(&["version"])),
            ("APP_A__B__C", Some(&["a", "b", "c"])),
            ("APP_DB____URL", None),
            ("APP_DB__", None),
            ("APPX_DB", None),
            ("OTHER", None),
        ];
        for (var, want) in cases {
            let got = key_for_var("APP", var);
            let want = want.map(|w| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
            assert_eq!(got, want, "{var}");
        }
    }

    #[test]
    fn keys_map_back_to_names() {
        let path = [Seg::Key("db".into()), Seg::Key("pool-size".into())];
        assert_eq!(var_for_key("APP", &path).as_deref(), Some("APP_DB__POOL_SIZE"));
        let path = [Seg::Key("hosts".into()), Seg::Index(1), Seg::Key("x".into())];
        assert_eq!(var_for_key("APP", &path).as_deref(), Some("APP_HOSTS"));
        assert_eq!(var_for_key("APP", &[]), None);
    }
}
