//! What publishing needs of the engine, behind a trait: the engine serves it in a node, and a
//! model engine stands in for it in the coalescer's unit tests (and in simulations), so that
//! the split, fan-out and retry decisions are tested without Lance.

use std::sync::Arc;

use async_trait::async_trait;
use omnigraph::db::{Omnigraph, ReadTarget};
use omnigraph::error::OmniError;
use omnigraph::loader::LoadMode;
use omnigraph_compiler::ParamMap;
use omnigraph_compiler::catalog::Catalog;

use super::rewrite::COMBINED_QUERY_NAME;
use crate::RepoError;
use crate::repo::messages::{WriteOp, WriteOutcome};
use crate::repo::{branches, writes};

/// How a batch is published: one load of all its records, or one generated mutation.
pub(crate) enum Publication {
    Load { data: String, mode: LoadMode },
    Mutation { source: String, params: ParamMap },
}

/// The graph a coalescer publishes to.
#[async_trait]
pub(crate) trait Publisher: Send + Sync {
    /// The graph's catalog, to plan node-insert batches as loads.
    fn catalog(&self) -> Arc<Catalog>;

    /// Runs one write alone, with its own text: its result and its error are its own.
    async fn alone(&self, op: WriteOp) -> Result<WriteOutcome, RepoError>;

    /// Publishes a combined batch on `branch` as `actor`, in one commit.
    async fn publish(
        &self,
        branch: &str,
        publication: &Publication,
        actor: Option<&str>,
    ) -> Result<(), OmniError>;

    /// Catches up with the graph's latest version (after losing a race to another writer).
    async fn refresh(&self) -> Result<(), OmniError>;

    /// Whether `branch` has no commit created at or after `since_us` (microseconds since the
    /// Unix epoch). An error asking counts as "maybe published" (`false`).
    async fn nothing_published_since(&self, branch: &str, since_us: i64) -> bool;

    /// The caller's error for an engine failure on `branch` (a missing branch named as such).
    async fn explain(&self, branch: &str, err: OmniError) -> RepoError;

    /// Now on the clock the graph's commits are stamped with, in microseconds since the Unix
    /// epoch: the engine stamps them with the system's wall clock.
    fn wall_us(&self) -> i64 {
        omnigraph_cloud_cluster::Clock::system().wall_ms() as i64 * 1000
    }

    /// The `__manifest` version of `branch` now; `None` when it cannot be read (the write it
    /// follows is durable all the same).
    async fn version(&self, branch: &str) -> Option<u64>;
}

#[async_trait]
impl Publisher for Arc<Omnigraph> {
    fn catalog(&self) -> Arc<Catalog> {
        Omnigraph::catalog(self)
    }

    async fn alone(&self, op: WriteOp) -> Result<WriteOutcome, RepoError> {
        writes::execute(self, op).await
    }

    async fn publish(
        &self,
        branch: &str,
        publication: &Publication,
        actor: Option<&str>,
    ) -> Result<(), OmniError> {
        match publication {
            Publication::Load { data, mode } => self
                .load_as(branch, None, data, *mode, actor)
                .await
                .map(|_| ()),
            Publication::Mutation { source, params } => self
                .mutate_as(branch, source, COMBINED_QUERY_NAME, params, actor)
                .await
                .map(|_| ()),
        }
    }

    async fn refresh(&self) -> Result<(), OmniError> {
        Omnigraph::refresh(self).await
    }

    async fn nothing_published_since(&self, branch: &str, since_us: i64) -> bool {
        let listed = if branch == branches::MAIN {
            self.list_commits(None).await
        } else {
            self.list_commits(Some(branch)).await
        };
        match listed {
            Ok(commits) => commits.iter().all(|commit| commit.created_at < since_us),
            Err(_) => false,
        }
    }

    async fn explain(&self, branch: &str, err: OmniError) -> RepoError {
        branches::explain_error(self, branch, err).await
    }

    async fn version(&self, branch: &str) -> Option<u64> {
        self.version_of(ReadTarget::branch(branch)).await.ok()
    }
}
