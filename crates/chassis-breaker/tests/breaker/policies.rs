//! The failure-rate window and the slow-call threshold.

use chassis_breaker::{FailureRate, Outcome, SlowCall, State};

use crate::support::{breaker, call, config, ms};

fn rate(threshold: f64, window: u32, min_calls: u32) -> FailureRate {
    let mut rate = FailureRate::default();
    rate.threshold = threshold;
    rate.window = window;
    rate.min_calls = min_calls;
    rate
}

#[test]
fn the_failure_rate_opens_only_after_the_minimum_calls() {
    let mut c = config(1, 1000, 1);
    c.failure_rate = Some(rate(0.5, 10, 4));
    let (b, _clock) = breaker(c);
    // Three failures in a row: under the minimum of 4 calls.
    for _ in 0..3 {
        call(&b, Outcome::Failure);
    }
    assert_eq!(b.state(), State::Closed);
    call(&b, Outcome::Success);
    assert_eq!(b.snapshot().window_calls, 4);
    // 3 of 4 failed, but only a failure re-evaluates the rate.
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn the_window_slides_over_the_last_calls() {
    let mut c = config(1, 1000, 1);
    c.failure_rate = Some(rate(0.5, 4, 4));
    let (b, _clock) = breaker(c);
    for outcome in [Outcome::Failure, Outcome::Success, Outcome::Success, Outcome::Success, Outcome::Success] {
        call(&b, outcome);
    }
    // The first failure slid out: 1 failure in the last 4 would be 25%.
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::Closed);
    let snapshot = b.snapshot();
    assert_eq!((snapshot.window_calls, snapshot.window_failures), (4, 1));
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn slow_calls_count_as_failures_with_the_consecutive_policy() {
    let mut c = config(2, 1000, 1);
    let mut slow = SlowCall::default();
    slow.threshold_ms = 100;
    c.slow_call = Some(slow);
    let (b, clock) = breaker(c);
    for _ in 0..2 {
        let permit = b.acquire().unwrap();
        clock.advance(ms(100));
        permit.success();
    }
    assert_eq!(b.state(), State::Open);
}

#[test]
fn slow_calls_open_on_their_own_rate() {
    let mut c = config(1, 1000, 1);
    c.failure_rate = Some(rate(0.9, 10, 5));
    let mut slow = SlowCall::default();
    slow.threshold_ms = 50;
    slow.rate = 0.6;
    c.slow_call = Some(slow);
    let (b, clock) = breaker(c);
    call(&b, Outcome::Success);
    call(&b, Outcome::Success);
    let slow_call = || {
        let permit = b.acquire().unwrap();
        clock.advance(ms(60));
        permit.success();
    };
    slow_call();
    slow_call();
    let snapshot = b.snapshot();
    assert_eq!(
        (snapshot.state, snapshot.window_calls, snapshot.window_slow),
        (State::Closed, 4, 2),
        "2 slow of 4 = 50%"
    );
    slow_call();
    assert_eq!(b.state(), State::Open, "3 slow of 5 = 60%");
}
