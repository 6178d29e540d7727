//! Name matching: which table key feeds which struct field, and the field a
//! mistyped key was probably meant for.

use crate::node::Node;
use crate::source::{Source, Sources};

/// `pool_size`, `poolSize`, `pool-size` and `POOL_SIZE` name the same field.
pub(crate) fn loose_eq(field: &str, key: &str) -> bool {
    let norm = |c: char| if c == '-' { '_' } else { c.to_ascii_lowercase() };
    let strip = |s: &str| s.chars().filter(|c| *c != '_' && *c != '-').map(norm).collect::<String>();
    field.chars().map(norm).eq(key.chars().map(norm)) || strip(field) == strip(key)
}

/// The closest field name to a mistyped key, if one is close enough to
/// suggest: at most 2 edits (Levenshtein, ignoring case), or a quarter of the
/// field's length for a long one.
pub(super) fn suggest(key: &str, fields: &[&str]) -> Option<String> {
    let key = key.to_ascii_lowercase();
    fields
        .iter()
        .map(|f| (strsim::levenshtein(&key, &f.to_ascii_lowercase()), f))
        .filter(|(d, f)| *d <= 2.max(f.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| (*f).to_owned())
}

/// `password_file` set by an env var ending in `_FILE` feeds the field `password`
/// when the struct has no field `password_file` of its own.
pub(super) fn secret_file_field(
    sources: &Sources,
    key: &str,
    node: &Node,
    fields: &[&'static str],
) -> Option<&'static str> {
    let base = key.strip_suffix("_file")?;
    match node {
        Node::Str(_, src) if matches!(sources.get(*src), Source::SecretFile { .. }) => {}
        // Where the loader stood in for a secret file's bad value.
        Node::Placeholder(_) => {}
        _ => return None,
    }
    fields.iter().find(|f| loose_eq(f, base)).copied()
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
        // The distance the suggestions use (strsim's, in place of a hand-written one).
        assert_eq!(strsim::levenshtein("kitten", "sitting"), 3);
    }
}
