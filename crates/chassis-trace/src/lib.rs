//! W3C [trace context](https://www.w3.org/TR/trace-context/) without
//! OpenTelemetry: a [`TraceContext`] parsed from and written to the
//! `traceparent` and `tracestate` headers, kept on `tracing` spans.
//!
//! The chassis crates use it to carry one trace across processes: the HTTP
//! server continues the caller's trace in its request span, the breaker's
//! HTTP client sends the current context, a task carries it in its
//! `traceparent` message attribute and the worker continues it. A span that
//! carries a context records it in its `traceparent` field too, which is what
//! chassis-log reads to fill `logging.googleapis.com/trace` and `spanId`.
//!
//! ## Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `otel` | the span ids OpenTelemetry gives the spans (tracing-opentelemetry), so that what is logged, sent on and exported are one trace | No |
//!
//! ```
//! use chassis_trace::TraceContext;
//! use tracing_subscriber::prelude::*;
//!
//! let caller = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
//! let subscriber = tracing_subscriber::registry();
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request", traceparent = tracing::field::Empty);
//!     let ours = caller.child();
//!     chassis_trace::attach(&span, ours.clone());
//!     let _entered = span.enter();
//!     // Deeper down, in an HTTP client or a task producer:
//!     let current = chassis_trace::current().unwrap();
//!     assert_eq!(current, ours);
//!     assert_eq!(current.trace_id(), caller.trace_id());
//! });
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;

use tracing_subscriber::registry::LookupSpan as _;

/// The README's code blocks, compiled as doctests so that they keep matching
/// the code (it has none yet; any added later is compiled).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The header (and task attribute) with the trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";
/// The header with vendor-specific trace state, passed on unchanged.
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` passed on, in bytes (the spec lets a
/// propagator drop a longer one rather than cut it).
const MAX_TRACESTATE: usize = 512;

/// One span's place in a trace: the trace id, this span's id, the sampled
/// flag and the vendors' `tracestate`.
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    flags: u8,
    state: Option<String>,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("traceparent", &self.traceparent())
            .field("tracestate", &self.state)
            .finish()
    }
}

/// Writes the `traceparent` value: `00-<trace id>-<span id>-<flags>`.
impl fmt::Display for TraceContext {
    /// `00-<trace id>-<span id>-<flags>`, in lowercase hex (W3C Trace Context §3.2).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header().as_str())
    }
}

/// A `traceparent` value written into a fixed buffer, without an allocation
/// ([`TraceContext::header`]): 55 bytes, `00-<32 hex>-<16 hex>-<2 hex>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Traceparent([u8; 55]);

