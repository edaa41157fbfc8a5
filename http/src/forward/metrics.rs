//! What forwarding did: forwards by outcome and their latency, forwarded requests received,
//! and the ones this node refused or answered without sending them on.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::Outcome;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone)]
pub(crate) struct ForwardMetrics {
    forwards: Family<OutcomeLabels, Counter>,
    latency: Histogram,
    received: Counter,
    refused: Counter,
    not_again: Counter,
}

impl ForwardMetrics {
    pub(crate) fn register(registry: &mut Registry) -> ForwardMetrics {
        let metrics = ForwardMetrics {
            forwards: Family::default(),
            latency: Histogram::new(exponential_buckets(0.0005, 2.0, 18)),
            received: Counter::default(),
            refused: Counter::default(),
            not_again: Counter::default(),
        };
        registry.register(
            "omnigraph_forwards",
            "Writes this node sent on to the graph's writer-lease holder, by outcome: \
             answered (any status), unreachable (nothing sent) or failed (sent, no answer)",
            metrics.forwards.clone(),
        );
        registry.register(
            "omnigraph_forward_duration_seconds",
            "Time from sending a write on to the holder's answer head",
            metrics.latency.clone(),
        );
        registry.register(
            "omnigraph_forwarded_received",
            "Forwarded requests this node accepted from another node of its cluster",
            metrics.received.clone(),
        );
        registry.register(
            "omnigraph_forwarded_refused",
            "Requests refused because their forwarded header did not verify",
            metrics.refused.clone(),
        );
        registry.register(
            "omnigraph_forwarded_not_forwarded_again",
            "Forwarded writes this node could not make either: answered 421, never sent on a \
             second time",
            metrics.not_again.clone(),
        );
        metrics
    }

    pub(super) fn forwarded(&self, outcome: Outcome, took: Duration) {
        let outcome = match outcome {
            Outcome::Answered => "answered",
            Outcome::Unreachable => "unreachable",
            Outcome::Failed => "failed",
        };
        self.forwards
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.latency.observe(took.as_secs_f64());
    }

    pub(super) fn received(&self) {
        self.received.inc();
    }

    pub(super) fn refused_incoming(&self) {
        self.refused.inc();
    }

    pub(super) fn not_forwarded_again(&self) {
        self.not_again.inc();
    }
}
