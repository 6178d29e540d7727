//! [`boot`]: configuration, logging and the service, in one call for `main`.

use serde::de::DeserializeOwned;

use crate::{Config, Service};

/// What [`boot`] started.
#[derive(Debug)]
#[non_exhaustive]
pub struct Boot<T> {
    /// The loaded configuration (sections for other crates: `config.section("tasks")`).
    pub config: chassis_config::Loaded<T>,
    /// The service, built from the `service` section, metrics recorder installed.
    pub service: Service,
    /// With the `otel` feature: the span export (section `otel`); dropping it
    /// flushes the last spans. `None` when `otel.enabled` is false.
    #[cfg(feature = "otel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
    pub otel: Option<crate::otel::Guard>,
    /// Keeps logging alive; drop it last (it flushes).
    pub log: chassis_log::Guard,
}

/// Loads `T` with `loader`, starts logging from its `log` section (the service
/// name and version filled in), logs the configuration's warnings, and builds
/// the [`Service`] from its `service` section.
///
/// The checks between the fields of the `service` and `log` sections (see
/// their [`Check`](chassis_config::Check) implementations) run with the load;
/// register those of other sections on `loader`
/// (`.check::<chassis_tasks::Config>("tasks")`, see
/// [`Loader::check`](chassis_config::Loader::check)).
///
/// With the `otel` feature, spans are also exported as the `otel` section
/// and the `OTEL_*` variables say (`chassis_service::otel::layer`).
///
/// A bad configuration prints one report of every problem — missing values,
/// wrong types, values out of range, values out of line with each other — to
/// stderr and exits with 78 (`EX_CONFIG`); logging (or the span export) that
/// cannot start exits with 1.
///
/// ```no_run
/// # #[derive(serde::Deserialize)] struct Settings {}
/// # async fn example() {
/// let boot = chassis_service::boot::<Settings>("billing", "1.4.2", chassis_config::Loader::new("APP"));
/// boot.service.run().await.unwrap_or_else(|e| { eprintln!("{e}"); std::process::exit(1) });
/// # }
/// ```
pub fn boot<T: DeserializeOwned>(name: &str, version: &str, loader: chassis_config::Loader) -> Boot<T> {
    let loader = loader.check::<chassis_log::Config>("log").check::<Config>("service");
    let config = loader.extract_or_exit::<T>();
    let mut log: chassis_log::Config = config.section("log").unwrap_or_else(|e| e.exit());
    if log.service == chassis_log::Config::default().service {
        log.service = name.to_owned();
    }
    version.clone_into(&mut log.version);
    #[cfg(feature = "otel")]
    let (extra, otel) = {
        let otel: crate::otel::Config = config.section("otel").unwrap_or_else(|e| e.exit());
        match crate::otel::layer(&otel, &log.service, version) {
            Ok(Some((layer, guard))) => (Some(layer), Some(guard)),
            Ok(None) => (None, None),
            Err(e) => {
                #[allow(clippy::print_stderr)] // logging is not started yet
                {
                    eprintln!("{name}: cannot start the span export: {e}");
                }
                std::process::exit(1)
            }
        }
    };
    #[cfg(not(feature = "otel"))]
    let extra = None;
    let guard = chassis_log::init_with(&log, extra).unwrap_or_else(|e| {
        #[allow(clippy::print_stderr)] // logging is what failed
        {
            eprintln!("{name}: cannot start logging: {e}");
        }
        std::process::exit(1)
    });
    for warning in config.warnings() {
        tracing::warn!(%warning, "configuration");
    }
    let service_config: Config = config.section("service").unwrap_or_else(|e| e.exit());
    Boot {
        service: Service::new(name, version, service_config),
        config,
        #[cfg(feature = "otel")]
        otel,
        log: guard,
    }
}
