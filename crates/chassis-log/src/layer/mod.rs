//! [`JsonLayer`]: the `json` and `gcp` formats.
//!
//! Span fields are rendered once, when the span is created or recorded, into a
//! ready-to-copy fragment that already holds the fields of every enclosing span
//! (innermost wins). An event then costs: its own fields, one copy of the
//! fragment, and one `write` of a reused per-thread buffer.

use std::cell::RefCell;
use std::io::Write as _;
use std::time::SystemTime;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{Config, Format};
use crate::encode;
use crate::error::{Error, Result};
use crate::fields::{Budget, EventVisitor, SpanVisitor, water_level, write_field};
use crate::time;

mod span;

use span::SpanContext;

/// Cloud Logging accepts at most 64 labels; three are ours.
pub(crate) const MAX_STATIC_LABELS: usize = 61;

const GCP_PREFIX: &str = "logging.googleapis.com/";

/// Writes events as one JSON object per line, in the `json` or `gcp` format.
///
/// [`init`](crate::init) installs it for those formats; build it yourself to
/// compose it with other layers or to write somewhere else.
///
/// ```
/// use chassis_log::{Config, Format, JsonLayer};
/// use tracing_subscriber::prelude::*;
///
/// let layer = JsonLayer::new(&Config::new("billing", "1.4.2").format(Format::Gcp), std::io::stderr)?;
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || tracing::info!(invoice = 42, "sent"));
/// # Ok::<(), chassis_log::Error>(())
/// ```
pub struct JsonLayer<W> {
    /// Unique in the process (from 1): the key of this layer's rendered field
    /// keys in the per-thread cache.
    id: u64,
    gcp: bool,
    writer: W,
    /// Names the format uses itself; user fields with them get a `field.` prefix.
    reserved: Vec<String>,
    /// `json`: `,"service":…,"version":…` and the static labels.
    json_tail: String,
    /// `gcp`: `{"service":…` — the start of the labels object.
    gcp_labels_head: String,
    /// `gcp`: `,"k":"v"` for each static label.
    gcp_static_labels: String,
    /// `gcp`: `,"serviceContext":{…}` for ERROR lines.
    gcp_service_context: String,
    project: Option<String>,
    max_line: usize,
    clock: fn() -> SystemTime,
}

impl<W> std::fmt::Debug for JsonLayer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLayer")
            .field("gcp", &self.gcp)
            .field("project", &self.project)
            .field("max_line", &self.max_line)
            .finish_non_exhaustive()
    }
}

