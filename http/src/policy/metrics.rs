//! The policy's metric: requests denied (403), by action. It is registered with the auth
//! metrics (see `crate::auth`), which hand it to the policy store.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

#[derive(Clone)]
pub(crate) struct PolicyMetrics {
    denials: Family<ActionLabel, Counter>,
}

impl PolicyMetrics {
    pub(crate) fn register(registry: &mut Registry) -> PolicyMetrics {
        let metrics = PolicyMetrics {
            denials: Family::default(),
        };
        registry.register(
            "omnigraph_auth_policy_denials",
            "Requests denied by policy (403), by action",
            metrics.denials.clone(),
        );
        metrics
    }

    pub(crate) fn denied(&self, action: &str) {
        self.denials
            .get_or_create(&ActionLabel {
                action: action.into(),
            })
            .inc();
    }
}
