//! The breaker's state, and the one 64-bit word that holds it.
//!
//! ```text
//!  63                      24 23                    3 2     0
//! +--------------------------+-----------------------+-------+
//! |  deadline (ms, 40 bits)  |  generation (21 bits) | state |
//! +--------------------------+-----------------------+-------+
//! ```
//!
//! Every transition is one compare-and-swap of this word, so the state, the
//! generation it starts and its deadline (open: until when; half-open: when a
//! silent trial is given up) always change together. Counters elsewhere carry
//! the generation they count for, so nothing needs resetting on a transition
//! and a result from an earlier generation is recognised and ignored.

use std::fmt;

use serde::Serialize;

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum State {
    /// Calls pass; failures are counted.
    Closed,
    /// Calls are rejected until the open timeout ends.
    Open,
    /// A limited number of trial calls pass.
    HalfOpen,
    /// Rejects every call until reset ([`Breaker::force_open`](crate::Breaker::force_open)).
    ForcedOpen,
    /// Lets every call through and never opens; outcomes are still counted
    /// ([`Breaker::force_closed`](crate::Breaker::force_closed)).
    ForcedClosed,
    /// Lets every call through and records nothing ([`Breaker::disable`](crate::Breaker::disable)).
    Disabled,
}

impl State {
    pub(crate) const fn code(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
            Self::ForcedOpen => 3,
            Self::ForcedClosed => 4,
            Self::Disabled => 5,
        }
    }

    const fn from_code(code: u64) -> Self {
        match code {
            0 => Self::Closed,
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::ForcedOpen,
            4 => Self::ForcedClosed,
            _ => Self::Disabled,
        }
    }

    /// The value of the `chassis_breaker_state` gauge: 0 closed, 1 open,
    /// 2 half-open, 3 forced open, 4 forced closed, 5 disabled.
    pub fn gauge(self) -> f64 {
        self.code() as f64
    }

    /// The name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::ForcedClosed => "forced_closed",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const STATE_BITS: u32 = 3;
const GEN_BITS: u32 = 21;
pub(crate) const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
const DEADLINE_SHIFT: u32 = STATE_BITS + GEN_BITS;

/// The closed state with generation 0 and no deadline encodes as 0.
pub(crate) const CLOSED_CODE: u64 = 0;

/// A decoded state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) state: State,
    pub(crate) generation: u32,
    /// Milliseconds on the breaker's clock.
    pub(crate) deadline_ms: u64,
}

impl Word {
    #[inline]
    pub(crate) const fn decode(bits: u64) -> Self {
        Self {
            state: State::from_code(bits & ((1 << STATE_BITS) - 1)),
            generation: ((bits >> STATE_BITS) as u32) & GEN_MASK,
            deadline_ms: bits >> DEADLINE_SHIFT,
        }
    }

    pub(crate) const fn encode(self) -> u64 {
        self.state.code()
            | (((self.generation & GEN_MASK) as u64) << STATE_BITS)
            | ((self.deadline_ms & crate::config::MAX_MS) << DEADLINE_SHIFT)
    }

    /// The word after a transition to `state`: next generation, new deadline.
    pub(crate) const fn next(self, state: State, deadline_ms: u64) -> Self {
        Self { state, generation: next_gen(self.generation), deadline_ms }
    }
}

/// Whether the state word says closed, read straight from the bits.
#[inline]
pub(crate) const fn is_closed(bits: u64) -> bool {
    bits & ((1 << STATE_BITS) - 1) == CLOSED_CODE
}

/// The generation of a state word, straight from the bits.
#[inline]
pub(crate) const fn generation(bits: u64) -> u32 {
    ((bits >> STATE_BITS) as u32) & GEN_MASK
}

pub(crate) const fn next_gen(generation: u32) -> u32 {
    generation.wrapping_add(1) & GEN_MASK
}

/// Whether generation `a` comes after `b` (on the 21-bit circle).
pub(crate) const fn newer(a: u32, b: u32) -> bool {
    let distance = a.wrapping_sub(b) & GEN_MASK;
    distance != 0 && distance < (1 << (GEN_BITS - 1))
}

// The counters beside the state word, each tagged with the generation it counts for.

/// Half-open trials: `(generation, admitted, succeeded)` of the packed word.
pub(crate) fn split_trials(bits: u64) -> (u32, u32, u32) {
    ((bits >> 32) as u32, ((bits >> 16) & 0xffff) as u32, (bits & 0xffff) as u32)
}

/// Packs half-open trials: generation << 32 | admitted << 16 | succeeded.
pub(crate) fn trials(generation: u32, admitted: u32, succeeded: u32) -> u64 {
    (u64::from(generation) << 32) | (u64::from(admitted & 0xffff) << 16) | u64::from(succeeded & 0xffff)
}

/// Consecutive failures: `(generation, count)` of the packed word.
pub(crate) fn split_failures(bits: u64) -> (u32, u32) {
    ((bits >> 32) as u32, bits as u32)
}

/// Packs consecutive failures: generation << 32 | count.
pub(crate) fn failures(generation: u32, count: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for state in
            [State::Closed, State::Open, State::HalfOpen, State::ForcedOpen, State::ForcedClosed, State::Disabled]
        {
            for generation in [0, 1, GEN_MASK] {
                for deadline_ms in [0, 1, 10_000, crate::config::MAX_MS] {
                    let word = Word { state, generation, deadline_ms };
                    assert_eq!(Word::decode(word.encode()), word);
                    assert_eq!(is_closed(word.encode()), state == State::Closed);
                }
            }
        }
    }

    #[test]
    fn generations_wrap_and_compare_on_a_circle() {
        assert_eq!(next_gen(GEN_MASK), 0);
        assert!(newer(1, 0));
        assert!(newer(0, GEN_MASK));
        assert!(!newer(0, 0));
        assert!(!newer(0, 1));
    }
}
