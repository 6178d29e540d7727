//! The panic hook: one ERROR line per panic, before the default hook runs.

use std::cell::RefCell;
use std::panic::{self, PanicHookInfo};
use std::sync::Once;

static INSTALL: Once = Once::new();

/// The target of the hook's line; with [`MODULE`], how the JSON layer knows it.
pub(crate) const TARGET: &str = "panic";

/// The module the hook's line is logged from.
pub(crate) const MODULE: &str = module_path!();

/// Where a panic happened: the file as the panic reports it (relative for the
/// workspace's own crates, as events' files are), the line, and the function
/// when the backtrace names it.
#[derive(Debug)]
pub(crate) struct Site {
    pub(crate) file: String,
    pub(crate) line: u32,
    pub(crate) function: Option<String>,
}

thread_local! {
    /// The site of the panic being logged on this thread, while its line is written.
    static SITE: RefCell<Option<Site>> = const { RefCell::new(None) };
}

/// Calls `f` with the site of the panic being logged on this thread, if any.
pub(crate) fn with_site<R>(f: impl FnOnce(Option<&Site>) -> R) -> R {
    SITE.with(|site| match site.try_borrow() {
        Ok(site) => f(site.as_ref()),
        Err(_) => f(None),
    })
}

/// Chains a hook that logs the panic's message and location at ERROR level in
/// front of the current hook. Installing twice is a no-op.
pub fn install_panic_hook() {
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            log_panic(info);
            previous(info);
        }));
    });
}

fn log_panic(info: &PanicHookInfo<'_>) {
    let payload = info.payload();
    let message =
        payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    let message = message.unwrap_or("Box<dyn Any>");
    match info.location() {
        Some(location) => {
            let site = Site {
                file: location.file().to_owned(),
                line: location.line(),
                function: function_at(location.file(), location.line()),
            };
            let _ = SITE.try_with(|s| s.replace(Some(site)));
            tracing::error!(target: "panic", location = %location, "panicked at {location}: {message}");
            let _ = SITE.try_with(|s| s.take());
        }
        None => tracing::error!(target: "panic", "panicked: {message}"),
    }
}

/// The function at `file:line`, from a backtrace of the panicking thread: the
/// symbol of the first frame located there. `None` without debug info.
///
/// A backtrace costs a little time, once per panic; `Backtrace::frames` is not
/// stable, so its display is read.
fn function_at(file: &str, line: u32) -> Option<String> {
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    symbol_at(&trace, file, line)
}

/// In a displayed backtrace (`  N: symbol` lines, each followed by
/// `at path:line:column`), the symbol located at `file:line`, below the panic
/// machinery's own frames.
fn symbol_at(trace: &str, file: &str, line: u32) -> Option<String> {
    let mut symbol: Option<&str> = None;
    // Frames above the panic site: the hook, std's and core's panicking.
    let start = trace.find("panicking::").map_or(0, |at| trace[..at].rfind('\n').map_or(0, |nl| nl + 1));
    for text in trace[start..].lines().map(str::trim) {
        if let Some(at) = text.strip_prefix("at ") {
            let mut parts = at.rsplitn(3, ':');
            let (_column, at_line, path) = (parts.next(), parts.next(), parts.next());
            if at_line.and_then(|l| l.parse::<u32>().ok()) == Some(line) && path.is_some_and(|p| same_file(p, file)) {
                return symbol.map(|s| strip_hash(s).to_owned());
            }
        } else if !text.is_empty() {
            // `12: name`, or a further (inlined) symbol of the same frame.
            let name = match text.split_once(": ") {
                Some((n, name)) if n.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => text,
            };
            symbol = Some(name);
        }
    }
    None
}

/// Whether a backtrace's path and a panic's file name the same file. The
/// backtrace shows paths absolute or relative to the working directory
/// (`./tests/x.rs`), the panic relative to the workspace
/// (`crates/c/tests/x.rs`): one must end with the other, at a `/`.
fn same_file(path: &str, file: &str) -> bool {
    let path = path.trim_start_matches("./");
    let file = file.trim_start_matches("./");
    let ends =
        |long: &str, short: &str| long.strip_suffix(short).is_some_and(|head| head.is_empty() || head.ends_with('/'));
    ends(path, file) || ends(file, path)
}

/// `path::to::f::h0123456789abcdef` → `path::to::f`.
fn strip_hash(symbol: &str) -> &str {
    match symbol.rsplit_once("::h") {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name,
        _ => symbol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "   0: std::backtrace::Backtrace::force_capture
             at /rustc/abc/library/std/src/backtrace.rs:312:13
   1: chassis_log::panic::function_at::h0123456789abcdef
             at ./crates/chassis-log/src/panic.rs:80:17
   2: core::panicking::panic_fmt
             at /rustc/abc/library/core/src/panicking.rs:75:14
   3: app::orders::place
             at ./src/orders.rs:42:9
      app::orders::handle
             at ./src/orders.rs:7:5
   4: main
   5: std::panicking::catch_unwind
             at ./src/orders.rs:42:9
";

    #[test]
    fn the_symbol_at_the_panic_site_is_found() {
        assert_eq!(symbol_at(TRACE, "src/orders.rs", 42).as_deref(), Some("app::orders::place"));
        assert_eq!(symbol_at(TRACE, "src/orders.rs", 7).as_deref(), Some("app::orders::handle"));
        assert_eq!(symbol_at(TRACE, "crates/app/src/orders.rs", 42).as_deref(), Some("app::orders::place"));
        assert_eq!(symbol_at(TRACE, "crates/chassis-log/src/panic.rs", 80), None, "the hook's own frames are skipped");
        assert_eq!(symbol_at(TRACE, "src/orders.rs", 43), None);
        assert_eq!(symbol_at(TRACE, "rders.rs", 42), None, "whole path components only");
        assert_eq!(symbol_at("", "src/orders.rs", 42), None);
    }
}