impl<W> JsonLayer<W> {
    /// A layer in `config.format` (`json` or `gcp`) writing to `writer`.
    ///
    /// # Errors
    /// A non-JSON format, more than 61 static labels, or a line limit under 4 KiB.
    pub fn new(config: &Config, writer: W) -> Result<Self> {
        let gcp = match config.format {
            Format::Json => false,
            Format::Gcp => true,
            other => return Err(Error::NotJson(other)),
        };
        if gcp && config.labels.len() > MAX_STATIC_LABELS {
            return Err(Error::TooManyLabels { count: config.labels.len(), max: MAX_STATIC_LABELS });
        }
        if config.max_line_bytes < 4096 {
            return Err(Error::LineLimit(config.max_line_bytes));
        }
        let mut service = String::new();
        encode::string(&mut service, &config.service);
        let mut version = String::new();
        encode::string(&mut version, &config.version);

        let mut reserved: Vec<String> = if gcp {
            ["severity", "time", "message", "serviceContext", "stack_trace", "truncated"].map(String::from).to_vec()
        } else {
            ["timestamp", "level", "target", "message", "service", "version", "truncated"].map(String::from).to_vec()
        };
        let mut json_tail = format!(",\"service\":{service},\"version\":{version}");
        let mut gcp_static_labels = String::new();
        for (key, value) in &config.labels {
            let target = if gcp { &mut gcp_static_labels } else { &mut json_tail };
            target.push(',');
            encode::string(target, key);
            target.push(':');
            encode::string(target, value);
            if !gcp {
                reserved.push(key.clone());
            }
        }
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Self {
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            gcp,
            writer,
            reserved,
            json_tail,
            gcp_labels_head: format!(",\"{GCP_PREFIX}labels\":{{\"service\":{service}"),
            gcp_static_labels,
            gcp_service_context: format!(",\"serviceContext\":{{\"service\":{service},\"version\":{version}}}"),
            project: config.gcp_project.clone().filter(|p| !p.is_empty()),
            max_line: config.max_line_bytes,
            clock: SystemTime::now,
        })
    }

    /// Replaces the clock that stamps each line (for reproducible output in tests).
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> Self {
        self.clock = clock;
        self
    }

    /// Renders one line into `scratch.buf`.
    fn render(&self, event: &Event<'_>, span: Option<&SpanContext>, scratch: &mut Scratch, budget: Budget) {
        let Scratch { buf, names, chain, callsites, lens } = scratch;
        buf.clear();
        names.clear();
        chain.clear();
        lens.clear();
        let whole = budget.cap.is_none();
        // Records of the `log` crate arrive under target `log`; their real
        // target, file and line are in `log.*` fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let level = *meta.level();
        let reserved = Reserved(&self.reserved, self.id);
        if self.gcp {
            buf.push_str("{\"severity\":\"");
            buf.push_str(severity(level));
            buf.push_str("\",\"time\":");
            time::rfc3339(buf, (self.clock)());
        } else {
            buf.push_str("{\"timestamp\":");
            time::rfc3339(buf, (self.clock)());
            buf.push_str(",\"level\":\"");
            buf.push_str(level.as_str());
            buf.push('"');
            callsite_part(callsites, meta, normalized.is_none(), buf, |part| {
                part.push_str(",\"target\":");
                encode::string(part, meta.target());
            });
        }

        let mut visitor = EventVisitor {
            buf,
            names,
            reserved: &reserved,
            budget,
            truncated: false,
            message: false,
            skip_log_fields: normalized.is_some(),
            error_chain: self.gcp.then_some(&mut *chain),
            lens: whole.then_some(&mut *lens),
        };
        event.record(&mut visitor);
        let (mut truncated, message) = (visitor.truncated, visitor.message);
        if !message {
            buf.push_str(",\"message\":\"\"");
        }

        if let Some(span) = span {
            let shadowed = span.fields.iter().any(|f| names.contains(&f.name));
            if whole && !shadowed {
                buf.push_str(&span.fragment);
                let values = span.fields.iter().map(|f| f.value(&span.values));
                lens.extend(values.filter(|v| v.starts_with('"')).map(|v| v.len() - 2));
            } else {
                for field in span.fields.iter().filter(|f| !names.contains(&f.name)) {
                    truncated |= !write_field(buf, field.name, &reserved, field.value(&span.values), budget);
                }
            }
        }

        if self.gcp {
            let from_hook = meta.target() == crate::panic::TARGET && meta.module_path() == Some(crate::panic::MODULE);
            // The hook's line points at the panic, so Error Reporting groups
            // panics by where they happened, not by where they were logged.
            let at_panic = from_hook
                && crate::panic::with_site(|site| {
                    site.map(|site| source_location(buf, &site.file, site.line, site.function.as_deref())).is_some()
                });
            if !at_panic {
                callsite_part(callsites, meta, normalized.is_none(), buf, |part| {
                    if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
                        let function = meta.module_path().unwrap_or_else(|| meta.target());
                        source_location(part, file, line, Some(function));
                    }
                });
            }
            buf.push_str(&self.gcp_labels_head);
            if let Some(span) = span {
                if budget.cap.is_none() || span.gcp_labels.len() <= 1024 {
                    buf.push_str(&span.gcp_labels);
                } else {
                    truncated = true;
                }
            }
            buf.push_str(&self.gcp_static_labels);
            buf.push('}');
            if let Some(span) = span {
                buf.push_str(&span.gcp_trace);
            }
            if level == Level::ERROR {
                buf.push_str(&self.gcp_service_context);
            }
            if !chain.is_empty() {
                let mut literal = String::with_capacity(chain.len() + 2);
                encode::string(&mut literal, chain);
                if whole {
                    lens.push(literal.len() - 2);
                }
                let tail = Budget { cap: budget.cap.map(|c| c.min(1024)), limit: usize::MAX };
                truncated |= !write_field(buf, "stack_trace", &Reserved(&[], 0), &literal, tail);
            }
        } else {
            buf.push_str(&self.json_tail);
        }
        if truncated {
            buf.push_str(TRUNCATED_MARK);
        }
        buf.push_str("}\n");
    }

    fn emit(&self, event: &Event<'_>, span: Option<&SpanContext>, scratch: &mut Scratch)
    where
        W: for<'w> MakeWriter<'w>,
    {
        self.render(event, span, scratch, Budget::WHOLE);
        if scratch.buf.len() > self.max_line {
            // Fill the line: cut the longest string values to one length, the
            // most that fits with the `"truncated":true` mark. The same event
            // is always cut the same way.
            let budget = self.max_line - TRUNCATED_MARK.len();
            if let Some(cap) = water_level(&mut scratch.lens, scratch.buf.len(), budget) {
                self.render(event, span, scratch, Budget { cap: Some(cap), limit: usize::MAX });
            }
        }
        if scratch.buf.len() > self.max_line {
            // Still too long (many or long keys): a small cap, dropping fields.
            let reserve = self.json_tail.len() + self.gcp_static_labels.len() + 4096;
            let budget = Budget { cap: Some(self.max_line / 16), limit: self.max_line.saturating_sub(reserve) };
            self.render(event, span, scratch, budget);
            if scratch.buf.len() > self.max_line {
                self.fallback(event, scratch);
            }
        }
        let mut writer = self.writer.make_writer_for(event.metadata());
        // A closed or full output must not take the service down with it.
        let _ = writer.write_all(scratch.buf.as_bytes());
        if scratch.buf.capacity() > 64 * 1024 {
            // Do not hold on to the memory of one huge line.
            scratch.buf = String::with_capacity(1024);
        }
    }

    /// A line that cannot be cut down to size (huge configured labels): say so.
    fn fallback(&self, event: &Event<'_>, scratch: &mut Scratch) {
        let buf = &mut scratch.buf;
        buf.clear();
        let level = *event.metadata().level();
        if self.gcp {
            buf.push_str("{\"severity\":\"");
            buf.push_str(severity(level));
        } else {
            buf.push_str("{\"level\":\"");
            buf.push_str(level.as_str());
        }
        buf.push_str("\",\"message\":\"log line over max_line_bytes even when cut; dropped\",\"truncated\":true}\n");
    }
}

