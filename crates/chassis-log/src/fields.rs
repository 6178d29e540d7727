//! Field visitors: span fields rendered once into a span's context (`layer::span`), event fields
//! written straight into the line.

use std::error::Error as StdError;
use std::fmt;

use tracing::field::{Field as TracingField, Visit};

use crate::encode;
use crate::layer::Reserved;
use crate::trace::{Id, Trace};

/// One span field: its name and where its JSON-encoded value lies in the
/// values buffer it was written to (one buffer per span, not a `String`
/// per value).
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) value: std::ops::Range<usize>,
}

impl Field {
    /// The field's encoded value in `values`, the buffer it was written to.
    pub(crate) fn value<'a>(&self, values: &'a str) -> &'a str {
        values.get(self.value.clone()).unwrap_or_default()
    }
}

/// Collects a span's own fields (a later record of a name replaces it), their
/// values encoded one after the other into `values`.
#[derive(Debug, Default)]
pub(crate) struct SpanVisitor {
    pub(crate) fields: Vec<Field>,
    pub(crate) values: String,
    pub(crate) trace: Trace,
    /// Whether the trace fields (`traceparent`, `trace_id`, `span_id`,
    /// `trace_sampled`) are read into `trace` as well as written as fields:
    /// only a layer that writes Cloud Logging's trace keys needs them (the
    /// `gcp` format with a project), and a `traceparent` is checked and
    /// copied to be read.
    pub(crate) read_trace: bool,
}

impl SpanVisitor {
    /// A visitor for `fields` fields, with room for their values, reading
    /// the trace fields when `read_trace`.
    pub(crate) fn with_capacity(fields: usize, read_trace: bool) -> Self {
        Self {
            fields: Vec::with_capacity(fields),
            values: String::with_capacity(fields * 24),
            trace: Trace::default(),
            read_trace,
        }
    }

    fn put(&mut self, field: &TracingField, write: impl FnOnce(&mut String)) {
        let start = self.values.len();
        write(&mut self.values);
        self.set(field.name(), start);
    }

    /// Sets `name` to an encoded value (a later value replaces an earlier one).
    pub(crate) fn put_named(&mut self, name: &'static str, encoded: &str) {
        let start = self.values.len();
        self.values.push_str(encoded);
        self.set(name, start);
    }

    /// `name`'s value is what was written to `values` from `start` on. A
    /// replaced value stays in `values`, unused, until the span is rendered
    /// again.
    fn set(&mut self, name: &'static str, start: usize) {
        let value = start..self.values.len();
        match self.fields.iter_mut().find(|f| f.name == name) {
            Some(existing) => existing.value = value,
            None => self.fields.push(Field { name, value }),
        }
    }
}

impl Visit for SpanVisitor {
    fn record_str(&mut self, field: &TracingField, value: &str) {
        if self.read_trace {
            match field.name() {
                "traceparent" => {
                    if let Some(trace) = Trace::from_traceparent(value) {
                        self.trace = trace;
                    }
                }
                "trace_id" => self.trace.trace_id = Some(Id::new(value)),
                "span_id" => self.trace.span_id = Some(Id::new(value)),
                _ => {}
            }
        }
        self.put(field, |values| encode::string(values, value));
    }

    fn record_bool(&mut self, field: &TracingField, value: bool) {
        if self.read_trace && field.name() == "trace_sampled" {
            self.trace.sampled = Some(value);
        }
        self.put(field, |values| values.push_str(if value { "true" } else { "false" }));
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.put(field, |values| encode::signed(values, value));
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.put(field, |values| encode::digits(values, value, 1));
    }

    fn record_i128(&mut self, field: &TracingField, value: i128) {
        self.put(field, |values| encode::int(values, value));
    }

    fn record_u128(&mut self, field: &TracingField, value: u128) {
        self.put(field, |values| encode::int(values, value));
    }

    fn record_f64(&mut self, field: &TracingField, value: f64) {
        self.put(field, |values| encode::float(values, value));
    }

