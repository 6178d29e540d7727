//! The message format shared with the Python original (`samba_chassis`), so
//! Rust and Python services can share a task pool:
//!
//! - body: the JSON of the task's attributes;
//! - String message attributes `task_name`, `exec_id` (a UUID v4), `when`
//!   (`%d/%m/%y %H:%M:%S`, UTC), `job_id` and `job_name` (`"unknown"` when the
//!   task belongs to no job; a missing one, or `"unknown"`, reads as none);
//! - chassis only, ignored by the Python original (it reads the five above and
//!   nothing else): `traceparent`, the W3C trace context of the code that sent
//!   the task, which the worker's task span continues.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime};

use crate::queue::{Message, Outgoing};

/// Attribute: the task's name.
pub const TASK_NAME: &str = "task_name";
/// Attribute: this execution's id.
pub const EXEC_ID: &str = "exec_id";
/// Attribute: when the task should run.
pub const WHEN: &str = "when";
/// Attribute: the job the task belongs to.
pub const JOB_ID: &str = "job_id";
/// Attribute: the name of that job.
pub const JOB_NAME: &str = "job_name";
/// Attribute (chassis only; other readers ignore it): how many times the task
/// was received by workers with no handler for it, over the re-sends that
/// postponed it.
pub const UNKNOWN_RECEIVES: &str = "unknown_receives";
/// Attribute (chassis only; other readers ignore it): the W3C `traceparent`
/// of the span that sent the task. SQS allows 10 attributes; with it a task
/// has at most 7.
pub const TRACEPARENT: &str = "traceparent";
/// The value of `job_id` / `job_name` for a task outside any job.
pub const UNKNOWN: &str = "unknown";

/// The job a task belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    /// The job's id.
    pub id: String,
    /// The job's name.
    pub name: String,
}

/// A task message, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The task's name.
    pub task: String,
    /// The execution id.
    pub exec_id: String,
    /// When the task should run (absent or unreadable: now).
    pub when: Option<SystemTime>,
    /// The job, if the task belongs to one.
    pub job: Option<JobRef>,
    /// The trace context of the sender, if it sent one and it is well formed.
    pub trace: Option<chassis_trace::TraceContext>,
}

/// Why a message is not a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// No `task_name` attribute.
    #[error("the message has no task_name attribute")]
    NoTaskName,
    /// The body is not JSON.
    #[error("the message body is not JSON: {0}")]
    Body(String),
    /// The body is JSON that does not fit the task's attribute type.
    #[error("the attributes do not fit the task: {0}")]
    Attributes(String),
}

pub(crate) fn encode(
    task: &str,
    attributes: &serde_json::Value,
    exec_id: &str,
    when: SystemTime,
    job: Option<&JobRef>,
    trace: Option<&chassis_trace::TraceContext>,
) -> Result<Outgoing, serde_json::Error> {
    let mut message = encode_body(task, serde_json::to_string(attributes)?, exec_id, when, job);
    if let Some(trace) = trace {
        message.attributes.insert(TRACEPARENT.to_owned(), trace.traceparent());
    }
    Ok(message)
}

/// A task message around an already-encoded body.
pub(crate) fn encode_body(task: &str, body: String, exec_id: &str, when: SystemTime, job: Option<&JobRef>) -> Outgoing {
    let mut attrs = BTreeMap::new();
    attrs.insert(TASK_NAME.to_owned(), task.to_owned());
    attrs.insert(EXEC_ID.to_owned(), exec_id.to_owned());
    attrs.insert(WHEN.to_owned(), format_when(when));
    attrs.insert(JOB_ID.to_owned(), job.map_or(UNKNOWN, |j| j.id.as_str()).to_owned());
    attrs.insert(JOB_NAME.to_owned(), job.map_or(UNKNOWN, |j| j.name.as_str()).to_owned());
    Outgoing::new(body).attributes(attrs)
}

/// Reads a message's task attributes, and the sender's span id as text when
/// it sent a trace (the worker logs it); the body is parsed once, by the
/// task's handler, straight into its attribute type.
pub(crate) fn decode(message: &Message) -> Result<(Envelope, Option<chassis_trace::SpanIdText<'_>>), Malformed> {
    let task = message.attributes.get(TASK_NAME).filter(|t| !t.is_empty()).ok_or(Malformed::NoTaskName)?.clone();
    let known = |key: &str| message.attributes.get(key).filter(|v| !v.is_empty() && v.as_str() != UNKNOWN).cloned();
    let job = match (known(JOB_ID), known(JOB_NAME)) {
        (Some(id), name) => Some(JobRef { id, name: name.unwrap_or_else(|| UNKNOWN.to_owned()) }),
        (None, _) => None,
    };
    let (trace, sender_span_id) = match message
        .attributes
        .get(TRACEPARENT)
        .and_then(|t| chassis_trace::TraceContext::parse_with_span_id(t, None))
    {
        Some((trace, span_id)) => (Some(trace), Some(span_id)),
        None => (None, None),
    };
    let envelope = Envelope {
        task,
        exec_id: message.attributes.get(EXEC_ID).cloned().unwrap_or_default(),
        when: message.attributes.get(WHEN).and_then(|w| parse_when(w)),
        job,
        trace,
    };
    Ok((envelope, sender_span_id))
}

