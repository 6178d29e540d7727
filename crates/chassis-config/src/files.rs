//! Configuration files: TOML always, YAML and JSON behind features, parsed by figment.

use std::path::{Path, PathBuf};

use figment::providers::Format;
use figment::value::Dict;

/// The extensions tried for `<dir>/default` and `<dir>/<profile>`.
const EXTENSIONS: [&str; 4] = ["toml", "yaml", "yml", "json"];

/// The files that exist among `<base>.toml`, `.yaml`, `.yml` and `.json`.
pub(crate) fn existing_variants(base: &Path) -> Vec<PathBuf> {
    EXTENSIONS.iter().map(|ext| base.with_extension(ext)).filter(|p| p.is_file()).collect()
}

/// Reads and parses a file; `Ok(None)` when it does not exist. The error names the
/// file and, for a malformed one, the line and column.
pub(crate) fn read(path: &Path) -> Result<Option<Dict>, String> {
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read config file {shown}: {e}")),
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        format!("config file {shown} is not valid UTF-8 (bad byte at offset {})", e.utf8_error().valid_up_to())
    })?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let parsed = match ext.as_deref() {
        Some("toml") => parse::<figment::providers::Toml>(&text),
        Some("yaml" | "yml") => yaml(&text),
        Some("json") => json(&text),
        _ => {
            return Err(format!("config file {shown} has no known extension (.toml, .yaml, .yml or .json)"));
        }
    };
    parsed.map(Some).map_err(|e| format!("config file {shown} is malformed: {e}"))
}

fn parse<F: Format>(text: &str) -> Result<Dict, String>
where
    F::Error: std::fmt::Display,
{
    F::from_str::<Dict>(text).map_err(|e| without_snippet(&e.to_string()))
}

#[cfg(feature = "yaml")]
fn yaml(text: &str) -> Result<Dict, String> {
    parse::<figment::providers::Yaml>(text)
}

#[cfg(not(feature = "yaml"))]
fn yaml(_: &str) -> Result<Dict, String> {
    Err("YAML support is off (enable the `yaml` feature of chassis-config)".into())
}

#[cfg(feature = "json")]
fn json(text: &str) -> Result<Dict, String> {
    parse::<figment::providers::Json>(text)
}

#[cfg(not(feature = "json"))]
fn json(_: &str) -> Result<Dict, String> {
    Err("JSON support is off (enable the `json` feature of chassis-config)".into())
}

/// Parser messages quote the offending line, which may hold a secret: keep the
/// position and the diagnosis, drop the quoted source.
fn without_snippet(message: &str) -> String {
    message
        .lines()
        .map(str::trim_end)
        .filter(|line| {
            let t = line.trim_start();
            let quoted =
                t.starts_with('|') || t.split_once(" |").is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
            !t.is_empty() && !quoted
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_keep_position_and_drop_the_quoted_line() {
        let err = parse::<figment::providers::Toml>("password = \"hunter2\nx = 1").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
