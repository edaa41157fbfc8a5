//! Maintenance of one repo, off the request path: recovery and compaction, each under its
//! lease, plus the writer lease that fences request-path writes.
//!
//! [`RepoMaintenance`] is shared by a repo's `RepoActor` (writer lease, backlog counters),
//! its `RecoveryActor` and `CompactionActor` siblings (which run the jobs below), the worker
//! scanner of a worker-only node (which runs them on cold repos), and the admin view.
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

mod actors;
mod holder;
pub mod report;
pub(crate) mod scanner;

use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use omnigraph::db::{CleanupPolicyOptions, Omnigraph, ReadTarget};
use omnigraph_cloud_config::{MaintenanceConfig, Retention};
use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use tokio::time::Instant;
use tracing::{info, warn};

pub(crate) use actors::{
    CompactionActor, CompactionMsg, MaintenanceArgs, RecoveryActor, RecoveryMsg,
};
pub(crate) use holder::{Fence, Held, LeaseHolder};
pub use report::{LeaseView, MaintenanceReport, RunRecord, TableInventory};

use crate::classify;
use crate::lease::{LeaseError, LeaseKind, LeaseStore, now_ms};
use crate::metrics::MaintenanceMetrics;
use crate::{GraphStore, RepoError, RepoKey};

/// How a node maintains repos, resolved from its configuration.
#[derive(Debug, Clone)]
pub struct MaintenanceSettings {
    /// This node runs maintenance (it has the worker role and maintenance is enabled).
    pub enabled: bool,
    pub config: MaintenanceConfig,
}

/// How often, and how far apart, optimize is retried when a write in flight holds a sidecar.
const OPTIMIZE_RETRIES: usize = 20;
const OPTIMIZE_RETRY_DELAY: Duration = Duration::from_millis(100);

/// What every repo's maintenance on this node shares.
#[derive(Clone)]
pub struct NodeMaintenance {
    pub leases: LeaseStore,
    /// This process's lease holder id.
    pub holder_id: Arc<str>,
    pub settings: MaintenanceSettings,
    pub lease_metrics: crate::metrics::LeaseMetrics,
    pub metrics: MaintenanceMetrics,
}

impl NodeMaintenance {
    pub(crate) fn for_repo(&self, key: &RepoKey, store: &GraphStore) -> Arc<RepoMaintenance> {
        RepoMaintenance::new(
            key.clone(),
            store.clone(),
            self.leases.clone(),
            Arc::clone(&self.holder_id),
            self.settings.clone(),
            self.lease_metrics.clone(),
            self.metrics.clone(),
        )
    }
}

/// A lease holder id unique to this process: `<base>-<pid>-<random>`.
pub fn holder_id(base: Option<&str>) -> Arc<str> {
    let base = base
        .map(str::to_string)
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "node".to_string());
    Arc::from(format!(
        "{base}-{}-{:06x}",
        std::process::id(),
        fastrand::u32(..0x100_0000)
    ))
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
    /// Request-path publishes hold it shared; a recovery sweep holds it exclusively.
    pub(crate) write_gate: RwLock<()>,
    /// Held by optimize and by writes that run alone (updates, deletes, overwrites, schema
    /// applies, branch operations): those check the table versions they read before they
    /// stage, and would lose to a compaction commit in between (a 409 for nothing).
    pub(crate) exclusive: tokio::sync::Mutex<()>,
    pub(crate) metrics: MaintenanceMetrics,
    /// The writer-lease epoch under which this node last confirmed that no residue was
    /// pending before writing (0: none yet). A new epoch means a new check.
    pub(crate) swept_for_epoch: std::sync::atomic::AtomicU64,
    /// Writes queued in the repo's coalescer (kept by its `RepoActor`).
    pub(crate) queued_writes: AtomicUsize,
    /// The repo's maintenance actors, while it is warm on a worker node.
    pub(crate) actors: StdMutex<Option<(ActorRef<RecoveryMsg>, ActorRef<CompactionMsg>)>>,
    state: StdMutex<Progress>,
}

