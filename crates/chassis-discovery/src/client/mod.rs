//! The client side: a cached, watched instance list per service
//! ([`Resolver`]) and the `reqwest-middleware` middleware that picks an
//! instance for each request ([`DiscoveryMiddleware`]).

mod middleware;
mod resolver;

pub use middleware::{DiscoveryMiddleware, Idempotent, client};
pub use resolver::Resolver;
