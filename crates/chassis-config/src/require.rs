//! Required settings and validation rules, declared in one place.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::env;
use crate::node::{Node, split_key};

/// A setting that must be present, with an optional default and validation rules.
///
/// The replacement for the Python original's `require_env_var(name, default,
/// rules)`: declare every required setting next to the loader, and a load that
/// lacks one, or has one that breaks a rule, fails with all of them in one report.
///
/// ```
/// use chassis_config::{Loader, Require, Rule};
///
/// let err = Loader::new("APP")
///     .env([("APP_DB__URL", "not a url"), ("APP_LOG__LEVEL", "loud")])
///     .require(Require::key("db.url").rule(Rule::url()))
///     .require(Require::env("APP_LOG__LEVEL").rule(Rule::one_of(["debug", "info", "warn"])))
///     .require(Require::key("service.name"))
///     .load()
///     .unwrap_err();
/// assert_eq!(err.problems().len(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct Require {
    pub(crate) target: Target,
    pub(crate) default: Option<Result<serde_json::Value, String>>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) optional: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    Key(String),
    Env(String),
}

impl Require {
    /// Requires the key (`db.url`), from any source.
    pub fn key(key: impl Into<String>) -> Self {
        Self { target: Target::Key(key.into()), default: None, rules: Vec::new(), optional: false }
    }

    /// Requires an environment variable. A name under the loader's prefix
    /// (`APP_DB__URL`) is the key it maps to (`db.url`), which a file may set
    /// as well; any other name (`DATABASE_URL`) is read into the top-level key
    /// of the same name in lower case (`database_url`).
    pub fn env(var: impl Into<String>) -> Self {
        Self { target: Target::Env(var.into()), default: None, rules: Vec::new(), optional: false }
    }

    /// The value to use when no source sets the key. It has the lowest
    /// precedence of all sources, and the rules apply to it too.
    pub fn default(mut self, value: impl Serialize) -> Self {
        self.default = Some(serde_json::to_value(value).map_err(|e| e.to_string()));
        self
    }

    /// Makes the setting optional: absence is fine (the target type's default
    /// applies), and the rules check the value when a source sets it.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Adds a validation rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }
}

/// A validation rule for a required setting.
///
/// Rules see the value as text (numbers and booleans in their usual form); a rule
/// on a list applies to every element.
#[derive(Clone)]
pub struct Rule {
    description: String,
    check: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    applies_to_empty_list: bool,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule").field("description", &self.description).finish_non_exhaustive()
    }
}

impl Rule {
    /// A rule from a description ("a port number") and a check.
    pub fn custom(description: impl Into<String>, check: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Self { description: description.into(), check: Arc::new(check), applies_to_empty_list: false }
    }

    /// Not empty (after trimming whitespace); a list must have an element.
    pub fn not_empty() -> Self {
        Self { applies_to_empty_list: true, ..Self::custom("not empty", |v| !v.trim().is_empty()) }
    }

    /// One of the given values, exactly.
    pub fn one_of<I, S>(allowed: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let allowed: Vec<String> = allowed.into_iter().map(Into::into).collect();
        let description = format!("one of {}", allowed.join(", "));
        Self::custom(description, move |v| allowed.iter().any(|a| a == v))
    }

    /// A number from `min` to `max`, inclusive.
    pub fn range(min: f64, max: f64) -> Self {
        Self::custom(format!("a number from {min} to {max}"), move |v| {
            v.trim().parse::<f64>().is_ok_and(|n| (min..=max).contains(&n))
        })
    }

    /// At least `min` characters long.
    pub fn min_len(min: usize) -> Self {
        Self::custom(format!("at least {min} characters long"), move |v| v.chars().count() >= min)
    }

    /// A URL: `scheme://` followed by something.
    pub fn url() -> Self {
        Self::custom("a URL (scheme://...)", |v| {
            v.split_once("://").is_some_and(|(scheme, rest)| {
                !rest.is_empty()
                    && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            })
        })
    }

    /// Checks a node; `Err` holds the failure message. `secret` withholds the value.
    pub(crate) fn check(&self, node: &Node, secret: bool) -> Result<(), String> {
        let show = |text: &str| if secret { "a secret value".to_owned() } else { format!("{text:?}") };
        match node {
            Node::List(items, _) => {
                if items.is_empty() && self.applies_to_empty_list {
                    return Err(format!("must be {}, found an empty list", self.description));
                }
                for (i, item) in items.iter().enumerate() {
                    self.check(item, secret).map_err(|m| format!("element {i} {m}"))?;
                }
                Ok(())
            }
            Node::Table(_) => Err(format!("must be {}, found a table", self.description)),
            leaf => {
                let text = leaf_text(leaf);
                if (self.check)(&text) {
                    Ok(())
                } else {
                    Err(format!("must be {}, found {}", self.description, show(&text)))
                }
            }
        }
    }
}

/// A scalar as rules see it.
fn leaf_text(node: &Node) -> String {
    match node {
        Node::Str(s, _) => s.clone(),
        Node::Null(_) | Node::Placeholder(_) => String::new(),
        other => other.render(),
    }
}

/// The key path a requirement names: its key, or the key its variable sets
/// (a variable outside the prefix is a key of its own, in lower case).
pub(crate) fn req_path(prefix: &str, req: &Require) -> Option<Vec<String>> {
    match &req.target {
        Target::Key(key) => split_key(key),
        Target::Env(var) => env::key_for_var(prefix, var).or_else(|| Some(vec![var.to_ascii_lowercase()])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceId;

    fn s(v: &str) -> Node {
        Node::Str(v.into(), SourceId(0))
    }

    #[test]
    fn builtin_rules() {
        assert!(Rule::not_empty().check(&s(" "), false).is_err());
        assert!(Rule::not_empty().check(&Node::List(vec![], SourceId(0)), false).is_err());
        assert!(Rule::one_of(["a", "b"]).check(&s("b"), false).is_ok());
        assert!(Rule::range(1.0, 10.0).check(&Node::Int(11, SourceId(0)), false).is_err());
        assert!(Rule::range(1.0, 10.0).check(&s("10"), false).is_ok());
        assert!(Rule::url().check(&s("postgres://h/db"), false).is_ok());
        assert!(Rule::url().check(&s("h/db"), false).is_err());
        assert!(Rule::min_len(3).check(&s("abc"), false).is_ok());
    }

    #[test]
    fn failures_name_the_rule_and_withhold_secrets() {
        let err = Rule::min_len(12).check(&s("hunter2"), true).unwrap_err();
        assert_eq!(err, "must be at least 12 characters long, found a secret value");
        let err = Rule::url().check(&Node::List(vec![s("x")], SourceId(0)), false).unwrap_err();
        assert_eq!(err, "element 0 must be a URL (scheme://...), found \"x\"");
    }
}
