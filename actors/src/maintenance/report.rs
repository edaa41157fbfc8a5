//! What `GET /admin/repos/{tenant}/{graph}/maintenance` shows.

use omnigraph_cloud_cluster::lease::{LeaseKind, LeaseRecord};
use serde::{Deserialize, Serialize};

/// One maintenance job's last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `recovery`, `compaction` or `cleanup`.
    pub job: String,
    /// `done`, `deferred` or `failed`.
    pub outcome: String,
    pub message: String,
    /// The node (lease holder id) that ran it, and under which lease epoch.
    pub holder: String,
    pub epoch: u64,
    pub started_at_ms: u64,
    pub duration_ms: u64,
}

/// One table of the graph's `main`, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInventory {
    pub table_key: String,
    /// The version `main` pins.
    pub table_version: u64,
    pub rows: u64,
    /// Fragments of the pinned version.
    pub fragments: u64,
    /// Versions whose manifests are still stored.
    pub versions: u64,
    /// Data files stored (live and superseded until cleanup).
    pub data_files: u64,
    pub bytes: u64,
}

/// A lease object as the admin view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseView {
    pub kind: LeaseKind,
    pub holder: String,
    pub epoch: u64,
    pub expires_at_ms: u64,
    /// Negative once expired.
    pub expires_in_ms: i64,
    pub released: bool,
    /// Not released and not expired.
    pub live: bool,
    /// Held by the node answering.
    pub held_here: bool,
}

impl LeaseView {
    pub(crate) fn new(kind: LeaseKind, record: LeaseRecord, now_ms: u64, here: &str) -> LeaseView {
        LeaseView {
            kind,
            live: !record.is_free_at(now_ms),
            held_here: record.holder == here && !record.is_free_at(now_ms),
            expires_in_ms: record.expires_at_ms as i64 - now_ms as i64,
            holder: record.holder,
            epoch: record.epoch,
            expires_at_ms: record.expires_at_ms,
            released: record.released,
        }
    }
}

/// The maintenance state of one repo.
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceReport {
    pub tenant: String,
    pub graph: String,
    /// The answering node's lease holder id.
    pub node: String,
    /// Whether this node maintains repos (worker role, maintenance enabled).
    pub worker: bool,
    /// Whether the repo is warm on the answering node.
    pub warm: bool,
    pub leases: Vec<LeaseView>,
    /// Leases this node held for the repo and lost (taken over, or expired unrenewed) while
    /// it was warm, with why.
    pub lost_leases: Vec<String>,
    /// Publishes and request bytes since the last compaction, as known to the answering node
    /// (or recorded by the last node that maintained the repo).
    pub backlog: Backlog,
    pub pending_recovery_sidecars: usize,
    pub last_compaction: Option<RunRecord>,
    pub last_cleanup: Option<RunRecord>,
    pub last_recovery: Option<RunRecord>,
    pub tables: Vec<TableInventory>,
    /// Every object of the graph.
    pub files: u64,
    pub bytes: u64,
    pub policy: Policy,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub versions_since_run: u64,
    pub bytes_since_run: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    pub interval_secs: u64,
    pub trigger_versions: u64,
    pub trigger_fragments: u64,
    pub trigger_bytes: u64,
    pub keep_versions: u32,
    pub keep_for_secs: u64,
}
