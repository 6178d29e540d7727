//! The crate's metrics, described once (`# HELP` lines) before first use.

use std::sync::Once;

/// Gauge `chassis_discovery_instances{service}`.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) const INSTANCES: &str = "chassis_discovery_instances";
/// Counter `chassis_discovery_resolve_errors_total{service}`.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) const RESOLVE_ERRORS: &str = "chassis_discovery_resolve_errors_total";
/// Counter `chassis_discovery_registrations_total{service}`.
pub(crate) const REGISTRATIONS: &str = "chassis_discovery_registrations_total";

/// Describes the metrics to the installed recorder (once per process).
pub(crate) fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_gauge!(INSTANCES, "Live instances of a service in the client's cached list.");
        metrics::describe_counter!(
            RESOLVE_ERRORS,
            "Failed resolutions and broken watches of a service; the last good list is kept."
        );
        metrics::describe_counter!(REGISTRATIONS, "Registrations of an instance of this service in the registry.");
    });
}

pub(crate) fn registered(service: &str) {
    describe();
    metrics::counter!(REGISTRATIONS, "service" => service.to_owned()).increment(1);
}

#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) fn resolve_error(service: &str) {
    describe();
    metrics::counter!(RESOLVE_ERRORS, "service" => service.to_owned()).increment(1);
}

#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) fn instances(service: &str, n: usize) {
    describe();
    #[allow(clippy::cast_precision_loss)] // instance counts are small
    metrics::gauge!(INSTANCES, "service" => service.to_owned()).set(n as f64);
}
