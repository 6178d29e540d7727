//! [`Config`]: the `breaker` section, validated when a breaker is built.

use chassis_bounds::{Check, Violation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod bounds;

/// Breaker configuration: the `breaker` section of a chassis configuration.
///
/// Every field has a default. Deserializing rejects a value out of its field's
/// range, at its key (so chassis-config reports it with the others); its
/// [`Check`] finds the fields that depend on each other (`failure_rate.min_calls`
/// over `failure_rate.window`, `backoff.max_ms` under `open_timeout_ms`), so
/// `Loader::check::<chassis_breaker::Config>("breaker")` puts them in the same
/// report; [`Config::validate`] (called when a breaker is built) checks
/// everything again, with the field named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Consecutive failures that open a closed breaker (the default policy,
    /// like the Python original's), at least 1. Ignored when
    /// [`failure_rate`](Self::failure_rate) is set. Default: 5.
    #[serde(deserialize_with = "bounds::at_least::<_, u32, 1>")]
    pub failure_threshold: u32,
    /// Open on a failure rate over the last calls instead of consecutive
    /// failures. Default: none.
    pub failure_rate: Option<FailureRate>,
    /// Count calls slower than a threshold as failures (consecutive policy) or
    /// against a slow-call rate (failure-rate policy). Default: none.
    pub slow_call: Option<SlowCall>,
    /// How long an open breaker rejects calls before letting trial calls
    /// through, in milliseconds, 1 to 2⁴⁰ − 1. Default: 10 000 (the original's 10 s).
    #[serde(deserialize_with = "bounds::uint::<_, u64, 1, MAX_MS>")]
    pub open_timeout_ms: u64,
    /// Lengthen the open timeout each time a trial fails and the breaker
    /// re-opens. Default: none (fixed timeout).
    pub backoff: Option<OpenBackoff>,
    /// Trial calls admitted when half-open, 1 to 65 535; all must succeed to close.
    /// Default: 1.
    #[serde(deserialize_with = "bounds::uint::<_, u32, 1, 65_535>")]
    pub half_open_max_calls: u32,
    /// A trial call that has not reported back after this many milliseconds
    /// (a leaked permit) gives up its slot: a new round of trials starts.
    /// 1 to 2⁴⁰ − 1. Default: 30 000.
    #[serde(deserialize_with = "bounds::uint::<_, u64, 1, MAX_MS>")]
    pub probe_timeout_ms: u64,
    /// The timeout the HTTP client constructors give each request, in
    /// milliseconds, at least 1 (the original injected 5 s). Default: 5 000.
    #[serde(deserialize_with = "bounds::at_least::<_, u64, 1>")]
    pub request_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            failure_rate: None,
            slow_call: None,
            open_timeout_ms: 10_000,
            backoff: None,
            half_open_max_calls: 1,
            probe_timeout_ms: 30_000,
            request_timeout_ms: 5_000,
        }
    }
}

/// Open when, over the last [`window`](Self::window) calls (and at least
/// [`min_calls`](Self::min_calls) of them), the failure rate reaches
/// [`threshold`](Self::threshold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FailureRate {
    /// Failure rate, 0 < threshold ≤ 1. Default: 0.5.
    #[serde(deserialize_with = "bounds::rate")]
    pub threshold: f64,
    /// Calls in the count-based window, 1 to 10 000. Default: 100.
    #[serde(deserialize_with = "bounds::uint::<_, u32, 1, 10_000>")]
    pub window: u32,
    /// Calls needed in the window before the rate counts, 1 to `window`. Default: 20.
    #[serde(deserialize_with = "bounds::at_least::<_, u32, 1>")]
    pub min_calls: u32,
}

impl Default for FailureRate {
    fn default() -> Self {
        Self { threshold: 0.5, window: 100, min_calls: 20 }
    }
}

/// Calls slower than [`threshold_ms`](Self::threshold_ms) are slow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SlowCall {
    /// Duration from which a call is slow, in milliseconds, at least 1. Default: 2 000.
    #[serde(deserialize_with = "bounds::at_least::<_, u64, 1>")]
    pub threshold_ms: u64,
    /// With the failure-rate policy: the slow-call rate that opens, 0 < rate ≤ 1.
    /// (With the consecutive policy, a slow call counts as a failure.) Default: 0.8.
    #[serde(deserialize_with = "bounds::rate")]
    pub rate: f64,
}

impl Default for SlowCall {
    fn default() -> Self {
        Self { threshold_ms: 2_000, rate: 0.8 }
    }
}

