//! The worker tier: a scan that finds cold repos needing maintenance, from what is under
//! `{root}/_system/` alone.
//!
//! Every `scan_interval` (the first time one interval after the node starts) it lists the lease objects and the maintenance status objects (two
//! listings per thousand repos, whatever their number otherwise) and reads only the objects
//! that changed since it last looked. A repo needs it when
//!
//! - its writer lease is neither released nor renewed past its expiry: the writer died, and
//!   may have left recovery sidecars (the recovery job looks, and sweeps them); or
//! - its status object carries a backlog: a node that serves but does not maintain handed
//!   the compaction over.
//!
//! Repos warm on this node are left to their own `RecoveryActor` and `CompactionActor`. An
//! idle repo whose lease and status have not changed costs no request at all.

use std::collections::HashMap;

use omnigraph_cloud_cluster::lease::LeaseKind;
use tracing::{info, warn};

use crate::RepoKey;
use crate::maintenance::{Outcome, Progress};
use crate::registry::Registry;

/// Starts the worker's scan if this node runs maintenance; it stops with the registry
/// ([`Registry::shutdown`]).
pub fn start_maintenance(registry: &Registry) {
    if !registry.maintenance_settings().enabled {
        return;
    }
    registry.keep_background_task(tokio::spawn(run(registry.clone())));
}

/// What the scan last saw of one object.
#[derive(Default)]
struct Seen {
    /// The listing's version of the object (ETag or modification time).
    version: String,
    /// For a writer lease: its expiry, if it was neither released nor already handled.
    dead_after_ms: Option<u64>,
    /// For a writer lease: whether it hangs off a node lease (its expiry moves without the
    /// object changing).
    tied: bool,
}

/// Runs until the registry shuts down.
async fn run(registry: Registry) {
    let mut leases: HashMap<RepoKey, Seen> = HashMap::new();
    let mut statuses: HashMap<RepoKey, Seen> = HashMap::new();
    let interval = registry.maintenance_settings().config.scan_interval;
    loop {
        // The first scan waits too: a node that has just started gives its own activations
        // (its warm set, the first requests) a head start. A cold job holds the compaction
        // lease, and a repo activated meanwhile would be served without the cache's authority.
        tokio::time::sleep(interval).await;
        if registry.is_shutting_down() {
            return;
        }
        if let Err(err) = scan(&registry, &mut leases, &mut statuses).await {
            warn!(error = %err, "maintenance scan failed");
        }
    }
}

async fn scan(
    registry: &Registry,
    leases: &mut HashMap<RepoKey, Seen>,
    statuses: &mut HashMap<RepoKey, Seen>,
) -> Result<(), crate::RepoError> {
    let lease_store = registry.lease_store();
    let now = lease_store.clock().wall_ms();
    // Writer leases: find the dead writers.
    let mut recover = Vec::new();
    for listed in lease_store.list().await.map_err(lease_error)? {
        if listed.kind != LeaseKind::Writer {
            continue;
        }
        let seen = leases.entry(listed.key.clone()).or_default();
        // A lease tied to a node lease lasts while that does, without its own object ever
        // changing: its expiry is read again on every scan.
        if seen.version != listed.version || seen.tied {
            seen.version = listed.version.clone();
            seen.dead_after_ms = match lease_store.get(&listed.key, LeaseKind::Writer).await {
                Ok(Some(record)) if !record.released => {
                    seen.tied = record.node.is_some();
                    Some(record.expires_at_ms)
                }
                Ok(_) => None,
                Err(err) => {
                    warn!(repo = %listed.key, error = %err, "could not read writer lease");
                    seen.version.clear(); // look again next time
                    None
                }
            };
        }
        if seen.dead_after_ms.is_some_and(|expiry| now > expiry) && !registry.is_warm(&listed.key) {
            recover.push(listed.key.clone());
        }
    }
    // Status objects: find the handed-over backlogs.
    let mut compact = Vec::new();
    for (key, version) in registry.store().list_maintenance_status().await? {
        let seen = statuses.entry(key.clone()).or_default();
        if seen.version == version {
            continue;
        }
        seen.version = version;
        if registry.is_warm(&key) {
            continue;
        }
        match registry
            .store()
            .get_maintenance_status::<Progress>(&key)
            .await
        {
            Ok(Some(progress)) if progress.versions_since_run > 0 => compact.push(key),
            Ok(_) => {}
            Err(err) => warn!(repo = %key, error = %err, "could not read maintenance status"),
        }
    }
    for key in recover {
        let maintenance = registry.cold_maintenance(&key).await;
        match maintenance.recover(None).await {
            Outcome::Deferred(why) | Outcome::WriterElsewhere(why) => {
                info!(repo = %key, %why, "recovery of a dead writer's repo deferred");
                continue; // look again next scan
            }
            Outcome::Done | Outcome::NotNeeded => {}
            Outcome::Failed(_) => continue,
        }
        if let Some(seen) = leases.get_mut(&key) {
            seen.dead_after_ms = None; // handled until the lease changes again
        }
    }
    for key in compact {
        let maintenance = registry.cold_maintenance(&key).await;
        let _ = maintenance.compact(None).await;
    }
    Ok(())
}

fn lease_error(err: omnigraph_cloud_cluster::lease::LeaseError) -> crate::RepoError {
    crate::RepoError::Unavailable {
        message: err.to_string(),
    }
}
