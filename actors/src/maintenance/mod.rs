//! Maintenance of one repo, off the request path: recovery and compaction, each under its
//! lease, plus the writer lease that fences request-path writes.
//!
//! [`RepoMaintenance`] is shared by a repo's `RepoActor` (writer lease, backlog counters),
//! its `RecoveryActor` and `CompactionActor` siblings (which run the jobs below), the worker
//! scan of a worker node (`crate::worker`, which runs them on cold repos), and the admin view.
//!
//! - **Recovery** runs the engine's full sweep (a read-write open) only while holding the
//!   repo's `recovery` lease *and* its `writer` lease, with this process's own writes paused:
//!   the sweep may restore datasets, which must never race a writer. A live writer elsewhere
//!   is left alone: its own writes heal roll-forward residue, and the sweep waits until its
//!   lease lapses.
//! - **Compaction** runs `optimize` (compaction, index builds, manifest compaction) on the
//!   repo's warm handle when there is one, so that the engine's per-table queue orders it
//!   against request writes, then `cleanup` with the tenant's retention, after validating the
//!   lease, with no recovery pending, and bounded by the lease's remaining time.
//!
//! Files: this one wires a repo's maintenance state together; [`status`] keeps and saves its
//! progress, [`recovery`], [`compaction`] and [`cleanup`] are the jobs, [`inventory`] reads
//! the tables as stored; [`holder`] holds a lease and its fence. The jobs are scheduled by a
//! warm repo's maintenance actors (`repo::maintenance_actors`, behind [`Scheduler`]), and by
//! the worker's scan for cold repos (`crate::worker`).

mod authority;
mod cleanup;
mod compaction;
mod holder;
mod inventory;
mod placed;
mod recovery;
pub mod report;
mod status;

use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use omnigraph_cloud_cluster::Clock;
use omnigraph_cloud_cluster::lease::{LeaseError, LeaseKind, LeaseStore, LeaseTiming};
use omnigraph_cloud_cluster::owner::Placement;
use omnigraph_cloud_config::{MaintenanceConfig, Retention};
use tokio::sync::RwLock;
use tracing::warn;

pub(crate) use holder::{Fence, Held, LeaseHolder};
pub(crate) use placed::{ForWrite, refusal};
pub use report::{LeaseView, MaintenanceReport, RunRecord, TableInventory};
pub(crate) use status::{Outcome, Progress};

use crate::metrics::MaintenanceMetrics;
use crate::{GraphStore, RepoKey};

/// How a node maintains repos, resolved from its configuration.
#[derive(Debug, Clone)]
pub struct MaintenanceSettings {
    /// This node runs maintenance (it has the worker role and maintenance is enabled).
    pub enabled: bool,
    pub config: MaintenanceConfig,
}

/// What every repo's maintenance on this node shares.
#[derive(Clone)]
pub struct NodeMaintenance {
    pub(crate) leases: LeaseStore,
    /// This process's lease holder id.
    pub(crate) holder_id: Arc<str>,
    pub(crate) settings: MaintenanceSettings,
    pub(crate) lease_metrics: crate::metrics::LeaseMetrics,
    pub(crate) metrics: MaintenanceMetrics,
    /// Who should take a free writer lease; `None`: this node, whenever it is asked to write.
    pub(crate) placement: Option<Arc<dyn Placement>>,
}

impl NodeMaintenance {
    /// Maintenance with `leases` held as `holder_id`; its lease and job metrics are registered
    /// into `metrics`.
    pub fn new(
        leases: LeaseStore,
        holder_id: Arc<str>,
        settings: MaintenanceSettings,
        metrics: &mut prometheus_client::registry::Registry,
    ) -> NodeMaintenance {
        NodeMaintenance {
            leases,
            holder_id,
            settings,
            lease_metrics: crate::metrics::LeaseMetrics::register(metrics),
            metrics: MaintenanceMetrics::register(metrics),
            placement: None,
        }
    }

    /// The same maintenance, taking a free writer lease for a write or an activation only
    /// where `placement` says (docs/cluster.md, "Placement").
    pub fn with_placement(mut self, placement: Arc<dyn Placement>) -> NodeMaintenance {
        self.placement = Some(placement);
        self
    }

    pub(crate) fn for_repo(&self, key: &RepoKey, store: &GraphStore) -> Arc<RepoMaintenance> {
        RepoMaintenance::new(
            key.clone(),
            store.clone(),
            self.leases.clone(),
            Arc::clone(&self.holder_id),
            self.settings.clone(),
            self.lease_metrics.clone(),
            self.metrics.clone(),
            self.placement.clone(),
        )
    }
}

/// Where a warm repo's maintenance jobs are scheduled: its recovery and compaction actors
/// (the repo's supervisor sets them while the repo is warm on a worker node).
pub(crate) trait Scheduler: Send + Sync {
    /// A publish happened; `due` when it reached a compaction trigger.
    fn published(&self, due: bool);
    /// A write failed part-way: look for residue to sweep.
    fn check_recovery(&self);
}

