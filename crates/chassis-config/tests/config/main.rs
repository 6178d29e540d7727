//! Integration tests of chassis-config, one module per concern.
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod checks;
mod datetimes;
mod effective;
mod env_mapping;
mod layers;
mod report;
mod required;
mod secrets;
mod sections;
mod serde_shapes;
mod support;
mod typo_guard;
