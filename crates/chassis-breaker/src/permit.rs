//! [`Permit`]: the right to make one call, and the duty to say how it went.

use std::fmt;

use crate::breaker::Breaker;

/// How a call went, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The callee is healthy.
    Success,
    /// The callee is failing: counts towards opening.
    Failure,
    /// Says nothing about the callee (e.g. the caller gave up): counts nothing
    /// and frees a trial slot.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Closed: outcomes count towards opening.
    Closed,
    /// A half-open trial.
    Trial,
    /// Forced closed: outcomes are counted in metrics only.
    Counted,
    /// Disabled: nothing is recorded.
    Ignored,
}

/// What a permit remembers, packed in one word so it travels in a register:
/// the generation it was issued in (a result from an earlier generation is
/// ignored), its kind, and when the call started (ms, only with the slow-call
/// policy).
///
/// ```text
///  63               24 23            3 2    0
/// +-------------------+---------------+------+
/// | started ms (40)   | generation 21 | kind |
/// +-------------------+---------------+------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

impl Ticket {
    #[inline]
    pub(crate) const fn new(generation: u32, kind: Kind, started_ms: u64) -> Self {
        let kind = match kind {
            Kind::Closed => 0,
            Kind::Trial => 1,
            Kind::Counted => 2,
            Kind::Ignored => 3,
        };
        Self(kind | (((generation & crate::state::GEN_MASK) as u64) << 3) | (started_ms << 24))
    }

    #[inline]
    pub(crate) const fn kind(self) -> Kind {
        match self.0 & 7 {
            0 => Kind::Closed,
            1 => Kind::Trial,
            2 => Kind::Counted,
            _ => Kind::Ignored,
        }
    }

    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        ((self.0 >> 3) as u32) & crate::state::GEN_MASK
    }

    pub(crate) const fn started_ms(self) -> u64 {
        self.0 >> 24
    }
}

/// The right to make one call through a breaker. Report the outcome with
/// [`success`](Self::success), [`failure`](Self::failure),
/// [`ignore`](Self::ignore) or [`record`](Self::record). Dropped without an
/// outcome — a cancelled call — it frees its slot and records nothing.
///
/// `B` is `&Breaker` ([`Breaker::acquire`]) or `Breaker`
/// ([`Breaker::acquire_owned`], for `'static` futures).
#[must_use = "a permit must be told how the call went"]
pub struct Permit<B: AsRef<Breaker>> {
    breaker: B,
    ticket: Ticket,
    done: bool,
}

impl<B: AsRef<Breaker>> fmt::Debug for Permit<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker.as_ref().name())
            .field("generation", &self.ticket.generation())
            .field("trial", &self.is_trial())
            .finish()
    }
}

impl<B: AsRef<Breaker>> Permit<B> {
    #[inline]
    pub(crate) fn new(breaker: B, ticket: Ticket) -> Self {
        Self { breaker, ticket, done: false }
    }

    /// Whether this is a half-open trial call.
    pub fn is_trial(&self) -> bool {
        self.ticket.kind() == Kind::Trial
    }

    /// The generation (transition count) the permit was issued in.
    pub fn generation(&self) -> u32 {
        self.ticket.generation()
    }

    /// The call succeeded.
    #[inline]
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// The call failed.
    #[inline]
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// The call says nothing about the callee.
    #[inline]
    pub fn ignore(self) {
        self.record(Outcome::Ignore);
    }

    /// Records `outcome`.
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        self.done = true;
        self.breaker.as_ref().record(self.ticket, outcome);
    }
}

impl<B: AsRef<Breaker>> Drop for Permit<B> {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.breaker.as_ref().release(self.ticket);
        }
    }
}

/// The one rule for HTTP responses, shared by the reqwest and tower
/// integrations: 5xx, 408 (Request Timeout) and 429 (Too Many Requests) count
/// as failures — the server is unwell or shedding load; any other status,
/// other 4xx included, as a success (the server answered sanely).
#[cfg(any(feature = "reqwest", feature = "tower"))]
pub(crate) fn status_outcome(status: http::StatusCode) -> Outcome {
    let failing = status.is_server_error()
        || status == http::StatusCode::REQUEST_TIMEOUT
        || status == http::StatusCode::TOO_MANY_REQUESTS;
    if failing { Outcome::Failure } else { Outcome::Success }
}