/// One repo's maintenance state on this node.
pub(crate) struct RepoMaintenance {
    pub(crate) key: RepoKey,
    pub(crate) uri: String,
    pub(crate) store: GraphStore,
    pub(crate) holder_id: Arc<str>,
    pub(crate) settings: MaintenanceSettings,
    pub(crate) retention: Retention,
    pub(crate) writer: Arc<LeaseHolder>,
    pub(crate) recovery: Arc<LeaseHolder>,
    pub(crate) compaction: Arc<LeaseHolder>,
    /// Keeps publishes and a sweep apart: request-path publishes (and optimize) hold it
    /// shared; a recovery sweep and cleanup hold it exclusively.
    pub(crate) sweep_exclusion: RwLock<()>,
    /// Keeps optimize and the writes that run alone apart (updates, deletes, overwrites, schema
    /// applies, branch operations): those check the table versions they read before they
    /// stage, and would lose to a compaction commit in between (a 409 for nothing).
    pub(crate) optimize_exclusion: tokio::sync::Mutex<()>,
    pub(crate) metrics: MaintenanceMetrics,
    /// The writer-lease epoch under which this node last confirmed that no residue was
    /// pending before writing (0: none yet). A new epoch means a new check.
    pub(crate) swept_for_epoch: std::sync::atomic::AtomicU64,
    /// Writes queued in the repo's coalescer (kept by its `RepoActor`).
    pub(crate) queued_writes: AtomicUsize,
    /// The repo's maintenance actors, while it is warm on a worker node.
    pub(crate) actors: StdMutex<Option<Box<dyn Scheduler>>>,
    /// The repo's namespace in the cache tier; every change made here goes through it.
    pub(crate) cache: Arc<crate::cache::RepoCache>,
    /// The compaction lease is kept between runs: the repo is authoritative here (see
    /// [`authority`]).
    pub(crate) keeps_compaction: std::sync::atomic::AtomicBool,
    /// Who should take the free writer lease (see [`placed`]).
    pub(crate) placement: Option<Arc<dyn Placement>>,
    state: StdMutex<Progress>,
}

impl RepoMaintenance {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key: RepoKey,
        store: GraphStore,
        leases: LeaseStore,
        holder_id: Arc<str>,
        settings: MaintenanceSettings,
        lease_metrics: crate::metrics::LeaseMetrics,
        metrics: MaintenanceMetrics,
        placement: Option<Arc<dyn Placement>>,
    ) -> Arc<RepoMaintenance> {
        let holder = |kind| {
            LeaseHolder::new(
                leases.clone(),
                key.clone(),
                kind,
                Arc::clone(&holder_id),
                lease_metrics.clone(),
            )
        };
        let cache = crate::cache::repo_cache(key.clone(), store.cache().clone(), leases.clock());
        Arc::new(RepoMaintenance {
            uri: store.graph_uri(&key),
            retention: settings.config.retention_for(&key.tenant),
            writer: holder(LeaseKind::Writer),
            recovery: holder(LeaseKind::Recovery),
            compaction: holder(LeaseKind::Compaction),
            key,
            store,
            holder_id,
            settings,
            sweep_exclusion: RwLock::new(()),
            optimize_exclusion: tokio::sync::Mutex::new(()),
            metrics,
            swept_for_epoch: std::sync::atomic::AtomicU64::new(0),
            queued_writes: AtomicUsize::new(0),
            actors: StdMutex::new(None),
            cache,
            keeps_compaction: std::sync::atomic::AtomicBool::new(false),
            placement,
            state: StdMutex::new(Progress::default()),
        })
    }

    /// Whether request-path writes are waiting: maintenance defers a little.
    pub(crate) fn busy(&self) -> bool {
        self.queued_writes.load(Ordering::Relaxed) > 0
    }

    /// The clock this repo's leases and maintenance are timed by (the lease store's).
    pub(crate) fn clock(&self) -> Clock {
        self.writer.store().clock()
    }

    pub(crate) fn store_lease_timing(&self) -> LeaseTiming {
        self.writer.store().timing()
    }

    /// Tells the maintenance actors about a publish of `bytes` request bytes.
    pub(crate) fn published(&self, bytes: u64) {
        let due = self.note_publish(bytes);
        let actors = self.actors.lock().expect("maintenance actors lock");
        match actors.as_ref() {
            Some(actors) => actors.published(due),
            None if due => {
                // No worker here: hand the backlog over to whichever worker scans the root.
                let progress = {
                    let mut state = self.state.lock().expect("maintenance state lock");
                    let handed = state.clone();
                    state.versions_since_run = 0;
                    state.bytes_since_run = 0;
                    handed
                };
                self.save_in_background(progress);
            }
            None => {}
        }
    }

    /// The repo leaves this node: give its leases back, and hand an unmaintained backlog
    /// over to whichever worker scans the root.
    pub(crate) async fn go_cold(&self) {
        self.writer.release().await;
        self.recovery.release().await;
        self.compaction.release().await;
        if self.has_backlog() {
            let progress = self.progress();
            if let Err(err) = self
                .store
                .put_maintenance_status(&self.key, &progress)
                .await
            {
                warn!(repo = %self.key, error = %err, "could not hand maintenance over");
            }
        }
    }

    /// Asks the recovery actor to look for residue (after a write failed part-way).
    pub(crate) fn check_recovery(&self) {
        if let Some(actors) = self
            .actors
            .lock()
            .expect("maintenance actors lock")
            .as_ref()
        {
            actors.check_recovery();
        }
    }
}

fn lease_failure(err: LeaseError) -> String {
    format!("lease: {err}")
}
