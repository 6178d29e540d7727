//! loom models of the atomic state machine: every interleaving of a few
//! threads. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p chassis-breaker --no-default-features --test loom --release`
//! (`.ci/run` does).
#![cfg(loom)]
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use chassis_breaker::{Breaker, Config, ManualClock, State};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

fn config(threshold: u32, half_open: u32) -> Config {
    let mut config = Config::default();
    config.failure_threshold = threshold;
    config.half_open_max_calls = half_open;
    config.open_timeout_ms = 10;
    config
}

/// A breaker that is half-open, its round not started.
fn half_open(half_open: u32) -> Breaker {
    let clock = ManualClock::new();
    let breaker = Breaker::builder("loom").config(config(1, half_open)).clock(clock.clone()).build().unwrap();
    breaker.acquire().unwrap().failure();
    clock.advance(Duration::from_millis(10));
    breaker
}

#[test]
fn half_open_admits_exactly_the_limit() {
    loom::model(|| {
        let breaker = half_open(1);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let b = breaker.clone();
                thread::spawn(move || b.acquire_owned().ok())
            })
            .collect();
        let permits: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(permits.iter().filter(|p| p.is_some()).count(), 1);
        assert_eq!(breaker.state(), State::HalfOpen);
    });
}

#[test]
fn concurrent_failures_trip_exactly_once() {
    loom::model(|| {
        let opened = Arc::new(AtomicUsize::new(0));
        let seen = opened.clone();
        let breaker = Breaker::builder("loom")
            .config(config(2, 1))
            .clock(ManualClock::new())
            .on_state_change(move |t| {
                if t.to == State::Open {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            })
            .build()
            .unwrap();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let b = breaker.clone();
                thread::spawn(move || b.acquire().unwrap().failure())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(breaker.state(), State::Open);
        assert_eq!(opened.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_trial_success_racing_a_trial_cancellation_stays_consistent() {
    loom::model(|| {
        let breaker = half_open(2);
        let first = breaker.acquire_owned().unwrap();
        let second = breaker.acquire_owned().unwrap();
        let a = thread::spawn(move || first.success());
        let b = thread::spawn(move || drop(second));
        a.join().unwrap();
        b.join().unwrap();
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.state, snapshot.trials_admitted, snapshot.trials_succeeded), (State::HalfOpen, 1, 1));
        // The freed slot is there for one more trial, whose success closes.
        breaker.acquire().unwrap().success();
        assert_eq!(breaker.state(), State::Closed);
    });
}

#[test]
fn a_late_failure_from_before_a_transition_is_ignored() {
    loom::model(|| {
        let breaker = Breaker::builder("loom").config(config(1, 1)).clock(ManualClock::new()).build().unwrap();
        let late = breaker.acquire_owned().unwrap();
        let b = breaker.clone();
        let tripper = thread::spawn(move || {
            // The straggler may have tripped the breaker already.
            if let Ok(permit) = b.acquire() {
                permit.failure();
            }
            b.reset();
        });
        let straggler = thread::spawn(move || late.failure());
        tripper.join().unwrap();
        straggler.join().unwrap();
        // Whatever the order, the reset breaker is closed unless the straggler's
        // failure landed before the reset (then the reset cleared it).
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.state, State::Closed);
        assert_eq!(snapshot.consecutive_failures, 0);
    });
}
