//! [`Loader`]: gathers the sources in precedence order into a [`Merged`] tree.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use chassis_bounds::{Check, Violation};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checks::{CheckFn, SectionCheck, dedup};
use crate::env;
use crate::error::{Error, Problem, ProblemKind, Result, source_problem};
use crate::files;
use crate::loaded::Loaded;
use crate::merged::Merged;
use crate::node::{Node, Seg, split_key};
use crate::require::{Require, Target, req_path};
use crate::source::{Source, Sources};

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
    /// empty table, as with [`Merged::section`]). When it fails to read, its
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
        let run: CheckFn = Arc::new(move |config: &Merged, base: &[Seg]| {
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
    /// target type. Use [`Merged::extract`] and [`Merged::section`] on the result.
    ///
    /// # Errors
    /// Every problem with the sources (missing named files, malformed files,
    /// non-UTF-8 variables), every failed requirement and every problem the
    /// registered [checks](Self::check) find, in one [`Error`].
    pub fn load(mut self) -> Result<Merged> {
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
            Some(value) if problems.is_empty() => Ok(Loaded::new(value, config, all_warnings)),
            _ => Err(Error::new(problems, all_warnings)),
        }
    }

    /// Like [`extract`](Self::extract), but on failure prints the report to
    /// stderr and exits with code 78 (`EX_CONFIG`). For `main`.
    pub fn extract_or_exit<T: DeserializeOwned>(self) -> Loaded<T> {
        self.extract().unwrap_or_else(|e| e.exit())
    }

    fn build(self) -> (Merged, Vec<Problem>) {
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
        layers.push((defaults, sources.next_id()));

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
            match files::read(&path, sources.next_id()) {
                Ok(Some(table)) => {
                    sources.add(Source::File { path: path.clone() });
                    layers.push((Node::Table(table), sources.next_id()));
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
        let environment = env::layer(&self.prefix, &vars, &aliases, &mut sources, &mut problems, &mut warnings);
        layers.push((environment, sources.next_id()));

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
        layers.push((overrides, sources.next_id()));
        let merged = Merged::new(self.prefix, profile, sources, layers, self.requirements, warnings);
        (merged, problems)
    }
}