impl Traceparent {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and dashes are written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The span id in it, 16 lowercase hex digits (as
    /// [`TraceContext::span_id`], without an allocation).
    pub fn span_id(&self) -> &str {
        // Sliced from the whole value: checking 16 bytes alone as UTF-8
        // takes longer than 55 (too short for the word-at-a-time path).
        self.as_str().get(36..52).unwrap_or_default()
    }
}

impl fmt::Debug for Traceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Traceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A span id as text, 16 lowercase hex digits, without an allocation: for a
/// log field such as a span's parent id ([`TraceContext::parse_with_span_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanIdText<'a> {
    /// Sliced from the `traceparent` the sender wrote (in lowercase, as the
    /// spec has senders write it, W3C Trace Context §3.2).
    Sent(&'a str),
    /// Written out from the parsed context: the sender used uppercase.
    Written([u8; 16]),
}

impl SpanIdText<'_> {
    /// The span id: 16 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sent(id) => id,
            // Only hex digits are written.
            Self::Written(digits) => std::str::from_utf8(digits).unwrap_or_default(),
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The value of 8 ASCII hex digits (either case), the first the most
/// significant, and a mask that is zero exactly when all 8 are hex digits
/// (otherwise the value means nothing).
///
/// All 8 are checked and converted at once in a `u64` (SWAR), without a
/// branch or a table lookup per digit, and the caller branches once for all
/// the words of a header: a header on every request and task.
fn hex8(digits: [u8; 8]) -> (u32, u64) {
    let x = u64::from_be_bytes(digits);
    // A byte of 0x80 or more makes the word bad here; the sums below may then
    // carry across bytes, which no longer matters.
    let not_ascii = x & HIGH_BITS;
    // Per byte: its high bit set where the byte is at least `low`.
    let at_least = |x: u64, low: u8| x.wrapping_add(ONES * u64::from(0x80 - low)) & HIGH_BITS;
    let digit = at_least(x, b'0') & !at_least(x, b'9' + 1);
    let folded = x | (ONES * 0x20); // 'A'..='F' as 'a'..='f'
    let letter = at_least(folded, b'a') & !at_least(folded, b'f' + 1);
    let bad = not_ascii | (!(digit | letter) & HIGH_BITS);
    // A digit's value is its low nibble; a letter's, its low nibble + 9.
    let nibbles = (x & (ONES * 0x0f)) + (letter >> 7) * 9;
    // One nibble per byte, the first in the top byte, packed into 32 bits.
    let packed = (nibbles | nibbles >> 4) & 0x00ff_00ff_00ff_00ff;
    let packed = (packed | packed >> 8) & 0x0000_ffff_0000_ffff;
    ((packed | packed >> 16) as u32, bad)
}

/// `value` as 8 lowercase hex digits, the most significant first ([`hex8`]'s
/// inverse, as branch-free).
fn hex8_of(value: u32) -> [u8; 8] {
    // Spread the nibbles one per byte, the most significant in the top byte.
    let x = u64::from(value);
    let x = (x << 16 | x) & 0x0000_ffff_0000_ffff;
    let x = (x << 8 | x) & 0x00ff_00ff_00ff_00ff;
    let x = (x << 4 | x) & 0x0f0f_0f0f_0f0f_0f0f;
    // '0' + n, and 39 more ('a' - '0' - 10) where n is 10 or more.
    let ten_up = ((x + ONES * 6) & (ONES * 0x10)) >> 4;
    (x + ONES * u64::from(b'0') + ten_up * 39).to_be_bytes()
}

/// Writes `value`'s low `out.len() * 4` bits as lowercase hex, the most
/// significant first (`out.len()` a multiple of 8, at most 32).
fn hex_into(out: &mut [u8], value: u128) {
    let chunks = out.len() / 8;
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&hex8_of((value >> (32 * (chunks - 1 - i))) as u32));
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id;
        }
    }
}

impl TraceContext {
    /// A new trace: random trace and span ids, sampled.
    pub fn root() -> Self {
        let trace_id = loop {
            let id = fastrand::u128(..);
            if id != 0 {
                break id;
            }
        };
        Self { trace_id, span_id: nonzero_u64(), flags: 1, state: None }
    }

