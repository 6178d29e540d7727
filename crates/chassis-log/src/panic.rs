//! The panic hook: one ERROR line per panic, before the default hook runs.

use std::panic::{self, PanicHookInfo};
use std::sync::Once;

static INSTALL: Once = Once::new();

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
            tracing::error!(target: "panic", location = %location, "panicked at {location}: {message}");
        }
        None => tracing::error!(target: "panic", "panicked: {message}"),
    }
}
