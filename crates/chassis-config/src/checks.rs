//! The checks of a [`Merged`] tree after the load: declared requirements
//! ([`Require`]) and section checks ([`Loader::check`](crate::Loader::check)).

use std::sync::Arc;

use chassis_bounds::Violation;

use crate::effective;
use crate::env;
use crate::error::{Problem, ProblemKind, Related, Result, source_problem};
use crate::extract::resolve;
use crate::merged::Merged;
use crate::node::{DisplayPath, Node, Seg, key_segs, split_key};
use crate::require::{Target, req_path};
use crate::source::Source;

/// Extracts a section at the given path and runs a check on it: the check's
/// violations, or the section's own problems when it fails to deserialize.
pub(crate) type CheckFn = Arc<dyn Fn(&Merged, &[Seg]) -> Result<Vec<Violation>, Vec<Problem>> + Send + Sync>;

/// A check registered with [`Loader::check`] or [`Loader::check_with`].
#[derive(Clone)]
pub(crate) struct SectionCheck {
    pub(crate) section: String,
    pub(crate) run: CheckFn,
}

impl Merged {
    /// Runs the registered section checks; see [`Loader::check`].
    pub(crate) fn run_checks(&self, checks: &[SectionCheck], problems: &mut Vec<Problem>) {
        let mut found = Vec::new();
        for check in checks {
            let base = if check.section.is_empty() {
                Vec::new()
            } else if let Some(path) = split_key(&check.section) {
                key_segs(&path)
            } else {
                let message =
                    format!("{:?} is not a section name: it needs non-empty parts separated by `.`", check.section);
                found.push(source_problem(message));
                continue;
            };
            let within = |key: &str| {
                check.section.is_empty()
                    || key
                        .strip_prefix(check.section.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
            };
            if problems.iter().any(|p| p.key.as_deref().is_some_and(within)) {
                continue; // already reported: the section did not read
            }
            match (check.run)(self, &base) {
                Ok(violations) => {
                    let mut checked: Vec<Problem> = violations.into_iter().map(|v| self.violation(&base, v)).collect();
                    checked.sort_by(|a, b| a.key.cmp(&b.key));
                    found.extend(checked);
                }
                Err(failed) => found.extend(failed),
            }
        }
        // A key that already has a problem (a failed rule) is not reported twice.
        found.retain(|p| !p.key.as_deref().is_some_and(|k| problems.iter().any(|q| q.key.as_deref() == Some(k))));
        problems.extend(found);
    }

    /// A check's violation as a problem at its full key, with the variable,
    /// the source of the value and the related keys with theirs.
    fn violation(&self, base: &[Seg], violation: Violation) -> Problem {
        let locate = |rel: &str| {
            let mut path = base.to_vec();
            match split_key(rel) {
                Some(parts) => path.extend(key_segs(&parts)),
                None => path.push(Seg::Key(rel.to_owned())),
            }
            let raw = resolve(&self.tree, &path);
            let source =
                self.tree.get(&raw).and_then(Node::source).map_or(Source::Default, |s| self.sources.get(s).clone());
            (path, source)
        };
        let (path, source) = locate(&violation.key);
        let key = DisplayPath(&path).to_string();
        let found =
            if effective::is_secret(&key, &self.secrets()) { "a secret value".to_owned() } else { violation.found };
        let related = violation
            .related
            .iter()
            .map(|rel| {
                let (path, source) = locate(rel);
                Related { key: DisplayPath(&path).to_string(), source: Some(source) }
            })
            .collect();
        Problem {
            env_var: env::var_for_key(&self.prefix, &path),
            key: Some(key),
            source: Some(source),
            kind: ProblemKind::Check { expected: violation.expected, found, related },
        }
    }

    pub(crate) fn check_requirements(&self) -> Vec<Problem> {
        let secrets = self.secrets();
        let mut problems = Vec::new();
        for req in &self.requirements {
            let Some(path) = req_path(&self.prefix, req) else {
                problems.push(source_problem(format!("{:?} is not a valid required key", req.target)));
                continue;
            };
            let key = path.join(".");
            let segs = key_segs(&path);
            let env_var = match &req.target {
                Target::Env(var) => Some(var.clone()),
                Target::Key(_) => env::var_for_key(&self.prefix, &segs),
            };
            let Some(node) = self.tree.get(&segs) else {
                if req.optional {
                    continue;
                }
                problems.push(Problem { key: Some(key), env_var, source: None, kind: ProblemKind::Missing });
                continue;
            };
            let secret = effective::is_secret(&key, &secrets);
            for rule in &req.rules {
                if let Err(message) = rule.check(node, secret) {
                    problems.push(Problem {
                        key: Some(key.clone()),
                        env_var: env_var.clone(),
                        source: node.source().map(|s| self.sources.get(s).clone()),
                        kind: ProblemKind::Rule { message },
                    });
                }
            }
        }
        problems
    }
}

/// Drops repeated problems, keeping the first of each.
pub(crate) fn dedup(problems: &mut Vec<Problem>) {
    let mut seen: Vec<Problem> = Vec::with_capacity(problems.len());
    problems.retain(|p| {
        let new = !seen.contains(p);
        if new {
            seen.push(p.clone());
        }
        new
    });
}
