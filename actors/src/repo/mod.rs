//! One hot repo: a `RepoSupervisor` owning a `RepoActor`, and the handle callers use.
//!
//! Lifecycle: the registry spawns the supervisor on first use; the supervisor spawns the
//! actor, whose `pre_start` opens the warm `Arc<Omnigraph>` and publishes it. Reads take that
//! handle and run in the caller's task; writes are sent to the actor's mailbox. If the actor
//! panics, the supervisor publishes `Restarting`, spawns a new actor with a fresh engine
//! handle, and callers whose writes were lost get `OutcomeUnknown`. After `idle_timeout` without
//! a request the supervisor closes the activity gate and stops (scale-to-zero).

mod activity;
mod actor;
mod branches;
pub(crate) mod coalescer;
mod export;
mod handle;
mod maintenance_actors;
mod messages;
mod schema_guard;
mod supervisor;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use omnigraph::db::Omnigraph;
use ractor::ActorRef;
use tokio::sync::watch;

pub use export::ExportStream;
pub use handle::{ActiveRepo, RepoHandle, SnapshotInfo, TableInfo};
pub use messages::{RepoMsg, WriteOp, WriteOutcome, Written};

pub(crate) use activity::Activity;
pub(crate) use supervisor::{RepoSupervisor, SupervisorArgs};

use crate::RepoKey;

/// What a repo's handle, supervisor and actor share.
pub(crate) struct RepoShared {
    pub(crate) key: RepoKey,
    pub(crate) uri: String,
    pub(crate) activity: Arc<Activity>,
    pub(crate) life: watch::Sender<Life>,
    pub(crate) call_timeout: Duration,
    pub(crate) writes: omnigraph_cloud_config::WriteConfig,
    pub(crate) coalescer_metrics: crate::metrics::CoalescerMetrics,
    pub(crate) maintenance: Arc<crate::maintenance::RepoMaintenance>,
}

/// Where a repo's actor is in its life, as callers see it.
#[derive(Clone)]
pub(crate) enum Life {
    /// Serving: the warm engine handle and the mailbox of the actor that owns it.
    Ready(Arc<Incarnation>),
    /// The actor failed and its supervisor is opening a fresh engine handle.
    Restarting,
    /// The repo was evicted, deleted or failed for good; the reason says which.
    Stopped(String),
}

pub(crate) struct Incarnation {
    pub(crate) engine: Arc<Omnigraph>,
    pub(crate) mailbox: ActorRef<RepoMsg>,
}
