//! The breakers: per-key breakers, overrides, bounded with idle eviction.

use chassis_breaker::{Breakers, Config, ManualClock, Outcome, State};

use crate::support::{call, config, ms};

#[test]
fn one_breaker_per_key_with_per_key_overrides() {
    let breakers = Breakers::builder()
        .config(config(5, 1000, 1))
        .override_key("https://fragile:443", config(1, 1000, 1))
        .build()
        .unwrap();
    let fragile = breakers.get("https://fragile:443").unwrap();
    let sturdy = breakers.get("https://sturdy:443").unwrap();
    call(&fragile, Outcome::Failure);
    call(&sturdy, Outcome::Failure);
    assert_eq!(fragile.state(), State::Open);
    assert_eq!(sturdy.state(), State::Closed);
    assert_eq!(breakers.get("https://fragile:443").unwrap().state(), State::Open, "the same breaker again");
    assert_eq!(fragile.config().failure_threshold, 1);
}

#[test]
fn bounded_evicting_idle_then_least_recently_used_closed_breakers() {
    let clock = ManualClock::new();
    let breakers = Breakers::builder()
        .config(config(1, 60_000, 1))
        .max_entries(3)
        .idle_timeout(ms(1000))
        .clock(clock.clone())
        .build()
        .unwrap();
    let open = breakers.get("open").unwrap();
    call(&open, Outcome::Failure);
    breakers.get("a").unwrap();
    clock.advance(ms(10));
    breakers.get("b").unwrap();
    breakers.get("c").unwrap(); // full: evicts the least recently used closed one ("a")
    assert_eq!(breakers.len(), 3);
    assert_eq!(breakers.get("open").unwrap().state(), State::Open, "an open breaker is kept");
    clock.advance(ms(2000));
    breakers.get("d").unwrap(); // everything idle: evicted
    assert_eq!(breakers.len(), 1);
}

#[test]
fn invalid_configs_are_errors_not_panics() {
    let mut bad = Config::default();
    bad.half_open_max_calls = 0;
    assert!(Breakers::new(bad.clone()).is_err());
    assert!(Breakers::builder().override_key("x", bad.clone()).build().is_err());
    assert!(chassis_breaker::Breaker::new("x", bad).is_err());
}

/// The breaker label values of every series in `snapshot`, and the state gauge of each.
fn breaker_series(
    snapshot: metrics_util::debugging::Snapshot,
) -> (std::collections::BTreeSet<String>, std::collections::BTreeMap<String, f64>) {
    use metrics_util::debugging::DebugValue;
    let mut labels = std::collections::BTreeSet::new();
    let mut states = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshot.into_vec() {
        let Some(breaker) = key.key().labels().find(|l| l.key() == "breaker").map(|l| l.value().to_owned()) else {
            continue;
        };
        if let (true, DebugValue::Gauge(v)) = (key.key().name() == "chassis_breaker_state", &value) {
            states.insert(breaker.clone(), v.into_inner());
        }
        labels.insert(breaker);
    }
    (labels, states)
}

/// Issue 15 §4: an evicted breaker's state no longer reads open, and hosts
/// that come and go cannot grow the label set without bound.
#[test]
fn evicted_breakers_do_not_read_open_and_the_label_set_is_bounded() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let clock = ManualClock::new();
        let breakers = Breakers::builder()
            .config(config(1, 60_000, 1))
            .max_entries(8)
            .idle_timeout(ms(1))
            .clock(clock.clone())
            .build()
            .unwrap();
        for host in 0..3 {
            let breaker = breakers.get(&format!("failing-{host}")).unwrap();
            call(&breaker, Outcome::Failure);
            assert_eq!(breaker.state(), State::Open);
        }
        for host in 0..200 {
            clock.advance(ms(2));
            call(&breakers.get(&format!("host-{host}")).unwrap(), Outcome::Success);
        }
        assert!(breakers.len() <= 8);
        assert!((0..3).all(|h| !breakers.contains(&format!("failing-{h}"))), "the open ones were evicted too");
    });
    let (labels, states) = breaker_series(snapshotter.snapshot());
    for host in 0..3 {
        assert_eq!(states.get(&format!("failing-{host}")), Some(&0.0), "evicted: reads closed, never open");
    }
    assert!(labels.len() <= 9, "at most max_metric_keys (default: max_entries) + `_other`: {labels:?}");
    assert!(labels.contains("_other"), "{labels:?}");
    assert!(!states.contains_key("_other"), "no state gauge for the aggregate");
}

/// A key that comes back after eviction gets its own series again, and a
/// retired breaker still in use elsewhere no longer writes the state.
#[test]
fn a_key_that_comes_back_reports_its_new_breaker() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let clock = ManualClock::new();
        let breakers = Breakers::builder().config(config(1, 60_000, 1)).max_entries(1).clock(clock).build().unwrap();
        let old = breakers.get("a").unwrap();
        breakers.get("b").unwrap(); // evicts "a"
        let new = breakers.get("a").unwrap();
        call(&old, Outcome::Failure); // the evicted breaker, still held by a caller, opens
        assert_eq!(old.state(), State::Open);
        assert_eq!(new.state(), State::Closed);
    });
    let (_, states) = breaker_series(snapshotter.snapshot());
    assert_eq!(states.get("a"), Some(&0.0), "the registry's breaker for `a` is closed");
}
