//! Cleanup: removing versions older than the tenant's retention, after a compaction, under
//! the `compaction` lease and the `writer` lease (no write may fork a table meanwhile).

use std::sync::Arc;

use omnigraph::db::{CleanupPolicyOptions, Omnigraph, ReadTarget};
use omnigraph_cloud_cluster::lease::LeaseKind;
use tokio::time::Instant;

use super::status::Outcome;
use super::{Held, RepoMaintenance, lease_failure};

impl RepoMaintenance {
    pub(super) async fn cleanup(&self, engine: &Arc<Omnigraph>, epoch: u64) {
        let started_ms = self.clock().wall_ms();
        let started = Instant::now();
        // No write may be in flight meanwhile: a write's first fork of a table exists before
        // the manifest publish that names it, and cleanup would take it for garbage. Writes of
        // this process wait at the gate; those of other processes are kept off by the writer
        // lease, which a node that is not the graph's writer takes for the cleanup.
        let _no_writes = self.sweep_exclusion.write().await;
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
                && !record.is_free_at(self.clock().wall_ms())
            {
                return Ok((
                    Outcome::Deferred(format!("recovery lease held by '{}'", record.holder)),
                    String::new(),
                ));
            }
            // `cleanup` needs a handle of its own (it takes `&mut`); it reads the same
            // snapshot the warm handle serves.
            let mut own = self
                .cache
                .scope(Omnigraph::open_read_only(engine.uri()))
                .await
                .map_err(|err| format!("opening the graph: {err}"))?;
            // Validate both leases before deleting, and stop at the earlier of their
            // self-fencing deadlines: past the writer lease's, another node may start writing
            // (and forking tables) beside the cleanup.
            self.compaction.validate().await.map_err(lease_failure)?;
            let writer_epoch = self.writer.validate().await.map_err(lease_failure)?;
            // A branch that has not written a table reads main's version of it from when the
            // branch was made: keep at least every version from there to main's latest.
            let for_branches = versions_branches_read(&own)
                .await
                .map_err(|err| format!("reading the branches' snapshots: {err}"))?;
            let options = CleanupPolicyOptions {
                keep_versions: Some(self.retention.keep_versions.max(for_branches)),
                older_than: Some(self.retention.keep_for),
            };
            let mut writer_fence = self.writer.fence(writer_epoch);
            let stats = self
                .compaction
                .fence(epoch)
                .run(writer_fence.run(self.cache.mutation(own.cleanup(options))))
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
}

/// How many of main's latest versions of a table cleanup must keep so that every branch
/// still reads the version it was made from: for each table a branch has not written itself
/// (its entry names main's table), main's latest version minus the branch's, plus one.
async fn versions_branches_read(engine: &Omnigraph) -> Result<u32, omnigraph::error::OmniError> {
    let main = engine.snapshot_of(ReadTarget::branch("main")).await?;
    let mut keep = 0u64;
    for branch in engine.branch_list().await? {
        if branch == "main" {
            continue;
        }
        let snapshot = engine
            .snapshot_of(ReadTarget::branch(branch.as_str()))
            .await?;
        for entry in snapshot.entries() {
            let on_main = entry
                .table_branch
                .as_deref()
                .is_none_or(|table_branch| table_branch == "main");
            if let (true, Some(latest)) = (on_main, main.entry(&entry.table_key)) {
                let needed = latest.table_version.saturating_sub(entry.table_version) + 1;
                keep = keep.max(needed);
            }
        }
    }
    Ok(u32::try_from(keep).unwrap_or(u32::MAX))
}
