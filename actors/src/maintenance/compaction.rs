//! Compaction: `optimize` on the repo's warm handle under the `compaction` lease and its
//! fence, then cleanup (see the module docs of [`super`]).

use std::sync::Arc;
use std::time::Duration;

use omnigraph::db::Omnigraph;
use tokio::time::Instant;
use tracing::info;

use super::status::Outcome;
use super::{Held, RepoMaintenance, lease_failure};
use crate::classify;

/// How often, and how far apart, optimize is retried when a write in flight holds a sidecar.
const OPTIMIZE_RETRIES: usize = 20;
const OPTIMIZE_RETRY_DELAY: Duration = Duration::from_millis(100);

impl RepoMaintenance {
    /// Compacts, then cleans up (see the module docs). `warm` is the repo's serving handle.
    pub(crate) async fn compact(&self, warm: Option<&Arc<Omnigraph>>) -> Outcome {
        let started_ms = self.clock().wall_ms();
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
            None => match self.cache.scope(Omnigraph::open_read_only(&self.uri)).await {
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
        let gate = self.sweep_exclusion.read().await;
        let exclusive = self.optimize_exclusion.lock().await;
        // Stops at the compaction lease's self-fencing deadline (moved by each renewal).
        let mut fence = self.compaction.fence(epoch);
        // On the authority's engine every write optimize makes passes through the cache (a
        // test compares them with the store's count), so the authority keeps serving
        // meanwhile: only the scope. Any other engine's adapter writes around the cache.
        let seen = self.cache.authoritative();
        // Boxed: optimize's future is large, and is awaited through one of two wrappers.
        let work = Box::pin(async {
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
        });
        let optimized = if seen {
            fence.run(self.cache.scope(work)).await
        } else {
            fence.run(self.cache.mutation(work)).await
        };
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
        self.release_compaction().await;
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
        self.release_compaction().await;
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
}
