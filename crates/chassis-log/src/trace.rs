//! The W3C trace context a span carries, as the log writes it: read from a
//! `traceparent` field (or `trace_id`, `span_id`, `trace_sampled`), inherited
//! by inner spans, turned into Cloud Logging's trace keys.

use std::fmt;

/// A W3C trace context in scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Trace {
    /// Copied, not shared, by the spans that inherit it: inline, that is a
    /// copy of 33 bytes, cheaper than an allocation and a shared count.
    pub(crate) trace_id: Option<Id>,
    pub(crate) span_id: Option<Id>,
    pub(crate) sampled: Option<bool>,
}

impl Trace {
    /// Parses `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>` (a later
    /// version may follow it with `-` and more); `None` when malformed, of
    /// the invalid version `ff`, or when an id is all zeros (invalid by the
    /// spec).
    pub(crate) fn from_traceparent(header: &str) -> Option<Self> {
        let h = header.trim().as_bytes();
        if h.len() < 55 || h[2] != b'-' || h[35] != b'-' || h[52] != b'-' {
            return None;
        }
        let (version, trace, span, flags) = (&h[..2], &h[3..35], &h[36..52], &h[53..55]);
        let hex = |part: &[u8]| part.iter().all(u8::is_ascii_hexdigit);
        let nonzero = |part: &[u8]| part.iter().any(|&b| b != b'0');
        if !(hex(version) && hex(trace) && hex(span) && hex(flags)) || version.eq_ignore_ascii_case(b"ff") {
            return None;
        }
        if h.len() > 55 && (version == b"00" || h[55] != b'-') {
            return None;
        }
        if !(nonzero(trace) && nonzero(span)) {
            return None;
        }
        // The sampled flag is the low bit of the last hex digit.
        let sampled = (flags[1] as char).to_digit(16).is_some_and(|d| d & 1 == 1);
        Some(Self { trace_id: Some(Id::lowercase(trace)), span_id: Some(Id::lowercase(span)), sampled: Some(sampled) })
    }

    /// Takes what `recorded` has (a later `record` of trace fields).
    pub(crate) fn overlay(&mut self, recorded: Self) {
        if recorded.trace_id.is_some() {
            self.trace_id = recorded.trace_id;
        }
        if recorded.span_id.is_some() {
            self.span_id = recorded.span_id;
        }
        if recorded.sampled.is_some() {
            self.sampled = recorded.sampled;
        }
    }

    /// Fills what `self` lacks from `outer`.
    pub(crate) fn inherit(&mut self, outer: &Self) {
        if self.trace_id.is_none() {
            self.trace_id.clone_from(&outer.trace_id);
        }
        if self.span_id.is_none() {
            self.span_id.clone_from(&outer.span_id);
        }
        if self.sampled.is_none() {
            self.sampled = outer.sampled;
        }
    }
}

/// The longest id kept inline: a W3C trace id's 32 hex digits.
const INLINE_ID: usize = 32;

/// A trace or span id as logged: inline up to 32 bytes (every W3C id), shared
/// beyond (a `trace_id` field of another shape).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Id {
    Inline { len: u8, bytes: [u8; INLINE_ID] },
    Shared(std::sync::Arc<str>),
}

impl Id {
    pub(crate) fn new(id: &str) -> Self {
        Self::inline(id.as_bytes()).unwrap_or_else(|| Self::Shared(id.into()))
    }

    /// `hex` (ASCII hex digits, as `from_traceparent` checked) in lowercase.
    fn lowercase(hex: &[u8]) -> Self {
        match Self::inline(hex) {
            Some(Self::Inline { len, mut bytes }) => {
                bytes.make_ascii_lowercase();
                Self::Inline { len, bytes }
            }
            _ => Self::Shared(String::from_utf8_lossy(hex).to_ascii_lowercase().into()),
        }
    }

    /// `text` copied inline, if it fits.
    fn inline(text: &[u8]) -> Option<Self> {
        let mut bytes = [0; INLINE_ID];
        bytes.get_mut(..text.len())?.copy_from_slice(text);
        Some(Self::Inline { len: u8::try_from(text.len()).ok()?, bytes })
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `&str` (and ASCII-lowercased): valid UTF-8.
            Self::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            Self::Shared(id) => id,
        }
    }
}

impl std::ops::Deref for Id {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing_follows_the_spec() {
        let t = Trace::from_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(t.sampled, Some(true));
        let unsampled = Trace::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert_eq!(unsampled.sampled, Some(false));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(Trace::from_traceparent(bad), None, "{bad}");
        }
    }
}
