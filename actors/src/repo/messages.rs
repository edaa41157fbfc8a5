//! What a `RepoActor` is asked to do. Reads never come here: they run on the warm engine
//! handle in the caller's task. Only writes go through the mailbox, one at a time per repo.

use omnigraph::db::{MergeOutcome, SchemaApplyResult};
use omnigraph::loader::{LoadMode, LoadResult};
use omnigraph_compiler::{MutationResult, ParamMap};
use ractor::RpcReplyPort;

use crate::RepoError;
use crate::stamp::Stamp;

pub enum RepoMsg {
    /// Applies one write and answers once it is durable and visible in `__manifest`. The
    /// instant is when it was sent (the coalescer tells waiting writes from returning ones);
    /// the flag, whether another node forwarded it here (`crate::origin`).
    Write(
        WriteOp,
        RpcReplyPort<Result<Written, RepoError>>,
        tokio::time::Instant,
        bool,
    ),
    /// Publishes the next unit of queued writes. Sent by the actor to itself, either at once,
    /// landing behind every write that arrived during the previous publish so that they all
    /// join the next one, or after a wait for the writers that publish answered. It carries
    /// the number of the flush it was armed for; any other is stale and ignored.
    Flush(u64),
    /// Builds the indexes a schema change declared. Sent by the actor to itself after an
    /// applied schema change; it holds the repo's activity gate open while it runs, so the
    /// repo is not evicted (and no second engine handle opened) under it.
    BuildIndexes,
    /// Tries again to become the repo's cache authority (`maintenance::authority`), after an
    /// activation that could not: then the engine is opened again as the authority's.
    ClaimAuthority,
    /// Fault injection for tests and chaos runs: the actor panics while handling it, and its
    /// supervisor restarts it with a fresh engine handle. `test-seams` builds only.
    #[cfg(feature = "test-seams")]
    Crash,
}

/// A write against one repo. `actor` is the authenticated caller, stamped on the commit.
#[derive(Debug)]
pub enum WriteOp {
    Mutate {
        branch: String,
        source: String,
        name: String,
        params: ParamMap,
        actor: Option<String>,
    },
    Load {
        branch: String,
        /// Forks `branch` from this branch when `branch` does not exist yet.
        from: Option<String>,
        data: String,
        mode: LoadMode,
        actor: Option<String>,
    },
    ApplySchema {
        source: String,
        allow_data_loss: bool,
        actor: Option<String>,
    },
    CreateBranch {
        from: String,
        name: String,
        actor: Option<String>,
    },
    DeleteBranch {
        name: String,
        actor: Option<String>,
    },
    Merge {
        source: String,
        target: String,
        actor: Option<String>,
    },
}

impl WriteOp {
    /// The branch whose `__manifest` version a successful write reports: the one it wrote.
    pub(crate) fn branch(&self) -> &str {
        match self {
            WriteOp::Mutate { branch, .. } | WriteOp::Load { branch, .. } => branch,
            WriteOp::CreateBranch { name, .. } => name,
            WriteOp::Merge { target, .. } => target,
            WriteOp::ApplySchema { .. } | WriteOp::DeleteBranch { .. } => "main",
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            WriteOp::Mutate { .. } => "mutate",
            WriteOp::Load { .. } => "load",
            WriteOp::ApplySchema { .. } => "schema_apply",
            WriteOp::CreateBranch { .. } => "branch_create",
            WriteOp::DeleteBranch { .. } => "branch_delete",
            WriteOp::Merge { .. } => "branch_merge",
        }
    }
}

/// A write's answer: its outcome, and where it landed.
#[derive(Debug)]
pub struct Written {
    pub outcome: WriteOutcome,
    pub stamp: Stamp,
}

/// The result of a [`WriteOp`], one variant per operation.
#[derive(Debug)]
pub enum WriteOutcome {
    Mutated(MutationResult),
    Loaded(LoadResult),
    SchemaApplied(SchemaApplyResult),
    BranchCreated,
    BranchDeleted,
    Merged(MergeOutcome),
}
