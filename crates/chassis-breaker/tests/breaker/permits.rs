//! Permits: cancellation frees the slot, silent probes are reclaimed, late
//! results are ignored.

use chassis_breaker::{Outcome, State};

use crate::support::{breaker, call, config, ms};

#[test]
fn a_dropped_trial_permit_frees_its_slot_and_counts_nothing() {
    let (b, clock) = breaker(config(1, 1000, 1));
    call(&b, Outcome::Failure);
    clock.advance(ms(1000));
    let trial = b.acquire().unwrap();
    assert!(b.acquire().is_err());
    drop(trial); // a cancelled call
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.snapshot().trials_admitted, 0);
    b.acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_dropped_closed_permit_counts_nothing() {
    let (b, _clock) = breaker(config(2, 1000, 1));
    call(&b, Outcome::Failure);
    drop(b.acquire().unwrap());
    assert_eq!(b.snapshot().consecutive_failures, 1);
    call(&b, Outcome::Ignore);
    assert_eq!(b.snapshot().consecutive_failures, 1);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn an_ignored_trial_frees_its_slot() {
    let (b, clock) = breaker(config(1, 1000, 1));
    call(&b, Outcome::Failure);
    clock.advance(ms(1000));
    b.acquire().unwrap().ignore();
    assert_eq!(b.state(), State::HalfOpen);
    b.acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_probe_that_never_reports_back_is_reclaimed_after_the_probe_timeout() {
    let mut c = config(1, 1000, 1);
    c.probe_timeout_ms = 5000;
    let (b, clock) = breaker(c);
    call(&b, Outcome::Failure);
    clock.advance(ms(1000));
    let stuck = b.acquire().unwrap();
    std::mem::forget(stuck); // never dropped, never reports
    clock.advance(ms(4999));
    let rejected = b.acquire().unwrap_err();
    assert_eq!((rejected.state(), rejected.retry_after()), (State::HalfOpen, Some(ms(1))));
    clock.advance(ms(1));
    let fresh = b.acquire().unwrap();
    assert!(fresh.is_trial());
    fresh.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_late_result_from_an_earlier_generation_is_ignored() {
    let (b, clock) = breaker(config(1, 1000, 1));
    // A closed-state call still running when the breaker opens...
    let slow = b.acquire().unwrap();
    let generation = slow.generation();
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::Open);
    clock.advance(ms(1000));
    b.acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    assert_ne!(b.snapshot().generation, generation);
    // ...fails after the breaker closed again: it must not count now.
    slow.failure();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().consecutive_failures, 0);

    // A trial's late success after its round re-opened does not close the breaker.
    call(&b, Outcome::Failure);
    clock.advance(ms(1000));
    let late_trial = b.acquire().unwrap();
    b.force_open();
    b.reset();
    call(&b, Outcome::Failure);
    late_trial.success();
    assert_eq!(b.state(), State::Open);
}
