//! RFC 3339 UTC timestamps with nanoseconds: the civil date (from `time`) is
//! computed once per second and cached per thread.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use time::{OffsetDateTime, PrimitiveDateTime};

use crate::encode;

thread_local! {
    /// The last second formatted on this thread and its `YYYY-MM-DDTHH:MM:SS`.
    static LAST: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends `time` as `2026-11-29T02:10:00.123456789Z` (JSON string, with quotes).
/// Times before 1970 are written as the epoch.
pub(crate) fn rfc3339(buf: &mut String, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, nanos) = (since.as_secs(), since.subsec_nanos());
    buf.push('"');
    let cached = LAST.try_with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else { return false };
        if last.0 != secs {
            last.1.clear();
            civil(&mut last.1, secs);
            last.0 = secs;
        }
        buf.push_str(&last.1);
        true
    });
    if cached != Ok(true) {
        civil(buf, secs);
    }
    buf.push('.');
    encode::digits(buf, u64::from(nanos), 9);
    buf.push_str("Z\"");
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time; past year 9999, its last second.
fn civil(buf: &mut String, secs: u64) {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc());
    let _ = write!(
        buf,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn fmt(secs: u64, nanos: u32) -> String {
        let mut buf = String::new();
        rfc3339(&mut buf, UNIX_EPOCH + Duration::new(secs, nanos));
        buf
    }

    #[test]
    fn known_instants() {
        assert_eq!(fmt(0, 0), "\"1970-01-01T00:00:00.000000000Z\"");
        assert_eq!(fmt(951_782_400, 5), "\"2000-02-29T00:00:00.000000005Z\"");
        assert_eq!(fmt(1_795_918_200, 123_456_789), "\"2026-11-29T02:10:00.123456789Z\"");
        assert_eq!(fmt(4_102_444_799, 999_999_999), "\"2099-12-31T23:59:59.999999999Z\"");
        // Twice in the same second uses the cache and gives the same text.
        assert_eq!(fmt(1_795_918_200, 1), "\"2026-11-29T02:10:00.000000001Z\"");
    }
}
