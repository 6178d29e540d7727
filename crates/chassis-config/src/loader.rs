//! [`Loader`]: gathers the sources in order; [`Config`]: the merged result.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use chassis_bounds::{Check, Violation};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::de::{Ctx, DeError, Kind, ValueDe, loose_eq};
use crate::effective::{self, Effective};
use crate::env;
use crate::error::{Error, Problem, ProblemKind, Related, Result, Warning};
use crate::files;
use crate::node::{DisplayPath, Node, Seg, key_segs, split_key};
use crate::require::{Require, Target};
use crate::source::{Source, Sources};

/// How many passes one extraction may make before it gives up looking for more
/// problems. Each problem costs one pass, plus a few more for stand-ins the
/// target type rejects.
const MAX_PASSES: usize = 512;

/// Builds a configuration from layered sources.
///
/// Precedence, lowest first — a later source overrides an earlier one key by key,
/// tables merge, lists are replaced whole:
///
/// 1. serde defaults of the target type (`#[serde(default)]`), and defaults
///    declared with [`Require::default`];
/// 2. base files: `<dir>/default.toml` (`.yaml`/`.yml`/`.json` with the `yaml`
///    and `json` features) if present, then each [`file`](Self::file) and
///    [`optional_file`](Self::optional_file) in the order given;
/// 3. the profile file `<dir>/<profile>.toml`, where the profile comes from
///    [`profile`](Self::profile) or the `<PREFIX>_PROFILE` variable;
/// 4. environment variables `<PREFIX>_…` (`__` separates levels);
/// 5. overrides given with [`set`](Self::set).
///
/// ```
/// use chassis_config::{Loader, Secret};
/// use serde::Deserialize;
///
/// #[derive(Debug, Deserialize)]
/// struct App {
///     name: String,
///     db: Db,
/// }
///
/// #[derive(Debug, Deserialize)]
/// struct Db {
///     url: Secret<String>,
///     #[serde(default = "ten")]
///     pool_size: u16,
/// }
/// fn ten() -> u16 { 10 }
///
/// let app = Loader::new("APP")
///     .env([("APP_NAME", "billing"), ("APP_DB__URL", "postgres://db/billing")])
///     .set("db.pool_size", 20)
///     .extract::<App>()?;
/// assert_eq!(app.name, "billing");
/// assert_eq!(app.db.pool_size, 20);
/// assert_eq!(format!("{:?}", app.db.url), "***");
/// # Ok::<(), chassis_config::Error>(())
/// ```
#[derive(Clone)]
pub struct Loader {
    prefix: String,
    dir: Option<PathBuf>,
    files: Vec<(PathBuf, bool)>,
    profile: Option<String>,
    env: Option<Vec<(OsString, OsString)>>,
    overrides: Vec<(String, std::result::Result<serde_json::Value, String>)>,
    requirements: Vec<Require>,
    checks: Vec<SectionCheck>,
}

/// Extracts a section at the given path and runs a check on it: the check's
/// violations, or the section's own problems when it fails to deserialize.
type CheckFn = Arc<dyn Fn(&Config, &[Seg]) -> std::result::Result<Vec<Violation>, Vec<Problem>> + Send + Sync>;

/// A check registered with [`Loader::check`] or [`Loader::check_with`].
#[derive(Clone)]
struct SectionCheck {
    section: String,
    run: CheckFn,
}