    /// Parses a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`) and its
    /// `tracestate`. `None` when `traceparent` is malformed, has an all-zero
    /// id or the invalid version `ff` (the spec says: start a new trace then).
    /// A later version is read by its first four fields, as the spec asks. A
    /// `tracestate` longer than 512 bytes or not visible ASCII is dropped.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        // Fixed positions, `00-<32>-<16>-<2>`: a header on every request and
        // task is read without splitting it or going through `from_str_radix`.
        let h = traceparent.trim_ascii().as_bytes();
        if h.len() < 55 || h[2] != b'-' || h[35] != b'-' || h[52] != b'-' {
            return None;
        }
        let word = |at: usize| {
            let mut digits = [0; 8];
            digits.copy_from_slice(&h[at..at + 8]);
            hex8(digits)
        };
        // The two 2-digit fields in one word, `00<version>00<flags>`.
        let (small, bad_small) = hex8([b'0', b'0', h[0], h[1], b'0', b'0', h[53], h[54]]);
        let ((t0, bad0), (t1, bad1), (t2, bad2), (t3, bad3)) = (word(3), word(11), word(19), word(27));
        let ((s0, bad4), (s1, bad5)) = (word(36), word(44));
        let bad = bad_small | bad0 | bad1 | bad2 | bad3 | bad4 | bad5;
        let (version, flags) = (small >> 16, small & 0xff);
        if bad != 0 || version == 0xff || (h.len() > 55 && (version == 0 || h[55] != b'-')) {
            return None;
        }
        let trace_id = u128::from(t0) << 96 | u128::from(t1) << 64 | u128::from(t2) << 32 | u128::from(t3);
        let span_id = u64::from(s0) << 32 | u64::from(s1);
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        let state = tracestate
            .map(str::trim)
            .filter(|s| {
                !s.is_empty() && s.len() <= MAX_TRACESTATE && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
            })
            .map(str::to_owned);
        Some(Self { trace_id, span_id, flags: (flags & 1) as u8, state })
    }

    /// [`parse`](Self::parse), and the sender's span id as text for a log
    /// field (the new span's parent id): sliced from `traceparent` when it
    /// is in lowercase, as senders write it, rather than written out anew.
    ///
    /// ```
    /// use chassis_trace::{SpanIdText, TraceContext};
    ///
    /// let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// let (context, span_id) = TraceContext::parse_with_span_id(sent, None).unwrap();
    /// assert_eq!((span_id, span_id.as_str()), (SpanIdText::Sent("00f067aa0ba902b7"), "00f067aa0ba902b7"));
    /// assert_eq!(context.span_id(), span_id.as_str());
    /// let upper = sent.to_ascii_uppercase();
    /// let (_, span_id) = TraceContext::parse_with_span_id(&upper, None).unwrap();
    /// assert_eq!(span_id.as_str(), "00f067aa0ba902b7");
    /// ```
    pub fn parse_with_span_id<'a>(traceparent: &'a str, tracestate: Option<&str>) -> Option<(Self, SpanIdText<'a>)> {
        let context = Self::parse(traceparent, tracestate)?;
        let span_id = match span_id_as_sent(traceparent) {
            Some(sent) => SpanIdText::Sent(sent),
            None => {
                let mut digits = [0; 16];
                hex_into(&mut digits, u128::from(context.span_id));
                SpanIdText::Written(digits)
            }
        };
        Some((context, span_id))
    }

    /// The context of a new span: a [`child`](Self::child) of `parent`, or
    /// a new trace ([`root`](Self::root)) without one.
    #[must_use]
    pub fn next(parent: Option<&Self>) -> Self {
        parent.map_or_else(Self::root, Self::child)
    }

    /// A span in the same trace, a child of this one: a new span id, the same
    /// trace id, flags and `tracestate`.
    #[must_use]
    pub fn child(&self) -> Self {
        Self { span_id: nonzero_u64(), ..self.clone() }
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// This span's id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// Whether the trace is sampled (the flags' low bit).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The `traceparent` value (as [`Display`](fmt::Display) writes it).
    pub fn traceparent(&self) -> String {
        self.header().as_str().to_owned()
    }

    /// The `traceparent` value in a fixed buffer, without an allocation: for
    /// a header, or a span field given as text
    /// (`traceparent = context.header().as_str()`), which a log layer reads
    /// without formatting it.
    pub fn header(&self) -> Traceparent {
        // Written by hand: `{:032x}` of a u128 through the formatting
        // machinery cost more than the rest of a span's trace set-up.
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        hex_into(&mut out[3..35], self.trace_id);
        out[35] = b'-';
        hex_into(&mut out[36..52], u128::from(self.span_id));
        out[52] = b'-';
        out[53..].copy_from_slice(&hex8_of(u32::from(self.flags))[6..]);
        Traceparent(out)
    }

    /// The `tracestate` value, if the caller sent one.
    pub fn tracestate(&self) -> Option<&str> {
        self.state.as_deref()
    }
}

