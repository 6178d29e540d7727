//! RFC 3339 UTC timestamps with nanoseconds, without a date-time dependency: the
//! civil date is computed once per second and cached per thread.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time (Howard Hinnant's days-to-civil).
fn civil(buf: &mut String, secs: u64) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(buf, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
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
