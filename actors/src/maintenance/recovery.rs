//! Recovery: the engine's full sweep of a repo's recovery sidecars, run only under the
//! repo's `recovery` and `writer` leases with this process's writes paused (see the module
//! docs of [`super`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use omnigraph::db::Omnigraph;
use tokio::time::Instant;
use tracing::{info, warn};

use super::status::Outcome;
use super::{Held, RepoMaintenance, lease_failure};

impl RepoMaintenance {
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
        let started_ms = self.clock().wall_ms();
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
        let _paused = self.sweep_exclusion.write().await;
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
            // `sweep_exclusion` already keeps ours out).
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
            // The sweep's own handle does not read through the cache: the repo's entries
            // stay invalid until it and the refresh below are over.
            let _writing = self.cache.begin_write();
            match tokio::time::timeout(budget, Omnigraph::open(&self.uri)).await {
                Err(_) => Err("the recovery sweep outlived its lease; it was stopped".to_string()),
                Ok(Err(err)) => Err(format!("recovery sweep: {err}")),
                Ok(Ok(_swept)) => {
                    if let Some(engine) = warm
                        && let Err(err) = self.cache.scope(engine.refresh()).await
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
}
