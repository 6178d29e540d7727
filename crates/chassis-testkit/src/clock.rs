//! Time for tests: tokio's paused clock, and a wall clock that follows it for
//! the crates' injectable clocks (`Worker::with_clock`, `Producer::with_clock`),
//! so tests of delays, backoff and timeouts run in milliseconds and never
//! sleep for real.
//!
//! Start the test with `#[tokio::test(start_paused = true)]` (tokio's
//! `test-util` feature), or call `tokio::time::pause()` first.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wall-clock time [`system_time`] starts from: 2026-01-01T00:00:00Z.
pub const EPOCH: Duration = Duration::from_secs(1_767_225_600);

/// A wall clock that follows tokio's clock: `EPOCH` (2026-01-01T00:00:00Z)
/// plus how far tokio's clock moved since its first call in this process.
/// With a paused clock it moves only when the test advances it (or tokio
/// auto-advances an idle runtime). A `fn() -> SystemTime`, what the crates'
/// `with_clock` take.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use chassis_testkit::clock;
///
/// tokio::time::pause();
/// let before = clock::system_time();
/// tokio::time::advance(Duration::from_secs(90)).await;
/// assert_eq!(clock::system_time().duration_since(before).unwrap(), Duration::from_secs(90));
/// # }
/// ```
pub fn system_time() -> SystemTime {
    static START: OnceLock<tokio::time::Instant> = OnceLock::new();
    let start = *START.get_or_init(tokio::time::Instant::now);
    UNIX_EPOCH + EPOCH + tokio::time::Instant::now().saturating_duration_since(start)
}

/// Lets every task that can make progress run: yields to the runtime a few
/// times (on a paused clock, without moving it).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
/// let set = flag.clone();
/// tokio::spawn(async move { set.store(true, std::sync::atomic::Ordering::SeqCst) });
/// chassis_testkit::clock::settle().await;
/// assert!(flag.load(std::sync::atomic::Ordering::SeqCst));
/// # }
/// ```
pub async fn settle() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

/// Moves a paused clock forward by `by`, every timer due on the way firing
/// in order (it sleeps, and tokio's auto-advance jumps from timer to timer
/// while the runtime idles — what tokio recommends over `time::advance`),
/// then lets woken tasks run ([`settle`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
///
/// tokio::time::pause();
/// let timer = tokio::spawn(tokio::time::sleep(Duration::from_secs(3600)));
/// chassis_testkit::clock::advance(Duration::from_secs(3601)).await; // an hour, in no time
/// assert!(timer.is_finished());
/// # }
/// ```
///
/// On a clock that is not paused it really sleeps.
pub async fn advance(by: Duration) {
    tokio::time::sleep(by).await;
    settle().await;
}