/// `dd/mm/yy HH:MM:SS` in UTC, as Python's `strftime("%d/%m/%y %H:%M:%S")`.
/// Times before 1970 are written as the epoch, times past 9999 as its last second.
pub fn format_when(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let at = i64::try_from(secs)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc());
    let mut out = String::with_capacity(17);
    let _ = write!(
        out,
        "{:02}/{:02}/{:02} {:02}:{:02}:{:02}",
        at.day(),
        u8::from(at.month()),
        at.year().rem_euclid(100),
        at.hour(),
        at.minute(),
        at.second()
    );
    out
}

/// Parses `dd/mm/yy HH:MM:SS` (UTC; two-digit years are 2000–2099).
///
/// As lenient as it always was: a day past the end of its month (`31/02/26`)
/// rolls over into the next month, and second 60 (a leap second) into the
/// next minute.
pub fn parse_when(text: &str) -> Option<SystemTime> {
    let (date, time) = text.trim().split_once(' ')?;
    let mut d = date.split('/').map(|p| p.parse::<u8>().ok());
    let (day, month, year) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (t.next()??, t.next()??, t.next()??);
    if d.next().is_some() || t.next().is_some() || day == 0 || day > 31 {
        return None;
    }
    if year > 99 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let month = Month::try_from(month).ok()?;
    let first = Date::from_calendar_date(2000 + i32::from(year), month, 1).ok()?;
    let midnight = first.midnight().assume_utc().unix_timestamp() + (i64::from(day) - 1) * 86_400;
    let secs = u64::try_from(midnight).ok()? + h * 3600 + m * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_round_trips_in_the_python_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_918_200); // 2026-11-29 02:10:00 UTC
        assert_eq!(format_when(t), "29/11/26 02:10:00");
        assert_eq!(parse_when("29/11/26 02:10:00"), Some(t));
        assert_eq!(format_when(UNIX_EPOCH + Duration::from_secs(951_782_400)), "29/02/00 00:00:00");
        for bad in ["", "29/11/26", "32/11/26 02:10:00", "29/13/26 02:10:00", "29/11/26 24:00:00", "a/b/c d:e:f"] {
            assert_eq!(parse_when(bad), None, "{bad:?}");
        }
    }

    /// Issue 12 §3: the five attributes the Python original reads are the
    /// same with or without a trace; a message without one (from Python) is a
    /// task too.
    #[test]
    fn the_trace_is_one_more_attribute_and_the_five_are_unchanged() {
        let when = UNIX_EPOCH + Duration::from_secs(1_795_918_200);
        let job = JobRef { id: "j-1".into(), name: "import".into() };
        let trace = chassis_trace::TraceContext::root();
        let attrs = serde_json::json!({"n": 1});
        let plain = encode("t", &attrs, "e-1", when, Some(&job), None).unwrap();
        let traced = encode("t", &attrs, "e-1", when, Some(&job), Some(&trace)).unwrap();
        let mut without: BTreeMap<_, _> = traced.attributes.clone();
        assert_eq!(without.remove(TRACEPARENT), Some(trace.traceparent()));
        assert_eq!(without, plain.attributes);
        assert_eq!(without.len(), 5);

        let mut message = Message::for_test("{}");
        message.attributes = traced.attributes;
        assert_eq!(decode(&message).unwrap().0.trace, Some(trace));
        message.attributes.remove(TRACEPARENT);
        let (envelope, _) = decode(&message).unwrap();
        assert_eq!((envelope.task.as_str(), envelope.trace), ("t", None));
        message.attributes.insert(TRACEPARENT.into(), "garbage".into());
        assert_eq!(decode(&message).unwrap().0.trace, None, "a bad traceparent is no trace, not a bad task");
    }

    #[test]
    fn unknown_job_reads_as_none() {
        let mut message = Message::for_test("{}");
        message.attributes.insert(TASK_NAME.into(), "t".into());
        message.attributes.insert(JOB_ID.into(), UNKNOWN.into());
        assert_eq!(decode(&message).unwrap().0.job, None);
        message.attributes.insert(JOB_ID.into(), "j-1".into());
        message.attributes.insert(JOB_NAME.into(), "import".into());
        assert_eq!(decode(&message).unwrap().0.job, Some(JobRef { id: "j-1".into(), name: "import".into() }));
        message.attributes.remove(TASK_NAME);
        assert_eq!(decode(&message).map(|(envelope, _)| envelope), Err(Malformed::NoTaskName));
    }
}
