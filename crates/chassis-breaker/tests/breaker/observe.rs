//! Snapshot, state-change events, tracing and metrics.

use std::sync::{Arc, Mutex};

use chassis_breaker::{Breaker, ManualClock, Outcome, State, Transition};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use crate::support::{call, config, ms};

#[test]
fn snapshot_reports_counts_and_time_to_half_open() {
    let clock = ManualClock::new();
    let b = Breaker::builder("snap").config(config(3, 2000, 2)).clock(clock.clone()).build().unwrap();
    call(&b, Outcome::Failure);
    assert_eq!(b.snapshot().consecutive_failures, 1);
    call(&b, Outcome::Failure);
    call(&b, Outcome::Failure);
    clock.advance(ms(500));
    let s = b.snapshot();
    assert_eq!((s.state, s.retry_after), (State::Open, Some(ms(1500))));
    clock.advance(ms(1500));
    let _trial = b.acquire().unwrap();
    let s = b.snapshot();
    assert_eq!((s.state, s.trials_admitted, s.trials_succeeded), (State::HalfOpen, 1, 0));
    assert_eq!(serde_json::to_value(&s).unwrap()["state"], "half_open");
}

#[test]
fn a_listener_that_calls_back_into_the_breaker_does_not_deadlock() {
    let seen: Arc<Mutex<Vec<(State, State)>>> = Arc::default();
    let slot: Arc<Mutex<Option<Breaker>>> = Arc::default();
    let (seen2, slot2) = (seen.clone(), slot.clone());
    let b = Breaker::builder("reentrant")
        .config(config(1, 1000, 1))
        .clock(ManualClock::new())
        .on_state_change(move |t: &Transition| {
            seen2.lock().unwrap().push((t.from, t.to));
            let breaker = slot2.lock().unwrap().clone();
            if let Some(breaker) = breaker {
                // Reads and writes the breaker from inside its own event.
                let _ = breaker.snapshot();
                if t.to == State::Open {
                    breaker.force_open();
                }
            }
        })
        .build()
        .unwrap();
    *slot.lock().unwrap() = Some(b.clone());
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::ForcedOpen);
    assert_eq!(*seen.lock().unwrap(), [(State::Closed, State::Open), (State::Open, State::ForcedOpen)]);
}

#[test]
fn metrics_count_calls_rejections_transitions_and_state() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let b = Breaker::builder("metered").config(config(2, 1000, 1)).clock(ManualClock::new()).build().unwrap();
        call(&b, Outcome::Success);
        call(&b, Outcome::Failure);
        call(&b, Outcome::Failure);
        assert!(!call(&b, Outcome::Success));
        call(&b, Outcome::Ignore);
    });
    let values: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels: Vec<String> = key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            (format!("{}{{{}}}", key.key().name(), labels.join(",")), value)
        })
        .collect();
    let get = |name: &str| values.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    assert_eq!(get("chassis_breaker_calls_total{breaker=metered,outcome=success}"), Some(&DebugValue::Counter(1)));
    assert_eq!(get("chassis_breaker_calls_total{breaker=metered,outcome=failure}"), Some(&DebugValue::Counter(2)));
    assert_eq!(get("chassis_breaker_rejections_total{breaker=metered}"), Some(&DebugValue::Counter(2)));
    assert_eq!(
        get("chassis_breaker_transitions_total{breaker=metered,from=closed,to=open}"),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(get("chassis_breaker_state{breaker=metered}"), Some(&DebugValue::Gauge(1.0.into())));
}