/// Open timeout `open_timeout_ms × multiplier^(re-opens)`, capped, with jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenBackoff {
    /// Growth per re-open, ≥ 1. Default: 2.
    #[serde(deserialize_with = "bounds::factor")]
    pub multiplier: f64,
    /// The longest open timeout, in milliseconds, `open_timeout_ms` to 2⁴⁰ − 1. Default: 300 000.
    #[serde(deserialize_with = "bounds::uint::<_, u64, 1, MAX_MS>")]
    pub max_ms: u64,
    /// Random spread, 0 to 1: the timeout varies by up to this fraction either way. Default: 0.1.
    #[serde(deserialize_with = "bounds::fraction")]
    pub jitter: f64,
}

impl Default for OpenBackoff {
    fn default() -> Self {
        Self { multiplier: 2.0, max_ms: 300_000, jitter: 0.1 }
    }
}

/// The longest timeout the state word can hold (40 bits of milliseconds, ~34 years).
pub(crate) const MAX_MS: u64 = (1 << 40) - 1;

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig { field, reason: reason.into() }
}

/// The checks between fields, each at the key of the value out of line:
/// `failure_rate.min_calls` at most `failure_rate.window`, and `backoff.max_ms`
/// at least `open_timeout_ms`.
impl Check for Config {
    fn check(&self) -> Vec<Violation> {
        let mut found = Vec::new();
        if let Some(rate) = self.failure_rate.as_ref().filter(|r| r.min_calls > r.window) {
            found.push(
                Violation::new(
                    "failure_rate.min_calls",
                    rate.min_calls,
                    format_args!("at most window ({})", rate.window),
                )
                .related("failure_rate.window"),
            );
        }
        if let Some(backoff) = self.backoff.as_ref().filter(|b| b.max_ms < self.open_timeout_ms) {
            found.push(
                Violation::new(
                    "backoff.max_ms",
                    backoff.max_ms,
                    format_args!("at least open_timeout_ms ({})", self.open_timeout_ms),
                )
                .related("open_timeout_ms"),
            );
        }
        found
    }
}

