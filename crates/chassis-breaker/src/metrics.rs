//! The breaker's metrics: calls by outcome, rejections, state and
//! transitions, each with its `# HELP`.

use std::sync::Arc;

use metrics::{Counter, Gauge};

use crate::sync::AtomicBool;

/// A breaker's metric handles, registered once when it is built.
pub(crate) struct Metrics {
    /// The `breaker` label: the name, or [`AGGREGATE_LABEL`].
    pub(crate) label: Arc<str>,
    pub(crate) success: Counter,
    pub(crate) failure: Counter,
    pub(crate) ignored: Counter,
    pub(crate) rejected: Counter,
    /// `chassis_breaker_state`; none for a breaker counted in the aggregate.
    pub(crate) state: Option<Gauge>,
    /// Set when the breaker is retired (evicted from its [`Breakers`](crate::Breakers)): it no
    /// longer writes its state or transitions.
    pub(crate) retired: AtomicBool,
}

/// The `breaker` label of breakers a [`Breakers`](crate::Breakers) counts
/// together once it has labelled `max_metric_keys` keys of their own.
pub(crate) const AGGREGATE_LABEL: &str = "_other";

/// The `# HELP` of the breaker metrics. Described when a breaker is built
/// (after the service installed its recorder, which keeps the descriptions).
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!("chassis_breaker_calls_total", Unit::Count, "Calls through the breaker, by breaker and outcome");
    describe_counter!(
        "chassis_breaker_rejections_total",
        Unit::Count,
        "Calls the breaker refused without trying, by breaker"
    );
    describe_gauge!(
        "chassis_breaker_state",
        "The breaker's state, by breaker: 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed, 5 disabled"
    );
    describe_counter!(
        "chassis_breaker_transitions_total",
        Unit::Count,
        "State changes of the breaker, by breaker and from/to state"
    );
}

impl Metrics {
    pub(crate) fn new(name: &Arc<str>, aggregate: bool) -> Self {
        describe_metrics();
        let label: Arc<str> = if aggregate { Arc::from(AGGREGATE_LABEL) } else { name.clone() };
        let calls = |outcome: &'static str| metrics::counter!("chassis_breaker_calls_total", "breaker" => label.to_string(), "outcome" => outcome);
        Self {
            success: calls("success"),
            failure: calls("failure"),
            ignored: calls("ignored"),
            rejected: metrics::counter!("chassis_breaker_rejections_total", "breaker" => label.to_string()),
            state: (!aggregate).then(|| metrics::gauge!("chassis_breaker_state", "breaker" => label.to_string())),
            retired: AtomicBool::new(false),
            label,
        }
    }
}
