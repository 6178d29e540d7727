//! [`Config`]: the `log` section.

use std::collections::BTreeMap;

use chassis_bounds::{Check, Violation};
use serde::{Deserialize, Serialize};

mod bounds;

/// Logging configuration: the `log` section of a chassis configuration.
///
/// Every field has a default, so an empty section is valid. Deserializing
/// rejects malformed filter directives and a line limit under 4096, at their
/// keys, so chassis-config reports them with every other problem; its
/// [`Check`] (`Loader::check::<chassis_log::Config>("log")`, which
/// `chassis_service::boot` registers) finds more `labels` than the `gcp`
/// format can carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The service name, on every line (`service`). Default: `"app"`.
    pub service: String,
    /// The service version, on every line (`version`). Default: `""`.
    pub version: String,
    /// Output format. Default: `pretty`.
    pub format: Format,
    /// Filter directives in `RUST_LOG` syntax (`info,my_crate=debug`). Default: `"info"`.
    #[serde(deserialize_with = "bounds::filter")]
    pub filter: String,
    /// Whether a set `RUST_LOG` overrides [`filter`](Self::filter). Default: `true`.
    pub use_rust_log: bool,
    /// Where lines go. Default: `stdout`.
    pub output: Output,
    /// Write from a background thread, so logging never blocks on the terminal
    /// or pipe; nothing is dropped, and the [`Guard`](crate::Guard) flushes on
    /// drop. Default: `false`.
    pub non_blocking: bool,
    /// Static labels on every line: top-level keys in `json`, entries of
    /// `logging.googleapis.com/labels` in `gcp` (at most 61). Default: none.
    pub labels: BTreeMap<String, String>,
    /// The Google Cloud project id; with it, `gcp` lines in a trace context carry
    /// `logging.googleapis.com/trace`. Default: none.
    pub gcp_project: Option<String>,
    /// Longest line in bytes, at least 4096; a longer line has its longest
    /// string values cut to one length, so that it fills this limit, and carries
    /// `"truncated":true`. Default: 262144 (256 KiB, Cloud Logging's limit).
    #[serde(deserialize_with = "bounds::at_least::<_, usize, 4096>")]
    pub max_line_bytes: usize,
    /// Log panics as one ERROR line before the default panic hook runs. Default: `true`.
    pub panic_hook: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service: "app".into(),
            version: String::new(),
            format: Format::default(),
            filter: "info".into(),
            use_rust_log: true,
            output: Output::default(),
            non_blocking: false,
            labels: BTreeMap::new(),
            gcp_project: None,
            max_line_bytes: 256 * 1024,
            panic_hook: true,
        }
    }
}

impl Config {
    /// A config for `service` at `version`, everything else default.
    pub fn new(service: impl Into<String>, version: impl Into<String>) -> Self {
        Self { service: service.into(), version: version.into(), ..Self::default() }
    }

    /// Sets the format.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }
}

/// The check between fields: with the `gcp` format, at most 61 `labels`
/// (Cloud Logging takes 64, three are chassis'), at the key `labels`.
impl Check for Config {
    fn check(&self) -> Vec<Violation> {
        let max = crate::layer::MAX_STATIC_LABELS;
        if self.format == Format::Gcp && self.labels.len() > max {
            let found = format_args!("{} labels", self.labels.len());
            return vec![
                Violation::new("labels", found, format_args!("at most {max} labels with format = \"gcp\""))
                    .related("format"),
            ];
        }
        Vec::new()
    }
}

/// The shape of each line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Format {
    /// Multi-line, human-friendly, for local development; colours on a terminal.
    #[default]
    Pretty,
    /// One short line per event, human-readable.
    Compact,
    /// One JSON object per line, span fields at the top level.
    Json,
    /// One JSON object per line, as Google Cloud Logging's agent reads it.
    Gcp,
}

/// Where lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Output {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}
