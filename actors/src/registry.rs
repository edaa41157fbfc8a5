//! The registry: finds the warm repo for a key, activating it exactly once on first use, and
//! creates, lists and deletes graphs.
//!
//! Each key has a slot holding a `OnceCell`: concurrent first requests all wait on the same
//! activation. Activation, creation and deletion of one key are serialised by a per-key
//! lifecycle lock, so a graph cannot be reopened while it is being deleted. A slot is removed
//! when its supervisor stops (eviction, deletion, shutdown, failed restart); a caller that
//! finds a closing repo drops the stale slot and activates a fresh one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use omnigraph::db::Omnigraph;
use omnigraph::error::OmniError;
use omnigraph_cloud_config::{ActorConfig, GraphId, TenantId, WriteConfig};
use ractor::Actor;
use tokio::sync::{Mutex, OnceCell, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::lease::{Acquired, Lease, LeaseKind, LeaseStore, now_ms};
use crate::maintenance::report::{Backlog, Policy};
use crate::maintenance::{
    LeaseView, MaintenanceReport, MaintenanceSettings, NodeMaintenance, RepoMaintenance,
};
use crate::metrics::{ActorMetrics, RegistryStats};
use crate::repo::{
    Activity, Life, RepoHandle, RepoLease, RepoShared, RepoSupervisor, SupervisorArgs,
};
use crate::{GraphStore, RepoError, RepoKey};

/// How many times a request chases a repo that closes under it before giving up.
const MAX_ACTIVATION_ATTEMPTS: usize = 8;

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: GraphStore,
    settings: ActorConfig,
    writes: WriteConfig,
    metrics: ActorMetrics,
    maintenance: NodeMaintenance,
    scanner: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    slots: DashMap<RepoKey, Arc<Slot>>,
    lifecycle: DashMap<RepoKey, Arc<Mutex<()>>>,
    shutting_down: AtomicBool,
}

struct Slot {
    handle: OnceCell<RepoHandle>,
}

