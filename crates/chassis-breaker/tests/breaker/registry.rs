//! The registry: per-key breakers, overrides, bounded with idle eviction.

use chassis_breaker::{Config, ManualClock, Outcome, Registry, State};

use crate::support::{call, config, ms};

#[test]
fn one_breaker_per_key_with_per_key_overrides() {
    let registry = Registry::builder()
        .config(config(5, 1000, 1))
        .override_key("https://fragile:443", config(1, 1000, 1))
        .build()
        .unwrap();
    let fragile = registry.get("https://fragile:443").unwrap();
    let sturdy = registry.get("https://sturdy:443").unwrap();
    call(&fragile, Outcome::Failure);
    call(&sturdy, Outcome::Failure);
    assert_eq!(fragile.state(), State::Open);
    assert_eq!(sturdy.state(), State::Closed);
    assert_eq!(registry.get("https://fragile:443").unwrap().state(), State::Open, "the same breaker again");
    assert_eq!(fragile.config().failure_threshold, 1);
}

#[test]
fn bounded_evicting_idle_then_least_recently_used_closed_breakers() {
    let clock = ManualClock::new();
    let registry = Registry::builder()
        .config(config(1, 60_000, 1))
        .max_entries(3)
        .idle_timeout(ms(1000))
        .clock(clock.clone())
        .build()
        .unwrap();
    let open = registry.get("open").unwrap();
    call(&open, Outcome::Failure);
    registry.get("a").unwrap();
    clock.advance(ms(10));
    registry.get("b").unwrap();
    registry.get("c").unwrap(); // full: evicts the least recently used closed one ("a")
    assert_eq!(registry.len(), 3);
    assert_eq!(registry.get("open").unwrap().state(), State::Open, "an open breaker is kept");
    clock.advance(ms(2000));
    registry.get("d").unwrap(); // everything idle: evicted
    assert_eq!(registry.len(), 1);
}

#[test]
fn invalid_configs_are_errors_not_panics() {
    let mut bad = Config::default();
    bad.half_open_max_calls = 0;
    assert!(Registry::new(bad.clone()).is_err());
    assert!(Registry::builder().override_key("x", bad.clone()).build().is_err());
    assert!(chassis_breaker::Breaker::new("x", bad).is_err());
}