impl Config {
    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        if self.failure_threshold == 0 {
            return Err(invalid("failure_threshold", "must be at least 1"));
        }
        if let Some(rate) = &self.failure_rate {
            if !(rate.threshold > 0.0 && rate.threshold <= 1.0) {
                return Err(invalid("failure_rate.threshold", format!("must be in (0, 1], got {}", rate.threshold)));
            }
            if !(1..=10_000).contains(&rate.window) {
                return Err(invalid("failure_rate.window", format!("must be 1 to 10000, got {}", rate.window)));
            }
            if rate.min_calls == 0 || rate.min_calls > rate.window {
                return Err(invalid(
                    "failure_rate.min_calls",
                    format!("must be 1 to window ({}), got {}", rate.window, rate.min_calls),
                ));
            }
        }
        if let Some(slow) = &self.slow_call {
            if slow.threshold_ms == 0 {
                return Err(invalid("slow_call.threshold_ms", "must be at least 1"));
            }
            if !(slow.rate > 0.0 && slow.rate <= 1.0) {
                return Err(invalid("slow_call.rate", format!("must be in (0, 1], got {}", slow.rate)));
            }
        }
        if self.open_timeout_ms == 0 || self.open_timeout_ms > MAX_MS {
            return Err(invalid("open_timeout_ms", format!("must be 1 to {MAX_MS}, got {}", self.open_timeout_ms)));
        }
        if let Some(backoff) = &self.backoff {
            if !(backoff.multiplier.is_finite() && backoff.multiplier >= 1.0) {
                return Err(invalid("backoff.multiplier", format!("must be a number ≥ 1, got {}", backoff.multiplier)));
            }
            if backoff.max_ms < self.open_timeout_ms || backoff.max_ms > MAX_MS {
                return Err(invalid(
                    "backoff.max_ms",
                    format!("must be open_timeout_ms ({}) to {MAX_MS}, got {}", self.open_timeout_ms, backoff.max_ms),
                ));
            }
            if !(0.0..=1.0).contains(&backoff.jitter) {
                return Err(invalid("backoff.jitter", format!("must be in [0, 1], got {}", backoff.jitter)));
            }
        }
        if self.half_open_max_calls == 0 || self.half_open_max_calls > u32::from(u16::MAX) {
            return Err(invalid(
                "half_open_max_calls",
                format!("must be 1 to 65535, got {}", self.half_open_max_calls),
            ));
        }
        if self.probe_timeout_ms == 0 || self.probe_timeout_ms > MAX_MS {
            return Err(invalid("probe_timeout_ms", format!("must be 1 to {MAX_MS}, got {}", self.probe_timeout_ms)));
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid("request_timeout_ms", "must be at least 1"));
        }
        Ok(())
    }

    /// The open timeout after `reopens` consecutive re-opens, before jitter.
    pub(crate) fn open_timeout(&self, reopens: u32) -> u64 {
        let Some(backoff) = &self.backoff else { return self.open_timeout_ms };
        let grown = self.open_timeout_ms as f64 * backoff.multiplier.powi(reopens.min(1024) as i32);
        let capped = grown.min(backoff.max_ms as f64);
        let spread = capped * backoff.jitter;
        let jittered = if spread > 0.0 { capped - spread + fastrand::f64() * 2.0 * spread } else { capped };
        (jittered.round() as u64).clamp(1, backoff.max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
        let all = Config {
            failure_rate: Some(FailureRate::default()),
            slow_call: Some(SlowCall::default()),
            backoff: Some(OpenBackoff::default()),
            ..Config::default()
        };
        assert!(all.validate().is_ok());
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: Vec<(Config, &str)> = vec![
            (Config { failure_threshold: 0, ..Config::default() }, "failure_threshold"),
            (
                Config {
                    failure_rate: Some(FailureRate { threshold: 1.5, ..FailureRate::default() }),
                    ..Config::default()
                },
                "failure_rate.threshold",
            ),
            (
                Config {
                    failure_rate: Some(FailureRate { threshold: f64::NAN, ..FailureRate::default() }),
                    ..Config::default()
                },
                "failure_rate.threshold",
            ),
            (
                Config { failure_rate: Some(FailureRate { window: 0, ..FailureRate::default() }), ..Config::default() },
                "failure_rate.window",
            ),
            (
                Config {
                    failure_rate: Some(FailureRate { min_calls: 101, ..FailureRate::default() }),
                    ..Config::default()
                },
                "failure_rate.min_calls",
            ),
            (
                Config { slow_call: Some(SlowCall { threshold_ms: 0, ..SlowCall::default() }), ..Config::default() },
                "slow_call.threshold_ms",
            ),
            (Config { open_timeout_ms: 0, ..Config::default() }, "open_timeout_ms"),
            (
                Config {
                    backoff: Some(OpenBackoff { multiplier: 0.5, ..OpenBackoff::default() }),
                    ..Config::default()
                },
                "backoff.multiplier",
            ),
            (
                Config { backoff: Some(OpenBackoff { max_ms: 5, ..OpenBackoff::default() }), ..Config::default() },
                "backoff.max_ms",
            ),
            (
                Config { backoff: Some(OpenBackoff { jitter: -0.1, ..OpenBackoff::default() }), ..Config::default() },
                "backoff.jitter",
            ),
            (Config { half_open_max_calls: 0, ..Config::default() }, "half_open_max_calls"),
            (Config { half_open_max_calls: 70_000, ..Config::default() }, "half_open_max_calls"),
            (Config { probe_timeout_ms: 0, ..Config::default() }, "probe_timeout_ms"),
            (Config { request_timeout_ms: 0, ..Config::default() }, "request_timeout_ms"),
        ];
        for (config, field) in cases {
            match config.validate() {
                Err(Error::InvalidConfig { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn checks_between_fields_agree_with_validate() {
        use chassis_bounds::Check;

        assert!(Config::default().check().is_empty());
        let rate = Config {
            failure_rate: Some(FailureRate { window: 10, min_calls: 20, ..FailureRate::default() }),
            ..Config::default()
        };
        let backoff =
            Config { backoff: Some(OpenBackoff { max_ms: 5_000, ..OpenBackoff::default() }), ..Config::default() };
        for (config, key, expected, related) in [
            (rate, "failure_rate.min_calls", "at most window (10)", "failure_rate.window"),
            (backoff, "backoff.max_ms", "at least open_timeout_ms (10000)", "open_timeout_ms"),
        ] {
            let found = config.check();
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!((found[0].key.as_str(), found[0].expected.as_str()), (key, expected));
            assert_eq!(found[0].related, [related]);
            assert!(matches!(config.validate(), Err(Error::InvalidConfig { field, .. }) if field == key));
        }
        let at_limits = Config {
            failure_rate: Some(FailureRate { window: 10, min_calls: 10, ..FailureRate::default() }),
            backoff: Some(OpenBackoff { max_ms: 10_000, ..OpenBackoff::default() }),
            ..Config::default()
        };
        assert!(at_limits.check().is_empty() && at_limits.validate().is_ok());
    }

    #[test]
    fn backoff_grows_caps_and_jitters_within_bounds() {
        let fixed =
            Config { backoff: Some(OpenBackoff { multiplier: 2.0, max_ms: 50_000, jitter: 0.0 }), ..Config::default() };
        assert_eq!([0, 1, 2, 3, 10].map(|n| fixed.open_timeout(n)), [10_000, 20_000, 40_000, 50_000, 50_000]);
        let jittered =
            Config { backoff: Some(OpenBackoff { multiplier: 2.0, max_ms: 50_000, jitter: 0.2 }), ..Config::default() };
        for _ in 0..1000 {
            let t = jittered.open_timeout(1);
            assert!((16_000..=24_000).contains(&t), "{t}");
        }
        assert_eq!(Config::default().open_timeout(7), 10_000);
    }
}
