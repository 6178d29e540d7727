//! Integration tests of chassis-tasks, one module per concern.
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod delivery;
mod fifo;
mod labels;
mod memory;
mod operations;
mod shutdown;
mod support;
mod wire_compat;
mod worker;
