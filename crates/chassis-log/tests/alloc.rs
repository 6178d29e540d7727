//! Steady-state events allocate nothing: the line is rendered into a reused
//! per-thread buffer, span fields were rendered when the span was created, and
//! the per-callsite part is cached. Counted with an instrumented global allocator
//! (this binary holds only this test, so no other thread allocates meanwhile).
#![allow(missing_docs, clippy::unwrap_used)]

use std::alloc::System;
use std::io;

use chassis_log::{Config, Format, JsonLayer};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tracing_subscriber::prelude::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const EVENTS: usize = 1_000;

fn allocations_per_event(format: Format) -> f64 {
    let config = Config::new("billing", "1.4.2").format(format);
    let subscriber = tracing_subscriber::registry().with(JsonLayer::new(&config, io::sink).unwrap());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("task", job_id = "j-1", task = "fetch", attempt = 2u32);
        let _entered = span.enter();
        let log = |i: usize| tracing::info!(rows = i, table = "invoices", "imported rows");
        // Warm up with the same events: the thread's buffer grows to its
        // longest line and the callsite cache fills, once.
        for i in 0..EVENTS {
            log(i);
        }
        // The allocator counts every thread of the process (the test harness
        // has its own): the fewest of three rounds is this thread's steady state.
        (0..3)
            .map(|_| {
                let region = Region::new(GLOBAL);
                for i in 0..EVENTS {
                    log(i);
                }
                region.change().allocations
            })
            .min()
            .unwrap_or(usize::MAX) as f64
            / EVENTS as f64
    })
}

#[test]
fn steady_state_events_do_not_allocate() {
    for format in [Format::Json, Format::Gcp] {
        let per_event = allocations_per_event(format);
        assert!(per_event <= 1.0, "{format:?}: {per_event} allocations per event");
        assert_eq!(per_event, 0.0, "{format:?}: {per_event} allocations per event");
    }
}
