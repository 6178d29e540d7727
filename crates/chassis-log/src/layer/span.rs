//! A span's context in the log: its fields over its parent's, rendered once
//! into a fragment that every line inside the span copies — built when the
//! span is created, extended or rendered again when it is recorded.

use std::cell::RefCell;

use tracing::Subscriber;
use tracing::span::Record;
use tracing_subscriber::registry::LookupSpan;

use super::{GCP_PREFIX, JsonLayer, Reserved};
use crate::encode;
use crate::fields::{Field, SpanVisitor, write_key};
use crate::trace::Trace;

impl<W> JsonLayer<W> {
    /// Whether spans' trace fields are read (see [`SpanVisitor::read_trace`]):
    /// `gcp` with a project, the only lines that carry trace keys.
    pub(super) fn reads_trace(&self) -> bool {
        self.gcp && self.project.is_some()
    }

    /// Builds what a span carries: its fields over its parent's, pre-rendered.
    ///
    /// `reuse`: the span's previous context (on `record`), whose buffers are
    /// filled again instead of allocated anew.
    fn span_context(&self, parent: Option<&SpanContext>, own: SpanVisitor, reuse: Option<SpanContext>) -> SpanContext {
        let SpanVisitor { mut fields, mut values, trace: own_trace, .. } = own;
        let own_len = fields.len();
        let mut trace = own_trace.clone();
        if let Some(parent) = parent {
            fields.reserve(parent.fields.len());
            values.reserve(parent.values.len());
            for inherited in &parent.fields {
                if !fields[..own_len].iter().any(|o| o.name == inherited.name) {
                    let start = values.len();
                    values.push_str(inherited.value(&parent.values));
                    fields.push(Field { name: inherited.name, value: start..values.len() });
                }
            }
            trace.inherit(&parent.trace);
        }
        let (mut fragment, mut gcp_labels, mut gcp_trace) = match reuse {
            Some(old) => (old.fragment, old.gcp_labels, old.gcp_trace),
            None => (String::new(), String::new(), String::new()),
        };
        fragment.clear();
        gcp_labels.clear();
        gcp_trace.clear();
        let reserved = Reserved(&self.reserved, self.id);
        // `,"name":value` each, and room for a `field.` prefix or an escape.
        fragment.reserve(fields.iter().map(|f| f.name.len() + f.value.len() + 12).sum());
        let mut own_end = 0;
        for (i, field) in fields.iter().enumerate() {
            write_key(&mut fragment, field.name, &reserved, None);
            fragment.push_str(field.value(&values));
            if i + 1 == own_len {
                own_end = fragment.len();
            }
        }
        if self.gcp {
            for name in ["job_id", "job_name"] {
                if let Some(field) = fields.iter().find(|f| f.name == name) {
                    let value = field.value(&values);
                    gcp_labels.push_str(",\"");
                    gcp_labels.push_str(name);
                    gcp_labels.push_str("\":");
                    if value.starts_with('"') {
                        gcp_labels.push_str(value);
                    } else {
                        encode::string(&mut gcp_labels, value);
                    }
                }
            }
            self.gcp_trace(&mut gcp_trace, &trace);
        }
        SpanContext { own: own_len, own_end, own_trace, fields, values, trace, fragment, gcp_labels, gcp_trace }
    }

    /// `gcp`: Cloud Logging's trace keys for `trace`, when a project and a
    /// trace id are known.
    fn gcp_trace(&self, buf: &mut String, trace: &Trace) {
        let (Some(project), Some(trace_id)) = (&self.project, &trace.trace_id) else { return };
        buf.push_str(",\"");
        buf.push_str(GCP_PREFIX);
        buf.push_str("trace\":");
        encode::display(buf, &format_args!("projects/{project}/traces/{trace_id}"));
        if let Some(span_id) = &trace.span_id {
            buf.push_str(",\"");
            buf.push_str(GCP_PREFIX);
            buf.push_str("spanId\":");
            encode::string(buf, span_id);
        }
        if let Some(sampled) = trace.sampled {
            buf.push_str(",\"");
            buf.push_str(GCP_PREFIX);
            buf.push_str("trace_sampled\":");
            buf.push_str(if sampled { "true" } else { "false" });
        }
    }

    /// A `record` of fields the span did not have yet (declared `Empty`),
    /// none of them shadowing an inherited one nor a Cloud Logging label:
    /// their `,"k":v` go in after the span's own fields, and nothing else is
    /// rendered again. `false` (nothing changed) when that does not apply.
    fn append(&self, context: &mut SpanContext, fresh: &mut SpanVisitor, parent: Option<&SpanContext>) -> bool {
        let new = |f: &Field| !context.fields.iter().any(|e| e.name == f.name);
        let label = |f: &Field| self.gcp && matches!(f.name, "job_id" | "job_name");
        if !fresh.fields.iter().all(|f| new(f) && !label(f)) {
            return false;
        }
        let reserved = Reserved(&self.reserved, self.id);
        let mut insert = |rendered: &mut String| {
            rendered.clear();
            for field in &fresh.fields {
                write_key(rendered, field.name, &reserved, None);
                rendered.push_str(field.value(&fresh.values));
            }
            context.fragment.insert_str(context.own_end, rendered);
            context.own_end += rendered.len();
        };
        let reused = RECORDED.try_with(|buf| buf.try_borrow_mut().map(|mut buf| insert(&mut buf)).is_ok());
        if reused != Ok(true) {
            insert(&mut String::new());
        }
        let at = context.own;
        context.own += fresh.fields.len();
        let base = context.values.len();
        context.values.push_str(&fresh.values);
        let moved =
            fresh.fields.drain(..).map(|f| Field { name: f.name, value: f.value.start + base..f.value.end + base });
        context.fields.splice(at..at, moved);
        if fresh.trace != Trace::default() {
            context.own_trace.overlay(std::mem::take(&mut fresh.trace));
            context.trace = context.own_trace.clone();
            if let Some(parent) = parent {
                context.trace.inherit(&parent.trace);
            }
            if self.gcp {
                context.gcp_trace.clear();
                let mut gcp_trace = std::mem::take(&mut context.gcp_trace);
                self.gcp_trace(&mut gcp_trace, &context.trace);
                context.gcp_trace = gcp_trace;
            }
        }
        true
    }