    fn record_error(&mut self, field: &TracingField, value: &(dyn StdError + 'static)) {
        self.put(field, |values| encode::display(values, value));
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        if matches!(field.name(), "traceparent" | "trace_id" | "span_id") {
            // Recorded with `%` or `?`: the text itself, without JSON's
            // quotes; formatted on the stack when it fits (a traceparent does).
            use fmt::Write as _;
            let mut short = ShortText::default();
            if write!(short, "{value:?}").is_ok() {
                self.record_str(field, short.as_str().trim_matches('"'));
            } else {
                let mut text = String::with_capacity(256);
                let _ = write!(text, "{value:?}");
                self.record_str(field, text.trim_matches('"'));
            }
            return;
        }
        self.put(field, |values| encode::debug(values, value));
    }
}

/// Text formatted on the stack, up to 128 bytes (a write past it fails).
struct ShortText {
    bytes: [u8; 128],
    len: usize,
}

impl Default for ShortText {
    fn default() -> Self {
        Self { bytes: [0; 128], len: 0 }
    }
}

impl ShortText {
    fn as_str(&self) -> &str {
        // Whole `&str`s were copied in: valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for ShortText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// How a field is written in a line: where the line ends, whether values are
/// capped, which names are taken by the format itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Longest string value, in bytes; `None` writes values whole.
    pub(crate) cap: Option<usize>,
    /// A field that would take the line past this many bytes is left out.
    pub(crate) limit: usize,
}

impl Budget {
    /// Every value whole.
    pub(crate) const WHOLE: Self = Self { cap: None, limit: usize::MAX };
}

/// The longest string value that lets a line of `total` bytes fit in `budget`
/// bytes, given the lengths of its string values (`lens`, sorted here): short
/// values stay whole and the long ones share what is left equally, so the line
/// is filled before anything is cut. `None` when the line does not fit even
/// with every string value empty.
pub(crate) fn water_level(lens: &mut [usize], total: usize, budget: usize) -> Option<usize> {
    let values: usize = lens.iter().sum();
    let mut left = budget.checked_sub(total.checked_sub(values)?)?;
    lens.sort_unstable();
    for (i, &len) in lens.iter().enumerate() {
        let sharing = lens.len() - i;
        if len.saturating_mul(sharing) > left {
            return Some(left / sharing);
        }
        left -= len;
    }
    lens.last().copied().or(Some(0))
}

/// Writes `,"name":value`, capping the value and leaving the field out when it
/// would pass the budget's limit. Returns whether the value was written whole.
pub(crate) fn write_field(
    buf: &mut String,
    name: &'static str,
    reserved: &Reserved<'_>,
    value: &str,
    budget: Budget,
) -> bool {
    let start = buf.len();
    write_key(buf, name, reserved, budget.cap);
    let (shown, cut) = budget.cap.map_or((value, false), |cap| encode::cap_literal(value, cap));
    buf.push_str(shown);
    if cut {
        buf.push('"');
    }
    if buf.len() > budget.limit {
        buf.truncate(start);
        return false;
    }
    !cut
}

/// Writes `,"name":`; a name the format itself uses is written as `field.<name>`.
///
/// Written whole (no `cap`), a key is rendered once per thread, layer and
/// name, and copied from a small per-thread cache after that (a field name
/// is a `&'static str` of a callsite: its address names it).
#[inline]
pub(crate) fn write_key(buf: &mut String, name: &'static str, reserved: &Reserved<'_>, cap: Option<usize>) {
    if cap.is_none() {
        let id = (name.as_ptr() as usize, name.len(), reserved.1);
        let cached = KEYS.try_with(|keys| {
            let Ok(mut keys) = keys.try_borrow_mut() else { return false };
            if keys.is_empty() {
                keys.resize(KEY_SLOTS, (0, 0, 0, String::new()));
            }
            let slot = &mut keys[(id.0 >> 3) % KEY_SLOTS];
            if (slot.0, slot.1, slot.2) != id {
                slot.3.clear();
                render_key(&mut slot.3, name, reserved, None);
                (slot.0, slot.1, slot.2) = id;
            }
            buf.push_str(&slot.3);
            true
        });
        if cached == Ok(true) {
            return;
        }
    }
    render_key(buf, name, reserved, cap);
}

/// Slots of the per-thread cache of rendered keys (direct-mapped).
const KEY_SLOTS: usize = 64;

thread_local! {
    /// Rendered keys by (name address, name length, layer id).
    static KEYS: std::cell::RefCell<Vec<(usize, usize, u64, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Renders `,"name":` (see [`write_key`]).
fn render_key(buf: &mut String, name: &str, reserved: &Reserved<'_>, cap: Option<usize>) {
    let name = encode::field_name(name);
    buf.push_str(",\"");
    if reserved.contains(name) {
        buf.push_str("field.");
    }
    let start = buf.len();
    encode::escape(buf, name);
    if let Some(cap) = cap {
        let written = buf.len() - start;
        if written > cap {
            let mut literal = String::with_capacity(written + 2);
            literal.push('"');
            literal.push_str(&buf[start..]);
            literal.push('"');
            let cut = encode::cap_literal(&literal, cap).0.len() - 1;
            buf.truncate(start + cut);
        }
    }
    buf.push_str("\":");
}

/// Writes an event's fields straight into the line.
pub(crate) struct EventVisitor<'a> {
    pub(crate) buf: &'a mut String,
    /// Names written so far, to skip duplicates and shadowed span fields.
    pub(crate) names: &'a mut Vec<&'static str>,
    pub(crate) reserved: &'a Reserved<'a>,
    pub(crate) budget: Budget,
    pub(crate) truncated: bool,
    pub(crate) message: bool,
    /// A `log` record: its `log.*` fields are already in the line's metadata.
    pub(crate) skip_log_fields: bool,
    /// The source chain of the first error recorded, for `stack_trace`.
    pub(crate) error_chain: Option<&'a mut String>,
    /// When values are written whole: the length of each string value's body,
    /// to share out the line's budget if the line is too long.
    pub(crate) lens: Option<&'a mut Vec<usize>>,
}

impl EventVisitor<'_> {
    fn field(&mut self, field: &TracingField, write: impl FnOnce(&mut String)) {
        let name = field.name();
        if self.names.contains(&name) || (self.skip_log_fields && name.starts_with("log.")) {
            return;
        }
        self.names.push(name);
        let is_message = name == "message";
        let start = self.buf.len();
        if is_message {
            self.buf.push_str(",\"message\":");
        } else {
            write_key(self.buf, name, self.reserved, self.budget.cap);
        }
        let value_start = self.buf.len();
        write(self.buf);
        if let Some(lens) = self.lens.as_deref_mut() {
            if self.buf[value_start..].starts_with('"') {
                lens.push(self.buf.len() - value_start - 2);
            }
        }
        if let Some(cap) = self.budget.cap {
            let (capped, cut) = encode::cap_literal(&self.buf[value_start..], cap);
            if cut {
                let len = value_start + capped.len();
                self.buf.truncate(len);
                self.buf.push('"');
                self.truncated = true;
            }
        }
        if self.buf.len() > self.budget.limit {
            self.buf.truncate(start);
            self.truncated = true;
            return;
        }
        self.message |= is_message;
    }
}

impl Visit for EventVisitor<'_> {
    fn record_str(&mut self, field: &TracingField, value: &str) {
        self.field(field, |buf| encode::string(buf, value));
    }

