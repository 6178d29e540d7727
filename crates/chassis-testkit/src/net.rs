//! Free loopback addresses.

use std::net::{SocketAddr, TcpListener};

/// A free loopback address (`127.0.0.1:<port>`): bound, read and released, so
/// another process can bind it. (Another may take it meanwhile: rare on a
/// test machine.)
///
/// ```
/// let addr = chassis_testkit::free_addr()?;
/// assert!(addr.ip().is_loopback() && addr.port() != 0);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// When no loopback port can be bound.
pub fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}
