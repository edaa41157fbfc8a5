//! A repo's maintenance status: what has happened since the last runs and how they ended,
//! kept in memory and saved as soft state under `_system/maintenance/` for the admin view and
//! for the worker that picks up a handed-over backlog.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{RepoMaintenance, RunRecord};

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
    /// Continues from progress recorded by another node (a worker picking up a cold repo).
    pub(crate) fn resume(&self, progress: Progress) {
        *self.state.lock().expect("maintenance state lock") = progress;
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

    pub(super) fn record(&self, update: impl FnOnce(&mut Progress)) {
        let snapshot = {
            let mut state = self.state.lock().expect("maintenance state lock");
            update(&mut state);
            state.clone()
        };
        self.save_in_background(snapshot);
    }

    /// Writes `progress` to the repo's status object: soft state under `_system`, read by
    /// the admin view of any node and by workers picking up a handed-over backlog.
    pub(super) fn save_in_background(&self, progress: Progress) {
        let store = self.store.clone();
        let key = self.key.clone();
        tokio::spawn(async move {
            if let Err(err) = store.put_maintenance_status(&key, &progress).await {
                warn!(repo = %key, error = %err, "could not record maintenance status");
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_with(
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
}