/// `gcp`: `,"logging.googleapis.com/sourceLocation":{"file":…,"line":"…","function":…}`.
fn source_location(buf: &mut String, file: &str, line: u32, function: Option<&str>) {
    buf.push_str(",\"");
    buf.push_str(GCP_PREFIX);
    buf.push_str("sourceLocation\":{\"file\":");
    encode::string(buf, file);
    buf.push_str(",\"line\":\"");
    encode::digits(buf, u64::from(line), 1);
    buf.push('"');
    if let Some(function) = function {
        buf.push_str(",\"function\":");
        encode::string(buf, function);
    }
    buf.push('}');
}

/// What marks a line whose values were cut.
const TRUNCATED_MARK: &str = ",\"truncated\":true";

fn severity(level: Level) -> &'static str {
    match level {
        Level::TRACE | Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARNING",
        Level::ERROR => "ERROR",
    }
}

/// Names a format writes itself, and the id of the layer whose they are
/// (rendered keys are cached per layer, see [`write_key`]).
pub(crate) struct Reserved<'a>(pub(crate) &'a [String], pub(crate) u64);

impl Reserved<'_> {
    #[inline]
    pub(crate) fn contains(&self, name: &str) -> bool {
        let first = name.as_bytes().first();
        name.starts_with(GCP_PREFIX)
            || self.0.iter().any(|r| r.len() == name.len() && r.as_bytes().first() == first && r == name)
    }
}

/// Per-thread buffers, reused from event to event.
#[derive(Default)]
struct Scratch {
    buf: String,
    names: Vec<&'static str>,
    chain: String,
    /// The per-callsite part of a line (`target`, or `sourceLocation`), rendered
    /// once: a small direct-mapped cache keyed by the metadata's address.
    callsites: Vec<(usize, String)>,
    /// The lengths of a line's string values, to cut it to size (see [`water_level`]).
    lens: Vec<usize>,
}

const CALLSITE_SLOTS: usize = 64;

/// Appends the part of a line that depends only on the callsite, from the cache
/// when `cacheable` (static metadata), rendering it with `render` otherwise.
fn callsite_part(
    cache: &mut Vec<(usize, String)>,
    meta: &tracing::Metadata<'_>,
    cacheable: bool,
    buf: &mut String,
    render: impl FnOnce(&mut String),
) {
    if !cacheable {
        render(buf);
        return;
    }
    if cache.is_empty() {
        cache.resize(CALLSITE_SLOTS, (0, String::new()));
    }
    let key = std::ptr::from_ref(meta) as usize;
    let slot = &mut cache[(key >> 4) % CALLSITE_SLOTS];
    if slot.0 != key {
        slot.1.clear();
        render(&mut slot.1);
        slot.0 = key;
    }
    buf.push_str(&slot.1);
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut visitor = SpanVisitor::with_capacity(attrs.fields().len(), self.reads_trace());
        attrs.record(&mut visitor);
        self.store(&span, visitor);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            self.record(&span, values);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let span = ctx.event_span(event);
        let ext = span.as_ref().map(|s| s.extensions());
        let context = ext.as_ref().and_then(|e| e.get::<SpanContext>());
        let used = SCRATCH.try_with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => {
                self.emit(event, context, &mut scratch);
                true
            }
            Err(_) => false,
        });
        // Re-entered (a field's Debug logs) or during thread teardown: use a fresh buffer.
        if used != Ok(true) {
            self.emit(event, context, &mut Scratch::default());
        }
    }
}
