//! The count-based sliding window of the failure-rate policy: the last N
//! outcomes, each slot tagged with the generation it was recorded in, so slots
//! from before the breaker last closed count as empty without being cleared.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

const FAILURE: u32 = 1;
const SLOW: u32 = 2;
const PRESENT: u32 = 4;
const TAG_SHIFT: u32 = 3;

#[derive(Debug)]
pub(crate) struct Window {
    slots: Box<[AtomicU32]>,
    cursor: AtomicU64,
}

/// What a window holds for one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

impl Window {
    pub(crate) fn new(size: u32) -> Self {
        Self { slots: (0..size.max(1)).map(|_| AtomicU32::new(0)).collect(), cursor: AtomicU64::new(0) }
    }

    pub(crate) fn record(&self, generation: u32, failure: bool, slow: bool) {
        let at = self.cursor.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        let value =
            (generation << TAG_SHIFT) | PRESENT | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
        if let Some(slot) = self.slots.get(at as usize) {
            slot.store(value, Ordering::Relaxed);
        }
    }

    pub(crate) fn stats(&self, generation: u32) -> Stats {
        let mut stats = Stats::default();
        for slot in &*self.slots {
            let value = slot.load(Ordering::Relaxed);
            if value & PRESENT != 0 && value >> TAG_SHIFT == generation {
                stats.calls += 1;
                stats.failures += u32::from(value & FAILURE != 0);
                stats.slow += u32::from(value & SLOW != 0);
            }
        }
        stats
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_n_of_the_current_generation() {
        let window = Window::new(4);
        for failure in [true, true, false, false, false] {
            window.record(7, failure, false);
        }
        assert_eq!(window.stats(7), Stats { calls: 4, failures: 1, slow: 0 });
        window.record(8, true, true);
        assert_eq!(window.stats(8), Stats { calls: 1, failures: 1, slow: 1 });
        assert_eq!(window.stats(7), Stats { calls: 3, failures: 0, slow: 0 });
    }
}
