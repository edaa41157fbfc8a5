//! This node's part in a cluster: joining the gossip, publishing its node record (where it
//! answers HTTP, read by the others before they forward to it), the placement that decides
//! who takes a free writer lease, and the metric of the members by state.

use std::sync::{Arc, Weak};
use std::time::Duration;

use omnigraph_cloud_cluster::Clock;
use omnigraph_cloud_cluster::directory::NodeDirectory;
use omnigraph_cloud_cluster::lease::LeaseStore;
use omnigraph_cloud_cluster::membership::{Card, MemberState, Membership};
use omnigraph_cloud_cluster::owner::{GossipPlacement, Placement, ReadOnly};
use omnigraph_cloud_config::NodeConfig;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::{NodeError, node_name};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// What a node runs of the cluster layer.
#[derive(Default)]
pub(crate) struct ClusterPart {
    pub(crate) membership: Option<Arc<Membership>>,
    /// Who takes a free writer lease; `None`: this node, whenever it is asked to write.
    pub(crate) placement: Option<Arc<dyn Placement>>,
    /// This node's record and lease, which its repo leases hang off.
    pub(crate) directory: Option<Arc<NodeDirectory>>,
    record: Option<RecordPublisher>,
    /// Registered with the membership; fed by the rebalancing task.
    rebalance: Option<RebalanceMetrics>,
    rebalancing: Option<JoinHandle<()>>,
    /// Set once the node has left (at shutdown, or when dropped).
    left: std::sync::atomic::AtomicBool,
}

impl Drop for ClusterPart {
    /// A node that failed to start, or is dropped without a shutdown, stops gossiping and
    /// renewing its record (which then expires) rather than announcing a node that is gone.
    fn drop(&mut self) {
        if let Some(record) = &self.record {
            record.task.abort();
        }
        if let Some(task) = &self.rebalancing {
            task.abort();
        }
        if let Some(membership) = &self.membership
            && !self.left.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            membership.leave();
        }
    }
}

#[derive(Clone)]
struct RebalanceMetrics {
    handoffs: Counter,
    misplaced: Gauge,
    duration: Histogram,
}

impl RebalanceMetrics {
    fn register(metrics: &mut Registry) -> RebalanceMetrics {
        let rebalance = RebalanceMetrics {
            handoffs: Counter::default(),
            misplaced: Gauge::default(),
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        };
        metrics.register(
            "omnigraph_cluster_handoffs",
            "Graphs this node handed over to their placement owner",
            rebalance.handoffs.clone(),
        );
        metrics.register(
            "omnigraph_cluster_misplaced_graphs",
            "Warm graphs this node writes that placement gives to another node, at the last \
             rebalancing round",
            rebalance.misplaced.clone(),
        );
        metrics.register(
            "omnigraph_cluster_handoff_duration_seconds",
            "The longest hand-over of each rebalancing round that handed one over",
            rebalance.duration.clone(),
        );
        rebalance
    }
}

/// Keeps this node's record in storage fresh while the node runs.
struct RecordPublisher {
    directory: Arc<NodeDirectory>,
    node: String,
    generation: u64,
    address: String,
    roles: Vec<String>,
    task: JoinHandle<()>,
}