/// The span id in `traceparent` as it was written there, when it is 16
/// lowercase hex digits at its place (`00-<32>-<16>-<2>`): a slice of it.
fn span_id_as_sent(traceparent: &str) -> Option<&str> {
    let id = traceparent.trim_ascii_start().get(36..52)?;
    let lowercase_hex = |half: &[u8]| {
        let mut digits = [0; 8];
        digits.copy_from_slice(half);
        // A hex digit (`hex8`'s mask), and no letter without its 0x20 bit.
        let x = u64::from_be_bytes(digits);
        let upper = !(x << 2) & ((x & (ONES * 0x40)) << 1);
        hex8(digits).1 | (upper & HIGH_BITS) == 0
    };
    let bytes = id.as_bytes();
    (lowercase_hex(&bytes[..8]) && lowercase_hex(&bytes[8..])).then_some(id)
}

/// Starts `span`'s place in a trace and puts it on the span ([`attach`]): a
/// child of `parent` (a caller's or a sender's context), or a new trace.
/// Returns the span's context.
///
/// With the `otel` feature and a `tracing-opentelemetry` layer in the
/// subscriber, the span's OpenTelemetry parent is set to `parent` and the ids
/// are the ones OpenTelemetry gives the span, so that what is logged, sent
/// on and exported are one trace; otherwise they are random.
pub fn start(span: &tracing::Span, parent: Option<&TraceContext>) -> TraceContext {
    let own = || TraceContext::next(parent);
    #[cfg(feature = "otel")]
    let context = otel::start(span, parent).unwrap_or_else(own);
    #[cfg(not(feature = "otel"))]
    let context = own();
    attach(span, context.clone());
    context
}

/// [`start`] for a span created with its context already in its
/// `traceparent` field (`traceparent = context.header().as_str()`, which a
/// log layer reads as text, or `traceparent = %context`): `context` is
/// [`TraceContext::next`] of `parent`,
/// taken before the span, so the field is written with the span's other
/// fields instead of by a record afterwards (a record costs a log layer a
/// second pass over the span). Returns the span's context: `context`, or
/// with the `otel` feature and a `tracing-opentelemetry` layer the ids
/// OpenTelemetry gave the span (then recorded over the field).
///
/// ```
/// use chassis_trace::TraceContext;
///
/// # tracing::subscriber::with_default(tracing_subscriber::registry(), || {
/// let context = TraceContext::next(None); // a new trace
/// let span = tracing::info_span!("request", traceparent = context.header().as_str());
/// let context = chassis_trace::start_recorded(&span, None, context);
/// assert_eq!(span.in_scope(chassis_trace::current), Some(context));
/// # });
/// ```
pub fn start_recorded(span: &tracing::Span, parent: Option<&TraceContext>, context: TraceContext) -> TraceContext {
    #[cfg(feature = "otel")]
    if let Some(otel) = otel::start(span, parent) {
        if otel != context {
            attach(span, otel.clone());
            return otel;
        }
    }
    #[cfg(not(feature = "otel"))]
    let _ = parent;
    keep(span, context.clone());
    context
}

/// Links `span` to `other` (a retry to the attempt before it): the span's
/// `trace_link` field if it declares one, and an OpenTelemetry link with the
/// `otel` feature.
pub fn link(span: &tracing::Span, other: &TraceContext) {
    span.record("trace_link", tracing::field::display(other));
    #[cfg(feature = "otel")]
    otel::link(span, other);
}

/// Puts `context` on `span`: [`current`] finds it inside the span and its
/// children, and the span's `traceparent` field (if the span declares one,
/// e.g. `traceparent = tracing::field::Empty`) records it for the logs.
///
/// Needs a subscriber built on `tracing_subscriber`'s `Registry` (every
/// chassis-log format is): with another subscriber, or a disabled span, the
/// context is only recorded in the field.
pub fn attach(span: &tracing::Span, context: TraceContext) {
    span.record(TRACEPARENT, tracing::field::display(&context));
    keep(span, context);
}

/// Puts `context` in `span`'s extensions, where [`current`] finds it.
fn keep(span: &tracing::Span, context: TraceContext) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch.downcast_ref::<tracing_subscriber::Registry>().and_then(|r| r.span(id)) {
            span.extensions_mut().replace(context);
        }
    });
}

