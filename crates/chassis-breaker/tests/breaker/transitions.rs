//! The state machine, step by step, on a manual clock.

use chassis_breaker::{OpenBackoff, Outcome, State};

use crate::support::{breaker, call, config, ms};

#[test]
fn consecutive_failures_open_and_a_success_resets_the_count() {
    let (b, _clock) = breaker(config(3, 1000, 1));
    assert!(call(&b, Outcome::Failure) && call(&b, Outcome::Failure));
    assert_eq!(b.snapshot().consecutive_failures, 2);
    assert!(call(&b, Outcome::Success));
    assert_eq!(b.snapshot().consecutive_failures, 0);
    for _ in 0..2 {
        call(&b, Outcome::Failure);
    }
    assert_eq!(b.state(), State::Closed);
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn open_rejects_without_running_until_the_timeout_then_half_opens() {
    let (b, clock) = breaker(config(1, 1000, 1));
    call(&b, Outcome::Failure);
    let rejected = b.acquire().unwrap_err();
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(rejected.retry_after(), Some(ms(1000)));
    clock.advance(ms(999));
    assert_eq!(b.acquire().unwrap_err().retry_after(), Some(ms(1)));
    clock.advance(ms(1));
    let trial = b.acquire().unwrap();
    assert!(trial.is_trial());
    assert_eq!(b.state(), State::HalfOpen);
    trial.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn half_open_needs_every_trial_to_succeed_and_one_failure_reopens() {
    let (b, clock) = breaker(config(1, 1000, 3));
    call(&b, Outcome::Failure);
    clock.advance(ms(1000));
    let trials: Vec<_> = (0..3).map(|_| b.acquire().unwrap()).collect();
    let rejected = b.acquire().unwrap_err();
    assert_eq!(rejected.state(), State::HalfOpen);
    let mut trials = trials.into_iter();
    trials.next().unwrap().success();
    trials.next().unwrap().success();
    assert_eq!(b.state(), State::HalfOpen);
    trials.next().unwrap().failure();
    assert_eq!(b.state(), State::Open);
    // The timeout starts again from the re-open.
    assert_eq!(b.acquire().unwrap_err().retry_after(), Some(ms(1000)));
    clock.advance(ms(1000));
    for _ in 0..3 {
        b.acquire().unwrap().success();
    }
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn the_open_timeout_backs_off_on_reopens_and_resets_on_close() {
    let mut c = config(1, 100, 1);
    c.backoff = Some({
        let mut b = OpenBackoff::default();
        b.multiplier = 2.0;
        b.max_ms = 350;
        b.jitter = 0.0;
        b
    });
    let (b, clock) = breaker(c);
    call(&b, Outcome::Failure);
    let mut waits = Vec::new();
    for _ in 0..4 {
        let wait = b.acquire().unwrap_err().retry_after().unwrap();
        waits.push(wait.as_millis());
        clock.advance(wait);
        b.acquire().unwrap().failure();
    }
    assert_eq!(waits, [100, 200, 350, 350]);
    let wait = b.acquire().unwrap_err().retry_after().unwrap();
    clock.advance(wait);
    b.acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    call(&b, Outcome::Failure);
    assert_eq!(b.acquire().unwrap_err().retry_after(), Some(ms(100)));
}

#[test]
fn manual_states() {
    let (b, _clock) = breaker(config(1, 1000, 1));
    b.force_open();
    assert_eq!(b.acquire().unwrap_err().state(), State::ForcedOpen);
    b.force_closed();
    for _ in 0..10 {
        assert!(call(&b, Outcome::Failure));
    }
    assert_eq!(b.state(), State::ForcedClosed);
    b.disable();
    assert!(call(&b, Outcome::Failure));
    assert_eq!(b.state(), State::Disabled);
    b.reset();
    assert_eq!(b.state(), State::Closed);
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::Open);
    b.reset();
    assert_eq!(b.snapshot().consecutive_failures, 0);
    assert!(call(&b, Outcome::Success));
}
