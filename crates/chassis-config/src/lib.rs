//! Layered, typed configuration that fails fast with one complete report.
//!
//! ```
//! use chassis_config::{Loader, Require, Rule, Secret};
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! struct Settings {
//!     name: String,
//!     #[serde(default)]
//!     db: Db,
//! }
//!
//! #[derive(Debug, Default, Deserialize)]
//! #[serde(default)]
//! struct Db {
//!     url: Option<Secret<String>>,
//!     pool_size: u16,
//!     hosts: Vec<String>,
//! }
//!
//! let loaded = Loader::new("APP")
//!     .dir("config") // config/default.toml and config/$APP_PROFILE.toml, if present
//!     .env([
//!         ("APP_NAME", "billing"),
//!         ("APP_DB__POOL_SIZE", "20"),
//!         ("APP_DB__HOSTS", "a.internal, b.internal"),
//!     ])
//!     .require(Require::key("name").rule(Rule::not_empty()))
//!     .extract::<Settings>()?;
//! assert_eq!(loaded.db.pool_size, 20);
//! assert_eq!(loaded.db.hosts, ["a.internal", "b.internal"]);
//! # Ok::<(), chassis_config::Error>(())
//! ```
//!
//! # Sources and precedence
//! Lowest first; see [`Loader`]:
//! serde defaults and [`Require::default`] < `config/default.toml` and the
//! files named with [`Loader::file`] < the profile file `config/<profile>.toml`
//! (`<PREFIX>_PROFILE`) < environment variables `<PREFIX>_…` < [`Loader::set`].
//!
//! # TOML dates and times
//! A TOML date, time or date-time (`starts_at = 1979-05-27T07:32:00Z`,
//! `day = 1979-05-27`, `at = 07:32:00`) is its RFC 3339 text, as written
//! (`"1979-05-27T07:32:00Z"`): it reads into a `String`, into any type that
//! deserializes from that text (`time::OffsetDateTime` with
//! `time::serde::rfc3339`, `chrono::DateTime`), and into `toml::value::Datetime`;
//! the [`Effective`] dump shows the text. The same text from an environment
//! variable reads alike.
//!
//! # Environment variables
//! - `__` separates levels and a single `_` stays in the name:
//!   `APP_DB__POOL_SIZE` sets `db.pool_size`. Names are matched to fields
//!   ignoring case, `_` and `-`, so serde renames (`poolSize`) are honoured.
//! - Values are text, parsed for the type they are read into: `APP_VERSION=1.10`
//!   stays `"1.10"` for a `String` and is `1.1` for an `f64`; booleans read
//!   `true/false`, `yes/no`, `on/off`, `1/0`; lists read `a,b,c` or a JSON array
//!   `["a","b"]`; tables read a JSON object; an empty value is `None` for an
//!   `Option`; enum variants match ignoring case.
//! - Where serde reads a value without naming a type (`#[serde(flatten)]`,
//!   untagged and internally tagged enums, `serde_json::Value`), text reads as
//!   what a config file would hold: `true`/`false`, a number written as Rust
//!   prints it (`20`, `0.5`; `007` and `1.10` stay text), a JSON array or
//!   object; anything else is text.
//! - `<NAME>_FILE` reads the value of `<name>` from a file (a mounted
//!   Kubernetes or Docker secret), one trailing newline removed — unless the
//!   target has a field `<name>_file` of its own.
//! - A variable with the prefix that maps to no field is a [`Warning`], with a
//!   suggestion when a field is close.
//!
//! # Errors
//! A failed load returns one [`Error`] listing every problem — missing values,
//! wrong types, failed rules, unreadable or malformed files — each with its key,
//! the variable that would set it, the source of the bad value and what was
//! expected. [`Error::exit`] prints it and exits with code 78 (`EX_CONFIG`).
//!
//! Checks between fields of a section (`pollers` at most `concurrency`) are in
//! the same report: register them with [`Loader::check`] (a section type that
//! implements [`Check`]) or [`Loader::check_with`] (a closure). Each runs once
//! its section has deserialized — a section that failed to is already in the
//! report and is not checked as well — and each [`Violation`] is reported at
//! its key, with its variable, its source and the keys it depends on
//! ([`ProblemKind::Check`]).
//!
//! # Secrets
//! [`Secret<T>`] prints and serializes as `***`; keys read into one are redacted
//! in the [`Effective`] dump and in error messages.
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `yaml` | `.yaml` / `.yml` files | No |
//! | `json` | `.json` files | No |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod checks;
mod de;
mod effective;
mod env;
mod error;
mod extract;
mod files;
mod loaded;
mod loader;
mod merged;
mod node;
mod require;
mod source;

pub use chassis_bounds::{Check, REDACTED, Secret, Violation};
pub use effective::{Effective, Entry, Overridden};
pub use error::{EX_CONFIG, Error, Problem, ProblemKind, Related, Result, Warning};
pub use loaded::Loaded;
pub use loader::Loader;
pub use merged::Merged;
pub use require::{Require, Rule};
pub use source::Source;

/// The README's code blocks, compiled and run as doctests so that they keep
/// matching the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