/// The trace context of the current span, or of its nearest ancestor that
/// has one ([`attach`]); `None` outside any. With the `otel` feature and a
/// `tracing-opentelemetry` layer, the current span's own OpenTelemetry ids.
pub fn current() -> Option<TraceContext> {
    let attached = attached();
    #[cfg(feature = "otel")]
    if let Some(current) = otel::current(attached.as_ref()) {
        return Some(current);
    }
    attached
}

fn attached() -> Option<TraceContext> {
    tracing::Span::current()
        .with_subscriber(|(id, dispatch)| {
            let span = dispatch.downcast_ref::<tracing_subscriber::Registry>()?.span(id)?;
            span.scope().find_map(|s| s.extensions().get::<TraceContext>().cloned())
        })
        .flatten()
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::TraceContext;

    fn span_context(context: &TraceContext) -> SpanContext {
        let state = context.state.as_deref().and_then(|s| s.parse::<TraceState>().ok()).unwrap_or_default();
        SpanContext::new(
            TraceId::from_bytes(context.trace_id.to_be_bytes()),
            SpanId::from_bytes(context.span_id.to_be_bytes()),
            TraceFlags::new(context.flags),
            true,
            state,
        )
    }

    fn from_otel(span: &tracing::Span, state: Option<String>) -> Option<TraceContext> {
        let cx = span.context();
        let otel = cx.span().span_context().clone();
        otel.is_valid().then(|| TraceContext {
            trace_id: u128::from_be_bytes(otel.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(otel.span_id().to_bytes()),
            flags: otel.trace_flags().to_u8() & 1,
            state,
        })
    }

    /// `None` when the subscriber has no OpenTelemetry layer (or the span is off).
    pub(super) fn start(span: &tracing::Span, parent: Option<&TraceContext>) -> Option<TraceContext> {
        let parent_cx = match parent {
            Some(parent) => opentelemetry::Context::new().with_remote_span_context(span_context(parent)),
            // A new trace, whatever span encloses this one.
            None => opentelemetry::Context::new(),
        };
        span.set_parent(parent_cx).ok()?;
        from_otel(span, parent.and_then(|p| p.state.clone()))
    }

    pub(super) fn link(span: &tracing::Span, other: &TraceContext) {
        span.add_link(span_context(other));
    }

    pub(super) fn current(attached: Option<&TraceContext>) -> Option<TraceContext> {
        from_otel(&tracing::Span::current(), attached.and_then(|a| a.state.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_writes_the_spec_example() {
        let ctx = TraceContext::parse(EXAMPLE, Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")).unwrap();
        assert_eq!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.span_id(), "00f067aa0ba902b7");
        assert!(ctx.sampled());
        assert_eq!(ctx.traceparent(), EXAMPLE);
        assert_eq!(ctx.tracestate(), Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
        let upper = TraceContext::parse(&EXAMPLE.to_ascii_uppercase(), None).unwrap();
        assert_eq!(upper.traceparent(), EXAMPLE, "written in lowercase");
        let future = TraceContext::parse(&format!("cc{}-what-comes-next", &EXAMPLE[2..]), None).unwrap();
        assert_eq!(future.traceparent(), EXAMPLE, "a later version is read by its first fields");
    }

    #[test]
    fn the_header_buffer_reads_as_the_strings() {
        let ctx = TraceContext::parse(EXAMPLE, None).unwrap();
        let header = ctx.header();
        assert_eq!(header.as_str(), EXAMPLE);
        assert_eq!(header.span_id(), ctx.span_id());
        assert_eq!(header.to_string(), ctx.traceparent());
        assert_eq!(format!("{header:?}"), format!("{EXAMPLE:?}"));
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad}");
        }
        let long = "k=".to_owned() + &"v".repeat(600);
        assert_eq!(TraceContext::parse(EXAMPLE, Some(&long)).unwrap().tracestate(), None);
        assert_eq!(TraceContext::parse(EXAMPLE, Some("a=b\nc")).unwrap().tracestate(), None);
    }

    #[test]
    fn children_share_the_trace_and_not_the_span() {
        let root = TraceContext::root();
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.span_id(), root.span_id());
        assert_ne!(TraceContext::root().trace_id(), root.trace_id());
    }

    #[test]
    fn spans_carry_the_context_to_their_children() {
        use tracing_subscriber::prelude::*;
        let subscriber = tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::TRACE);
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(current(), None);
            let ctx = TraceContext::root();
            let outer = tracing::info_span!("outer", traceparent = tracing::field::Empty);
            attach(&outer, ctx.clone());
            let _o = outer.enter();
            let inner = tracing::info_span!("inner");
            let _i = inner.enter();
            assert_eq!(current(), Some(ctx));
        });
    }

    /// Every byte value in every position of 8 digits: read as a digit
    /// exactly when it is one, with the value `from_str_radix` gives.
    #[test]
    fn eight_digits_at_once_read_each_byte_as_one_at_a_time_would() {
        for at in 0..8 {
            for byte in 0..=255u8 {
                let mut digits = *b"9aF04c7e";
                digits[at] = byte;
                let one_at_a_time = std::str::from_utf8(&digits)
                    .ok()
                    .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|s| u32::from_str_radix(s, 16).ok());
                let (value, bad) = hex8(digits);
                assert_eq!((bad == 0).then_some(value), one_at_a_time, "byte {byte:#04x} at {at}");
            }
        }
        assert_eq!(hex8(*b"00000000"), (0, 0));
        assert_eq!(hex8(*b"FFFFffff"), (u32::MAX, 0));
    }

    /// Every byte value in every place of the span id: sliced exactly when
    /// all 16 are lowercase hex digits.
    #[test]
    fn the_span_id_is_sliced_only_in_lowercase_hex() {
        for at in 36..52 {
            for byte in 0..=255u8 {
                let mut sent = EXAMPLE.as_bytes().to_vec();
                sent[at] = byte;
                let Ok(sent) = String::from_utf8(sent) else { continue };
                let reference =
                    sent.get(36..52).filter(|id| id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
                assert_eq!(span_id_as_sent(&sent), reference, "byte {byte:#04x} at {at}");
            }
        }
        assert_eq!(span_id_as_sent(&format!("  {EXAMPLE}")), Some("00f067aa0ba902b7"));
        assert_eq!(span_id_as_sent("00-4bf9"), None);
    }

    proptest! {
        #[test]
        fn hex_is_written_as_format_writes_it(value: u32) {
            prop_assert_eq!(hex8_of(value).to_vec(), format!("{value:08x}").into_bytes());
            prop_assert_eq!(hex8(hex8_of(value)), (value, 0));
        }

        /// Headers of the right shape made of hex digits, near-digits
        /// (`g`, `G`, `/`, `:`, `@`, `` ` ``) and dashes, against a reference
        /// that reads each field with `from_str_radix`.
        #[test]
        fn parses_as_a_field_by_field_reference(s in "[0-9a-gA-G/:@`-]{2}-[0-9a-gA-G/:@`]{32}-[0-9a-gA-G:`]{16}-[0-9a-fA-Fg]{2}") {
            let field = |range: std::ops::Range<usize>| {
                let f = &s[range];
                f.bytes().all(|b| b.is_ascii_hexdigit()).then(|| u128::from_str_radix(f, 16).ok()).flatten()
            };
            let reference = (|| {
                let version = field(0..2)?;
                let (trace_id, span_id, flags) = (field(3..35)?, field(36..52)?, field(53..55)?);
                (version != 0xff && trace_id != 0 && span_id != 0).then_some((trace_id, span_id as u64, flags as u8 & 1))
            })();
            let parsed = TraceContext::parse(&s, None).map(|c| (c.trace_id, c.span_id, c.flags));
            prop_assert_eq!(parsed, reference);
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(s in "\\PC{0,80}", trace in 1u128.., span in 1u64.., flags in 0u8..2) {
            let _ = TraceContext::parse(&s, Some(&s));
            let ctx = TraceContext { trace_id: trace, span_id: span, flags, state: None };
            prop_assert_eq!(TraceContext::parse(&ctx.traceparent(), None), Some(ctx));
        }
    }
}
