//! A breaker on a manual clock.

use std::time::Duration;

use chassis_breaker::{Breaker, Config, ManualClock, Outcome};

pub fn config(threshold: u32, open_ms: u64, half_open: u32) -> Config {
    let mut config = Config::default();
    config.failure_threshold = threshold;
    config.open_timeout_ms = open_ms;
    config.half_open_max_calls = half_open;
    config
}

pub fn breaker(config: Config) -> (Breaker, ManualClock) {
    let clock = ManualClock::new();
    let breaker = Breaker::builder("test").config(config).clock(clock.clone()).build().unwrap();
    (breaker, clock)
}

/// One call with `outcome`; `false` when rejected.
pub fn call(breaker: &Breaker, outcome: Outcome) -> bool {
    match breaker.acquire() {
        Ok(permit) => {
            permit.record(outcome);
            true
        }
        Err(_) => false,
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
