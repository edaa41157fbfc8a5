//! Taking a repo's free writer lease only where placement says (docs/cluster.md,
//! "Placement"): for a write on the request path, and for an activation's authority claim.
//! Maintenance (recovery, cleanup) takes the lease as before: it runs where the work is.

use omnigraph_cloud_cluster::lease::{LeaseError, LeaseKind};
use omnigraph_cloud_cluster::owner::Placed;

use super::{Held, RepoMaintenance};
use crate::RepoError;

/// What a write found of the writer lease.
pub(crate) enum ForWrite {
    /// Ours, or another live holder's: as [`super::LeaseHolder::ensure`] says.
    Held(Held),
    /// Nobody holds it, and this node should not take it: [`refusal`] answers the write.
    Placed(Placed),
}

/// The answer to a write of `graph` that placement sends elsewhere.
pub(crate) fn refusal(graph: &omnigraph_cloud_config::GraphId, placed: &Placed) -> RepoError {
    match placed {
        Placed::Elsewhere { node, address } => RepoError::PlacedElsewhere {
            graph: graph.clone(),
            node: node.clone(),
            address: address.clone(),
        },
        Placed::Here | Placed::Nowhere(_) => {
            let why = match placed {
                Placed::Nowhere(why) => why.as_str(),
                _ => "placement gave it to no node",
            };
            RepoError::unavailable(format!(
                "nobody writes graph '{graph}' now and {why}; nothing was written"
            ))
        }
    }
}

impl RepoMaintenance {
    /// The answer to a write this node may not make, for a lease placed or held elsewhere;
    /// `None` for a lease this node holds.
    pub(crate) fn refusal_for(&self, found: &ForWrite) -> Option<RepoError> {
        let graph = &self.key.graph;
        match found {
            ForWrite::Placed(placed) => Some(refusal(graph, placed)),
            // This process's own live record, held by a handle of the graph that is closing
            // (a hand-over or an eviction under way): a moment's wait, not another node.
            ForWrite::Held(Held::Other(record)) if record.holder == *self.holder_id => {
                Some(RepoError::unavailable(format!(
                    "graph '{graph}' is being handed over or unloaded on this node; nothing was \
                     written, retry"
                )))
            }
            ForWrite::Held(Held::Other(record)) => Some(RepoError::NotWriter {
                graph: graph.clone(),
                holder: record.holder.clone(),
                epoch: record.epoch,
                expires_in_ms: record.expires_at_ms.saturating_sub(self.clock().wall_ms()),
                address: record.address.clone(),
            }),
            ForWrite::Held(Held::Ours(_)) => None,
        }
    }

    /// Whether an activation may claim the repo's leases: its writer lease is ours or free and
    /// placed here (a failed lookup counts as no).
    pub(crate) async fn placed_here(&self) -> bool {
        matches!(self.placed_elsewhere(false).await, Ok(None))
    }

    /// `None` when this node may go on to take (or keep) the writer lease; else what the
    /// write is answered with. Only asks placement when this node holds no live lease, and
    /// not for a write another node `forwarded` here if this node takes writes (`origin`).
    pub(crate) async fn placed_elsewhere(
        &self,
        forwarded: bool,
    ) -> Result<Option<ForWrite>, LeaseError> {
        let Some(placement) = &self.placement else {
            return Ok(None);
        };
        if self.writer.live().is_some() || (forwarded && placement.takes_writes()) {
            return Ok(None);
        }
        let placed = placement.place(&self.key).await;
        if placed == Placed::Here {
            return Ok(None);
        }
        // A held lease is honoured whatever placement says: the holder writes. A live record
        // of this process (a renewal whose answer was lost) or of its dead predecessor is
        // taken back as usual; a free one, ours or not, goes where placement says.
        if let Some(record) = self
            .writer
            .store()
            .get(&self.key, LeaseKind::Writer)
            .await?
        {
            let now = self.clock().wall_ms();
            if !record.is_free_at(now) {
                let ours = record.holder == *self.holder_id
                    || record.held_by_dead_predecessor_of(&self.holder_id);
                if ours {
                    return Ok(None);
                }
                return Ok(Some(ForWrite::Held(Held::Other(record))));
            }
        }
        Ok(Some(ForWrite::Placed(placed)))
    }
}