impl Registry {
    pub fn new(
        store: GraphStore,
        settings: ActorConfig,
        writes: WriteConfig,
        metrics: ActorMetrics,
        maintenance: NodeMaintenance,
    ) -> Registry {
        Registry {
            inner: Arc::new(Inner {
                store,
                settings,
                writes,
                metrics,
                maintenance,
                scanner: std::sync::Mutex::new(None),
                slots: DashMap::new(),
                lifecycle: DashMap::new(),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    pub fn store(&self) -> &GraphStore {
        &self.inner.store
    }

    pub fn stats(&self) -> RegistryStats {
        self.inner.metrics.stats()
    }

    /// This process's lease holder id.
    pub fn holder_id(&self) -> &str {
        &self.inner.maintenance.holder_id
    }

    pub fn lease_store(&self) -> &LeaseStore {
        &self.inner.maintenance.leases
    }

    pub fn maintenance_settings(&self) -> &MaintenanceSettings {
        &self.inner.maintenance.settings
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Whether the repo is warm (activated) on this node.
    pub fn is_warm(&self, key: &RepoKey) -> bool {
        self.inner
            .slots
            .get(key)
            .is_some_and(|slot| slot.handle.get().is_some())
    }

    /// Starts the worker's scanner (see [`crate::maintenance::scanner`]) if this node runs
    /// maintenance. Stopped by [`Registry::shutdown`].
    pub fn start_maintenance(&self) {
        if !self.inner.maintenance.settings.enabled {
            return;
        }
        let task = tokio::spawn(crate::maintenance::scanner::run(self.clone()));
        if let Some(old) = self
            .inner
            .scanner
            .lock()
            .expect("scanner lock")
            .replace(task)
        {
            old.abort();
        }
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
            None => (
                self.cold_maintenance(key).await,
                Arc::new(Omnigraph::open_read_only(&self.inner.store.graph_uri(key)).await?),
            ),
        };
        let now = now_ms();
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

    /// The repo for `key`, activated if cold, leased for the duration of one request.
    pub async fn repo(&self, key: &RepoKey) -> Result<RepoLease, RepoError> {
        for _ in 0..MAX_ACTIVATION_ATTEMPTS {
            let slot = self.slot(key);
            let handle = match slot
                .handle
                .get_or_try_init(|| self.activate(key, &slot))
                .await
            {
                Ok(handle) => handle.clone(),
                Err(err) => {
                    self.forget_slot(key, &slot);
                    return Err(err);
                }
            };
            if let Some(guard) = handle.shared.activity.enter() {
                return Ok(RepoLease::new(handle, guard));
            }
            // Closing (evicted or being deleted): drop the stale slot and try again.
            self.forget_slot(key, &slot);
            tokio::task::yield_now().await;
        }
        Err(RepoError::unavailable(format!(
            "graph '{}' is being unloaded; retry",
            key.graph
        )))
    }

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
                expires_in_ms: record.expires_at_ms.saturating_sub(now_ms()),
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

    /// The tenant's graphs, sorted by id.
    pub async fn list_graphs(&self, tenant: &TenantId) -> Result<Vec<GraphId>, RepoError> {
        self.inner.store.list_graphs(tenant).await
    }

    /// Stops accepting activations, lets in-flight requests finish, and stops every actor.
    /// Repos are stopped even if requests are still in flight after `within` (reads and
    /// exports already running keep their engine handle until they end).
    pub async fn shutdown(&self, within: std::time::Duration) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        if let Some(scanner) = self.inner.scanner.lock().expect("scanner lock").take() {
            scanner.abort();
        }
        let handles: Vec<RepoHandle> = self
            .inner
            .slots
            .iter()
            .filter_map(|slot| slot.handle.get().cloned())
            .collect();
        futures::future::join_all(handles.iter().map(|handle| stop_repo(handle, within))).await;
    }

    fn slot(&self, key: &RepoKey) -> Arc<Slot> {
        let entry = self.inner.slots.entry(key.clone()).or_insert_with(|| {
            Arc::new(Slot {
                handle: OnceCell::new(),
            })
        });
        Arc::clone(&entry)
    }

    fn forget_slot(&self, key: &RepoKey, slot: &Arc<Slot>) {
        self.inner
            .slots
            .remove_if(key, |_, current| Arc::ptr_eq(current, slot));
    }

    /// Takes the per-key lock shared by activation, creation and deletion. The map entry is
    /// removed again when nobody holds or waits for it, so probing ids does not grow it.
    async fn lifecycle_lock(&self, key: &RepoKey) -> LifecycleGuard {
        // The guard exists before the wait, so a waiter that is cancelled prunes too.
        let mut held = LifecycleGuard {
            lock: Some(Arc::clone(
                &self.inner.lifecycle.entry(key.clone()).or_default(),
            )),
            guard: None,
            inner: Arc::clone(&self.inner),
            key: key.clone(),
        };
        let lock = Arc::clone(held.lock.as_ref().expect("set above"));
        held.guard = Some(lock.lock_owned().await);
        held
    }

    fn refuse_if_shutting_down(&self) -> Result<(), RepoError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(RepoError::unavailable("the node is shutting down"));
        }
        Ok(())
    }

    /// Opens the repo: checks that the graph exists, then starts its supervisor, whose actor
    /// opens the engine handle.
    async fn activate(&self, key: &RepoKey, slot: &Arc<Slot>) -> Result<RepoHandle, RepoError> {
        self.refuse_if_shutting_down()?;
        let _held = self.lifecycle_lock(key).await;
        if !self.inner.store.graph_exists(key).await? {
            return Err(RepoError::GraphNotFound {
                graph: key.graph.clone(),
            });
        }
        let started = Instant::now();
        let (life, _) = watch::channel(Life::Restarting);
        let shared = Arc::new(RepoShared {
            key: key.clone(),
            uri: self.inner.store.graph_uri(key),
            activity: Activity::new(),
            life,
            call_timeout: self.inner.settings.call_timeout,
            writes: self.inner.writes.for_tenant(&key.tenant),
            coalescer_metrics: self.inner.metrics.coalescer.clone(),
            maintenance: self.inner.maintenance.for_repo(key, &self.inner.store),
        });
        let args = SupervisorArgs {
            shared: Arc::clone(&shared),
            idle_timeout: self.inner.settings.idle_timeout,
            metrics: self.inner.metrics.clone(),
            on_stop: self.on_stop(key.clone(), Arc::downgrade(slot)),
        };
        let (supervisor, _) = Actor::spawn(None, RepoSupervisor, args)
            .await
            .map_err(|err| {
                RepoError::unavailable(format!("graph '{}' could not be opened: {err}", key.graph))
            })?;
        self.inner.metrics.activations.inc();
        self.inner.metrics.active.inc();
        self.inner
            .metrics
            .activation_seconds
            .observe(started.elapsed().as_secs_f64());
        info!(repo = %key, elapsed_ms = started.elapsed().as_millis() as u64, "repo activated");
        Ok(RepoHandle { shared, supervisor })
    }

    /// What a supervisor runs when it stops: forget its slot, count it inactive.
    fn on_stop(&self, key: RepoKey, slot: Weak<Slot>) -> Box<dyn FnOnce() + Send> {
        let inner = Arc::downgrade(&self.inner);
        Box::new(move || {
            let Some(inner) = inner.upgrade() else { return };
            inner.metrics.active.dec();
            if let Some(slot) = slot.upgrade() {
                inner
                    .slots
                    .remove_if(&key, |_, current| Arc::ptr_eq(current, &slot));
            }
        })
    }
}

struct LifecycleGuard {
    lock: Option<Arc<Mutex<()>>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    inner: Arc<Inner>,
    key: RepoKey,
}

impl Drop for LifecycleGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        drop(self.lock.take());
        // Only the map holds it now: nobody holds or waits for this key.
        self.inner
            .lifecycle
            .remove_if(&self.key, |_, lock| Arc::strong_count(lock) == 1);
    }
}

/// Closes the repo to new requests, waits (at most `within`) for those in flight, and stops
/// its actors.
async fn stop_repo(handle: &RepoHandle, within: std::time::Duration) {
    if tokio::time::timeout(within, handle.shared.activity.close_and_drain())
        .await
        .is_err()
    {
        warn!(repo = %handle.shared.key, ?within, "requests still in flight; stopping the repo anyway");
    }
    let _ = handle
        .supervisor
        .stop_and_wait(Some("stopped".into()), None)
        .await;
}