    /// A record that [`append`](Self::append) cannot take (a field replaced,
    /// a Cloud Logging label, trace fields): the span is rendered again, its
    /// buffers refilled rather than allocated anew.
    fn render_again(&self, context: &mut SpanContext, fresh: &SpanVisitor, parent: Option<&SpanContext>) {
        let mut old = std::mem::take(context);
        // The own values again, then the recorded ones (the inherited ones
        // and any replaced value are left behind).
        let mut visitor = SpanVisitor::with_capacity(old.own + fresh.fields.len(), self.reads_trace());
        visitor.trace = std::mem::take(&mut old.own_trace);
        for field in old.fields.iter().take(old.own) {
            visitor.put_named(field.name, field.value(&old.values));
        }
        for field in &fresh.fields {
            visitor.put_named(field.name, field.value(&fresh.values));
        }
        visitor.trace.overlay(fresh.trace.clone());
        *context = self.span_context(parent, visitor, Some(old));
    }

    /// Renders a span's fields over its parent's and keeps them on the span.
    pub(super) fn store<S>(&self, span: &tracing_subscriber::registry::SpanRef<'_, S>, visitor: SpanVisitor)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let context = {
            let parent = span.parent();
            let parent_ext = parent.as_ref().map(|p| p.extensions());
            let parent_ctx = parent_ext.as_ref().and_then(|e| e.get::<SpanContext>());
            self.span_context(parent_ctx, visitor, None)
        };
        span.extensions_mut().replace(context);
    }

    /// A record of `values` on `span`: new fields go in after the span's own;
    /// anything else renders the span again.
    pub(super) fn record<S>(&self, span: &tracing_subscriber::registry::SpanRef<'_, S>, values: &Record<'_>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut fresh = fresh_visitor(self.reads_trace());
        values.record(&mut fresh);
        // The common case (a field declared `Empty`, given its value) needs
        // neither the parent nor a render of the span again.
        let appended = fresh.trace == Trace::default() && {
            let mut ext = span.extensions_mut();
            ext.get_mut::<SpanContext>().is_none_or(|context| self.append(context, &mut fresh, None))
        };
        if !appended {
            let parent = span.parent();
            let parent_ext = parent.as_ref().map(|p| p.extensions());
            let parent_ctx = parent_ext.as_ref().and_then(|e| e.get::<SpanContext>());
            let mut ext = span.extensions_mut();
            if let Some(context) = ext.get_mut::<SpanContext>() {
                if !self.append(context, &mut fresh, parent_ctx) {
                    self.render_again(context, &fresh, parent_ctx);
                }
            }
        }
        // The buffers go back for the next record on this thread (unless one
        // huge value made them too big to keep).
        if fresh.values.capacity() <= 4096 {
            let _ = FRESH.try_with(|cell| cell.try_borrow_mut().map(|mut cell| *cell = fresh));
        }
    }
}

/// What a span carries, rendered once.
#[derive(Debug, Default)]
pub(super) struct SpanContext {
    /// How many of `fields` are the span's own (the first ones), kept with
    /// its own trace to render again on `record`.
    pub(super) own: usize,
    /// Where the own fields end in `fragment` (a byte offset).
    pub(super) own_end: usize,
    pub(super) own_trace: Trace,
    /// Own fields, then inherited ones not shadowed.
    pub(super) fields: Vec<Field>,
    /// The fields' encoded values, one after the other.
    pub(super) values: String,
    pub(super) trace: Trace,
    /// `,"k":v` for every field.
    pub(super) fragment: String,
    /// `gcp`: `,"job_id":"…","job_name":"…"` for the labels object.
    pub(super) gcp_labels: String,
    /// `gcp`: the trace keys, when a project and a trace id are known.
    pub(super) gcp_trace: String,
}

thread_local! {
    /// Recorded fields rendered before they go into a span's fragment (reused).
    static RECORDED: RefCell<String> = const { RefCell::new(String::new()) };
    /// The visitor of a record, its buffers reused from record to record.
    static FRESH: RefCell<SpanVisitor> = RefCell::new(SpanVisitor::default());
}

/// An empty visitor for a record: this thread's reused one, or a new one (a
/// record inside a record, or during the thread's teardown).
fn fresh_visitor(read_trace: bool) -> SpanVisitor {
    let reused = FRESH.try_with(|cell| cell.try_borrow_mut().map(|mut cell| std::mem::take(&mut *cell)).ok());
    let mut visitor = reused.ok().flatten().unwrap_or_default();
    visitor.fields.clear();
    visitor.values.clear();
    visitor.trace = Trace::default();
    visitor.read_trace = read_trace;
    visitor
}