impl fmt::Debug for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values (env, overrides) may be secrets: only their count is shown.
        f.debug_struct("Loader")
            .field("prefix", &self.prefix)
            .field("dir", &self.dir)
            .field("files", &self.files)
            .field("profile", &self.profile)
            .field("injected_env_vars", &self.env.as_ref().map(Vec::len))
            .field("overrides", &self.overrides.len())
            .field("requirements", &self.requirements.len())
            .field("checks", &self.checks.iter().map(|c| c.section.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl Loader {
    /// A loader for environment variables named `<prefix>_…` (`"APP"` reads
    /// `APP_DB__URL`), with the config directory `config`.
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into().trim_end_matches('_').to_owned();
        Self {
            prefix,
            dir: Some(PathBuf::from("config")),
            files: Vec::new(),
            profile: None,
            env: None,
            overrides: Vec::new(),
            requirements: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// The directory holding `default.toml` and the profile files (default: `config`).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Reads no directory: only the files named with [`file`](Self::file).
    pub fn no_dir(mut self) -> Self {
        self.dir = None;
        self
    }

    /// A base file that must exist: a missing one is a problem in the report.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push((path.into(), true));
        self
    }

    /// A base file read only if it exists.
    pub fn optional_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push((path.into(), false));
        self
    }

    /// Selects the profile, instead of the `<PREFIX>_PROFILE` variable.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Reads these variables instead of the process environment (for tests, and
    /// for programs that assemble their environment themselves).
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env = Some(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// Overrides a key (`"db.pool_size"`) with a value: the highest precedence.
    pub fn set(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        self.overrides.push((key.into(), serde_json::to_value(value).map_err(|e| e.to_string())));
        self
    }

    /// Declares a required setting.
    pub fn require(mut self, requirement: Require) -> Self {
        self.requirements.push(requirement);
        self
    }

    /// Checks the section `section` (`"tasks"`, `"db.replica"`; `""` for the
    /// whole configuration) with `S`'s own [`Check`] — the checks between its
    /// fields, such as `pollers` at most `concurrency` — after the load, so
    /// its violations are in the one report.
    ///
    /// The section is read into `S` (a section no source sets reads as an
    /// empty table, as with [`Config::section`]). When it fails to read, its
    /// problems are reported, once, and it is not checked; when the target of
    /// [`extract`](Self::extract) already failed to read a key in it, it is
    /// skipped (those problems are in the report). Each [`Violation`] becomes
    /// a [`ProblemKind::Check`] at its key, with the variable that sets it,
    /// the source of its value ([`Source::Default`] when no source sets it) and
    /// the keys it depends on, with theirs. A violation at a key that already
    /// has a problem (a failed [`Require`] rule) is left out.
    ///
    /// ```
    /// use chassis_config::{Check, Loader, ProblemKind, Violation};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Pool {
    ///     min: u32,
    ///     max: u32,
    /// }
    ///
    /// impl Check for Pool {
    ///     fn check(&self) -> Vec<Violation> {
    ///         if self.max >= self.min {
    ///             return Vec::new();
    ///         }
    ///         vec![Violation::new("max", self.max, format_args!("at least min ({})", self.min)).related("min")]
    ///     }
    /// }
    ///
    /// let err = Loader::new("APP")
    ///     .no_dir()
    ///     .env([("APP_POOL__MIN", "5"), ("APP_POOL__MAX", "2")])
    ///     .check::<Pool>("pool")
    ///     .load()
    ///     .unwrap_err();
    /// let problem = &err.problems()[0];
    /// assert_eq!((problem.key(), problem.env_var()), (Some("pool.max"), Some("APP_POOL__MAX")));
    /// assert!(matches!(problem.kind(), ProblemKind::Check { related, .. } if related[0].key() == "pool.min"));
    /// ```
    pub fn check<S: DeserializeOwned + Check + 'static>(self, section: impl Into<String>) -> Self {
        self.check_with(section, |s: &S| s.check())
    }

    /// Like [`check`](Self::check), with a closure instead of a [`Check`]
    /// implementation (for a section type from a crate that does not implement
    /// it, or a check of this service's own): it returns every value out of
    /// line, at keys relative to the section.
    pub fn check_with<S, F>(mut self, section: impl Into<String>, check: F) -> Self
    where
        S: DeserializeOwned + 'static,
        F: Fn(&S) -> Vec<Violation> + Send + Sync + 'static,
    {
        let run: CheckFn = Arc::new(move |config: &Config, base: &[Seg]| {
            let (value, problems, _) = config.extract_at::<S>(base);
            match value {
                Some(value) if problems.is_empty() => Ok(check(&value)),
                _ => Err(problems),
            }
        });
        self.checks.push(SectionCheck { section: section.into(), run });
        self
    }

    /// Reads every source and checks the declared requirements, without a
    /// target type. Use [`Config::extract`] and [`Config::section`] on the result.
    ///
    /// # Errors
    /// Every problem with the sources (missing named files, malformed files,
    /// non-UTF-8 variables), every failed requirement and every problem the
    /// registered [checks](Self::check) find, in one [`Error`].
    pub fn load(mut self) -> Result<Config> {
        let checks = std::mem::take(&mut self.checks);
        let (config, mut problems) = self.build();
        problems.extend(config.check_requirements());
        config.run_checks(&checks, &mut problems);
        dedup(&mut problems);
        if problems.is_empty() { Ok(config) } else { Err(Error::new(problems, config.warnings)) }
    }

    /// Loads and extracts the whole configuration into `T`.
    ///
    /// # Errors
    /// Every problem — with the sources, with the values for `T` (missing,
    /// wrong type, invalid), with the declared requirements and with the
    /// registered [checks](Self::check) — in one [`Error`].
    pub fn extract<T: DeserializeOwned>(mut self) -> Result<Loaded<T>> {
        let checks = std::mem::take(&mut self.checks);
        let (config, mut problems) = self.build();
        let (value, extract_problems, warnings) = config.extract_at::<T>(&[]);
        // A value that already failed to read is not checked against rules too.
        let failed: BTreeSet<String> = extract_problems.iter().filter_map(|p| p.key.clone()).collect();
        problems.extend(extract_problems);
        problems.extend(config.check_requirements().into_iter().filter(|p| {
            !(matches!(p.kind, ProblemKind::Rule { .. }) && p.key.as_ref().is_some_and(|k| failed.contains(k)))
        }));
        config.run_checks(&checks, &mut problems);
        dedup(&mut problems);
        let mut all_warnings = config.warnings.clone();
        all_warnings.extend(warnings);
        match value {
            Some(value) if problems.is_empty() => Ok(Loaded { value, config, warnings: all_warnings }),
            _ => Err(Error::new(problems, all_warnings)),
        }
    }

    /// Like [`extract`](Self::extract), but on failure prints the report to
    /// stderr and exits with code 78 (`EX_CONFIG`). For `main`.
    pub fn extract_or_exit<T: DeserializeOwned>(self) -> Loaded<T> {
        self.extract().unwrap_or_else(|e| e.exit())
    }

    fn build(self) -> (Config, Vec<Problem>) {
        let mut sources = Sources::default();
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        #[allow(clippy::disallowed_methods)] // the one place the process environment is read
        let vars = self.env.unwrap_or_else(|| std::env::vars_os().collect());

        let mut aliases = Vec::new();
        let mut layers = Vec::new();

        // 1. declared defaults
        let mut defaults = Node::table();
        let requirement = sources.add(Source::Requirement);
        for req in &self.requirements {
            if let Target::Env(var) = &req.target {
                if env::key_for_var(&self.prefix, var).is_none() {
                    aliases.push((var.clone(), vec![var.to_ascii_lowercase()]));
                }
            }
            let (Some(path), Some(default)) = (req_path(&self.prefix, req), &req.default) else { continue };
            match default {
                Ok(value) => defaults.insert(&path, Node::from_json(value.clone(), requirement)),
                Err(e) => problems.push(Problem {
                    key: Some(path.join(".")),
                    env_var: None,
                    source: Some(Source::Requirement),
                    kind: ProblemKind::Source { message: format!("the declared default cannot be used: {e}") },
                }),
            }
        }
        layers.push(defaults);

        // 2. base files, 3. profile file
        let mut files: Vec<(PathBuf, bool)> = Vec::new();
        if let Some(dir) = &self.dir {
            files.extend(files::existing_variants(&dir.join("default")).into_iter().map(|p| (p, true)));
        }
        files.extend(self.files.iter().cloned());
        let profile = self.profile.clone().or_else(|| {
            let var = env::profile_var(&self.prefix);
            vars.iter().find(|(k, _)| k.to_str() == Some(var.as_str())).and_then(|(_, v)| match v.to_str() {
                Some(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
                Some(_) => None,
                None => {
                    problems.push(source_problem(format!("the value of {var} is not valid UTF-8")));
                    None
                }
            })
        });
        if let (Some(profile), Some(dir)) = (&profile, &self.dir) {
            if !profile.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                problems
                    .push(source_problem(format!("profile {profile:?} may hold only letters, digits, `-` and `_`")));
            } else {
                let found = files::existing_variants(&dir.join(profile));
                if found.is_empty() {
                    problems.push(source_problem(format!(
                        "profile `{profile}` is selected but {} does not exist",
                        dir.join(format!("{profile}.toml")).display()
                    )));
                }
                files.extend(found.into_iter().map(|p| (p, true)));
            }
        }
        for (path, required) in files {
            match files::read(&path) {
                Ok(Some(dict)) => {
                    let id = sources.add(Source::File { path: path.clone() });
                    layers.push(Node::Table(dict.into_iter().map(|(k, v)| (k, Node::from_figment(v, id))).collect()));
                }
                Ok(None) if !required => {}
                Ok(None) => problems.push(Problem {
                    key: None,
                    env_var: None,
                    source: Some(Source::File { path: path.clone() }),
                    kind: ProblemKind::Source { message: format!("config file {} does not exist", path.display()) },
                }),
                Err(message) => problems.push(Problem {
                    key: None,
                    env_var: None,
                    source: Some(Source::File { path }),
                    kind: ProblemKind::Source { message },
                }),
            }
        }

        // 4. environment
        layers.push(env::layer(&self.prefix, &vars, &aliases, &mut sources, &mut problems, &mut warnings));

        // 5. overrides
        let mut overrides = Node::table();
        let over = sources.add(Source::Override);
        for (key, value) in &self.overrides {
            let (Some(path), Ok(value)) = (split_key(key), value) else {
                let why = match value {
                    Err(e) => format!("the override cannot be serialized: {e}"),
                    Ok(_) => "an override key needs non-empty parts separated by `.`".to_owned(),
                };
                problems.push(Problem {
                    key: Some(key.clone()),
                    env_var: None,
                    source: Some(Source::Override),
                    kind: ProblemKind::Source { message: why },
                });
                continue;
            };
            overrides.insert(&path, Node::from_json(value.clone(), over));
        }
        layers.push(overrides);

        let mut merged = Node::table();
        for layer in &layers {
            merged.merge(layer.clone());
        }
        let config = Config {
            prefix: self.prefix,
            profile,
            sources,
            layers,
            merged,
            requirements: self.requirements,
            secrets: Mutex::new(BTreeSet::new()),
            warnings,
        };
        (config, problems)
    }
}

fn source_problem(message: String) -> Problem {
    Problem { key: None, env_var: None, source: None, kind: ProblemKind::Source { message } }
}

fn req_path(prefix: &str, req: &Require) -> Option<Vec<String>> {
    match &req.target {
        Target::Key(key) => split_key(key),
        Target::Env(var) => env::key_for_var(prefix, var).or_else(|| Some(vec![var.to_ascii_lowercase()])),
    }
}

fn dedup(problems: &mut Vec<Problem>) {
    let mut seen: Vec<Problem> = Vec::with_capacity(problems.len());
    problems.retain(|p| {
        let new = !seen.contains(p);
        if new {
            seen.push(p.clone());
        }
        new
    });
}

/// The merged configuration: every source, in precedence order.
pub struct Config {
    prefix: String,
    profile: Option<String>,
    sources: Sources,
    layers: Vec<Node>,
    merged: Node,
    requirements: Vec<Require>,
    /// Keys that extractions read into a `Secret` (redacted in the dump).
    secrets: Mutex<BTreeSet<String>>,
    warnings: Vec<Warning>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: use `effective()` for a redacted dump.
        f.debug_struct("Config")
            .field("prefix", &self.prefix)
            .field("profile", &self.profile)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The environment-variable prefix, without the trailing `_`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The selected profile, if any.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    /// Warnings from reading the sources (unusable variable names).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Whether any source sets `key` (`"db.url"`).
    pub fn contains(&self, key: &str) -> bool {
        split_key(key).is_some_and(|path| self.merged.get(&key_segs(&path)).is_some())
    }

    /// Extracts the whole configuration into `T`.
    ///
    /// # Errors
    /// Every missing, mistyped or invalid value for `T`, in one [`Error`].
    pub fn extract<T: DeserializeOwned>(&self) -> Result<T> {
        let (value, problems, warnings) = self.extract_at(&[]);
        finish(value, problems, warnings)
    }

    /// Extracts one section (`"tasks"`, `"db.replica"`) into `T`. A section no
    /// source sets reads as an empty table, so a `T` with defaults still loads.
    ///
    /// # Errors
    /// Every missing, mistyped or invalid value for `T`, with full key paths, in
    /// one [`Error`]; an empty section name is an error too.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let Some(path) = split_key(key) else {
            let message = format!("{key:?} is not a section name: it needs non-empty parts separated by `.`");
            return Err(Error::new(vec![source_problem(message)], Vec::new()));
        };
        let (value, problems, warnings) = self.extract_at(&key_segs(&path));
        finish(value, problems, warnings)
    }

    /// Every key with its effective value (secrets redacted), its source and
    /// the values it overrode. Keys only the target type's defaults set are not
    /// in it; [`Loaded::effective`] has those too.
    pub fn effective(&self) -> Effective {
        effective::build(self, None)
    }

    pub(crate) fn layers(&self) -> &[Node] {
        &self.layers
    }

    pub(crate) fn sources(&self) -> &Sources {
        &self.sources
    }

    pub(crate) fn secrets(&self) -> BTreeSet<String> {
        self.secrets.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The extraction engine: deserialize; on a problem, record it, put a
    /// stand-in in its place and go again, so one report holds every problem.
    fn extract_at<T: DeserializeOwned>(&self, base: &[Seg]) -> (Option<T>, Vec<Problem>, Vec<Warning>) {
        let mut tree = self.merged.get(base).cloned().unwrap_or_else(Node::table);
        let mut problems = Vec::new();
        let mut previous: Option<Vec<Seg>> = None;
        // Keys left out because no stand-in passed the target type's checks.
        let mut removed: Vec<Vec<Seg>> = Vec::new();
        let mut value = None;
        let mut record = None;
        for _ in 0..MAX_PASSES {
            let ctx = Ctx::new(&self.sources);
            let result = T::deserialize(ValueDe::new(&tree, base.to_vec(), &ctx));
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
            match tree.get_mut(rel) {
                Some(Node::Placeholder(n)) if usize::from(*n) + 1 < crate::de::STRING_STAND_INS.len() => {
                    *n += 1;
                    continue;
                }
                Some(Node::Placeholder(_)) => {
                    // No stand-in passes the type's own checks (`1..=10000`, a
                    // filter syntax): leave the key out, so its default stands in.
                    if !removed.iter().any(|r| r == rel) && remove(&mut tree, rel) {
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
            if previous.as_ref() == Some(&key) || !patch(&mut tree, rel, &error.kind) {
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

    /// Runs the registered section checks; see [`Loader::check`].
    fn run_checks(&self, checks: &[SectionCheck], problems: &mut Vec<Problem>) {
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
            let raw = resolve(&self.merged, &path);
            let source =
                self.merged.get(&raw).and_then(Node::source).map_or(Source::Default, |s| self.sources.get(s).clone());
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

    fn check_requirements(&self) -> Vec<Problem> {
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
            let Some(node) = self.merged.get(&segs) else {
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

fn finish<T>(value: Option<T>, problems: Vec<Problem>, warnings: Vec<Warning>) -> Result<T> {
    match value {
        Some(value) if problems.is_empty() => Ok(value),
        _ => Err(Error::new(problems, warnings)),
    }
}

/// The path as the tree spells it. A key path from the target type names its
/// fields (`poolSize`, `password`); the tree holds keys as the sources wrote
/// them (`poolsize` from `APP_POOLSIZE`, `password_file` from
/// `APP_PASSWORD_FILE`), which the deserializer matched loosely.
fn resolve(tree: &Node, rel: &[Seg]) -> Vec<Seg> {
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

/// A loaded, typed configuration, with the merged sources it came from.
#[derive(Debug)]
pub struct Loaded<T> {
    value: T,
    config: Config,
    warnings: Vec<Warning>,
}

impl<T> Loaded<T> {
    /// The typed configuration.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The typed configuration, by value.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The merged sources, to extract more sections from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Keys that were set but that nothing reads (likely typos). Log them once
    /// logging is up.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Extracts one section into another type; see [`Config::section`].
    ///
    /// # Errors
    /// As [`Config::section`].
    pub fn section<S: DeserializeOwned>(&self, key: &str) -> Result<S> {
        self.config.section(key)
    }

    /// Every key with its effective value (secrets redacted), its source and
    /// what it overrode — including the keys set only by `T`'s defaults.
    pub fn effective(&self) -> Effective
    where
        T: Serialize,
    {
        let typed = serde_json::to_value(&self.value).ok();
        effective::build(&self.config, typed.as_ref())
    }
}

impl<T> std::ops::Deref for Loaded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}
