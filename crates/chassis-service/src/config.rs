//! [`Config`]: the `service` section.

use std::net::SocketAddr;

use chassis_bounds::{Check, Violation};
use serde::{Deserialize, Serialize};

mod bounds;

/// Service runtime configuration: the `service` section.
///
/// Its [`Check`] (run by [`boot`](crate::boot)) finds the API and the admin
/// server on the same address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Where the service's own HTTP API listens. Default: `0.0.0.0:8080`.
    pub http_addr: SocketAddr,
    /// Where the admin server (`/livez`, `/readyz`, `/startupz`, `/metrics`,
    /// `/info`) listens. Default: `0.0.0.0:9090`.
    pub admin_addr: SocketAddr,
    /// How long, after SIGTERM, the API keeps accepting and serving new
    /// connections while readiness already fails, so that load balancers
    /// (a Kubernetes Service's endpoints, an ingress) stop routing here
    /// before the port closes; in seconds. Components keep running too. A
    /// second SIGTERM or SIGINT, or [`Service::drain_now_token`](crate::Service::drain_now_token),
    /// ends it early. `0`: stop accepting at once. Default: 5.
    pub drain_delay_secs: u64,
    /// How long, after the drain delay, components and in-flight requests may
    /// take to finish, in seconds. Default: 30. The whole shutdown takes up
    /// to `drain_delay_secs + shutdown_deadline_secs`: give the orchestrator
    /// at least that (Kubernetes' `terminationGracePeriodSeconds`, 30 by
    /// default, counts from SIGTERM). `0`: in-flight work is abandoned at
    /// once; the largest values (up to `u64::MAX`) wait without limit.
    pub shutdown_deadline_secs: u64,
    /// A readiness check that takes longer than this fails, in milliseconds,
    /// at least 1 (0 would fail every check). Default: 2000.
    #[serde(deserialize_with = "bounds::at_least::<_, u64, 1>")]
    pub check_timeout_ms: u64,
    /// The middleware stack of the API and admin servers (request spans and
    /// lines, request ids, timeout, body limit, panic guard): the section
    /// `service.http`. Default: [`http::Config::default`](crate::http::Config).
    pub http: crate::http::Config,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
            drain_delay_secs: 5,
            shutdown_deadline_secs: 30,
            check_timeout_ms: 2000,
            http: crate::http::Config::default(),
        }
    }
}

/// The check between fields: `admin_addr` differs from `http_addr` (unless
/// both ask for any free port, port 0), at the key `admin_addr`.
impl Check for Config {
    fn check(&self) -> Vec<Violation> {
        if self.admin_addr == self.http_addr && self.admin_addr.port() != 0 {
            let expected = format_args!("an address other than http_addr ({}): both servers listen", self.http_addr);
            return vec![Violation::new("admin_addr", self.admin_addr, expected).related("http_addr")];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_and_the_admin_server_on_one_address_is_a_check_at_admin_addr() {
        let mut config = Config::default();
        assert!(config.check().is_empty());
        config.admin_addr = config.http_addr;
        let found = config.check();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].key.as_str(), found[0].related.as_slice()),
            ("admin_addr", ["http_addr".to_owned()].as_slice())
        );
        config.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.admin_addr = config.http_addr;
        assert!(config.check().is_empty(), "port 0: each gets its own free port");
    }
}
