//! Per-repo actors: the registry that activates one supervised `RepoActor` per
//! (tenant, graph) on first use and evicts it when idle, the warm engine handle each owns,
//! and the layout of graphs in object storage.
//!
//! Reads run on the warm handle in the caller's task; writes go through the repo's mailbox.
//!
//! Depends on: config, the engine. Must not know: http, axum, cluster, runtime.

mod classify;
mod error;
mod key;
pub mod lease;
pub mod maintenance;
mod metrics;
mod probe;
pub mod process;
mod registry;
mod repo;
mod storage;

pub use error::{ErrorKind, RepoError};
pub use key::RepoKey;
pub use metrics::{
    ActorMetrics, CoalescerMetrics, LeaseMetrics, MaintenanceMetrics, RegistryStats, StoreMetrics,
};
pub use probe::{ProbeError, ProbeReport};
pub use registry::Registry;
pub use repo::{
    ExportStream, RepoHandle, RepoLease, SnapshotInfo, TableInfo, WriteOp, WriteOutcome,
};
pub use storage::GraphStore;
