//! Integration tests of chassis-log's formats, one module per concern.
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod context;
mod gcp;
mod golden;
mod hostile;
mod support;
