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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Backoff {
    /// How the wait grows. Default: exponential.
    pub progression: Progression,
    /// The first wait, in seconds (the original's `wait_time`). Default: 10.
    pub base_secs: u64,
    /// The longest wait, in seconds (≤ 43 200, SQS's visibility limit). Default: 900.
    pub max_secs: u64,
    /// Random spread, 0 to 1. Default: 0.1.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { progression: Progression::Exponential, base_secs: 10, max_secs: 900, jitter: 0.1 }
    }
}

impl Backoff {
    /// A backoff with no jitter.
    pub fn new(progression: Progression, base: Duration, max: Duration) -> Self {
        Self { progression, base_secs: base.as_secs(), max_secs: max.as_secs(), jitter: 0.0 }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_secs < self.base_secs || self.max_secs > MAX_VISIBILITY.as_secs() {
            return Err(format!("max_secs must be base_secs ({}) to 43200, got {}", self.base_secs, self.max_secs));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!("jitter must be in [0, 1], got {}", self.jitter));
        }
        Ok(())
    }

    /// The wait after `failures` failures (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let base = self.base_secs as f64;
        let cap = self.max_secs as f64;
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
        Duration::from_secs_f64(jittered.clamp(0.0, cap))
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
}