/// What has happened since the last run, and what the last runs did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Publishes since the last compaction.
    pub(crate) versions_since_run: u64,
    /// Request bytes written since the last compaction.
    pub(crate) bytes_since_run: u64,
    pub(crate) last_compaction: Option<RunRecord>,
    pub(crate) last_cleanup: Option<RunRecord>,
    pub(crate) last_recovery: Option<RunRecord>,
    /// Consecutive failed runs (for backoff).
    #[serde(default)]
    pub(crate) failures: u32,
}

/// How a job ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It ran.
    Done,
    /// Nothing to do.
    NotNeeded,
    /// It could not run now (lease held elsewhere, recovery pending); try again later.
    Deferred(String),
    /// Recovery waits: another process holds the writer lease and is live.
    WriterElsewhere(String),
    /// It failed.
    Failed(String),
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
            write_gate: RwLock::new(()),
            exclusive: tokio::sync::Mutex::new(()),
            metrics,
            swept_for_epoch: std::sync::atomic::AtomicU64::new(0),
            queued_writes: AtomicUsize::new(0),
            actors: StdMutex::new(None),
            state: StdMutex::new(Progress::default()),
        })
    }

    /// Continues from progress recorded by another node (a worker picking up a cold repo).
    pub(crate) fn resume(&self, progress: Progress) {
        *self.state.lock().expect("maintenance state lock") = progress;
    }

    /// Whether request-path writes are waiting: maintenance defers a little.
    pub(crate) fn busy(&self) -> bool {
        self.queued_writes.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn store_lease_timing(&self) -> crate::lease::LeaseTiming {
        self.writer.store().timing()
    }

    /// Tells the maintenance actors about a publish of `bytes` request bytes.
    pub(crate) fn published(&self, bytes: u64) {
        let due = self.note_publish(bytes);
        let actors = self.actors.lock().expect("maintenance actors lock");
        match actors.as_ref() {
            Some((_, compaction)) => {
                let _ = compaction.cast(CompactionMsg::Published { due });
            }
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
        if let Some((recovery, _)) = self
            .actors
            .lock()
            .expect("maintenance actors lock")
            .as_ref()
        {
            let _ = recovery.cast(RecoveryMsg::Check);
        }
    }

    pub(crate) fn progress(&self) -> Progress {
        self.state.lock().expect("maintenance state lock").clone()
    }

    /// Counts one publish; returns whether a trigger is reached.
    pub(crate) fn note_publish(&self, bytes: u64) -> bool {
        let mut state = self.state.lock().expect("maintenance state lock");
        state.versions_since_run += 1;
        state.bytes_since_run += bytes;
        state.versions_since_run >= self.settings.config.trigger_versions
            || state.bytes_since_run >= self.settings.config.trigger_bytes
    }

    pub(crate) fn has_backlog(&self) -> bool {
        self.state
            .lock()
            .expect("maintenance state lock")
            .versions_since_run
            > 0
    }

    /// How long to wait before the next attempt after `failures` failed ones.
    pub(crate) fn backoff(&self) -> Duration {
        let failures = self.progress().failures.min(4);
        self.settings.config.backoff * 2u32.pow(failures)
    }

    fn record(&self, update: impl FnOnce(&mut Progress)) {
        let snapshot = {
            let mut state = self.state.lock().expect("maintenance state lock");
            update(&mut state);
            state.clone()
        };
        self.save_in_background(snapshot);
    }

    /// Writes `progress` to the repo's status object: soft state under `_system`, read by
    /// the admin view of any node and by workers picking up a handed-over backlog.
    fn save_in_background(&self, progress: Progress) {
        let store = self.store.clone();
        let key = self.key.clone();
        tokio::spawn(async move {
            if let Err(err) = store.put_maintenance_status(&key, &progress).await {
                warn!(repo = %key, error = %err, "could not record maintenance status");
            }
        });
    }

    /// Runs the full recovery sweep if sidecars are pending (see the module docs). `warm` is
    /// the repo's serving handle, refreshed afterwards.
    pub(crate) async fn recover(&self, warm: Option<&Arc<Omnigraph>>) -> Outcome {
        let pending = match self.store.recovery_sidecars(&self.key).await {
            Ok(pending) => pending,
            Err(err) => return Outcome::Failed(format!("listing recovery sidecars: {err}")),
        };
        if pending == 0 {
            return Outcome::NotNeeded;
        }
        let started_ms = now_ms();
        let started = Instant::now();
        let mut epoch = 0;
        let outcome = match self.recover_under_leases(warm, pending, &mut epoch).await {
            Ok(outcome) => outcome,
            Err(err) => Outcome::Failed(err),
        };
        let detail = format!("{pending} sidecar(s) swept");
        self.finish_with(
            "recovery",
            &outcome,
            &detail,
            epoch,
            started_ms,
            started,
            |progress, record| progress.last_recovery = Some(record),
        );
        outcome
    }

    /// Whether this node must check for residue before its next write: it has not done so
    /// under the writer lease it holds now (or holds none).
    pub(crate) fn must_check_before_writing(&self) -> bool {
        self.writer.live() != Some(self.swept_for_epoch.load(Ordering::SeqCst))
    }

    /// Records that the check passed under writer-lease `epoch`.
    pub(crate) fn checked_before_writing(&self, epoch: u64) {
        self.swept_for_epoch.store(epoch, Ordering::SeqCst);
    }

    /// Run by the `RepoActor` before it writes under a writer lease it has just taken:
    /// sweeps pending sidecars first. `Err` when residue is pending and could not be swept (nothing may be written
    /// then); a live writer elsewhere is not an error here (the write is refused as
    /// misdirected right after).
    ///
    /// `Ok(true)`: nothing is pending. `Ok(false)`: another live process writes the graph (the
    /// write is then refused as misdirected).
    pub(crate) async fn recover_before_writing(
        &self,
        warm: &Arc<Omnigraph>,
    ) -> Result<bool, String> {
        match self.recover(Some(warm)).await {
            Outcome::Done | Outcome::NotNeeded => Ok(true),
            Outcome::WriterElsewhere(_) => Ok(false),
            Outcome::Deferred(why) | Outcome::Failed(why) => Err(format!(
                "a previous writer left this graph mid-write and its recovery could not run yet \
                 ({why}); nothing was written, retry"
            )),
        }
    }

    async fn recover_under_leases(
        &self,
        warm: Option<&Arc<Omnigraph>>,
        pending: usize,
        held_epoch: &mut u64,
    ) -> Result<Outcome, String> {
        let epoch = match self.recovery.ensure().await.map_err(lease_failure)? {
            Held::Ours(epoch) => {
                *held_epoch = epoch;
                epoch
            }
            Held::Other(record) => {
                return Ok(Outcome::Deferred(format!(
                    "recovery lease held by '{}' (epoch {})",
                    record.holder, record.epoch
                )));
            }
        };
        // This process's own writes wait while the sweep runs.
        let _paused = self.write_gate.write().await;
        let had_writer = self.writer.live().is_some();
        let had_compaction = self.compaction.live().is_some();
        let result = async {
            if let Held::Other(record) = self.writer.ensure().await.map_err(lease_failure)? {
                return Ok(Outcome::WriterElsewhere(format!(
                    "{pending} recovery sidecar(s) pending; the writer '{}' (epoch {}) is live, \
                     its writes heal roll-forward residue and the full sweep waits for its lease",
                    record.holder, record.epoch
                )));
            }
            // Compaction writes sidecars too: none may run elsewhere during the sweep (here,
            // the write gate already keeps ours out).
            if let Held::Other(record) = self.compaction.ensure().await.map_err(lease_failure)? {
                return Ok(Outcome::Deferred(format!(
                    "{pending} recovery sidecar(s) pending; compaction is running on '{}' \
                     (epoch {})",
                    record.holder, record.epoch
                )));
            }
            self.compaction.validate().await.map_err(lease_failure)?;
            // Validate before the destructive step.
            self.recovery.validate().await.map_err(lease_failure)?;
            self.writer.validate().await.map_err(lease_failure)?;
            let budget = self.recovery.remaining().min(self.writer.remaining());
            info!(repo = %self.key, pending, epoch, "running the recovery sweep");
            match tokio::time::timeout(budget, Omnigraph::open(&self.uri)).await {
                Err(_) => Err("the recovery sweep outlived its lease; it was stopped".to_string()),
                Ok(Err(err)) => Err(format!("recovery sweep: {err}")),
                Ok(Ok(_swept)) => {
                    if let Some(engine) = warm
                        && let Err(err) = engine.refresh().await
                    {
                        warn!(repo = %self.key, error = %err, "refresh after recovery failed");
                    }
                    self.metrics.recoveries.inc();
                    Ok(Outcome::Done)
                }
            }
        }
        .await;
        if !had_writer && warm.is_none() {
            self.writer.release().await;
        }
        if !had_compaction {
            self.compaction.release().await;
        }
        self.recovery.release().await;
        result
    }

    /// Compacts, then cleans up (see the module docs). `warm` is the repo's serving handle.
    pub(crate) async fn compact(&self, warm: Option<&Arc<Omnigraph>>) -> Outcome {
        let started_ms = now_ms();
        let started = Instant::now();
        let epoch = match self.compaction.ensure().await {
            Ok(Held::Ours(epoch)) => epoch,
            Ok(Held::Other(record)) => {
                return Outcome::Deferred(format!(
                    "compaction lease held by '{}' (epoch {})",
                    record.holder, record.epoch
                ));
            }
            Err(err) => return Outcome::Failed(lease_failure(err)),
        };
        let versions_before = self.progress().versions_since_run;
        let bytes_before = self.progress().bytes_since_run;
        let opened;
        let engine = match warm {
            Some(engine) => engine,
            None => match Omnigraph::open_read_only(&self.uri).await {
                Ok(engine) => {
                    opened = Arc::new(engine);
                    &opened
                }
                Err(err) => {
                    let why = format!("opening the graph: {err}");
                    return self
                        .compaction_failed(why, epoch, started_ms, started)
                        .await;
                }
            },
        };
        info!(repo = %self.key, epoch, "compacting");
        // Shared with request writes; a recovery sweep waits for it (optimize writes sidecars).
        let gate = self.write_gate.read().await;
        let exclusive = self.exclusive.lock().await;
        // Stops at the compaction lease's self-fencing deadline (moved by each renewal).
        let mut fence = self.compaction.fence(epoch);
        let optimized = fence
            .run(async {
                let mut optimized = engine.optimize().await;
                // optimize refuses while any recovery sidecar exists, a live write's included:
                // retry briefly, so that a busy graph is not skipped for its own writes in
                // flight.
                for _ in 0..OPTIMIZE_RETRIES {
                    match &optimized {
                        Err(err) if classify::is_unclean_recovery_state(err) => {
                            tokio::time::sleep(OPTIMIZE_RETRY_DELAY).await;
                            optimized = engine.optimize().await;
                        }
                        _ => break,
                    }
                }
                optimized
            })
            .await;
        drop(exclusive);
        drop(gate);
        let Some(optimized) = optimized else {
            let why = "optimize outlived the compaction lease (it could not be renewed) and was \
                       stopped";
            return self
                .compaction_failed(why.into(), epoch, started_ms, started)
                .await;
        };
        let outcome = match optimized {
            Ok(stats) => {
                let removed: usize = stats.iter().map(|s| s.fragments_removed).sum();
                let added: usize = stats.iter().map(|s| s.fragments_added).sum();
                self.metrics.fragments_removed.inc_by(removed as u64);
                self.record(|progress| {
                    progress.versions_since_run =
                        progress.versions_since_run.saturating_sub(versions_before);
                    progress.bytes_since_run =
                        progress.bytes_since_run.saturating_sub(bytes_before);
                });
                let detail = format!(
                    "{} table(s) compacted, {removed} fragment(s) removed, {added} added",
                    stats.iter().filter(|s| s.committed).count()
                );
                (Outcome::Done, detail)
            }
            Err(err) => (Outcome::Failed(format!("optimize: {err}")), String::new()),
        };
        let (outcome, detail) = outcome;
        self.finish_with(
            "compaction",
            &outcome,
            &detail,
            epoch,
            started_ms,
            started,
            |p, r| p.last_compaction = Some(r),
        );
        if matches!(outcome, Outcome::Done) {
            self.cleanup(engine, epoch).await;
        }
        self.compaction.release().await;
        outcome
    }

    /// Ends a compaction run that failed before it could finish: recorded, lease released.
    async fn compaction_failed(
        &self,
        why: String,
        epoch: u64,
        started_ms: u64,
        started: Instant,
    ) -> Outcome {
        self.compaction.release().await;
        let outcome = Outcome::Failed(why);
        self.finish_with(
            "compaction",
            &outcome,
            "",
            epoch,
            started_ms,
            started,
            |p, r| p.last_compaction = Some(r),
        );
        outcome
    }

    async fn cleanup(&self, engine: &Arc<Omnigraph>, epoch: u64) {
        let started_ms = now_ms();
        let started = Instant::now();
        // No write may be in flight meanwhile: a write's first fork of a table exists before
        // the manifest publish that names it, and cleanup would take it for garbage. Writes of
        // this process wait at the gate; those of other processes are kept off by the writer
        // lease, which a node that is not the graph's writer takes for the cleanup.
        let _no_writes = self.write_gate.write().await;
        let borrowed_writer = self.writer.live().is_none();
        let result = async {
            if borrowed_writer {
                match self.writer.ensure().await.map_err(lease_failure)? {
                    Held::Ours(_) => {}
                    Held::Other(record) => {
                        return Ok((
                            Outcome::Deferred(format!(
                                "writer lease held by '{}': cleanup runs only where no write can start",
                                record.holder
                            )),
                            String::new(),
                        ));
                    }
                }
            }
            // A pending recovery may need old versions as rollback targets.
            if self
                .store
                .recovery_sidecars(&self.key)
                .await
                .map_err(|err| err.to_string())?
                > 0
            {
                return Ok((
                    Outcome::Deferred("recovery sidecars pending".into()),
                    String::new(),
                ));
            }
            if let Some(record) = self
                .recovery
                .store()
                .get(&self.key, LeaseKind::Recovery)
                .await
                .map_err(|err| err.to_string())?
                && !record.is_free_at(now_ms())
            {
                return Ok((
                    Outcome::Deferred(format!("recovery lease held by '{}'", record.holder)),
                    String::new(),
                ));
            }
            // `cleanup` needs a handle of its own (it takes `&mut`); it reads the same
            // snapshot the warm handle serves.
            let mut own = Omnigraph::open_read_only(engine.uri())
                .await
                .map_err(|err| format!("opening the graph: {err}"))?;
            // Validate both leases before deleting, and stop at the earlier of their
            // self-fencing deadlines: past the writer lease's, another node may start writing
            // (and forking tables) beside the cleanup.
            self.compaction.validate().await.map_err(lease_failure)?;
            let writer_epoch = self.writer.validate().await.map_err(lease_failure)?;
            let options = CleanupPolicyOptions {
                keep_versions: Some(self.retention.keep_versions),
                older_than: Some(self.retention.keep_for),
            };
            let mut writer_fence = self.writer.fence(writer_epoch);
            let stats = self
                .compaction
                .fence(epoch)
                .run(writer_fence.run(own.cleanup(options)))
                .await
                .flatten()
                .ok_or_else(|| "cleanup outlived a lease it ran under; it was stopped".to_string())?
                .map_err(|err| format!("cleanup: {err}"))?;
            let versions: u64 = stats.iter().map(|s| s.old_versions_removed).sum();
            let bytes: u64 = stats.iter().map(|s| s.bytes_removed).sum();
            let errors: Vec<String> = stats
                .iter()
                .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.table_key)))
                .collect();
            self.metrics.versions_removed.inc_by(versions);
            self.metrics.bytes_removed.inc_by(bytes);
            let detail = format!("{versions} old version(s) and {bytes} bytes removed");
            if errors.is_empty() {
                Ok((Outcome::Done, detail))
            } else {
                Ok((Outcome::Failed(errors.join("; ")), detail))
            }
        }
        .await;
        if borrowed_writer {
            self.writer.release().await;
        }
        let (outcome, detail) = result.unwrap_or_else(|err| (Outcome::Failed(err), String::new()));
        self.finish_with(
            "cleanup",
            &outcome,
            &detail,
            epoch,
            started_ms,
            started,
            |p, r| p.last_cleanup = Some(r),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_with(
        &self,
        job: &'static str,
        outcome: &Outcome,
        detail: &str,
        epoch: u64,
        started_ms: u64,
        started: Instant,
        store: impl FnOnce(&mut Progress, RunRecord),
    ) {
        let (label, message) = match outcome {
            Outcome::Done => ("done", detail.to_string()),
            Outcome::NotNeeded => return,
            Outcome::Deferred(why) | Outcome::WriterElsewhere(why) => ("deferred", why.clone()),
            Outcome::Failed(why) => ("failed", why.clone()),
        };
        self.metrics.run(job, label, started.elapsed());
        match outcome {
            Outcome::Failed(_) => warn!(repo = %self.key, job, %message, "maintenance job failed"),
            _ => {
                info!(repo = %self.key, job, outcome = label, %message, "maintenance job finished")
            }
        }
        let record = RunRecord {
            job: job.to_string(),
            outcome: label.to_string(),
            message,
            holder: self.holder_id.to_string(),
            epoch,
            started_at_ms: started_ms,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let failed = matches!(outcome, Outcome::Failed(_));
        self.record(|progress| {
            store(progress, record);
            progress.failures = if failed { progress.failures + 1 } else { 0 };
        });
    }

    /// The repo's tables as stored: fragments, versions, files, bytes (admin view, benchmark).
    pub(crate) async fn inventory(
        &self,
        engine: &Omnigraph,
    ) -> Result<Vec<TableInventory>, RepoError> {
        Ok(self.inventory_with_files(engine).await?.0)
    }

    /// [`Self::inventory`], plus the count and bytes of every object of the graph.
    pub(crate) async fn inventory_with_files(
        &self,
        engine: &Omnigraph,
    ) -> Result<(Vec<TableInventory>, u64, u64), RepoError> {
        let snapshot = engine.snapshot_of(ReadTarget::branch("main")).await?;
        let files = self.store.graph_files(&self.key).await?;
        let mut tables = Vec::new();
        for entry in snapshot.entries() {
            let uri = format!("{}/{}", self.uri, entry.table_path);
            let fragments = match lance::Dataset::open(&uri).await {
                Ok(dataset) => dataset.count_fragments() as u64,
                Err(err) => {
                    return Err(RepoError::Internal {
                        message: format!("opening table {}: {err}", entry.table_key),
                    });
                }
            };
            let prefix = format!("{}/", entry.table_path.trim_end_matches('/'));
            let (mut versions, mut data_files, mut bytes) = (0u64, 0u64, 0u64);
            for (path, size) in files.iter().filter(|(path, _)| path.starts_with(&prefix)) {
                let rest = &path[prefix.len()..];
                if rest.starts_with("_versions/") && rest.ends_with(".manifest") {
                    versions += 1;
                }
                if rest.starts_with("data/") {
                    data_files += 1;
                }
                bytes += size;
            }
            tables.push(TableInventory {
                table_key: entry.table_key.clone(),
                table_version: entry.table_version,
                rows: entry.row_count,
                fragments,
                versions,
                data_files,
                bytes,
            });
        }
        tables.sort_by(|a, b| a.table_key.cmp(&b.table_key));
        let bytes = files.iter().map(|(_, size)| size).sum();
        Ok((tables, files.len() as u64, bytes))
    }
}

fn lease_failure(err: LeaseError) -> String {
    format!("lease: {err}")
}
