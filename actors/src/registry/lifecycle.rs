//! Creating and deleting graphs: each under the repo's lifecycle lock and its writer lease, so
//! that no other node writes the graph meanwhile, and within the lease's deadline.

use std::sync::Arc;

use omnigraph::db::Omnigraph;
use omnigraph::error::OmniError;
use omnigraph_cloud_cluster::lease::{Acquired, Lease, LeaseKind};
use tracing::{info, warn};

use super::{Registry, stop_repo};
use crate::maintenance::{ForWrite, refusal};
use crate::{RepoError, RepoKey};

impl Registry {
    /// Creates a graph with `schema_source`. Fails with `GraphExists` if it already exists.
    pub async fn create_graph(&self, key: &RepoKey, schema_source: &str) -> Result<(), RepoError> {
        self.refuse_if_shutting_down()?;
        let _held = self.lifecycle_lock(key).await;
        if self.inner.store.graph_exists(key).await? {
            return Err(RepoError::GraphExists {
                graph: key.graph.clone(),
            });
        }
        let lease = self.lifecycle_lease(key).await?;
        let result = self.create_under_lease(key, schema_source, &lease).await;
        self.release_lifecycle_lease(key, lease).await;
        result
    }

    /// The create itself, under the graph's writer lease: no other process is creating,
    /// deleting or writing the graph meanwhile, so what lies at its location is residue.
    async fn create_under_lease(
        &self,
        key: &RepoKey,
        schema_source: &str,
        lease: &Lease,
    ) -> Result<(), RepoError> {
        // Another process may have finished a create between our check and our lease.
        if self.inner.store.graph_exists(key).await? {
            return Err(RepoError::GraphExists {
                graph: key.graph.clone(),
            });
        }
        // Residue of a create or delete that crashed part-way (no schema object, other
        // files left) would make the engine refuse to init: it is ours to clear.
        self.inner.store.delete_graph(key).await?;
        self.inner.store.prepare_graph_location(key).await?;
        let uri = self.inner.store.graph_uri(key);
        let init = async { Ok(Omnigraph::init(&uri, schema_source).await) };
        match self.under_lifecycle_deadline(key, lease, init).await? {
            Ok(_) => {
                info!(repo = %key, "graph created");
                Ok(())
            }
            Err(OmniError::AlreadyInitialized { .. }) => Err(RepoError::GraphExists {
                graph: key.graph.clone(),
            }),
            Err(err) => {
                // We hold the lifecycle lock and the graph did not exist: what is there is ours.
                if let Err(cleanup) = self.inner.store.delete_graph(key).await {
                    warn!(repo = %key, error = %cleanup, "could not clean up after a failed create");
                }
                Err(err.into())
            }
        }
    }

    /// Deletes a graph: its actor is stopped first (in-flight requests finish), then every
    /// object of the graph is removed.
    pub async fn delete_graph(&self, key: &RepoKey) -> Result<(), RepoError> {
        self.refuse_if_shutting_down()?;
        let _held = self.lifecycle_lock(key).await;
        if !self.inner.store.graph_exists(key).await? {
            // Still clear residue of a delete or create that crashed part-way, but only under
            // the writer lease: without it, what lies there may be another node's create in
            // progress (not a graph until its schema object is written).
            if let Ok(lease) = self.lifecycle_lease(key).await {
                let cleared = self
                    .under_lifecycle_deadline(key, &lease, self.inner.store.delete_graph(key))
                    .await;
                self.release_lifecycle_lease(key, lease).await;
                cleared?;
            }
            return Err(RepoError::GraphNotFound {
                graph: key.graph.clone(),
            });
        }
        let slot = self.inner.slots.get(key).map(|slot| Arc::clone(&slot));
        if let Some(handle) = slot.as_ref().and_then(|slot| slot.handle.get()) {
            // Stopping the actor also releases the writer lease it held.
            stop_repo(handle, self.inner.settings.call_timeout).await;
        }
        // Under the writer lease: a graph another node writes (or creates) is not deleted
        // under it; that node is named instead.
        let lease = self.lifecycle_lease(key).await?;
        let deleted = self
            .under_lifecycle_deadline(key, &lease, self.inner.store.delete_graph(key))
            .await;
        self.release_lifecycle_lease(key, lease).await;
        deleted?;
        info!(repo = %key, "graph deleted");
        Ok(())
    }

    /// Takes the graph's writer lease for a create or delete, so that two processes on one
    /// root cannot interleave them, nor either with the graph's writes. Another holder is
    /// named (421), as for a write.
    async fn lifecycle_lease(&self, key: &RepoKey) -> Result<Lease, RepoError> {
        // A free lease placed on another node: the change is made there (forwarded).
        let maintenance = self.inner.maintenance.for_repo(key, &self.inner.store);
        match maintenance
            .placed_elsewhere(crate::origin::is_forwarded())
            .await
        {
            Ok(Some(ForWrite::Placed(placed))) => return Err(refusal(&key.graph, &placed)),
            Ok(_) => {}
            Err(err) => {
                return Err(RepoError::unavailable(format!(
                    "where graph '{}' is written could not be checked ({err}); nothing was \
                     changed, retry",
                    key.graph
                )));
            }
        }
        let acquired = self
            .lease_store()
            .acquire(key, LeaseKind::Writer, self.holder_id())
            .await
            .map_err(|err| {
                RepoError::unavailable(format!(
                    "the writer lease of graph '{}' could not be taken ({err}); nothing was \
                     changed, retry",
                    key.graph
                ))
            })?;
        match acquired {
            Acquired::Acquired(lease) => Ok(lease),
            // This node holds it (its maintenance borrowed it, or the graph was re-activated):
            // the change waits for that, rather than naming this node as another writer.
            Acquired::Held(record) if record.holder == self.holder_id() => {
                Err(RepoError::unavailable(format!(
                    "graph '{}' is busy on this node (being written or maintained); nothing was \
                     changed, retry",
                    key.graph
                )))
            }
            Acquired::Held(record) => Err(RepoError::NotWriter {
                graph: key.graph.clone(),
                holder: record.holder,
                epoch: record.epoch,
                expires_in_ms: record
                    .expires_at_ms
                    .saturating_sub(self.lease_store().clock().wall_ms()),
                address: record.address,
            }),
        }
    }

    /// Runs a step of a create or delete until the lease's deadline (the lease is not renewed
    /// during it): past that, another node may take the graph, so the step stops.
    async fn under_lifecycle_deadline<T>(
        &self,
        key: &RepoKey,
        lease: &Lease,
        step: impl Future<Output = Result<T, RepoError>>,
    ) -> Result<T, RepoError> {
        match tokio::time::timeout_at(lease.deadline(), step).await {
            Ok(result) => result,
            Err(_) => Err(RepoError::OutcomeUnknown {
                message: format!(
                    "changing graph '{}' outlived this node's lease on it and was stopped \
                     part-way; list the graphs, then create or delete it again",
                    key.graph
                ),
            }),
        }
    }

    async fn release_lifecycle_lease(&self, key: &RepoKey, lease: Lease) {
        if let Err(err) = self.lease_store().release(lease).await {
            warn!(repo = %key, error = %err, "could not release the writer lease after a create or delete; it will expire");
        }
    }
}
