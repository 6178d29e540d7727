//! The transition rules against a plain, single-threaded reference model.

use chassis_breaker::{Breaker, Config, ManualClock, Outcome, Permit, State};
use proptest::prelude::*;

use crate::support::ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Closed,
    Trial,
}

/// The specification, written the obvious way.
#[derive(Debug)]
struct Model {
    threshold: u32,
    open_ms: u64,
    probe_ms: u64,
    max: u32,
    state: State,
    generation: u32,
    failures: u32,
    open_until: u64,
    probe_deadline: u64,
    admitted: u32,
    succeeded: u32,
}

impl Model {
    fn transition(&mut self, to: State) {
        self.state = to;
        self.generation += 1;
        self.failures = 0;
        self.admitted = 0;
        self.succeeded = 0;
    }

    fn acquire(&mut self, now: u64) -> Result<(u32, Kind), State> {
        match self.state {
            State::Closed => return Ok((self.generation, Kind::Closed)),
            State::Open if now < self.open_until => return Err(State::Open),
            State::Open => {
                self.transition(State::HalfOpen);
                self.probe_deadline = now + self.probe_ms;
            }
            _ => {}
        }
        if self.admitted >= self.max {
            if now < self.probe_deadline {
                return Err(State::HalfOpen);
            }
            self.transition(State::HalfOpen);
            self.probe_deadline = now + self.probe_ms;
        }
        self.admitted += 1;
        Ok((self.generation, Kind::Trial))
    }

    fn record(&mut self, (generation, kind): (u32, Kind), outcome: Outcome, now: u64) {
        if generation != self.generation {
            return;
        }
        match (kind, outcome) {
            (Kind::Closed, Outcome::Failure) => {
                self.failures += 1;
                if self.failures >= self.threshold {
                    self.transition(State::Open);
                    self.open_until = now + self.open_ms;
                }
            }
            (Kind::Closed, Outcome::Success) => self.failures = 0,
            (Kind::Trial, Outcome::Success) => {
                self.succeeded += 1;
                if self.succeeded >= self.max {
                    self.transition(State::Closed);
                }
            }
            (Kind::Trial, Outcome::Failure) => {
                self.transition(State::Open);
                self.open_until = now + self.open_ms;
            }
            (Kind::Trial, _) => self.release((generation, kind)),
            _ => {}
        }
    }

    fn release(&mut self, (generation, kind): (u32, Kind)) {
        if kind == Kind::Trial && generation == self.generation && self.admitted > self.succeeded {
            self.admitted -= 1;
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Call(Outcome),
    Cancel,
    Hold,
    Resolve(usize, Outcome),
    DropHeld(usize),
    Advance(u64),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![Just(Outcome::Success), Just(Outcome::Failure), Just(Outcome::Ignore)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => outcome().prop_map(Op::Call),
        1 => Just(Op::Cancel),
        2 => Just(Op::Hold),
        2 => (0usize..4, outcome()).prop_map(|(i, o)| Op::Resolve(i, o)),
        1 => (0usize..4).prop_map(Op::DropHeld),
        3 => (0u64..150).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_breaker_follows_the_reference_model(
        threshold in 1u32..4,
        max in 1u32..4,
        open_ms in 10u64..100,
        probe_ms in 50u64..200,
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        let mut config = Config::default();
        config.failure_threshold = threshold;
        config.half_open_max_calls = max;
        config.open_timeout_ms = open_ms;
        config.probe_timeout_ms = probe_ms;
        let clock = ManualClock::new();
        let breaker = Breaker::builder("model").config(config).clock(clock.clone()).build().unwrap();
        let mut model = Model {
            threshold, open_ms, probe_ms, max,
            state: State::Closed, generation: 0, failures: 0, open_until: 0, probe_deadline: 0, admitted: 0, succeeded: 0,
        };
        let mut now = 0u64;
        let mut held: Vec<(Permit<&Breaker>, (u32, Kind))> = Vec::new();
        for op in ops {
            match op {
                Op::Advance(by) => {
                    clock.advance(ms(by));
                    now += by;
                }
                Op::Call(_) | Op::Cancel | Op::Hold => {
                    let real = breaker.acquire();
                    let expected = model.acquire(now);
                    match (&real, &expected) {
                        (Ok(permit), Ok((_, kind))) => prop_assert_eq!(permit.is_trial(), *kind == Kind::Trial),
                        (Err(rejected), Err(state)) => prop_assert_eq!(rejected.state(), *state),
                        _ => prop_assert!(false, "acquire: real {:?}, model {:?}", real.as_ref().map(|_| ()), expected),
                    }
                    if let (Ok(permit), Ok(ticket)) = (real, expected) {
                        match op {
                            Op::Call(outcome) => {
                                permit.record(outcome);
                                model.record(ticket, outcome, now);
                            }
                            Op::Cancel => {
                                drop(permit);
                                model.release(ticket);
                            }
                            _ => held.push((permit, ticket)),
                        }
                    }
                }
                Op::Resolve(i, outcome) => {
                    if i < held.len() {
                        let (permit, ticket) = held.remove(i);
                        permit.record(outcome);
                        model.record(ticket, outcome, now);
                    }
                }
                Op::DropHeld(i) => {
                    if i < held.len() {
                        let (permit, ticket) = held.remove(i);
                        drop(permit);
                        model.release(ticket);
                    }
                }
            }
            let snapshot = breaker.snapshot();
            prop_assert_eq!(snapshot.state, model.state);
            prop_assert_eq!(snapshot.generation, model.generation);
            if model.state == State::Closed {
                prop_assert_eq!(snapshot.consecutive_failures, model.failures);
            }
            if model.state == State::HalfOpen {
                prop_assert_eq!((snapshot.trials_admitted, snapshot.trials_succeeded), (model.admitted, model.succeeded));
            }
        }
    }
}
