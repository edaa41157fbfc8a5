//! The registry: finds the warm repo for a key, activating it exactly once on first use, and
//! creates, lists and deletes graphs.
//!
//! Each key has a slot holding a `OnceCell`: concurrent first requests all wait on the same
//! activation. Activation, creation and deletion of one key are serialised by a per-key
//! lifecycle lock, so a graph cannot be reopened while it is being deleted. A slot is removed
//! when its supervisor stops (eviction, deletion, shutdown, failed restart); a caller that
//! finds a closing repo drops the stale slot and activates a fresh one.
//!
//! Files: this one activates, evicts and shuts repos down; [`lifecycle`] creates and deletes
//! graphs; [`admin`] builds the maintenance report.

mod admin;
pub use admin::{WarmGraph, WarmOverview};
pub use rebalance::Rebalanced;
mod lifecycle;
mod pressure;
mod rebalance;
mod warm;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use omnigraph_cloud_config::{ActorConfig, GraphId, TenantId, WriteConfig};
use ractor::Actor;
use tokio::sync::{Mutex, OnceCell, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::maintenance::{MaintenanceSettings, NodeMaintenance};
use crate::metrics::{ActorMetrics, RegistryStats};
use crate::repo::{
    ActiveRepo, Activity, Life, RepoHandle, RepoShared, RepoSupervisor, SupervisorArgs,
};
use crate::{GraphStore, RepoError, RepoKey};
use omnigraph_cloud_cluster::lease::LeaseStore;

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
    worker_scan: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    slots: DashMap<RepoKey, Arc<Slot>>,
    /// Graphs warm or activating, against `settings.max_warm_graphs` (see `pressure`).
    seats: AtomicUsize,
    lifecycle: DashMap<RepoKey, Arc<Mutex<()>>>,
    shutting_down: AtomicBool,
    /// The node id the warm set is recorded under, if any (see `warm`).
    warm_set_node: std::sync::OnceLock<String>,
    /// One warm-set record at a time, each made from the set as it is when written.
    warm_set_saves: Mutex<()>,
    /// A restore of the recorded warm set is under way (see `warm`).
    warm_set_pending: AtomicBool,
    /// The shutdown's record of the warm set is made: no other may follow.
    warm_set_closed: AtomicBool,
    /// Where a graph's use counts as a warm second of its tenant's usage, when metered.
    usage: std::sync::OnceLock<Arc<crate::usage::UsageMeter>>,
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
                worker_scan: std::sync::Mutex::new(None),
                slots: DashMap::new(),
                seats: AtomicUsize::new(0),
                lifecycle: DashMap::new(),
                shutting_down: AtomicBool::new(false),
                warm_set_node: std::sync::OnceLock::new(),
                warm_set_saves: Mutex::new(()),
                warm_set_pending: AtomicBool::new(false),
                warm_set_closed: AtomicBool::new(false),
                usage: std::sync::OnceLock::new(),
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

    /// Whether [`Registry::shutdown`] has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Whether the repo is warm (activated) on this node.
    pub fn is_warm(&self, key: &RepoKey) -> bool {
        self.inner
            .slots
            .get(key)
            .is_some_and(|slot| slot.handle.get().is_some())
    }

    /// Keeps a background task of the node's (the worker's scan) until [`Registry::shutdown`]
    /// aborts it.
    pub(crate) fn keep_background_task(&self, task: tokio::task::JoinHandle<()>) {
        if let Some(old) = self
            .inner
            .worker_scan
            .lock()
            .expect("worker scan lock")
            .replace(task)
        {
            old.abort();
        }
    }

    /// Counts every second a graph is used here as a warm second of its usage (the meter's
    /// 1 s tick counts the seconds it is warm but unused).
    pub fn meter_usage(&self, meter: Arc<crate::usage::UsageMeter>) {
        let _ = self.inner.usage.set(meter);
    }

    /// The repo for `key`, activated if cold, leased for the duration of one request.
    pub async fn repo(&self, key: &RepoKey) -> Result<ActiveRepo, RepoError> {
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
                if let Some(usage) = self.inner.usage.get() {
                    usage.active(key);
                }
                return Ok(ActiveRepo::new(handle, guard));
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

    /// The tenant's graphs, sorted by id.
    pub async fn list_graphs(&self, tenant: &TenantId) -> Result<Vec<GraphId>, RepoError> {
        self.inner.store.list_graphs(tenant).await
    }

    /// Stops accepting activations, lets in-flight requests finish, and stops every actor.
    /// Repos are stopped even if requests are still in flight after `within` (reads and
    /// exports already running keep their engine handle until they end).
    pub async fn shutdown(&self, within: std::time::Duration) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        if let Some(scan) = self
            .inner
            .worker_scan
            .lock()
            .expect("worker scan lock")
            .take()
        {
            scan.abort();
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
        let seat = self.take_seat(key).await?;
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
        seat.keep();
        self.inner.metrics.activations.inc();
        self.inner.metrics.active.inc();
        self.inner
            .metrics
            .activation_seconds
            .observe(started.elapsed().as_secs_f64());
        info!(repo = %key, elapsed_ms = started.elapsed().as_millis() as u64, "repo activated");
        Ok(RepoHandle { shared, supervisor })
    }

    /// What a supervisor runs when it stops: forget its slot, give back its seat, count it
    /// inactive, record the warm set without it.
    fn on_stop(&self, key: RepoKey, slot: Weak<Slot>) -> Box<dyn FnOnce() + Send> {
        let inner = Arc::downgrade(&self.inner);
        Box::new(move || {
            let Some(inner) = inner.upgrade() else { return };
            inner.metrics.active.dec();
            inner.seats.fetch_sub(1, Ordering::SeqCst);
            if let Some(slot) = slot.upgrade() {
                inner
                    .slots
                    .remove_if(&key, |_, current| Arc::ptr_eq(current, &slot));
            }
            Registry { inner }.warm_set_changed();
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
