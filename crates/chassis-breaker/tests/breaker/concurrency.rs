//! Many callers at once: exact half-open admission, one transition.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use chassis_breaker::{Breaker, ManualClock, Outcome, State};

use crate::support::{call, config, ms};

const CALLERS: usize = 1000;

#[test]
fn exactly_half_open_max_calls_trials_are_admitted_among_1000_concurrent_callers() {
    for max in [1, 3, 17] {
        let clock = ManualClock::new();
        let b = Breaker::builder("concurrent").config(config(1, 1000, max)).clock(clock.clone()).build().unwrap();
        call(&b, Outcome::Failure);
        clock.advance(ms(1000));
        let barrier = Barrier::new(CALLERS);
        let (admitted, rejected) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..CALLERS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        b.acquire()
                    })
                })
                .collect();
            let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            let admitted = results.iter().filter(|r| r.is_ok()).count();
            let rejected: Vec<_> = results.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
            (admitted, rejected)
        });
        assert_eq!(admitted, max as usize, "half_open_max_calls = {max}");
        assert_eq!(rejected.len(), CALLERS - max as usize);
        assert!(rejected.iter().all(|r| r.state() == State::HalfOpen && r.retry_after().is_some()));
    }
}

#[test]
fn concurrent_failures_open_the_breaker_exactly_once() {
    let transitions = Arc::new(AtomicUsize::new(0));
    let seen = transitions.clone();
    let b = Breaker::builder("trip")
        .config(config(10, 60_000, 1))
        .clock(ManualClock::new())
        .on_state_change(move |t| {
            if t.to == State::Open {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    let barrier = Barrier::new(64);
    std::thread::scope(|s| {
        for _ in 0..64 {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..10 {
                    call(&b, Outcome::Failure);
                }
            });
        }
    });
    assert_eq!(b.state(), State::Open);
    assert_eq!(transitions.load(Ordering::SeqCst), 1);
}

#[test]
fn tokio_callers_through_call_never_exceed_the_trial_limit() {
    let clock = ManualClock::new();
    let b = Breaker::builder("tokio").config(config(1, 1000, 5)).clock(clock.clone()).build().unwrap();
    call(&b, Outcome::Failure);
    clock.advance(ms(1000));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let admitted = rt.block_on(async {
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (b, running, peak) = (b.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    b.call(|| async {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Err::<(), _>("still failing")
                    })
                    .await
                    .is_err()
                })
            })
            .collect();
        let mut n = 0;
        for t in tasks {
            n += usize::from(t.await.unwrap());
        }
        n
    });
    assert_eq!(admitted, CALLERS);
    assert!(peak.load(Ordering::SeqCst) <= 5, "peak {}", peak.load(Ordering::SeqCst));
    assert_eq!(b.state(), State::Open);
}
