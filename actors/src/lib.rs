//! Per-repo actors: the registry that activates one supervised `RepoActor` per
//! (tenant, graph) on first use and evicts it when idle, the warm engine handle each owns,
//! and the layout of graphs in object storage.
//!
//! Reads run on the warm handle in the caller's task; writes go through the repo's mailbox.
//!
//! Depends on: config, cluster (leases, the clock), the engine. Must not know: http, axum,
//! runtime.

mod cache;
mod classify;
mod error;
mod maintenance;
mod metrics;
pub mod origin;
mod probe;
mod registry;
mod repo;
pub mod sim;
pub mod stamp;
mod storage;
pub mod usage;
mod worker;

pub use cache::{CacheError, CacheMetrics, CacheStats, NodeCache};
pub use error::{ConflictDetails, ErrorKind, RepoError, RowConflict};
pub use maintenance::{
    LeaseView, MaintenanceReport, MaintenanceSettings, NodeMaintenance, RunRecord, TableInventory,
};
pub use metrics::{
    ActorMetrics, CoalescerMetrics, LeaseMetrics, MaintenanceMetrics, RegistryStats, StoreMetrics,
};
pub use omnigraph_cloud_cluster::{Clock, RepoKey};
pub use probe::{ProbeError, ProbeReport};
pub use registry::{Rebalanced, Registry, WarmGraph, WarmOverview};
pub use repo::{
    ActiveRepo, ExportStream, RepoHandle, SnapshotInfo, TableInfo, WriteOp, WriteOutcome,
};
pub use storage::GraphStore;
pub use worker::start_maintenance;

/// The engine's value types that callers of this crate name (read targets, load modes, commits,
/// merge outcomes), so that they need not depend on the engine themselves.
pub mod engine {
    pub use omnigraph::db::manifest::INTERNAL_MANIFEST_SCHEMA_VERSION;
    pub use omnigraph::db::{GraphCommit, MergeOutcome, ReadTarget, SnapshotId};
    pub use omnigraph::loader::LoadMode;
}