    fn record_bool(&mut self, field: &TracingField, value: bool) {
        self.field(field, |buf| buf.push_str(if value { "true" } else { "false" }));
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.field(field, |buf| encode::signed(buf, value));
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.field(field, |buf| encode::digits(buf, value, 1));
    }

    fn record_i128(&mut self, field: &TracingField, value: i128) {
        self.field(field, |buf| encode::int(buf, value));
    }

    fn record_u128(&mut self, field: &TracingField, value: u128) {
        self.field(field, |buf| encode::int(buf, value));
    }

    fn record_f64(&mut self, field: &TracingField, value: f64) {
        self.field(field, |buf| encode::float(buf, value));
    }

    fn record_error(&mut self, field: &TracingField, value: &(dyn StdError + 'static)) {
        self.field(field, |buf| encode::display(buf, value));
        if let Some(chain) = self.error_chain.as_deref_mut() {
            if chain.is_empty() {
                use fmt::Write as _;
                let _ = write!(chain, "{value}");
                let mut source = value.source();
                while let Some(cause) = source {
                    let _ = write!(chain, "\ncaused by: {cause}");
                    source = cause.source();
                }
            }
        }
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        self.field(field, |buf| encode::debug(buf, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_water_level_cuts_only_the_longest_values() {
        // 100 bytes of fixed text around values of 10, 500 and 1000 bytes.
        let total = 100 + 10 + 500 + 1000;
        assert_eq!(water_level(&mut [1000, 10, 500], total, 700), Some(295));
        assert_eq!(water_level(&mut [1000, 10, 500], total, 1200), Some(590));
        assert_eq!(water_level(&mut [1000, 10, 500], total, 100), Some(0));
        assert_eq!(water_level(&mut [1000, 10, 500], total, 99), None);
        assert_eq!(water_level(&mut [], 50, 40), None);
    }
}
