//! [`Config`]: the `service.http` section.

use serde::{Deserialize, Deserializer, Serialize};

/// The level of the request line of a 4xx response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ClientErrorLevel {
    /// INFO (the default): a 4xx is the client's mistake, not the service's.
    #[default]
    Info,
    /// WARN: for services whose clients are trusted, where a 4xx means a bug.
    Warn,
}

/// The API's middleware stack: the `service.http` section.
///
/// Every request to the API gets a request span (`http.request.method`,
/// `http.route`, `url.path`, `request_id`, `http.response.status_code`, and
/// `traceparent`: the caller's W3C trace continued, or a new one), one
/// log line at its end (`message: "request"`, `latency_ms`; ERROR for a 5xx,
/// [`client_error_level`](Self::client_error_level) for a 4xx, INFO
/// otherwise), an `x-request-id` (taken from the request or generated, and
/// returned), a timeout, a body size limit, and a guard that turns a
/// panicking handler into a 500.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The longest a handler may take to produce the response head, in
    /// milliseconds; after it the client gets [`timeout_status`](Self::timeout_status)
    /// with a JSON body and the handler is dropped. `0`: no limit. Default: 30000.
    pub request_timeout_ms: u64,
    /// The status of a timed-out request: `408` (Request Timeout) or `503`
    /// (Service Unavailable, which some clients and proxies retry). Default: 408.
    #[serde(deserialize_with = "timeout_status")]
    pub timeout_status: u16,
    /// The largest request body, in bytes: a larger `Content-Length` gets
    /// 413 before the handler runs, a larger streamed body fails the
    /// handler's body extractor with 413. Default: 2097152 (2 MiB).
    pub body_limit_bytes: usize,
    /// The level of the request line of a 4xx response: `info` or `warn`.
    /// Default: `info`.
    pub client_error_level: ClientErrorLevel,
    /// Whether each request writes its line at its end. The span (and so the
    /// request id on the handler's own lines) stays either way. Default: true.
    pub log_requests: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            request_timeout_ms: 30_000,
            timeout_status: 408,
            body_limit_bytes: 2 * 1024 * 1024,
            client_error_level: ClientErrorLevel::Info,
            log_requests: true,
        }
    }
}

fn timeout_status<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let status = u16::deserialize(d)?;
    if matches!(status, 408 | 503) {
        Ok(status)
    } else {
        Err(chassis_bounds::out_of_range(serde::de::Unexpected::Unsigned(status.into()), "408 or 503"))
    }
}
