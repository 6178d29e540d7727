//! The durable SQL queues against a real SQLite file and the real PostgreSQL
//! server (127.0.0.1:5432, database `test`, or `CHASSIS_TEST_POSTGRES_URL`):
//! the conformance suite, their extras, and crash tests with SIGKILL.
#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

#[path = "../tasks/conformance.rs"]
#[allow(dead_code)]
mod conformance;
mod crash;
mod extras;
mod support;
