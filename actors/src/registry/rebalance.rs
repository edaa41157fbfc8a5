//! Handing graphs over to their placement owner when membership changes (a node joins, or
//! one that left comes back): a warm graph this node writes but placement now gives to
//! another node is stopped once its write queue is idle, which flushes it and releases its
//! leases; its next write, wherever it arrives, goes to the owner (docs/cluster.md,
//! "Rebalancing"). Also where reads go when they follow placement.

use omnigraph_cloud_cluster::owner::Placed;
use tokio::time::Instant;
use tracing::info;

use super::{Registry, stop_repo};
use crate::repo::RepoHandle;

/// What one rebalancing round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rebalanced {
    /// Warm graphs this node writes that placement gives to another node.
    pub misplaced: usize,
    /// Of those, how many were handed over this round.
    pub handed_over: usize,
    /// The longest hand-over of the round (stopping the graph's actor).
    pub longest: std::time::Duration,
}

impl Registry {
    /// Where reads of `key` should go for cache affinity: its placement owner, `(node,
    /// address)`, unless that is this node or this node writes the graph. `None` without
    /// placement.
    pub async fn read_owner(&self, key: &crate::RepoKey) -> Option<(String, String)> {
        let placement = self.inner.maintenance.placement.as_ref()?;
        let warm = self
            .inner
            .slots
            .get(key)
            .and_then(|slot| slot.handle.get().cloned());
        if warm.is_some_and(|handle| handle.shared.maintenance.writer.live().is_some()) {
            return None;
        }
        match placement.place(key).await {
            Placed::Elsewhere { node, address } => Some((node, address)),
            Placed::Here | Placed::Nowhere(_) => None,
        }
    }

    /// One round: hands over at most `max_share` of this node's warm graphs (at least one)
    /// among those it writes but placement gives to another node and that have no write
    /// queued. Nothing happens without placement.
    pub async fn hand_over_misplaced(&self, max_share: f64) -> Rebalanced {
        let mut round = Rebalanced::default();
        let Some(placement) = &self.inner.maintenance.placement else {
            return round;
        };
        let warm: Vec<RepoHandle> = self
            .inner
            .slots
            .iter()
            .filter_map(|slot| slot.handle.get().cloned())
            .collect();
        let budget = ((warm.len() as f64 * max_share).ceil() as usize).max(1);
        for handle in warm {
            let maintenance = &handle.shared.maintenance;
            if maintenance.writer.live().is_none() {
                continue;
            }
            let Placed::Elsewhere { node, .. } = placement.place(&handle.shared.key).await else {
                continue;
            };
            round.misplaced += 1;
            if round.handed_over >= budget || maintenance.busy() || self.is_shutting_down() {
                continue;
            }
            let started = Instant::now();
            stop_repo(&handle, self.inner.settings.call_timeout).await;
            let took = started.elapsed();
            info!(repo = %handle.shared.key, to = %node, ?took, "graph handed over to its placement owner");
            round.handed_over += 1;
            round.longest = round.longest.max(took);
        }
        round
    }
}
