//! JSON encoding straight into a reused buffer: no intermediate strings.

use std::fmt::{self, Write as _};

/// Appends `s` as a JSON string literal (with quotes).
#[inline]
pub(crate) fn string(buf: &mut String, s: &str) {
    buf.push('"');
    escape(buf, s);
    buf.push('"');
}

/// Bytes that cannot stand in a JSON string as they are.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table
};

/// Appends the escaped contents of `s` (without quotes).
#[inline]
pub(crate) fn escape(buf: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(at) = find_escape(bytes, start) {
        // `at` is at an ASCII byte, so both slices fall on char boundaries.
        buf.push_str(&s[start..at]);
        match bytes[at] {
            b'"' => buf.push_str("\\\""),
            b'\\' => buf.push_str("\\\\"),
            b'\n' => buf.push_str("\\n"),
            b'\r' => buf.push_str("\\r"),
            b'\t' => buf.push_str("\\t"),
            b => {
                buf.push_str("\\u00");
                buf.push(char::from(HEX[usize::from(b >> 4)]));
                buf.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        start = at + 1;
    }
    buf.push_str(&s[start..]);
}

/// The first byte at or after `from` that needs escaping. Eight bytes are
/// tested at a time, as one word (most values need no escape at all); the
/// table finds the byte in a word that has one.
#[inline]
fn find_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A high bit per byte that is zero (exact as to whether there is one).
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_ne_bytes(word);
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS; // a byte < 0x20
        let special =
            zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | zero(w ^ (ONES * 0x7f));
        if control | special != 0 {
            break;
        }
        i += 8;
    }
    bytes.get(i..)?.iter().position(|&b| NEEDS_ESCAPE[usize::from(b)]).map(|offset| i + offset)
}

const HEX: [u8; 16] = *b"0123456789abcdef";

/// Appends the decimal digits of `n`, left-padded with zeros to `width`.
#[inline]
pub(crate) fn digits(buf: &mut String, n: u64, width: usize) {
    let mut itoa = itoa::Buffer::new();
    let text = itoa.format(n);
    for _ in text.len()..width {
        buf.push('0');
    }
    buf.push_str(text);
}

/// Appends a signed integer.
#[inline]
pub(crate) fn signed(buf: &mut String, n: i64) {
    if n < 0 {
        buf.push('-');
    }
    digits(buf, n.unsigned_abs(), 1);
}

/// A `fmt::Write` that escapes what is written into a JSON string body, so
/// `Debug` and `Display` values are formatted without an intermediate `String`.
pub(crate) struct Escaper<'a>(pub(crate) &'a mut String);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s);
        Ok(())
    }
}

/// Appends a formatted value as a JSON string literal.
pub(crate) fn display(buf: &mut String, value: &dyn fmt::Display) {
    buf.push('"');
    let _ = write!(Escaper(buf), "{value}");
    buf.push('"');
}

/// Appends a `Debug` value as a JSON string literal.
pub(crate) fn debug(buf: &mut String, value: &dyn fmt::Debug) {
    buf.push('"');
    let _ = write!(Escaper(buf), "{value:?}");
    buf.push('"');
}

/// Appends a float; JSON has no NaN or infinity, so those become strings.
pub(crate) fn float(buf: &mut String, value: f64) {
    if value.is_finite() {
        // The shortest digits that read back as `value`, as serde_json writes
        // them (an exponent for very large or small values).
        buf.push_str(ryu::Buffer::new().format_finite(value));
    } else {
        let _ = write!(buf, "\"{value}\"");
    }
}

/// Appends an integer.
pub(crate) fn int(buf: &mut String, value: impl fmt::Display) {
    let _ = write!(buf, "{value}");
}

/// The field name as written: raw identifiers lose their `r#`.
#[inline]
pub(crate) fn field_name(name: &str) -> &str {
    name.strip_prefix("r#").unwrap_or(name)
}

/// Cuts an encoded JSON string literal (`"…"`) to at most `max` bytes of content,
/// never inside an escape sequence or a UTF-8 character, and re-closes it.
/// Returns the literal unchanged when it fits or is not a string.
pub(crate) fn cap_literal(literal: &str, max: usize) -> (&str, bool) {
    let Some(body) = literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return (literal, false);
    };
    if body.len() <= max {
        return (literal, false);
    }
    let bytes = body.as_bytes();
    let mut cut = 0;
    let mut i = 0;
    while i < bytes.len() {
        let step = match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'u') => 6,
            b'\\' => 2,
            b if b < 0x80 => 1,
            b if b >= 0xf0 => 4,
            b if b >= 0xe0 => 3,
            _ => 2,
        };
        if i + step > max {
            break;
        }
        i += step;
        cut = i;
    }
    // `cut` ends a whole escape or character: the opening quote plus `cut` bytes.
    (&literal[..=cut], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        let mut buf = String::new();
        string(&mut buf, s);
        buf
    }

    #[test]
    fn escapes_what_json_requires() {
        assert_eq!(enc("a\"b\\c\nd\re\tf\u{1}g\u{7f}é"), r#""a\"b\\c\nd\re\tf\u0001g\u007fé""#);
        assert_eq!(enc(""), r#""""#);
    }

    #[test]
    fn every_byte_to_escape_is_found_at_every_place_in_a_word() {
        // Word by word and byte by byte agree: each ASCII byte (and a
        // two-byte char) at each offset of a 19-byte value, as serde_json
        // reads it back.
        for b in (0u8..0x80).map(char::from).chain(['é']) {
            for at in 0..19 {
                let mut value: String = "abcdefghijklmnopqrs".into();
                value.replace_range(at..=at, &b.to_string());
                let back: String = serde_json::from_str(&enc(&value)).unwrap_or_default();
                assert_eq!(back, value, "{b:?} at {at}");
                let plain = !(b < ' ' || b == '"' || b == '\\' || b == '\u{7f}');
                assert_eq!(enc(&value).len() == value.len() + 2, plain, "{b:?} at {at}");
            }
        }
    }

    #[test]
    fn integers() {
        let mut buf = String::new();
        for (n, width) in [(0u64, 1), (7, 3), (120, 1), (u64::MAX, 1), (5, 9)] {
            digits(&mut buf, n, width);
            buf.push(',');
        }
        signed(&mut buf, i64::MIN);
        buf.push(',');
        signed(&mut buf, -3);
        assert_eq!(buf, "0,007,120,18446744073709551615,000000005,-9223372036854775808,-3");
    }

    #[test]
    fn floats_that_json_cannot_hold_become_strings() {
        let mut buf = String::new();
        float(&mut buf, f64::NAN);
        buf.push(',');
        float(&mut buf, 1.5);
        assert_eq!(buf, r#""NaN",1.5"#);
    }

    #[test]
    fn capping_never_splits_an_escape_or_a_char() {
        let lit = enc("ab\"éc\u{1}d");
        for max in 0..20 {
            let (capped, cut) = cap_literal(&lit, max);
            let mut closed = capped.to_owned();
            if cut {
                closed.push('"');
            }
            let parsed: Result<String, _> = serde_json::from_str(&closed);
            assert!(parsed.is_ok(), "max {max}: {closed}");
        }
        assert_eq!(cap_literal("12345", 2), ("12345", false));
    }
}
