//! Retry policies: how long a failed task waits before it is tried again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::queue::MAX_VISIBILITY;

/// How the wait grows with each failure (the original's `wait_progression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Progression {
    /// Always `base` (`NONE`).
    None,
    /// `base × failures` (`ARITHMETIC`).
    Linear,
    /// `base × 2^(failures-1)` (`GEOMETRIC`).
    #[default]
    Exponential,
    /// A random wait between `base` and the cap (`RANDOM`).
    Random,
}

/// A retry backoff: progression, base, cap and jitter.
///
/// Task retries count in seconds (`base_secs`, `max_secs`); `base_ms` and
/// `max_ms` add milliseconds, for the worker's own short pauses (a failing
/// receive, a failing delete or hook) and for tests. [`Backoff::new`] sets
/// both from a [`Duration`], to the millisecond.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Backoff {
    /// How the wait grows. Default: exponential.
    pub progression: Progression,
    /// The first wait, in seconds (the original's `wait_time`), plus
    /// `base_ms`. Default: 10.
    pub base_secs: u64,
    /// Milliseconds added to `base_secs`. Default: 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub base_ms: u64,
    /// The longest wait, in seconds, plus `max_ms`: from the first wait to
    /// 43 200 s (SQS's visibility limit). Default: 900.
    pub max_secs: u64,
    /// Milliseconds added to `max_secs`. Default: 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_ms: u64,
    /// Random spread, 0 to 1. Default: 0.1.
    pub jitter: f64,
}

// serde's `skip_serializing_if` passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Default for Backoff {
    fn default() -> Self {
        Self { progression: Progression::Exponential, base_secs: 10, base_ms: 0, max_secs: 900, max_ms: 0, jitter: 0.1 }
    }
}

impl Backoff {
    /// A backoff with no jitter, from `base` to `max`, to the millisecond.
    pub const fn new(progression: Progression, base: Duration, max: Duration) -> Self {
        Self {
            progression,
            base_secs: base.as_secs(),
            base_ms: base.subsec_millis() as u64,
            max_secs: max.as_secs(),
            max_ms: max.subsec_millis() as u64,
            jitter: 0.0,
        }
    }

    /// The first wait: `base_secs` seconds and `base_ms` milliseconds.
    pub fn base(&self) -> Duration {
        Duration::from_secs(self.base_secs).saturating_add(Duration::from_millis(self.base_ms))
    }

    /// The longest wait: `max_secs` seconds and `max_ms` milliseconds.
    pub fn max(&self) -> Duration {
        Duration::from_secs(self.max_secs).saturating_add(Duration::from_millis(self.max_ms))
    }

    /// Whether the longest wait is out of line: shorter than the first, or
    /// longer than SQS's visibility limit.
    pub(crate) fn max_out_of_line(&self) -> bool {
        self.max() < self.base() || self.max() > MAX_VISIBILITY
    }

    /// The first and the longest wait as a message shows them: whole seconds
    /// (`10`) as the keys `base_secs` and `max_secs` read, else with the
    /// milliseconds (`1 s + 500 ms`).
    pub(crate) fn shown(&self) -> (String, String) {
        let show = |secs: u64, ms: u64| if ms == 0 { secs.to_string() } else { format!("{secs} s + {ms} ms") };
        (show(self.base_secs, self.base_ms), show(self.max_secs, self.max_ms))
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_out_of_line() {
            let (base, max) = self.shown();
            return Err(format!("max_secs must be base_secs ({base}) to 43200, got {max}"));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!("jitter must be in [0, 1], got {}", self.jitter));
        }
        Ok(())
    }

    /// The wait after `failures` failures (1 for the first), to the nanosecond.
    pub fn delay(&self, failures: u32) -> Duration {
        // In milliseconds, where the bounds are whole numbers: the waits of a
        // backoff without jitter are exact.
        let base = self.base().as_millis() as f64;
        let cap = self.max().as_millis() as f64;
        let n = f64::from(failures.max(1));
        let raw = match self.progression {
            Progression::None => base,
            Progression::Linear => base * n,
            Progression::Exponential => base * 2f64.powf((n - 1.0).min(64.0)),
            Progression::Random => base + (cap - base).max(0.0) * uniform(),
        };
        let capped = raw.min(cap);
        let spread = capped * self.jitter;
        let jittered = if spread > 0.0 { capped - spread + uniform() * 2.0 * spread } else { capped };
        Duration::from_nanos((jittered.clamp(0.0, cap) * 1e6).round() as u64)
    }
}

/// A uniform number in [0, 1) from a UUID's random bits (no extra dependency).
fn uniform() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progressions() {
        let s = Duration::from_secs;
        let linear = Backoff::new(Progression::Linear, s(10), s(35));
        assert_eq!([1, 2, 3, 4].map(|n| linear.delay(n)), [s(10), s(20), s(30), s(35)]);
        let exp = Backoff::new(Progression::Exponential, s(10), s(100));
        assert_eq!([1, 2, 3, 4, 50].map(|n| exp.delay(n)), [s(10), s(20), s(40), s(80), s(100)]);
        let none = Backoff::new(Progression::None, s(7), s(100));
        assert_eq!(none.delay(9), s(7));
        let random = Backoff::new(Progression::Random, s(10), s(20));
        for _ in 0..100 {
            let d = random.delay(3);
            assert!(d >= s(10) && d <= s(20), "{d:?}");
        }
    }

    #[test]
    fn millisecond_backoffs_are_exact() {
        let (s, ms) = (Duration::from_secs, Duration::from_millis);
        let short = Backoff::new(Progression::Exponential, ms(200), s(1));
        assert_eq!((short.base_secs, short.base_ms, short.max_secs, short.max_ms), (0, 200, 1, 0));
        assert_eq!([1, 2, 3, 4, 9].map(|n| short.delay(n)), [ms(200), ms(400), ms(800), s(1), s(1)]);
        let odd = Backoff::new(Progression::Linear, ms(1_100), ms(3_500));
        assert_eq!([1, 2, 3, 4].map(|n| odd.delay(n)), [ms(1_100), ms(2_200), ms(3_300), ms(3_500)]);
        assert_eq!((odd.base(), odd.max()), (ms(1_100), ms(3_500)));
        assert!(Backoff::new(Progression::None, ms(1_500), s(1)).validate().is_err());
    }

    #[test]
    fn whole_second_backoffs_serialize_without_the_millisecond_keys() {
        let json = serde_json::to_value(Backoff::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"progression": "exponential", "base_secs": 10, "max_secs": 900, "jitter": 0.1})
        );
        let back: Backoff = serde_json::from_str(r#"{"base_secs": 1, "base_ms": 250}"#).unwrap();
        assert_eq!(back.base(), Duration::from_millis(1_250));
    }
}
