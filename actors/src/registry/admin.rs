//! What the admin route shows of a repo's maintenance, warm or cold: its leases, last runs,
//! backlog and tables as stored.

use std::sync::Arc;

use omnigraph::db::Omnigraph;
use omnigraph_cloud_cluster::lease::LeaseKind;
use tracing::warn;

use super::Registry;
use crate::maintenance::report::{Backlog, Policy};
use crate::maintenance::{LeaseView, MaintenanceReport, RepoMaintenance};
use crate::{RepoError, RepoKey};

/// A graph warm on this node, as `GET /admin/cluster` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WarmGraph {
    pub graph_id: String,
    /// The epoch of this node's writer lease on it, while that lease is live; `None` when
    /// this node only reads it.
    pub writer_epoch: Option<u64>,
}

/// A graph warm on this node, as the console lists it: from memory, no store request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WarmOverview {
    pub tenant: String,
    pub graph: String,
    /// The epoch of this node's live writer lease on it, if any.
    pub writer_epoch: Option<u64>,
    /// Publishes since its last compaction.
    pub backlog_versions: u64,
    /// When its last maintenance run (recovery, compaction or cleanup) started.
    pub last_maintenance_ms: Option<u64>,
}

impl Registry {
    /// Every graph warm on this node, sorted by tenant and graph.
    pub fn warm_overview(&self) -> Vec<WarmOverview> {
        let mut graphs: Vec<WarmOverview> = self
            .inner
            .slots
            .iter()
            .filter_map(|entry| {
                let handle = entry.value().handle.get()?;
                let maintenance = &handle.shared.maintenance;
                let progress = maintenance.progress();
                let last = [
                    &progress.last_compaction,
                    &progress.last_cleanup,
                    &progress.last_recovery,
                ]
                .into_iter()
                .flatten()
                .map(|run| run.started_at_ms)
                .max();
                Some(WarmOverview {
                    tenant: entry.key().tenant.to_string(),
                    graph: entry.key().graph.to_string(),
                    writer_epoch: maintenance.writer.live(),
                    backlog_versions: progress.versions_since_run,
                    last_maintenance_ms: last,
                })
            })
            .collect();
        graphs.sort_by(|a, b| (&a.tenant, &a.graph).cmp(&(&b.tenant, &b.graph)));
        graphs
    }

    /// The tenant's graphs warm on this node, sorted, and which of them it writes.
    pub fn warm_graphs(&self, tenant: &omnigraph_cloud_config::TenantId) -> Vec<WarmGraph> {
        let mut graphs: Vec<WarmGraph> = self
            .inner
            .slots
            .iter()
            .filter(|entry| &entry.key().tenant == tenant)
            .filter_map(|entry| {
                let handle = entry.value().handle.get()?;
                Some(WarmGraph {
                    graph_id: entry.key().graph.to_string(),
                    writer_epoch: handle.shared.maintenance.writer.live(),
                })
            })
            .collect();
        graphs.sort_by(|a, b| a.graph_id.cmp(&b.graph_id));
        graphs
    }

    /// Maintenance state for a repo that is not warm here, resumed from what the last node
    /// that touched it recorded.
    pub(crate) async fn cold_maintenance(&self, key: &RepoKey) -> Arc<RepoMaintenance> {
        let maintenance = self.inner.maintenance.for_repo(key, &self.inner.store);
        match self.inner.store.get_maintenance_status(key).await {
            Ok(Some(progress)) => maintenance.resume(progress),
            Ok(None) => {}
            Err(err) => warn!(repo = %key, error = %err, "could not read maintenance status"),
        }
        maintenance
    }

    /// What `GET /admin/repos/{tenant}/{graph}/maintenance` shows.
    pub async fn maintenance_report(&self, key: &RepoKey) -> Result<MaintenanceReport, RepoError> {
        if !self.inner.store.graph_exists(key).await? {
            return Err(RepoError::GraphNotFound {
                graph: key.graph.clone(),
            });
        }
        let warm = self
            .inner
            .slots
            .get(key)
            .and_then(|slot| slot.handle.get().cloned());
        let (maintenance, engine) = match &warm {
            Some(handle) => (
                Arc::clone(&handle.shared.maintenance),
                handle.incarnation().await?.engine.clone(),
            ),
            None => {
                let maintenance = self.cold_maintenance(key).await;
                let uri = self.inner.store.graph_uri(key);
                let opened = maintenance
                    .cache
                    .scope(Omnigraph::open_read_only(&uri))
                    .await?;
                (maintenance, Arc::new(opened))
            }
        };
        let now = self.lease_store().clock().wall_ms();
        let mut leases = Vec::new();
        for kind in LeaseKind::ALL {
            if let Some(record) = self
                .lease_store()
                .get(key, kind)
                .await
                .map_err(|err| RepoError::unavailable(err.to_string()))?
            {
                leases.push(LeaseView::new(kind, record, now, self.holder_id()));
            }
        }
        let (tables, files, bytes) = maintenance.inventory_with_files(&engine).await?;
        let mut lost_leases = Vec::new();
        for holder in [
            &maintenance.writer,
            &maintenance.recovery,
            &maintenance.compaction,
        ] {
            if let Some(lost) = holder.last_loss().await {
                lost_leases.push(format!("{}: {lost}", holder.kind()));
            }
        }
        let progress = maintenance.progress();
        let config = &self.inner.maintenance.settings.config;
        let retention = config.retention_for(&key.tenant);
        Ok(MaintenanceReport {
            tenant: key.tenant.to_string(),
            graph: key.graph.to_string(),
            node: self.holder_id().to_string(),
            worker: self.inner.maintenance.settings.enabled,
            warm: warm.is_some(),
            leases,
            lost_leases,
            backlog: Backlog {
                versions_since_run: progress.versions_since_run,
                bytes_since_run: progress.bytes_since_run,
            },
            pending_recovery_sidecars: self.inner.store.recovery_sidecars(key).await?,
            last_compaction: progress.last_compaction,
            last_cleanup: progress.last_cleanup,
            last_recovery: progress.last_recovery,
            tables,
            files,
            bytes,
            policy: Policy {
                interval_secs: config.interval.as_secs(),
                trigger_versions: config.trigger_versions,
                trigger_fragments: config.trigger_fragments,
                trigger_bytes: config.trigger_bytes,
                keep_versions: retention.keep_versions,
                keep_for_secs: retention.keep_for.as_secs(),
            },
        })
    }
}
