//! chassis-tasks against a real SQS emulator: `moto_server`, spawned on a free
//! loopback port per test and killed afterwards.
#![cfg(feature = "sqs")]
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tasks/conformance.rs"]
#[allow(dead_code)]
mod conformance;
mod crash;
mod delivery;
mod fifo;
mod moto;
mod outage;
mod proxy;
mod shutdown;
mod worker;
