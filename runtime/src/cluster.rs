//! Joining the cluster's gossip, and the metric of its members by state.

use std::sync::{Arc, Weak};
use std::time::Duration;

use omnigraph_cloud_cluster::Clock;
use omnigraph_cloud_cluster::membership::{Card, MemberState, Membership};
use omnigraph_cloud_config::NodeConfig;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::{NodeError, node_name};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// Joins the gossip when `[cluster] gossip_bind` is set, as this node's card: its name, the
/// HTTP address it advertises and its roles. `None` when gossip is off.
pub(crate) async fn join(
    config: &NodeConfig,
    http: Option<String>,
    metrics: &mut Registry,
) -> Result<Option<Arc<Membership>>, NodeError> {
    let Some(gossip) = &config.cluster.gossip else {
        return Ok(None);
    };
    let card = Card {
        node: node_name(config.node.id.as_deref()),
        http,
        roles: config
            .node
            .roles
            .iter()
            .map(|role| role.as_str().to_string())
            .collect(),
    };
    // A restart is a new generation: its start time comes after every earlier one.
    let generation = Clock::system().wall_ms();
    let membership = Arc::new(Membership::join(gossip, card, generation).await?);
    let members = Family::<StateLabel, Gauge>::default();
    metrics.register(
        "omnigraph_cluster_members",
        "Live members of the cluster's gossip as this node sees them, by state",
        members.clone(),
    );
    tokio::spawn(sample(Arc::downgrade(&membership), members));
    Ok(Some(membership))
}

/// Refreshes the members gauge every second while the membership lives.
async fn sample(membership: Weak<Membership>, members: Family<StateLabel, Gauge>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let Some(membership) = membership.upgrade() else {
            return;
        };
        let view = membership.view();
        for state in [MemberState::Active, MemberState::Draining] {
            let label = StateLabel {
                state: state.as_str(),
            };
            members.get_or_create(&label).set(view.count(state) as i64);
        }
    }
}