impl ClusterPart {
    /// Every `interval`, hands over at most `max_share` of the warm graphs placement moved
    /// elsewhere (only with gossip). The task ends with the registry's shutdown.
    pub(crate) fn start_rebalancing(
        &mut self,
        registry: &omnigraph_cloud_actors::Registry,
        interval: Duration,
        max_share: f64,
    ) {
        let Some(metrics) = self.rebalance.clone() else {
            return;
        };
        let registry = registry.clone();
        self.rebalancing = Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(interval);
            every.tick().await; // the first round one interval after the start
            loop {
                every.tick().await;
                if registry.is_shutting_down() {
                    return;
                }
                let round = registry.hand_over_misplaced(max_share).await;
                metrics.misplaced.set(round.misplaced as i64);
                if round.handed_over > 0 {
                    metrics.handoffs.inc_by(round.handed_over as u64);
                    metrics.duration.observe(round.longest.as_secs_f64());
                }
            }
        }));
    }

    /// At shutdown: marks the record released (others stop forwarding here at once) and stops
    /// gossiping.
    pub(crate) async fn leave(&self) {
        if let Some(record) = &self.record {
            record.task.abort();
            let published = record
                .directory
                .publish(
                    &record.node,
                    record.generation,
                    &record.address,
                    &record.roles,
                    true,
                )
                .await;
            if let Err(err) = published {
                warn!(error = %err, "the node record could not be marked released; it expires");
            }
        }
        if let Some(membership) = &self.membership
            && !self.left.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            membership.leave();
        }
    }
}

/// Joins the gossip when `[cluster] gossip_bind` is set, as this node's card (its name, the
/// HTTP address it advertises, its roles); publishes its node record; and sets up placement.
/// A read replica outside any gossip gets a placement that never takes a lease.
pub(crate) async fn join(
    config: &NodeConfig,
    http: Option<String>,
    leases: &LeaseStore,
    metrics: &mut Registry,
) -> Result<ClusterPart, NodeError> {
    let read_only = config.node.serves() && !config.node.takes_writes();
    let Some(gossip) = &config.cluster.gossip else {
        let placement: Option<Arc<dyn Placement>> = read_only.then(|| Arc::new(ReadOnly) as _);
        let mut part = ClusterPart::default();
        part.placement = placement;
        return Ok(part);
    };
    let node = node_name(config.node.id.as_deref());
    let roles: Vec<String> = config
        .node
        .roles
        .iter()
        .map(|role| role.as_str().to_string())
        .collect();
    let card = Card {
        node: node.clone(),
        http: http.clone(),
        roles: roles.clone(),
    };
    // A restart is a new generation: its start time comes after every earlier one.
    let generation = Clock::system().wall_ms();
    let membership = Arc::new(Membership::join(gossip, card, generation).await?);
    let directory = Arc::new(NodeDirectory::new(leases));
    if let Some(address) = &http {
        // Held before the first repo lease is taken, so that those hang off it.
        if let Err(err) = directory
            .publish(&node, generation, address, &roles, false)
            .await
        {
            warn!(error = %err, "the node record could not be written; leases are renewed one by one until it can");
        }
    }
    let record = http.map(|address| {
        let task = tokio::spawn(keep_record(
            Arc::clone(&directory),
            node.clone(),
            generation,
            address.clone(),
            roles.clone(),
        ));
        RecordPublisher {
            directory: Arc::clone(&directory),
            node: node.clone(),
            generation,
            address,
            roles,
            task,
        }
    });
    let placement = GossipPlacement::new(
        Arc::clone(&membership),
        Arc::clone(&directory),
        node,
        config.node.takes_writes(),
    );
    let members = Family::<StateLabel, Gauge>::default();
    metrics.register(
        "omnigraph_cluster_members",
        "Live members of the cluster's gossip as this node sees them, by state",
        members.clone(),
    );
    tokio::spawn(sample(Arc::downgrade(&membership), members));
    let mut part = ClusterPart::default();
    part.membership = Some(membership);
    part.placement = Some(Arc::new(placement));
    part.directory = Some(Arc::clone(&directory));
    part.record = record;
    part.rebalance = Some(RebalanceMetrics::register(metrics));
    Ok(part)
}

/// Writes the node record now and every third of the lease TTL.
async fn keep_record(
    directory: Arc<NodeDirectory>,
    node: String,
    generation: u64,
    address: String,
    roles: Vec<String>,
) {
    let mut every = tokio::time::interval(directory.renew_every());
    loop {
        every.tick().await;
        if let Err(err) = directory
            .publish(&node, generation, &address, &roles, false)
            .await
        {
            warn!(error = %err, "the node record could not be renewed");
        }
    }
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
